//! FHIR's additions: `extension(url)`, `hasValue()`, `getValue()`, `resolve()`,
//! `memberOf()`, `conformsTo()`, `htmlChecks()`, `subsumes()`.

use serde_json::Value;

use super::{arg_string, single, Args, Func};
use crate::error::{EvalError, EvalResult};
use crate::eval::{Env, Evaluator};
use crate::item::{Collection, Item, Node};
use crate::navigation;

/// Finds the target of a literal reference inside the resources at hand: contained
/// resources (`#id`), the resource itself (`#`), or entries of a Bundle.
fn resolve_local<'a>(
    container: Option<&'a Value>,
    root: Option<&'a Value>,
    reference: &str,
) -> Option<&'a Value> {
    if let Some(id) = reference.strip_prefix('#') {
        let holder = container?;
        if id.is_empty() {
            return Some(holder);
        }
        return holder
            .get("contained")?
            .as_array()?
            .iter()
            .find(|r| r.get("id").and_then(Value::as_str) == Some(id));
    }
    let bundle =
        root.filter(|r| r.get("resourceType").and_then(Value::as_str) == Some("Bundle"))?;
    let entries = bundle.get("entry")?.as_array()?;
    let by_full_url = entries
        .iter()
        .find(|e| e.get("fullUrl").and_then(Value::as_str) == Some(reference));
    if let Some(e) = by_full_url {
        return e.get("resource");
    }
    // `Type/id` (possibly with a version) against the entries' resources.
    let mut parts = reference.rsplit('/');
    let mut last = parts.next()?;
    let mut typ = parts.next()?;
    if typ == "_history" {
        last = parts.next()?;
        typ = parts.next()?;
    }
    entries.iter().filter_map(|e| e.get("resource")).find(|r| {
        r.get("resourceType").and_then(Value::as_str) == Some(typ)
            && r.get("id").and_then(Value::as_str) == Some(last)
    })
}

/// The resource type of a literal reference: `Patient/1`, `http://x/fhir/Patient/1`,
/// `Patient/1/_history/2`.
fn reference_type(reference: &str) -> Option<&str> {
    let mut parts: Vec<&str> = reference.split('/').collect();
    if parts.len() >= 4 && parts[parts.len() - 2] == "_history" {
        parts.truncate(parts.len() - 2);
    }
    let n = parts.len();
    (n >= 2 && !parts[n - 1].is_empty()).then(|| parts[n - 2])
}

