//! Composition `$document` (composition-operations.html, documents.html):
//! `GET|POST Composition/[id]/$document` answers a `document` Bundle — the Composition
//! first, then every resource it refers to on this server, and what those refer to in
//! turn — with an identifier, a timestamp and absolute `fullUrl`s (bdl-9, bdl-10,
//! bdl-7). `persist=true` also stores the Bundle (`Location` of the stored one). A
//! client whose access is restricted gets the document only if it may read every
//! resource in it.

use std::collections::{HashSet, VecDeque};

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use fhir_store::StoredResource;
use serde_json::{json, Value};

use crate::access::scopes::Interaction;
use crate::auth::Grant;
use crate::error::ApiError;
use crate::guard;
use crate::http::negotiate::{output, query_param};
use crate::http::respond;
use crate::state::{check_id, AppState};

type Result<T> = std::result::Result<T, ApiError>;

/// The most resources one document gathers.
const MAX_RESOURCES: usize = 1000;

pub async fn document(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String,)>,
) -> Result<HttpResponse> {
    let (id,) = path.into_inner();
    check_id(&id)?;
    let out = output(&req)?;
    let persist = match query_param(&req, "persist").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_at(
                format!("persist is true or false, not '{other}'"),
                "persist",
            ))
        }
    };
    if query_param(&req, "graph").is_some() {
        return Err(ApiError::bad_at(
            "graph (a GraphDefinition for the document) is not supported: leave it out to get every referenced resource",
            "graph",
        ));
    }
    let grant = guard::grant(&req, Interaction::Read, "Composition")?;
    let defs = state.defs;
    let cid = id.clone();
    let base = state.base(&req);
    let local = base.clone();
    let gathered = state
        .blocking(move |s| gather(s, defs, &local, &cid))
        .await?;
    let Some(resources) = gathered else {
        return Err(ApiError::NotFound(format!("Composition/{id} is not known")));
    };
    check_access(&state, &req, &grant, &resources).await?;
    let bundle = bundle(&base, &resources)?;
    if !persist {
        return Ok(respond::json(StatusCode::OK, &bundle, out));
    }
    if let Grant::Patient(_) | Grant::Rules(_) = guard::grant(&req, Interaction::Create, "Bundle")?
    {
        return Err(ApiError::Forbidden(
            "persist=true stores a Bundle: it needs a scope to create Bundles".into(),
        ));
    }
    let created = state
        .writing(&req, move |s| s.create("Bundle", bundle, None))
        .await?;
    let stored = match created {
        fhir_store::Created::New(s) | fhir_store::Created::Existing(s) => s,
    };
    let mut r = respond::resource(StatusCode::OK, &stored, out);
    if let Ok(v) = header::HeaderValue::from_str(&format!("{base}/{}", stored.versioned_path())) {
        r.headers_mut().insert(header::CONTENT_LOCATION, v);
    }
    Ok(r)
}

/// The Composition and, breadth first, what it refers to (`None`: no Composition).
fn gather(
    store: &fhir_store::Store,
    defs: &fhir_model::Definitions,
    base: &str,
    id: &str,
) -> fhir_store::StoreResult<Option<Vec<StoredResource>>> {
    let Some(composition) = store.read("Composition", id)?.filter(|c| !c.deleted) else {
        return Ok(None);
    };
    let mut seen: HashSet<(String, String)> = HashSet::from([("Composition".into(), id.into())]);
    let mut queue = VecDeque::from([composition]);
    let mut out = Vec::new();
    while let Some(r) = queue.pop_front() {
        let value: Value = serde_json::from_str(&r.content).unwrap_or(Value::Null);
        out.push(r);
        if out.len() + queue.len() >= MAX_RESOURCES {
            continue;
        }
        let mut refs = Vec::new();
        references(&value, base, &mut refs);
        for (t, i) in refs {
            if !defs.is_resource_type(&t) || !seen.insert((t.clone(), i.clone())) {
                continue;
            }
            if let Some(found) = store.read(&t, &i)?.filter(|f| !f.deleted) {
                queue.push_back(found);
            }
        }
    }
    Ok(Some(out))
}

/// The `Type/id` of every literal reference in `v` to this server (relative, or
/// absolute under `base`); references elsewhere, `urn:` ones and those to contained
/// resources (`#x`) are not followed.
fn references(v: &Value, base: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("reference") {
                if let Some(found) = local_reference(r, base) {
                    out.push(found);
                }
            }
            o.values().for_each(|c| references(c, base, out));
        }
        Value::Array(a) => a.iter().for_each(|c| references(c, base, out)),
        _ => {}
    }
}

fn local_reference(r: &str, base: &str) -> Option<(String, String)> {
    let path = match r.strip_prefix(base) {
        Some(rest) => rest.strip_prefix('/')?,
        None if r.contains(':') || r.starts_with('#') => return None,
        None => r,
    };
    let path = path.split("/_history/").next().unwrap_or(path);
    match path.split('/').collect::<Vec<_>>().as_slice() {
        [t, i] if crate::ids::valid_id(i) => Some((t.to_string(), i.to_string())),
        _ => None,
    }
}

/// A restricted client must be allowed to read every resource of the document.
async fn check_access(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    composition_grant: &Grant,
    resources: &[StoredResource],
) -> Result<()> {
    for r in resources {
        let grant = if r.res_type == "Composition" {
            composition_grant.clone()
        } else {
            guard::grant(req, Interaction::Read, &r.res_type)?
        };
        guard::ensure_stored(state, &grant, Interaction::Read, r).await?;
    }
    Ok(())
}

/// The `document` Bundle of the gathered resources.
fn bundle(base: &str, resources: &[StoredResource]) -> Result<Value> {
    let entries = resources
        .iter()
        .map(|r| {
            let resource: Value = serde_json::from_str(&r.content)
                .map_err(|e| ApiError::Internal(format!("stored resource is not JSON: {e}")))?;
            Ok(json!({"fullUrl": format!("{base}/{}/{}", r.res_type, r.res_id), "resource": resource}))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(json!({
        "resourceType": "Bundle",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:{}", uuid::Uuid::new_v4())},
        "type": "document",
        "timestamp": fhir_store::time::fhir_instant(fhir_store::time::now_millis()),
        "entry": entries,
    }))
}
