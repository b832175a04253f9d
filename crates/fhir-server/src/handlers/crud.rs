//! create, read, vread, update, patch and delete, plain and conditional.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use fhir_model::{Issue, IssueType, OperationOutcome};
use fhir_store::{Created, Deleted, Precondition, StoreError};
use serde_json::Value;

use crate::auth::guard;
use crate::auth::scopes::Interaction;
use crate::auth::Grant;
use crate::conditions;
use crate::error::ApiError;
use crate::http::body::{parse_json, read_limited};
use crate::http::headers::{if_match, if_modified_since, if_none_exist, if_none_match, NoneMatch};
use crate::http::negotiate::{content_type, output};
use crate::http::prefer::{prefer, Handling, Return};
use crate::http::respond;
use crate::state::{check_id, AppState};

type Result<T> = std::result::Result<T, ApiError>;

/// Reads and checks a resource body for `resource_type`: JSON syntax, an object of the
/// URL's type, and only elements the definitions know (unless `handling=lenient`).
async fn resource_body(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
    resource_type: &str,
) -> Result<Value> {
    crate::http::negotiate::body_is_xml(req)?;
    let bytes = read_limited(req, payload, state.max_body_bytes).await?;
    let value = crate::http::body::parse_body(req, &bytes)?;
    check_resource(state, req, &value, resource_type)?;
    Ok(value)
}

pub(crate) fn check_resource(
    state: &AppState,
    req: &HttpRequest,
    value: &Value,
    resource_type: &str,
) -> Result<()> {
    let Some(obj) = value.as_object() else {
        return Err(ApiError::structure(
            "the body must be a JSON object (a FHIR resource)",
            None,
        ));
    };
    match obj.get("resourceType") {
        None => return Err(ApiError::structure("the resource has no resourceType", Some("resourceType".into()))),
        Some(Value::String(t)) if t == resource_type => {}
        Some(Value::String(t)) => {
            return Err(ApiError::bad_at(
                format!("resourceType '{t}' does not match the resource type of the URL ('{resource_type}')"),
                "resourceType",
            ))
        }
        Some(_) => return Err(ApiError::structure("resourceType must be a string", Some("resourceType".into()))),
    }
    if let Some(id) = obj.get("id") {
        match id.as_str() {
            Some(s) if crate::state::valid_id(s) => {}
            _ => {
                return Err(ApiError::bad_at(
                    "id must be 1-64 characters of A-Z, a-z, 0-9, '-' and '.'",
                    format!("{resource_type}.id"),
                ))
            }
        }
    }
    if prefer(req).handling == Some(Handling::Lenient) {
        return Ok(());
    }
    let issues = state.defs.structure_issues(value);
    if issues.is_empty() {
        return Ok(());
    }
    let mut oo = OperationOutcome::new();
    for i in issues {
        oo = oo.with(Issue::error(IssueType::Structure, i.to_string()).at(i.path));
    }
    Err(ApiError::Invalid(oo, StatusCode::BAD_REQUEST))
}

fn path_type(path: &web::Path<(String,)>) -> &str {
    &path.0
}

// ------------------------------------------------------------------------ reads

pub async fn read(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (rt, id) = path.into_inner();
    state.check_type(&rt)?;
    check_id(&id)?;
    let out = output(&req)?;
    let subset = crate::http::negotiate::subset(&req)?;
    let grant = guard::grant(&req, Interaction::Read, &rt)?;
    crate::audit::sync(&state, rt == "AuditEvent").await?;
    // Hot resources come from memory without a trip to a blocking thread.
    let stored = match state.store.cached(&rt, &id) {
        Some(hit) => Some(hit),
        None => {
            let (t, i) = (rt.clone(), id.clone());
            state.blocking(move |s| s.read_shared(&t, &i)).await?
        }
    };
    let Some(stored) = stored else {
        return Err(ApiError::NotFound(format!("{rt}/{id} is not known")));
    };
    guard::ensure_stored(&state, &grant, Interaction::Read, &stored).await?;
    if stored.deleted {
        return Err(ApiError::Gone(format!(
            "{rt}/{id} was deleted (version {})",
            stored.version
        )));
    }
    let not_modified = NoneMatch::not_modified(
        if_none_match(&req).as_ref(),
        if_modified_since(&req),
        stored.version,
        stored.last_updated,
    );
    if not_modified {
        let mut b = HttpResponse::NotModified();
        respond::version_headers(&mut b, &stored);
        return Ok(b.finish());
    }
    Ok(match subset {
        Some(s) => respond::resource_subset(&stored, out, state.defs, &s),
        None => respond::resource(StatusCode::OK, &stored, out),
    })
}

