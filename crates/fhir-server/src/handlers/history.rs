//! History at instance, type and system level, paged by `seq` cursors that stay correct
//! while new versions are written.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use fhir_model::{Bundle, BundleEntry, BundleType, EntryRequest, EntryResponse};
use fhir_store::time::{fhir_instant, fhir_period_end, parse_fhir_instant};
use fhir_store::{HistoryQuery, HistoryScope, PageCursor, StoredResource};

use crate::access::scopes::Interaction;
use crate::auth::Grant;
use crate::error::ApiError;
use crate::guard;
use crate::http::negotiate::output;
use crate::http::respond;
use crate::state::{check_id, AppState};

const DEFAULT_COUNT: usize = 50;
const MAX_COUNT: usize = 1000;

/// The paging and filter parameters of a history request.
struct Params {
    count: usize,
    since: Option<i64>,
    at: Option<i64>,
    cursor: Option<PageCursor>,
    /// The parameters to repeat in paging links (everything but the cursor).
    keep: Vec<(String, String)>,
}

fn instant_param(name: &str, value: &str) -> Result<i64, ApiError> {
    parse_fhir_instant(value).ok_or_else(|| {
        ApiError::bad_at(
            format!("{name} '{value}' is not an instant such as 2026-01-31T12:00:00Z"),
            name,
        )
    })
}

fn params(req: &HttpRequest) -> Result<Params, ApiError> {
    let mut p = Params {
        count: DEFAULT_COUNT,
        since: None,
        at: None,
        cursor: None,
        keep: Vec::new(),
    };
    let mut seen = std::collections::HashSet::new();
    for (k, v) in form_urlencoded::parse(req.query_string().as_bytes()) {
        if !seen.insert(k.to_string()) {
            return Err(ApiError::bad_at(
                format!("{k} may appear only once"),
                k.to_string(),
            ));
        }
        match k.as_ref() {
            "_count" => {
                p.count = v
                    .parse::<usize>()
                    .map_err(|_| {
                        ApiError::bad_at(
                            format!("_count '{v}' is not a non-negative integer"),
                            "_count",
                        )
                    })?
                    .min(MAX_COUNT);
            }
            "_since" => p.since = Some(instant_param("_since", &v)?),
            "_at" => {
                // Versions current at some point in the period: up to its end.
                instant_param("_at", &v)?;
                p.at = fhir_period_end(&v);
            }
            "_cursor" => {
                let parsed = match v.split_at_checked(1) {
                    Some(("b", n)) => n.parse().ok().map(PageCursor::Before),
                    Some(("a", n)) => n.parse().ok().map(PageCursor::After),
                    _ => None,
                };
                p.cursor = Some(parsed.ok_or_else(|| {
                    ApiError::bad_at(format!("_cursor '{v}' is not valid"), "_cursor")
                })?);
                continue;
            }
            "_format" | "_pretty" => {}
            other => {
                return Err(ApiError::bad(format!(
                    "history does not support the parameter '{other}'"
                )));
            }
        }
        p.keep.push((k.into_owned(), v.into_owned()));
    }
    Ok(p)
}

fn link(base: &str, path: &str, keep: &[(String, String)], cursor: Option<String>) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in keep {
        q.append_pair(k, v);
    }
    if let Some(c) = cursor {
        q.append_pair("_cursor", &c);
    }
    let q = q.finish();
    if q.is_empty() {
        format!("{base}{path}")
    } else {
        format!("{base}{path}?{q}")
    }
}

