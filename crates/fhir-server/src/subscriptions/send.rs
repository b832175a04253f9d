//! Sending one notification over its channel, on a pool of long-lived threads
//! ([`Pool`]: a round's deliveries go out side by side without threads started and
//! stopped per round). Criteria-based rest-hook (subscription.html, R4): without a
//! payload, an empty `POST` to the endpoint; with one, the resource's version that made
//! the event, `PUT` to `[endpoint]/[type]/[id]` in that MIME type. Topic-based (the
//! Backport IG): a notification Bundle ([`super::notification`]) `POST`ed to the
//! endpoint, or written to the websocket connections bound on this node.
//! `channel.header` lines are sent as headers; only a 2xx answer delivers.

use std::sync::{mpsc, Arc, Condvar, Mutex};
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

    /// Checks an endpoint again before a delivery: its host may resolve elsewhere now.
    /// Where private endpoints are allowed there is nothing to resolve, and the URL was
    /// checked when the subscription was written.
    fn check(&self, endpoint: &str) -> Result<(), String> {
        match self.config.allow_private_endpoints {
            true => Ok(()),
            false => endpoint::check(endpoint, false, true).map(|_| ()),
        }
    }

    /// Sends a notification Bundle of a topic-based subscription: POSTed to its
    /// endpoint, or written to the websocket connections bound to it on this node.
    pub(super) fn post(&self, sub: &Active, bundle: &Value) -> Result<(), String> {
        if sub.channel == "websocket" {
            let now = fhir_store::time::now_millis();
            return self.hub.send(&sub.id, &bundle.to_string(), now);
        }
        self.check(&sub.endpoint)?;
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
        self.check(&sub.endpoint)?;
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

/// A delivery to make, and the round its outcome goes to.
struct Job {
    index: usize,
    sub: Active,
    event: Event,
    round: Arc<Round>,
    /// Set once sent; a job dropped without one (its thread panicked, or the pool
    /// stopped) finishes as failed, so the round is never left waiting.
    outcome: Option<Result<(), String>>,
}

impl Drop for Job {
    fn drop(&mut self) {
        let outcome = self
            .outcome
            .take()
            .unwrap_or_else(|| Err("the delivery threads stopped".to_string()));
        self.round.finish(self.index, outcome);
    }
}

/// The outcomes of one [`Pool::send_all`], and how many are still to come. The caller
/// is woken once, by the last of them (not once per outcome: on a 2-core machine each
/// wake-up is a context switch that costs more than the bookkeeping).
struct Round {
    state: Mutex<(Vec<Result<(), String>>, usize)>,
    done: Condvar,
}

impl Round {
    fn finish(&self, index: usize, outcome: Result<(), String>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.0[index] = outcome;
        state.1 -= 1;
        if state.1 == 0 {
            self.done.notify_one();
        }
    }
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
                    let Ok(mut job) = job else { return };
                    job.outcome = Some(sender.send(&job.sub, &job.event));
                })?;
        }
        Ok(Pool { jobs })
    }

    /// Sends the events (each of another subscription) side by side; the outcomes in
    /// order.
    pub fn send_all(&self, events: &[(Active, Event)]) -> Vec<Result<(), String>> {
        let round = Arc::new(Round {
            state: Mutex::new((vec![Ok(()); events.len()], events.len())),
            done: Condvar::new(),
        });
        for (index, (sub, event)) in events.iter().enumerate() {
            let job = Job {
                index,
                sub: sub.clone(),
                event: event.clone(),
                round: round.clone(),
                outcome: None,
            };
            // A job the pool no longer takes is dropped here, and finishes as failed.
            let _ = self.jobs.send(job);
        }
        let mut state = round.state.lock().unwrap_or_else(|p| p.into_inner());
        while state.1 > 0 {
            state = round.done.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        std::mem::take(&mut state.0)
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
