//! Validation of requests: each resource a request writes before it is written (422
//! with the issues when rejected, per `Prefer: handling`), and the `$validate`
//! operation (type and instance level, POST and GET), over `crate::validation`.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use fhir_model::{Issue, IssueType, OperationOutcome};
use fhir_validation::{ValidationOptions, ValidationReport, Validator};
use serde_json::Value;

use crate::error::ApiError;
use crate::http::prefer::{prefer, Handling};
use crate::state::AppState;
use crate::validation::{rejects, Strictness};

pub fn strictness(state: &AppState, req: &HttpRequest) -> Strictness {
    match prefer(req).handling {
        _ if !state.validation.on_write => Strictness::Lenient,
        Some(Handling::Lenient) => Strictness::Lenient,
        Some(Handling::Strict) => Strictness::Strict,
        _ if state.validation.reject_warnings => Strictness::Strict,
        _ => Strictness::Normal,
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
        state.terminology_rows_from,
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
    crate::ids::check_id(&id)?;
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
    let grant = crate::guard::grant(&req, crate::access::scopes::Interaction::Read, &rt)?;
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
    crate::guard::ensure_stored(
        state,
        grant,
        crate::access::scopes::Interaction::Read,
        &stored,
    )
    .await?;
    if stored.deleted {
        return Err(ApiError::Gone(format!("{rt}/{id} was deleted")));
    }
    serde_json::from_str(&stored.content)
        .map_err(|e| ApiError::Internal(format!("stored {rt}/{id} is not JSON: {e}")))
}