/// A history entry without its resource (see [`respond::bundle_as_stored`]).
fn entry(base: &str, v: &StoredResource) -> BundleEntry {
    let full_url = format!("{base}/{}/{}", v.res_type, v.res_id);
    let (url, status) = match v.method.as_str() {
        "POST" => (v.res_type.clone(), "201 Created"),
        "DELETE" => (format!("{}/{}", v.res_type, v.res_id), "204 No Content"),
        _ if v.version == 1 => (format!("{}/{}", v.res_type, v.res_id), "201 Created"),
        _ => (format!("{}/{}", v.res_type, v.res_id), "200 OK"),
    };
    let method = if v.method == "PATCH" {
        "PATCH"
    } else {
        v.method.as_str()
    };
    BundleEntry {
        full_url: Some(full_url),
        request: Some(EntryRequest {
            method: method.into(),
            url,
            ..Default::default()
        }),
        response: Some(EntryResponse {
            status: status.into(),
            etag: Some(v.etag()),
            last_modified: Some(fhir_instant(v.last_updated)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn history(
    state: web::Data<AppState>,
    req: HttpRequest,
    scope: HistoryScope,
    path: String,
) -> Result<HttpResponse, ApiError> {
    let out = output(&req)?;
    let p = params(&req)?;
    let instance = matches!(scope, HistoryScope::Instance(..));
    let query = HistoryQuery {
        scope,
        since: p.since,
        at: p.at,
        count: p.count,
        cursor: p.cursor,
        total_up_to: usize::try_from(state.total_threshold).unwrap_or(usize::MAX),
    };
    let grant = history_grant(&state, &req, &query.scope)?;
    let audit_events = match &query.scope {
        HistoryScope::Instance(t, _) | HistoryScope::Type(t) => t == "AuditEvent",
        HistoryScope::System => true,
    };
    state.sync_audit(audit_events).await?;
    let page = state.searching(move |s| s.history(&query)).await?;
    if grant != Grant::All {
        for v in &page.entries {
            guard::ensure_stored(&state, &grant, Interaction::Read, v).await?;
        }
    }
    if instance && page.total == Some(0) && p.since.is_none() && p.at.is_none() {
        let what = path.trim_end_matches("/_history").trim_start_matches('/');
        return Err(ApiError::NotFound(format!("{what} is not known")));
    }
    let base = state.base(&req);
    let self_cursor = p.cursor.map(|c| match c {
        PageCursor::Before(n) => format!("b{n}"),
        PageCursor::After(n) => format!("a{n}"),
    });
    let mut bundle =
        Bundle::new(BundleType::History).link("self", link(&base, &path, &p.keep, self_cursor));
    bundle.total = page.total.map(|t| t as u64);
    if page.has_newer {
        bundle = bundle.link("first", link(&base, &path, &p.keep, None));
        if let Some(first) = page.entries.first() {
            bundle = bundle.link(
                "previous",
                link(&base, &path, &p.keep, Some(format!("a{}", first.seq))),
            );
        }
    }
    if page.has_older {
        if let Some(last) = page.entries.last() {
            bundle = bundle.link(
                "next",
                link(&base, &path, &p.keep, Some(format!("b{}", last.seq))),
            );
        }
    }
    bundle.timestamp = Some(fhir_instant(fhir_store::time::now_millis()));
    bundle.entry = page.entries.iter().map(|v| entry(&base, v)).collect();
    let stored: Vec<Option<&StoredResource>> = (page.entries.iter())
        .map(|v| (!v.deleted).then_some(v))
        .collect();
    Ok(respond::bundle_as_stored(
        StatusCode::OK,
        bundle,
        &stored,
        out,
    ))
}

/// Instance history needs read access to the resource (checked on every version
/// returned); type and system history need unrestricted search of the types, since a
/// history cannot be confined to a compartment.
fn history_grant(
    state: &AppState,
    req: &HttpRequest,
    scope: &HistoryScope,
) -> Result<Grant, ApiError> {
    use crate::access::HistoryOf;
    let of = match scope {
        HistoryScope::Instance(rt, _) => HistoryOf::Instance(rt),
        HistoryScope::Type(rt) => HistoryOf::Type(rt),
        HistoryScope::System => HistoryOf::System,
    };
    let caller = guard::access(req);
    let ctx = guard::context(state, caller.as_deref());
    Ok(crate::access::decide_history(
        &ctx,
        of,
        state.defs.resource_types(),
    )?)
}

pub async fn instance(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (rt, id) = path.into_inner();
    state.check_type(&rt)?;
    check_id(&id)?;
    let p = format!("/{rt}/{id}/_history");
    history(state, req, HistoryScope::Instance(rt, id), p).await
}

pub async fn type_level(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String,)>,
) -> Result<HttpResponse, ApiError> {
    let (rt,) = path.into_inner();
    state.check_type(&rt)?;
    let p = format!("/{rt}/_history");
    history(state, req, HistoryScope::Type(rt), p).await
}

pub async fn system(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    history(state, req, HistoryScope::System, "/_history".into()).await
}
