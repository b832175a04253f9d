//! Versions just written or read, kept in memory for the subscription machinery
//! ([`crate::changes`]): the dispatcher matches each committed change against the
//! subscriptions, and a notification that carries its resource (a criteria-based
//! payload, a topic's `full-resource` content) is sent within moments of its event.
//! Both would otherwise read the same version from the database again. A write keeps
//! its version when the dispatcher has said it watches the type ([`Recent::watch`]),
//! with the index rows of the parameters it compares (cut from the rows the write
//! computed anyway); the dispatcher keeps a version it had to read.
//!
//! Versions never change once written, so an entry is never stale; but one older than
//! [`FRESH`] is not used, and is dropped (oldest first) as others come in or when the
//! entries pass their bounds: a version expunged since must not go out from memory, so
//! only what follows within moments of a write (as a read in flight would) uses it,
//! and an expunge on this node empties it. A version not here (a retry, a write of
//! another node, or one from before a restart) is read from the store as before.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::IndexValues;

/// The most bytes of resource JSON kept.
const MAX_BYTES: usize = 16 << 20;
/// The most versions kept.
const MAX_VERSIONS: usize = 16_384;
/// How long after it was kept an entry is used.
pub const FRESH: Duration = Duration::from_secs(10);

/// Per resource type watched, the parameters whose index rows the watcher compares.
pub type Watched = HashMap<String, Arc<HashSet<String>>>;

/// A version kept: its JSON and, when a write kept it, the index rows of `params`.
#[derive(Debug)]
pub struct RecentVersion {
    pub content: Arc<str>,
    pub index: Option<(Arc<HashSet<String>>, IndexValues)>,
}

impl RecentVersion {
    /// The index rows of `codes`, if this version has them all.
    pub fn index_of(&self, codes: &HashSet<String>) -> Option<&IndexValues> {
        let (params, index) = self.index.as_ref()?;
        codes.is_subset(params).then_some(index)
    }
}

/// `type/id/version`.
fn key(res_type: &str, id: &str, version: i64) -> String {
    format!("{res_type}/{id}/{version}")
}

#[derive(Default)]
struct Kept {
    by_key: HashMap<String, (Arc<RecentVersion>, Instant)>,
    /// Keys, oldest first.
    order: VecDeque<String>,
    bytes: usize,
}

/// Recent versions, bounded by count and size.
#[derive(Default)]
pub struct Recent {
    kept: Mutex<Kept>,
    watched: RwLock<Option<Arc<Watched>>>,
}

impl Recent {
    /// The types (and their parameters) whose written versions are kept from now on;
    /// `None`: none.
    pub fn watch(&self, watched: Option<Watched>) {
        *self.watched.write().unwrap_or_else(|p| p.into_inner()) = watched.map(Arc::new);
    }

    /// The parameters watched on `res_type`, if its written versions are kept.
    pub fn watched(&self, res_type: &str) -> Option<Arc<HashSet<String>>> {
        let watched = self.watched.read().unwrap_or_else(|p| p.into_inner());
        watched.as_ref()?.get(res_type).cloned()
    }

    /// Keeps a version (once; not one larger than a quarter of the bound), dropping
    /// the oldest beyond the bounds and those no longer fresh.
    pub fn keep(
        &self,
        res_type: &str,
        id: &str,
        version: i64,
        entry: impl Into<Arc<RecentVersion>>,
    ) {
        self.keep_for(res_type, id, version, entry.into(), FRESH);
    }

