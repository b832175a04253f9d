//! References between the entries of a Bundle, resolved as bundle.html ("Resolving
//! references in Bundles") states: an absolute reference (`http…`, `urn:uuid:…`) names
//! the entry with that `fullUrl`; a relative one (`Patient/1`, optionally versioned)
//! names the entry whose `fullUrl` is the referring entry's base followed by the
//! reference, the base being what precedes the referring resource's own type and id at
//! the end of its `fullUrl` — so it does not resolve from a `urn:` fullUrl, nor from one
//! that names another id.
//!
//! As the HL7 Java validator does: in documents and messages, which carry what they
//! refer to, a relative or URN reference that names no entry is an error; in other
//! Bundles an unresolved `urn:` reference is a warning; and in a document every entry
//! must be reachable from the Composition through references, forwards or backwards.

use std::collections::HashMap;

use fhir_model::IssueType;
use serde_json::Value;

use crate::issue::{Issue, Severity};
use crate::location::{Loc, Step};
use crate::walk::Run;

/// One entry: its position in `Bundle.entry`, its `fullUrl` and resource.
struct Entry<'v> {
    index: usize,
    full_url: Option<&'v str>,
    resource: &'v Value,
}

/// The entries with a resource, indexed so that each reference is resolved in constant
/// time (a Bundle may hold many thousands).
struct Entries<'v> {
    list: Vec<Entry<'v>>,
    /// `fullUrl` → positions in `list` (several when versions differ).
    by_url: HashMap<&'v str, Vec<usize>>,
    /// `Type/id` → a position in `list`.
    by_type_id: HashMap<String, usize>,
}

impl<'v> Entries<'v> {
    fn new(bundle: &'v Value) -> Entries<'v> {
        let list: Vec<Entry<'v>> = bundle
            .get("entry")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(index, e)| {
                Some(Entry {
                    index,
                    full_url: e.get("fullUrl").and_then(Value::as_str),
                    resource: e.get("resource").filter(|r| r.is_object())?,
                })
            })
            .collect();
        let mut by_url: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut by_type_id = HashMap::new();
        for (i, e) in list.iter().enumerate() {
            if let Some(u) = e.full_url {
                by_url.entry(u).or_default().push(i);
            }
            by_type_id.entry(type_and_id(e.resource)).or_insert(i);
        }
        Entries {
            list,
            by_url,
            by_type_id,
        }
    }
}

/// A reference found in an entry's resource: where, and its text.
struct Found<'v> {
    /// Path below the resource (`subject`, `section[0].entry[1]`).
    path: String,
    reference: &'v str,
}

impl Run<'_> {
    /// The reference rules of bundle `bundle` (at `at`).
    pub(crate) fn bundle_references(&mut self, bundle: &Value, at: &Loc<'_>) {
        let kind = bundle.get("type").and_then(Value::as_str).unwrap_or("");
        let entries = Entries::new(bundle);
        let self_contained = matches!(kind, "document" | "message");
        let mut links = Vec::new();
        let entry_step = at.then(Step::Name("entry"));
        for (i, e) in entries.list.iter().enumerate() {
            let mut refs = Vec::new();
            references_in(e.resource, &mut String::new(), &mut refs);
            for r in refs {
                match resolve(&entries, e, r.reference) {
                    Some(j) => links.push((i, j)),
                    None => {
                        let here = entry_step.then(Step::Index(e.index));
                        let res = here.then(Step::Name("resource"));
                        self.unresolved(&entries, e, &r, self_contained, &res);
                    }
                }
            }
        }
        if kind == "document" && !entries.list.is_empty() {
            self.unreachable(&entries.list, &links, &entry_step);
        }
    }

    fn unresolved(
        &mut self,
        entries: &Entries<'_>,
        from: &Entry<'_>,
        r: &Found<'_>,
        self_contained: bool,
        at: &Loc<'_>,
    ) {
        let urn = r.reference.starts_with("urn:");
        let relative = !r.reference.contains(':');
        let here = format!("{at}.{}", r.path);
        if urn && !self_contained {
            let m = format!(
                "URN reference is not locally contained within the bundle {}",
                r.reference
            );
            return self.push(Issue::new(Severity::Warning, IssueType::NotFound, here, m));
        }
        if !self_contained {
            if let Some(j) = same_type_and_id(entries, r.reference).filter(|_| relative) {
                let full = entries.list[j].full_url.unwrap_or("");
                let m = format!(
                    "Entry {j} matches the reference {} by type and id but its fullUrl {full} does not match the full target URL by Bundle resolution rules",
                    r.reference
                );
                self.push(Issue::new(Severity::Warning, IssueType::NotFound, here, m));
            }
            return;
        }
        if !(urn || relative) {
            return;
        }
        let rt = from.resource.get("resourceType").and_then(Value::as_str);
        let mut m = format!(
            "Can't find '{}' in the bundle ({}.{})",
            r.reference,
            rt.unwrap_or("Resource"),
            strip_indexes(&r.path)
        );
        if let Some(j) = same_type_and_id(entries, r.reference).filter(|_| relative) {
            m.push_str(". Note that there is a resource in the bundle with the same type and id, but it does not match because of the fullUrl based rules around matching relative references");
            if let Some(source) = from.full_url {
                let found = type_and_id(entries.list[j].resource);
                m.push_str(&format!(". Found '{found}', but it doesn't match because of the source fullUrl '{source}'"));
            }
        }
        self.push(Issue::error(IssueType::NotFound, here, m));
    }

    /// Document entries that no chain of references joins to the Composition (entry 0).
    fn unreachable(&mut self, entries: &[Entry<'_>], links: &[(usize, usize)], at: &Loc<'_>) {
        let mut next: Vec<Vec<usize>> = vec![Vec::new(); entries.len()];
        for &(a, b) in links {
            next[a].push(b);
            next[b].push(a);
        }
        let mut reached = vec![false; entries.len()];
        reached[0] = true;
        let mut queue = vec![0];
        while let Some(i) = queue.pop() {
            for &j in &next[i] {
                if !reached[j] {
                    reached[j] = true;
                    queue.push(j);
                }
            }
        }
        for (_, e) in entries.iter().enumerate().filter(|(i, _)| !reached[*i]) {
            let name = e
                .full_url
                .map(str::to_string)
                .unwrap_or_else(|| type_and_id(e.resource));
            let m = format!(
                "Entry '{name}' isn't reachable by traversing links (forward or backward) from the Composition"
            );
            let here = at.then(Step::Index(e.index));
            self.push(Issue::error(IssueType::Informational, here.to_string(), m));
        }
    }
}

