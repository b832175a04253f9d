//! Sending one notification over its channel, on a pool of long-lived threads
//! ([`Pool`]: a round's deliveries go out side by side without threads started and
//! stopped per round). Criteria-based rest-hook (subscription.html, R4): without a
//! payload, an empty `POST` to the endpoint; with one, the resource's version that made
//! the event, `PUT` to `[endpoint]/[type]/[id]` in that MIME type. Topic-based (the
//! Backport IG): a notification Bundle ([`super::notification`]) `POST`ed to the
//! endpoint, or written to the websocket connections bound on this node.
//! `channel.header` lines are sent as headers; only a 2xx answer delivers.

use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use fhir_store::changes::Event;
use fhir_store::Store;
use serde_json::Value;

use super::payloads::Payloads;
use super::{endpoint, notification, Active, SubscriptionConfig};

/// Deliveries made at once (the pool's threads).
pub const SENDERS: usize = 8;

/// What sending needs: the versions notifications carry (the dispatcher's, else the
/// store's), this node's websocket connections, the settings and the HTTP client.
pub struct Sender {
    store: Arc<Store>,
    payloads: Arc<Payloads>,
    hub: Arc<super::websocket::Hub>,
    config: SubscriptionConfig,
    agent: ureq::Agent,
}

impl Sender {
    pub fn new(
        store: Arc<Store>,
        hub: Arc<super::websocket::Hub>,
        config: SubscriptionConfig,
        payloads: Arc<Payloads>,
    ) -> Self {
        // Connections a partner keeps open are used again, one per sending thread.
        let mut agent = ureq::AgentBuilder::new()
            .redirects(0)
            .timeout(config.timeout)
            .max_idle_connections(256)
            .max_idle_connections_per_host(SENDERS);
        if let Some(tls) = &config.tls {
            agent = agent.tls_config(tls.clone());
        }
        Sender {
            store,
            payloads,
            hub,
            config,
            agent: agent.build(),
        }
    }

    /// Sends a notification Bundle of a topic-based subscription: POSTed to its
    /// endpoint, or written to the websocket connections bound to it on this node.
    pub(super) fn post(&self, sub: &Active, bundle: &Value) -> Result<(), String> {
        if sub.channel == "websocket" {
            let now = fhir_store::time::now_millis();
            return self.hub.send(&sub.id, &bundle.to_string(), now);
        }
        endpoint::check(&sub.endpoint, self.config.allow_private_endpoints, true)?;
        let mime = sub.payload.as_deref().unwrap_or("application/fhir+json");
        let mut r = self.agent.post(&sub.endpoint).set("Content-Type", mime);
        if let Some(secs) = sub.topic.as_ref().and_then(|t| t.timeout) {
            r = r.timeout(Duration::from_secs(secs.clamp(1, 300)));
        }
        for (k, v) in &sub.headers {
            r = r.set(k, v);
        }
        outcome(r.send_string(&bundle.to_string()))
    }

    /// An event of a topic-based subscription, as a notification Bundle.
    fn send_notification(&self, sub: &Active, event: &Event) -> Result<(), String> {
        let full = sub
            .topic
            .as_ref()
            .is_some_and(|t| t.content == super::backport::Content::FullResource);
        let resource = match full && event.method != "DELETE" {
            true => self
                .version(event)?
                .and_then(|json| fhir_model::json::parse(json.as_bytes()).ok()),
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
        self.post(sub, &notification::bundle(&status, &notified, None))
    }

    /// The JSON of the version that made the event (`None`: a deletion, or expunged):
    /// on a first attempt within moments of the event, as the dispatcher read it;
    /// otherwise from the store, which knows of an expunge since.
    fn version(&self, event: &Event) -> Result<Option<Arc<str>>, String> {
        let (t, id, v) = (&event.res_type, &event.res_id, event.version);
        let kept = (event.attempts == 0)
            .then(|| self.payloads.get(t, id, v))
            .flatten();
        if kept.is_some() {
            return Ok(kept);
        }
        let stored = self
            .store
            .vread_shared(t, id, v)
            .map_err(|e| e.to_string())?;
        Ok(stored
            .filter(|s| !s.deleted)
            .map(|s| Arc::from(s.content.as_str())))
    }

    /// One delivery attempt: `Err` with why it failed.
    pub fn send(&self, sub: &Active, event: &Event) -> Result<(), String> {
        if sub.topic.is_some() {
            return self.send_notification(sub, event);
        }
        endpoint::check(&sub.endpoint, self.config.allow_private_endpoints, true)?;
        let response = match &sub.payload {
            None => {
                let mut r = self.agent.post(&sub.endpoint);
                for (k, v) in &sub.headers {
                    r = r.set(k, v);
                }
                r.send_bytes(&[])
            }
            Some(mime) => {
                let Some(json) = self.version(event)? else {
                    return Ok(()); // expunged since: nothing to send
                };
                let url = format!(
                    "{}/{}/{}",
                    sub.endpoint.trim_end_matches('/'),
                    event.res_type,
                    event.res_id
                );
                let mut r = self.agent.put(&url).set("Content-Type", mime);
                for (k, v) in &sub.headers {
                    r = r.set(k, v);
                }
                r.send_string(&json)
            }
        };
        outcome(response)
    }
}

/// A delivery to make, and where its outcome goes.
struct Job {
    index: usize,
    sub: Active,
    event: Event,
    reply: mpsc::Sender<(usize, Result<(), String>)>,
}

/// Long-lived threads that send side by side.
pub struct Pool {
    jobs: mpsc::Sender<Job>,
}

impl Pool {
    /// Starts `threads` sending threads.
    pub fn start(sender: Arc<Sender>, threads: usize) -> std::io::Result<Pool> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads.max(1) {
            let (sender, queue) = (sender.clone(), queue.clone());
            std::thread::Builder::new()
                .name(format!("subscription-send-{n}"))
                .spawn(move || loop {
                    let job = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok(job) = job else { return };
                    let outcome = sender.send(&job.sub, &job.event);
                    let _ = job.reply.send((job.index, outcome));
                })?;
        }
        Ok(Pool { jobs })
    }

    /// Sends the events (each of another subscription) side by side; the outcomes in
    /// order.
    pub fn send_all(&self, events: &[(Active, Event)]) -> Vec<Result<(), String>> {
        let (reply, outcomes) = mpsc::channel();
        for (index, (sub, event)) in events.iter().enumerate() {
            let job = Job {
                index,
                sub: sub.clone(),
                event: event.clone(),
                reply: reply.clone(),
            };
            if self.jobs.send(job).is_err() {
                break;
            }
        }
        drop(reply);
        let mut out = vec![Err("the delivery threads stopped".to_string()); events.len()];
        for (index, outcome) in outcomes {
            out[index] = outcome;
        }
        out
    }
}

/// A delivery's outcome: a 2xx answer, or why not.
fn outcome(response: Result<ureq::Response, ureq::Error>) -> Result<(), String> {
    match response {
        Ok(r) if (200..300).contains(&r.status()) => Ok(()),
        Ok(r) => Err(format!("HTTP {}", r.status())),
        Err(ureq::Error::Status(code, _)) => Err(format!("HTTP {code}")),
        Err(ureq::Error::Transport(t)) => Err(t.to_string()),
    }
}
