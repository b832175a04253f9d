//! Keeps PostgreSQL's planner statistics current as the tables grow, whether or not
//! autovacuum runs (it may be off, or behind under a bulk load). Stale statistics
//! made the planner take a table of 5 million index rows for an empty one: a `_has`
//! search took over 10 s instead of 50 ms, a sort over names 1.3 s. After a commit that
//! brings the versions written since the last `ANALYZE` to a fifth of the table (at
//! least 10,000), one `ANALYZE` of the resource and index tables runs on a thread of its
//! own; it takes no lock that writes or reads wait for. When autovacuum is off it is a
//! `VACUUM (ANALYZE)`: without vacuuming, PostgreSQL's visibility map stays empty and
//! every index-only count (`_total=accurate`) reads the table rows too. SQLite's
//! counterpart is the `PRAGMA optimize` of [`crate::backend::Database::write`].
//!
//! Under a long bulk load a fifth of the table is written every few seconds, and each
//! `ANALYZE` (1–2 s of a core: it samples every table and builds extended statistics)
//! took a sixth of PostgreSQL's CPU. So one starts no sooner after the last than
//! [`PAUSE_FACTOR`] times that one's duration: the keeper uses at most a tenth of one
//! core, and statistics lag a load by seconds, not by the table's size. A due `ANALYZE`
//! waits for its turn and then runs, even if no more writes come.
//!
//! With autovacuum off, [`vacuum_hot_tables`] also vacuums, every
//! [`HOT_TABLES_EVERY`], the tables that writes and beats change over and over while
//! they stay small: the node rows, the change feed, the subscription counters and
//! events. Without it their dead row versions pile up: each write's lock on its node
//! row walked a chain of up to a page of versions, and the dispatcher's reads of the
//! change feed scanned tens of thousands of dead rows (2.3 ms where 0.15 ms would do).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::r2d2::Pool;

use crate::pool::Manager;
use crate::search::estimates::Estimates;
use crate::sql::{CountRow, Sql};

/// Versions written before the first `ANALYZE`, and the least between two.
const FLOOR: u64 = 10_000;

/// The least time between two `ANALYZE`s, as a multiple of the last one's duration.
const PAUSE_FACTOR: u32 = 9;

const TABLES: &str = "resources, resource_versions, idx_string, idx_token, idx_date, \
    idx_number, idx_quantity, idx_reference, idx_uri, idx_composite";

/// When the next `ANALYZE` is due.
#[derive(Debug)]
pub(crate) struct StatsKeeper {
    since: AtomicU64,
    due: AtomicU64,
    running: AtomicBool,
    /// No `ANALYZE` starts before this.
    not_before: Mutex<Instant>,
}

impl Default for StatsKeeper {
    fn default() -> Self {
        StatsKeeper {
            since: AtomicU64::new(0),
            due: AtomicU64::new(FLOOR),
            running: AtomicBool::new(false),
            not_before: Mutex::new(Instant::now()),
        }
    }
}

impl StatsKeeper {
    /// Counts `n` versions committed; `true` when an `ANALYZE` should start now (and
    /// none is running).
    fn wrote(&self, n: u64) -> bool {
        let since = self.since.fetch_add(n, Ordering::Relaxed) + n;
        since >= self.due.load(Ordering::Relaxed) && !self.running.swap(true, Ordering::AcqRel)
    }

    /// How long the `ANALYZE` that is due waits for its turn.
    fn wait(&self, now: Instant) -> Duration {
        let not_before = *self.not_before.lock().unwrap_or_else(|e| e.into_inner());
        not_before.saturating_duration_since(now)
    }

    /// Starts the `ANALYZE`: the versions counted so far are the ones it sees.
    fn starting(&self) {
        self.since.store(0, Ordering::Relaxed);
    }

    /// Records an `ANALYZE` that ended at `now` after `took`, with the table's size.
    fn analyzed(&self, versions: u64, took: Duration, now: Instant) {
        self.due.store((versions / 5).max(FLOOR), Ordering::Relaxed);
        *self.not_before.lock().unwrap_or_else(|e| e.into_inner()) = now + took * PAUSE_FACTOR;
        self.running.store(false, Ordering::Release);
    }
}

