//! metadata, health and readiness, and answers for what is not (yet) offered.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::ApiError;
use crate::http::negotiate::output;

use crate::state::AppState;

pub async fn metadata(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let out = output(&req)?;
    // With subscriptions on, the topics as last read (at most a round of the
    // deliverer, 200 ms, behind a write of one).
    let registry = state.subscriptions.as_ref().map(|s| s.dispatcher.active());
    let capability = match &registry {
        Some(r) => r.capability(&state.capability),
        None => state.capability.as_str(),
    };
    let etag = capability_etag(capability);
    let mut response = if out.pretty || out.xml {
        let v = fhir_model::json::parse(capability.as_bytes())
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        crate::http::respond::json(StatusCode::OK, &v, out)
    } else {
        HttpResponse::Ok()
            .content_type(out.content_type())
            .body(capability.to_string())
    };
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&etag) {
        response
            .headers_mut()
            .insert(actix_web::http::header::ETAG, v);
    }
    Ok(response)
}

/// A weak ETag of the CapabilityStatement: it changes when what the server offers does.
fn capability_etag(capability: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    capability.hash(&mut h);
    format!("W/\"{:016x}\"", h.finish())
}

/// Liveness: the process answers.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#"{"status":"ok"}"#)
}

/// The OpenAPI 3 document of the API ([`crate::openapi`]), built at start-up.
pub async fn openapi(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi.clone())
}

/// Readiness: the database answers.
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    match state.blocking(|s| s.ping()).await {
        Ok(()) => HttpResponse::Ok()
            .content_type("application/json")
            .body(r#"{"status":"ready"}"#),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable()
                .content_type("application/json")
                .body(r#"{"status":"database unavailable"}"#)
        }
    }
}

pub async fn unknown_path(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no FHIR endpoint at {}",
        req.path()
    )))
}

/// 405 with the `Allow` header of the matched URL pattern.
/// The methods a route serves (the `Allow` header of a 405), by its pattern with any
/// regular expressions of its segments left out (`{id:[A-Za-z0-9.\-]+}` → `{id}`).
fn allowed_methods(pattern: &str) -> &'static str {
    let mut p = String::with_capacity(pattern.len());
    let (mut in_segment, mut in_regex) = (false, false);
    for c in pattern.chars() {
        match c {
            '{' => in_segment = true,
            ':' if in_segment => in_regex = true,
            '}' => (in_segment, in_regex) = (false, false),
            _ => {}
        }
        if !in_regex {
            p.push(c);
        }
    }
    match p.as_str() {
        "/fhir/{type}/{id}" => "GET, HEAD, PUT, PATCH, DELETE",
        "/fhir/{type}" => "GET, HEAD, POST, PUT, PATCH, DELETE",
        "/fhir" | "/fhir/" => "GET, HEAD, POST",
        p if p.ends_with("/_search") => "POST",
        p if p.ends_with("/$validate")
            || p.ends_with("/$export")
            || p.ends_with("/$meta")
            || p.ends_with("/$document") =>
        {
            "GET, POST"
        }
        p if p.ends_with("/$meta-add")
            || p.ends_with("/$meta-delete")
            || p.ends_with("/$expunge")
            || p.ends_with("/$import") =>
        {
            "POST"
        }
        p if p.contains("/$export-status/") || p.contains("/$import-status/") => "GET, DELETE",
        p if p.ends_with("/$everything")
            || p.contains("/$export-file/")
            || p.contains("/$import-errors/") =>
        {
            "GET"
        }
        _ => "GET, HEAD",
    }
}

pub async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let allow = allowed_methods(&req.match_pattern().unwrap_or_default());
    let err = ApiError::MethodNotAllowed(format!(
        "{} is not allowed on {}; allowed: {allow}",
        req.method(),
        req.path()
    ));
    let mut resp = actix_web::ResponseError::error_response(&err);
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(allow) {
        resp.headers_mut().insert(actix_web::http::header::ALLOW, v);
    }
    resp
}
