//! What one notification sends over its channel. Criteria-based rest-hook
//! (subscription.html, R4): without a payload, an empty `POST` to the endpoint; with
//! one, the resource's version that made the event, `PUT` to `[endpoint]/[type]/[id]`
//! in that MIME type. Topic-based (the Backport IG): a notification Bundle
//! ([`super::notification`]) `POST`ed to the endpoint, or written to the websocket
//! connections bound on this node. `channel.header` lines are sent as headers; only a
//! 2xx answer delivers. The requests of a round go out together over
//! [`super::transport`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fhir_store::changes::Event;
use fhir_store::Store;
use serde_json::Value;

use super::transport::{Outgoing, Transport};
use super::{notification, Active, SubscriptionConfig};

/// What sending needs: the versions notifications carry (the dispatcher's, else the
/// store's), this node's websocket connections, the settings and the HTTP client.
pub struct Sender {
    store: Arc<Store>,
    hub: Arc<super::websocket::Hub>,
    config: SubscriptionConfig,
    transport: Transport,
}

/// A notification made ready: sent already (websocket), nothing to send, or a request.
enum Prepared {
    Done(Result<(), String>),
    Request(Outgoing),
}

impl Sender {
    /// Starts the HTTP client's thread.
    pub fn new(
        store: Arc<Store>,
        hub: Arc<super::websocket::Hub>,
        config: SubscriptionConfig,
    ) -> std::io::Result<Self> {
        let tls = match &config.tls {
            Some(tls) => (**tls).clone(),
            None => crate::tls::client_config(None, None)
                .map_err(|e| std::io::Error::other(e.to_string()))?,
        };
        Ok(Sender {
            store,
            hub,
            config,
            transport: Transport::start(tls)?,
        })
    }

    /// Sends the events (each of another subscription) side by side; the outcomes in
    /// order.
    pub fn send_all(&self, events: &[(Active, Event)]) -> Vec<Result<(), String>> {
        let prepared = events.iter().map(|(s, e)| self.prepare(s, e)).collect();
        self.run(prepared)
    }

    /// Sends a notification Bundle of a topic-based subscription: POSTed to its
    /// endpoint, or written to the websocket connections bound to it on this node.
    pub(super) fn post(&self, sub: &Active, bundle: &Value) -> Result<(), String> {
        let prepared = self.prepare_post(sub, bundle);
        self.run(vec![prepared])
            .pop()
            .unwrap_or_else(|| Err("nothing was sent".into()))
    }

    /// Sends the requests among `prepared` together; every outcome, in order.
    fn run(&self, prepared: Vec<Prepared>) -> Vec<Result<(), String>> {
        let mut requests = Vec::new();
        let mut outcomes: Vec<Option<Result<(), String>>> = prepared
            .into_iter()
            .map(|p| match p {
                Prepared::Done(outcome) => Some(outcome),
                Prepared::Request(r) => {
                    requests.push(r);
                    None
                }
            })
            .collect();
        let mut sent = self.transport.send_all(requests).into_iter();
        for slot in outcomes.iter_mut().filter(|o| o.is_none()) {
            *slot = sent.next();
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err("the delivery thread stopped".into())))
            .collect()
    }

    fn prepare_post(&self, sub: &Active, bundle: &Value) -> Prepared {
        if sub.channel == "websocket" {
            let now = fhir_store::time::now_millis();
            return Prepared::Done(self.hub.send(&sub.id, &bundle.to_string(), now));
        }
        let mime = sub.payload.as_deref().unwrap_or("application/fhir+json");
        let body = Bytes::from(bundle.to_string());
        Prepared::Request(self.request(sub, "POST", sub.endpoint.clone(), Some(mime), body))
    }

    /// A request to `url` with the subscription's headers and timeout.
    fn request(
        &self,
        sub: &Active,
        method: &'static str,
        url: String,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Outgoing {
        let mut headers = Vec::with_capacity(sub.headers.len() + 1);
        if let Some(mime) = content_type {
            headers.push(("Content-Type".to_string(), mime.to_string()));
        }
        headers.extend(sub.headers.iter().cloned());
        let timeout = match sub.topic.as_ref().and_then(|t| t.timeout) {
            Some(secs) => Duration::from_secs(secs.clamp(1, 300)),
            None => self.config.timeout,
        };
        Outgoing {
            method,
            url,
            headers,
            body,
            timeout,
            // A name may resolve elsewhere since the subscription was written. Where
            // private endpoints are allowed there is nothing to check.
            public_only: !self.config.allow_private_endpoints,
        }
    }

    /// An event of a topic-based subscription, as a notification Bundle.
    fn prepare_notification(&self, sub: &Active, event: &Event) -> Prepared {
        let full = sub
            .topic
            .as_ref()
            .is_some_and(|t| t.content == super::backport::Content::FullResource);
        let resource = match full && event.method != "DELETE" {
            true => match self.version(event) {
                Ok(json) => json.and_then(|json| fhir_model::json::parse(json.as_bytes()).ok()),
                Err(e) => return Prepared::Done(Err(e)),
            },
            false => None,
        };
        let status = notification::Status {
            base: &self.config.base,
            sub,
            kind: notification::Kind::EventNotification,
            status: "active",
            events_since_start: event.event_number,
            error: None,
        };
        let notified = [notification::Notified { event, resource }];
        self.prepare_post(sub, &notification::bundle(&status, &notified, None))
    }

    /// The JSON of the version that made the event (`None`: a deletion, or expunged):
    /// on a first attempt within moments of the event, as its write or the dispatcher
    /// kept it in memory (fhir-store `recent`); otherwise from the store, which knows
    /// of an expunge since.
    fn version(&self, event: &Event) -> Result<Option<Arc<str>>, String> {
        let (t, id, v) = (&event.res_type, &event.res_id, event.version);
        let kept = (event.attempts == 0)
            .then(|| self.store.recent().get(t, id, v))
            .flatten();
        if let Some(kept) = kept {
            return Ok(Some(kept.content.clone()));
        }
        let stored = self
            .store
            .vread_shared(t, id, v)
            .map_err(|e| e.to_string())?;
        Ok(stored
            .filter(|s| !s.deleted)
            .map(|s| Arc::from(s.content.as_str())))
    }

    /// What one delivery attempt sends.
    fn prepare(&self, sub: &Active, event: &Event) -> Prepared {
        if sub.topic.is_some() {
            return self.prepare_notification(sub, event);
        }
        let Some(mime) = &sub.payload else {
            let empty = Bytes::new();
            return Prepared::Request(self.request(sub, "POST", sub.endpoint.clone(), None, empty));
        };
        let json = match self.version(event) {
            Ok(Some(json)) => json,
            Ok(None) => return Prepared::Done(Ok(())), // expunged since: nothing to send
            Err(e) => return Prepared::Done(Err(e)),
        };
        let url = format!(
            "{}/{}/{}",
            sub.endpoint.trim_end_matches('/'),
            event.res_type,
            event.res_id
        );
        let body = Bytes::copy_from_slice(json.as_bytes());
        Prepared::Request(self.request(sub, "PUT", url, Some(mime), body))
    }
}
