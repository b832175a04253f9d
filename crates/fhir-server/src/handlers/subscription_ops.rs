//! The Subscriptions Backport IG's operations on Subscription
//! (OperationDefinition-backport-subscription-status, -events): `$status` at the
//! instance level (`Subscription/[id]/$status`) and the type level (`id` and `status`
//! parameters, repeated or comma-separated; without ids, every subscription the caller
//! may read) answers a `searchset` Bundle of status `Parameters` (type `query-status`);
//! `$events` (`Subscription/[id]/$events`, `eventsSinceNumber`, `eventsUntilNumber`,
//! `content`) answers a `history` notification Bundle (type `query-event`) of the
//! events still kept (`--subscription-retention-hours`), at most [`MAX_EVENTS`].
//! Parameters come from the query string or, with POST, a Parameters body.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use fhir_search::SearchRegistry;
use fhir_store::{SearchRequest, StoredResource, Total};
use serde_json::{json, Value};

use crate::access::scopes::Interaction;
use crate::auth::Grant;
use crate::error::ApiError;
use crate::guard;
use crate::http::negotiate::output;
use crate::http::respond;
use crate::state::{check_id, AppState};
use crate::subscriptions::backport::Content;
use crate::subscriptions::notification::{self, Kind, Notified, Status};
use crate::subscriptions::{parse, Active};

type Result<T> = std::result::Result<T, ApiError>;

/// The most events one `$events` answer carries.
pub const MAX_EVENTS: i64 = 100;
/// The most subscriptions one type-level `$status` answers for.
const MAX_STATUSES: usize = 1000;

/// The operation's parameters as text (crate::http::params).
async fn params(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Vec<(String, String)>> {
    let all = crate::http::params::operation_params(state.max_body_bytes, req, payload).await?;
    Ok(all
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect())
}

/// The values of a parameter, repeated or comma-separated.
fn values(params: &[(String, String)], name: &str) -> Vec<String> {
    params
        .iter()
        .filter(|(k, _)| k == name)
        .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .collect()
}

fn subscriptions_on(state: &AppState) -> Result<&crate::subscriptions::Subscriptions> {
    state.subscriptions.as_ref().ok_or_else(|| {
        ApiError::NotFound("subscriptions are off on this server (--subscriptions off)".into())
    })
}

/// A stored Subscription as the operations describe it; one that cannot be read as
/// a subscription (stored in error under `handling=lenient`) keeps only its id.
pub(super) fn describe(state: &AppState, stored: &StoredResource) -> Result<(Active, Value)> {
    let subs = subscriptions_on(state)?;
    let value = fhir_model::json::parse(stored.content.as_bytes())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let topics = subs.dispatcher.active();
    let active =
        parse(SearchRegistry::r4(), &topics.topics, &value, true).unwrap_or_else(|_| Active {
            id: stored.res_id.clone(),
            res_type: String::new(),
            query: String::new(),
            topic: None,
            status: String::new(),
            channel: String::new(),
            endpoint: String::new(),
            payload: None,
            headers: Vec::new(),
        });
    Ok((active, value))
}

/// How many events each subscription has counted.
async fn counters(state: &AppState, ids: Vec<String>) -> Result<Vec<i64>> {
    state
        .blocking(move |s| ids.iter().map(|id| s.events_since_start(id)).collect())
        .await
}

/// The status `Parameters` of one subscription that has counted `counted` events.
fn status_of(state: &AppState, base: &str, stored: &StoredResource, counted: i64) -> Result<Value> {
    let (sub, value) = describe(state, stored)?;
    let kind = Kind::QueryStatus;
    let status = Status {
        base,
        sub: &sub,
        kind,
        status: value["status"].as_str().unwrap_or("error"),
        events_since_start: counted,
        error: value["error"].as_str(),
    };
    Ok(notification::status_parameters(
        &status,
        &[],
        Content::Empty,
    ))
}

async fn read_subscription(state: &AppState, id: &str) -> Result<StoredResource> {
    check_id(id)?;
    let sid = id.to_string();
    state
        .blocking(move |s| s.read("Subscription", &sid))
        .await?
        .filter(|s| !s.deleted)
        .ok_or_else(|| ApiError::NotFound(format!("Subscription/{id} is not known")))
}

/// `GET|POST Subscription/[id]/$status`.
pub async fn status_instance(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String,)>,
) -> Result<HttpResponse> {
    let out = output(&req)?;
    subscriptions_on(&state)?;
    let grant = guard::grant(&req, Interaction::Read, "Subscription")?;
    let stored = read_subscription(&state, &path.into_inner().0).await?;
    guard::ensure_stored(&state, &grant, Interaction::Read, &stored).await?;
    let base = state.base(&req);
    let counted = counters(&state, vec![stored.res_id.clone()]).await?[0];
    let entry = status_entry(status_of(&state, &base, &stored, counted)?);
    Ok(respond::json(StatusCode::OK, &searchset(vec![entry]), out))
}

