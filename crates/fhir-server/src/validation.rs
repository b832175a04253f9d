//! Validation of what clients write (create, update, Bundle entries) and the
//! `$validate` operation, with `fhir-validation` doing the checking. Validation runs on
//! the blocking pool so that a slow validation never stalls other requests.
//!
//! Errors reject a write with 422 and the OperationOutcome; warnings are accepted
//! unless the server rejects warnings (`--reject-warnings`) or the request says
//! `Prefer: handling=strict`; `Prefer: handling=lenient` accepts errors other than
//! syntax (they are still reported by `$validate`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use fhir_model::{Issue, IssueType, OperationOutcome};
use fhir_validation::{ValidationOptions, ValidationReport, Validator};
use serde_json::Value;

use crate::error::ApiError;
use crate::http::prefer::{prefer, Handling};
use crate::state::AppState;

/// The validator, built in the background at start-up (it takes a moment). Clones
/// share it.
#[derive(Clone)]
pub struct Validation {
    cell: Arc<OnceLock<Result<Arc<Validator>, String>>>,
    ready: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    /// Validate creates, updates and Bundle entries.
    pub on_write: bool,
    /// Warnings reject writes too.
    pub reject_warnings: bool,
}

impl Validation {
    /// Starts building the R4 validator plus every `.tgz` package in `packages`.
    pub fn start(packages: Option<PathBuf>, on_write: bool, reject_warnings: bool) -> Validation {
        let cell = Arc::new(OnceLock::new());
        let ready = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let (c, r) = (cell.clone(), ready.clone());
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let built = build(packages.as_deref()).map(Arc::new);
            match &built {
                Ok(_) => {
                    tracing::info!(ms = started.elapsed().as_millis() as u64, "validator ready")
                }
                Err(e) => tracing::error!(error = %e, "validator failed to load"),
            }
            let _ = c.set(built);
            let (lock, cvar) = &*r;
            *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
            cvar.notify_all();
        });
        Validation {
            cell,
            ready,
            on_write,
            reject_warnings,
        }
    }

    /// The validator (blocking until it is built: call off the async executor).
    pub fn validator(&self) -> Result<Arc<Validator>, ApiError> {
        let (lock, cvar) = &*self.ready;
        let mut done = lock.lock().unwrap_or_else(|p| p.into_inner());
        while !*done {
            done = cvar.wait(done).unwrap_or_else(|p| p.into_inner());
        }
        match self.cell.get() {
            Some(Ok(v)) => Ok(v.clone()),
            Some(Err(e)) => Err(ApiError::Internal(format!("validator unavailable: {e}"))),
            None => Err(ApiError::Internal("validator unavailable".into())),
        }
    }
}

/// The R4 validator with the packages of a folder.
pub fn build(packages: Option<&Path>) -> Result<Validator, String> {
    let mut v = Validator::r4();
    let Some(dir) = packages else {
        return Ok(v);
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "tgz"))
        .collect();
    files.sort();
    for f in files {
        v.add_package_file(&f)
            .map_err(|e| format!("{}: {e}", f.display()))?;
        tracing::info!(package = %f.display(), "package loaded");
    }
    Ok(v)
}

/// How strictly a request's writes are judged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strictness {
    Lenient,
    #[default]
    Normal,
    Strict,
}

pub fn strictness(state: &AppState, req: &HttpRequest) -> Strictness {
    match prefer(req).handling {
        _ if !state.validation.on_write => Strictness::Lenient,
        Some(Handling::Lenient) => Strictness::Lenient,
        Some(Handling::Strict) => Strictness::Strict,
        _ if state.validation.reject_warnings => Strictness::Strict,
        _ => Strictness::Normal,
    }
}

/// Whether a report rejects a write.
pub fn rejects(report: &ValidationReport, s: Strictness) -> bool {
    match s {
        Strictness::Lenient => false,
        Strictness::Normal => report.has_errors(),
        Strictness::Strict => {
            !report.issues.is_empty()
                && report.issues.iter().any(|i| {
                    i.severity.is_error()
                        || matches!(i.severity, fhir_validation::Severity::Warning)
                })
        }
    }
}

