//! Slicing: each value of a sliced element is matched to a slice by the slicing's
//! discriminators (value, pattern, exists, type, profile), then checked against that
//! slice; slice cardinality and closed slicing are enforced.

use fhir_model::structure::{ElementDef, Slicing};
use fhir_model::{IssueType, TypeDef};
use serde_json::Value;

use crate::children::Entry;
use crate::issue::Issue;
use crate::location::{Loc, Step};
use crate::values;
use crate::walk::Scope;
use crate::walk::{Run, Val};

/// Checks the values of sliced element `c` of `sd` (found under `parent`).
pub fn check<'v>(
    run: &mut Run<'v>,
    scope: Scope<'v>,
    sd: &'v TypeDef,
    c: usize,
    items: &[Entry<'v>],
    parent: &Loc<'_>,
) {
    let e = &sd.elements[c];
    let Some(slicing) = &e.slicing else { return };
    let Some(slices) = run.v.tree(sd).and_then(|t| t.slices.get(c)).cloned() else {
        return;
    };
    let mut counts = vec![0usize; slices.len()];
    let mut last_matched = None;
    for (i, entry) in items.iter().enumerate() {
        let found = slices
            .iter()
            .position(|&s| matches(run, scope, sd, s, slicing, entry.val));
        let named = parent.then(entry.step(e));
        let indexed;
        let at = match entry.index {
            Some(x) => {
                indexed = named.then(Step::Index(x));
                &indexed
            }
            None => &named,
        };
        match found {
            Some(k) => {
                counts[k] += 1;
                last_matched = Some(i);
                run.element(scope, sd, slices[k], entry.val, at);
            }
            None => unmatched(run, sd, slicing, at, last_matched.is_some()),
        }
    }
    for (k, &s) in slices.iter().enumerate() {
        slice_cardinality(run, &sd.elements[s], counts[k], parent, &sd.url);
    }
}

fn unmatched(run: &mut Run<'_>, sd: &TypeDef, slicing: &Slicing, at: &Loc<'_>, after_slices: bool) {
    let closed = slicing.rules == "closed";
    let at_end = slicing.rules == "openAtEnd" && after_slices;
    if closed || at_end {
        let m = format!(
            "This element does not match any known slice defined in the profile {}",
            sd.url
        );
        run.push(Issue::error(IssueType::Structure, at.to_string(), m));
    }
}

fn slice_cardinality(run: &mut Run<'_>, s: &ElementDef, n: usize, parent: &Loc<'_>, url: &str) {
    let name = s.slice_name.as_deref().unwrap_or(&s.id);
    if (n as u64) < s.min as u64 {
        let m = format!(
            "Slice '{}': a matching slice is required, but not found (minimum required = {}, but only found {n}) (from {url})",
            s.id, s.min
        );
        run.push(Issue::error(IssueType::Required, parent.to_string(), m));
    }
    if let Some(max) = s.max.0 {
        if n as u64 > max as u64 {
            let m = format!("Slice '{name}': max allowed = {max}, but found {n} (from {url})");
            run.push(Issue::error(IssueType::Structure, parent.to_string(), m));
        }
    }
}

/// Whether a value belongs to slice `s`: every discriminator agrees.
fn matches<'v>(
    run: &mut Run<'v>,
    scope: Scope<'v>,
    sd: &'v TypeDef,
    s: usize,
    slicing: &Slicing,
    val: Val<'v>,
) -> bool {
    if slicing.discriminator.is_empty() {
        return false;
    }
    slicing
        .discriminator
        .iter()
        .all(|d| discriminator(run, scope, sd, s, (&d.kind, &d.path), val))
}

fn discriminator<'v>(
    run: &mut Run<'v>,
    scope: Scope<'v>,
    sd: &'v TypeDef,
    s: usize,
    (kind, path): (&str, &str),
    val: Val<'v>,
) -> bool {
    let slice = &sd.elements[s];
    let Some(value) = val.value else { return false };
    if let Some(prefix) = path.strip_suffix("resolve()") {
        let prefix = prefix.trim_end_matches('.');
        let prefix = if prefix.is_empty() { "$this" } else { prefix };
        return resolved(run, scope, slice, kind, navigate(value, prefix));
    }
    // Extensions are told apart by their URL, which the slice's type profile names.
    if path == "url" && slice.types.iter().any(|t| !t.profiles.is_empty()) {
        let url = value.get("url").and_then(Value::as_str);
        return slice
            .types
            .iter()
            .flat_map(|t| t.profiles.iter())
            .any(|p| Some(p.as_str()) == url);
    }
    let actual = navigate(value, path);
    let target = element_at(run, sd, s, path);
    match kind {
        "value" | "pattern" => {
            let Some(t) = target else { return false };
            let e = &sd.elements[t];
            match (&e.fixed, &e.pattern) {
                (Some((_, f)), _) => actual.iter().any(|a| values::same(a, f)),
                (_, Some((_, p))) => actual.iter().any(|a| values::matches_pattern(a, p)),
                _ => false,
            }
        }
        "exists" => {
            let Some(t) = target else { return false };
            let e = &sd.elements[t];
            if e.min > 0 {
                !actual.is_empty()
            } else if e.max.0 == Some(0) {
                actual.is_empty()
            } else {
                true
            }
        }
        "type" => {
            let e = target.map_or(slice, |t| &sd.elements[t]);
            let actual_type = if path == "$this" {
                Some(val.type_code)
            } else {
                actual
                    .first()
                    .and_then(|a| a.get("resourceType"))
                    .and_then(Value::as_str)
            };
            actual_type.is_some_and(|a| {
                e.types.iter().any(|t| {
                    t.code == a
                        || t.profiles
                            .iter()
                            .any(|p| run.defs.structure(p).is_some_and(|sd| sd.type_name == a))
                })
            })
        }
        "profile" => {
            let e = target.map_or(slice, |t| &sd.elements[t]);
            let profiles: Vec<&String> = e.types.iter().flat_map(|t| t.profiles.iter()).collect();
            actual
                .iter()
                .any(|a| profiles.iter().any(|p| run.conforms_to(a, p)))
        }
        _ => false,
    }
}

