//! create, read, vread, update, patch and delete, plain and conditional.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use fhir_model::{Issue, IssueType, OperationOutcome};
use fhir_store::{Created, Deleted, Precondition};
use serde_json::Value;

use crate::access::scopes::Interaction;
use crate::auth::Grant;
use crate::conditions;
use crate::error::ApiError;
use crate::guard;
use crate::http::body::read_limited;
use crate::http::headers::{if_match, if_modified_since, if_none_exist, if_none_match, NoneMatch};
use crate::http::negotiate::output;
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
    if super::binary::is_raw_write(req, resource_type) {
        let bytes = read_limited(req, payload, state.max_body_bytes).await?;
        return Ok(super::binary::from_raw(req, &bytes));
    }
    crate::http::negotiate::body_is_xml(req)?;
    let bytes = read_limited(req, payload, state.max_body_bytes).await?;
    let mut value = crate::http::body::parse_body(req, &bytes)?;
    check_resource(state, req, &value, resource_type)?;
    if resource_type == "Subscription" {
        crate::subscriptions::check_write(state.subscriptions.as_ref(), req, &mut value)?;
    }
    if resource_type == "Basic" {
        crate::subscriptions::check_topic_write(state.subscriptions.as_ref(), &value)?;
    }
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
            Some(s) if crate::ids::valid_id(s) => {}
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

pub(super) fn path_type(path: &web::Path<(String,)>) -> &str {
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
    let subset = crate::http::negotiate::subset(&req)?;
    let raw = super::binary::wants_raw(&req, &rt) && subset.is_none();
    let out = if raw {
        Default::default()
    } else {
        output(&req)?
    };
    let grant = guard::grant(&req, Interaction::Read, &rt)?;
    state.sync_audit(rt == "AuditEvent").await?;
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
    if rt == "Binary" {
        super::binary::check_context(&state, &req, &grant, &stored).await?;
    }
    if let Some(bytes) = raw.then(|| super::binary::raw(&stored)).flatten() {
        return Ok(bytes);
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
    let subset = crate::http::negotiate::subset(&req)?;
    let raw = super::binary::wants_raw(&req, &rt) && subset.is_none();
    let out = if raw {
        Default::default()
    } else {
        output(&req)?
    };
    // Version ids are opaque to clients: one this server never issued is simply unknown.
    let Some(version) = vid.parse::<i64>().ok().filter(|v| *v > 0) else {
        return Err(ApiError::NotFound(format!(
            "{rt}/{id} has no version '{vid}'"
        )));
    };
    let grant = guard::grant(&req, Interaction::Read, &rt)?;
    state.sync_audit(rt == "AuditEvent").await?;
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
        Some(s) => {
            if rt == "Binary" {
                super::binary::check_context(&state, &req, &grant, &s).await?;
            }
            if let Some(bytes) = raw.then(|| super::binary::raw(&s)).flatten() {
                return Ok(bytes);
            }
            Ok(match subset {
                Some(sub) => respond::resource_subset(&s, out, state.defs, &sub),
                None => respond::resource(StatusCode::OK, &s, out),
            })
        }
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
    crate::handlers::validate::check_write(&state, &req, &resource).await?;
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
    let mut resource = resource_body(&state, &req, payload, &rt).await?;
    if super::binary::is_raw_write(&req, &rt) {
        resource["id"] = Value::String(id.clone());
    }
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
    crate::handlers::validate::check_write(&state, &req, &resource).await?;
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

pub(super) fn precondition(req: &HttpRequest) -> Result<Precondition> {
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
    crate::handlers::validate::check_write(&state, &req, &resource).await?;
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
