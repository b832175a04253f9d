//! The meta operations of resource-operations.html: `$meta` (system, type, instance and
//! version level), `$meta-add` and `$meta-delete` (instance level).
//!
//! At the system and type levels `$meta` lists the profiles, tags and security labels
//! in use, from the search index; at the instance level it is the meta a read would
//! return. `$meta-add` and `$meta-delete` change the current version through the
//! write path of a patch (a new version, checked and validated like any write, seen by
//! history, audit and later subscriptions); a change that changes nothing writes
//! nothing. Tags and security labels are matched by system and code, profiles by URL.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use crate::access::scopes::Interaction;
use crate::auth::Grant;
use crate::error::ApiError;
use crate::guard;
use crate::http::body::{parse_body, read_limited};
use crate::http::negotiate::output;
use crate::http::respond;
use crate::state::{check_id, AppState};

use super::patch::{applier, change_meta, Patch};

type Result<T> = std::result::Result<T, ApiError>;

/// `GET|POST [base]/$meta`: over every type the client may search without restriction.
pub async fn system(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse> {
    let types: Vec<String> = state
        .defs
        .resource_types()
        .iter()
        .filter(|t| matches!(guard::grant(&req, Interaction::Search, t), Ok(Grant::All)))
        .cloned()
        .collect();
    if types.is_empty() {
        return Err(ApiError::Forbidden(
            "$meta at the system level needs search scopes for all resources of some type".into(),
        ));
    }
    summary(state, req, types).await
}

/// `GET|POST [base]/[type]/$meta`.
pub async fn type_level(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String,)>,
) -> Result<HttpResponse> {
    let (rt,) = path.into_inner();
    state.check_type(&rt)?;
    guard::ensure_unrestricted(&state, &req, Interaction::Search, &rt, "$meta on a type")?;
    summary(state, req, vec![rt]).await
}

async fn summary(
    state: web::Data<AppState>,
    req: HttpRequest,
    types: Vec<String>,
) -> Result<HttpResponse> {
    let out = output(&req)?;
    let s = state
        .blocking(move |s| {
            let types: Vec<&str> = types.iter().map(String::as_str).collect();
            s.meta_summary(&types)
        })
        .await?;
    let codings = |list: &[(Option<String>, Option<String>)]| -> Vec<Value> {
        list.iter()
            .map(|(system, code)| {
                let mut c = Map::new();
                if let Some(s) = system {
                    c.insert("system".into(), json!(s));
                }
                if let Some(k) = code {
                    c.insert("code".into(), json!(k));
                }
                Value::Object(c)
            })
            .collect()
    };
    let mut meta = Map::new();
    if !s.profiles.is_empty() {
        meta.insert("profile".into(), json!(s.profiles));
    }
    if !s.security.is_empty() {
        meta.insert("security".into(), json!(codings(&s.security)));
    }
    if !s.tags.is_empty() {
        meta.insert("tag".into(), json!(codings(&s.tags)));
    }
    Ok(answer(Value::Object(meta), out))
}

/// `GET|POST [base]/[type]/[id]/$meta`: the meta of the current version.
pub async fn instance(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (rt, id) = path.into_inner();
    stored_meta(state, req, rt, id, None).await
}

/// `GET|POST [base]/[type]/[id]/_history/[vid]/$meta`: the meta of that version.
pub async fn version(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse> {
    let (rt, id, vid) = path.into_inner();
    let Some(v) = vid.parse::<i64>().ok().filter(|v| *v > 0) else {
        return Err(ApiError::NotFound(format!(
            "{rt}/{id} has no version '{vid}'"
        )));
    };
    stored_meta(state, req, rt, id, Some(v)).await
}

async fn stored_meta(
    state: web::Data<AppState>,
    req: HttpRequest,
    rt: String,
    id: String,
    version: Option<i64>,
) -> Result<HttpResponse> {
    state.check_type(&rt)?;
    check_id(&id)?;
    let out = output(&req)?;
    let grant = guard::grant(&req, Interaction::Read, &rt)?;
    let (t, i) = (rt.clone(), id.clone());
    let stored = state
        .blocking(move |s| match version {
            Some(v) => s.vread(&t, &i, v),
            None => s.read(&t, &i),
        })
        .await?;
    let Some(stored) = stored else {
        return Err(ApiError::NotFound(format!("{rt}/{id} is not known")));
    };
    guard::ensure_stored(&state, &grant, Interaction::Read, &stored).await?;
    if stored.deleted {
        return Err(ApiError::Gone(format!("{rt}/{id} is deleted")));
    }
    Ok(answer(meta_of(&stored.content)?, out))
}

/// `POST [base]/[type]/[id]/$meta-add`.
pub async fn add(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    change(state, req, path.into_inner(), payload, true).await
}

/// `POST [base]/[type]/[id]/$meta-delete`.
pub async fn delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    change(state, req, path.into_inner(), payload, false).await
}

async fn change(
    state: web::Data<AppState>,
    req: HttpRequest,
    (rt, id): (String, String),
    payload: web::Payload,
    add: bool,
) -> Result<HttpResponse> {
    state.check_type(&rt)?;
    check_id(&id)?;
    let out = output(&req)?;
    let what = if add { "$meta-add" } else { "$meta-delete" };
    let pre = super::crud::precondition(&req)?;
    guard::ensure_unrestricted(&state, &req, Interaction::Update, &rt, what)?;
    let bytes = read_limited(&req, payload, state.max_body_bytes).await?;
    let meta = meta_parameter(&parse_body(&req, &bytes)?)?;
    let (t, i) = (rt.clone(), id.clone());
    let current = state.blocking(move |s| s.read(&t, &i)).await?;
    let current = match current {
        None => return Err(ApiError::NotFound(format!("{rt}/{id} is not known"))),
        Some(c) if c.deleted => return Err(ApiError::Gone(format!("{rt}/{id} is deleted"))),
        Some(c) => c,
    };
    let mut changed: Value = serde_json::from_str(&current.content)
        .map_err(|e| ApiError::Internal(format!("stored {rt}/{id} is not JSON: {e}")))?;
    if !change_meta(&mut changed, &meta, add) {
        return Ok(answer(meta_of(&current.content)?, out));
    }
    let apply = applier(&state, &req, &rt, Patch::Meta { meta, add }, what).await?;
    let updated = state
        .writing(&req, move |s| s.patch(&rt, &id, pre, apply))
        .await?;
    Ok(answer(meta_of(&updated.stored.content)?, out))
}

/// The `meta` parameter of a Parameters body (a `valueMeta`).
fn meta_parameter(body: &Value) -> Result<Value> {
    if body.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(ApiError::bad_at(
            "the body is a Parameters resource with a 'meta' parameter",
            "resourceType",
        ));
    }
    let params = body.get("parameter").and_then(Value::as_array);
    let found = params
        .into_iter()
        .flatten()
        .find(|p| p.get("name").and_then(Value::as_str) == Some("meta"));
    match found.and_then(|p| p.get("valueMeta")) {
        Some(m) if m.is_object() => Ok(m.clone()),
        _ => Err(ApiError::bad_at(
            "a 'meta' parameter with a valueMeta is required",
            "Parameters.parameter",
        )),
    }
}

fn meta_of(content: &str) -> Result<Value> {
    let v: Value = serde_json::from_str(content).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(v.get("meta").cloned().unwrap_or_else(|| json!({})))
}

fn answer(meta: Value, out: crate::http::negotiate::Output) -> HttpResponse {
    let params =
        json!({"resourceType": "Parameters", "parameter": [{"name": "return", "valueMeta": meta}]});
    respond::json(StatusCode::OK, &params, out)
}