pub async fn vread(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse> {
    let (rt, id, vid) = path.into_inner();
    state.check_type(&rt)?;
    check_id(&id)?;
    let out = output(&req)?;
    let subset = crate::http::negotiate::subset(&req)?;
    // Version ids are opaque to clients: one this server never issued is simply unknown.
    let Some(version) = vid.parse::<i64>().ok().filter(|v| *v > 0) else {
        return Err(ApiError::NotFound(format!(
            "{rt}/{id} has no version '{vid}'"
        )));
    };
    let grant = guard::grant(&req, Interaction::Read, &rt)?;
    crate::audit::sync(&state, rt == "AuditEvent").await?;
    let (t, i) = (rt.clone(), id.clone());
    let stored = state
        .blocking(move |s| s.vread_shared(&t, &i, version))
        .await?;
    if let Some(s) = &stored {
        guard::ensure_stored(&state, &grant, Interaction::Read, s).await?;
    }
    match stored {
        None => Err(ApiError::NotFound(format!(
            "{rt}/{id} has no version {version}"
        ))),
        Some(s) if s.deleted => Err(ApiError::Gone(format!(
            "version {version} of {rt}/{id} is its deletion"
        ))),
        Some(s) => Ok(match subset {
            Some(sub) => respond::resource_subset(&s, out, state.defs, &sub),
            None => respond::resource(StatusCode::OK, &s, out),
        }),
    }
}

// ----------------------------------------------------------------------- create

pub async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String,)>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let rt = path_type(&path).to_string();
    state.check_type(&rt)?;
    let out = output(&req)?;
    let conditions = if_none_exist(&req)
        .map(|q| conditions::parse(&rt, &q))
        .transpose()?;
    if conditions.is_some() {
        guard::ensure_unrestricted(
            &state,
            &req,
            Interaction::Create,
            &rt,
            "a conditional create",
        )?;
    }
    let mut resource = resource_body(&state, &req, payload, &rt).await?;
    guard::ensure_content(&state, &req, Interaction::Create, &rt, &resource)?;
    crate::validation::check_write(&state, &req, &resource).await?;
    // The server assigns the id of a created resource; one in the body is ignored.
    if let Some(obj) = resource.as_object_mut() {
        obj.shift_remove("id");
    }
    let t = rt.clone();
    let created = state
        .writing(&req, move |s| s.create(&t, resource, conditions.as_deref()))
        .await?;
    let base = state.base(&req);
    let ret = prefer(&req).return_;
    Ok(match created {
        Created::New(stored) => {
            respond::written(StatusCode::CREATED, &stored, out, ret, &base, true)
        }
        Created::Existing(stored) => {
            respond::written(StatusCode::OK, &stored, out, ret, &base, true)
        }
    })
}

// ----------------------------------------------------------------------- update

pub async fn update(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let (rt, id) = path.into_inner();
    state.check_type(&rt)?;
    check_id(&id)?;
    let out = output(&req)?;
    let pre = precondition(&req)?;
    let resource = resource_body(&state, &req, payload, &rt).await?;
    match resource.get("id").and_then(Value::as_str) {
        None => {
            return Err(ApiError::bad_at(
                format!("the resource has no id; an update must carry the id of the URL ('{id}')"),
                format!("{rt}.id"),
            ))
        }
        Some(body_id) if body_id != id => {
            return Err(ApiError::bad_at(
                format!("the resource id '{body_id}' does not match the id of the URL ('{id}')"),
                format!("{rt}.id"),
            ))
        }
        Some(_) => {}
    }
    let grant = guard::ensure_content(&state, &req, Interaction::Update, &rt, &resource)?;
    crate::validation::check_write(&state, &req, &resource).await?;
    if grant != Grant::All {
        let (t, i) = (rt.clone(), id.clone());
        match state.blocking(move |s| s.read(&t, &i)).await? {
            Some(existing) if !existing.deleted => {
                guard::ensure_stored(&state, &grant, Interaction::Update, &existing).await?
            }
            _ => {
                guard::ensure_content(&state, &req, Interaction::Create, &rt, &resource)?;
            }
        }
    }
    let t = rt.clone();
    let updated = state
        .writing(&req, move |s| s.update(&t, &id, resource, pre))
        .await?;
    let status = if updated.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let base = state.base(&req);
    Ok(respond::written(
        status,
        &updated.stored,
        out,
        prefer(&req).return_,
        &base,
        updated.created,
    ))
}

