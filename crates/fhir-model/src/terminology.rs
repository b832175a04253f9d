//! ValueSets and CodeSystems, kept in the compact form needed to expand the value sets
//! that can be expanded locally: whole systems, enumerated codes, and the filters of
//! valueset.html over a code system's hierarchy (nested concepts and the `child` and
//! `parent` properties) and concept properties (`filter.rs`); the ValueSets themselves
//! (`value_set.rs`); and ConceptMaps (`concept_map.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Deserialize;

mod concept_map;
mod filter;
mod memo;
pub mod rows;
mod value_set;

pub use concept_map::{
    ConceptMapDef, ConceptMapGroup, MapElement, MapTarget, OtherElement, Unmapped,
};
pub use value_set::{
    ConceptReference, ExpansionContains, ValueSetCompose, ValueSetDef, ValueSetExpansion,
    ValueSetFilter, ValueSetInclude,
};

/// A concept of a CodeSystem, with its nested concepts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Concept {
    pub code: String,
    #[serde(default)]
    pub display: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub definition: Option<String>,
    #[serde(default, rename = "concept")]
    pub children: Vec<Concept>,
    /// `concept.property`, each value as text (`notSelectable` → `true`).
    #[serde(default, rename = "property")]
    pub properties: Vec<ConceptProperty>,
    /// `concept.designation`: other names, in other languages or for other uses.
    #[serde(default, rename = "designation")]
    pub designations: Vec<Designation>,
}

/// One `CodeSystem.concept.designation`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Designation {
    #[serde(default)]
    pub language: Option<String>,
    /// A Coding: what the designation is for (e.g. SNOMED CT's "synonym").
    #[serde(default, rename = "use")]
    pub use_: Option<serde_json::Value>,
    /// Required by the spec; empty where a package leaves it out (the code system is
    /// still read).
    #[serde(default)]
    pub value: String,
}

/// One `CodeSystem.concept.property`: its code and its value as text, and the type
/// it was given as (`Code`, `String`, `Boolean`, `Integer`, `DateTime`, `Decimal`,
/// `Coding` — of a Coding, the text is its code).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "RawProperty")]
pub struct ConceptProperty {
    pub code: String,
    pub value: String,
    pub kind: PropertyKind,
}

/// The type a concept property's value was given as: the `value[x]` suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PropertyKind(pub &'static str);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProperty {
    code: String,
    value_code: Option<String>,
    value_string: Option<String>,
    value_boolean: Option<bool>,
    value_integer: Option<i64>,
    value_date_time: Option<String>,
    value_decimal: Option<serde_json::Number>,
    value_coding: Option<ConceptReference>,
}

impl From<RawProperty> for ConceptProperty {
    fn from(r: RawProperty) -> Self {
        let typed = |kind: &'static str| move |v: String| (PropertyKind(kind), v);
        let (kind, value) = r
            .value_code
            .map(typed("Code"))
            .or(r.value_string.map(typed("String")))
            .or(r.value_date_time.map(typed("DateTime")))
            .or(r.value_boolean.map(|b| b.to_string()).map(typed("Boolean")))
            .or(r.value_integer.map(|i| i.to_string()).map(typed("Integer")))
            .or(r.value_decimal.map(|d| d.to_string()).map(typed("Decimal")))
            .or(r.value_coding.map(|c| c.code).map(typed("Coding")))
            .unwrap_or((PropertyKind("String"), String::new()));
        ConceptProperty {
            code: r.code,
            value,
            kind,
        }
    }
}

impl Concept {
    /// Whether the concept is no longer active: its `inactive` property is true or its
    /// `status` is `retired` or `inactive` (codesystem-concept-properties).
    pub fn inactive(&self) -> bool {
        self.property("inactive").any(|v| v == "true")
            || self
                .property("status")
                .any(|v| v == "retired" || v == "inactive")
    }

    /// Whether the concept may not be used in data (`notSelectable`: an expansion's
    /// `abstract`).
    pub fn not_selectable(&self) -> bool {
        self.property("notSelectable").any(|v| v == "true")
    }

    /// The designation in `language` (`de` matches `de-CH`), if any.
    pub fn designation_in(&self, language: &str) -> Option<&str> {
        let find = |fits: &dyn Fn(&str) -> bool| {
            self.designations
                .iter()
                .find(|d| d.language.as_deref().is_some_and(fits))
                .map(|d| d.value.as_str())
        };
        // The language asked or a variant of it (`de` finds `de-CH`), else a more
        // general one (`es-ES` finds `es`), as language ranges are matched (RFC 4647).
        find(&|l| language_within(l, language)).or_else(|| find(&|l| language_within(language, l)))
    }

