//! `POST [base]` with a `batch` or `transaction` Bundle (http.html#transaction,
//! bundle.html).
//!
//! A transaction runs in one database transaction: entries are planned and checked
//! first, then inside the transaction `urn:uuid:`/`urn:oid:` full URLs and conditional
//! references (`Patient?identifier=…`) are resolved, references are rewritten everywhere
//! in the entries' resources, and the entries run in the order DELETE, POST, PUT/PATCH,
//! GET. Any failure rolls everything back and answers an OperationOutcome naming the
//! entry. A batch runs each entry on its own and reports each outcome.

use std::collections::{HashMap, HashSet};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use fhir_model::{
    Bundle, BundleEntry, BundleType, EntryResponse, Issue, IssueType, OperationOutcome,
};
use fhir_search::{Clause, SearchRegistry};
use fhir_store::time::fhir_instant;
use fhir_store::{Created, Deleted, Precondition, StoreError, StoredResource, TxOps};
use serde_json::Value;

use super::idempotency::Idempotent;
use crate::error::ApiError;
use crate::http::body::{parse_json, read_limited};
use crate::http::headers::{parse_etag_version, NoneMatch};
use crate::http::negotiate::{output, require_json_body};
use crate::http::prefer::{prefer, Handling, Return};
use crate::http::respond;
use crate::state::{valid_id, AppState};

use super::crud::{apply_patch, check_resource};
use super::search::{pairs_of, prepare, restrict_included, searchset, Prepared};
use crate::auth::scopes::Interaction;
use crate::auth::{guard, Grant};

/// What an entry asks for, checked before anything runs.
#[derive(Debug, Clone)]
struct Planned {
    index: usize,
    method: Method,
    resource_type: String,
    id: Option<String>,
    version: Option<i64>,
    conditions: Option<Vec<Clause>>,
    resource: Option<Value>,
    patch: Option<json_patch::Patch>,
    full_url: Option<String>,
    pre: Precondition,
    if_none_exist: Option<Vec<Clause>>,
    /// The query strings behind `conditions` and `if_none_exist`, as sent: they may
    /// name other entries by fullUrl, substituted once those are resolved.
    raw_conditions: Option<String>,
    raw_if_none_exist: Option<String>,
    /// The patient whose compartment the entry's target must be in (patient scopes).
    confine: Option<String>,
    /// A GET entry that searches (`Type?query`): the search, already confined.
    search: Option<Box<Prepared>>,
    /// A GET entry's `ifNoneMatch` and `ifModifiedSince` (ms): 304 when they hold.
    read_if: (Option<NoneMatch>, Option<i64>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Method {
    Delete,
    Post,
    Put,
    Patch,
    Get,
    /// GET or HEAD of `Type?query` (or `Type`): a search.
    Search,
}

/// An entry's failure: its HTTP status and outcome.
struct EntryError {
    index: usize,
    error: ApiError,
}

fn entry_err(index: usize, error: ApiError) -> EntryError {
    EntryError { index, error }
}

pub async fn post_bundle(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    require_json_body(&req)?;
    let out = output(&req)?;
    let bytes = read_limited(&req, payload, state.max_body_bytes).await?;
    let mut bundle = parse_json(&bytes)?;
    let idem = super::idempotency::of(&req, &bytes)?;
    drop(bytes);
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(ApiError::bad_at(
            "POST to the base URL takes a batch or transaction Bundle",
            "resourceType",
        ));
    }
    // The Bundle's own elements here; each entry's resource when its entry is planned,
    // so that a bad entry of a batch fails alone. The entries are moved, not copied:
    // a large transaction is held in memory once.
    let mut entries = match bundle.as_object_mut().and_then(|o| o.shift_remove("entry")) {
        Some(Value::Array(entries)) => entries,
        Some(_) => {
            return Err(ApiError::bad_at(
                "Bundle.entry must be an array",
                "Bundle.entry",
            ))
        }
        None => Vec::new(),
    };
    let shells: Vec<Value> = entries
        .iter()
        .map(|e| match e {
            Value::Object(o) => Value::Object(
                o.iter()
                    .filter(|(k, _)| *k != "resource")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            other => other.clone(),
        })
        .collect();
    if let Some(o) = bundle.as_object_mut() {
        if !shells.is_empty() {
            o.insert("entry".into(), Value::Array(shells));
        }
    }
    check_resource(&state, &req, &bundle, "Bundle")?;
    let kind = bundle.get("type").and_then(Value::as_str).unwrap_or("");
    let ret = prefer(&req).return_;
    let base = state.base(&req);
    let response = match kind {
        "transaction" => {
            if let Some(i) = &idem {
                if let Some(replayed) = super::idempotency::replay(&state, i, out).await? {
                    return Ok(replayed);
                }
            }
            let verdicts = validate_entries(&state, &req, &mut entries).await?;
            transaction(&state, &req, entries, &verdicts, &base, ret, idem).await?
        }
        "batch" => {
            let verdicts = validate_entries(&state, &req, &mut entries).await?;
            batch(&state, &req, entries, &verdicts, &base, ret).await
        }
        other => {
            return Err(ApiError::bad_at(
                format!("Bundle.type '{other}' cannot be processed: send a batch or a transaction"),
                "Bundle.type",
            ))
        }
    };
    Ok(respond::json(StatusCode::OK, &response.to_value(), out))
}

// ------------------------------------------------------------------------ planning

/// Validates the resources that POST and PUT entries write (all at once, off the
/// executor): for each entry, the 422 it fails with, if any.
async fn validate_entries(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    entries: &mut [Value],
) -> Result<Vec<Option<ApiError>>, ApiError> {
    let strictness = crate::validation::strictness(state, req);
    let writes = |e: &Value| {
        matches!(
            e.get("request")
                .and_then(|r| r.get("method"))
                .and_then(Value::as_str),
            Some("POST" | "PUT")
        )
    };
    // Moved out for the validating thread and put back after.
    let resources = entries
        .iter_mut()
        .map(|e| {
            let checked = strictness != crate::validation::Strictness::Lenient && writes(e);
            e.as_object_mut()
                .filter(|_| checked)
                .and_then(|o| o.shift_remove("resource"))
        })
        .collect();
    let (resources, reports) = crate::validation::check_many(state, resources).await?;
    for (e, r) in entries.iter_mut().zip(resources) {
        if let (Some(o), Some(r)) = (e.as_object_mut(), r) {
            o.insert("resource".into(), r);
        }
    }
    Ok(reports
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.filter(|r| crate::validation::rejects(r, strictness))
                .map(|r| {
                    relocate(
                        ApiError::Invalid(
                            r.to_operation_outcome(),
                            StatusCode::UNPROCESSABLE_ENTITY,
                        ),
                        &format!("Bundle.entry[{i}].resource"),
                    )
                })
        })
        .collect())
}

