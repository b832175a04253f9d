//! Bulk Data export over HTTP (export.html of the Bulk Data IG 2.0): kick-off at
//! `/$export`, `/Patient/$export` and `/Group/[id]/$export` (GET, or POST with a
//! `Parameters` body), status polling and cancelling at `/$export-status/[job]`, and the
//! NDJSON files at `/$export-file/[job]/[file]`. The work itself runs in
//! [`crate::export::Exporter`].

use std::io::Read;

use actix_web::body::SizedStream;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use crate::access::scopes::Interaction;
use crate::auth::Grant;
use crate::error::ApiError;
use crate::export::worker::{FileKind, OutputFile, COMPLETED, FAILED, QUEUED};
use crate::export::{ExportError, ExportLevel, ExportRequest};
use crate::guard;
use crate::http::body::{parse_json, read_limited};
use crate::http::negotiate::output;
use crate::http::prefer::{prefer, Handling};
use crate::state::{check_id, AppState};

type Result<T> = std::result::Result<T, ApiError>;

/// Bytes read from an export file per chunk of the response.
const CHUNK: usize = 256 * 1024;

pub async fn system_get(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse> {
    kickoff(&state, &req, ExportLevel::System, None).await
}

pub async fn system_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse> {
    kickoff(&state, &req, ExportLevel::System, Some(payload)).await
}

pub async fn patient_get(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse> {
    kickoff(&state, &req, ExportLevel::Patient, None).await
}

pub async fn patient_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse> {
    kickoff(&state, &req, ExportLevel::Patient, Some(payload)).await
}

pub async fn group_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String,)>,
) -> Result<HttpResponse> {
    let (id,) = path.into_inner();
    check_id(&id)?;
    kickoff(&state, &req, ExportLevel::Group(id), None).await
}

pub async fn group_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String,)>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let (id,) = path.into_inner();
    check_id(&id)?;
    kickoff(&state, &req, ExportLevel::Group(id), Some(payload)).await
}

/// `Prefer: respond-async`, among possibly several preferences.
pub(crate) fn wants_async(req: &HttpRequest) -> bool {
    req.headers().get_all("prefer").any(|v| {
        v.to_str().is_ok_and(|t| {
            t.split([',', ';'])
                .any(|p| p.trim().eq_ignore_ascii_case("respond-async"))
        })
    })
}

