//! Subscriptions (subscription.html, R4 criteria-based): a partner asks to be told when
//! resources matching a search change, instead of polling. Every committed write is in
//! the store's change feed (fhir-store `changes.rs`, written in the write's own
//! transaction); the dispatcher ([`dispatch`]) takes changes out of it and matches them
//! against the active subscriptions of their type with the search engine itself (the
//! subscription's criteria plus `_id`, so a notification means exactly "a search would
//! now find this"), recording each match as a numbered event in the same transaction;
//! the deliverer ([`deliver`]) sends each subscription's events in order over its
//! channel, retries with backoff, and after repeated failures sets the subscription's
//! status to `error` with the reason. Writes of Subscription resources are checked
//! here ([`check_write`]): criteria, channel, endpoint ([`endpoint`]), payload, and the
//! writer's right to read everything the criteria can match.

pub mod anchor;
pub mod backport;
pub mod batch;
pub mod criteria;
pub mod deliver;
pub mod dispatch;
pub mod endpoint;
pub mod handoff;
pub mod notification;
pub mod registry;
pub mod send;
pub mod topic;
pub mod transport;
pub mod triggers;
pub mod upkeep;
pub mod websocket;

use std::collections::HashMap;
use std::time::Duration;

use fhir_search::SearchRegistry;
use serde_json::Value;

/// Subscription settings.
#[derive(Debug, Clone)]
pub struct SubscriptionConfig {
    /// Endpoints on loopback, private and link-local addresses are allowed.
    pub allow_private_endpoints: bool,
    /// Failed deliveries of one event before the subscription is set to `error`.
    pub max_attempts: u32,
    /// The wait after the first failure; doubled after each one.
    pub retry_base: Duration,
    /// How long a delivery may take.
    pub timeout: Duration,
    /// The server's public base URL (`https://host/fhir`), for the references in
    /// notifications.
    pub base: String,
    /// How long events are kept after they happened, for `$events`.
    pub retention: Duration,
    /// TLS to partner endpoints (extra CAs, a client certificate); `None`: the
    /// public web PKI roots and no client certificate.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Default for SubscriptionConfig {
    fn default() -> Self {
        SubscriptionConfig {
            allow_private_endpoints: false,
            max_attempts: 5,
            retry_base: Duration::from_secs(2),
            timeout: Duration::from_secs(10),
            base: "http://localhost:8080/fhir".into(),
            retention: Duration::from_secs(7 * 24 * 3600),
            tls: None,
        }
    }
}

/// An active subscription, as the dispatcher and the deliverer need it.
#[derive(Debug, Clone, PartialEq)]
pub struct Active {
    pub id: String,
    /// Criteria-based: the criteria's resource type (empty for a topic-based one).
    pub res_type: String,
    /// Criteria-based: the criteria's query string (without `?`).
    pub query: String,
    /// Topic-based (the Backport IG): the topic, filters and notification settings.
    pub topic: Option<backport::TopicSubscription>,
    /// The stored status: `requested`, `active`, `error` or `off`.
    pub status: String,
    /// `channel.type`: `rest-hook` or `websocket`.
    pub channel: String,
    /// `channel.endpoint` (rest-hook).
    pub endpoint: String,
    /// `channel.payload`: criteria-based, `None` notifies without content (an empty
    /// POST) and a MIME type sends the resource (PUT to `[endpoint]/[type]/[id]`);
    /// topic-based, the MIME type of the notification Bundles.
    pub payload: Option<String>,
    /// `channel.header`, as `name: value` lines.
    pub headers: Vec<(String, String)>,
}

impl Active {
    /// The resource types its notifications may carry.
    pub fn resource_types(&self) -> Vec<String> {
        match &self.topic {
            Some(t) => t.resource_types.clone(),
            None => vec![self.res_type.clone()],
        }
    }
}

/// What is wrong with a Subscription, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub message: String,
    pub at: String,
}

pub(crate) fn invalid(message: impl Into<String>, at: &str) -> Invalid {
    Invalid {
        message: message.into(),
        at: at.to_string(),
    }
}

/// The channel types this server delivers over (websocket: topic-based only).
const CHANNELS: &[&str] = &["rest-hook", "websocket"];
/// The payload MIME types it sends.
const PAYLOADS: &[&str] = &["application/fhir+json", "application/json"];

