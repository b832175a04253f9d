//! Rules for conformance resources being validated, stated by the specification in
//! prose: a StructureDefinition's differential names elements that exist and keeps the
//! fixed values of its base; a SearchParameter derived from another keeps its type.

use fhir_model::{ElementCursor, IssueType};
use serde_json::Value;

use crate::issue::Issue;
use crate::location::{Loc, Step};
use crate::values;
use crate::walk::Run;

impl Run<'_> {
    /// A constraining StructureDefinition: each differential path exists in the type,
    /// and a value the base fixes is not fixed to another value.
    pub(crate) fn structure_definition_rules(&mut self, sd: &Value, at: &Loc<'_>) {
        if sd.get("derivation").and_then(Value::as_str) != Some("constraint") {
            return;
        }
        let Some(diff) = sd
            .get("differential")
            .and_then(|d| d.get("element"))
            .and_then(Value::as_array)
        else {
            return;
        };
        let url = sd.get("url").and_then(Value::as_str).unwrap_or("");
        let base = sd
            .get("baseDefinition")
            .and_then(Value::as_str)
            .filter(|b| fhir_model::terminology::canonical_url(b) != url)
            .and_then(|b| self.defs.structure(b))
            .filter(|b| !b.elements.is_empty());
        for (i, e) in diff.iter().enumerate() {
            let Some(path) = e.get("path").and_then(Value::as_str) else {
                continue;
            };
            let here = || {
                at.then(Step::Name("differential"))
                    .then(Step::Name("element"))
                    .then(Step::Index(i))
                    .to_string()
            };
            if let Some(why) = self.unknown_path(path) {
                let m = format!("Error generating Snapshot: {why} (this usually arises from a problem in the differential)");
                self.push(Issue::error(IssueType::Structure, here(), m));
                continue;
            }
            self.discriminator_paths(e, path, &here());
            let Some(base) = base else { continue };
            let Some(fixed) = e.as_object().and_then(|o| {
                o.iter()
                    .find(|(k, _)| k.starts_with("fixed") && k.len() > 5)
                    .map(|(_, v)| v)
            }) else {
                continue;
            };
            let id = e.get("id").and_then(Value::as_str).unwrap_or(path);
            let base_element = base
                .elements
                .iter()
                .find(|b| b.id == id)
                .or_else(|| base.elements.iter().find(|b| b.path == path));
            let Some((_, base_fixed)) = base_element.and_then(|b| b.fixed.as_ref()) else {
                continue;
            };
            if !values::matches_fixed(fixed, base_fixed) {
                let m = format!(
                    "Value is '{}' but is fixed to '{}' in the profile {}, because the value must match the fixed value defined in the base definition",
                    values::shown(fixed),
                    values::shown(base_fixed),
                    base.url
                );
                self.push(Issue::error(IssueType::Value, here(), m));
            }
        }
    }

    /// The discriminator paths of an element's slicing name elements of the sliced
    /// element (simple paths only: `$this`, function calls and `resolve()` are not
    /// followed).
    fn discriminator_paths(&mut self, e: &Value, path: &str, here: &str) {
        let discriminators = e
            .get("slicing")
            .and_then(|s| s.get("discriminator"))
            .and_then(Value::as_array);
        for (j, d) in discriminators.into_iter().flatten().enumerate() {
            let Some(p) = d.get("path").and_then(Value::as_str) else {
                continue;
            };
            if p.is_empty() || p.contains(['(', '$', ' ', '[', ':']) {
                continue;
            }
            if self.unknown_path(&format!("{path}.{p}")).is_some() {
                let m = format!("The discriminator path '{p}' does not appear to be valid for the element that is being sliced '{path}'");
                let at = format!("{here}.slicing.discriminator[{j}]");
                self.push(Issue::error(IssueType::Invalid, at, m));
            }
        }
    }

    /// Why an element path of a differential names no element of its type (`None`
    /// when it does, or when it cannot be followed here: below a choice of several
    /// types, an unknown type).
    fn unknown_path(&self, path: &str) -> Option<String> {
        let mut steps = path.split('.');
        let mut at: ElementCursor<'_> = self.defs.root(steps.next()?)?;
        let mut so_far = at.element().path.clone();
        for step in steps {
            let parent = format!("{so_far}.{step}");
            let next = if let Some(base_name) = step.strip_suffix("[x]") {
                self.choice_child(at, base_name)
            } else {
                match self.defs.child(at, step) {
                    Some(c) => Some(self.defs.descend(c)),
                    // `value` for `value[x]` (discriminator paths name choices so).
                    None => self.choice_child(at, step),
                }
            };
            match next {
                Some(Some(c)) => at = c,
                // Found, but its type cannot be followed (several types).
                Some(None) => return None,
                None => return Some(format!("The path '{parent}' names no element of {so_far}")),
            }
            so_far = parent;
        }
        None
    }

    /// The `name[x]` child of `at`: `None` when absent, `Some(None)` when found but
    /// not followed (several types).
    fn choice_child<'a>(
        &'a self,
        at: ElementCursor<'a>,
        base_name: &str,
    ) -> Option<Option<ElementCursor<'a>>> {
        let wanted = format!("{base_name}[x]");
        let owner = if at.index == 0 || at.type_def.has_inline_children(at.index) {
            at
        } else if let Some(r) = at.element().content_reference {
            ElementCursor {
                type_def: at.type_def,
                index: r,
            }
        } else {
            match at.element().types.as_slice() {
                [t] => self.defs.root(&t.code)?,
                _ => return Some(None),
            }
        };
        let found = owner.type_def.child_names(owner.index).find(|(_, c)| {
            owner.type_def.elements[c.element]
                .path
                .rsplit('.')
                .next()
                .is_some_and(|last| last == wanted)
        });
        let (_, c) = found?;
        let e = &owner.type_def.elements[c.element];
        Some(match e.types.as_slice() {
            [t] => self.defs.root(&t.code),
            _ => None,
        })
    }

    /// A SearchParameter `derivedFrom` a known one has the same type.
    pub(crate) fn search_parameter_rules(&mut self, sp: &Value, at: &Loc<'_>) {
        let (Some(from), Some(kind)) = (
            sp.get("derivedFrom").and_then(Value::as_str),
            sp.get("type").and_then(Value::as_str),
        ) else {
            return;
        };
        let Some(base) = self
            .defs
            .search_param_by_url(fhir_model::terminology::canonical_url(from))
        else {
            return;
        };
        let base_kind = base.kind.as_str();
        if base_kind != kind {
            let m = format!(
                "The type {kind} is different to the type {base_kind} of {from}, the derivedFrom SearchParameter"
            );
            self.push(Issue::error(IssueType::Invalid, at.to_string(), m));
        }
    }
}

