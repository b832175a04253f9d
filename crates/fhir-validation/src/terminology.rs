//! Bindings: codes checked against value sets expanded locally from the loaded
//! ValueSets and CodeSystems (expansions cached), and codes of locally known complete
//! CodeSystems checked for existence.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use fhir_model::structure::{Binding, BindingStrength};
use fhir_model::Definitions;
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
    let codes = defs.terminology().expand(url).map_err(|e| e.to_string())?;
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
pub fn check_binding(
    defs: &Definitions,
    cache: &ExpansionCache,
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
    let expansion = cache.get(defs, url);
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
    defs: &Definitions,
    system: &str,
    code: &str,
    display: &str,
) -> Option<String> {
    let cs = defs.code_system(system)?;
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

/// A code of a CodeSystem known here in full that does not exist there.
pub fn unknown_code(defs: &Definitions, system: &str, code: &str) -> Option<String> {
    let cs = defs.code_system(system)?;
    if cs.content != "complete" || cs.concepts.is_empty() {
        return None;
    }
    let found = match cs.case_sensitive {
        Some(false) => cs
            .all_codes()
            .iter()
            .any(|(c, _)| c.eq_ignore_ascii_case(code)),
        _ => cs.find(code).is_some(),
    };
    (!found).then(|| format!("Unknown code '{code}' in the CodeSystem '{system}'"))
}