    /// The values of property `code`.
    pub fn property<'a>(&'a self, code: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.properties
            .iter()
            .filter(move |p| p.code == code)
            .map(|p| p.value.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "RawCodeSystem")]
pub struct CodeSystemDef {
    pub url: String,
    pub version: Option<String>,
    pub name: Option<String>,
    /// `complete`, `fragment`, `not-present`, `example`, `supplement`.
    pub content: String,
    /// A supplement's code system (canonical, `|version` allowed): the designations
    /// and properties of its concepts are added to that system's.
    pub supplements: Option<String>,
    pub case_sensitive: Option<bool>,
    /// The concepts, their properties under the codes of codesystem-concept-properties
    /// (`notSelectable`, `inactive`, `status`, …) even where this code system declares
    /// one of those under a code of its own (`not-selectable` with the URI
    /// `…concept-properties#notSelectable`).
    pub concepts: Vec<Concept>,
    /// `draft`, `active`, `retired`, `unknown`.
    pub status: Option<String>,
    pub experimental: Option<bool>,
    /// The `structuredefinition-standards-status` extension (`deprecated`,
    /// `withdrawn`, …).
    pub standards_status: Option<String>,
    /// This code system's own codes for standard concept properties, and the standard
    /// codes they stand for (a filter may name either).
    pub aliases: HashMap<String, String>,
}

/// The URIs of the concept properties every code system may use
/// (codesystem-concept-properties), the standard code after the `#`.
const CONCEPT_PROPERTIES: &str = "http://hl7.org/fhir/concept-properties#";

/// A CodeSystem as read, before its declared property codes are resolved.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCodeSystem {
    url: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    name: Option<String>,
    content: String,
    #[serde(default)]
    supplements: Option<String>,
    #[serde(default)]
    case_sensitive: Option<bool>,
    #[serde(default, rename = "concept")]
    concepts: Vec<Concept>,
    #[serde(default, deserialize_with = "lenient")]
    status: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    experimental: Option<bool>,
    #[serde(default, rename = "extension", deserialize_with = "standards_status")]
    standards_status: Option<String>,
    /// `CodeSystem.property`: each declared code and its URI.
    #[serde(default, rename = "property", deserialize_with = "lenient")]
    declared: Option<Vec<DeclaredProperty>>,
}

#[derive(Deserialize)]
struct DeclaredProperty {
    code: String,
    #[serde(default)]
    uri: Option<String>,
}

impl From<RawCodeSystem> for CodeSystemDef {
    fn from(r: RawCodeSystem) -> Self {
        let aliases: HashMap<String, String> = r
            .declared
            .unwrap_or_default()
            .into_iter()
            .filter_map(|d| {
                let standard = d.uri?.strip_prefix(CONCEPT_PROPERTIES)?.to_string();
                (standard != d.code).then_some((d.code, standard))
            })
            .collect();
        let mut concepts = r.concepts;
        if !aliases.is_empty() {
            rename_properties(&mut concepts, &aliases);
        }
        CodeSystemDef {
            url: r.url,
            version: r.version,
            name: r.name,
            content: r.content,
            supplements: r.supplements,
            case_sensitive: r.case_sensitive,
            concepts,
            status: r.status,
            experimental: r.experimental,
            standards_status: r.standards_status,
            aliases,
        }
    }
}

/// Gives the concepts' properties their standard codes.
fn rename_properties(concepts: &mut [Concept], aliases: &HashMap<String, String>) {
    for c in concepts {
        for p in &mut c.properties {
            if let Some(standard) = aliases.get(&p.code) {
                p.code = standard.clone();
            }
        }
        rename_properties(&mut c.children, aliases);
    }
}

/// The extension that gives an artifact's standards status.
pub const STANDARDS_STATUS: &str =
    "http://hl7.org/fhir/StructureDefinition/structuredefinition-standards-status";

/// The standards status among a resource's extensions (none when they are not a list:
/// what only reports a status never makes a code system unreadable).
fn standards_status<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let all = serde_json::Value::deserialize(d)?;
    Ok(all
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["url"] == STANDARDS_STATUS)
        .and_then(|e| e["valueCode"].as_str())
        .map(str::to_string))
}

/// A value read only to be reported (a status, a definition): of another type than
/// expected, it is left out rather than making the resource unreadable.
fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    Ok(serde_json::from_value(serde_json::Value::deserialize(d)?).ok())
}

