//! The patch interaction (http.html#patch), plain and conditional: JSON Patch and
//! FHIRPath Patch documents, applied inside the store's write so that the patched
//! resource is checked (and validated) before it is stored.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use fhir_store::StoreError;
use serde_json::{json, Value};

use crate::access::scopes::Interaction;
use crate::conditions;
use crate::error::ApiError;
use crate::guard;
use crate::http::body::{parse_body, parse_json, read_limited};
use crate::http::negotiate::{content_type, output};
use crate::http::prefer::{prefer, Handling};
use crate::http::respond;
use crate::state::{check_id, AppState};

use super::crud::{path_type, precondition};

type Result<T> = std::result::Result<T, ApiError>;

/// A patch document: JSON Patch (RFC 6902) or FHIRPath Patch (fhirpatch.html).
#[derive(Debug, Clone)]
pub(crate) enum Patch {
    Json(json_patch::Patch),
    FhirPath(fhirpath::FhirPathPatch),
    /// `$meta-add` (`add`) or `$meta-delete` of the profiles, tags and labels of `meta`.
    Meta {
        meta: Value,
        add: bool,
    },
}

/// Reads the patch document by its Content-Type: `application/json-patch+json` is a
/// JSON Patch; a FHIR Parameters resource (`application/fhir+json`, `application/json`,
/// `application/fhir+xml`) is a FHIRPath Patch.
async fn patch_body(state: &AppState, req: &HttpRequest, payload: web::Payload) -> Result<Patch> {
    let ct = content_type(req);
    let json_patch = match ct.as_deref() {
        Some("application/json-patch+json") => true,
        Some("application/fhir+json" | "application/json" | "application/fhir+xml" | "application/xml") => false,
        other => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Content-Type '{}' is not supported for patch: send a JSON Patch (application/json-patch+json) or a FHIRPath Patch Parameters (application/fhir+json, application/fhir+xml)",
                other.unwrap_or("")
            )))
        }
    };
    let bytes = read_limited(req, payload, state.max_body_bytes).await?;
    if json_patch {
        let value = parse_json(&bytes)?;
        return serde_json::from_value(value).map(Patch::Json).map_err(|e| {
            ApiError::bad(format!("the body is not a valid JSON Patch document: {e}"))
        });
    }
    fhirpath_patch(&parse_body(req, &bytes)?, None)
}

/// A FHIRPath Patch from a Parameters resource; `within` prefixes the location of a
/// mistake (a Bundle entry's resource).
pub(crate) fn fhirpath_patch(parameters: &Value, within: Option<&str>) -> Result<Patch> {
    fhirpath::FhirPathPatch::parse(parameters)
        .map(Patch::FhirPath)
        .map_err(|e| match e {
            fhirpath::PatchError::Malformed { message, at } => {
                let at = match within {
                    Some(w) => format!("{w}{}", at.trim_start_matches("Parameters")),
                    None => at,
                };
                ApiError::bad_at(format!("not a valid FHIRPath Patch: {message}"), at)
            }
            other => ApiError::bad(other.to_string()),
        })
}

