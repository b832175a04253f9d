//! `POST [base]` with a `batch` or `transaction` Bundle (http.html#transaction,
//! bundle.html).
//!
//! A transaction runs in one database transaction: entries are planned and checked
//! first, then inside the transaction `urn:uuid:`/`urn:oid:` full URLs and conditional
//! references (`Patient?identifier=…`) are resolved, references are rewritten everywhere
//! in the entries' resources, and the entries run in the order DELETE, POST, PUT/PATCH,
//! GET. Any failure rolls everything back and answers an OperationOutcome naming the
//! entry. A batch runs each entry on its own and reports each outcome.
//!
//! Here: the entry types and `post_bundle`; `plan.rs` checks and plans each entry before
//! anything is written; `execute.rs` runs one planned entry and builds its answer;
//! `transaction.rs` resolves identities and runs a transaction; `batch.rs` runs batch
//! entries and holds the runner both share (`run_planned`).

use std::collections::{HashMap, HashSet};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use fhir_model::{
    Bundle, BundleEntry, BundleType, EntryResponse, Issue, IssueType, OperationOutcome,
};
use fhir_search::{Clause, SearchRegistry};
use fhir_store::time::fhir_instant;
use fhir_store::{Created, Deleted, Precondition, StoreError, StoredResource, TxOps};
use serde_json::Value;

use super::idempotency::Idempotent;
use crate::error::ApiError;
use crate::http::body::{parse_json, read_limited};
use crate::http::headers::{parse_etag_version, NoneMatch};
use crate::http::negotiate::output;
use crate::http::prefer::{prefer, Handling, Return};
use crate::http::respond;
use crate::state::{valid_id, AppState};

use super::crud::check_resource;
use super::patch::{apply_patch, Patch};
use super::search::{pairs_of, prepare, restrict_included, searchset, Prepared};
use crate::access::scopes::Interaction;
use crate::auth::Grant;
use crate::guard;

/// What an entry asks for, checked before anything runs.
#[derive(Debug, Clone)]
struct Planned {
    index: usize,
    method: Method,
    resource_type: String,
    id: Option<String>,
    version: Option<i64>,
    conditions: Option<Vec<Clause>>,
    resource: Option<Value>,
    patch: Option<Patch>,
    full_url: Option<String>,
    pre: Precondition,
    if_none_exist: Option<Vec<Clause>>,
    /// The query strings behind `conditions` and `if_none_exist`, as sent: they may
    /// name other entries by fullUrl, substituted once those are resolved.
    raw_conditions: Option<String>,
    raw_if_none_exist: Option<String>,
    /// The patient whose compartment the entry's target must be in (patient scopes).
    confine: Option<String>,
    /// The caller's access, kept for a confined read of a Binary: its
    /// `securityContext` is checked with the grant on the context's own type.
    access: Option<std::sync::Arc<crate::auth::Access>>,
    /// A GET entry that searches (`Type?query`): the search, already confined.
    search: Option<Box<Prepared>>,
    /// A GET entry's `ifNoneMatch` and `ifModifiedSince` (ms): 304 when they hold.
    read_if: (Option<NoneMatch>, Option<i64>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Method {
    Delete,
    Post,
    Put,
    Patch,
    Get,
    /// GET or HEAD of `Type?query` (or `Type`): a search.
    Search,
}

/// An entry's failure: its HTTP status and outcome.
struct EntryError {
    index: usize,
    error: ApiError,
}

fn entry_err(index: usize, error: ApiError) -> EntryError {
    EntryError { index, error }
}

pub async fn post_bundle(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    crate::http::negotiate::body_is_xml(&req)?;
    let out = output(&req)?;
    let bytes = read_limited(&req, payload, state.max_body_bytes).await?;
    let mut bundle = crate::http::body::parse_body(&req, &bytes)?;
    let idem = super::idempotency::of(&req, &bytes)?;
    drop(bytes);
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(ApiError::bad_at(
            "POST to the base URL takes a batch or transaction Bundle",
            "resourceType",
        ));
    }
    // The Bundle's own elements here; each entry's resource when its entry is planned,
    // so that a bad entry of a batch fails alone. The entries are moved, not copied:
    // a large transaction is held in memory once.
    let mut entries = match bundle.as_object_mut().and_then(|o| o.shift_remove("entry")) {
        Some(Value::Array(entries)) => entries,
        Some(_) => {
            return Err(ApiError::bad_at(
                "Bundle.entry must be an array",
                "Bundle.entry",
            ))
        }
        None => Vec::new(),
    };
    let shells: Vec<Value> = entries
        .iter()
        .map(|e| match e {
            Value::Object(o) => Value::Object(
                o.iter()
                    .filter(|(k, _)| *k != "resource")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            other => other.clone(),
        })
        .collect();
    if let Some(o) = bundle.as_object_mut() {
        if !shells.is_empty() {
            o.insert("entry".into(), Value::Array(shells));
        }
    }
    check_resource(&state, &req, &bundle, "Bundle")?;
    let kind = bundle.get("type").and_then(Value::as_str).unwrap_or("");
    let ret = prefer(&req).return_;
    let base = state.base(&req);
    let response = match kind {
        "transaction" => {
            if let Some(i) = &idem {
                if let Some(replayed) = super::idempotency::replay(&state, i, out).await? {
                    return Ok(replayed);
                }
            }
            let verdicts = validate_entries(&state, &req, &mut entries).await?;
            transaction(&state, &req, entries, &verdicts, &base, ret, idem).await?
        }
        "batch" => {
            let verdicts = validate_entries(&state, &req, &mut entries).await?;
            batch(&state, &req, entries, &verdicts, &base, ret).await
        }
        other => {
            return Err(ApiError::bad_at(
                format!("Bundle.type '{other}' cannot be processed: send a batch or a transaction"),
                "Bundle.type",
            ))
        }
    };
    Ok(respond::json(StatusCode::OK, &response.to_value(), out))
}

/// How PATCH entries check what they produce: like a single PATCH, structure and (when
/// writes are validated) the validator, unless `Prefer: handling=lenient`.
#[derive(Clone)]
struct Patching {
    lenient: bool,
    validator: Option<std::sync::Arc<fhir_validation::Validator>>,
}

impl Patching {
    async fn of(
        state: &web::Data<AppState>,
        req: &HttpRequest,
        patches: bool,
    ) -> Result<Patching, ApiError> {
        let lenient = prefer(req).handling == Some(Handling::Lenient);
        let validator = if patches {
            super::patch::patch_validator(state, lenient).await?
        } else {
            None
        };
        Ok(Patching { lenient, validator })
    }
}

mod batch;
mod execute;
mod plan;
mod transaction;

use batch::*;
use execute::*;
use plan::*;
use transaction::*;

/// The response entry of a search entry: its searchset Bundle, `200 OK`.
fn search_entry(searchset: Bundle) -> BundleEntry {
    BundleEntry {
        resource: Some(searchset.to_value()),
        response: Some(EntryResponse {
            status: status_line(200),
            ..Default::default()
        }),
        ..Default::default()
    }
}
