//! Walking the JSON: named children (choice types, `_name` siblings of primitives,
//! contained resources) and all children, typed by the definitions.

use fhir_model::{ChildStep, Definitions};
use serde_json::{Map, Value};

use crate::error::EvalResult;
use crate::item::{Item, Node};

/// The `_name` sibling of `name` in `obj`, found without allocating.
fn ext_of<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| k.len() == name.len() + 1 && k.starts_with('_') && &k[1..] == name)
        .map(|(_, v)| v)
}

fn looks_primitive(type_code: Option<&str>) -> bool {
    type_code.is_none_or(|t| t.starts_with(|c: char| c.is_ascii_lowercase()))
}

/// Builds the node(s) for one JSON property (arrays give one node per entry).
fn push_nodes<'a>(
    defs: &'a Definitions,
    key: &'a str,
    value: Option<&'a Value>,
    ext: Option<&'a Value>,
    step: Option<ChildStep<'a>>,
    out: &mut Vec<Item<'a>>,
) {
    let make = |v: Option<&'a Value>, e: Option<&'a Value>| {
        let e = e.filter(|e| !e.is_null());
        let v = v.filter(|v| !v.is_null());
        if v.is_none() && e.is_none() {
            return None;
        }
        let mut type_name = step.and_then(|s| s.type_code);
        let mut cursor = step.and_then(|s| defs.descend(s));
        if type_name.is_none() {
            type_name = cursor
                .and_then(|c| c.element().types.first())
                .map(|t| t.code.as_str());
        }
        if matches!(type_name, Some("Resource") | Some("DomainResource") | None) {
            if let Some(rt) = v
                .and_then(|v| v.get("resourceType"))
                .and_then(Value::as_str)
            {
                if let Some(c) = defs.root(rt) {
                    type_name = Some(rt);
                    cursor = Some(c);
                }
            }
        }
        Some(Item::Node(Node {
            value: v,
            ext: e,
            type_name,
            key,
            cursor,
        }))
    };
    match value {
        Some(Value::Array(arr)) => {
            let exts = ext.and_then(Value::as_array);
            for (i, v) in arr.iter().enumerate() {
                if let Some(n) = make(Some(v), exts.and_then(|a| a.get(i))) {
                    out.push(n);
                }
            }
            if let Some(exts) = exts {
                for e in exts.iter().skip(arr.len()) {
                    if let Some(n) = make(None, Some(e)) {
                        out.push(n);
                    }
                }
            }
        }
        Some(v) => {
            if let Some(n) = make(Some(v), ext) {
                out.push(n);
            }
        }
        None => match ext {
            Some(Value::Array(exts)) => {
                for e in exts {
                    if let Some(n) = make(None, Some(e)) {
                        out.push(n);
                    }
                }
            }
            Some(e) => {
                if let Some(n) = make(None, Some(e)) {
                    out.push(n);
                }
            }
            None => {}
        },
    }
}

/// The object holding a node's children: the value, or for primitives the `_name` object.
fn source<'a>(node: &Node<'a>) -> Option<&'a Map<String, Value>> {
    match node.value {
        Some(Value::Object(o)) => Some(o),
        _ => node.ext.and_then(Value::as_object),
    }
}

/// Appends the children called `name` (a FHIRPath name: `value`, not `valueQuantity`).
pub fn child<'a>(
    defs: &'a Definitions,
    node: &Node<'a>,
    name: &str,
    lenient: bool,
    out: &mut Vec<Item<'a>>,
) -> EvalResult<()> {
    let Some(cursor) = node.cursor else {
        // Untyped JSON: plain property access.
        if let Some(obj) = source(node) {
            if let Some((k, v)) = obj.get_key_value(name) {
                push_nodes(defs, k, Some(v), ext_of(obj, name), None, out);
            } else if let Some(e) = ext_of(obj, name) {
                let key = plain_key(obj, name);
                push_nodes(defs, key, None, Some(e), None, out);
            }
        }
        return Ok(());
    };
    let Some(obj) = source(node) else {
        return Ok(());
    };
    let Some(step) = defs.child(cursor, name) else {
        // Not a property name: a choice element (`value` for `valueQuantity`…), or
        // nothing (the static check reports unknown names; at run time they are empty).
        push_choice(defs, cursor, obj, name, out);
        return Ok(());
    };
    let element = step.element();
    if element.is_choice && !lenient {
        // `valueQuantity`: FHIRPath names the element `value`.
        return Ok(());
    }
    let value = obj.get_key_value(name);
    let ext = if looks_primitive(step.type_code) {
        ext_of(obj, name)
    } else {
        None
    };
    let key = match value {
        Some((k, _)) => k.as_str(),
        None => match ext {
            Some(_) => plain_key(obj, name),
            None => return Ok(()),
        },
    };
    push_nodes(defs, key, value.map(|(_, v)| v), ext, Some(step), out);
    Ok(())
}

/// Appends the values of choice element `name` (`value` → `valueQuantity`, `valueString`…).
fn push_choice<'a>(
    defs: &'a Definitions,
    cursor: fhir_model::ElementCursor<'a>,
    obj: &'a Map<String, Value>,
    name: &str,
    out: &mut Vec<Item<'a>>,
) {
    for (k, v) in obj {
        let key = k.as_str();
        let (plain, is_ext) = match key.strip_prefix('_') {
            Some(p) => (p, true),
            None => (key, false),
        };
        if plain.len() <= name.len()
            || !plain.starts_with(name)
            || !plain[name.len()..].starts_with(|c: char| c.is_ascii_uppercase())
        {
            continue;
        }
        let Some(s) = defs.child(cursor, plain) else {
            continue;
        };
        let el = s.element();
        if !el.is_choice || el.name != name {
            continue;
        }
        if is_ext {
            if !obj.contains_key(plain) {
                push_nodes(defs, plain_key(obj, plain), None, Some(v), Some(s), out);
            }
        } else {
            let ext = if looks_primitive(s.type_code) {
                ext_of(obj, plain)
            } else {
                None
            };
            push_nodes(defs, key, Some(v), ext, Some(s), out);
        }
    }
}

/// A borrowed key string equal to `name` (the `_name` key without its underscore).
fn plain_key<'a>(obj: &'a Map<String, Value>, name: &str) -> &'a str {
    obj.keys()
        .find(|k| k.strip_prefix('_') == Some(name) || k.as_str() == name)
        .map(|k| k.strip_prefix('_').unwrap_or(k))
        .unwrap_or("")
}

/// Appends every child of a node, in document order.
pub fn children<'a>(defs: &'a Definitions, node: &Node<'a>, out: &mut Vec<Item<'a>>) {
    let Some(obj) = source(node) else { return };
    for (k, v) in obj {
        if k == "resourceType" {
            continue;
        }
        if let Some(plain) = k.strip_prefix('_') {
            if obj.contains_key(plain) {
                continue;
            }
            let step = node.cursor.and_then(|c| defs.child(c, plain));
            push_nodes(defs, plain_key(obj, plain), None, Some(v), step, out);
            continue;
        }
        let step = node.cursor.and_then(|c| defs.child(c, k));
        let ext = if looks_primitive(step.and_then(|s| s.type_code)) {
            ext_of(obj, k)
        } else {
            None
        };
        push_nodes(defs, k, Some(v), ext, step, out);
    }
}
