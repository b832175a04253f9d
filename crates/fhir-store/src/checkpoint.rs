//! SQLite's write-ahead log copied back into the database beside the writer, not by it.
//!
//! Left to itself, SQLite checkpoints in the committing thread whenever the log passes
//! 1,000 pages: the writer — the one thread that writes at all — then also copies pages
//! and waits for `fsync` (a bulk load spent 7 % of its writer's CPU there, and more of
//! its wall time). Connections are opened with `wal_autocheckpoint = 0` instead, and
//! after a commit, at most every [`EVERY`], a thread of its own runs a `PASSIVE`
//! checkpoint on a pooled connection: it waits for no reader or writer, writers go on
//! appending to the log meanwhile, and the next write transaction starts the log over
//! once a checkpoint got through all of it. The frames of the last [`EVERY`] of writes
//! wait for the next commit's checkpoint (or the close of the last connection);
//! readers find them in the log meanwhile. Under a steady stream of writes the log
//! never starts over that way (the writer always has frames the checkpoint has not
//! reached): [`crate::backend::Database::bound_wal`] empties it past 64 MiB, with
//! little left to copy. (A `TRUNCATE` checkpoint from this thread instead waited for a
//! gap between write transactions that never came: the log grew to 180 MB.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::r2d2::Pool;

use crate::pool::Manager;

/// The longest time between checkpoints while there are writes. Less often copies each
/// hot page fewer times: a bulk load ran 6 % faster than with 500 ms, 10 % faster than
/// with 100 ms (docs/benchmarks.md).
pub(crate) const EVERY: Duration = Duration::from_secs(2);

/// Whether a checkpoint runs, and when the last one started.
#[derive(Default)]
pub(crate) struct Checkpointer {
    running: AtomicBool,
    last: Mutex<Option<Instant>>,
}

impl Checkpointer {
    /// Claims the next checkpoint if none runs and the last started [`EVERY`] ago.
    fn claim(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < EVERY) || self.running.swap(true, Ordering::AcqRel) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }
}

/// After a SQLite commit: starts a checkpoint when one is due.
pub(crate) fn after_commit(checkpointer: &Arc<Checkpointer>, pool: &Pool<Manager>) {
    if !checkpointer.claim() {
        return;
    }
    let (thread_checkpointer, pool) = (checkpointer.clone(), pool.clone());
    let spawned = std::thread::Builder::new()
        .name("fhir-checkpoint".into())
        .spawn(move || {
            let result = pool.get().map_err(|e| e.to_string()).and_then(|mut conn| {
                conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE)")
                    .map_err(|e| e.to_string())
            });
            if let Err(e) = result {
                tracing::warn!(error = %e, "SQLite WAL checkpoint failed; tried again after the next commit");
            }
            thread_checkpointer.running.store(false, Ordering::Release);
        });
    if spawned.is_err() {
        checkpointer.running.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NoIndex, PoolOptions, Store};

    /// With SQLite's own checkpoints off, the database file grows only if this module's
    /// thread copies the log back.
    #[test]
    fn commits_reach_the_database_file_beside_the_writer() {
        let dir =
            std::env::temp_dir().join(format!("fhir-store-checkpoint-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let url = format!("sqlite://{}/db", dir.display());
        let store = Store::open(&url, &PoolOptions::default(), Arc::new(NoIndex)).expect("open");
        let file = || std::fs::metadata(dir.join("db")).map_or(0, |m| m.len());
        let before = file();
        let text = "x".repeat(4000);
        let write = |i: usize| {
            let r = serde_json::json!({"resourceType": "Basic", "id": format!("b{i}"), "x": text});
            store
                .update("Basic", &format!("b{i}"), r, Default::default())
                .expect("write");
        };
        for i in 0..300 {
            write(i);
        }
        std::thread::sleep(EVERY + Duration::from_millis(50));
        write(300);
        let deadline = Instant::now() + Duration::from_secs(10);
        while file() < before + 300 * 4000 {
            assert!(
                Instant::now() < deadline,
                "still {} bytes (from {before})",
                file()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn one_checkpoint_at_a_time_and_not_too_often() {
        let c = Checkpointer::default();
        assert!(c.claim(), "the first is due");
        assert!(!c.claim(), "one runs");
        c.running.store(false, Ordering::Release);
        assert!(!c.claim(), "the last started less than EVERY ago");
        *c.last.lock().unwrap() = Some(Instant::now() - EVERY);
        assert!(c.claim(), "due again");
    }
}
