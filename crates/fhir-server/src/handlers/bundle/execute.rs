//! Running one planned entry inside a database transaction, and its answer.

use super::*;

pub(super) fn status_line(code: u16) -> String {
    let reason = StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    format!("{code} {reason}")
}

pub(super) fn success(
    status: u16,
    stored: Option<&StoredResource>,
    ret: Return,
    with_location: bool,
) -> BundleEntry {
    let mut response = EntryResponse {
        status: status_line(status),
        ..Default::default()
    };
    let mut resource = None;
    if let Some(s) = stored {
        response.etag = Some(s.etag());
        response.last_modified = Some(fhir_instant(s.last_updated));
        if with_location {
            response.location = Some(s.versioned_path());
        }
        if !s.deleted {
            match ret {
                Return::Representation => {
                    resource = fhir_model::json::parse(s.content.as_bytes()).ok()
                }
                Return::OperationOutcome => {
                    let oo = OperationOutcome::of(Issue::information(
                        IssueType::Informational,
                        format!("{} {}", s.res_type, s.res_id),
                    ));
                    response.outcome = Some(oo.to_value());
                }
                Return::Minimal => {}
            }
        }
    }
    BundleEntry {
        resource,
        response: Some(response),
        ..Default::default()
    }
}

/// Replaces every `reference` that names a bundle entry's fullUrl (or is a conditional
/// reference) with the resolved `Type/id`, in the whole resource (contained resources
/// and extensions included).
pub(super) fn rewrite(
    value: &mut Value,
    map: &HashMap<String, String>,
    conditional: &HashMap<String, String>,
    missing: &mut Vec<String>,
) {
    match value {
        Value::Object(obj) => {
            for (k, v) in obj.iter_mut() {
                if k == "reference" {
                    if let Value::String(r) = v {
                        if let Some(to) =
                            map.get(r.as_str()).or_else(|| conditional.get(r.as_str()))
                        {
                            *r = to.clone();
                        } else if r.starts_with("urn:uuid:") || r.starts_with("urn:oid:") {
                            missing.push(r.clone());
                        }
                    }
                } else {
                    rewrite(v, map, conditional, missing);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|i| rewrite(i, map, conditional, missing)),
        _ => {}
    }
}

/// Conditional references (`Patient?identifier=…`) in the resource of entry `entry`,
/// each with the first entry that holds it.
pub(super) fn conditional_refs(value: &Value, entry: usize, out: &mut HashMap<String, usize>) {
    match value {
        Value::Object(obj) => {
            for (k, v) in obj {
                match (k.as_str(), v) {
                    ("reference", Value::String(r)) if r.contains('?') && !r.starts_with('#') => {
                        out.entry(r.clone()).or_insert(entry);
                    }
                    _ => conditional_refs(v, entry, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| conditional_refs(i, entry, out)),
        _ => {}
    }
}

pub(super) fn store_err(index: usize) -> impl Fn(StoreError) -> EntryError {
    move |e| entry_err(index, ApiError::from(e))
}

/// Threads that prepare a transaction's creates (index extraction, serialising) while
/// the first are written, for transactions of at least [`PARALLEL_FROM`] creates.
const PREPARING_THREADS: usize = 2;
const PARALLEL_FROM: usize = 128;

/// Runs POST entries that create (no `ifNoneExist` match; ids already assigned), in
/// order, with one [`TxOps::create_many`]: the same versions and answers as
/// [`execute`] one by one. A failure is the first entry's (the store does not say
/// which one failed; only a database error can, as the ids are new).
pub(super) fn execute_creates(
    ops: &mut TxOps<'_, '_>,
    plans: Vec<Planned>,
    ret: Return,
) -> Result<Vec<BundleEntry>, EntryError> {
    let first = plans.first().map_or(0, |p| p.index);
    let threads = if plans.len() >= PARALLEL_FROM {
        PREPARING_THREADS
    } else {
        1
    };
    let resources = plans
        .into_iter()
        .map(|p| {
            let mut resource = p.resource.unwrap_or(Value::Null);
            if let Some(o) = resource.as_object_mut() {
                o.shift_remove("id");
            }
            fhir_store::NewResource {
                res_type: p.resource_type,
                id: p.id,
                resource,
            }
        })
        .collect();
    let stored = ops
        .create_many(resources, threads)
        .map_err(store_err(first))?;
    Ok(stored
        .iter()
        .map(|s| success(201, Some(s), ret, true))
        .collect())
}

/// Runs one planned entry (ids already resolved).
pub(super) fn execute(
    ops: &mut TxOps<'_, '_>,
    state: &AppState,
    base: &str,
    p: Planned,
    existing: Option<String>,
    ret: Return,
    patching: &Patching,
) -> Result<BundleEntry, EntryError> {
    let defs = state.defs;
    let e = store_err(p.index);
    let rt = p.resource_type.as_str();
    match p.method {
        // A read is checked on the version it returns (below).
        Method::Put => check_confined(ops, defs, &p, Interaction::Update)?,
        Method::Delete => check_confined(ops, defs, &p, Interaction::Delete)?,
        _ => {}
    }
    match p.method {
        Method::Delete => {
            let deleted = match (&p.id, &p.conditions) {
                (Some(id), _) => ops.delete(rt, id, p.pre),
                (None, Some(c)) => ops.conditional_delete(rt, c, p.pre),
                _ => Ok(Deleted::NotFound),
            }
            .map_err(&e)?;
            let stored = match &deleted {
                Deleted::Now(s) | Deleted::Already(s) => Some(s),
                Deleted::NotFound => None,
            };
            Ok(success(204, stored, Return::Minimal, false))
        }
        Method::Post => {
            if let Some(found) = existing {
                let stored = ops.read(rt, &found).map_err(&e)?;
                return Ok(success(200, stored.as_ref(), ret, true));
            }
            let mut resource = p.resource.unwrap_or(Value::Null);
            if let Some(o) = resource.as_object_mut() {
                o.shift_remove("id");
            }
            match ops
                .create(rt, resource, None, p.id.as_deref())
                .map_err(&e)?
            {
                Created::New(s) => Ok(success(201, Some(&s), ret, true)),
                Created::Existing(s) => Ok(success(200, Some(&s), ret, true)),
            }
        }
        Method::Put => {
            let id = p.id.ok_or_else(|| {
                entry_err(
                    p.index,
                    ApiError::Internal("PUT without a resolved id".into()),
                )
            })?;
            let mut resource = p.resource.unwrap_or(Value::Null);
            if let Some(o) = resource.as_object_mut() {
                o.insert("id".into(), Value::String(id.clone()));
            }
            let u = ops.update(rt, &id, resource, p.pre).map_err(&e)?;
            Ok(success(
                if u.created { 201 } else { 200 },
                Some(&u.stored),
                ret,
                true,
            ))
        }
        Method::Patch => {
            let patch = p.patch.ok_or_else(|| {
                entry_err(p.index, ApiError::Internal("PATCH without a patch".into()))
            })?;
            let apply = apply_patch(
                defs,
                rt.to_string(),
                patch,
                patching.lenient,
                patching.validator.clone(),
            );
            let u = match (&p.id, &p.conditions) {
                (Some(id), _) => ops.patch(rt, id, p.pre, apply),
                (None, Some(c)) => ops.conditional_patch(rt, c, p.pre, apply),
                _ => Err(StoreError::NotFound {
                    resource_type: rt.into(),
                    id: "?".into(),
                }),
            }
            .map_err(&e)?;
            Ok(success(200, Some(&u.stored), ret, true))
        }
        Method::Search => {
            let Some(search) = p.search else {
                return Err(entry_err(p.index, ApiError::Internal("no search".into())));
            };
            let mut page = ops.search(&search.request).map_err(&e)?;
            restrict_included(state, &search, &mut page).map_err(&e)?;
            let bundle =
                searchset(state, base, &search, &page).map_err(|x| entry_err(p.index, x))?;
            Ok(search_entry(bundle))
        }
        Method::Get => {
            let id = p.id.clone().unwrap_or_default();
            let stored = match p.version {
                Some(v) => ops.vread(rt, &id, v),
                None => ops.read(rt, &id),
            }
            .map_err(&e)?;
            match stored {
                None => Err(entry_err(
                    p.index,
                    ApiError::NotFound(format!("{rt}/{id} is not known")),
                )),
                Some(s) if s.deleted => Err(entry_err(
                    p.index,
                    ApiError::Gone(format!("{rt}/{id} was deleted")),
                )),
                Some(s) => {
                    check_stored(ops, defs, &p, Interaction::Read, &s)?;
                    let (none_match, since) = &p.read_if;
                    if NoneMatch::not_modified(
                        none_match.as_ref(),
                        *since,
                        s.version,
                        s.last_updated,
                    ) {
                        return Ok(success(304, Some(&s), Return::Minimal, false));
                    }
                    Ok(success(200, Some(&s), Return::Representation, false))
                }
            }
        }
    }
}

pub(super) fn failure_outcome(err: &EntryError, kind: &str) -> (StatusCode, OperationOutcome) {
    let mut oo = err.error.outcome();
    let at = format!("Bundle.entry[{}]", err.index);
    for i in &mut oo.issue {
        if i.expression.is_empty() {
            i.expression.push(at.clone());
        }
        let text = format!("{kind} entry {}: {}", err.index, i.text());
        i.details = Some(fhir_model::CodeableConcept::text(text));
    }
    (actix_web::ResponseError::status_code(&err.error), oo)
}
