//! Element ids (`Element.id`) are unique within a resource: the HL7 Java validator
//! reports a repeated one ("Duplicate id value") where it occurs again. A nested
//! resource (contained, a Bundle entry's) has ids of its own, and a resource's logical
//! id is not an element id. A StructureDefinition's snapshot and differential each
//! hold the element ids of one structure, so each is a scope of its own.

use std::collections::HashSet;

use fhir_model::IssueType;
use serde_json::Value;

use crate::issue::Issue;
use crate::location::Loc;
use crate::walk::Run;

impl Run<'_> {
    /// Reports the element ids of `resource` (at `at`) that occur more than once.
    pub(crate) fn duplicate_element_ids(&mut self, resource: &Value, at: &Loc<'_>) {
        let Some(members) = resource.as_object() else {
            return;
        };
        let mut seen = HashSet::new();
        let mut path = at.to_string();
        for (k, v) in members.iter().filter(|(k, _)| *k != "id") {
            let len = path.len();
            path.push('.');
            path.push_str(k);
            if matches!(k.as_str(), "snapshot" | "differential") {
                self.ids_in(v, &mut path, &mut HashSet::new());
            } else {
                self.ids_in(v, &mut path, &mut seen);
            }
            path.truncate(len);
        }
    }

    fn ids_in<'v>(&mut self, v: &'v Value, path: &mut String, seen: &mut HashSet<&'v str>) {
        match v {
            Value::Object(o) if o.contains_key("resourceType") => {}
            Value::Object(o) => {
                if let Some(id) = o.get("id").and_then(Value::as_str) {
                    if !seen.insert(id) {
                        let m = format!("Duplicate id value '{id}'");
                        self.push(Issue::error(IssueType::Invalid, path.clone(), m));
                    }
                }
                for (k, x) in o.iter().filter(|(k, _)| *k != "id") {
                    let len = path.len();
                    path.push('.');
                    path.push_str(k.trim_start_matches('_'));
                    self.ids_in(x, path, seen);
                    path.truncate(len);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    self.ids_in(x, path, seen);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }
}
