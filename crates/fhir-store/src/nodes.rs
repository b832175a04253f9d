//! The server nodes sharing one database: each registers in `server_nodes`, beats
//! every [`BEAT`], and learns whether it is alone — which decides whether its read
//! cache ([`crate::cache`]) may answer without asking the database.
//!
//! The protocol, and why no node serves a version another node has replaced:
//! - A node trusts its cache for [`TRUST`] after a beat (measured from the beat's
//!   start) that found no other node's row. A node that joins while others are live
//!   waits [`JOIN_WAIT`] (> `TRUST`) before it writes, so every trusting node has
//!   noticed it by then.
//! - A beat deletes the rows of nodes silent for [`GONE_MS`]. Every write transaction
//!   first locks its own node's row (`FOR KEY SHARE` on PostgreSQL; SQLite runs one
//!   writer at a time), so a delete waits for the writes of the node it deletes; a
//!   node whose row is gone writes nothing (503) until it has joined again.
//!   A node that then trusts again drops its whole cache first.
//! - Nodes are told apart by a random id; their clocks are not compared (the
//!   database's clock stamps the beats).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;

use crate::backend::{BackendKind, Database, Tx};
use crate::error::{StoreError, StoreResult};
use crate::sql::{Bind, CountRow, Sql};

/// How often a node beats.
pub const BEAT: Duration = Duration::from_millis(500);
/// How long one beat that found a node alone lets it trust its cache.
pub const TRUST: Duration = Duration::from_millis(1500);
/// How long a node that finds others waits before it writes.
pub const JOIN_WAIT: Duration = Duration::from_millis(2000);
/// A node whose last beat is older than this is gone (database clock).
pub const GONE_MS: i64 = 10_000;

/// This process's membership, as the write path needs it.
#[derive(Default)]
pub(crate) struct Membership {
    inner: Mutex<Option<Member>>,
}

#[derive(Clone)]
struct Member {
    id: String,
    /// Writes wait until then after a join that found other nodes.
    writable_after: Instant,
}

/// The database's clock in milliseconds since the Unix epoch, as SQL.
fn now_ms(kind: BackendKind) -> &'static str {
    match kind {
        BackendKind::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        BackendKind::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
    }
}

impl Membership {
    fn member(&self) -> Option<Member> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn id(&self) -> Option<String> {
        self.member().map(|m| m.id)
    }

    fn set(&self, m: Option<Member>) {
        *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = m;
    }

