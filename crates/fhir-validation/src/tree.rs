//! The element tree of a StructureDefinition snapshot, by element id: each element's
//! direct children (and the JSON keys that reach them), its slices, and its
//! invariants compiled. Built once per definition.

use std::collections::HashMap;
use std::sync::Arc;

use fhir_model::structure::type_suffix;
use fhir_model::TypeDef;
use fhirpath::Expression;

use crate::fasthash::FastMap;
use crate::invariants::Invariants;

/// A child reached by a JSON key: its element index and, for a choice, the type index.
#[derive(Debug, Clone, Copy)]
pub struct KeyRef {
    pub child: usize,
    pub choice: Option<usize>,
}

/// Compiled invariants by source text, shared by all trees.
pub type ExpressionCache = HashMap<String, Option<Arc<Expression>>>;

/// Children and slices of every element of one snapshot (indexes into `elements`).
#[derive(Default)]
pub struct Tree {
    pub children: Vec<Vec<usize>>,
    pub slices: Vec<Vec<usize>>,
    /// Per element: JSON property name (no `_`) → child.
    pub keys: Vec<FastMap<Box<str>, KeyRef>>,
    /// Per element: children with `min > 0`.
    pub required: Vec<Vec<usize>>,
    /// Per element: (index in `constraints`, compiled expression) of the invariants
    /// evaluated through FHIRPath.
    pub invariants: Vec<Vec<(usize, Arc<Expression>)>>,
}

impl Tree {
    pub fn build(def: &TypeDef, cache: &mut ExpressionCache) -> Tree {
        let n = def.elements.len();
        let mut tree = Tree {
            children: vec![Vec::new(); n],
            slices: vec![Vec::new(); n],
            keys: (0..n).map(|_| FastMap::default()).collect(),
            required: vec![Vec::new(); n],
            invariants: vec![Vec::new(); n],
        };
        let by_id: HashMap<&str, usize> = def
            .elements
            .iter()
            .enumerate()
            .map(|(i, e)| (e.id.as_str(), i))
            .collect();
        for (i, e) in def.elements.iter().enumerate().skip(1) {
            let (parent_id, last) = split_id(&e.id);
            match last.split_once(':') {
                Some((name, _slice)) => {
                    let sliced = format!("{parent_id}.{name}");
                    let sliced = if parent_id.is_empty() { name } else { &sliced };
                    if let Some(&s) = by_id.get(sliced) {
                        tree.slices[s].push(i);
                    }
                }
                None => {
                    if let Some(&p) = by_id.get(parent_id) {
                        tree.children[p].push(i);
                        tree.add_keys(def, p, i);
                    }
                }
            }
        }
        for (i, e) in def.elements.iter().enumerate() {
            for (k, c) in e.constraints.iter().enumerate() {
                if Invariants::is_skipped(&c.key) {
                    continue;
                }
                let Some(source) = c.expression.as_deref() else {
                    continue;
                };
                let source = Invariants::corrected(&c.key, source);
                let compiled = cache
                    .entry(source.to_string())
                    .or_insert_with(|| fhirpath::compile(source).ok().map(Arc::new));
                if let Some(x) = compiled {
                    tree.invariants[i].push((k, x.clone()));
                }
            }
        }
        tree
    }

    fn add_keys(&mut self, def: &TypeDef, parent: usize, child: usize) {
        let e = &def.elements[child];
        if e.min > 0 {
            self.required[parent].push(child);
        }
        let map = &mut self.keys[parent];
        if e.is_choice {
            for (t, ty) in e.types.iter().enumerate() {
                let key = format!("{}{}", e.name, type_suffix(&ty.code));
                map.insert(
                    key.into(),
                    KeyRef {
                        child,
                        choice: Some(t),
                    },
                );
            }
        } else {
            map.insert(
                e.name.as_str().into(),
                KeyRef {
                    child,
                    choice: None,
                },
            );
        }
    }
}

/// `Observation.component:systolic.code` → (`Observation.component:systolic`, `code`).
/// Slice names may contain dots only after a `:`, so the split ignores dots there.
pub(crate) fn split_id(id: &str) -> (&str, &str) {
    let mut cut = None;
    let mut in_slice = false;
    for (i, c) in id.char_indices() {
        match c {
            ':' => in_slice = true,
            // A dot after a slice name ends the slice name only when what follows is
            // an element name (lower-case start).
            '.' if !in_slice || id[i + 1..].starts_with(|c: char| c.is_ascii_lowercase()) => {
                cut = Some(i);
                in_slice = false;
            }
            _ => {}
        }
    }
    match cut {
        Some(i) => (&id[..i], &id[i + 1..]),
        None => ("", id),
    }
}

#[cfg(test)]
mod tests {
    use super::split_id;

    #[test]
    fn splits_ids_with_slices() {
        assert_eq!(split_id("Patient.name"), ("Patient", "name"));
        assert_eq!(
            split_id("Observation.component:systolic.code"),
            ("Observation.component:systolic", "code")
        );
        assert_eq!(
            split_id("Observation.component:systolic"),
            ("Observation", "component:systolic")
        );
        assert_eq!(split_id("Patient"), ("", "Patient"));
    }
}