/// Applies a patch; the result must still be the same resource, with known elements.
pub(crate) fn apply_patch(
    defs: &'static fhir_model::Definitions,
    rt: String,
    patch: Patch,
    lenient: bool,
    validator: Option<std::sync::Arc<fhir_validation::Validator>>,
) -> impl FnOnce(Value) -> fhir_store::StoreResult<Value> {
    move |mut doc: Value| {
        let id = doc.get("id").cloned();
        // `patch_unsafe`: a failed patch leaves `doc` half-patched, which is fine, as it
        // is then dropped. `json_patch::patch` undoes the applied operations instead and
        // panics when the undo fails (a `move` to the root followed by a failing
        // operation), which the fuzz test found.
        let applied = match &patch {
            Patch::Json(p) => json_patch::patch_unsafe(&mut doc, p).map_err(|e| e.to_string()),
            Patch::FhirPath(p) => p.apply(defs, &mut doc).map_err(|e| e.to_string()),
            Patch::Meta { meta, add } => {
                change_meta(&mut doc, meta, *add);
                Ok(())
            }
        };
        applied.map_err(|e| StoreError::Invalid {
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
    let apply = applier(&state, &req, &rt, patch, "a patch").await?;
    let updated = state
        .writing(&req, move |s| s.patch(&rt, &id, pre, apply))
        .await?;
    Ok(patched(&state, &req, out, &updated.stored))
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
    let apply = applier(&state, &req, &rt, patch, "a patch").await?;
    let updated = state
        .writing(&req, move |s| {
            s.conditional_patch(&rt, &conditions, pre, apply)
        })
        .await?;
    Ok(patched(&state, &req, out, &updated.stored))
}

/// The checks of every patch of `rt` (`what`, for the refusal), and the function that
/// applies it inside the store's write (validated unless `Prefer: handling=lenient`).
pub(crate) async fn applier(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    rt: &str,
    patch: Patch,
    what: &str,
) -> Result<impl FnOnce(Value) -> fhir_store::StoreResult<Value>> {
    let lenient = prefer(req).handling == Some(Handling::Lenient);
    guard::ensure_unrestricted(state, req, Interaction::Update, rt, what)?;
    if rt == "Subscription" && state.subscriptions.is_some() {
        return Err(ApiError::Unprocessable(
            "a Subscription is changed with PUT: its criteria, channel and status are checked together".into(),
            None,
        ));
    }
    let validator = patch_validator(state, lenient).await?;
    let apply = apply_patch(state.defs, rt.to_string(), patch, lenient, validator);
    // A patched subscription topic must still be one the dispatcher can read.
    let topics = rt == "Basic" && state.subscriptions.is_some();
    Ok(move |doc: Value| {
        let doc = apply(doc)?;
        if topics && crate::subscriptions::topic::is_topic(&doc) {
            crate::subscriptions::topic::Topic::parse(fhir_search::SearchRegistry::r4(), &doc)
                .map_err(|i| StoreError::Invalid {
                    message: i.message,
                    expression: Some(i.at),
                })?;
        }
        Ok(doc)
    })
}

/// The answer to a patch: the new version, shaped by `Prefer: return`.
fn patched(
    state: &AppState,
    req: &HttpRequest,
    out: crate::http::negotiate::Output,
    stored: &fhir_store::StoredResource,
) -> HttpResponse {
    let base = state.base(req);
    respond::written(
        StatusCode::OK,
        stored,
        out,
        prefer(req).return_,
        &base,
        false,
    )
}

/// Adds (or removes) the profiles, tags and security labels of `meta` to those of
/// `resource`; `true` when that changed anything.
pub(crate) fn change_meta(resource: &mut Value, meta: &Value, add: bool) -> bool {
    let Some(obj) = resource.as_object_mut() else {
        return false;
    };
    let target = obj.entry("meta").or_insert_with(|| json!({}));
    let Some(target) = target.as_object_mut() else {
        return false;
    };
    let mut changed = false;
    for key in ["profile", "tag", "security"] {
        let given = meta
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let list = target.entry(key).or_insert_with(|| json!([]));
        let Some(list) = list.as_array_mut() else {
            continue;
        };
        for g in given {
            let present = list.iter().position(|e| same(key, e, &g));
            match (add, present) {
                (true, None) => {
                    list.push(g);
                    changed = true;
                }
                (false, Some(i)) => {
                    list.remove(i);
                    changed = true;
                }
                _ => {}
            }
        }
        if list.is_empty() {
            target.shift_remove(key);
        }
    }
    if target.is_empty() {
        obj.shift_remove("meta");
    }
    changed
}

/// Profiles match by URL; tags and security labels by system and code (version and
/// display are ignored).
fn same(key: &str, a: &Value, b: &Value) -> bool {
    if key == "profile" {
        return a == b;
    }
    a.get("system") == b.get("system") && a.get("code") == b.get("code")
}
