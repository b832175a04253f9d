//! What the deliverer does besides sending events, once per round: the handshake of
//! each topic-based subscription that waits for one (channels.md#rest-hook: a
//! `handshake` notification POSTed to the endpoint; a 2xx answer makes the
//! subscription `active`, anything else `error` with the reason), a `heartbeat`
//! notification to each active one with a `backport-heartbeat-period` that has been
//! sent nothing for that long, and, once a minute, the pruning of events older than the
//! retention period (`$events` answers from what is kept).

use fhir_store::StoreResult;

use super::deliver::Deliverer;
use super::notification::{bundle, Kind, Status};
use super::Active;

/// How often delivered events are pruned (ms).
const PRUNE_EVERY: i64 = 60_000;

impl Deliverer {
    /// Handshakes, heartbeats and pruning that are due.
    pub fn upkeep(&self) -> StoreResult<()> {
        self.dispatcher.refresh()?;
        let registry = self.dispatcher.active();
        for sub in &registry.requested {
            self.handshake(sub)?;
        }
        let now = fhir_store::time::now_millis();
        let due: Vec<&Active> = {
            let mut last = self.last_sent.lock().unwrap_or_else(|p| p.into_inner());
            registry
                .by_topic
                .values()
                .flatten()
                .filter(|s| s.status == "active")
                .filter(|s| s.channel != "websocket" || self.hub.is_bound(&s.id, now))
                .filter(|s| {
                    let Some(period) = s.topic.as_ref().and_then(|t| t.heartbeat) else {
                        return false;
                    };
                    // A subscription first seen now is not owed one yet.
                    let since = *last.entry(s.id.clone()).or_insert(now);
                    now - since >= (period.max(1) * 1000) as i64
                })
                .collect()
        };
        for sub in due {
            self.heartbeat(sub)?;
        }
        self.prune(now)
    }

    fn handshake(&self, sub: &Active) -> StoreResult<()> {
        let status = Status {
            base: &self.config.base,
            sub,
            kind: Kind::Handshake,
            status: "requested",
            events_since_start: self.store.events_since_start(&sub.id)?,
            error: None,
        };
        match self.sender.post(sub, &bundle(&status, &[], None)) {
            Ok(()) => {
                tracing::info!(subscription = %sub.id, "handshake accepted; subscription active");
                self.sent(std::iter::once(sub.id.as_str()));
                self.set_status(sub, "active", None)
            }
            Err(why) => self.set_error(
                sub,
                &format!("the handshake with {} failed: {why}", sub.endpoint),
            ),
        }
    }

    fn heartbeat(&self, sub: &Active) -> StoreResult<()> {
        let status = Status {
            base: &self.config.base,
            sub,
            kind: Kind::Heartbeat,
            status: "active",
            events_since_start: self.store.events_since_start(&sub.id)?,
            error: None,
        };
        // A heartbeat that fails is not retried: the next one is due a period later,
        // and the subscriber learns from the silence (errors.md).
        if let Err(why) = self.sender.post(sub, &bundle(&status, &[], None)) {
            tracing::info!(subscription = %sub.id, error = %why, "heartbeat not delivered");
        }
        self.sent(std::iter::once(sub.id.as_str()));
        Ok(())
    }

    fn prune(&self, now: i64) -> StoreResult<()> {
        {
            let mut pruned = self.pruned.lock().unwrap_or_else(|p| p.into_inner());
            if now - *pruned < PRUNE_EVERY {
                return Ok(());
            }
            *pruned = now;
        }
        let before = now - self.config.retention.as_millis() as i64;
        let n = self.store.prune_events(before)?;
        if n > 0 {
            tracing::debug!(events = n, "subscription events pruned");
        }
        Ok(())
    }
}