fn precondition(req: &HttpRequest) -> Result<Precondition> {
    let if_none_match_any = matches!(if_none_match(req), Some(NoneMatch::Any));
    Ok(Precondition {
        if_match: if_match(req)?,
        if_none_match_any,
    })
}

pub async fn conditional_update(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String,)>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let rt = path_type(&path).to_string();
    state.check_type(&rt)?;
    let out = output(&req)?;
    let conditions = conditions::parse(&rt, req.query_string())?;
    let pre = precondition(&req)?;
    let resource = resource_body(&state, &req, payload, &rt).await?;
    let body_id = resource
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string);
    guard::ensure_unrestricted(
        &state,
        &req,
        Interaction::Update,
        &rt,
        "a conditional update",
    )?;
    crate::validation::check_write(&state, &req, &resource).await?;
    let t = rt.clone();
    let updated = state
        .writing(&req, move |s| {
            s.conditional_update(&t, &conditions, resource, body_id.as_deref(), pre)
        })
        .await?;
    let status = if updated.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let base = state.base(&req);
    Ok(respond::written(
        status,
        &updated.stored,
        out,
        prefer(&req).return_,
        &base,
        updated.created,
    ))
}

// ------------------------------------------------------------------------ patch

/// Reads a JSON Patch document (RFC 6902).
async fn patch_body(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<json_patch::Patch> {
    match content_type(req).as_deref() {
        Some("application/json-patch+json") => {}
        Some("application/fhir+json") | Some("application/json") => {
            return Err(ApiError::UnsupportedMediaType(
                "FHIRPath Patch (Parameters) is not supported yet: send a JSON Patch as application/json-patch+json"
                    .into(),
            ))
        }
        other => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Content-Type '{}' is not supported for patch: send application/json-patch+json",
                other.unwrap_or("")
            )))
        }
    }
    let bytes = read_limited(req, payload, state.max_body_bytes).await?;
    let value = parse_json(&bytes)?;
    serde_json::from_value(value)
        .map_err(|e| ApiError::bad(format!("the body is not a valid JSON Patch document: {e}")))
}

/// Applies a JSON Patch; the result must still be the same resource, with known elements.
pub(crate) fn apply_patch(
    defs: &'static fhir_model::Definitions,
    rt: String,
    patch: json_patch::Patch,
    lenient: bool,
    validator: Option<std::sync::Arc<fhir_validation::Validator>>,
) -> impl FnOnce(Value) -> fhir_store::StoreResult<Value> {
    move |mut doc: Value| {
        let id = doc.get("id").cloned();
        // `patch_unsafe`: a failed patch leaves `doc` half-patched, which is fine, as it
        // is then dropped. `json_patch::patch` undoes the applied operations instead and
        // panics when the undo fails (a `move` to the root followed by a failing
        // operation), which the fuzz test found.
        json_patch::patch_unsafe(&mut doc, &patch).map_err(|e| StoreError::Invalid {
            message: format!("the patch cannot be applied: {e}"),
            expression: None,
        })?;
        if doc.get("resourceType").and_then(Value::as_str) != Some(rt.as_str()) {
            return Err(StoreError::Invalid {
                message: "a patch may not change or remove resourceType".into(),
                expression: Some("resourceType".into()),
            });
        }
        if doc.get("id") != id.as_ref() {
            return Err(StoreError::Invalid {
                message: "a patch may not change or remove the id".into(),
                expression: Some(format!("{rt}.id")),
            });
        }
        if !lenient {
            if let Some(issue) = defs.structure_issues(&doc).into_iter().next() {
                return Err(StoreError::Invalid {
                    message: format!("the patched resource is invalid: {issue}"),
                    expression: Some(issue.path),
                });
            }
            if let Some(v) = validator {
                let report = v.validate(&doc, &Default::default());
                let first = report
                    .errors()
                    .next()
                    .map(|e| (e.message.clone(), e.expression.clone()));
                if let Some((message, expression)) = first {
                    return Err(StoreError::Invalid {
                        message: format!("the patched resource is invalid: {message}"),
                        expression: Some(expression),
                    });
                }
            }
        }
        Ok(doc)
    }
}

/// The validator for patched resources, when writes are validated.
pub(crate) async fn patch_validator(
    state: &web::Data<AppState>,
    lenient: bool,
) -> Result<Option<std::sync::Arc<fhir_validation::Validator>>> {
    if lenient || !state.validation.on_write {
        return Ok(None);
    }
    let st = state.clone();
    Ok(Some(web::block(move || st.validation.validator()).await??))
}

