//! References: the type a reference points to (from its URL, a Bundle entry's
//! `fullUrl`, or a contained resource) must be one the element's `targetProfile`s
//! allow, and `#id` references must find their contained resource.

use fhir_model::structure::ElementDef;
use fhir_model::{Definitions, IssueType};
use std::collections::HashMap;

use serde_json::Value;

use crate::issue::Issue;
use crate::location::Loc;
use crate::walk::{Run, Scope};

/// Checks one Reference value of element `e`.
pub fn check<'v>(
    run: &mut Run<'v>,
    scope: Scope<'v>,
    e: &ElementDef,
    value: &'v Value,
    path: &Loc<'_>,
) {
    let Some(reference) = value.get("reference").and_then(Value::as_str) else {
        return;
    };
    let target = if let Some(id) = reference.strip_prefix('#') {
        match contained_type(scope.container, id) {
            Some(t) => Some(t),
            None if id.is_empty() => scope.container.get("resourceType").and_then(Value::as_str),
            None => {
                let m =
                    format!("The reference '{reference}' does not match any contained resource");
                run.push(Issue::error(
                    IssueType::NotFound,
                    format!("{path}.reference"),
                    m,
                ));
                return;
            }
        }
    } else {
        let in_bundle = run.bundle_index().by_url.get(reference).copied();
        let rt = in_bundle
            .and_then(|r| r.get("resourceType"))
            .and_then(Value::as_str);
        rt.or_else(|| url_type(run.defs, reference))
    };
    let Some(target) = target else { return };
    if let Some(unknown) = unknown_target_profile(run.defs, e) {
        // The Java validator checks a target it can find against the profile, and
        // fails when the profile is not to be had; one it cannot find is not judged.
        let resolved = match reference.strip_prefix('#') {
            Some(id) => contained(scope.container, id),
            None => run.bundle_index().entry(reference),
        };
        if resolved.is_some() {
            let m = format!("Unable to resolve the profile reference '{unknown}'");
            run.push(Issue::error(IssueType::NotFound, path.to_string(), m));
        }
        return;
    }
    let allowed = allowed_targets(run.defs, e);
    if allowed.is_empty() || allowed.iter().any(|a| a == "Resource") {
        return;
    }
    if allowed.iter().any(|a| a == target) {
        return target_profiles(run, scope, e, reference, target, path);
    }
    let m = format!(
        "The type '{target}' of the reference '{reference}' is not a valid target for this element (must be one of {})",
        allowed.join(", ")
    );
    run.push(Issue::error(
        IssueType::Structure,
        format!("{path}.reference"),
        m,
    ));
}

/// A target found in the input (a contained resource, a Bundle entry) conforms to one
/// of the element's `targetProfile`s for its type, unless one of them is the type's
/// base definition.
fn target_profiles<'v>(
    run: &mut Run<'v>,
    scope: Scope<'v>,
    e: &ElementDef,
    reference: &str,
    target: &str,
    path: &Loc<'_>,
) {
    let mut profiles = Vec::new();
    for t in e.types.iter().filter(|t| t.code == "Reference") {
        for p in &t.target_profiles {
            match run.defs.structure(p) {
                Some(sd) if sd.type_name == target => {
                    if sd.derivation.as_deref() != Some("constraint") {
                        return; // the base type: any resource of the type will do
                    }
                    profiles.push(p.as_str());
                }
                Some(_) => {}
                None => return, // an unknown profile: cannot judge
            }
        }
    }
    if profiles.is_empty() {
        return;
    }
    let resolved = match reference.strip_prefix('#') {
        Some(id) => contained(scope.container, id),
        None => run.bundle_index().entry(reference),
    };
    let Some(resolved) = resolved else { return };
    if profiles.iter().any(|p| run.conforms_to(resolved, p)) {
        return;
    }
    let m = format!(
        "The resource '{reference}' does not conform to the target profile(s) {} of this reference",
        profiles.join(", ")
    );
    run.push(Issue::error(
        IssueType::Structure,
        format!("{path}.reference"),
        m,
    ));
}

pub(crate) fn contained<'v>(container: &'v Value, id: &str) -> Option<&'v Value> {
    container
        .get("contained")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("id").and_then(Value::as_str) == Some(id))
}

