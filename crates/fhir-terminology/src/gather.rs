//! The terminology one request works on. The definitions packages' code systems, value
//! sets and concept maps are always there; those written through the API are found by
//! canonical URL through a [`Stored`] source and gathered, for the request, into a
//! small [`Terminology`] with everything the asked-for resource reaches — the value sets
//! a value set includes or excludes and the code systems they draw on (the packages'
//! copies where they have them: a stored resource never replaces a package's).

use std::collections::{HashSet, VecDeque};

use fhir_model::terminology::{canonical_url, CodeSystemDef, Terminology, ValueSetInclude};
use serde_json::Value;

use crate::TxError;

/// The most resources one request gathers.
const MAX_GATHERED: usize = 64;

/// Which kind of terminology resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    CodeSystem,
    ValueSet,
    ConceptMap,
}

impl Kind {
    pub fn res_type(self) -> &'static str {
        match self {
            Kind::CodeSystem => "CodeSystem",
            Kind::ValueSet => "ValueSet",
            Kind::ConceptMap => "ConceptMap",
        }
    }
}

/// Where resources written through the API are found.
pub trait Stored {
    /// The current resource of `kind` whose `url` is `url` (`url|version`: of that
    /// version), as JSON, if any.
    fn find(&self, kind: Kind, url: &str) -> Result<Option<Value>, TxError>;

    /// The stored supplements (CodeSystems with `content: supplement`) of the code
    /// system `url`, as JSON.
    fn supplements(&self, url: &str) -> Result<Vec<Value>, TxError> {
        let _ = url;
        Ok(Vec::new())
    }
}

/// Resources given with a request (`tx-resource` parameters, as HL7's terminology
/// servers take them), found before the stored ones.
pub struct Given<'a> {
    pub resources: &'a [Value],
    pub stored: &'a dyn Stored,
}

impl Given<'_> {
    fn matching<'v>(&'v self, kind: Kind, url: &'v str) -> impl Iterator<Item = &'v Value> + 'v {
        let (url, version) = match url.split_once('|') {
            Some((u, v)) => (u, Some(v)),
            None => (url, None),
        };
        self.resources.iter().filter(move |r| {
            r["resourceType"] == kind.res_type()
                && r["url"] == url
                && version.is_none_or(|v| r["version"] == v)
        })
    }
}

impl Stored for Given<'_> {
    fn find(&self, kind: Kind, url: &str) -> Result<Option<Value>, TxError> {
        match self.matching(kind, url).last() {
            Some(r) => Ok(Some(r.clone())),
            None => self.stored.find(kind, url),
        }
    }

    fn supplements(&self, url: &str) -> Result<Vec<Value>, TxError> {
        let plain = canonical_url(url);
        let mut out: Vec<Value> = self
            .resources
            .iter()
            .filter(|r| r["resourceType"] == "CodeSystem" && r["content"] == "supplement")
            .filter(|r| {
                r["supplements"]
                    .as_str()
                    .is_some_and(|s| canonical_url(s) == plain)
            })
            .cloned()
            .collect();
        out.extend(self.stored.supplements(url)?);
        Ok(out)
    }
}

fn in_core(core: &Terminology, kind: Kind, url: &str) -> bool {
    match kind {
        Kind::CodeSystem => core.code_system(url).is_some(),
        Kind::ValueSet => core.value_set(url).is_some(),
        Kind::ConceptMap => core.concept_map(url).is_some(),
    }
}

/// Whether `url` needs gathering: no package defines it.
pub fn needs_gathering(core: &Terminology, kind: Kind, url: &str) -> bool {
    !in_core(core, kind, url)
}

fn unreadable(kind: Kind, url: &str, e: impl std::fmt::Display) -> TxError {
    TxError::NotSupported {
        message: format!(
            "the stored {} {url} cannot be used as terminology: {e}",
            kind.res_type()
        ),
        param: "url".into(),
    }
}