pub async fn patch(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let (rt, id) = path.into_inner();
    state.check_type(&rt)?;
    check_id(&id)?;
    let out = output(&req)?;
    let pre = precondition(&req)?;
    let patch = patch_body(&state, &req, payload).await?;
    let lenient = prefer(&req).handling == Some(Handling::Lenient);
    guard::ensure_unrestricted(&state, &req, Interaction::Update, &rt, "a patch")?;
    let validator = patch_validator(&state, lenient).await?;
    let apply = apply_patch(state.defs, rt.clone(), patch, lenient, validator);
    let updated = state
        .writing(&req, move |s| s.patch(&rt, &id, pre, apply))
        .await?;
    let base = state.base(&req);
    Ok(respond::written(
        StatusCode::OK,
        &updated.stored,
        out,
        prefer(&req).return_,
        &base,
        false,
    ))
}

pub async fn conditional_patch(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String,)>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let rt = path_type(&path).to_string();
    state.check_type(&rt)?;
    let out = output(&req)?;
    let conditions = conditions::parse(&rt, req.query_string())?;
    let pre = precondition(&req)?;
    let patch = patch_body(&state, &req, payload).await?;
    let lenient = prefer(&req).handling == Some(Handling::Lenient);
    guard::ensure_unrestricted(&state, &req, Interaction::Update, &rt, "a patch")?;
    let validator = patch_validator(&state, lenient).await?;
    let apply = apply_patch(state.defs, rt.clone(), patch, lenient, validator);
    let updated = state
        .writing(&req, move |s| {
            s.conditional_patch(&rt, &conditions, pre, apply)
        })
        .await?;
    let base = state.base(&req);
    Ok(respond::written(
        StatusCode::OK,
        &updated.stored,
        out,
        prefer(&req).return_,
        &base,
        false,
    ))
}

// ----------------------------------------------------------------------- delete

fn deleted_response(req: &HttpRequest, deleted: Deleted) -> Result<HttpResponse> {
    let out = output(req)?;
    let (stored, text) = match &deleted {
        Deleted::Now(s) => (Some(s), format!("{}/{} deleted", s.res_type, s.res_id)),
        Deleted::Already(s) => (
            Some(s),
            format!("{}/{} was already deleted", s.res_type, s.res_id),
        ),
        Deleted::NotFound => (None, "nothing to delete".to_string()),
    };
    let ret = prefer(req).return_;
    let mut resp = if ret == Return::OperationOutcome {
        let oo = OperationOutcome::of(Issue::information(IssueType::Informational, text));
        respond::json(StatusCode::OK, &oo.to_value(), out)
    } else {
        HttpResponse::NoContent().finish()
    };
    if let Some(s) = stored {
        if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&s.etag()) {
            resp.headers_mut().insert(actix_web::http::header::ETAG, v);
        }
    }
    Ok(resp)
}

pub async fn delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (rt, id) = path.into_inner();
    state.check_type(&rt)?;
    check_id(&id)?;
    output(&req)?;
    let pre = precondition(&req)?;
    if state.audit_on() && rt == "AuditEvent" {
        guard::ensure_unrestricted(&state, &req, Interaction::Delete, &rt, "a delete")?;
    }
    let grant = guard::grant(&req, Interaction::Delete, &rt)?;
    if grant != Grant::All {
        if matches!(grant, Grant::Rules(_)) {
            guard::ensure_unrestricted(&state, &req, Interaction::Delete, &rt, "a delete")?;
        }
        let (t, i) = (rt.clone(), id.clone());
        if let Some(existing) = state.blocking(move |s| s.read(&t, &i)).await? {
            guard::ensure_stored(&state, &grant, Interaction::Delete, &existing).await?;
        }
    }
    let result = state.writing(&req, move |s| s.delete(&rt, &id, pre)).await;
    let deleted = match result {
        // Deleting what does not exist has no effect (http.html#delete).
        Err(ApiError::NotFound(_)) => Deleted::NotFound,
        other => other?,
    };
    deleted_response(&req, deleted)
}

pub async fn conditional_delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String,)>,
) -> Result<HttpResponse> {
    let rt = path_type(&path).to_string();
    state.check_type(&rt)?;
    output(&req)?;
    let conditions = conditions::parse(&rt, req.query_string())?;
    let pre = precondition(&req)?;
    guard::ensure_unrestricted(
        &state,
        &req,
        Interaction::Delete,
        &rt,
        "a conditional delete",
    )?;
    let deleted = state
        .writing(&req, move |s| s.conditional_delete(&rt, &conditions, pre))
        .await?;
    deleted_response(&req, deleted)
}
