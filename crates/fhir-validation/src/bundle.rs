//! Bundle rules the specification states in prose: entry `fullUrl`s are absolute (and
//! end with the resource's type and id when they look like RESTful URLs), each link
//! relation occurs once, paging links only in search results and histories, and search
//! results say what the search was and why each entry is there. References between entries: `bundle_refs.rs`.

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
        let kind = bundle.get("type").and_then(Value::as_str).unwrap_or("");
        let paged = matches!(kind, "searchset" | "history");
        let links = bundle.get("link").and_then(Value::as_array);
        let mut seen = HashSet::new();
        for (i, l) in links.into_iter().flatten().enumerate() {
            let Some(rel) = l.get("relation").and_then(Value::as_str) else {
                continue;
            };
            let here = at.then(Step::Name("link"));
            let loc = here.then(Step::Index(i));
            if !seen.insert(rel) {
                let m = format!("The link relationship type '{rel}' can only occur once");
                self.push(Issue::error(IssueType::Invalid, loc.to_string(), m));
            }
            // Paging links belong to search results and histories.
            if !paged && matches!(rel, "first" | "previous" | "prev" | "next" | "last") {
                let m = format!(
                    "The link relationship type '{rel}' used in search sets is prohibited in this context"
                );
                let loc = loc.then(Step::Name("relation"));
                self.push(Issue::error(IssueType::Invalid, loc.to_string(), m));
            }
        }
        if kind == "searchset" {
            self.search_set(bundle, &seen, at);
        }
    }

    /// A search result says what the search was (a `self` link) and why each entry is
    /// there (`search.mode`): warnings, as the Java validator gives them.
    fn search_set(&mut self, bundle: &Value, relations: &HashSet<&str>, at: &Loc<'_>) {
        if !relations.contains("self") {
            let m = "SearchSet Bundles should have a self link that specifies what the search was";
            self.push(Issue::warning(
                IssueType::Invalid,
                at.to_string(),
                m.to_string(),
            ));
        }
        let entries = bundle.get("entry").and_then(Value::as_array);
        let unmoded = entries
            .into_iter()
            .flatten()
            .any(|e| e.get("search").and_then(|s| s.get("mode")).is_none());
        if unmoded {
            let m = "SearchSet bundles should have search modes on the entries";
            self.push(Issue::warning(
                IssueType::Invalid,
                at.to_string(),
                m.to_string(),
            ));
        }
    }
}
