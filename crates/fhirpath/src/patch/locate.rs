//! Where the elements a patch path finds are in the resource's JSON, and their
//! definitions: the evaluator's nodes borrow the JSON, so each is found by identity.

use fhir_model::{ChildStep, Definitions, ElementCursor};
use serde_json::Value;

use crate::{EvalContext, Expression, Item};

/// One step into the JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

/// An element's place: the path to the object holding it, its property name (without
/// the `_` of a primitive that has only extensions) and, in a list, its index.
#[derive(Debug, Clone)]
pub(super) struct Spot {
    pub holder: Vec<Seg>,
    pub key: String,
    pub index: Option<usize>,
}

/// The places of what `expr` finds in `resource` (`None` for the resource itself).
pub(super) fn find(
    defs: &Definitions,
    resource: &Value,
    expr: &Expression,
) -> Result<Vec<Option<Spot>>, String> {
    let mut ctx = EvalContext::with_definitions(defs);
    ctx.set_resource(resource);
    let found = expr
        .evaluate(&ctx, resource)
        .map_err(|e| format!("the path cannot be evaluated: {e}"))?;
    let mut targets = Vec::with_capacity(found.0.len());
    for item in &found.0 {
        let Item::Node(n) = item else {
            return Err("the path gives a value, not an element of the resource".into());
        };
        let v = n.value.filter(|v| !v.is_null()).or(n.ext);
        let Some(v) = v else {
            return Err("the path gives an empty element".into());
        };
        targets.push(v as *const Value);
    }
    let mut paths = vec![None; targets.len()];
    walk(resource, &mut Vec::new(), &targets, &mut paths);
    paths
        .into_iter()
        .map(|p| {
            let p = p.ok_or("the path leads outside the resource")?;
            Ok(spot(p))
        })
        .collect()
}

fn walk(v: &Value, path: &mut Vec<Seg>, targets: &[*const Value], out: &mut [Option<Vec<Seg>>]) {
    for (i, t) in targets.iter().enumerate() {
        if std::ptr::eq(*t, v) && out[i].is_none() {
            out[i] = Some(path.clone());
        }
    }
    match v {
        Value::Object(o) => {
            for (k, child) in o {
                path.push(Seg::Key(k.clone()));
                walk(child, path, targets, out);
                path.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                path.push(Seg::Index(i));
                walk(child, path, targets, out);
                path.pop();
            }
        }
        _ => {}
    }
}

/// `[.., Key(k)]` or `[.., Key(k), Index(i)]` as a [`Spot`]; the empty path is the
/// resource itself.
fn spot(mut path: Vec<Seg>) -> Option<Spot> {
    let index = match path.last()? {
        Seg::Index(i) => {
            let i = *i;
            path.pop();
            Some(i)
        }
        Seg::Key(_) => None,
    };
    let Some(Seg::Key(k)) = path.pop() else {
        return None;
    };
    let key = k.strip_prefix('_').map(str::to_string).unwrap_or(k);
    Some(Spot {
        holder: path,
        key,
        index,
    })
}

/// The JSON at `path`.
pub(super) fn at<'v>(root: &'v Value, path: &[Seg]) -> Option<&'v Value> {
    path.iter().try_fold(root, |v, s| match s {
        Seg::Key(k) => v.get(k),
        Seg::Index(i) => v.get(i),
    })
}

/// The JSON at `path`, to change.
pub(super) fn at_mut<'v>(root: &'v mut Value, path: &[Seg]) -> Option<&'v mut Value> {
    path.iter().try_fold(root, |v, s| match s {
        Seg::Key(k) => v.get_mut(k),
        Seg::Index(i) => v.get_mut(i),
    })
}

/// The definition of the element at `path` (the resource's root for the empty path),
/// following contained resources by their `resourceType`.
pub(super) fn cursor<'d>(
    defs: &'d Definitions,
    root: &Value,
    path: &[Seg],
) -> Option<ElementCursor<'d>> {
    let mut cur = defs.root(root.get("resourceType")?.as_str()?)?;
    let mut json = root;
    let mut pending: Option<ChildStep<'d>> = None;
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if let Some(step) = pending.take() {
                    cur = resolve(defs, step, json)?;
                }
                pending = Some(defs.child(cur, k)?);
                json = json.get(k)?;
            }
            Seg::Index(i) => json = json.get(i)?,
        }
    }
    match pending {
        Some(step) => resolve(defs, step, json),
        None => Some(cur),
    }
}

fn resolve<'d>(
    defs: &'d Definitions,
    step: ChildStep<'d>,
    json: &Value,
) -> Option<ElementCursor<'d>> {
    let is_resource = matches!(step.type_code, Some("Resource" | "DomainResource"));
    if is_resource {
        return defs.root(json.get("resourceType")?.as_str()?);
    }
    defs.descend(step)
}