/// The resources of the Bundle being validated, by `fullUrl` and by the `Type/id` its
/// `fullUrl` ends with (or those of a Parameters, by type and id): built once per
/// validation, so that resolving each reference costs the same however large the Bundle
/// (a scan per reference made large Bundles quadratic).
#[derive(Default)]
pub(crate) struct BundleIndex<'v> {
    by_url: HashMap<&'v str, &'v Value>,
    by_tail: HashMap<&'v str, Vec<&'v Value>>,
    /// The resources of a Parameters by `Type/id`.
    by_type_id: HashMap<String, &'v Value>,
}

impl<'v> BundleIndex<'v> {
    pub(crate) fn new(root: &'v Value) -> BundleIndex<'v> {
        let mut index = BundleIndex::default();
        match root.get("resourceType").and_then(Value::as_str) {
            Some("Bundle") => {}
            Some("Parameters") => {
                index.parameters(root);
                return index;
            }
            _ => return index,
        }
        let entries = root.get("entry").and_then(Value::as_array);
        for e in entries.into_iter().flatten() {
            let (Some(url), Some(r)) =
                (e.get("fullUrl").and_then(Value::as_str), e.get("resource"))
            else {
                continue;
            };
            index.by_url.entry(url).or_insert(r);
            if let Some(tail) = tail(url) {
                index.by_tail.entry(tail).or_default().push(r);
            }
        }
        index
    }

    /// The resources of a Parameters (`parameter.resource`, in parts too), which its
    /// references may name by type and id as the Java validator resolves them.
    fn parameters(&mut self, params: &'v Value) {
        let list = params.get("parameter").or_else(|| params.get("part"));
        for p in list.and_then(Value::as_array).into_iter().flatten() {
            if let Some(r) = p.get("resource") {
                let (Some(rt), Some(id)) = (
                    r.get("resourceType").and_then(Value::as_str),
                    r.get("id").and_then(Value::as_str),
                ) else {
                    continue;
                };
                self.by_type_id.entry(format!("{rt}/{id}")).or_insert(r);
            }
            if p.get("part").is_some() {
                self.parameters(p);
            }
        }
    }

    /// The resource a reference names: by `fullUrl`, or for a relative reference
    /// (`Patient/1`) the one entry whose `fullUrl` ends with it.
    pub(crate) fn entry(&self, reference: &str) -> Option<&'v Value> {
        if let Some(r) = self.by_url.get(reference) {
            return Some(r);
        }
        if reference.contains(':') || reference.starts_with('/') {
            return None;
        }
        if let Some(r) = self.by_type_id.get(reference) {
            return Some(r);
        }
        match self.by_tail.get(reference).map(Vec::as_slice) {
            Some([one]) => Some(one),
            _ => None,
        }
    }
}

/// The last two segments of a URL (`http://x/fhir/Patient/1` → `Patient/1`).
fn tail(url: &str) -> Option<&str> {
    let last = url.rfind('/')?;
    let before = url[..last].rfind('/')?;
    Some(&url[before + 1..])
}

/// A `targetProfile` of the element's Reference type that is not loaded here.
fn unknown_target_profile<'e>(defs: &Definitions, e: &'e ElementDef) -> Option<&'e str> {
    let refs = e.types.iter().filter(|t| t.code == "Reference");
    let mut profiles = refs.flat_map(|t| t.target_profiles.iter());
    profiles
        .find(|p| defs.structure(p).is_none())
        .map(String::as_str)
}

/// The resource types the element's Reference type allows (empty: any). Called when
/// every target profile is known.
fn allowed_targets(defs: &Definitions, e: &ElementDef) -> Vec<String> {
    let mut out = Vec::new();
    for t in e.types.iter().filter(|t| t.code == "Reference") {
        if t.target_profiles.is_empty() {
            return Vec::new();
        }
        for p in &t.target_profiles {
            out.extend(defs.structure(p).map(|sd| sd.type_name.clone()));
        }
    }
    out
}

fn contained_type<'v>(container: &'v Value, id: &str) -> Option<&'v str> {
    contained(container, id)?.get("resourceType")?.as_str()
}

/// `Patient/1`, `http://x/fhir/Patient/1`, `Patient/1/_history/2` → `Patient`.
fn url_type<'r>(defs: &Definitions, reference: &'r str) -> Option<&'r str> {
    let reference = reference.split(['?', '#']).next().unwrap_or(reference);
    let parts: Vec<&str> = reference.split('/').collect();
    let n = parts.len();
    let at = match parts.iter().rposition(|p| *p == "_history") {
        Some(h) if h >= 2 => h - 2,
        Some(_) => return None,
        None if n >= 2 => n - 2,
        None => return None,
    };
    let t = parts[at];
    defs.is_resource_type(t).then_some(t)
}