    fn keep_for(
        &self,
        res_type: &str,
        id: &str,
        version: i64,
        entry: Arc<RecentVersion>,
        fresh: Duration,
    ) {
        if entry.content.len() > MAX_BYTES / 4 {
            return;
        }
        let key = key(res_type, id, version);
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.by_key.contains_key(&key) {
            return;
        }
        kept.bytes += entry.content.len();
        kept.by_key.insert(key.clone(), (entry, Instant::now()));
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
                kept.bytes -= gone.content.len();
            }
        }
    }

    /// A version, if it was kept less than [`FRESH`] ago.
    pub fn get(&self, res_type: &str, id: &str, version: i64) -> Option<Arc<RecentVersion>> {
        self.get_within(res_type, id, version, FRESH)
    }

    fn get_within(
        &self,
        res_type: &str,
        id: &str,
        version: i64,
        fresh: Duration,
    ) -> Option<Arc<RecentVersion>> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let (entry, at) = kept.by_key.get(&key(res_type, id, version))?;
        (at.elapsed() < fresh).then(|| entry.clone())
    }

    /// Forgets every version (versions were expunged).
    pub fn clear(&self) {
        *self.kept.lock().unwrap_or_else(|p| p.into_inner()) = Kept::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> RecentVersion {
        RecentVersion {
            content: Arc::from(s),
            index: None,
        }
    }

    fn content(r: &Recent, id: &str, v: i64) -> Option<String> {
        r.get("Observation", id, v).map(|e| e.content.to_string())
    }

    #[test]
    fn keeps_each_version_once_and_drops_the_oldest_beyond_the_bound() {
        let p = Recent::default();
        p.keep("Observation", "a", 1, json("{\"v\":1}"));
        p.keep("Observation", "a", 1, json("{\"other\":true}"));
        assert_eq!(content(&p, "a", 1).as_deref(), Some("{\"v\":1}"));
        assert_eq!(content(&p, "a", 2), None);
        for i in 0..MAX_VERSIONS {
            p.keep("Observation", &format!("b{i}"), 1, json("{}"));
        }
        assert_eq!(content(&p, "a", 1), None, "the oldest went first");
        assert!(content(&p, "b1", 1).is_some());
        let kept = p.kept.lock().unwrap();
        assert_eq!(kept.order.len(), MAX_VERSIONS);
        assert_eq!(kept.bytes, 2 * MAX_VERSIONS);
    }

    #[test]
    fn an_entry_older_than_fresh_is_not_used() {
        let p = Recent::default();
        p.keep("Observation", "a", 1, json("{}"));
        assert!(p.get("Observation", "a", 1).is_some());
        std::thread::sleep(Duration::from_millis(5));
        let late = p.get_within("Observation", "a", 1, Duration::from_millis(1));
        assert!(late.is_none());
    }

    #[test]
    fn entries_no_longer_fresh_are_dropped_as_others_come_in() {
        let p = Recent::default();
        let fresh = Duration::from_millis(200);
        p.keep_for("Observation", "a", 1, json("{\"a\":1}").into(), fresh);
        std::thread::sleep(Duration::from_millis(250));
        p.keep_for("Observation", "b", 1, json("{}").into(), fresh);
        let kept = p.kept.lock().unwrap();
        assert_eq!(kept.order.len(), 1);
        assert!(!kept.by_key.contains_key("Observation/a/1"));
        assert_eq!(kept.bytes, 2);
    }

    #[test]
    fn a_version_larger_than_a_quarter_of_the_bound_is_not_kept() {
        let p = Recent::default();
        p.keep("Binary", "big", 1, json(&"x".repeat(MAX_BYTES / 4 + 1)));
        assert!(p.get("Binary", "big", 1).is_none());
    }

    #[test]
    fn index_rows_answer_only_for_the_parameters_kept() {
        let params: Arc<HashSet<String>> = Arc::new(["code".to_string()].into());
        let entry = RecentVersion {
            content: Arc::from("{}"),
            index: Some((params, IndexValues::default())),
        };
        let code: HashSet<String> = ["code".to_string()].into();
        let more: HashSet<String> = ["code".to_string(), "subject".to_string()].into();
        assert!(entry.index_of(&code).is_some());
        assert!(entry.index_of(&more).is_none(), "subject was not kept");
        assert!(
            json("{}").index_of(&HashSet::new()).is_none(),
            "no rows kept"
        );
    }

    #[test]
    fn watched_types_and_clearing() {
        let p = Recent::default();
        assert!(p.watched("Observation").is_none());
        let params = Arc::new(HashSet::from(["code".to_string()]));
        p.watch(Some(HashMap::from([("Observation".to_string(), params)])));
        assert!(p.watched("Observation").is_some_and(|c| c.contains("code")));
        assert!(p.watched("Patient").is_none());
        p.keep("Observation", "a", 1, json("{}"));
        p.clear();
        assert!(p.get("Observation", "a", 1).is_none());
        p.watch(None);
        assert!(p.watched("Observation").is_none());
    }
}