/// (system, code) pairs of a code, Coding or CodeableConcept item.
fn codings<'a>(item: &Item<'a>) -> Vec<(Option<&'a str>, String)> {
    match item {
        Item::Node(n) => {
            let v = n.value;
            match (n.type_name, v) {
                (Some("Coding"), Some(v)) => v
                    .get("code")
                    .and_then(Value::as_str)
                    .map(|c| vec![(v.get("system").and_then(Value::as_str), c.to_string())])
                    .unwrap_or_default(),
                (Some("CodeableConcept"), Some(v)) => v
                    .get("coding")
                    .and_then(Value::as_array)
                    .map(|cs| {
                        cs.iter()
                            .filter_map(|c| {
                                let code = c.get("code").and_then(Value::as_str)?;
                                Some((c.get("system").and_then(Value::as_str), code.to_string()))
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                (Some("Quantity"), Some(v)) => v
                    .get("code")
                    .and_then(Value::as_str)
                    .map(|c| vec![(v.get("system").and_then(Value::as_str), c.to_string())])
                    .unwrap_or_default(),
                _ => item
                    .as_str()
                    .map(|s| vec![(None, s.to_string())])
                    .unwrap_or_default(),
            }
        }
        other => other
            .as_str()
            .map(|s| vec![(None, s.to_string())])
            .unwrap_or_default(),
    }
}

pub(super) fn call<'a>(
    ev: &mut Evaluator<'_, 'a>,
    func: Func,
    input: Collection<'a>,
    args: Args,
    env: &Env<'_, 'a>,
) -> EvalResult<Collection<'a>> {
    match func {
        Func::HasExtension => {
            let found = call(ev, Func::Extension, input, args, env)?;
            Ok(Collection::one(Item::Boolean(!found.is_empty())))
        }
        Func::Extension => {
            let Some(url) = arg_string(ev, args, 0, env, func)? else {
                return Ok(Collection::new());
            };
            let mut exts = Vec::new();
            for item in input.iter() {
                if let Item::Node(n) = item {
                    navigation::child(ev.defs, n, "extension", true, &mut exts)?;
                }
            }
            Ok(exts
                .into_iter()
                .filter(|e| {
                    e.as_node()
                        .and_then(|n| n.value)
                        .and_then(|v| v.get("url"))
                        .and_then(Value::as_str)
                        == Some(url.as_str())
                })
                .collect())
        }
        Func::HasValue => {
            let has = match input.as_slice() {
                [Item::Node(n)] => {
                    n.is_primitive() && n.value.is_some_and(|v| !v.is_object() && !v.is_array())
                }
                _ => false,
            };
            Ok(Collection::one(Item::Boolean(has)))
        }
        Func::GetValue => {
            let Some(item) = single(&input, func)? else {
                return Ok(Collection::new());
            };
            Ok(match item {
                Item::Node(n) if n.is_primitive() => {
                    n.system().map(Collection::one).unwrap_or_default()
                }
                Item::Node(_) => Collection::new(),
                other => Collection::one(other.clone()),
            })
        }
        Func::Resolve => {
            let container = ev
                .resource()
                .first()
                .and_then(|i| i.as_node())
                .and_then(|n| n.value);
            let root = ev.root_resource_value();
            let mut out = Vec::new();
            for item in input.iter() {
                let reference = match item {
                    Item::Node(n)
                        if n.type_name == Some("Reference")
                            || n.value.is_some_and(Value::is_object) =>
                    {
                        n.value
                            .and_then(|v| v.get("reference"))
                            .and_then(Value::as_str)
                    }
                    other => other.as_str(),
                };
                let Some(reference) = reference else { continue };
                let found = resolve_local(container, root, reference)
                    .or_else(|| ev.ctx.resolver.and_then(|r| r.resolve(reference)));
                match found {
                    Some(v) => out.push(Item::Node(Node::root(ev.defs, v))),
                    None => {
                        // Not available: a placeholder typed by the reference, so that
                        // `where(resolve() is Patient)` works without fetching.
                        let defs = ev.defs;
                        let t = reference_type(reference)
                            .filter(|t| defs.is_resource_type(t))
                            .and_then(|t| defs.type_def(t))
                            .map(|td| td.type_name.as_str());
                        if let Some(t) = t {
                            let cursor = defs.root(t);
                            out.push(Item::Node(Node {
                                value: None,
                                ext: None,
                                type_name: Some(t),
                                key: "",
                                cursor,
                            }));
                        }
                    }
                }
            }
            Ok(Collection(out))
        }
        Func::MemberOf => {
            let Some(vs) = arg_string(ev, args, 0, env, func)? else {
                return Ok(Collection::new());
            };
            let Some(item) = single(&input, func)? else {
                return Ok(Collection::new());
            };
            let codes = codings(item);
            if codes.is_empty() {
                return Ok(Collection::new());
            }
            let member = if let Some(t) = ev.ctx.terminology {
                let mut any = false;
                for (system, code) in &codes {
                    if t.member_of(&vs, *system, code).map_err(EvalError::Hook)? {
                        any = true;
                        break;
                    }
                }
                any
            } else {
                let expansion =
                    ev.defs.terminology().expand(&vs).map_err(|e| {
                        EvalError::Hook(format!("cannot expand value set {vs}: {e:?}"))
                    })?;
                codes.iter().any(|(system, code)| {
                    expansion
                        .iter()
                        .any(|c| &c.code == code && system.is_none_or(|s| s == c.system))
                })
            };
            Ok(Collection::one(Item::Boolean(member)))
        }
        Func::ConformsTo => {
            let Some(url) = arg_string(ev, args, 0, env, func)? else {
                return Ok(Collection::new());
            };
            let mut out = Vec::new();
            for item in input.iter() {
                let Item::Node(n) = item else {
                    out.push(Item::Boolean(false));
                    continue;
                };
                let ok = if let (Some(p), Some(v)) = (ev.ctx.profiles, n.value) {
                    p.conforms_to(v, &url).map_err(EvalError::Hook)?
                } else {
                    let sd = ev
                        .defs
                        .structure(&url)
                        .ok_or_else(|| EvalError::Hook(format!("unknown profile {url}")))?;
                    if !sd.is_specialization() {
                        return Err(EvalError::Hook(format!(
                            "conformsTo({url}) needs a profile validator (none configured)"
                        )));
                    }
                    n.type_name
                        .is_some_and(|t| ev.defs.is_subtype(t, &sd.type_name))
                };
                out.push(Item::Boolean(ok));
            }
            Ok(Collection(out))
        }
        Func::HtmlChecks => Ok(Collection::one(Item::Boolean(true))),
        Func::Subsumes | Func::SubsumedBy => Err(EvalError::Hook(format!(
            "{}() needs a terminology server (not available)",
            func.name()
        ))),
        _ => Ok(Collection::new()),
    }
}