/// Validates resources about to be written (off the executor): one report each.
/// The resources come back with their reports: they are moved to the validating
/// thread, not copied.
pub async fn check_many(
    state: &web::Data<AppState>,
    resources: Vec<Option<Value>>,
) -> Result<(Vec<Option<Value>>, Vec<Option<ValidationReport>>), ApiError> {
    if !state.validation.on_write || resources.iter().all(Option::is_none) {
        let none = resources.iter().map(|_| None).collect();
        return Ok((resources, none));
    }
    let v = ready_validator(state).await?;
    let terminology = Some(stored_terminology(state));
    state
        .budgeted(move || {
            let options = ValidationOptions {
                terminology,
                ..Default::default()
            };
            let reports = resources
                .iter()
                .map(|r| r.as_ref().map(|r| v.validate(r, &options)))
                .collect();
            within_budget()?;
            Ok::<_, ApiError>((resources, reports))
        })
        .await
}

/// The code systems and value sets written through the API, for one validation
/// request: a code of a stored code system is checked like one of the packages'.
fn stored_terminology(state: &AppState) -> Arc<dyn fhir_validation::TerminologySource> {
    Arc::new(crate::stored_terminology::ForValidation::new(
        state.store.clone(),
        state.terminology.clone(),
        state.defs.terminology(),
    ))
}

/// The validator, once it has loaded (it loads in the background at start-up; the
/// wait is not charged to a request's time budget).
pub async fn ready_validator(state: &web::Data<AppState>) -> Result<Arc<Validator>, ApiError> {
    let st = state.clone();
    web::block(move || st.validation.validator()).await?
}

/// A validation cut short by the request's time budget says nothing: 503, not its
/// partial issues.
fn within_budget() -> Result<(), ApiError> {
    if fhir_model::budget::expired() {
        Err(ApiError::Timeout)
    } else {
        Ok(())
    }
}

/// Validates one resource about to be written: 422 with the issues when rejected.
pub async fn check_write(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    resource: &Value,
) -> Result<(), ApiError> {
    let strict = strictness(state, req);
    if strict == Strictness::Lenient {
        return Ok(());
    }
    let (_, reports) = check_many(state, vec![Some(resource.clone())]).await?;
    match reports.into_iter().next().flatten() {
        Some(r) if rejects(&r, strict) => Err(ApiError::Invalid(
            r.to_operation_outcome(),
            StatusCode::UNPROCESSABLE_ENTITY,
        )),
        _ => Ok(()),
    }
}

// ------------------------------------------------------------------- $validate

/// What `$validate` was asked: the resource, the mode and profiles.
struct Request {
    resource: Option<Value>,
    mode: Option<String>,
    profiles: Vec<String>,
}

fn parse_request(body: Value, query: &str) -> Result<Request, ApiError> {
    let mut profiles: Vec<String> = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "profile")
        .map(|(_, v)| v.into_owned())
        .collect();
    let mut mode = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "mode")
        .map(|(_, v)| v.into_owned());
    if body.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Ok(Request {
            resource: (!body.is_null()).then_some(body),
            mode,
            profiles,
        });
    }
    let mut resource = None;
    for (i, p) in body
        .get("parameter")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("Parameters.parameter[{i}]");
        match p.get("name").and_then(Value::as_str) {
            Some("resource") => resource = p.get("resource").cloned(),
            Some("mode") => {
                mode = p
                    .get("valueCode")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            }
            Some("profile") => match p.get("valueUri").or_else(|| p.get("valueCanonical")) {
                Some(Value::String(u)) => profiles.push(u.clone()),
                _ => return Err(ApiError::bad_at("profile needs a valueUri", at)),
            },
            _ => {}
        }
    }
    Ok(Request {
        resource,
        mode,
        profiles,
    })
}

/// `[type]/$validate` and `[type]/[id]/$validate`, by POST (the resource in the body or
/// a Parameters) or by GET (`mode` and `profile` as query parameters; the operation
/// does not change state, so GET is allowed for its primitive parameters): 200 with the
/// OperationOutcome of the validation (an information issue when nothing is wrong).
/// At the instance level without a resource, the stored current version is validated.
pub async fn validate(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String,)>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (rt,) = path.into_inner();
    let body = crate::http::body::read_limited(&req, payload, state.max_body_bytes).await?;
    run(state, req, rt, None, body.freeze()).await
}

pub async fn validate_instance(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (rt, id) = path.into_inner();
    crate::state::check_id(&id)?;
    let body = crate::http::body::read_limited(&req, payload, state.max_body_bytes).await?;
    run(state, req, rt, Some(id), body.freeze()).await
}

