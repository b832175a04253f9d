//! The children of an object: each JSON member is matched to its element through the
//! tree's key table (cost proportional to the JSON, not to the definition), grouped by
//! element for cardinality and slicing, then walked.

use fhir_model::structure::ElementDef;
use fhir_model::{IssueType, TypeDef};
use serde_json::{Map, Value};

use crate::issue::Issue;
use crate::location::{Loc, Step};
use crate::walk::{Run, Scope, Val};

/// One value of a child element found in the JSON.
#[derive(Clone, Copy)]
pub struct Entry<'v> {
    pub child: usize,
    pub val: Val<'v>,
    /// Position in the JSON array, when the member is an array.
    pub index: Option<usize>,
}

impl<'v> Entry<'v> {
    /// The step naming the element (`name`, or `value.ofType(Quantity)`).
    pub fn step(&self, e: &'v ElementDef) -> Step<'v> {
        if e.is_choice {
            Step::OfType(&e.name, self.val.type_code)
        } else {
            Step::Name(&e.name)
        }
    }
}

impl<'v> Run<'v> {
    /// Walks the members of `obj` as children of element `idx` of `sd`.
    pub(crate) fn children(
        &mut self,
        scope: Scope<'v>,
        sd: &'v TypeDef,
        idx: usize,
        obj: &'v Map<String, Value>,
        at: &Loc<'_>,
    ) {
        let mut entries = self.entries(scope, sd, idx, obj, at);
        entries.sort_by_key(|e| e.child);
        self.required(sd, idx, &entries, at);
        let mut start = 0;
        while start < entries.len() {
            let c = entries[start].child;
            let end = start + entries[start..].partition_point(|e| e.child == c);
            self.group(scope, sd, c, &entries[start..end], at);
            start = end;
        }
    }

    /// The values of every known child, in JSON order.
    fn entries(
        &mut self,
        scope: Scope<'v>,
        sd: &'v TypeDef,
        idx: usize,
        obj: &'v Map<String, Value>,
        at: &Loc<'_>,
    ) -> Vec<Entry<'v>> {
        let mut out = Vec::new();
        let Some(keys) = self.v.tree(sd).and_then(|t| t.keys.get(idx)) else {
            return out;
        };
        let has_underscores = obj.keys().any(|k| k.starts_with('_'));
        for (key, value) in obj {
            let (name, underscore) = match key.strip_prefix('_') {
                Some(n) => (n, true),
                None => (key.as_str(), false),
            };
            let Some(k) = keys.get(name) else {
                if scope.profile && !underscore {
                    self.choice_not_allowed(sd, idx, key, at);
                }
                continue;
            };
            if underscore && obj.contains_key(name) {
                continue; // taken with its value
            }
            let e = &sd.elements[k.child];
            let type_code = match (k.choice, e.types.as_slice()) {
                (Some(t), types) => types.get(t).map_or("Element", |t| t.code.as_str()),
                (None, [t, ..]) => t.code.as_str(),
                (None, []) => "BackboneElement",
            };
            let (v, x) = if underscore {
                (None, Some(value))
            } else if has_underscores {
                (Some(value), underscore_sibling(obj, name))
            } else {
                (Some(value), None)
            };
            push_values(k.child, type_code, v, x, &mut out);
        }
        out
    }