/// The terminology `kind`/`url` reaches: core copies and stored resources.
pub fn gather(
    core: &Terminology,
    stored: &dyn Stored,
    kind: Kind,
    url: &str,
) -> Result<Terminology, TxError> {
    let mut out = Terminology::default();
    let mut seen: HashSet<(Kind, String)> = HashSet::new();
    // References keep their `|version`: the store is asked for that version; the
    // terminology holds each resource under its plain URL.
    let mut queue = VecDeque::from([(kind, url.to_string())]);
    while let Some((kind, reference)) = queue.pop_front() {
        if !seen.insert((kind, reference.clone())) {
            continue;
        }
        let url = canonical_url(&reference).to_string();
        if seen.len() > MAX_GATHERED {
            return Err(TxError::TooCostly {
                message: format!(
                    "{url} reaches more than {MAX_GATHERED} code systems and value sets"
                ),
                param: "url".into(),
            });
        }
        match kind {
            Kind::CodeSystem => {
                let cs = match core.code_system(&url) {
                    Some(cs) => Some(cs.clone()),
                    None => stored
                        .find(kind, &reference)?
                        .map(|v| serde_json::from_value(v).map_err(|e| unreadable(kind, &url, e)))
                        .transpose()?,
                };
                if let Some(cs) = cs {
                    out.code_systems.insert(url, cs);
                }
            }
            Kind::ValueSet => {
                let vs = match core.value_set(&url) {
                    Some(vs) => Some(vs.clone()),
                    None => stored
                        .find(kind, &reference)?
                        .map(|v| {
                            serde_json::from_value::<fhir_model::terminology::ValueSetDef>(v)
                                .map_err(|e| unreadable(kind, &url, e))
                        })
                        .transpose()?,
                };
                let Some(vs) = vs else { continue };
                let parts: Vec<&ValueSetInclude> = vs
                    .compose
                    .iter()
                    .flat_map(|c| c.include.iter().chain(c.exclude.iter()))
                    .collect();
                for inc in parts {
                    if let Some(s) = &inc.system {
                        let system = match &inc.version {
                            Some(v) => format!("{}|{v}", canonical_url(s)),
                            None => s.clone(),
                        };
                        queue.push_back((Kind::CodeSystem, system));
                    }
                    for v in &inc.value_set {
                        queue.push_back((Kind::ValueSet, v.clone()));
                    }
                }
                out.value_sets.insert(url, vs);
            }
            Kind::ConceptMap => {
                let cm = match core.concept_map(&url) {
                    Some(cm) => Some(cm.clone()),
                    None => stored
                        .find(kind, &reference)?
                        .map(|v| serde_json::from_value(v).map_err(|e| unreadable(kind, &url, e)))
                        .transpose()?,
                };
                if let Some(cm) = cm {
                    out.concept_maps.insert(url, cm);
                }
            }
        }
    }
    supplement(&mut out, stored)?;
    Ok(out)
}

/// Applies the stored supplements of the gathered code systems to them.
fn supplement(out: &mut Terminology, stored: &dyn Stored) -> Result<(), TxError> {
    for (url, cs) in out.code_systems.iter_mut() {
        for s in stored.supplements(url)? {
            // A supplement that cannot be read adds nothing; the system still answers.
            if let Ok(s) = serde_json::from_value::<CodeSystemDef>(s) {
                cs.supplement_with(&s);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::r4;
    use serde_json::json;

    struct Fake(Vec<(Kind, Value)>);

    impl Stored for Fake {
        fn find(&self, kind: Kind, url: &str) -> Result<Option<Value>, TxError> {
            Ok(self
                .0
                .iter()
                .find(|(k, v)| *k == kind && v["url"] == url)
                .map(|(_, v)| v.clone()))
        }
    }

    #[test]
    fn a_stored_value_set_brings_its_systems_and_the_packages_copies() {
        let stored = Fake(vec![
            (
                Kind::CodeSystem,
                json!({"url": "http://x/cs", "content": "complete", "concept": [{"code": "a"}]}),
            ),
            (
                Kind::ValueSet,
                json!({"url": "http://x/vs", "compose": {"include": [
                {"system": "http://x/cs"},
                {"valueSet": ["http://hl7.org/fhir/ValueSet/administrative-gender"]}]}}),
            ),
            (
                Kind::CodeSystem,
                json!({"url": "http://hl7.org/fhir/administrative-gender", "content": "complete"}),
            ),
        ]);
        assert!(needs_gathering(r4(), Kind::ValueSet, "http://x/vs"));
        let t = gather(r4(), &stored, Kind::ValueSet, "http://x/vs").unwrap();
        assert!(t.code_system("http://x/cs").is_some());
        // The package's administrative-gender, not the stored copy without concepts.
        let gender = t
            .code_system("http://hl7.org/fhir/administrative-gender")
            .unwrap();
        assert_eq!(gender.concepts.len(), 4);
        let bad = Fake(vec![(Kind::CodeSystem, json!({"url": "http://x/bad"}))]);
        let e = gather(r4(), &bad, Kind::CodeSystem, "http://x/bad").unwrap_err();
        assert!(matches!(e, TxError::NotSupported { .. }), "{e}");
    }
}
