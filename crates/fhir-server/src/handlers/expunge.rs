//! `$expunge` (the operation HAPI FHIR offers): hard deletion for administrators, off
//! unless the server runs with `--expunge on`. `POST [base]/$expunge`,
//! `[base]/[type]/$expunge`, `[base]/[type]/[id]/$expunge` with a Parameters body:
//! `expungePreviousVersions` and/or `expungeDeletedResources` (booleans), `limit`
//! (resources, at most 10,000; default 1,000). The answer is a Parameters with `count`,
//! the versions removed. With authentication on, the client needs unrestricted delete
//! scopes for every type concerned; AuditEvents are never expunged. The request itself is
//! recorded in the audit trail like every operation.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use fhir_store::Expunge;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::guard;
use crate::http::body::{parse_body, read_limited};
use crate::http::negotiate::output;
use crate::http::respond;
use crate::state::{check_id, AppState};

type Result<T> = std::result::Result<T, ApiError>;

const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 10_000;

pub async fn system(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse> {
    expunge(state, req, payload, None, None).await
}

pub async fn type_level(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String,)>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let (rt,) = path.into_inner();
    expunge(state, req, payload, Some(rt), None).await
}

pub async fn instance(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let (rt, id) = path.into_inner();
    check_id(&id)?;
    expunge(state, req, payload, Some(rt), Some(id)).await
}

async fn expunge(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
    res_type: Option<String>,
    id: Option<String>,
) -> Result<HttpResponse> {
    if let Some(t) = &res_type {
        state.check_type(t)?;
        if t == "AuditEvent" {
            return Err(ApiError::Forbidden(
                "AuditEvents are the audit trail: they are never expunged".into(),
            ));
        }
    }
    let out = output(&req)?;
    if !state.expunge {
        return Err(ApiError::Forbidden(
            "$expunge is off on this server (start it with --expunge on)".into(),
        ));
    }
    authorize(&state, &req, res_type.as_deref())?;
    let bytes = read_limited(&req, payload, state.max_body_bytes).await?;
    let body = if bytes.iter().all(u8::is_ascii_whitespace) {
        json!({"resourceType": "Parameters"})
    } else {
        parse_body(&req, &bytes)?
    };
    let mut what = parameters(&body)?;
    what.res_type = res_type;
    what.id = id;
    let count = state.writing(&req, move |s| s.expunge(&what)).await?;
    let answer = json!({"resourceType": "Parameters", "parameter": [{"name": "count", "valueInteger": count}]});
    Ok(respond::json(StatusCode::OK, &answer, out))
}

/// With authentication on: unrestricted delete of the type, or of every type.
fn authorize(state: &AppState, req: &HttpRequest, res_type: Option<&str>) -> Result<()> {
    let caller = guard::access(req);
    let ctx = guard::context(state, caller.as_deref());
    Ok(crate::access::decide_expunge(
        &ctx,
        res_type,
        state.defs.resource_types(),
    )?)
}

/// The operation's parameters.
fn parameters(body: &Value) -> Result<Expunge> {
    if body.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(ApiError::bad_at(
            "the body of $expunge is a Parameters resource",
            "resourceType",
        ));
    }
    let mut what = Expunge {
        limit: DEFAULT_LIMIT,
        ..Default::default()
    };
    let params = body.get("parameter").and_then(Value::as_array);
    for (i, p) in params.into_iter().flatten().enumerate() {
        let at = format!("Parameters.parameter[{i}]");
        let flag = || {
            p.get("valueBoolean")
                .and_then(Value::as_bool)
                .ok_or_else(|| ApiError::bad_at("needs a valueBoolean", &at))
        };
        match p.get("name").and_then(Value::as_str).unwrap_or("") {
            "expungePreviousVersions" => what.previous_versions = flag()?,
            "expungeDeletedResources" => what.deleted_resources = flag()?,
            "limit" => {
                let n = p
                    .get("valueInteger")
                    .and_then(Value::as_u64)
                    .filter(|n| (1..=MAX_LIMIT as u64).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_at(format!("limit is an integer from 1 to {MAX_LIMIT}"), &at)
                    })?;
                what.limit = n as usize;
            }
            "expungeEverything" => {
                return Err(ApiError::bad_at(
                    "expungeEverything is not supported: expunge deleted resources and previous versions",
                    at,
                ))
            }
            other => {
                return Err(ApiError::bad_at(
                    format!("'{other}' is not a parameter of $expunge (expungePreviousVersions, expungeDeletedResources, limit)"),
                    at,
                ))
            }
        }
    }
    if !what.previous_versions && !what.deleted_resources {
        return Err(ApiError::bad(
            "say what to expunge: expungePreviousVersions and/or expungeDeletedResources = true",
        ));
    }
    Ok(what)
}
