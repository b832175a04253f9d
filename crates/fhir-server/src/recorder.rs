//! The audit trail's middleware: records reads, searches, operations and every
//! refused or failed request of the tenant serving it (successful writes are
//! recorded in their own transaction by the store's audit hook, `crate::audit`).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

use crate::audit::{event, who};
use crate::state::AppState;

/// Paths not worth an audit record (probes, discovery, the console's files).
fn unaudited(path: &str) -> bool {
    crate::http::interaction::is_console(path.trim_end_matches('/'))
        || matches!(
            path.trim_end_matches('/'),
            "/health"
                | "/ready"
                | "/metrics"
                | "/console/jobs.json"
                | "/fhir/metadata"
                | "/fhir/openapi.json"
                | "/.well-known/smart-configuration"
                | "/fhir/.well-known/smart-configuration"
        )
}

/// Middleware: records reads, searches, operations and every refused or failed
/// request (successful writes are recorded in their own transaction).
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let sink = state.as_ref().and_then(|s| s.audit.clone());
    let Some(sink) = sink.filter(|_| !unaudited(req.path())) else {
        return next.call(req).await;
    };
    let res = next.call(req).await?;
    let status = res.status().as_u16();
    let method = res.request().method().as_str().to_string();
    let path = res.request().path().to_string();
    let kind = crate::http::interaction::classify(&method, &path);
    let (subtype, action) = (kind.subtype, kind.action);
    // Batches are recorded as a whole too (their reads have no other record).
    let is_write = matches!(action, "C" | "U" | "D");
    if is_write && status < 400 {
        return Ok(res);
    }
    let w = who(res.request());
    let mut resources = Vec::new();
    if matches!(action, "R" | "C" | "U" | "D") {
        resources.push(path.trim_start_matches("/fhir/").to_string());
    }
    let query = res.request().query_string();
    let query =
        (!query.is_empty() || subtype.starts_with("search")).then(|| format!("{path}?{query}"));
    let reason = res
        .response()
        .extensions()
        .get::<crate::error::Refusal>()
        .map(|r| r.0.clone());
    sink.send(event(&w, subtype, action, status, resources, query, reason))
        .await;
    Ok(res)
}