/// The validation failure of entry `i`, if any (taken: each is answered once).
fn invalid(verdicts: &[Option<ApiError>], i: usize) -> Option<ApiError> {
    match verdicts.get(i) {
        Some(Some(ApiError::Invalid(oo, status))) => Some(ApiError::Invalid(oo.clone(), *status)),
        _ => None,
    }
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The parts of an entry's `request.url`.
struct EntryUrl {
    resource_type: String,
    id: Option<String>,
    version: Option<i64>,
    query: Option<String>,
}

/// `Patient`, `Patient/1`, `Patient/1/_history/2`, `Patient?x=y`, possibly absolute.
fn parse_url(state: &AppState, base: &str, url: &str, at: &str) -> Result<EntryUrl, ApiError> {
    let rel = url
        .strip_prefix(base)
        .map(|r| r.trim_start_matches('/'))
        .unwrap_or(url);
    let (path, query) = match rel.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (rel, None),
    };
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let bad = || {
        ApiError::bad_at(
            format!("request.url '{url}' is not a resource URL this server handles"),
            at,
        )
    };
    let (rt, id, version) = match parts.as_slice() {
        [t] => (*t, None, None),
        [t, id] => (*t, Some(*id), None),
        [t, id, "_history", v] => (*t, Some(*id), Some(v.parse::<i64>().map_err(|_| bad())?)),
        _ => return Err(bad()),
    };
    if !state.defs.is_resource_type(rt) {
        return Err(ApiError::bad_at(
            format!("request.url names an unknown resource type '{rt}'"),
            at,
        ));
    }
    if id.is_some_and(|i| !valid_id(i)) {
        return Err(ApiError::bad_at(
            format!("request.url '{url}' has an invalid id"),
            at,
        ));
    }
    Ok(EntryUrl {
        resource_type: rt.to_string(),
        id: id.map(str::to_string),
        version,
        query,
    })
}

fn conditions(rt: &str, query: &str, at: &str) -> Result<Vec<Clause>, ApiError> {
    let parsed = fhir_search::parse_query_string(SearchRegistry::r4(), Some(rt), query, true)
        .map_err(|e| ApiError::bad_at(e.to_string(), at))?;
    if parsed.clauses.is_empty() {
        return Err(ApiError::bad_at(
            "a conditional request needs search parameters",
            at,
        ));
    }
    Ok(parsed.clauses)
}