/// After a PostgreSQL commit of `n` versions: starts an `ANALYZE` when one is due;
/// the `estimates` of the statistics it replaces are dropped once it ends.
pub(crate) fn after_commit(
    keeper: &Arc<StatsKeeper>,
    estimates: &Arc<Estimates>,
    pool: &Pool<Manager>,
    statement_timeout: Option<std::time::Duration>,
    n: u64,
) {
    if !keeper.wrote(n) {
        return;
    }
    let (thread_keeper, pool, estimates) = (keeper.clone(), pool.clone(), estimates.clone());
    let spawned = std::thread::Builder::new()
        .name("fhir-analyze".into())
        .spawn(move || {
            let keeper = thread_keeper;
            std::thread::sleep(keeper.wait(Instant::now()));
            keeper.starting();
            let started = Instant::now();
            let versions = pool
                .get()
                .map_err(|e| e.to_string())
                .and_then(|mut conn| {
                    refresh(&mut conn, statement_timeout).map_err(|e| e.to_string())?;
                    let q = Sql::new(
                        "SELECT CAST(reltuples AS BIGINT) AS n FROM pg_class WHERE oid = to_regclass('resource_versions')",
                    );
                    let rows = q.load::<CountRow>(&mut conn).map_err(|e| e.to_string())?;
                    Ok(rows.first().map_or(0, |r| r.n.max(0) as u64))
                });
            match versions {
                Ok(v) => {
                    estimates.statistics_changed();
                    tracing::info!(versions = v, ms = started.elapsed().as_millis() as u64, "planner statistics refreshed");
                    keeper.analyzed(v, started.elapsed(), Instant::now());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "ANALYZE failed; tried again after more writes");
                    keeper.analyzed(0, started.elapsed(), Instant::now());
                }
            }
        });
    if spawned.is_err() {
        keeper.analyzed(0, Duration::ZERO, Instant::now());
    }
}

/// `VACUUM (ANALYZE)` when autovacuum is off, else `ANALYZE`, without a time limit;
/// the pooled session's limit is put back after.
fn refresh(
    conn: &mut crate::backend::AnyConnection,
    statement_timeout: Option<std::time::Duration>,
) -> diesel::QueryResult<()> {
    let command = match autovacuum_is_off(conn)? {
        true => "VACUUM (ANALYZE)",
        false => "ANALYZE",
    };
    untimed(conn, statement_timeout, &format!("{command} {TABLES}"))
}

/// How often [`vacuum_hot_tables`] runs.
pub(crate) const HOT_TABLES_EVERY: Duration = Duration::from_secs(10);

const HOT_TABLES: &str = "server_nodes, change_outbox, subscription_counters, subscription_events";

/// With autovacuum off, `VACUUM` of the small tables that are changed over and over
/// (module docs); nothing when autovacuum runs. A few milliseconds each time: the
/// visibility map lets it skip the pages nothing changed since.
pub(crate) fn vacuum_hot_tables(
    pool: &Pool<Manager>,
    statement_timeout: Option<std::time::Duration>,
) -> Result<(), String> {
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    let run = |conn: &mut crate::backend::AnyConnection| {
        if !autovacuum_is_off(conn)? {
            return Ok(());
        }
        untimed(conn, statement_timeout, &format!("VACUUM {HOT_TABLES}"))
    };
    run(&mut conn).map_err(|e| e.to_string())
}

fn autovacuum_is_off(conn: &mut crate::backend::AnyConnection) -> diesel::QueryResult<bool> {
    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        autovacuum: String,
    }
    use diesel::RunQueryDsl;
    let autovacuum: Vec<Setting> = diesel::sql_query("SHOW autovacuum").load(conn)?;
    Ok(autovacuum.first().is_some_and(|s| s.autovacuum == "off"))
}

/// Runs `command` without the session's statement time limit, then puts it back.
fn untimed(
    conn: &mut crate::backend::AnyConnection,
    statement_timeout: Option<std::time::Duration>,
    command: &str,
) -> diesel::QueryResult<()> {
    conn.batch_execute("SET statement_timeout = 0")?;
    let done = conn.batch_execute(command);
    let ms = statement_timeout.map_or(0, |t| t.as_millis().max(1));
    conn.batch_execute(&format!("SET statement_timeout = {ms}"))?;
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analyze_is_due_after_a_fifth_of_the_table() {
        let k = StatsKeeper::default();
        let now = Instant::now();
        assert!(!k.wrote(FLOOR - 1));
        assert!(k.wrote(1));
        assert_eq!(k.wait(now), Duration::ZERO, "the first runs at once");
        k.starting();
        assert!(!k.wrote(FLOOR), "one at a time");
        k.analyzed(1_000_000, Duration::ZERO, now);
        assert!(!k.wrote(189_999), "the writes during the last one count");
        assert!(k.wrote(1));
        k.starting();
        k.analyzed(0, Duration::ZERO, now);
        assert!(!k.wrote(FLOOR - 1));
    }

    #[test]
    fn the_next_waits_nine_times_the_last_ones_duration() {
        let k = StatsKeeper::default();
        let now = Instant::now();
        k.analyzed(0, Duration::from_secs(2), now);
        assert_eq!(k.wait(now), Duration::from_secs(18));
        assert_eq!(k.wait(now + Duration::from_secs(20)), Duration::ZERO);
    }
}
