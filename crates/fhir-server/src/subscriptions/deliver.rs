//! The deliverer: one thread per node that sends each subscription's events in order
//! over its channel. rest-hook (subscription.html, R4): without a payload, an empty
//! `POST` to the endpoint; with one, the resource's version that made the event, `PUT`
//! to `[endpoint]/[type]/[id]` in that MIME type; `channel.header` lines are sent as
//! headers. A 2xx answer delivers the event; anything else (or no answer within the
//! timeout) is tried again after a wait that doubles each time, and after
//! `max_attempts` failures the subscription's status becomes `error`, with the reason
//! in `Subscription.error`, and its waiting events are dropped.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use fhir_store::changes::Event;
use fhir_store::{Precondition, Store, StoreResult};
use serde_json::Value;

use super::dispatch::Dispatcher;
use super::{endpoint, Active, SubscriptionConfig};

const POLL: Duration = Duration::from_millis(200);
/// Events looked at per round (each of another subscription).
const BATCH: usize = 200;
/// Deliveries made at once.
const SENDERS: usize = 8;

pub struct Deliverer {
    store: Arc<Store>,
    dispatcher: Arc<Dispatcher>,
    config: SubscriptionConfig,
    agent: ureq::Agent,
    /// This node's id, on the events it claims.
    node: String,
}

impl Deliverer {
    pub fn new(store: Arc<Store>, dispatcher: Arc<Dispatcher>, config: SubscriptionConfig) -> Self {
        let agent = ureq::AgentBuilder::new()
            .redirects(0)
            .timeout(config.timeout)
            .build();
        let node = crate::export::worker::job_node(&store.node_id());
        Deliverer {
            store,
            dispatcher,
            config,
            agent,
            node,
        }
    }

    /// Runs forever on the calling thread.
    pub fn run(&self) {
        loop {
            match self.deliver_due() {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "subscription delivery failed; retrying"),
            }
            std::thread::sleep(POLL);
        }
    }

    /// Sends the events that are due, one per subscription.
    pub fn deliver_due(&self) -> StoreResult<usize> {
        let now = fhir_store::time::now_millis();
        let due = self.store.due_events(now, BATCH)?;
        if due.is_empty() {
            return Ok(0);
        }
        // Another node may have recorded events of a subscription this node has not
        // read yet: read the active subscriptions again if any was written.
        self.dispatcher.refresh()?;
        let registry = self.dispatcher.active();
        let mut known = Vec::new();
        for event in due {
            match registry.get(&event.subscription_id) {
                Some(sub) => known.push((sub.clone(), event)),
                // Off, in error, or deleted since: nothing more goes out.
                None => self.store.drop_events(&event.subscription_id)?,
            }
        }
        let until = now + (self.config.timeout * 3).as_millis() as i64;
        let keys: Vec<(String, i64)> = known
            .iter()
            .map(|(s, e)| (s.id.clone(), e.event_number))
            .collect();
        let claimed: HashSet<(String, i64)> = self
            .store
            .claim_events(&keys, &self.node, now, until)?
            .into_iter()
            .collect();
        known.retain(|(s, e)| claimed.contains(&(s.id.clone(), e.event_number)));
        let n = known.len();
        let results = self.send_all(&known);
        let delivered: Vec<(String, i64)> = known
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_ok())
            .map(|((s, e), _)| (s.id.clone(), e.event_number))
            .collect();
        self.store.events_delivered(&delivered)?;
        for ((sub, event), result) in known.iter().zip(results) {
            if let Err(why) = result {
                self.failed(sub, event, &why)?;
            }
        }
        Ok(n)
    }

    /// Sends the events (each of another subscription) side by side, on up to
    /// [`SENDERS`] threads; the results in order.
    fn send_all(&self, events: &[(Active, Event)]) -> Vec<Result<(), String>> {
        if events.len() <= 1 {
            return events.iter().map(|(s, e)| self.send(s, e)).collect();
        }
        let chunk = events.len().div_ceil(SENDERS);
        std::thread::scope(|scope| {
            let handles: Vec<_> = events
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|(s, e)| self.send(s, e))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| {
                    h.join()
                        .unwrap_or_else(|_| vec![Err("delivery thread failed".to_string()); chunk])
                })
                .collect()
        })
    }

    fn failed(&self, sub: &Active, event: &Event, why: &str) -> StoreResult<()> {
        let attempts = event.attempts + 1;
        tracing::info!(subscription = %sub.id, event = event.event_number, attempts, error = %why, "notification not delivered");
        if attempts >= i64::from(self.config.max_attempts) {
            return self.set_error(
                sub,
                &format!(
                    "{attempts} deliveries of event {} to {} failed; the last: {why}",
                    event.event_number, sub.endpoint
                ),
            );
        }
        let wait = self.config.retry_base.as_millis() as i64 * (1i64 << (attempts - 1).min(16));
        self.store.event_failed(
            &sub.id,
            event.event_number,
            why,
            fhir_store::time::now_millis() + wait,
        )
    }

    /// Sets the subscription's status to `error` with the reason; drops its events.
    fn set_error(&self, sub: &Active, reason: &str) -> StoreResult<()> {
        tracing::warn!(subscription = %sub.id, reason, "subscription set to error");
        if let Some(current) = self.store.read("Subscription", &sub.id)? {
            if let Ok(mut value) = fhir_model::json::parse(current.content.as_bytes()) {
                if let Some(o) = value.as_object_mut() {
                    o.insert("status".into(), Value::String("error".into()));
                    o.insert("error".into(), Value::String(reason.into()));
                }
                let pre = Precondition {
                    if_match: Some(current.version),
                    ..Default::default()
                };
                // A concurrent change of the subscription wins; the next failure
                // will try again.
                let _ = self.store.update("Subscription", &sub.id, value, pre);
            }
        }
        self.store.drop_events(&sub.id)
    }

    /// One delivery attempt: `Err` with why it failed.
    fn send(&self, sub: &Active, event: &Event) -> Result<(), String> {
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
                let version = self
                    .store
                    .vread(&event.res_type, &event.res_id, event.version)
                    .map_err(|e| e.to_string())?;
                let Some(version) = version.filter(|v| !v.deleted) else {
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
                r.send_string(&version.content)
            }
        };
        match response {
            Ok(r) if (200..300).contains(&r.status()) => Ok(()),
            Ok(r) => Err(format!("HTTP {}", r.status())),
            Err(ureq::Error::Status(code, _)) => Err(format!("HTTP {code}")),
            Err(ureq::Error::Transport(t)) => Err(t.to_string()),
        }
    }
}
