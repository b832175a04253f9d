//! Binary resources as raw content, for document exchange (binary.html, http.html):
//! a create or update whose body is not FHIR (`Content-Type: application/pdf`) stores a
//! Binary holding it (`X-Security-Context` names its `securityContext`); a read or vread
//! that does not ask for a FHIR format explicitly (`_format`, or an `Accept` naming FHIR
//! JSON or XML) answers the bytes with the Binary's `contentType`. A Binary whose
//! `securityContext` names a resource is read only by clients that may read that
//! resource.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use base64::Engine;
use fhir_store::StoredResource;
use serde_json::{json, Value};

use crate::access::scopes::Interaction;
use crate::auth::Grant;
use crate::error::ApiError;
use crate::guard;
use crate::http::negotiate::content_type;
use crate::http::respond;
use crate::state::AppState;

type Result<T> = std::result::Result<T, ApiError>;

/// Media types that carry a FHIR resource rather than raw content.
const FHIR_TYPES: &[&str] = &[
    "application/fhir+json",
    "application/json+fhir",
    "application/json",
    "text/json",
    "application/fhir+xml",
    "application/xml+fhir",
    "application/xml",
    "text/xml",
    "json",
    "xml",
];

fn is_fhir_type(mime: &str) -> bool {
    let m = mime
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    FHIR_TYPES.contains(&m.as_str())
}

/// A write to `Binary` whose body is raw content (a Content-Type that is not FHIR).
pub fn is_raw_write(req: &HttpRequest, resource_type: &str) -> bool {
    resource_type == "Binary" && content_type(req).is_some_and(|c| !is_fhir_type(&c))
}

/// The Binary resource for a raw body.
pub fn from_raw(req: &HttpRequest, bytes: &[u8]) -> Value {
    let mime = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .trim();
    let mut binary = json!({
        "resourceType": "Binary",
        "contentType": mime,
        "data": base64::engine::general_purpose::STANDARD.encode(bytes),
    });
    let context = req
        .headers()
        .get("x-security-context")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|c| !c.is_empty());
    if let Some(c) = context {
        binary["securityContext"] = json!({ "reference": c });
    }
    binary
}

/// A read of a Binary answers raw content unless the client asks for FHIR explicitly.
pub fn wants_raw(req: &HttpRequest, resource_type: &str) -> bool {
    if resource_type != "Binary" || crate::http::negotiate::query_param(req, "_format").is_some() {
        return false;
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    !accept.split(',').any(is_fhir_type)
}

/// The stored Binary's bytes with its `contentType` and the version headers; `None`
/// when they cannot be served so (a Binary stored leniently with `data` that is not
/// base64, or a `contentType` that is no header value): the caller answers FHIR JSON.
pub fn raw(stored: &StoredResource) -> Option<HttpResponse> {
    let binary: Value = serde_json::from_str(&stored.content).ok()?;
    let mime = binary
        .get("contentType")
        .and_then(Value::as_str)
        .unwrap_or("application/octet-stream");
    let mime = header::HeaderValue::from_str(mime).ok()?;
    let data = binary.get("data").and_then(Value::as_str).unwrap_or("");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .ok()?;
    let mut b = HttpResponse::build(StatusCode::OK);
    respond::version_headers(&mut b, stored);
    Some(b.insert_header((header::CONTENT_TYPE, mime)).body(bytes))
}

/// A client whose access is restricted reads a Binary only if it may read the resource
/// its `securityContext` names.
pub async fn check_context(
    state: &actix_web::web::Data<AppState>,
    req: &HttpRequest,
    grant: &Grant,
    stored: &StoredResource,
) -> Result<()> {
    if *grant == Grant::All || stored.deleted {
        return Ok(());
    }
    let binary: Value = serde_json::from_str(&stored.content).unwrap_or(Value::Null);
    let Some(reference) = binary
        .pointer("/securityContext/reference")
        .and_then(Value::as_str)
    else {
        return Ok(());
    };
    let refused = || {
        ApiError::Forbidden(format!(
            "this Binary is read with the access of its securityContext ({reference}), which this client does not have"
        ))
    };
    let Some((rt, id)) = reference
        .split_once('/')
        .filter(|(t, _)| state.defs.is_resource_type(t))
    else {
        return Err(refused());
    };
    let context_grant = guard::grant(req, Interaction::Read, rt).map_err(|_| refused())?;
    let (t, i) = (rt.to_string(), id.to_string());
    let context = state.blocking(move |s| s.read(&t, &i)).await?;
    match context {
        Some(c) if !c.deleted => guard::ensure_stored(state, &context_grant, Interaction::Read, &c)
            .await
            .map_err(|_| refused()),
        _ => Err(refused()),
    }
}
