//! Bulk `$import` over HTTP: kick-off at `POST /$import` (a `Parameters` body, or the
//! Bulk Data Import draft's JSON manifest), status polling and cancelling at
//! `/$import-status/[job]`, and the error files at `/$import-errors/[job]/[input]`. The
//! work runs in [`crate::bulk_import::Importer`].
//!
//! The status answers 202 with `X-Progress` while the job runs, then 200 with a
//! manifest: `transactionTime`, `request`, `requiresAccessToken`, `output` (per input:
//! `type`, `inputUrl`, `count` of resources loaded) and `error` (per input with refused
//! lines: an NDJSON file of OperationOutcomes, one per line).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::export::{http_date, ndjson_file, wants_async};
use crate::access::scopes::Interaction;
use crate::bulk_import::worker::{InputOutcome, Resume};
use crate::bulk_import::{ImportError, ImportRequest};
use crate::error::ApiError;
use crate::guard;
use crate::http::body::{parse_body, read_limited};
use crate::http::negotiate::output;
use crate::jobs::{COMPLETED, FAILED, QUEUED};
use crate::state::AppState;

type Result<T> = std::result::Result<T, ApiError>;

/// `POST /$import`: checks the request and its inputs, records the job, 202 with the
/// status URL in `Content-Location`.
pub async fn kickoff(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let out = output(&req)?;
    if out.xml {
        return Err(ApiError::NotAcceptable(
            "a bulk import kick-off answers in application/fhir+json".into(),
        ));
    }
    if !wants_async(&req) {
        return Err(ImportError::NotAsync.into());
    }
    let bytes = read_limited(&req, payload, state.max_body_bytes).await?;
    let body = parse_body(&req, &bytes)?;
    let mut request = ImportRequest::from_body(state.defs, &body)?;
    if state.subscriptions.is_some() {
        if let Some(i) = request
            .inputs
            .iter()
            .position(|i| i.res_type == "Subscription")
        {
            return Err(ApiError::bad_at(
                "Subscriptions are written through the REST API, where their endpoints and criteria are checked",
                format!("input[{i}].type"),
            ));
        }
    }
    for (i, input) in request.inputs.iter().enumerate() {
        state
            .importer
            .sources()
            .check(&input.url)
            .map_err(|e| ApiError::bad_at(e.to_string(), format!("input[{i}].url")))?;
    }
    authorize(&state, &req, &mut request)?;
    request.strictness = crate::handlers::validate::strictness(&state, &req);
    let base = state.base(&req);
    let url = format!("{base}/$import");
    let id = state.import(move |im| im.submit(&url, &request)).await?;
    let mut response = crate::http::respond::informational(
        StatusCode::ACCEPTED,
        format!("import job {id} accepted; poll {base}/$import-status/{id}"),
        out,
    );
    response.headers_mut().insert(
        header::CONTENT_LOCATION,
        header::HeaderValue::from_str(&format!("{base}/$import-status/{id}"))
            .map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    Ok(response)
}

/// Importing creates and updates resources of each input's type with the ids they
/// carry: it needs unrestricted create and update of every one of them.
fn authorize(state: &AppState, req: &HttpRequest, request: &mut ImportRequest) -> Result<()> {
    let mut types: Vec<&str> = request.inputs.iter().map(|i| i.res_type.as_str()).collect();
    types.sort_unstable();
    types.dedup();
    for t in types {
        for interaction in [Interaction::Create, Interaction::Update] {
            guard::ensure_unrestricted(state, req, interaction, t, "bulk import")?;
        }
    }
    request.client = guard::access(req).map(|a| a.client_id.clone());
    Ok(())
}

/// With authentication on, a job is only visible to the client that started it.
fn owns(req: &HttpRequest, job: &fhir_store::Job) -> Result<()> {
    let Some(access) = guard::access(req) else {
        return Ok(());
    };
    let request = serde_json::from_str::<ImportRequest>(&job.request).ok();
    match request.and_then(|r| r.client) {
        Some(c) if c == access.client_id => Ok(()),
        _ => Err(ApiError::NotFound("no such import job".into())),
    }
}

/// `GET /$import-status/[job]`: 202 while queued or running, the manifest when
/// complete, the failure as an OperationOutcome (500) when the job failed.
pub async fn status(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String,)>,
) -> Result<HttpResponse> {
    let (id,) = path.into_inner();
    let (job, expires) = state
        .import(move |im| im.job(&id).map(|j| (im.expires(&j), j)))
        .await
        .map(|(e, j)| (j, e))?;
    owns(&req, &job)?;
    let outcomes: Vec<InputOutcome> = serde_json::from_str(&job.output)
        .map_err(|e| ApiError::Internal(format!("import job output unreadable: {e}")))?;
    match job.status.as_str() {
        COMPLETED => {
            let manifest = manifest(&state.base(&req), &job, &outcomes, state.auth.is_some());
            Ok(HttpResponse::Ok()
                .content_type("application/json")
                .insert_header((header::EXPIRES, http_date(expires)))
                .body(fhir_model::json::to_string(&manifest)))
        }
        FAILED => Err(ImportError::Failed(job.error.unwrap_or_default()).into()),
        s => Ok(HttpResponse::Accepted()
            .insert_header(("X-Progress", progress(s, &job, &outcomes)))
            .insert_header((header::RETRY_AFTER, "1"))
            .finish()),
    }
}

