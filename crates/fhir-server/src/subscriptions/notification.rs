//! The notification Bundles of topic-based subscriptions, in the Backport IG's R4 form
//! (StructureDefinition-backport-subscription-notification-r4): a `history` Bundle
//! whose first entry is a `Parameters` resource (backport-subscription-status-r4) with
//! the subscription, topic, status, type (`handshake`, `heartbeat`,
//! `event-notification`, `query-status`, `query-event`),
//! `events-since-subscription-start` and one `notification-event` per event (number,
//! timestamp, and — unless the payload is `empty` — the focus); then, for `id-only`,
//! an entry per focus with `fullUrl` and `request`, and for `full-resource` the focus
//! resources themselves as the version that made the event. The status entry's
//! `request` is the `$status` call it answers (notifications.md).

use serde_json::{json, Value};

use fhir_store::changes::Event;

use super::backport::Content;
use super::Active;

/// The type of a notification (subscription-notification-type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Handshake,
    Heartbeat,
    EventNotification,
    QueryStatus,
    QueryEvent,
}

impl Kind {
    fn code(self) -> &'static str {
        match self {
            Kind::Handshake => "handshake",
            Kind::Heartbeat => "heartbeat",
            Kind::EventNotification => "event-notification",
            Kind::QueryStatus => "query-status",
            Kind::QueryEvent => "query-event",
        }
    }
}

/// What a notification says about its subscription.
pub struct Status<'a> {
    /// The server's base URL (`https://host/fhir`).
    pub base: &'a str,
    pub sub: &'a Active,
    pub kind: Kind,
    /// The subscription's status now.
    pub status: &'a str,
    pub events_since_start: i64,
    /// `Subscription.error`, if any.
    pub error: Option<&'a str>,
}

/// An event with the version that made it (`None`: no longer readable, or a delete).
pub struct Notified<'a> {
    pub event: &'a Event,
    pub resource: Option<Value>,
}

/// The content level: the subscription's, or a `$events` caller's choice.
fn content_of(sub: &Active) -> Content {
    sub.topic.as_ref().map_or(Content::IdOnly, |t| t.content)
}

/// The status `Parameters` resource (backport-subscription-status-r4).
pub fn status_parameters(s: &Status<'_>, events: &[Notified<'_>], content: Content) -> Value {
    let mut params = vec![json!({"name": "subscription",
        "valueReference": {"reference": format!("{}/Subscription/{}", s.base, s.sub.id)}})];
    if let Some(t) = &s.sub.topic {
        // SHOULD NOT be present with empty payloads (the status profile's comment).
        if content != Content::Empty {
            params.push(json!({"name": "topic", "valueCanonical": t.url}));
        }
    }
    params.push(json!({"name": "status", "valueCode": s.status}));
    params.push(json!({"name": "type", "valueCode": s.kind.code()}));
    params.push(json!({"name": "events-since-subscription-start",
        "valueString": s.events_since_start.to_string()}));
    for n in events {
        let e = n.event;
        let mut parts = vec![
            json!({"name": "event-number", "valueString": e.event_number.to_string()}),
            json!({"name": "timestamp", "valueInstant": fhir_store::time::fhir_instant(e.at)}),
        ];
        if content != Content::Empty {
            parts.push(json!({"name": "focus", "valueReference":
                {"reference": format!("{}/{}/{}", s.base, e.res_type, e.res_id)}}));
        }
        params.push(json!({"name": "notification-event", "part": parts}));
    }
    if let Some(error) = s.error {
        params.push(json!({"name": "error", "valueCodeableConcept": {"text": error}}));
    }
    json!({
        "resourceType": "Parameters",
        "id": uuid::Uuid::new_v4().to_string(),
        "meta": {"profile": ["http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4"]},
        "parameter": params,
    })
}