impl CodeSystemDef {
    /// Finds a concept anywhere in the hierarchy.
    pub fn find(&self, code: &str) -> Option<&Concept> {
        fn walk<'a>(cs: &'a [Concept], code: &str) -> Option<&'a Concept> {
            cs.iter().find_map(|c| {
                if c.code == code {
                    Some(c)
                } else {
                    walk(&c.children, code)
                }
            })
        }
        walk(&self.concepts, code)
    }

    /// Adds the designations and properties a supplement gives to the concepts it
    /// names (a supplement may add nothing else: codes it names that this system does
    /// not have are left out, and `parent`/`child` properties, which would change the
    /// hierarchy). A supplement of another version is not applied.
    pub fn supplement_with(&mut self, supplement: &CodeSystemDef) {
        let Some(target) = supplement.supplements.as_deref() else {
            return;
        };
        let version = target.split_once('|').map(|(_, v)| v);
        if canonical_url(target) != self.url
            || version.is_some_and(|v| self.version.as_deref() != Some(v))
        {
            return;
        }
        fn walk<'a>(cs: &'a mut [Concept], code: &str) -> Option<&'a mut Concept> {
            for c in cs.iter_mut() {
                if c.code == code {
                    return Some(c);
                }
                if let Some(found) = walk(&mut c.children, code) {
                    return Some(found);
                }
            }
            None
        }
        for added in supplement.all_concepts() {
            if let Some(c) = walk(&mut self.concepts, &added.code) {
                c.designations.extend(added.designations.iter().cloned());
                // A supplement may not change the meaning: not the hierarchy.
                let kept = added
                    .properties
                    .iter()
                    .filter(|p| p.code != "parent" && p.code != "child");
                c.properties.extend(kept.cloned());
            }
        }
    }

    /// Every code with its display, depth first.
    pub fn all_codes(&self) -> Vec<(&str, Option<&str>)> {
        fn walk<'a>(cs: &'a [Concept], out: &mut Vec<(&'a str, Option<&'a str>)>) {
            for c in cs {
                out.push((&c.code, c.display.as_deref()));
                walk(&c.children, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.concepts, &mut out);
        out
    }

    /// Every concept, depth first.
    pub fn all_concepts(&self) -> Vec<&Concept> {
        fn walk<'a>(cs: &'a [Concept], out: &mut Vec<&'a Concept>) {
            for c in cs {
                out.push(c);
                walk(&c.children, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.concepts, &mut out);
        out
    }

    /// Each code's direct children: nested concepts, codes its `child` property names,
    /// and concepts whose `parent` property names it.
    pub fn children_index(&self) -> HashMap<&str, Vec<&str>> {
        let mut index: HashMap<&str, Vec<&str>> = HashMap::new();
        for c in self.all_concepts() {
            let kids = index.entry(c.code.as_str()).or_default();
            kids.extend(c.children.iter().map(|k| k.code.as_str()));
            kids.extend(c.property("child"));
            for parent in c.property("parent") {
                index.entry(parent).or_default().push(c.code.as_str());
            }
        }
        index
    }

    /// The concept itself and the concepts above it, up to the roots.
    pub fn ancestors_and_self(&self, code: &str) -> Vec<&str> {
        let index = self.children_index();
        let mut parents: HashMap<&str, Vec<&str>> = HashMap::new();
        for (p, kids) in &index {
            for k in kids {
                parents.entry(k).or_default().push(p);
            }
        }
        let Some(start) = self.find(code) else {
            return Vec::new();
        };
        closure(start.code.as_str(), &parents)
    }

    /// The concept itself and all its descendants (`is-a`), with their displays.
    pub fn descendants_and_self(&self, code: &str) -> Vec<(&str, Option<&str>)> {
        let Some(start) = self.find(code) else {
            return Vec::new();
        };
        let index = self.children_index();
        let displays: HashMap<&str, Option<&str>> = self
            .all_concepts()
            .into_iter()
            .map(|c| (c.code.as_str(), c.display.as_deref()))
            .collect();
        closure(start.code.as_str(), &index)
            .into_iter()
            .filter_map(|c| displays.get(c).map(|d| (c, *d)))
            .collect()
    }
}

/// Whether language tag `tag` is `range` or a variant of it (`de-CH` is within `de`),
/// ignoring case (RFC 4647 basic filtering).
pub fn language_within(tag: &str, range: &str) -> bool {
    let (t, r) = (tag.as_bytes(), range.as_bytes());
    t.eq_ignore_ascii_case(r)
        || (t.len() > r.len() && t[..r.len()].eq_ignore_ascii_case(r) && t[r.len()] == b'-')
}

/// `start` and every code reached from it through `edges`, each once, in the order
/// reached.
fn closure<'a>(start: &'a str, edges: &HashMap<&'a str, Vec<&'a str>>) -> Vec<&'a str> {
    let mut seen = HashSet::from([start]);
    let mut out = vec![start];
    let mut i = 0;
    while i < out.len() {
        for next in edges.get(out[i]).into_iter().flatten() {
            if seen.insert(*next) {
                out.push(next);
            }
        }
        i += 1;
    }
    out
}