async fn run(
    state: web::Data<AppState>,
    req: HttpRequest,
    rt: String,
    id: Option<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state.check_type(&rt)?;
    let out = crate::http::negotiate::output(&req)?;
    let grant = crate::auth::guard::grant(&req, crate::auth::scopes::Interaction::Read, &rt)?;
    let body = if body.is_empty() {
        Value::Null
    } else {
        crate::http::body::parse_body(&req, &body)?
    };
    let r = parse_request(body, req.query_string())?;
    let mode = r.mode.as_deref().unwrap_or("");
    if !matches!(mode, "" | "create" | "update" | "delete") {
        return Err(ApiError::bad_at(
            format!("mode '{mode}' is not create, update or delete"),
            "mode",
        ));
    }
    if mode == "delete" || mode == "update" {
        let Some(id) = &id else {
            return Err(ApiError::bad_at(
                format!("mode={mode} needs the instance: POST [type]/[id]/$validate"),
                "mode",
            ));
        };
        let (t, i) = (rt.clone(), id.clone());
        let exists = state
            .blocking(move |s| s.read(&t, &i))
            .await?
            .is_some_and(|s| !s.deleted);
        if mode == "delete" {
            let oo = if exists {
                OperationOutcome::of(Issue::information(
                    IssueType::Informational,
                    format!("{rt}/{id} can be deleted"),
                ))
            } else {
                OperationOutcome::of(Issue::error(
                    IssueType::NotFound,
                    format!("{rt}/{id} is not known"),
                ))
            };
            return Ok(crate::http::respond::json(
                StatusCode::OK,
                &oo.to_value(),
                out,
            ));
        }
    }
    let resource = match (r.resource, &id) {
        (Some(resource), _) => resource,
        // `GET [type]/[id]/$validate` (or a POST without a resource): the stored one.
        (None, Some(id)) => stored_resource(&state, &grant, &rt, id).await?,
        (None, None) => {
            return Err(ApiError::bad_at(
                "give the resource to validate as the body or a 'resource' parameter (POST), or name a stored one: GET [type]/[id]/$validate",
                "resource",
            ))
        }
    };
    if resource.get("resourceType").and_then(Value::as_str) != Some(rt.as_str()) {
        return Err(ApiError::bad_at(
            format!("the resource is not a {rt}"),
            "resourceType",
        ));
    }
    let mut extra = Vec::new();
    if let (Some(id), "update") = (&id, mode) {
        if resource.get("id").and_then(Value::as_str) != Some(id.as_str()) {
            extra.push(
                Issue::error(
                    IssueType::Invalid,
                    format!("for an update the resource id must be '{id}'"),
                )
                .at(format!("{rt}.id")),
            );
        }
    }
    let profiles = r.profiles;
    let v = ready_validator(&state).await?;
    let terminology = Some(stored_terminology(&state));
    let report = state
        .budgeted(move || -> Result<ValidationReport, ApiError> {
            let options = ValidationOptions {
                profiles,
                terminology,
                ..Default::default()
            };
            let report = v.validate(&resource, &options);
            within_budget()?;
            Ok(report)
        })
        .await?;
    let mut oo = report.to_operation_outcome();
    oo.issue.extend(extra);
    if oo.issue.is_empty() {
        oo = OperationOutcome::of(Issue::information(
            IssueType::Informational,
            "no issues found",
        ));
    }
    Ok(crate::http::respond::json(
        StatusCode::OK,
        &oo.to_value(),
        out,
    ))
}

/// The current version of `rt/id`, as the client may read it.
async fn stored_resource(
    state: &web::Data<AppState>,
    grant: &crate::auth::Grant,
    rt: &str,
    id: &str,
) -> Result<Value, ApiError> {
    let (t, i) = (rt.to_string(), id.to_string());
    let stored = state.blocking(move |s| s.read(&t, &i)).await?;
    let Some(stored) = stored else {
        return Err(ApiError::NotFound(format!("{rt}/{id} is not known")));
    };
    crate::auth::guard::ensure_stored(
        state,
        grant,
        crate::auth::scopes::Interaction::Read,
        &stored,
    )
    .await?;
    if stored.deleted {
        return Err(ApiError::Gone(format!("{rt}/{id} was deleted")));
    }
    serde_json::from_str(&stored.content)
        .map_err(|e| ApiError::Internal(format!("stored {rt}/{id} is not JSON: {e}")))
}
