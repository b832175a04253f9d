//! Events handed from the dispatcher to the deliverer in memory. The dispatcher records
//! the events it finds already claimed by this node when they may go out at once
//! (`fhir_store::changes::Claim`: each one its subscription's first waiting event), and
//! after its transaction commits hands them here; the deliverer, woken at once, sends
//! them without a claiming statement per event, and without waiting for its next poll.
//! The database stays the truth: a claim that ends unsent (the node died) is taken by
//! any node's `claim_due` once it expires, as any claim is.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use fhir_store::changes::{Claim, Event};

/// Handed events, each with the end of its claim (ms).
pub struct Handoff {
    node: String,
    /// How long a claim runs (ms).
    hold: i64,
    queue: Mutex<Vec<(Event, i64)>>,
    ready: Condvar,
}

impl Handoff {
    /// Claims of `node`, running `hold` each.
    pub fn new(node: String, hold: Duration) -> Handoff {
        Handoff {
            node,
            hold: hold.as_millis() as i64,
            queue: Mutex::new(Vec::new()),
            ready: Condvar::new(),
        }
    }

    /// This node's name on the events it claims.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// How long a claim runs (ms).
    pub fn hold(&self) -> i64 {
        self.hold
    }

    /// The claim a dispatch batch recorded at `now` may take.
    pub fn claim(&self, now: i64) -> Claim<'_> {
        Claim {
            node: &self.node,
            now,
            until: now + self.hold,
        }
    }

    /// Hands over events recorded with `claim` (committed) and wakes the deliverer.
    pub fn hand(&self, events: Vec<Event>, claim_until: i64) {
        if events.is_empty() {
            return;
        }
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        queue.extend(events.into_iter().map(|e| (e, claim_until)));
        self.ready.notify_one();
    }

    /// Takes every event handed over so far: those whose claim runs at least `left`
    /// (ms) after `now`, to send; and, to give back, the keys of those whose claim
    /// ends sooner (sent under an ending claim, another node could send them too).
    pub fn take(&self, now: i64, left: i64) -> (Vec<Event>, Vec<(String, i64)>) {
        let handed = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()));
        let (ready, ending): (Vec<_>, Vec<_>) = handed
            .into_iter()
            .partition(|(_, until)| until - now >= left);
        let ending = ending
            .into_iter()
            .map(|(e, _)| (e.subscription_id, e.event_number))
            .collect();
        (ready.into_iter().map(|(e, _)| e).collect(), ending)
    }

    /// Waits up to `timeout` for events to be handed over.
    pub fn wait(&self, timeout: Duration) {
        let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if queue.is_empty() {
            let _ = self.ready.wait_timeout(queue, timeout);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: i64) -> Event {
        Event {
            subscription_id: "s".into(),
            event_number: n,
            res_type: "Observation".into(),
            res_id: "o".into(),
            version: 1,
            method: "POST".into(),
            at: 0,
            attempts: 0,
            last_error: None,
            delivered: None,
        }
    }

    #[test]
    fn events_handed_over_are_taken_once_with_their_claim() {
        let h = Handoff::new("node-a".into(), Duration::from_secs(30));
        let claim = h.claim(1_000);
        assert_eq!((claim.node, claim.until), ("node-a", 31_000));
        h.hand(vec![event(1), event(2)], claim.until);
        h.hand(vec![event(3)], 2_000);
        h.wait(Duration::from_secs(5)); // returns at once: events wait
        let (ready, ending) = h.take(1_500, 1_000);
        let numbers: Vec<i64> = ready.iter().map(|e| e.event_number).collect();
        assert_eq!(numbers, [1, 2]);
        assert_eq!(ending, [("s".to_string(), 3)], "its claim ends in 500 ms");
        let (ready, ending) = h.take(1_500, 1_000);
        assert!(ready.is_empty() && ending.is_empty());
    }

    #[test]
    fn waiting_ends_when_events_are_handed_over() {
        let h = std::sync::Arc::new(Handoff::new("n".into(), Duration::from_secs(30)));
        let h2 = h.clone();
        let t = std::thread::spawn(move || {
            let started = std::time::Instant::now();
            h2.wait(Duration::from_secs(20));
            started.elapsed()
        });
        std::thread::sleep(Duration::from_millis(50));
        h.hand(vec![event(1)], 0);
        assert!(t.join().unwrap() < Duration::from_secs(10));
    }
}