/// Reads a Subscription's criteria, channel and payload (any status): criteria-based
/// when its criteria is a search (`Type?params`), topic-based (the Backport IG) when
/// it names one of `topics` by canonical URL.
pub fn parse(
    registry: &SearchRegistry,
    topics: &HashMap<String, topic::Topic>,
    resource: &Value,
    allow_private: bool,
) -> Result<Active, Invalid> {
    let id = resource
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let criteria = resource
        .get("criteria")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            invalid(
                "a Subscription needs criteria (Type?search, or a topic's canonical URL)",
                "Subscription.criteria",
            )
        })?;
    let (head, query) = criteria.split_once('?').unwrap_or((criteria, ""));
    let (res_type, query, topic) = if registry.definitions().is_resource_type(head) {
        fhir_search::parse_query_string(registry, Some(head), query, true).map_err(|e| {
            invalid(
                format!("criteria '{criteria}': {e}"),
                "Subscription.criteria",
            )
        })?;
        (head.to_string(), query.to_string(), None)
    } else {
        let t = backport::parse(registry, topics, resource, criteria)?;
        (String::new(), String::new(), Some(t))
    };
    let channel = resource.get("channel").unwrap_or(&Value::Null);
    let kind = channel.get("type").and_then(Value::as_str).unwrap_or("");
    if !CHANNELS.contains(&kind) || (kind == "websocket" && topic.is_none()) {
        return Err(invalid(
            format!("channel type '{kind}' is not supported (this server delivers over rest-hook, and over websocket for topic-based subscriptions)"),
            "Subscription.channel.type",
        ));
    }
    let url = channel
        .get("endpoint")
        .and_then(Value::as_str)
        .unwrap_or("");
    // A websocket client connects to the server: its endpoint, if any, is not called.
    if kind == "rest-hook" {
        endpoint::check(url, allow_private, false)
            .map_err(|m| invalid(m, "Subscription.channel.endpoint"))?;
    }
    let payload = channel
        .get("payload")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(p) = &payload {
        let mime = p.split(';').next().unwrap_or("").trim();
        if !PAYLOADS.contains(&mime) {
            return Err(invalid(
                format!("payload '{p}' is not supported (application/fhir+json)"),
                "Subscription.channel.payload",
            ));
        }
    } else if topic.is_some() {
        return Err(invalid(
            "a topic-based Subscription needs channel.payload (application/fhir+json)",
            "Subscription.channel.payload",
        ));
    }
    Ok(Active {
        id,
        res_type,
        query,
        topic,
        status: resource
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        channel: kind.to_string(),
        endpoint: url.to_string(),
        payload,
        headers: headers(channel)?,
    })
}

/// `channel.header` lines as (name, value).
fn headers(channel: &Value) -> Result<Vec<(String, String)>, Invalid> {
    let mut headers = Vec::new();
    let lines = channel.get("header").and_then(Value::as_array);
    for (i, h) in lines.into_iter().flatten().enumerate() {
        let at = format!("Subscription.channel.header[{i}]");
        let (name, value) = h
            .as_str()
            .and_then(|h| h.split_once(':'))
            .ok_or_else(|| invalid("a header must be 'Name: value'", &at))?;
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(invalid(format!("'{name}' is not a header name"), &at));
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    Ok(headers)
}

/// The status a written Subscription is stored with: a client asks with `requested`
/// (or `active`); the server takes it on at once, so it is stored `active`. `off` and
/// `error` stay as written (a client may turn a subscription off, or on again).
pub fn stored_status(status: Option<&str>) -> Result<&'static str, Invalid> {
    match status {
        Some("requested" | "active") => Ok("active"),
        Some("off") => Ok("off"),
        Some("error") => Ok("error"),
        Some(other) => Err(invalid(
            format!("status '{other}' is not a Subscription status"),
            "Subscription.status",
        )),
        None => Err(invalid(
            "a Subscription needs a status",
            "Subscription.status",
        )),
    }
}

/// The running subscription machinery of a server.
pub struct Subscriptions {
    pub config: SubscriptionConfig,
    pub dispatcher: std::sync::Arc<dispatch::Dispatcher>,
    /// This node's websocket connections.
    pub hub: std::sync::Arc<websocket::Hub>,
    /// The key of websocket binding tokens, shared by every node.
    pub ws_secret: String,
}

