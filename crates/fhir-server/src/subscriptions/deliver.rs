//! The deliverer: one thread per node that sends each subscription's events in order
//! over its channel ([`super::send`]), different subscriptions' side by side;
//! handshakes and heartbeats are [`super::upkeep`]'s. A 2xx answer delivers the event; anything else (or no answer within the
//! timeout) is tried again after a wait that doubles each time, and after
//! `max_attempts` failures the subscription's status becomes `error`, with the reason
//! in `Subscription.error`, and its waiting events are dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fhir_store::changes::Event;
use fhir_store::{Precondition, Store, StoreResult};
use serde_json::Value;

use super::dispatch::Dispatcher;
use super::send::Sender;
use super::{Active, SubscriptionConfig};

const POLL: Duration = Duration::from_millis(200);
/// Events looked at per round (each of another subscription).
const BATCH: usize = 200;

pub struct Deliverer {
    pub(super) store: Arc<Store>,
    pub(super) dispatcher: Arc<Dispatcher>,
    pub(super) hub: Arc<super::websocket::Hub>,
    pub(super) config: SubscriptionConfig,
    pub(super) sender: Arc<Sender>,
    /// When this node last sent each topic-based subscription something (ms), for
    /// heartbeats.
    pub(super) last_sent: Mutex<HashMap<String, i64>>,
    /// When delivered events were last pruned (ms).
    pub(super) pruned: Mutex<i64>,
    /// The last round claimed events: the next claims at once, without asking first
    /// whether any is due (a read, where a claim is a write).
    busy: AtomicBool,
}

impl Deliverer {
    pub fn new(
        store: Arc<Store>,
        dispatcher: Arc<Dispatcher>,
        hub: Arc<super::websocket::Hub>,
        config: SubscriptionConfig,
    ) -> std::io::Result<Self> {
        let sender = Arc::new(Sender::new(store.clone(), hub.clone(), config.clone())?);
        Ok(Deliverer {
            store,
            dispatcher,
            hub,
            config,
            sender,
            last_sent: Mutex::new(HashMap::new()),
            pruned: Mutex::new(0),
            busy: AtomicBool::new(false),
        })
    }

    /// Runs forever on the calling thread.
    pub fn run(&self) {
        loop {
            if let Err(e) = self.upkeep() {
                tracing::warn!(error = %e, "subscription handshakes and heartbeats failed; retrying");
            }
            match self.deliver_due() {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "subscription delivery failed; retrying"),
            }
            self.dispatcher.handoff.wait(POLL);
        }
    }

    /// Sends the events that are due, one per subscription: those the dispatcher
    /// handed over claimed, and those this node claims now.
    pub fn deliver_due(&self) -> StoreResult<usize> {
        let mut due = self.handed()?;
        let handoff = &self.dispatcher.handoff;
        let now = fhir_store::time::now_millis();
        if self.busy.load(Ordering::Relaxed) || self.store.has_due_events(now)? {
            let claimed = self
                .store
                .claim_due(handoff.node(), now, now + handoff.hold(), BATCH)?;
            self.busy.store(!claimed.is_empty(), Ordering::Relaxed);
            due.extend(claimed);
        }
        if due.is_empty() {
            return Ok(0);
        }
        // Another node may have recorded events of a subscription this node has not
        // read yet: then read the subscriptions again (this round's upkeep read them
        // if any was written, so the ones known are current).
        let mut registry = self.dispatcher.active();
        if due
            .iter()
            .any(|e| registry.get(&e.subscription_id).is_none())
        {
            self.dispatcher.refresh()?;
            registry = self.dispatcher.active();
        }
        let mut known = Vec::new();
        let (mut unsent, mut released) = (Vec::new(), Vec::new());
        for event in due {
            let key = (event.subscription_id.clone(), event.event_number);
            match registry.get(&event.subscription_id) {
                // A websocket subscription no client of this node is bound to: its
                // event is left to another node for a while, then kept unsent.
                Some(sub) if sub.channel == "websocket" && !self.hub.is_bound(&sub.id, now) => {
                    match event.at < now - super::websocket::UNBOUND_GRACE_MS {
                        true => unsent.push(key),
                        false => released.push(key),
                    }
                }
                Some(sub) => known.push((sub.clone(), event)),
                // Off, in error, or deleted since: nothing more goes out.
                None => self.store.drop_events(&event.subscription_id)?,
            }
        }
        self.store.events_delivered(&unsent, 0)?;
        self.store.release_events(&released)?;
        let n = known.len();
        let results = self.sender.send_all(&known);
        let delivered: Vec<(String, i64)> = known
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_ok())
            .map(|((s, e), _)| (s.id.clone(), e.event_number))
            .collect();
        self.store.events_delivered(&delivered, now)?;
        self.sent(delivered.iter().map(|(s, _)| s.as_str()));
        for ((sub, event), result) in known.iter().zip(results) {
            if let Err(why) = result {
                self.failed(sub, event, &why)?;
            }
        }
        Ok(n)
    }

    /// The events the dispatcher handed over whose claim runs long enough to send them
    /// now (two timeouts). Those whose claim is about to end (this thread was busy with
    /// slow partners) are given back, due at once for any node's claim: sent under an
    /// ending claim, another node could send them too.
    fn handed(&self) -> StoreResult<Vec<Event>> {
        let left = 2 * self.config.timeout.as_millis() as i64;
        let now = fhir_store::time::now_millis();
        let (ready, ending) = self.dispatcher.handoff.take(now, left);
        self.store.release_events(&ending)?;
        Ok(ready)
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

    /// Sets the subscription's status to `error` with the reason; stops its events.
    pub(super) fn set_error(&self, sub: &Active, reason: &str) -> StoreResult<()> {
        tracing::warn!(subscription = %sub.id, reason, "subscription set to error");
        self.set_status(sub, "error", Some(reason))?;
        self.store.drop_events(&sub.id)
    }

    /// Writes the subscription with `status` (and `Subscription.error`, or none), if it
    /// was not changed meanwhile (a concurrent change wins).
    pub(super) fn set_status(
        &self,
        sub: &Active,
        status: &str,
        error: Option<&str>,
    ) -> StoreResult<()> {
        let Some(current) = self.store.read("Subscription", &sub.id)? else {
            return Ok(());
        };
        let Ok(mut value) = fhir_model::json::parse(current.content.as_bytes()) else {
            return Ok(());
        };
        if let Some(o) = value.as_object_mut() {
            o.insert("status".into(), Value::String(status.into()));
            match error {
                Some(e) => o.insert("error".into(), Value::String(e.into())),
                None => o.remove("error"),
            };
        }
        let pre = Precondition {
            if_match: Some(current.version),
            ..Default::default()
        };
        let _ = self.store.update("Subscription", &sub.id, value, pre);
        Ok(())
    }

    /// Notes that subscriptions were just sent something (no heartbeat is due).
    pub(super) fn sent<'a>(&self, ids: impl Iterator<Item = &'a str>) {
        let now = fhir_store::time::now_millis();
        let mut last = self.last_sent.lock().unwrap_or_else(|p| p.into_inner());
        for id in ids {
            last.insert(id.to_string(), now);
        }
    }
}