/// A JSON Patch carried in a Binary resource (`contentType` application/json-patch+json).
fn binary_patch(resource: &Value, at: &str) -> Result<json_patch::Patch, ApiError> {
    let ok_type = str_at(resource, "contentType")
        .is_some_and(|c| c.starts_with("application/json-patch+json"));
    if str_at(resource, "resourceType") != Some("Binary") || !ok_type {
        return Err(ApiError::bad_at(
            "a PATCH entry carries a Binary with contentType application/json-patch+json",
            at,
        ));
    }
    let data = str_at(resource, "data").unwrap_or("");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| ApiError::bad_at("Binary.data is not base64", at))?;
    let doc = parse_json(&bytes)?;
    serde_json::from_value(doc)
        .map_err(|e| ApiError::bad_at(format!("not a valid JSON Patch: {e}"), at))
}

fn plan(
    state: &AppState,
    req: &HttpRequest,
    base: &str,
    index: usize,
    mut entry: Value,
) -> Result<Planned, ApiError> {
    // The resource is moved out of the entry: a large Bundle is held once.
    let resource = entry
        .as_object_mut()
        .and_then(|o| o.shift_remove("resource"));
    let entry = &entry;
    let at = format!("Bundle.entry[{index}]");
    let request = entry
        .get("request")
        .ok_or_else(|| ApiError::bad_at("the entry has no request", &at))?;
    let req_at = format!("{at}.request");
    let method = match str_at(request, "method") {
        Some("GET") | Some("HEAD") => Method::Get,
        Some("POST") => Method::Post,
        Some("PUT") => Method::Put,
        Some("PATCH") => Method::Patch,
        Some("DELETE") => Method::Delete,
        other => {
            return Err(ApiError::bad_at(
                format!("request.method {other:?} is not GET, HEAD, POST, PUT, PATCH or DELETE"),
                req_at,
            ))
        }
    };
    let url = str_at(request, "url")
        .ok_or_else(|| ApiError::bad_at("the entry's request has no url", &req_at))?;
    let url_at = format!("{req_at}.url");
    let EntryUrl {
        resource_type: rt,
        id,
        version,
        query,
    } = parse_url(state, base, url, &url_at)?;
    let method = match method {
        Method::Get if id.is_none() => Method::Search,
        m => m,
    };
    let mut pre = Precondition::default();
    if let Some(m) = str_at(request, "ifMatch") {
        pre.if_match = Some(parse_etag_version(m).ok_or_else(|| {
            ApiError::bad_at(
                format!("ifMatch '{m}' is not a version ETag"),
                format!("{req_at}.ifMatch"),
            )
        })?);
    }
    pre.if_none_match_any = str_at(request, "ifNoneMatch") == Some("*");
    let modified_since = match str_at(request, "ifModifiedSince") {
        Some(t) => Some(fhir_store::time::parse_fhir_instant(t).ok_or_else(|| {
            ApiError::bad_at(
                format!("ifModifiedSince '{t}' is not an instant"),
                format!("{req_at}.ifModifiedSince"),
            )
        })?),
        None => None,
    };
    let read_if = (
        str_at(request, "ifNoneMatch").map(NoneMatch::parse),
        modified_since,
    );
    let raw_if_none_exist =
        str_at(request, "ifNoneExist").map(|q| q.split_once('?').map_or(q, |(_, q)| q).to_string());
    let if_none_exist = raw_if_none_exist
        .as_deref()
        .map(|q| conditions(&rt, q, &format!("{req_at}.ifNoneExist")))
        .transpose()?;
    let conditions = match method {
        Method::Search | Method::Get => None,
        _ => query
            .as_deref()
            .map(|q| conditions(&rt, q, &url_at))
            .transpose()?,
    };
    let res_at = format!("{at}.resource");
    let mut patch = None;
    match method {
        Method::Post | Method::Put => {
            let r = resource
                .as_ref()
                .ok_or_else(|| ApiError::bad_at("the entry has no resource", &res_at))?;
            check_resource(state, req, r, &rt).map_err(|e| relocate(e, &res_at))?;
            if method == Method::Put && id.is_none() && conditions.is_none() {
                return Err(ApiError::bad_at(
                    "PUT needs Type/id or a conditional Type?query url",
                    url_at,
                ));
            }
            if let (Method::Put, Some(id), Some(body_id)) = (method, &id, str_at(r, "id")) {
                if id != body_id {
                    return Err(ApiError::bad_at(
                        format!("the resource id '{body_id}' does not match request.url"),
                        format!("{res_at}.id"),
                    ));
                }
            }
        }
        Method::Patch => {
            let r = resource.as_ref().ok_or_else(|| {
                ApiError::bad_at("the PATCH entry has no Binary resource", &res_at)
            })?;
            patch = Some(binary_patch(r, &res_at)?);
            if id.is_none() && conditions.is_none() {
                return Err(ApiError::bad_at(
                    "PATCH needs Type/id or Type?query",
                    url_at,
                ));
            }
        }
        Method::Delete if id.is_none() && conditions.is_none() => {
            return Err(ApiError::bad_at(
                "DELETE needs Type/id or Type?query",
                url_at,
            ))
        }
        _ => {}
    }
    let search = match method {
        // The search is confined to the caller's scopes as a search request is.
        Method::Search => Some(Box::new(
            prepare(
                state,
                req,
                Some(rt.clone()),
                pairs_of(query.as_deref().unwrap_or("")),
                None,
                format!("/{rt}"),
            )
            .map_err(|e| relocate(e, &url_at))?,
        )),
        _ => None,
    };
    let conditional = conditions.is_some() || if_none_exist.is_some();
    let raw_conditions = conditions.as_ref().and(query);
    let confine = match method {
        Method::Search => None,
        _ => authorize(state, req, method, &rt, conditional, resource.as_ref())?,
    };
    Ok(Planned {
        index,
        method,
        resource_type: rt,
        id,
        version,
        conditions,
        resource: if method == Method::Patch {
            None
        } else {
            resource
        },
        patch,
        full_url: str_at(entry, "fullUrl").map(str::to_string),
        pre,
        if_none_exist,
        raw_conditions,
        raw_if_none_exist,
        confine,
        search,
        read_if,
    })
}

