//! What an expansion or a validation drew on, and what their status says: the code
//! systems a value set uses (through the value sets it includes too), and the notes
//! HL7's terminology servers give about them — an experimental or draft code system, a
//! deprecated or withdrawn code system or value set (`structuredefinition-standards-
//! status`) — as `warning-…` expansion parameters and `status-check` issues.

use fhir_model::terminology::{canonical_url, Terminology};

/// `url|version` (or the URL alone when there is no version).
fn label(url: &str, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("{}|{v}", canonical_url(url)),
        None => url.to_string(),
    }
}

/// The value sets `url` draws on, itself first (at most 8 levels of includes).
fn value_sets(t: &Terminology, url: &str) -> Vec<String> {
    let mut out = vec![url.to_string()];
    let mut todo = vec![(url.to_string(), 0)];
    while let Some((url, depth)) = todo.pop() {
        let Some(compose) = t.value_set(&url).and_then(|v| v.compose.as_ref()) else {
            continue;
        };
        for inc in compose.include.iter().filter(|_| depth < 8) {
            for v in &inc.value_set {
                if !out.contains(v) {
                    out.push(v.clone());
                    todo.push((v.clone(), depth + 1));
                }
            }
        }
    }
    out
}

/// The code systems a value set draws on, each as `url|version` when the version is
/// known: the expansion's `used-codesystem` (and R4's `version`) parameters.
pub(crate) fn used_code_systems(t: &Terminology, url: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for vs in value_sets(t, url) {
        let Some(compose) = t.value_set(&vs).and_then(|v| v.compose.as_ref()) else {
            continue;
        };
        for system in compose
            .include
            .iter()
            .filter_map(|i| i.system.as_ref().map(|s| (s, i)))
        {
            let (system, inc) = system;
            let version = inc
                .version
                .clone()
                .or_else(|| t.code_system(system).and_then(|cs| cs.version.clone()));
            let used = label(system, version.as_deref());
            if !out.contains(&used) {
                out.push(used);
            }
        }
    }
    out
}

/// A note about the status of something used: `kind` (`experimental`, `draft`,
/// `deprecated`, `withdrawn`), of a `CodeSystem` or `ValueSet`, named `url|version`.
pub(crate) struct Note {
    pub kind: &'static str,
    pub resource: &'static str,
    pub label: String,
}

impl Note {
    /// As an expansion parameter (`warning-deprecated` …).
    pub fn parameter(&self) -> serde_json::Value {
        serde_json::json!({"name": format!("warning-{}", self.kind), "valueUri": self.label})
    }

    /// As the text of a `status-check` issue.
    pub fn text(&self) -> String {
        format!(
            "Reference to {} {} {}",
            self.kind, self.resource, self.label
        )
    }
}

fn standards(status: Option<&str>) -> Option<&'static str> {
    match status {
        Some("deprecated") => Some("deprecated"),
        Some("withdrawn") => Some("withdrawn"),
        _ => None,
    }
}

/// The notes about the code systems and value sets value set `url` draws on. An
/// experimental (or draft) code system is worth a note only from a value set that is
/// not experimental (draft) itself.
pub(crate) fn notes(t: &Terminology, url: &str) -> Vec<Note> {
    let mut out = Vec::new();
    let top = t.value_set(url);
    let experimental = top.is_some_and(|v| v.experimental == Some(true));
    let draft = top.is_some_and(|v| v.status.as_deref() == Some("draft"));
    for system in used_code_systems(t, url) {
        let Some(cs) = t.code_system(&system) else {
            continue;
        };
        let mut kinds = Vec::new();
        if cs.experimental == Some(true) && !experimental {
            kinds.push("experimental");
        }
        if cs.status.as_deref() == Some("draft") && !draft {
            kinds.push("draft");
        }
        kinds.extend(standards(cs.standards_status.as_deref()));
        out.extend(kinds.into_iter().map(|kind| Note {
            kind,
            resource: "CodeSystem",
            label: system.clone(),
        }));
    }
    for vs in value_sets(t, url) {
        let Some(def) = t.value_set(&vs) else {
            continue;
        };
        out.extend(standards(def.standards_status.as_deref()).map(|kind| Note {
            kind,
            resource: "ValueSet",
            label: label(&def.url, def.version.as_deref()),
        }));
    }
    out
}