/// A `type` or `profile` discriminator through `resolve()`: the resources the
/// references point to (contained, or entries of the Bundle being validated) have the
/// type, or meet a profile, that the slice's `targetProfile`s name. A reference that
/// cannot be resolved here matches no slice.
fn resolved<'v>(
    run: &mut Run<'v>,
    scope: Scope<'v>,
    slice: &ElementDef,
    kind: &str,
    references: Vec<&'v Value>,
) -> bool {
    let targets: Vec<&String> = slice
        .types
        .iter()
        .flat_map(|t| t.target_profiles.iter())
        .collect();
    let resources: Vec<&'v Value> = references
        .iter()
        .filter_map(|r| r.get("reference").and_then(Value::as_str))
        .filter_map(|r| match r.strip_prefix('#') {
            Some(id) => crate::references::contained(scope.container, id),
            None => run.bundle_index().entry(r),
        })
        .collect();
    let Some(resource) = resources.first() else {
        return false;
    };
    match kind {
        "type" => {
            let rt = resource.get("resourceType").and_then(Value::as_str);
            targets.iter().any(|p| {
                let name = run.defs.structure(p).map(|sd| sd.type_name.as_str());
                rt.is_some() && name == rt
            })
        }
        "profile" => targets.iter().any(|p| run.conforms_to(resource, p)),
        _ => false,
    }
}

/// The JSON values at a discriminator path (`code`, `coding.system`, `$this`,
/// `extension('url')`, `value.ofType(Quantity)`).
fn navigate<'v>(value: &'v Value, path: &str) -> Vec<&'v Value> {
    let mut current = vec![value];
    for step in steps(path) {
        let mut next = Vec::new();
        for v in current {
            step_into(v, &step, &mut next);
        }
        current = next;
    }
    current
}

enum PathStep {
    This,
    Name(String),
    Extension(String),
    OfType,
}

fn steps(path: &str) -> Vec<PathStep> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        let (step, tail) = split_step(rest);
        rest = tail;
        let parsed = if step == "$this" {
            PathStep::This
        } else if let Some(arg) = call_arg(step, "extension") {
            PathStep::Extension(arg)
        } else if call_arg(step, "ofType").is_some() {
            PathStep::OfType
        } else {
            PathStep::Name(step.to_string())
        };
        out.push(parsed);
    }
    out
}

/// Splits off the first step of a path, ignoring dots inside parentheses.
fn split_step(path: &str) -> (&str, &str) {
    let mut depth = 0i32;
    for (i, c) in path.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            '.' if depth == 0 => return (&path[..i], &path[i + 1..]),
            _ => {}
        }
    }
    (path, "")
}

fn call_arg(step: &str, name: &str) -> Option<String> {
    let inner = step
        .strip_prefix(name)?
        .strip_prefix('(')?
        .strip_suffix(')')?;
    Some(inner.trim_matches(|c| c == '\'' || c == '"').to_string())
}

fn step_into<'v>(v: &'v Value, step: &PathStep, out: &mut Vec<&'v Value>) {
    let push = |x: &'v Value, out: &mut Vec<&'v Value>| match x {
        Value::Array(a) => out.extend(a.iter()),
        other => out.push(other),
    };
    let Some(obj) = v.as_object() else {
        if matches!(step, PathStep::This | PathStep::OfType) {
            out.push(v);
        }
        return;
    };
    match step {
        PathStep::This | PathStep::OfType => out.push(v),
        PathStep::Extension(url) => {
            for x in obj
                .get("extension")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if x.get("url").and_then(Value::as_str) == Some(url) {
                    out.push(x);
                }
            }
        }
        PathStep::Name(name) => match obj.get(name.as_str()) {
            Some(x) => push(x, out),
            None => {
                // A choice element named without its type: `value` finds `valueQuantity`.
                for (k, x) in obj {
                    let rest = k.strip_prefix(name.as_str()).unwrap_or("");
                    if rest.starts_with(|c: char| c.is_ascii_uppercase()) {
                        push(x, out);
                    }
                }
            }
        },
    }
}

/// The element of the slice's subtree that a discriminator path names, if the
/// snapshot lists it.
fn element_at(run: &Run<'_>, sd: &TypeDef, s: usize, path: &str) -> Option<usize> {
    let tree = run.v.tree(sd)?;
    let mut at = s;
    for step in steps(path) {
        match step {
            PathStep::This | PathStep::OfType => {}
            PathStep::Name(name) => {
                at = *tree
                    .children
                    .get(at)?
                    .iter()
                    .find(|&&c| sd.elements[c].name == name)?;
            }
            PathStep::Extension(url) => {
                let ext = *tree
                    .children
                    .get(at)?
                    .iter()
                    .find(|&&c| sd.elements[c].name == "extension")?;
                at = *tree.slices.get(ext)?.iter().find(|&&sl| {
                    sd.elements[sl]
                        .types
                        .iter()
                        .any(|t| t.profiles.contains(&url))
                })?;
            }
        }
    }
    Some(at)
}