/// Checks an entry against the caller's scopes; the patient to confine it to, if any.
fn authorize(
    state: &AppState,
    req: &HttpRequest,
    method: Method,
    rt: &str,
    conditional: bool,
    resource: Option<&Value>,
) -> Result<Option<String>, ApiError> {
    let interaction = match method {
        Method::Get | Method::Search => Interaction::Read,
        Method::Post => Interaction::Create,
        Method::Put | Method::Patch => Interaction::Update,
        Method::Delete => Interaction::Delete,
    };
    if method != Method::Get && (conditional || method == Method::Patch || rt == "AuditEvent") {
        guard::ensure_unrestricted(state, req, interaction, rt, "a conditional or patch entry")?;
        return Ok(None);
    }
    let grant = match (method, resource) {
        (Method::Post | Method::Put, Some(r)) => {
            let g = guard::ensure_content(state, req, interaction, rt, r)?;
            if method == Method::Put && g != Grant::All {
                // The entry may create the resource: both must be allowed.
                guard::ensure_content(state, req, Interaction::Create, rt, r)?;
            }
            g
        }
        _ => guard::grant(req, interaction, rt)?,
    };
    match grant {
        Grant::All => Ok(None),
        Grant::Patient(p) => Ok(Some(p)),
        Grant::Rules(_) => Err(ApiError::Forbidden(format!(
            "search-constrained scopes for {rt} are not supported inside Bundles; use a plain search"
        ))),
    }
}

/// For patient-confined entries: the existing target must be in the compartment.
fn check_confined(
    ops: &mut TxOps<'_, '_>,
    defs: &'static fhir_model::Definitions,
    p: &Planned,
    interaction: Interaction,
) -> Result<(), EntryError> {
    let (Some(patient), Some(id)) = (&p.confine, &p.id) else {
        return Ok(());
    };
    let rt = p.resource_type.as_str();
    let existing = ops.read(rt, id).map_err(store_err(p.index))?;
    let Some(existing) = existing.filter(|e| !e.deleted) else {
        return Ok(());
    };
    let value = fhir_model::json::parse(existing.content.as_bytes())
        .map_err(|e| entry_err(p.index, ApiError::Internal(e.to_string())))?;
    if guard::patient_allows(defs, interaction, rt, &value, patient) {
        Ok(())
    } else {
        Err(entry_err(
            p.index,
            ApiError::Forbidden(format!(
                "{rt}/{id} is outside what the granted scopes allow"
            )),
        ))
    }
}

/// Prefixes an error's location with the entry's resource path.
fn relocate(e: ApiError, prefix: &str) -> ApiError {
    match e {
        ApiError::BadRequest {
            message,
            expression,
            code,
        } => ApiError::BadRequest {
            message,
            expression: Some(match expression {
                Some(x) => format!(
                    "{prefix}{}",
                    x.split_once('.')
                        .map_or(String::new(), |(_, r)| format!(".{r}"))
                ),
                None => prefix.to_string(),
            }),
            code,
        },
        ApiError::Invalid(mut oo, status) => {
            for i in &mut oo.issue {
                for x in &mut i.expression {
                    *x = format!(
                        "{prefix}{}",
                        x.split_once('.')
                            .map_or(String::new(), |(_, r)| format!(".{r}"))
                    );
                }
            }
            ApiError::Invalid(oo, status)
        }
        other => other,
    }
}

