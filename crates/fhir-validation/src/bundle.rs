//! Bundle rules the specification states in prose: entry `fullUrl`s are absolute, and
//! each link relation occurs once.

use std::collections::HashSet;

use fhir_model::IssueType;
use serde_json::Value;

use crate::issue::Issue;
use crate::location::{Loc, Step};
use crate::walk::Run;

impl Run<'_> {
    pub(crate) fn bundle_rules(&mut self, bundle: &Value, at: &Loc<'_>) {
        let entries = bundle.get("entry").and_then(Value::as_array);
        let entry_step = at.then(Step::Name("entry"));
        for (i, e) in entries.into_iter().flatten().enumerate() {
            let Some(url) = e.get("fullUrl").and_then(Value::as_str) else {
                continue;
            };
            if !url.contains(':') {
                let here = entry_step.then(Step::Index(i));
                let m = format!("The fullUrl must be an absolute URL (not '{url}')");
                let loc = here.then(Step::Name("fullUrl"));
                self.push(Issue::error(IssueType::Invalid, loc.to_string(), m));
            }
        }
        let links = bundle.get("link").and_then(Value::as_array);
        let mut seen = HashSet::new();
        for (i, l) in links.into_iter().flatten().enumerate() {
            let Some(rel) = l.get("relation").and_then(Value::as_str) else {
                continue;
            };
            if !seen.insert(rel) {
                let m = format!("The link relationship type '{rel}' can only occur once");
                let here = at.then(Step::Name("link"));
                let loc = here.then(Step::Index(i));
                self.push(Issue::error(IssueType::Invalid, loc.to_string(), m));
            }
        }
    }
}