/// `X-Progress` of a job that has not finished.
fn progress(status: &str, job: &fhir_store::Job, outcomes: &[InputOutcome]) -> String {
    if status == QUEUED {
        return "queued".into();
    }
    let at = serde_json::from_str::<Resume>(&job.progress).unwrap_or_default();
    let loaded: u64 = outcomes.iter().map(|o| o.count).sum();
    let refused: u64 = outcomes.iter().map(|o| o.errors).sum();
    format!(
        "input {} of {}: {loaded} resources loaded, {refused} lines refused",
        (at.input + 1).min(outcomes.len()),
        outcomes.len()
    )
}

fn manifest(base: &str, job: &fhir_store::Job, outcomes: &[InputOutcome], token: bool) -> Value {
    let output: Vec<Value> = outcomes
        .iter()
        .map(|o| json!({"type": o.res_type, "inputUrl": o.input_url, "count": o.count}))
        .collect();
    let error: Vec<Value> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| o.errors > 0)
        .map(|(i, o)| {
            json!({
                "type": "OperationOutcome",
                "inputUrl": o.input_url,
                "count": o.errors,
                "url": format!("{base}/$import-errors/{}/{i}", job.id),
            })
        })
        .collect();
    json!({
        "transactionTime": fhir_store::time::fhir_instant(job.transaction_time),
        "request": job.request_url,
        "requiresAccessToken": token,
        "output": output,
        "error": error,
    })
}

/// `DELETE /$import-status/[job]`: stops the job (what it has loaded stays loaded).
pub async fn cancel(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String,)>,
) -> Result<HttpResponse> {
    let out = output(&req)?;
    let (id,) = path.into_inner();
    let (job, lookup) = (id.clone(), id.clone());
    owns(&req, &state.import(move |im| im.job(&lookup)).await?)?;
    state.import(move |im| im.cancel(&job)).await?;
    Ok(crate::http::respond::informational(
        StatusCode::ACCEPTED,
        format!("import job {id} cancelled; what it had loaded stays loaded"),
        out,
    ))
}

/// `GET /$import-errors/[job]/[input]`: the OperationOutcomes of an input's refused
/// lines, as NDJSON.
pub async fn errors(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (id, input) = path.into_inner();
    let index: usize = input
        .parse()
        .map_err(|_| ImportError::FileNotFound(format!("errors of input '{input}'")))?;
    let lookup = id.clone();
    owns(&req, &state.import(move |im| im.job(&lookup)).await?)?;
    let path = state.import(move |im| im.error_file(&id, index)).await?;
    ndjson_file(path).await
}