async fn kickoff(
    state: &AppState,
    req: &HttpRequest,
    level: ExportLevel,
    body: Option<web::Payload>,
) -> Result<HttpResponse> {
    if output(req)?.xml {
        // Bulk Data v2 kick-off: `Accept: application/fhir+json`; the files are NDJSON,
        // the only format the IG defines.
        return Err(ApiError::NotAcceptable(
            "a Bulk Data kick-off answers in application/fhir+json (its files are NDJSON)".into(),
        ));
    }
    if !wants_async(req) {
        return Err(ExportError::NotAsync.into());
    }
    let lenient = prefer(req).handling == Some(Handling::Lenient);
    let base = state.base(req);
    let path = req.path().strip_prefix("/fhir").unwrap_or(req.path());
    let (request, request_url) = match body {
        None => {
            let pairs: Vec<(String, String)> =
                form_urlencoded::parse(req.query_string().as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
            let url = match req.query_string() {
                "" => format!("{base}{path}"),
                q => format!("{base}{path}?{q}"),
            };
            (ExportRequest::from_pairs(level, &pairs, lenient)?, url)
        }
        Some(payload) => {
            let bytes = read_limited(req, payload, state.max_body_bytes).await?;
            let value = parse_json(&bytes)?;
            (
                ExportRequest::from_parameters(level, &value, lenient)?,
                format!("{base}{path}"),
            )
        }
    };
    let mut request = request;
    crate::export::leave_out_unsupported(state.defs, &mut request)?;
    authorize_kickoff(state, req, &mut request)?;
    state
        .sync_audit(request.types.is_empty() || request.types.iter().any(|t| t == "AuditEvent"))
        .await?;
    let defs = state.defs;
    let id = state
        .export(move |ex| {
            crate::export::export_scope(ex.store(), defs, &request)?;
            let transaction_time = fhir_store::time::now_millis();
            let id = ex.submit(&request_url, &request, transaction_time)?;
            // Versions are stamped in milliseconds: answer only once the clock has moved
            // past the transaction time, so that a write the client makes after this
            // answer is later than it (and not exported), never in the same millisecond.
            while fhir_store::time::now_millis() <= transaction_time {
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            Ok(id)
        })
        .await?;
    Ok(HttpResponse::Accepted()
        .insert_header((
            header::CONTENT_LOCATION,
            format!("{base}/$export-status/{id}"),
        ))
        .finish())
}

/// Bulk export needs unrestricted read of every type exported (system-level scopes):
/// without `_type`, the export is narrowed to the types the caller may read in full.
fn authorize_kickoff(
    state: &AppState,
    req: &HttpRequest,
    request: &mut crate::export::ExportRequest,
) -> Result<()> {
    let Some(access) = guard::access(req) else {
        return Ok(());
    };
    let ctx = guard::context(state, Some(&access));
    let group = matches!(request.level, crate::export::ExportLevel::Group(_));
    request.types =
        crate::access::decide_export(&ctx, group, &request.types, state.defs.resource_types())?;
    request.client = Some(access.client_id.clone());
    Ok(())
}

/// With authentication on, a job is only visible to the client that started it, and
/// only with a token whose scopes still cover every type it exports.
fn owns(req: &HttpRequest, job: &fhir_store::ExportJob) -> Result<()> {
    let Some(access) = guard::access(req) else {
        return Ok(());
    };
    let request = serde_json::from_str::<crate::export::ExportRequest>(&job.request).ok();
    let owner = request.as_ref().and_then(|r| r.client.as_deref());
    if owner != Some(access.client_id.as_str()) {
        return Err(ApiError::NotFound("no such export job".into()));
    }
    let types = request.map(|r| r.types).unwrap_or_default();
    covers(req, &types)
}

/// The token's scopes allow reading all resources of each of `types`.
fn covers(req: &HttpRequest, types: &[String]) -> Result<()> {
    let Some(access) = guard::access(req) else {
        return Ok(());
    };
    match types
        .iter()
        .find(|t| access.grant(Interaction::Read, t) != Some(Grant::All))
    {
        Some(t) => Err(ApiError::Forbidden(format!(
            "this export holds {t} resources: the access token needs a scope to read all of them (system/{t}.r)"
        ))),
        None => Ok(()),
    }
}

/// `GET /$export-status/[job]`: 202 while running, the manifest when complete, the
/// failure as an OperationOutcome (500) when the job failed.
pub async fn status(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String,)>,
) -> Result<HttpResponse> {
    let (id,) = path.into_inner();
    let (job, expires) = state
        .export(move |ex| {
            ex.job(&id)
                .map(|j| (ex.expires(&j), j))
                .map(|(e, j)| (j, e))
        })
        .await?;
    owns(&req, &job)?;
    let requires_token = state.auth.is_some();
    match job.status.as_str() {
        COMPLETED => {
            let base = state.base(&req);
            let files: Vec<OutputFile> = serde_json::from_str(&job.output)
                .map_err(|e| ApiError::Internal(format!("job output unreadable: {e}")))?;
            let manifest = manifest(&base, &job, &files, requires_token);
            Ok(HttpResponse::Ok()
                .content_type("application/json")
                .insert_header((header::EXPIRES, http_date(expires)))
                .body(fhir_model::json::to_string(&manifest)))
        }
        FAILED => Err(ExportError::Failed(job.error.unwrap_or_default()).into()),
        s => Ok(HttpResponse::Accepted()
            .insert_header((
                "X-Progress",
                if s == QUEUED {
                    "queued".to_string()
                } else {
                    job.progress.clone()
                },
            ))
            .insert_header((header::RETRY_AFTER, "1"))
            .finish()),
    }
}

fn manifest(
    base: &str,
    job: &fhir_store::ExportJob,
    files: &[OutputFile],
    requires_token: bool,
) -> Value {
    let list = |kind: FileKind| -> Vec<Value> {
        files
            .iter()
            .filter(|f| f.kind == kind)
            .map(|f| {
                json!({
                    "type": f.res_type,
                    "url": format!("{base}/$export-file/{}/{}", job.id, f.file),
                    "count": f.count,
                })
            })
            .collect()
    };
    let mut manifest = json!({
        "transactionTime": fhir_store::time::fhir_instant(job.transaction_time),
        "request": job.request_url,
        "requiresAccessToken": requires_token,
        "output": list(FileKind::Output),
        "error": list(FileKind::Error),
    });
    let deleted = list(FileKind::Deleted);
    if !deleted.is_empty() {
        manifest["deleted"] = Value::Array(deleted);
    }
    manifest
}

/// `DELETE /$export-status/[job]`: cancels the job and removes its files.
pub async fn cancel(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String,)>,
) -> Result<HttpResponse> {
    let out = output(&req)?;
    let (id,) = path.into_inner();
    let (job, lookup) = (id.clone(), id.clone());
    owns(&req, &state.export(move |ex| ex.job(&lookup)).await?)?;
    state.export(move |ex| ex.cancel(&job)).await?;
    Ok(crate::http::respond::informational(
        StatusCode::ACCEPTED,
        format!("export job {id} cancelled; its files are removed"),
        out,
    ))
}

/// `GET /$export-file/[job]/[file]`: one NDJSON file, streamed.
pub async fn file(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (id, name) = path.into_inner();
    let lookup = id.clone();
    owns(&req, &state.export(move |ex| ex.job(&lookup)).await?)?;
    let (listed, path) = state.export(move |ex| ex.file_path(&id, &name)).await?;
    if listed.kind == FileKind::Output {
        covers(&req, std::slice::from_ref(&listed.res_type))?;
    }
    ndjson_file(path).await
}

/// An NDJSON file of a job, streamed in chunks.
pub(crate) async fn ndjson_file(path: std::path::PathBuf) -> Result<HttpResponse> {
    let (file, len) = web::block(move || {
        let f = std::fs::File::open(path)?;
        let len = f.metadata()?.len();
        Ok::<_, std::io::Error>((f, len))
    })
    .await?
    .map_err(|e| ApiError::Internal(format!("export file: {e}")))?;
    let stream = futures_util::stream::unfold(Some(file), |file| async move {
        let mut f = file?;
        let read = web::block(move || {
            let mut buf = vec![0u8; CHUNK];
            let n = f.read(&mut buf)?;
            buf.truncate(n);
            Ok::<_, std::io::Error>((f, buf))
        })
        .await;
        match read {
            Ok(Ok((_, buf))) if buf.is_empty() => None,
            Ok(Ok((f, buf))) => Some((Ok(web::Bytes::from(buf)), Some(f))),
            Ok(Err(e)) => Some((Err(actix_web::error::ErrorInternalServerError(e)), None)),
            Err(e) => Some((Err(actix_web::error::ErrorInternalServerError(e)), None)),
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("application/fhir+ndjson")
        .body(SizedStream::new(len, stream)))
}

/// An HTTP date (RFC 9110 IMF-fixdate) for `Expires`.
pub(crate) fn http_date(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    header::HttpDate::from(at).to_string()
}
