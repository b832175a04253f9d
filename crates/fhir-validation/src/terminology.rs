//! Bindings: codes checked against value sets expanded locally from the loaded
//! ValueSets and CodeSystems (expansions cached), and codes of locally known complete
//! CodeSystems checked for existence.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use fhir_model::structure::{Binding, BindingStrength};
use fhir_model::terminology::{CodeSystemDef, Terminology};
use fhir_model::Definitions;

use crate::issue::Severity;
use serde_json::Value;

/// A value set's codes, or why it could not be expanded.
pub type Expansion = Result<CodeSet, String>;

#[derive(Debug, Default)]
pub struct CodeSet {
    pairs: HashSet<(String, String)>,
    codes: HashSet<String>,
}

impl CodeSet {
    fn contains(&self, system: Option<&str>, code: &str) -> bool {
        match system {
            Some(s) => self.pairs.contains(&(s.to_string(), code.to_string())),
            None => self.codes.contains(code),
        }
    }
}

/// Terminology beyond the definitions packages — a server's stored code systems and
/// value sets — asked for by canonical URL when the packages do not have it, so that a
/// code system a hospital uploaded is checked like a core one.
/// A source may hold only some of a very large code system: at least the concepts of
/// the codes to check (and what lies around them).
pub trait TerminologySource: Send + Sync {
    /// A terminology that holds the code system `url`, if there is one, for checking
    /// `code`.
    fn code_system(&self, url: &str, code: &str) -> Option<Arc<Terminology>>;
    /// A terminology that holds the value set `url` and what it reaches, if any, for
    /// checking `codes`.
    fn value_set(&self, url: &str, codes: &[&str]) -> Option<Arc<Terminology>>;
}

impl std::fmt::Debug for dyn TerminologySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TerminologySource")
    }
}

/// Value set expansions by URL, computed on first use.
#[derive(Default)]
pub struct ExpansionCache {
    map: RwLock<HashMap<String, Arc<Expansion>>>,
}

impl ExpansionCache {
    pub fn clear(&self) {
        if let Ok(mut m) = self.map.write() {
            m.clear();
        }
    }

    pub fn get(&self, defs: &Definitions, url: &str) -> Arc<Expansion> {
        if let Ok(m) = self.map.read() {
            if let Some(e) = m.get(url) {
                return e.clone();
            }
        }
        let e = Arc::new(expand(defs, url));
        if let Ok(mut m) = self.map.write() {
            m.insert(url.to_string(), e.clone());
        }
        e
    }
}

fn expand(defs: &Definitions, url: &str) -> Expansion {
    expand_in(defs.terminology(), url)
}

fn expand_in(t: &Terminology, url: &str) -> Expansion {
    let codes = t.expand(url).map_err(|e| e.to_string())?;
    if codes.is_empty() {
        return Err(format!(
            "value set {url} has no codes that can be listed locally"
        ));
    }
    let mut set = CodeSet::default();
    for c in codes {
        set.codes.insert(c.code.clone());
        set.pairs.insert((c.system, c.code));
    }
    Ok(set)
}

/// The codes a coded value carries: `(system, code)` per coding.
pub fn codings_of<'v>(type_code: &str, v: &'v Value) -> Option<Vec<(Option<&'v str>, &'v str)>> {
    let coding = |c: &'v Value| {
        let code = c.get("code").and_then(Value::as_str)?;
        Some((c.get("system").and_then(Value::as_str), code))
    };
    match type_code {
        "code" | "string" | "uri" => v.as_str().map(|c| vec![(None, c)]),
        "Coding" => Some(coding(v).into_iter().collect()),
        "CodeableConcept" => Some(
            v.get("coding")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(coding)
                .collect(),
        ),
        "Quantity" => {
            let code = v.get("code").and_then(Value::as_str)?;
            Some(vec![(v.get("system").and_then(Value::as_str), code)])
        }
        _ => None,
    }
}

/// What a binding check concluded.
pub enum BindingResult {
    Ok,
    /// Not in the value set (message).
    NotInValueSet(String),
    /// The value set cannot be expanded here (message).
    CannotCheck(String),
}

/// Checks the codes of a value of `type_code` against `binding`.
/// `stored`: where value sets the packages lack are looked for.
pub fn check_binding(
    defs: &Definitions,
    cache: &ExpansionCache,
    stored: Option<&dyn TerminologySource>,
    binding: &Binding,
    type_code: &str,
    v: &Value,
) -> BindingResult {
    let Some(url) = binding.value_set.as_deref() else {
        return BindingResult::Ok;
    };
    let url = fhir_model::terminology::canonical_url(url);
    let Some(codes) = codings_of(type_code, v) else {
        return BindingResult::Ok;
    };
    if type_code == "Quantity" && codes.is_empty() {
        return BindingResult::Ok;
    }
    let strength = match binding.strength {
        BindingStrength::Required => "is required",
        _ => "should come",
    };
    if codes.is_empty() {
        if type_code == "CodeableConcept" && binding.strength == BindingStrength::Required {
            return BindingResult::NotInValueSet(format!(
                "No code provided, and a code {strength} from the value set '{url}'"
            ));
        }
        return BindingResult::Ok;
    }
    let mut expansion = cache.get(defs, url);
    if expansion.is_err() && defs.terminology().value_set(url).is_none() {
        let named: Vec<&str> = codes.iter().map(|(_, c)| *c).collect();
        if let Some(t) = stored.and_then(|s| s.value_set(url, &named)) {
            expansion = Arc::new(expand_in(&t, url));
        }
    }
    let set = match &*expansion {
        Ok(set) => set,
        Err(why) => {
            return BindingResult::CannotCheck(format!(
                "The code(s) could not be checked against value set '{url}': {why}"
            ))
        }
    };
    if codes.iter().any(|(s, c)| set.contains(*s, c)) {
        return BindingResult::Ok;
    }
    let shown: Vec<String> = codes
        .iter()
        .map(|(s, c)| match s {
            Some(s) => format!("{s}#{c}"),
            None => format!("'{c}'"),
        })
        .collect();
    BindingResult::NotInValueSet(format!(
        "The code(s) provided ({}) are not in the value set '{url}', and a code {strength} from this value set",
        shown.join(", ")
    ))
}

