//! Local links in narratives (`<a href="#…">`): each must name exactly one target in
//! the resource, or in the Bundle that holds it: an element `id` (a contained
//! resource, an entry's resource) or an XHTML anchor (`id` or `name` attribute of a
//! narrative element). A link with no target is an error, as the HL7 Java validator
//! reports it; one with several targets is a warning (the specification's own
//! StructureDefinitions link to element ids that their snapshot, differential and
//! narrative all carry).

use std::collections::HashMap;

use fhir_model::IssueType;
use quick_xml::events::{BytesStart, Event};
use serde_json::Value;

use crate::issue::{Issue, Severity};
use crate::location::{Loc, Step};
use crate::walk::Run;

/// One `<a href="#…">` of a narrative.
#[derive(Debug, PartialEq, Eq)]
struct Link {
    /// The fragment, without `#`.
    fragment: String,
    /// Where in the div (`div/p/a`).
    path: String,
    /// The link's text.
    text: String,
}

impl Run<'_> {
    /// The local links of the narrative `div` (at `at`, the Narrative) have one target.
    pub(crate) fn narrative_links(&mut self, div: &str, at: &Loc<'_>) {
        // Most narratives have no local link: spare them a second parse.
        if !div.contains("href") || !div.contains('#') {
            return;
        }
        let links = local_links(div);
        if links.is_empty() {
            return;
        }
        let root = self.root;
        let targets = self.link_targets.get_or_insert_with(|| targets(root));
        let mut found = Vec::new();
        for l in links {
            found.push((targets.get(&l.fragment).copied().unwrap_or(0), l));
        }
        let here = at.then(Step::Name("div")).to_string();
        for (count, l) in found {
            let (severity, m) = match count {
                0 => (
                    Severity::Error,
                    format!(
                        "Hyperlink '#{}' at '{}' for '{}' does not resolve",
                        l.fragment, l.path, l.text
                    ),
                ),
                1 => continue,
                n => (
                    Severity::Warning,
                    format!(
                        "Found {n} matches for fragment {} in the resource",
                        l.fragment
                    ),
                ),
            };
            self.push(Issue::new(severity, IssueType::Invalid, here.clone(), m));
        }
    }
}

/// Every link target of `root` and how often it occurs.
fn targets(root: &Value) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    collect(root, &mut out);
    out
}

fn collect(v: &Value, out: &mut HashMap<String, usize>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                match (k.as_str(), x) {
                    ("id", Value::String(id)) => *out.entry(id.clone()).or_default() += 1,
                    ("div", Value::String(div)) => anchors(div, out),
                    _ => collect(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
        _ => {}
    }
}

/// The `id` and `name` attributes of the elements of a div.
fn anchors(div: &str, out: &mut HashMap<String, usize>) {
    let mut r = quick_xml::Reader::from_str(div);
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                for name in [&b"id"[..], b"name"] {
                    if let Some(v) = attribute(&e, name) {
                        *out.entry(v).or_default() += 1;
                    }
                }
            }
            Ok(Event::Eof) | Err(_) => return,
            _ => {}
        }
    }
}

fn attribute(e: &BytesStart<'_>, name: &[u8]) -> Option<String> {
    let a = e.try_get_attribute(name).ok().flatten()?;
    a.unescape_value().ok().map(|v| v.into_owned())
}

/// The `<a href="#…">` links of a div (a div that is not well-formed has none here:
/// txt-1 and the XHTML checks speak for it).
fn local_links(div: &str) -> Vec<Link> {
    let mut r = quick_xml::Reader::from_str(div);
    let (mut stack, mut out) = (Vec::<String>::new(), Vec::new());
    // The link being read (its index in `out`) and the depth of its `a`.
    let mut open: Option<(usize, usize)> = None;
    loop {
        let ev = match r.read_event() {
            Ok(Event::Eof) | Err(_) => return out,
            Ok(ev) => ev,
        };
        match ev {
            Event::Start(e) => {
                stack.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
                if let Some(fragment) = href_fragment(&e) {
                    open = Some((out.len(), stack.len()));
                    let path = stack.join("/");
                    out.push(Link {
                        fragment,
                        path,
                        text: String::new(),
                    });
                }
            }
            Event::Empty(e) => {
                if let Some(fragment) = href_fragment(&e) {
                    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    let path = format!("{}/{name}", stack.join("/"));
                    out.push(Link {
                        fragment,
                        path,
                        text: String::new(),
                    });
                }
            }
            Event::Text(t) => {
                if let (Some((i, _)), Ok(text)) = (open, t.decode()) {
                    out[i].text.push_str(&text);
                }
            }
            Event::End(_) => {
                if open.is_some_and(|(_, depth)| depth == stack.len()) {
                    open = None;
                }
                stack.pop();
            }
            _ => {}
        }
    }
}

/// The fragment of an `a` element's local `href` (`#x` → `x`; `#` alone is no link).
fn href_fragment(e: &BytesStart<'_>) -> Option<String> {
    if e.local_name().as_ref() != b"a" {
        return None;
    }
    let href = attribute(e, b"href")?;
    href.strip_prefix('#')
        .filter(|f| !f.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn links_and_their_targets() {
        let div = r##"<div xmlns="http://www.w3.org/1999/xhtml"><p><a href="#med1">the <b>drug</b></a>
            <a href="http://x.org/">elsewhere</a><a name="here"/><a href="#"/></p></div>"##;
        let links = local_links(div);
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].fragment, "med1");
        assert_eq!(links[0].path, "div/p/a");
        assert_eq!(links[0].text, "the drug");
        let resource = json!({"resourceType": "MedicationRequest", "text": {"div": div},
            "contained": [{"resourceType": "Medication", "id": "med1"}]});
        let t = targets(&resource);
        assert_eq!(t.get("med1"), Some(&1));
        assert_eq!(t.get("here"), Some(&1));
    }
}
