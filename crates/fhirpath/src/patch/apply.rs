//! The five operations on a resource's JSON. Lists of primitives keep their `_name`
//! list (ids and extensions) aligned; an element left empty by a delete goes too.

use fhir_model::{ChildStep, Definitions, ElementCursor};
use serde_json::{Map, Value};

use super::locate::{self, Seg, Spot};
use super::{Kind, Operation, PatchValue};
use crate::Expression;

type Result<T> = std::result::Result<T, String>;

pub(super) fn operation(defs: &Definitions, op: &Operation, resource: &mut Value) -> Result<()> {
    match op.kind {
        Kind::Add => add(defs, op, resource),
        Kind::Insert => insert(defs, op, resource),
        Kind::Delete => delete(defs, op, resource),
        Kind::Replace => replace(defs, op, resource),
        Kind::Move => move_within(defs, op, resource),
    }
}

/// `add`: a new child `name` of the one element the path finds (appended to a list).
fn add(defs: &Definitions, op: &Operation, resource: &mut Value) -> Result<()> {
    let path = full_path(single(defs, resource, &op.path)?);
    let (name, value) = (op.name.as_deref().unwrap_or(""), required(&op.value)?);
    let cur = element_with_children(defs, resource, &path)?;
    let (key, step) = property(defs, cur, name, value)?;
    let (json, ext) = build(defs, step, value)?;
    let holder = object_mut(resource, &path)?;
    if step.element().max.is_many() {
        let len = list_len(holder, &key)?;
        insert_at(holder, &key, len, json, ext)
    } else if holder.contains_key(&key) || holder.contains_key(&format!("_{key}")) {
        Err(format!(
            "'{name}' already has a value: add is for new elements, replace changes one"
        ))
    } else {
        set(holder, &key, json, ext);
        Ok(())
    }
}

/// `insert`: `value` at `index` of the list the path names.
fn insert(defs: &Definitions, op: &Operation, resource: &mut Value) -> Result<()> {
    let (path, key, step) = list(defs, op, resource)?;
    let (json, ext) = build(defs, step, required(&op.value)?)?;
    let holder = object_mut(resource, &path)?;
    insert_at(holder, &key, op.index.unwrap_or(0), json, ext)
}

/// `move`: the element at `source` of the list the path names to `destination`.
fn move_within(defs: &Definitions, op: &Operation, resource: &mut Value) -> Result<()> {
    let (path, key, _) = list(defs, op, resource)?;
    let holder = object_mut(resource, &path)?;
    let len = list_len(holder, &key)?;
    let (from, to) = (op.source.unwrap_or(0), op.destination.unwrap_or(0));
    if from >= len || to >= len {
        return Err(format!(
            "source {from} and destination {to} must be within the {len} elements of the list"
        ));
    }
    let (json, ext) = remove_at(holder, &key, from)?;
    insert_at(holder, &key, to, json, ext)
}

/// `delete`: the one element the path finds, if any.
fn delete(defs: &Definitions, op: &Operation, resource: &mut Value) -> Result<()> {
    let mut found = locate::find(defs, resource, &op.path)?;
    let spot = match found.len() {
        0 => return Ok(()),
        1 => found.pop().flatten(),
        n => {
            return Err(format!(
                "the path finds {n} elements; only one can be deleted"
            ))
        }
    };
    let spot = spot.ok_or("the resource itself cannot be deleted by a patch")?;
    let holder = object_mut(resource, &spot.holder)?;
    match spot.index {
        Some(i) => {
            remove_at(holder, &spot.key, i)?;
        }
        None => {
            holder.shift_remove(&spot.key);
            holder.shift_remove(&format!("_{}", spot.key));
        }
    }
    prune(resource, spot.holder);
    Ok(())
}

/// `replace`: the one element the path finds, by `value` (a choice element takes the
/// name of the new value's type: `deceasedBoolean` → `deceasedDateTime`).
fn replace(defs: &Definitions, op: &Operation, resource: &mut Value) -> Result<()> {
    let spot = single(defs, resource, &op.path)?.ok_or("the resource itself cannot be replaced")?;
    let value = required(&op.value)?;
    let holder_cur = locate::cursor(defs, resource, &spot.holder).ok_or(NO_DEFINITION)?;
    let old = defs.child(holder_cur, &spot.key).ok_or(NO_DEFINITION)?;
    let (key, step) = if old.element().is_choice {
        property(defs, holder_cur, &old.element().name, value)?
    } else {
        (spot.key.clone(), old)
    };
    let (json, ext) = build(defs, step, value)?;
    let holder = object_mut(resource, &spot.holder)?;
    match spot.index {
        Some(i) => {
            remove_at(holder, &spot.key, i)?;
            insert_at(holder, &key, i, json, ext)
        }
        None if key == spot.key => {
            set(holder, &key, json, ext);
            Ok(())
        }
        None => {
            holder.shift_remove(&spot.key);
            holder.shift_remove(&format!("_{}", spot.key));
            set(holder, &key, json, ext);
            Ok(())
        }
    }
}