    /// Children with `min > 0` that have no value.
    fn required(&mut self, sd: &'v TypeDef, idx: usize, entries: &[Entry<'v>], at: &Loc<'_>) {
        let Some(required) = self.v.tree(sd).and_then(|t| t.required.get(idx)) else {
            return;
        };
        for &c in required {
            let n = entries.partition_point(|e| e.child < c);
            if entries.get(n).is_none_or(|e| e.child != c) {
                let e = &sd.elements[c];
                let m = format!("{}: minimum required = {}, but only found 0", e.path, e.min);
                // At the missing element itself (`Observation.status`), where a client
                // looks for it; the message names its full path too.
                let here = at.then(Step::Name(&e.name)).to_string();
                self.push(Issue::error(IssueType::Required, here, m));
            }
        }
    }

    /// All values of one child element: cardinality, each value, slicing.
    fn group(
        &mut self,
        scope: Scope<'v>,
        sd: &'v TypeDef,
        c: usize,
        group: &[Entry<'v>],
        at: &Loc<'_>,
    ) {
        let e = &sd.elements[c];
        self.cardinality(e, group.len(), at);
        for entry in group {
            let named = at.then(entry.step(e));
            match entry.index {
                Some(i) => self.element(scope, sd, c, entry.val, &named.then(Step::Index(i))),
                None => self.element(scope, sd, c, entry.val, &named),
            }
        }
        let sliced = self
            .v
            .tree(sd)
            .and_then(|t| t.slices.get(c))
            .is_some_and(|s| !s.is_empty());
        if sliced && e.slicing.is_some() {
            crate::slicing::check(self, scope, sd, c, group, at);
        }
    }

    fn cardinality(&mut self, e: &ElementDef, n: usize, at: &Loc<'_>) {
        if (n as u64) < u64::from(e.min) {
            let m = format!(
                "{}: minimum required = {}, but only found {n}",
                e.path, e.min
            );
            self.push(Issue::error(IssueType::Required, at.to_string(), m));
        }
        if let Some(max) = e.max.0 {
            if n as u64 > u64::from(max) {
                let m = format!("{}: max allowed = {max}, but found {n}", e.path);
                let here = at.then(Step::Name(&e.name));
                self.push(Issue::error(IssueType::Structure, here.to_string(), m));
            }
        }
    }

    /// In a profile: a member that names a choice element with a type the profile
    /// does not allow (`deceasedDateTime` where only `deceasedBoolean` is).
    fn choice_not_allowed(&mut self, sd: &'v TypeDef, idx: usize, key: &str, at: &Loc<'_>) {
        let Some(kids) = self.v.tree(sd).and_then(|t| t.children.get(idx)) else {
            return;
        };
        for &c in kids {
            let e = &sd.elements[c];
            let Some(suffix) = key.strip_prefix(e.name.as_str()) else {
                continue;
            };
            if !e.is_choice || !suffix.starts_with(|c: char| c.is_ascii_uppercase()) {
                continue;
            }
            let allowed: Vec<&str> = e.types.iter().map(|t| t.code.as_str()).collect();
            let m = format!(
                "{}: the type {suffix} is not allowed here (allowed: {})",
                e.path,
                allowed.join(", ")
            );
            let here = at.then(Step::Name(key));
            self.push(Issue::error(IssueType::Structure, here.to_string(), m));
        }
    }
}

/// The `_name` member beside `name`, found without allocating.
fn underscore_sibling<'v>(obj: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
    obj.iter()
        .find(|(k, _)| k.len() == name.len() + 1 && k.starts_with('_') && &k[1..] == name)
        .map(|(_, v)| v)
}

/// One entry per value (arrays: per item, with `_name` items paired by position).
fn push_values<'v>(
    child: usize,
    type_code: &'v str,
    value: Option<&'v Value>,
    ext: Option<&'v Value>,
    out: &mut Vec<Entry<'v>>,
) {
    let make = |value: Option<&'v Value>, ext: Option<&'v Value>| Val {
        value: value.filter(|v| !v.is_null()),
        ext: ext.filter(|v| !v.is_null()),
        type_code,
    };
    let values = value.and_then(Value::as_array);
    let exts = ext.and_then(Value::as_array);
    if values.is_none() && exts.is_none() {
        let val = make(value, ext);
        if val.value.is_some() || val.ext.is_some() {
            out.push(Entry {
                child,
                val,
                index: None,
            });
        }
        return;
    }
    let n = values.map_or(0, Vec::len).max(exts.map_or(0, Vec::len));
    for i in 0..n {
        let val = make(values.and_then(|a| a.get(i)), exts.and_then(|a| a.get(i)));
        if val.value.is_some() || val.ext.is_some() {
            out.push(Entry {
                child,
                val,
                index: Some(i),
            });
        }
    }
}
