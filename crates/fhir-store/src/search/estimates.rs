//! PostgreSQL's planner estimates of searches' matches, kept for a while: the estimate
//! behind a total above the exact-count threshold ([`super::total`]) is an `EXPLAIN`
//! of the whole search, and planning it cost as much database CPU as finding the page
//! (1.0–1.4 ms of a frequent token search's 3.5 ms at 1 million resources). The
//! planner's answer changes only as its statistics do (an `ANALYZE`) and, slowly, as
//! the tables grow, so an estimate is kept for [`KEEP_FOR`] and dropped as soon as
//! this node refreshes the statistics ([`crate::stats`]); another node's `ANALYZE` is
//! seen within [`KEEP_FOR`]. Exact counts of matches are never kept: only the estimate
//! of a search known to have more matches than the threshold. The number of resources
//! of a type, which only weighs plans ([`super::frequent`]), is kept alike, and so are
//! the plan decisions of chains and `_has` ([`super::plan::kept_decision`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an estimate is used before it is asked for again.
pub(crate) const KEEP_FOR: Duration = Duration::from_secs(60);

/// The most estimates kept: beyond, the outdated ones are dropped, then all of them
/// (distinct frequent searches within a minute are few; a flood of distinct ones must
/// not grow the map).
const MOST: usize = 4096;

/// Estimates keyed by the statement that asks for them (text and binds).
#[derive(Debug, Default)]
pub struct Estimates {
    kept: Mutex<HashMap<String, Kept>>,
    /// Bumped whenever this node's statistics change: older estimates are stale.
    generation: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct Kept {
    rows: Option<i64>,
    at: Instant,
    generation: u64,
}

impl Estimates {
    /// The estimate kept for `key`, else `ask()`'s, which is then kept.
    pub(crate) fn get_or<E>(
        &self,
        key: String,
        ask: impl FnOnce() -> Result<Option<i64>, E>,
    ) -> Result<Option<i64>, E> {
        let now = Instant::now();
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(k) = self.lock().get(&key) {
            if k.generation == generation && now.duration_since(k.at) < KEEP_FOR {
                return Ok(k.rows);
            }
        }
        let rows = ask()?;
        let mut kept = self.lock();
        if kept.len() >= MOST {
            kept.retain(|_, k| k.generation == generation && now.duration_since(k.at) < KEEP_FOR);
            if kept.len() >= MOST {
                kept.clear();
            }
        }
        kept.insert(
            key,
            Kept {
                rows,
                at: now,
                generation,
            },
        );
        Ok(rows)
    }

    /// The planner statistics changed: estimates asked for before are not used again.
    pub(crate) fn statistics_changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Kept>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(n: i64, asked: &mut u32) -> Result<Option<i64>, ()> {
        *asked += 1;
        Ok(Some(n))
    }

    #[test]
    fn an_estimate_is_asked_once_until_the_statistics_change() {
        let e = Estimates::default();
        let mut asked = 0;
        assert_eq!(e.get_or("a".into(), || ask(5, &mut asked)), Ok(Some(5)));
        assert_eq!(e.get_or("a".into(), || ask(6, &mut asked)), Ok(Some(5)));
        assert_eq!(e.get_or("b".into(), || ask(7, &mut asked)), Ok(Some(7)));
        assert_eq!(asked, 2);
        e.statistics_changed();
        assert_eq!(e.get_or("a".into(), || ask(8, &mut asked)), Ok(Some(8)));
        assert_eq!(asked, 3);
    }

    #[test]
    fn a_failed_ask_is_not_kept_and_the_map_stays_bounded() {
        let e = Estimates::default();
        assert_eq!(
            e.get_or("a".into(), || Err::<Option<i64>, _>("down")),
            Err("down")
        );
        let mut asked = 0;
        assert_eq!(e.get_or("a".into(), || ask(1, &mut asked)), Ok(Some(1)));
        for i in 0..MOST + 10 {
            e.get_or(format!("k{i}"), || ask(1, &mut asked)).unwrap();
        }
        assert!(e.lock().len() <= MOST);
    }
}