    /// Before a write transaction begins (and takes SQLite's writer lock): waits out a
    /// fresh join of this node.
    pub(crate) fn wait_writable(&self) {
        let Some(me) = self.member() else { return };
        let wait = me.writable_after.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait.min(JOIN_WAIT));
        }
    }

    /// The first statement of every write transaction of a registered node: locks this
    /// node's row so that no other node can declare it gone while the write runs.
    /// Unregistered stores (tools, tests) skip it.
    pub(crate) fn fence(&self, tx: &mut Tx<'_>) -> StoreResult<()> {
        let Some(me) = self.member() else {
            return Ok(());
        };
        let lock = match tx.kind {
            BackendKind::Postgres => " FOR KEY SHARE",
            BackendKind::Sqlite => "",
        };
        let mut q = Sql::new("SELECT CAST(1 AS BIGINT) AS n FROM server_nodes WHERE node_id = ");
        q.prepared().bind(Bind::Text(me.id)).push(lock);
        if q.load::<CountRow>(tx.conn)?.is_empty() {
            return Err(StoreError::Unavailable(
                "this server node lost touch with the database for a while and is joining again"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// Registration of this process; leaves (deletes its row) when dropped.
pub struct NodeHandle {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    id: String,
    db: Weak<Database>,
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(db) = self.db.upgrade() {
            db.membership.set(None);
            db.cache.distrust();
            let mut q = Sql::new("DELETE FROM server_nodes WHERE node_id = ");
            q.bind(Bind::Text(self.id.clone()));
            if let Err(e) = db.write_unfenced(|tx| q.execute(tx.conn)) {
                tracing::warn!(error = %e, "could not remove this node from server_nodes");
            }
        }
    }
}

/// Registers this process as a node (`host`: for operators) and starts its beat.
/// Returns once the node may write: after [`JOIN_WAIT`] if other nodes are live.
pub fn join(db: &Arc<Database>, host: &str) -> StoreResult<NodeHandle> {
    let id = uuid::Uuid::new_v4().to_string();
    let others = register(db, &id, host)?;
    if others > 0 {
        tracing::info!(others, "other server nodes share this database");
        std::thread::sleep(JOIN_WAIT);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let (db, stop, id, host) = (
            Arc::downgrade(db),
            stop.clone(),
            id.clone(),
            host.to_string(),
        );
        std::thread::Builder::new()
            .name("fhir-node-beat".into())
            .spawn(move || beat_loop(&db, &stop, &id, &host))
            .map_err(|e| StoreError::Open(format!("cannot start the node beat: {e}")))?
    };
    Ok(NodeHandle {
        stop,
        thread: Some(thread),
        id,
        db: Arc::downgrade(db),
    })
}

/// Inserts this node's row; returns how many other nodes are live.
fn register(db: &Database, id: &str, host: &str) -> StoreResult<i64> {
    let now = now_ms(db.kind());
    let others = db.write_unfenced(|tx| {
        purge_gone(tx)?;
        let mut q =
            Sql::new("INSERT INTO server_nodes (node_id, host, started_ms, heartbeat_ms) VALUES (");
        q.bind(Bind::Text(id.into()))
            .push(", ")
            .bind(Bind::Text(host.into()))
            .push(&format!(", {now}, {now})"));
        q.execute(tx.conn)?;
        count_others(tx, id)
    })?;
    let writable_after = Instant::now()
        + if others > 0 {
            JOIN_WAIT
        } else {
            Duration::ZERO
        };
    db.membership.set(Some(Member {
        id: id.into(),
        writable_after,
    }));
    Ok(others)
}

fn purge_gone(tx: &mut Tx<'_>) -> StoreResult<()> {
    let now = now_ms(tx.kind);
    tx.conn.batch_execute(&format!(
        "DELETE FROM server_nodes WHERE heartbeat_ms < {now} - {GONE_MS}"
    ))?;
    Ok(())
}

fn count_others(tx: &mut Tx<'_>, id: &str) -> StoreResult<i64> {
    let mut q = Sql::new("SELECT COUNT(*) AS n FROM server_nodes WHERE node_id <> ");
    q.bind(Bind::Text(id.into()));
    Ok(q.load::<CountRow>(tx.conn)?.first().map_or(0, |r| r.n))
}

/// One beat: stamps this node's row, removes gone nodes, counts the others.
/// `None`: this node's row was gone (declared dead by another node).
fn beat(db: &Database, id: &str) -> StoreResult<Option<i64>> {
    let now = now_ms(db.kind());
    db.write_unfenced(|tx| {
        let mut q = Sql::new(&format!(
            "UPDATE server_nodes SET heartbeat_ms = {now} WHERE node_id = "
        ));
        q.bind(Bind::Text(id.into()));
        if q.execute(tx.conn)? == 0 {
            return Ok(None);
        }
        purge_gone(tx)?;
        Ok(Some(count_others(tx, id)?))
    })
}

fn beat_loop(db: &Weak<Database>, stop: &AtomicBool, id: &str, host: &str) {
    let mut failing = false;
    let mut vacuum = Vacuum::default();
    while !stop.load(Ordering::Acquire) {
        let Some(db) = db.upgrade() else { return };
        let started = Instant::now();
        vacuum.start_if_due(&db, started);
        match beat(&db, id) {
            Ok(Some(0)) => db.cache.trust_until(started + TRUST),
            Ok(Some(_)) => db.cache.distrust(),
            Ok(None) => {
                tracing::warn!("this node was declared gone by another node; joining again");
                db.cache.distrust();
                if let Err(e) = register(&db, id, host) {
                    tracing::warn!(error = %e, "could not join again");
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "node beat failed; reads ask the database meanwhile");
                }
                failing = true;
                db.cache.distrust();
                drop(db);
                std::thread::sleep(BEAT);
                continue;
            }
        }
        failing = false;
        drop(db);
        std::thread::sleep(BEAT.saturating_sub(started.elapsed()));
    }
}

/// The vacuum of the hot tables ([`crate::stats::vacuum_hot_tables`]), run every
/// [`crate::stats::HOT_TABLES_EVERY`] on a thread of its own so that it never delays a
/// beat; one at a time.
#[derive(Default)]
struct Vacuum {
    last: Option<Instant>,
    running: Option<std::thread::JoinHandle<()>>,
}

impl Vacuum {
    fn start_if_due(&mut self, db: &Arc<Database>, now: Instant) {
        let due = self
            .last
            .is_none_or(|last| now >= last + crate::stats::HOT_TABLES_EVERY);
        let busy = self.running.as_ref().is_some_and(|t| !t.is_finished());
        if !due || busy || db.kind() != BackendKind::Postgres {
            return;
        }
        self.last = Some(now);
        let db = db.clone();
        self.running = std::thread::Builder::new()
            .name("fhir-vacuum".into())
            .spawn(move || {
                if let Err(e) = db.vacuum_hot_tables() {
                    tracing::warn!(error = %e, "VACUUM of the node, change feed and subscription tables failed");
                }
            })
            .ok();
    }
}

/// The secret `name` that every node shares, made (random, 244 bits) by the first
/// node that asks for it.
pub fn shared_secret(db: &Database, name: &str) -> StoreResult<String> {
    let made = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    db.write_unfenced(|tx| {
        let mut insert = Sql::new("INSERT INTO server_secrets (name, value) VALUES (");
        insert
            .bind(Bind::Text(name.into()))
            .push(", ")
            .bind(Bind::Text(made))
            .push(") ON CONFLICT (name) DO NOTHING");
        insert.execute(tx.conn)?;
        let mut q = Sql::new("SELECT value AS s FROM server_secrets WHERE name = ");
        q.bind(Bind::Text(name.into()));
        q.load::<crate::sql::TextRow>(tx.conn)?
            .pop()
            .map(|r| r.s)
            .ok_or_else(|| StoreError::Corrupt(format!("secret {name} missing")))
    })
}
