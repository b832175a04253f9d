//! The versions this node's dispatcher just read, kept in memory for the notifications
//! it recorded about them: a notification that carries its resource (a criteria-based
//! payload, a topic's `full-resource` content) is sent within moments of its event,
//! and would otherwise read the same version from the database again on a sending
//! thread. Versions never change once written, so an entry is never stale; but one
//! older than [`FRESH`] is not used, and is dropped (oldest first) as others come in or
//! when the entries pass their bound: a version expunged since must not go out from
//! memory, so only first attempts within moments of their event (as a read in flight
//! would) use it. A notification whose version is not here (a retry, or sent by another
//! node, or recorded before a restart) reads it from the store as before.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The most bytes of resource JSON kept.
const MAX_BYTES: usize = 16 << 20;
/// The most versions kept.
const MAX_VERSIONS: usize = 16_384;
/// How long after it was kept an entry is used.
pub const FRESH: Duration = Duration::from_secs(10);

/// `type/id/version`.
fn key(res_type: &str, id: &str, version: i64) -> String {
    format!("{res_type}/{id}/{version}")
}

#[derive(Default)]
struct Kept {
    by_key: HashMap<String, (Arc<str>, Instant)>,
    /// Keys, oldest first.
    order: VecDeque<String>,
    bytes: usize,
}

/// Recently dispatched versions' JSON, bounded by count and size.
#[derive(Default)]
pub struct Payloads {
    kept: Mutex<Kept>,
}

impl Payloads {
    /// Keeps the JSON of a version (once), dropping the oldest beyond the bounds and
    /// those no longer fresh.
    pub fn keep(&self, res_type: &str, id: &str, version: i64, content: Arc<str>) {
        self.keep_for(res_type, id, version, content, FRESH);
    }

    fn keep_for(&self, res_type: &str, id: &str, version: i64, content: Arc<str>, fresh: Duration) {
        if content.len() > MAX_BYTES / 4 {
            return;
        }
        let key = key(res_type, id, version);
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.by_key.contains_key(&key) {
            return;
        }
        kept.bytes += content.len();
        kept.by_key.insert(key.clone(), (content, Instant::now()));
        kept.order.push_back(key);
        while let Some(oldest) = kept.order.front() {
            let stale = kept
                .by_key
                .get(oldest)
                .is_none_or(|(_, at)| at.elapsed() >= fresh);
            if !stale && kept.bytes <= MAX_BYTES && kept.order.len() <= MAX_VERSIONS {
                break;
            }
            let oldest = kept.order.pop_front().unwrap_or_default();
            if let Some((gone, _)) = kept.by_key.remove(&oldest) {
                kept.bytes -= gone.len();
            }
        }
    }

    /// The JSON of a version, if it was kept less than [`FRESH`] ago.
    pub fn get(&self, res_type: &str, id: &str, version: i64) -> Option<Arc<str>> {
        self.get_within(res_type, id, version, FRESH)
    }

    fn get_within(
        &self,
        res_type: &str,
        id: &str,
        version: i64,
        fresh: Duration,
    ) -> Option<Arc<str>> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let (json, at) = kept.by_key.get(&key(res_type, id, version))?;
        (at.elapsed() < fresh).then(|| json.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_each_version_once_and_drops_the_oldest_beyond_the_bound() {
        let p = Payloads::default();
        p.keep("Observation", "a", 1, Arc::from("{\"v\":1}"));
        p.keep("Observation", "a", 1, Arc::from("{\"other\":true}"));
        assert_eq!(p.get("Observation", "a", 1).as_deref(), Some("{\"v\":1}"));
        assert_eq!(p.get("Observation", "a", 2), None);
        for i in 0..MAX_VERSIONS {
            p.keep("Observation", &format!("b{i}"), 1, Arc::from("{}"));
        }
        assert_eq!(p.get("Observation", "a", 1), None, "the oldest went first");
        assert!(p.get("Observation", "b1", 1).is_some());
        let kept = p.kept.lock().unwrap();
        assert_eq!(kept.order.len(), MAX_VERSIONS);
        assert_eq!(kept.bytes, 2 * MAX_VERSIONS);
    }

    #[test]
    fn an_entry_older_than_fresh_is_not_used() {
        let p = Payloads::default();
        p.keep("Observation", "a", 1, Arc::from("{}"));
        assert!(p.get("Observation", "a", 1).is_some());
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            p.get_within("Observation", "a", 1, Duration::from_millis(1)),
            None
        );
    }

    #[test]
    fn entries_no_longer_fresh_are_dropped_as_others_come_in() {
        let p = Payloads::default();
        let fresh = Duration::from_millis(200);
        p.keep_for("Observation", "a", 1, Arc::from("{\"a\":1}"), fresh);
        std::thread::sleep(Duration::from_millis(250));
        p.keep_for("Observation", "b", 1, Arc::from("{}"), fresh);
        let kept = p.kept.lock().unwrap();
        assert_eq!(kept.order.len(), 1);
        assert!(!kept.by_key.contains_key("Observation/a/1"));
        assert_eq!(kept.bytes, 2);
    }

    #[test]
    fn a_version_larger_than_a_quarter_of_the_bound_is_not_kept() {
        let p = Payloads::default();
        let big: Arc<str> = Arc::from("x".repeat(MAX_BYTES / 4 + 1));
        p.keep("Binary", "big", 1, big);
        assert_eq!(p.get("Binary", "big", 1), None);
    }
}