/// A notification Bundle: the status, then the focus entries the content level asks.
pub fn bundle(s: &Status<'_>, events: &[Notified<'_>], content: Option<Content>) -> Value {
    let content = content.unwrap_or_else(|| content_of(s.sub));
    let status = status_parameters(s, events, content);
    let mut entries = vec![json!({
        "fullUrl": format!("urn:uuid:{}", status["id"].as_str().unwrap_or("")),
        "resource": status,
        "request": {"method": "GET", "url": format!("{}/Subscription/{}/$status", s.base, s.sub.id)},
        "response": {"status": "200"},
    })];
    if content != Content::Empty {
        entries.extend(events.iter().map(|n| focus_entry(s.base, n, content)));
    }
    json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "meta": {"profile": ["http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-notification-r4"]},
        "type": "history",
        "timestamp": fhir_store::time::fhir_instant(fhir_store::time::now_millis()),
        "entry": entries,
    })
}

/// The entry of an event's focus: its URL and the interaction that made it, and with
/// `full-resource` the version itself.
fn focus_entry(base: &str, n: &Notified<'_>, content: Content) -> Value {
    let e = n.event;
    let (method, url, status) = match e.method.as_str() {
        "POST" => ("POST", e.res_type.clone(), "201"),
        "DELETE" => ("DELETE", format!("{}/{}", e.res_type, e.res_id), "204"),
        _ => ("PUT", format!("{}/{}", e.res_type, e.res_id), "200"),
    };
    let mut entry = json!({
        "fullUrl": format!("{base}/{}/{}", e.res_type, e.res_id),
        "request": {"method": method, "url": url},
        "response": {"status": status},
    });
    if content == Content::FullResource {
        if let Some(r) = &n.resource {
            entry["resource"] = r.clone();
        }
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subscriptions::backport::TopicSubscription;

    fn sub(content: Content) -> Active {
        Active {
            id: "s1".into(),
            res_type: String::new(),
            query: String::new(),
            topic: Some(TopicSubscription {
                url: "http://example.org/topic".into(),
                resource_types: vec!["Encounter".into()],
                filters: Vec::new(),
                content,
                heartbeat: None,
                timeout: None,
                max_count: None,
            }),
            status: "active".into(),
            channel: "rest-hook".into(),
            endpoint: "https://example.org/hook".into(),
            payload: Some("application/fhir+json".into()),
            headers: Vec::new(),
        }
    }

    fn event() -> Event {
        Event {
            subscription_id: "s1".into(),
            event_number: 3,
            res_type: "Encounter".into(),
            res_id: "e1".into(),
            version: 2,
            method: "PUT".into(),
            at: 0,
            attempts: 0,
            last_error: None,
            delivered: None,
        }
    }

    #[test]
    fn an_id_only_notification_names_the_focus_without_its_content() {
        let s = sub(Content::IdOnly);
        let e = event();
        let status = Status {
            base: "http://h/fhir",
            sub: &s,
            kind: Kind::EventNotification,
            status: "active",
            events_since_start: 3,
            error: None,
        };
        let n = [Notified {
            event: &e,
            resource: Some(json!({"resourceType": "Encounter"})),
        }];
        let b = bundle(&status, &n, None);
        assert_eq!(b["type"], "history");
        let p = &b["entry"][0]["resource"]["parameter"];
        assert_eq!(p[3]["valueCode"], "event-notification");
        assert_eq!(p[4]["valueString"], "3");
        assert_eq!(p[5]["part"][0]["valueString"], "3");
        assert_eq!(
            p[5]["part"][2]["valueReference"]["reference"],
            "http://h/fhir/Encounter/e1"
        );
        assert_eq!(b["entry"][1]["fullUrl"], "http://h/fhir/Encounter/e1");
        assert_eq!(b["entry"][1]["request"]["method"], "PUT");
        assert!(b["entry"][1].get("resource").is_none());
        let full = bundle(&status, &n, Some(Content::FullResource));
        assert_eq!(full["entry"][1]["resource"]["resourceType"], "Encounter");
        let empty = bundle(&status, &n, Some(Content::Empty));
        assert_eq!(empty["entry"].as_array().unwrap().len(), 1);
        assert_eq!(
            empty["entry"][0]["resource"]["parameter"][4]["part"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }
}