const NO_DEFINITION: &str = "the element at the path has no definition in this resource type";

fn required(value: &Option<PatchValue>) -> Result<&PatchValue> {
    value
        .as_ref()
        .ok_or_else(|| "the operation has no value".to_string())
}

/// The one element `expr` finds (`None`: the resource itself).
fn single(defs: &Definitions, resource: &Value, expr: &Expression) -> Result<Option<Spot>> {
    let mut found = locate::find(defs, resource, expr)?;
    match found.len() {
        0 => Err("the path finds no element".into()),
        1 => Ok(found.pop().flatten()),
        n => Err(format!(
            "the path finds {n} elements; the operation needs exactly one"
        )),
    }
}

fn full_path(spot: Option<Spot>) -> Vec<Seg> {
    let Some(s) = spot else { return Vec::new() };
    let mut path = s.holder;
    path.push(Seg::Key(s.key));
    if let Some(i) = s.index {
        path.push(Seg::Index(i));
    }
    path
}

/// For insert and move: the path of the element holding the list, the list's property
/// name and its definition.
fn list<'d>(
    defs: &'d Definitions,
    op: &Operation,
    resource: &Value,
) -> Result<(Vec<Seg>, String, ChildStep<'d>)> {
    let Some((holder, name)) = &op.list else {
        return Err("the path does not name a list".into());
    };
    let path = full_path(single(defs, resource, holder)?);
    let cur = element_with_children(defs, resource, &path)?;
    let step = defs
        .child(cur, name)
        .filter(|s| !s.element().is_choice)
        .ok_or_else(|| format!("'{name}' is not an element of {}", cur.element().path))?;
    if !step.element().max.is_many() {
        return Err(format!("{} is not a list", step.element().path));
    }
    Ok((path, name.clone(), step))
}

fn element_with_children<'d>(
    defs: &'d Definitions,
    resource: &Value,
    path: &[Seg],
) -> Result<ElementCursor<'d>> {
    if !locate::at(resource, path).is_some_and(Value::is_object) {
        return Err(
            "the path finds a primitive value; this operation needs an element with children"
                .into(),
        );
    }
    locate::cursor(defs, resource, path).ok_or_else(|| NO_DEFINITION.to_string())
}

fn object_mut<'v>(resource: &'v mut Value, path: &[Seg]) -> Result<&'v mut Map<String, Value>> {
    locate::at_mut(resource, path)
        .and_then(Value::as_object_mut)
        .ok_or_else(|| "the path does not find an element with children".to_string())
}

/// The JSON property for child `name` of `cur` holding `value`: the name itself, or
/// for a choice element the name with the value's type (`deceasedDateTime`).
fn property<'d>(
    defs: &'d Definitions,
    cur: ElementCursor<'d>,
    name: &str,
    value: &PatchValue,
) -> Result<(String, ChildStep<'d>)> {
    if let Some(step) = defs.child(cur, name).filter(|s| !s.element().is_choice) {
        return Ok((name.to_string(), step));
    }
    if let PatchValue::Typed { suffix, .. } = value {
        let key = format!("{name}{suffix}");
        if let Some(step) = defs.child(cur, &key) {
            return Ok((key, step));
        }
    }
    Err(format!(
        "'{name}' is not an element of {} that takes this value",
        cur.element().path
    ))
}

/// The JSON (and `_name` JSON of a primitive) for `value` written where `step` leads.
fn build(
    defs: &Definitions,
    step: ChildStep<'_>,
    value: &PatchValue,
) -> Result<(Value, Option<Value>)> {
    match value {
        PatchValue::Typed { suffix, json, ext } => {
            check_type(defs, step, suffix)?;
            Ok((json.clone(), ext.clone()))
        }
        PatchValue::Resource(r) => {
            if !matches!(step.type_code, Some("Resource" | "DomainResource")) {
                return Err(format!("{} does not hold a resource", step.element().path));
            }
            Ok((r.clone(), None))
        }
        PatchValue::Parts(parts) => {
            let primitive = step.type_code.is_some_and(|t| defs.is_primitive(t));
            let cur = defs
                .descend(step)
                .filter(|_| !primitive)
                .ok_or_else(|| format!("{} takes a value[x], not parts", step.element().path))?;
            let mut obj = Map::new();
            for (name, v) in parts {
                let (key, s) = property(defs, cur, name, v)?;
                let (json, ext) = build(defs, s, v)?;
                if s.element().max.is_many() {
                    let len = list_len(&obj, &key)?;
                    insert_at(&mut obj, &key, len, json, ext)?;
                } else if obj.contains_key(&key) {
                    return Err(format!("'{name}' is given twice but takes one value"));
                } else {
                    set(&mut obj, &key, json, ext);
                }
            }
            Ok((Value::Object(obj), None))
        }
    }
}