/// A code of an expanded value set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExpandedCode {
    pub system: String,
    pub code: String,
    pub display: Option<String>,
}

impl ExpandedCode {
    /// System and code: what makes two codes the same.
    fn key(&self) -> (&str, &str) {
        (&self.system, &self.code)
    }
}

/// Why a value set could not be expanded here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpansionError {
    #[error("value set {0} is not known")]
    UnknownValueSet(String),
    #[error("code system {0} is not available locally")]
    UnknownCodeSystem(String),
    #[error("value set filter {0} is not supported locally")]
    UnsupportedFilter(String),
}

/// ValueSets and CodeSystems by canonical URL. Expansions are memoized
/// ([`Terminology::expand_shared`]): fill the maps before the first expansion.
#[derive(Debug, Default, Clone)]
pub struct Terminology {
    pub value_sets: HashMap<String, ValueSetDef>,
    pub code_systems: HashMap<String, CodeSystemDef>,
    pub concept_maps: HashMap<String, ConceptMapDef>,
    memo: memo::Memo,
}

/// Strips a `|version` suffix from a canonical reference.
pub fn canonical_url(url: &str) -> &str {
    url.split('|').next().unwrap_or(url)
}

impl Terminology {
    pub fn value_set(&self, url: &str) -> Option<&ValueSetDef> {
        self.value_sets.get(canonical_url(url))
    }

    pub fn concept_map(&self, url: &str) -> Option<&ConceptMapDef> {
        self.concept_maps.get(canonical_url(url))
    }

    pub fn code_system(&self, url: &str) -> Option<&CodeSystemDef> {
        self.code_systems.get(canonical_url(url))
    }

    /// Expands a value set from its compose (or its shipped expansion).
    pub fn expand(&self, url: &str) -> Result<Vec<ExpandedCode>, ExpansionError> {
        Ok(self.expand_shared(url)?.as_ref().clone())
    }

    /// Drops the memoized expansions (after the maps changed).
    pub fn forget_expansions(&mut self) {
        self.memo = memo::Memo::default();
    }

    /// [`Terminology::expand`], computed once per value set and shared.
    pub fn expand_shared(&self, url: &str) -> Result<Arc<Vec<ExpandedCode>>, ExpansionError> {
        let key = canonical_url(url);
        if let Some(codes) = self.memo.get(key) {
            return Ok(codes);
        }
        let codes = Arc::new(self.expand_depth(url, 0)?);
        self.memo.keep(key, &codes);
        Ok(codes)
    }

    fn expand_depth(&self, url: &str, depth: usize) -> Result<Vec<ExpandedCode>, ExpansionError> {
        let vs = self
            .value_set(url)
            .filter(|_| depth < 8)
            .ok_or_else(|| ExpansionError::UnknownValueSet(url.to_string()))?;
        if let Some(exp) = &vs.expansion {
            let mut out = Vec::new();
            flatten_expansion(&exp.contains, &mut out);
            return Ok(out);
        }
        let Some(compose) = &vs.compose else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for inc in &compose.include {
            out.extend(self.expand_include(inc, depth)?);
        }
        for exc in &compose.exclude {
            let gone = self.expand_include(exc, depth)?;
            let gone: HashSet<(&str, &str)> = gone.iter().map(ExpandedCode::key).collect();
            out.retain(|c| !gone.contains(&c.key()));
        }
        let mut seen = HashSet::new();
        out.retain(|c| seen.insert((c.system.clone(), c.code.clone())));
        if compose.inactive == Some(false) {
            self.leave_out_inactive(&mut out);
        }
        Ok(out)
    }

    /// `compose.inactive: false`: the codes their code systems say are inactive go.
    fn leave_out_inactive(&self, codes: &mut Vec<ExpandedCode>) {
        let mut inactive: HashMap<String, HashSet<String>> = HashMap::new();
        for c in codes.iter() {
            if inactive.contains_key(&c.system) {
                continue;
            }
            let set = self
                .code_system(&c.system)
                .map(|cs| {
                    cs.all_concepts()
                        .into_iter()
                        .filter(|k| k.inactive())
                        .map(|k| k.code.clone())
                        .collect()
                })
                .unwrap_or_default();
            inactive.insert(c.system.clone(), set);
        }
        codes.retain(|c| !inactive[&c.system].contains(&c.code));
    }