impl Run<'_> {
    /// A CapabilityStatement's search parameters have the type of the SearchParameter
    /// their `definition` names, when it is known here.
    pub(crate) fn capability_statement_rules(&mut self, cs: &Value, at: &Loc<'_>) {
        let rests = cs.get("rest").and_then(Value::as_array);
        for (i, rest) in rests.into_iter().flatten().enumerate() {
            let resources = rest.get("resource").and_then(Value::as_array);
            for (j, res) in resources.into_iter().flatten().enumerate() {
                let params = res.get("searchParam").and_then(Value::as_array);
                for (k, sp) in params.into_iter().flatten().enumerate() {
                    let here = format!("{at}.rest[{i}].resource[{j}].searchParam[{k}]");
                    self.search_param_type(sp, &here);
                }
            }
        }
    }

    fn search_param_type(&mut self, sp: &Value, at: &str) {
        let (Some(url), Some(kind)) = (
            sp.get("definition").and_then(Value::as_str),
            sp.get("type").and_then(Value::as_str),
        ) else {
            return;
        };
        let url = fhir_model::terminology::canonical_url(url);
        let Some(def) = self.defs.search_param_by_url(url) else {
            return;
        };
        let defined = def.kind.as_str();
        if defined != kind {
            let m = format!(
                "Type mismatch - SearchParameter '{url}' type is {defined}, but type here is {kind}"
            );
            self.push(Issue::error(IssueType::Invalid, at.to_string(), m));
        }
    }
}

/// `(type, id)` when a Bundle entry's `fullUrl` looks like a RESTful server URL:
/// `http(s)://…/Type/id`, optionally with `/_history/version`.
pub(crate) fn restful_type_and_id<'u>(
    defs: &fhir_model::Definitions,
    full_url: &'u str,
) -> Option<(&'u str, &'u str)> {
    if !(full_url.starts_with("http://") || full_url.starts_with("https://")) {
        return None;
    }
    let url = match full_url.find("/_history/") {
        Some(i) => &full_url[..i],
        None => full_url,
    };
    let mut parts = url.rsplit('/');
    let id = parts.next()?;
    let rt = parts.next()?;
    let id_ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    (id_ok && defs.is_resource_type(rt)).then_some((rt, id))
}