/// `GET|POST Subscription/$status?id=…&status=…`.
pub async fn status_type(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let out = output(&req)?;
    subscriptions_on(&state)?;
    let grant = guard::grant(&req, Interaction::Read, "Subscription")?;
    let params = params(&state, &req, payload).await?;
    let mut pairs = Vec::new();
    let ids = values(&params, "id");
    for id in &ids {
        check_id(id)?;
    }
    if !ids.is_empty() {
        pairs.push(("_id".to_string(), ids.join(",")));
    }
    let statuses = values(&params, "status");
    if let Some(bad) = statuses
        .iter()
        .find(|s| !["requested", "active", "error", "off"].contains(&s.as_str()))
    {
        return Err(ApiError::bad_at(
            format!("status '{bad}' is not requested, active, error or off"),
            "status",
        ));
    }
    if !statuses.is_empty() {
        pairs.push(("status".to_string(), statuses.join(",")));
    }
    let query = fhir_search::parse(SearchRegistry::r4(), Some("Subscription"), &pairs, false)
        .map_err(|e| ApiError::bad_at(e.to_string(), "id"))?;
    let request = SearchRequest {
        query,
        count: MAX_STATUSES,
        total: Total::None,
        ..Default::default()
    };
    let page = state.blocking(move |s| s.search(&request)).await?;
    let base = state.base(&req);
    let ids = page.matches.iter().map(|m| m.res_id.clone()).collect();
    let counted = counters(&state, ids).await?;
    let mut entries = Vec::new();
    for (stored, n) in page.matches.iter().zip(counted) {
        // Only the subscriptions the caller may read (search-constrained scopes).
        match guard::ensure_stored(&state, &grant, Interaction::Read, stored).await {
            Ok(()) => entries.push(status_entry(status_of(&state, &base, stored, n)?)),
            Err(ApiError::Forbidden(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(respond::json(StatusCode::OK, &searchset(entries), out))
}

fn status_entry(parameters: Value) -> Value {
    json!({
        "fullUrl": format!("urn:uuid:{}", parameters["id"].as_str().unwrap_or("")),
        "resource": parameters,
        "search": {"mode": "match"},
    })
}

fn searchset(entries: Vec<Value>) -> Value {
    json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "type": "searchset",
        "total": entries.len(),
        "entry": entries,
    })
}

/// `GET|POST Subscription/[id]/$events`.
pub async fn events(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String,)>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let out = output(&req)?;
    subscriptions_on(&state)?;
    let grant = guard::grant(&req, Interaction::Read, "Subscription")?;
    let stored = read_subscription(&state, &path.into_inner().0).await?;
    guard::ensure_stored(&state, &grant, Interaction::Read, &stored).await?;
    let params = params(&state, &req, payload).await?;
    let (sub, value) = describe(&state, &stored)?;
    let counted = counters(&state, vec![sub.id.clone()]).await?[0];
    let number = |name: &str| -> Result<Option<i64>> {
        match values(&params, name).first() {
            None => Ok(None),
            Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
                ApiError::bad_at(format!("{name} is an event number, not '{v}'"), name)
            }),
        }
    };
    let until = number("eventsUntilNumber")?.unwrap_or(counted);
    let since = number("eventsSinceNumber")?
        .unwrap_or(until - MAX_EVENTS + 1)
        .max(1);
    let content = match values(&params, "content").first() {
        None => sub.topic.as_ref().map_or(Content::IdOnly, |t| t.content),
        Some(c) => Content::parse(c).ok_or_else(|| {
            ApiError::bad_at(
                format!("content '{c}' is not empty, id-only or full-resource"),
                "content",
            )
        })?,
    };
    if content != Content::Empty {
        may_read_focus(&req, &sub)?;
    }
    let sid = sub.id.clone();
    let full = content == Content::FullResource;
    let events = state
        .blocking(move |s| {
            let mut out = Vec::new();
            for e in s.events_of(&sid, since, until, MAX_EVENTS as usize)? {
                let resource = match full && e.method != "DELETE" {
                    true => s
                        .vread(&e.res_type, &e.res_id, e.version)?
                        .filter(|v| !v.deleted)
                        .and_then(|v| fhir_model::json::parse(v.content.as_bytes()).ok()),
                    false => None,
                };
                out.push((e, resource));
            }
            Ok(out)
        })
        .await?;
    let notified: Vec<Notified<'_>> = events
        .iter()
        .map(|(event, resource)| Notified {
            event,
            resource: resource.clone(),
        })
        .collect();
    let base = state.base(&req);
    let status = Status {
        base: &base,
        sub: &sub,
        kind: Kind::QueryEvent,
        status: value["status"].as_str().unwrap_or("error"),
        events_since_start: counted,
        error: value["error"].as_str(),
    };
    let bundle = notification::bundle(&status, &notified, Some(content));
    Ok(respond::json(StatusCode::OK, &bundle, out))
}

/// Events name (and with `full-resource` carry) resources: the caller must be allowed
/// to read every resource of the types the subscription notifies about.
pub(super) fn may_read_focus(req: &HttpRequest, sub: &Active) -> Result<()> {
    for t in sub.resource_types().iter().filter(|t| !t.is_empty()) {
        if guard::grant(req, Interaction::Read, t)? != Grant::All {
            return Err(ApiError::Forbidden(format!(
                "these events name {t} resources: reading them needs a scope to read all of them, or ask for content=empty"
            )));
        }
    }
    Ok(())
}