    fn expand_include(
        &self,
        inc: &ValueSetInclude,
        depth: usize,
    ) -> Result<Vec<ExpandedCode>, ExpansionError> {
        let mut codes: Option<Vec<ExpandedCode>> = None;
        if let Some(system) = &inc.system {
            codes = Some(self.expand_system_part(system, inc)?);
        }
        for vs in &inc.value_set {
            let other = self.expand_depth(vs, depth + 1)?;
            codes = Some(match codes {
                None => other,
                Some(mine) => {
                    let theirs: HashSet<(&str, &str)> =
                        other.iter().map(ExpandedCode::key).collect();
                    mine.into_iter()
                        .filter(|c| theirs.contains(&c.key()))
                        .collect()
                }
            });
        }
        Ok(codes.unwrap_or_default())
    }

    fn expand_system_part(
        &self,
        system: &str,
        inc: &ValueSetInclude,
    ) -> Result<Vec<ExpandedCode>, ExpansionError> {
        let make = |code: &str, display: Option<&str>| ExpandedCode {
            system: system.to_string(),
            code: code.to_string(),
            display: display.map(str::to_string),
        };
        if !inc.concept.is_empty() {
            // A listed code without a display of its own has its code system's (its
            // displays by code, made once for the include).
            let cs = self.code_system(system);
            let mut displays: Option<HashMap<&str, &str>> = None;
            return Ok(inc
                .concept
                .iter()
                .map(|c| {
                    let mut held = || {
                        let map = displays.get_or_insert_with(|| {
                            cs.map(|cs| cs.all_codes())
                                .unwrap_or_default()
                                .into_iter()
                                .filter_map(|(code, d)| d.map(|d| (code, d)))
                                .collect()
                        });
                        map.get(c.code.as_str()).copied()
                    };
                    let display = c.display.as_deref().or_else(&mut held);
                    make(&c.code, display)
                })
                .collect());
        }
        let cs = self
            .code_system(system)
            .filter(|cs| cs.content == "complete" || !cs.concepts.is_empty())
            .ok_or_else(|| ExpansionError::UnknownCodeSystem(system.to_string()))?;
        let mut codes: Vec<ExpandedCode> = cs
            .all_codes()
            .into_iter()
            .map(|(c, d)| make(c, d))
            .collect();
        for f in &inc.filter {
            let keep = filter::apply(cs, f)?;
            codes.retain(|c| keep.contains(c.code.as_str()));
        }
        Ok(codes)
    }
}

fn flatten_expansion(contains: &[ExpansionContains], out: &mut Vec<ExpandedCode>) {
    for c in contains {
        if let (Some(system), Some(code)) = (&c.system, &c.code) {
            out.push(ExpandedCode {
                system: system.clone(),
                code: code.clone(),
                display: c.display.clone(),
            });
        }
        flatten_expansion(&c.contains, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cs(v: serde_json::Value) -> CodeSystemDef {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn supplements_add_designations_not_hierarchy_and_match_versions() {
        let mut base = cs(
            json!({"url": "http://x/cs", "version": "2", "content": "complete",
            "concept": [{"code": "a", "concept": [{"code": "b"}]}]}),
        );
        let supplement = cs(json!({"url": "http://x/sup", "content": "supplement",
            "supplements": "http://x/cs|2",
            "concept": [{"code": "b", "designation": [{"language": "es", "value": "Be"}],
                "property": [{"code": "parent", "valueCode": "zz"}, {"code": "weight", "valueInteger": 3}]},
                {"code": "unknown", "designation": [{"value": "none"}]}]}));
        base.supplement_with(&supplement);
        let b = base.find("b").unwrap();
        assert_eq!(b.designation_in("es-ES"), Some("Be"));
        assert_eq!(b.property("weight").collect::<Vec<_>>(), ["3"]);
        assert_eq!(b.property("parent").count(), 0);
        assert!(base.find("unknown").is_none());
        let other_version = cs(json!({"url": "http://x/sup1", "content": "supplement",
            "supplements": "http://x/cs|1",
            "concept": [{"code": "a", "designation": [{"language": "de", "value": "Ah"}]}]}));
        base.supplement_with(&other_version);
        assert_eq!(base.find("a").unwrap().designation_in("de"), None);
    }
}