// --------------------------------------------------------------------- execution

fn status_line(code: u16) -> String {
    let reason = StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    format!("{code} {reason}")
}

fn success(
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
fn rewrite(
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

/// Conditional references (`Patient?identifier=…`) in a resource.
fn conditional_refs(value: &Value, out: &mut HashSet<String>) {
    match value {
        Value::Object(obj) => {
            for (k, v) in obj {
                match (k.as_str(), v) {
                    ("reference", Value::String(r)) if r.contains('?') && !r.starts_with('#') => {
                        out.insert(r.clone());
                    }
                    _ => conditional_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| conditional_refs(i, out)),
        _ => {}
    }
}

fn store_err(index: usize) -> impl Fn(StoreError) -> EntryError {
    move |e| entry_err(index, ApiError::from(e))
}

/// Runs one planned entry (ids already resolved).
fn execute(
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
        Method::Get => check_confined(ops, defs, &p, Interaction::Read)?,
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
            Ok(BundleEntry {
                resource: Some(bundle.to_value()),
                response: Some(EntryResponse {
                    status: status_line(200),
                    ..Default::default()
                }),
                ..Default::default()
            })
        }
        Method::Get => {
            let id = p.id.unwrap_or_default();
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

fn failure_outcome(err: &EntryError, kind: &str) -> (StatusCode, OperationOutcome) {
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

// ------------------------------------------------------------------- transaction

/// How PATCH entries check what they produce: like a single PATCH, structure and (when
/// writes are validated) the validator, unless `Prefer: handling=lenient`.
#[derive(Clone)]
struct Patching {
    lenient: bool,
    validator: Option<std::sync::Arc<fhir_validation::Validator>>,
}

impl Patching {
    async fn of(
        state: &web::Data<AppState>,
        req: &HttpRequest,
        patches: bool,
    ) -> Result<Patching, ApiError> {
        let lenient = prefer(req).handling == Some(Handling::Lenient);
        let validator = if patches {
            super::crud::patch_validator(state, lenient).await?
        } else {
            None
        };
        Ok(Patching { lenient, validator })
    }
}

async fn transaction(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    entries: Vec<Value>,
    verdicts: &[Option<ApiError>],
    base: &str,
    ret: Return,
    idem: Option<Idempotent>,
) -> Result<Bundle, ApiError> {
    let mut plans = Vec::with_capacity(entries.len());
    let mut full_urls = HashSet::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let p = plan(state, req, base, i, entry)
            .map_err(|e| fail(EntryError { index: i, error: e }, "transaction"))?;
        if let Some(e) = invalid(verdicts, i) {
            return Err(fail(entry_err(i, e), "transaction"));
        }
        if let Some(f) = &p.full_url {
            if !full_urls.insert(f.clone()) {
                let at = format!("Bundle.entry[{i}].fullUrl");
                return Err(fail(
                    entry_err(
                        i,
                        ApiError::bad_at(format!("fullUrl '{f}' appears twice"), at),
                    ),
                    "transaction",
                ));
            }
        }
        plans.push(p);
    }
    let audit_events = plans
        .iter()
        .any(|p| p.search.as_ref().is_some_and(|s| s.reads_audit_events()));
    crate::audit::sync(state, audit_events).await?;
    let patching =
        Patching::of(state, req, plans.iter().any(|p| p.method == Method::Patch)).await?;
    let n = plans.len();
    let with = RunWith {
        ret,
        patching,
        idem,
    };
    let result = run_planned(state, req, plans, base, with, n).await?;
    let entries = result.map_err(|e| fail(e, "transaction"))?;
    Ok(transaction_response(entries))
}

fn transaction_response(entries: Vec<BundleEntry>) -> Bundle {
    let mut bundle = Bundle::new(BundleType::TransactionResponse);
    bundle.entry = entries;
    bundle.timestamp = Some(fhir_instant(fhir_store::time::now_millis()));
    bundle
}

fn fail(err: EntryError, kind: &str) -> ApiError {
    // Failures of the server rather than of an entry keep their own answer (503 with
    // Retry-After, 507).
    if matches!(
        err.error,
        ApiError::Unavailable(_) | ApiError::Timeout | ApiError::StorageFull(_)
    ) {
        return err.error;
    }
    let (status, oo) = failure_outcome(&err, kind);
    ApiError::Invalid(oo, status)
}

/// What step 1 of a transaction learns about the entries' targets.
#[derive(Default)]
struct Identities {
    /// fullUrl → `Type/id`.
    map: HashMap<String, String>,
    /// Entries (POST with `ifNoneExist`) that found their resource: index → id.
    existing: HashMap<usize, String>,
    /// `Type/id` → the entry writing it.
    targets: HashMap<String, usize>,
    /// `Type?query` of conditional entries → `Type/id`, for conditional references.
    in_bundle: HashMap<String, String>,
}

/// The fullUrls of entries that an entry's conditions name (`subject=urn:uuid:…`).
fn named_entries(p: &Planned, full_urls: &HashSet<String>) -> Vec<String> {
    [&p.raw_conditions, &p.raw_if_none_exist]
        .into_iter()
        .flatten()
        .flat_map(|q| pairs_of(q))
        .flat_map(|(_, v)| v.split(',').map(str::to_string).collect::<Vec<_>>())
        .filter(|v| full_urls.contains(v))
        .collect()
}

/// A query with values that are entries' fullUrls replaced by their `Type/id`.
fn substitute(query: &str, map: &HashMap<String, String>) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs_of(query) {
        let v: Vec<&str> = v
            .split(',')
            .map(|part| map.get(part).map_or(part, String::as_str))
            .collect();
        out.append_pair(&k, &v.join(","));
    }
    out.finish()
}

/// A condition in one spelling (decoded and encoded again), to compare conditions.
fn condition_key(rt: &str, query: &str) -> String {
    format!("{rt}?{}", substitute(query, &HashMap::new()))
}

fn circular(plans: &[Planned], pending: &[usize]) -> EntryError {
    let indexes: Vec<String> = pending
        .iter()
        .map(|&k| plans[k].index.to_string())
        .collect();
    let first = plans[pending[0]].index;
    entry_err(
        first,
        ApiError::bad_at(
            format!(
                "circular conditional references: the conditions of entries {} name each other by fullUrl",
                indexes.join(", ")
            ),
            format!("Bundle.entry[{first}].request"),
        ),
    )
}

/// Step 1 for one entry: resolves what it writes (a new id, the match of its
/// `ifNoneExist`, the target of a conditional PUT), after putting the `Type/id` of
/// entries its conditions name into them.
fn identify(
    ops: &mut TxOps<'_, '_>,
    p: &mut Planned,
    names_entries: bool,
    ids: &mut Identities,
) -> Result<(), EntryError> {
    let e = store_err(p.index);
    let rt = p.resource_type.clone();
    let req_at = format!("Bundle.entry[{}].request", p.index);
    if names_entries {
        let reparse = |raw: &Option<String>, at: &str| {
            raw.as_deref()
                .map(|q| conditions(&rt, &substitute(q, &ids.map), at))
                .transpose()
                .map_err(|x| entry_err(p.index, x))
        };
        let if_none_exist = reparse(&p.raw_if_none_exist, &format!("{req_at}.ifNoneExist"))?;
        let conds = reparse(&p.raw_conditions, &format!("{req_at}.url"))?;
        p.if_none_exist = if_none_exist.or(p.if_none_exist.take());
        p.conditions = conds.or(p.conditions.take());
    }
    match p.method {
        Method::Post => {
            let found = match &p.if_none_exist {
                Some(c) => ops.single_match(&rt, c).map_err(&e)?,
                None => None,
            };
            let id = match found {
                Some(f) => {
                    ids.existing.insert(p.index, f.clone());
                    f
                }
                None => fhir_store::new_id(),
            };
            if let Some(q) = &p.raw_if_none_exist {
                ids.in_bundle
                    .insert(condition_key(&rt, q), format!("{rt}/{id}"));
            }
            p.id = Some(id);
        }
        Method::Put if p.id.is_none() => {
            let c = p.conditions.clone().unwrap_or_default();
            let body_id = p
                .resource
                .as_ref()
                .and_then(|r| str_at(r, "id"))
                .map(str::to_string);
            let id = ops
                .conditional_update_target(&rt, &c, body_id.as_deref())
                .map_err(&e)?;
            if let Some(q) = &p.raw_conditions {
                ids.in_bundle
                    .insert(condition_key(&rt, q), format!("{rt}/{id}"));
            }
            p.id = Some(id);
        }
        _ => {}
    }
    if let (Some(full), Some(id)) = (&p.full_url, &p.id) {
        ids.map.insert(full.clone(), format!("{rt}/{id}"));
    }
    let writes = matches!(
        p.method,
        Method::Post | Method::Put | Method::Patch | Method::Delete
    );
    if let (true, Some(id), false) = (writes, &p.id, ids.existing.contains_key(&p.index)) {
        if let Some(first) = ids.targets.insert(format!("{rt}/{id}"), p.index) {
            let msg = format!("entries {first} and {} both write {rt}/{id}", p.index);
            return Err(entry_err(p.index, ApiError::bad(msg)));
        }
    }
    Ok(())
}

fn run_transaction(
    ops: &mut TxOps<'_, '_>,
    state: &AppState,
    base: &str,
    mut plans: Vec<Planned>,
    ret: Return,
    patching: &Patching,
) -> Result<Vec<BundleEntry>, EntryError> {
    let defs = state.defs;
    // 1. Identities: what each entry writes, and what its fullUrl stands for. An entry
    // whose conditions name other entries by fullUrl waits until those are known.
    let mut ids = Identities::default();
    let full_urls: HashSet<String> = plans.iter().filter_map(|p| p.full_url.clone()).collect();
    let waits: Vec<Vec<String>> = plans.iter().map(|p| named_entries(p, &full_urls)).collect();
    let mut known: HashSet<String> = HashSet::new();
    let mut pending: Vec<usize> = (0..plans.len()).collect();
    while !pending.is_empty() {
        let ready: Vec<usize> = pending
            .iter()
            .copied()
            .filter(|&k| waits[k].iter().all(|u| known.contains(u)))
            .collect();
        if ready.is_empty() {
            return Err(circular(&plans, &pending));
        }
        for &k in &ready {
            identify(ops, &mut plans[k], !waits[k].is_empty(), &mut ids)?;
            known.extend(plans[k].full_url.clone());
        }
        pending.retain(|k| !ready.contains(k));
    }
    let Identities {
        map,
        existing,
        in_bundle,
        ..
    } = ids;
    // 2. Conditional references, then rewriting of every reference.
    let mut refs = HashSet::new();
    for p in &plans {
        if let Some(r) = &p.resource {
            conditional_refs(r, &mut refs);
        }
    }
    let mut conditional = HashMap::new();
    for r in refs {
        let index = plans
            .iter()
            .find(|p| {
                p.resource
                    .as_ref()
                    .is_some_and(|res| res.to_string().contains(&r))
            })
            .map_or(0, |p| p.index);
        let at = format!("Bundle.entry[{index}].resource");
        let (rt, query) = r.split_once('?').unwrap_or((&r, ""));
        // The same condition as an entry's own (`ifNoneExist`, conditional PUT): that
        // entry, whether it creates the resource or found it.
        if let Some(target) = in_bundle.get(&condition_key(rt, query)) {
            conditional.insert(r.clone(), target.clone());
            continue;
        }
        if !defs.is_resource_type(rt) {
            return Err(entry_err(
                index,
                ApiError::bad_at(
                    format!("conditional reference '{r}' names an unknown type"),
                    at,
                ),
            ));
        }
        let clauses = conditions(rt, query, &at).map_err(|e| entry_err(index, e))?;
        match ops.single_match(rt, &clauses).map_err(store_err(index))? {
            Some(id) => {
                conditional.insert(r.clone(), format!("{rt}/{id}"));
            }
            None => {
                return Err(entry_err(
                    index,
                    ApiError::NotFound(format!("conditional reference '{r}' matches no resource")),
                ))
            }
        }
    }
    for p in &mut plans {
        if let Some(r) = &mut p.resource {
            let mut missing = Vec::new();
            rewrite(r, &map, &conditional, &mut missing);
            if let Some(m) = missing.first() {
                let at = format!("Bundle.entry[{}].resource", p.index);
                return Err(entry_err(
                    p.index,
                    ApiError::bad_at(
                        format!("reference '{m}' is not the fullUrl of any entry"),
                        at,
                    ),
                ));
            }
        }
    }
    // 3. Run in the order of the spec, answer in the order of the request.
    let mut order: Vec<usize> = (0..plans.len()).collect();
    order.sort_by_key(|&i| (plans[i].method, i));
    let mut answers: Vec<Option<BundleEntry>> = vec![None; plans.len()];
    let mut plans: Vec<Option<Planned>> = plans.into_iter().map(Some).collect();
    for i in order {
        let Some(p) = plans[i].take() else { continue };
        let found = existing.get(&p.index).cloned();
        let full_url = p.full_url.clone();
        let mut entry = execute(ops, state, base, p, found, ret, patching)?;
        // The answer names the resource by its URL on this server.
        let location = entry.response.as_ref().and_then(|r| r.location.clone());
        entry.full_url = match location
            .as_deref()
            .and_then(|l| l.split("/_history/").next())
        {
            Some(path) => Some(format!("{base}/{path}")),
            None => full_url,
        };
        answers[i] = Some(entry);
    }
    Ok(answers.into_iter().flatten().collect())
}

// ------------------------------------------------------------------------- batch

/// Runs one planned batch entry: a search on a read connection, anything else in its
/// own database transaction.
async fn batch_entry(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    p: Planned,
    base: &str,
    ret: Return,
    patching: &Patching,
) -> Result<BundleEntry, EntryError> {
    let i = p.index;
    let patching = patching.clone();
    if let Some(search) = p.search {
        return batch_search(state, *search, base)
            .await
            .map_err(|e| entry_err(i, e));
    }
    let with = RunWith {
        ret,
        patching,
        idem: None,
    };
    match run_planned(state, req, vec![p], base, with, i).await {
        Ok(Ok(mut entries)) => entries
            .pop()
            .ok_or_else(|| entry_err(i, ApiError::Internal("no answer".into()))),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(entry_err(i, e)),
    }
}

/// How planned entries run: the shape of their answers, the checks of patches, and the
/// idempotency key of the request (transactions only).
struct RunWith {
    ret: Return,
    patching: Patching,
    idem: Option<Idempotent>,
}

/// Runs planned entries in one database transaction, on behalf of `req`: their answers,
/// or the entry that failed (everything rolled back). A failure of the database itself
/// is reported at `index`. With an idempotency key, the key and the response are
/// recorded in the same transaction.
async fn run_planned(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    plans: Vec<Planned>,
    base: &str,
    with: RunWith,
    index: usize,
) -> Result<Result<Vec<BundleEntry>, EntryError>, ApiError> {
    let data = state.clone();
    let base = base.to_string();
    let RunWith {
        ret,
        patching,
        idem,
    } = with;
    state
        .writing(req, move |store| {
            let mut failed = None;
            let r = store.transaction(|ops| {
                let entries =
                    run_transaction(ops, &data, &base, plans, ret, &patching).map_err(|e| {
                        failed = Some(e);
                        StoreError::BadRequest {
                            message: "a Bundle entry failed".into(),
                            expression: None,
                        }
                    })?;
                if let Some(i) = &idem {
                    let response = transaction_response(entries.clone()).to_value();
                    let text = fhir_model::json::to_string(&response);
                    ops.record_idempotency(&i.key, &i.fingerprint, &text)?;
                }
                Ok(entries)
            });
            Ok(match (r, failed) {
                (Ok(entries), _) => Ok(entries),
                (Err(_), Some(f)) => Err(f),
                (Err(e), None) => Err(entry_err(index, ApiError::from(e))),
            })
        })
        .await
}

async fn batch_search(
    state: &web::Data<AppState>,
    search: Prepared,
    base: &str,
) -> Result<BundleEntry, ApiError> {
    crate::audit::sync(state, search.reads_audit_events()).await?;
    let data = state.clone();
    let (search, page) = state
        .budgeted(move || {
            let mut page = data.store.search(&search.request)?;
            restrict_included(&data, &search, &mut page)?;
            Ok::<_, StoreError>((search, page))
        })
        .await?;
    let bundle = searchset(state, base, &search, &page)?;
    Ok(BundleEntry {
        resource: Some(bundle.to_value()),
        response: Some(EntryResponse {
            status: status_line(200),
            ..Default::default()
        }),
        ..Default::default()
    })
}

async fn batch(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    entries: Vec<Value>,
    verdicts: &[Option<ApiError>],
    base: &str,
    ret: Return,
) -> Bundle {
    let mut patching: Option<Patching> = None;
    let mut out = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let planned = plan(state, req, base, i, entry).and_then(|p| match invalid(verdicts, i) {
            Some(e) => Err(e),
            None => Ok(p),
        });
        let answer = match planned {
            Err(e) => Err(entry_err(i, e)),
            Ok(p) => {
                let ready = match &patching {
                    Some(x) => Ok(x.clone()),
                    None => Patching::of(state, req, p.method == Method::Patch).await,
                };
                match ready {
                    Err(e) => Err(entry_err(i, e)),
                    Ok(x) => {
                        let answer = batch_entry(state, req, p, base, ret, &x).await;
                        patching = x.validator.is_some().then_some(x);
                        answer
                    }
                }
            }
        };
        out.push(match answer {
            Ok(entry) => entry,
            Err(err) => {
                let (status, oo) = failure_outcome(
                    &EntryError {
                        index: i,
                        error: err.error,
                    },
                    "batch",
                );
                BundleEntry {
                    response: Some(EntryResponse {
                        status: status_line(status.as_u16()),
                        outcome: Some(oo.to_value()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }
            }
        });
    }
    let mut bundle = Bundle::new(BundleType::BatchResponse);
    bundle.entry = out;
    bundle.timestamp = Some(fhir_instant(fhir_store::time::now_millis()));
    bundle
}