/// The entry that `reference`, made in entry `from`, names.
fn resolve(entries: &Entries<'_>, from: &Entry<'_>, reference: &str) -> Option<usize> {
    let (target, version) = match reference.split_once("/_history/") {
        Some((t, v)) => (t, Some(v)),
        None => (reference, None),
    };
    let absolute = if target.contains(':') {
        target.to_string()
    } else {
        // Relative: against the base of the referring entry's fullUrl, which ends with
        // that entry's type and id (a relative fullUrl has the empty base).
        let full_url = from.full_url?.split("/_history/").next()?;
        let own = type_and_id(from.resource);
        match full_url.strip_suffix(&own) {
            Some("") => target.to_string(),
            Some(base) if base.ends_with('/') => format!("{base}{target}"),
            _ => return None,
        }
    };
    let candidates = entries.by_url.get(absolute.as_str())?;
    candidates.iter().copied().find(|&i| {
        version.is_none_or(|v| {
            let meta = entries.list[i].resource.get("meta");
            meta.and_then(|m| m.get("versionId"))
                .and_then(Value::as_str)
                == Some(v)
        })
    })
}

/// An entry whose resource has the type and id of a relative reference.
fn same_type_and_id(entries: &Entries<'_>, reference: &str) -> Option<usize> {
    let reference = reference.split("/_history/").next()?;
    entries.by_type_id.get(reference).copied()
}

fn type_and_id(resource: &Value) -> String {
    let get = |k| resource.get(k).and_then(Value::as_str).unwrap_or("");
    format!("{}/{}", get("resourceType"), get("id"))
}

/// The references (`Reference.reference`) of a resource, not those of the resources
/// nested in it, and not local ones (`#id`).
fn references_in<'v>(v: &'v Value, path: &mut String, out: &mut Vec<Found<'v>>) {
    match v {
        Value::Object(o) => {
            if let Some(r) = o.get("reference").and_then(Value::as_str) {
                if !r.starts_with('#') && !path.is_empty() {
                    out.push(Found {
                        path: path.clone(),
                        reference: r,
                    });
                }
            }
            for (k, x) in o {
                if x.get("resourceType").is_some() || k.starts_with('_') {
                    continue; // a nested resource, or a primitive's extensions
                }
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                references_in(x, path, out);
                path.truncate(len);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                if x.get("resourceType").is_some() {
                    continue;
                }
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                references_in(x, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

fn strip_indexes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut skip = false;
    for c in path.chars() {
        match c {
            '[' => skip = true,
            ']' => skip = false,
            _ if !skip => out.push(c),
            _ => {}
        }
    }
    out
}