/// A display that is not the display of the code in a CodeSystem known here in full
/// (compared ignoring case and spacing).
pub fn wrong_display(
    cs: &CodeSystemDef,
    system: &str,
    code: &str,
    display: &str,
) -> Option<String> {
    if cs.content != "complete" {
        return None;
    }
    let expected = cs.find(code)?.display.as_deref()?;
    let norm = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    (norm(expected) != norm(display)).then(|| {
        format!("Wrong Display Name '{display}' for {system}#{code}. Valid display is '{expected}'")
    })
}

/// A code that a CodeSystem known here does not have: an error when the system is
/// known in full (`complete`), a warning when only a `fragment` of it is (HL7's
/// validator's message and severity); nothing for the other contents.
pub fn unknown_code(cs: &CodeSystemDef, system: &str, code: &str) -> Option<(Severity, String)> {
    let fragment = cs.content == "fragment";
    if !(cs.content == "complete" || fragment) || cs.concepts.is_empty() {
        return None;
    }
    let found = match cs.case_sensitive {
        Some(false) => cs
            .all_codes()
            .iter()
            .any(|(c, _)| c.eq_ignore_ascii_case(code)),
        _ => cs.find(code).is_some(),
    };
    if found {
        return None;
    }
    Some(if fragment {
        let version = cs
            .version
            .as_deref()
            .map(|v| format!(" version '{v}'"))
            .unwrap_or_default();
        (
            Severity::Warning,
            format!("Unknown Code '{code}' in the CodeSystem '{system}'{version} - note that the code system is labeled as a fragment, so the code may be valid in some other fragment"),
        )
    } else {
        (
            Severity::Error,
            format!("Unknown code '{code}' in the CodeSystem '{system}'"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CS: &str = "http://example.org/cs/stored";
    const VS: &str = "http://example.org/vs/stored";

    /// What a server stores: a code system and a value set of all of it.
    struct Stored(Arc<Terminology>);

    impl TerminologySource for Stored {
        fn code_system(&self, url: &str, _: &str) -> Option<Arc<Terminology>> {
            self.0.code_system(url).map(|_| self.0.clone())
        }
        fn value_set(&self, url: &str, _: &[&str]) -> Option<Arc<Terminology>> {
            self.0.value_set(url).map(|_| self.0.clone())
        }
    }

    fn stored() -> Stored {
        let mut t = Terminology::default();
        let cs = json!({"url": CS, "content": "complete", "concept": [{"code": "a", "display": "Alpha"}]});
        let vs = json!({"url": VS, "compose": {"include": [{"system": CS}]}});
        t.code_systems
            .insert(CS.into(), serde_json::from_value(cs).unwrap());
        t.value_sets
            .insert(VS.into(), serde_json::from_value(vs).unwrap());
        Stored(Arc::new(t))
    }

    #[test]
    fn bindings_to_stored_value_sets_are_checked() {
        let defs = Definitions::r4();
        let cache = ExpansionCache::default();
        let binding = Binding {
            strength: BindingStrength::Required,
            value_set: Some(VS.into()),
        };
        let source = stored();
        let check = |code: &str, s: Option<&dyn TerminologySource>| {
            let v = json!({"coding": [{"system": CS, "code": code}]});
            check_binding(defs, &cache, s, &binding, "CodeableConcept", &v)
        };
        assert!(matches!(check("a", Some(&source)), BindingResult::Ok));
        assert!(matches!(
            check("b", Some(&source)),
            BindingResult::NotInValueSet(m) if m.contains(VS)
        ));
        assert!(matches!(check("a", None), BindingResult::CannotCheck(_)));
    }

    #[test]
    fn codes_and_displays_of_a_code_system_are_checked() {
        let source = stored();
        let t = source.code_system(CS, "a").unwrap();
        let cs = t.code_system(CS).unwrap();
        assert_eq!(unknown_code(cs, CS, "a"), None);
        assert!(unknown_code(cs, CS, "zz")
            .unwrap()
            .1
            .contains("Unknown code 'zz'"));
        assert!(wrong_display(cs, CS, "a", "Beta")
            .unwrap()
            .contains("Valid display is 'Alpha'"));
    }

    #[test]
    fn unknown_codes_of_a_fragment_are_warnings() {
        let cs: CodeSystemDef = serde_json::from_value(
            json!({"url": CS, "version": "3", "content": "fragment", "concept": [{"code": "a"}]}),
        )
        .unwrap();
        assert_eq!(unknown_code(&cs, CS, "a"), None);
        let (severity, message) = unknown_code(&cs, CS, "b").unwrap();
        assert_eq!(severity, Severity::Warning);
        assert_eq!(message, format!("Unknown Code 'b' in the CodeSystem '{CS}' version '3' - note that the code system is labeled as a fragment, so the code may be valid in some other fragment"));
    }
}