/// A value of type `suffix` (`DateTime`, `HumanName`) fits the element: the same type,
/// a specialisation (`Age` for `Quantity`), or another primitive (the patched resource
/// is checked as a whole afterwards).
fn check_type(defs: &Definitions, step: ChildStep<'_>, suffix: &str) -> Result<()> {
    let Some(code) = step.type_code else {
        return Ok(());
    };
    let given = if defs.type_def(suffix).is_some() {
        suffix.to_string()
    } else {
        let mut c = suffix.chars();
        c.next()
            .map(|f| f.to_ascii_lowercase().to_string() + c.as_str())
            .unwrap_or_default()
    };
    let fits = given == code
        || defs.is_subtype(&given, code)
        || (defs.is_primitive(&given) && defs.is_primitive(code));
    if fits {
        Ok(())
    } else {
        Err(format!(
            "the value is a {given}, but {} takes {code}",
            step.element().path
        ))
    }
}

fn set(holder: &mut Map<String, Value>, key: &str, json: Value, ext: Option<Value>) {
    holder.insert(key.to_string(), json);
    match ext {
        Some(e) => {
            holder.insert(format!("_{key}"), e);
        }
        None => {
            holder.shift_remove(&format!("_{key}"));
        }
    }
}

fn list_len(holder: &Map<String, Value>, key: &str) -> Result<usize> {
    match holder.get(key) {
        None => Ok(0),
        Some(Value::Array(a)) => Ok(a.len()),
        Some(_) => Err(format!("'{key}' is not a list in this resource")),
    }
}

/// Inserts into list `key` at `i`, keeping its `_key` list aligned.
fn insert_at(
    holder: &mut Map<String, Value>,
    key: &str,
    i: usize,
    json: Value,
    ext: Option<Value>,
) -> Result<()> {
    let len = list_len(holder, key)?;
    if i > len {
        return Err(format!(
            "index {i} is beyond the end of the list ({len} elements)"
        ));
    }
    let list = holder
        .entry(key.to_string())
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Some(list) = list.as_array_mut() {
        list.insert(i, json);
    }
    let ext_key = format!("_{key}");
    if ext.is_some() || holder.contains_key(&ext_key) {
        let exts = holder
            .entry(ext_key.clone())
            .or_insert_with(|| Value::Array(Vec::new()));
        let Some(exts) = exts.as_array_mut() else {
            return Err(format!("'{ext_key}' is not a list in this resource"));
        };
        exts.resize(exts.len().max(len), Value::Null);
        exts.insert(i, ext.unwrap_or(Value::Null));
        tidy_ext(holder, &ext_key);
    }
    Ok(())
}

/// Removes element `i` of list `key` (and of its `_key` list); an emptied list goes.
fn remove_at(
    holder: &mut Map<String, Value>,
    key: &str,
    i: usize,
) -> Result<(Value, Option<Value>)> {
    let len = list_len(holder, key)?;
    if i >= len {
        return Err(format!(
            "index {i} is beyond the end of the list ({len} elements)"
        ));
    }
    let json = match holder.get_mut(key) {
        Some(Value::Array(a)) => a.remove(i),
        _ => Value::Null,
    };
    let ext_key = format!("_{key}");
    let ext = match holder.get_mut(&ext_key) {
        Some(Value::Array(e)) if i < e.len() => Some(e.remove(i)).filter(|e| !e.is_null()),
        _ => None,
    };
    if len == 1 {
        holder.shift_remove(key);
        holder.shift_remove(&ext_key);
    } else {
        tidy_ext(holder, &ext_key);
    }
    Ok((json, ext))
}

/// A `_key` list with nothing but nulls is left out.
fn tidy_ext(holder: &mut Map<String, Value>, ext_key: &str) {
    let all_null = holder
        .get(ext_key)
        .and_then(Value::as_array)
        .is_some_and(|e| e.iter().all(Value::is_null));
    if all_null {
        holder.shift_remove(ext_key);
    }
}

/// Removes the empty objects and lists a delete left at `path` and above it.
fn prune(resource: &mut Value, mut path: Vec<Seg>) {
    while let Some(last) = path.last().cloned() {
        let empty = match locate::at(resource, &path) {
            Some(Value::Object(o)) => o.is_empty(),
            Some(Value::Array(a)) => a.is_empty(),
            _ => false,
        };
        if !empty {
            return;
        }
        path.pop();
        match (locate::at_mut(resource, &path), last) {
            (Some(Value::Object(o)), Seg::Key(k)) => {
                o.shift_remove(&k);
            }
            (Some(Value::Array(a)), Seg::Index(i)) if i < a.len() => {
                a.remove(i);
            }
            _ => return,
        }
    }
}
