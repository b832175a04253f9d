//! Bundle rules the specification states in prose: entry `fullUrl`s are absolute (and
//! end with the resource's type and id when they look like RESTful URLs), and each link
//! relation occurs once. References between entries: `bundle_refs.rs`.

use std::collections::HashSet;

use fhir_model::IssueType;
use serde_json::Value;

use crate::conformance::restful_type_and_id;
use crate::issue::Issue;
use crate::location::{Loc, Step};
use crate::walk::Run;

impl Run<'_> {
    pub(crate) fn bundle_rules(&mut self, bundle: &Value, at: &Loc<'_>) {
        self.bundle_references(bundle, at);
        let entries = bundle.get("entry").and_then(Value::as_array);
        let entry_step = at.then(Step::Name("entry"));
        for (i, e) in entries.into_iter().flatten().enumerate() {
            let Some(url) = e.get("fullUrl").and_then(Value::as_str) else {
                continue;
            };
            let here = entry_step.then(Step::Index(i));
            if !url.contains(':') {
                let m = format!("The fullUrl must be an absolute URL (not '{url}')");
                let loc = here.then(Step::Name("fullUrl"));
                self.push(Issue::error(IssueType::Invalid, loc.to_string(), m));
            }
            // Bundle.entry.fullUrl: a fullUrl that looks like a RESTful server URL SHALL
            // end with the resource's type and id.
            let resource = e.get("resource");
            let rt = resource
                .and_then(|r| r.get("resourceType"))
                .and_then(Value::as_str);
            let id = resource.and_then(|r| r.get("id")).and_then(Value::as_str);
            if let (Some(rt), Some(id), Some((url_rt, url_id))) =
                (rt, id, restful_type_and_id(self.defs, url))
            {
                if (url_rt, url_id) != (rt, id) {
                    let m = format!(
                        "The fullUrl '{url}' looks like a RESTful server URL, so it must end with the correct type and id (/{rt}/{id})"
                    );
                    self.push(Issue::error(IssueType::Invalid, here.to_string(), m));
                }
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