impl Subscriptions {
    /// Starts the dispatcher and the deliverer threads.
    pub fn start(
        store: std::sync::Arc<fhir_store::Store>,
        config: SubscriptionConfig,
    ) -> std::io::Result<Subscriptions> {
        // A claim runs long enough for a round of slow partners to answer.
        let handoff =
            handoff::Handoff::new(crate::jobs::job_node(&store.node_id()), config.timeout * 3);
        let dispatcher = std::sync::Arc::new(dispatch::Dispatcher::new(
            store.clone(),
            SearchRegistry::r4(),
            handoff,
        ));
        let d = dispatcher.clone();
        std::thread::Builder::new()
            .name("subscription-dispatch".into())
            .spawn(move || d.run())?;
        let ws_secret = store
            .shared_secret("subscription-websocket-key")
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let hub = std::sync::Arc::new(websocket::Hub::default());
        let deliverer =
            deliver::Deliverer::new(store, dispatcher.clone(), hub.clone(), config.clone())?;
        std::thread::Builder::new()
            .name("subscription-deliver".into())
            .spawn(move || deliverer.run())?;
        Ok(Subscriptions {
            config,
            dispatcher,
            hub,
            ws_secret,
        })
    }
}

/// Checks a Subscription about to be written (create, update, Bundle entry) and sets
/// the status it is stored with ([`stored_status`]). The writer must be allowed to read
/// every resource of the criteria's type: notifications carry them. Under
/// `Prefer: handling=lenient` a Subscription that cannot work is stored anyway, never
/// active: a requested one is stored with status `error` and the reason in `error`.
pub fn check_write(
    subscriptions: Option<&Subscriptions>,
    req: &actix_web::HttpRequest,
    resource: &mut Value,
) -> Result<(), crate::error::ApiError> {
    use crate::error::ApiError;
    let Some(subs) = subscriptions else {
        return Ok(());
    };
    // Topics written since the last read are known.
    subs.dispatcher.refresh()?;
    let registry = subs.dispatcher.active();
    let checked = stored_status(resource.get("status").and_then(Value::as_str)).and_then(|s| {
        parse(
            SearchRegistry::r4(),
            &registry.topics,
            resource,
            subs.config.allow_private_endpoints,
        )
        .map(|a| (s, a))
    });
    let lenient =
        crate::http::prefer::prefer(req).handling == Some(crate::http::prefer::Handling::Lenient);
    let (status, error) = match checked {
        Ok((status, active)) => {
            for t in active.resource_types() {
                may_read_all(req, &t)?;
            }
            // A topic-based rest-hook subscription is active once its endpoint has
            // accepted a handshake (channels.html#rest-hook): until then, requested. A
            // websocket one is active at once: its handshake follows each binding.
            match (status, &active.topic, active.channel.as_str()) {
                ("active", Some(_), "rest-hook") => ("requested", None),
                _ => (status, None),
            }
        }
        Err(i) if !lenient => return Err(ApiError::Unprocessable(i.message, Some(i.at))),
        Err(i) => match resource.get("status").and_then(Value::as_str) {
            Some("requested" | "active") => ("error", Some(i.message)),
            _ => return Ok(()),
        },
    };
    if let Some(o) = resource.as_object_mut() {
        o.insert("status".into(), Value::String(status.into()));
        if let Some(e) = error {
            o.insert("error".into(), Value::String(e));
        }
    }
    Ok(())
}

/// Checks a `Basic` about to be written that represents a subscription topic
/// ([`topic::is_topic`]): a topic the dispatcher cannot read is refused with a 422
/// naming the extension.
pub fn check_topic_write(
    subscriptions: Option<&Subscriptions>,
    resource: &Value,
) -> Result<(), crate::error::ApiError> {
    if subscriptions.is_none() || !topic::is_topic(resource) {
        return Ok(());
    }
    topic::Topic::parse(SearchRegistry::r4(), resource)
        .map(|_| ())
        .map_err(|i| crate::error::ApiError::Unprocessable(i.message, Some(i.at)))
}

/// The writer may read every resource of `res_type` (no patient or search confinement).
fn may_read_all(
    req: &actix_web::HttpRequest,
    res_type: &str,
) -> Result<(), crate::error::ApiError> {
    use crate::access::{decide, scopes::Interaction, Grant, RequestContext};
    let caller = crate::http::caller(req);
    let ctx = RequestContext {
        caller: caller.as_deref(),
        audit_on: false,
    };
    if decide(&ctx, Interaction::Read, res_type)? == Grant::All {
        return Ok(());
    }
    Err(crate::error::ApiError::Forbidden(format!(
        "a subscription's notifications carry {res_type} resources: its writer needs a scope to read all of them (system/{res_type}.r, or user/{res_type}.r without a patient)"
    )))
}
