//! The connection pool's parts: how connections are opened and set up, and how the
//! pool behaves while the database is down — requests are answered 503 at once instead
//! of waiting for a connection, dead connections are replaced rather than handed out
//! again, and the reason is logged once per outage rather than once per attempt.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{CustomizeConnection, PooledConnection, R2D2Connection};
use diesel::Connection;

use crate::backend::{AnyConnection, BackendKind};

pub type Conn = PooledConnection<Manager>;

/// A pooled connection and what the store knows of its server session.
pub struct Session {
    pub conn: AnyConnection,
    /// The PostgreSQL backend process serving this connection, to cancel its
    /// statement from another connection ([`crate::cancel`]).
    pub pg_pid: Option<i32>,
}

impl std::ops::Deref for Session {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for Session {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub max_connections: u32,
    /// How long a request waits for a connection before it is answered 503.
    pub connect_timeout: Duration,
    /// The longest a statement may run (PostgreSQL `statement_timeout`; SQLite
    /// statements stop at the request's deadline instead).
    pub statement_timeout: Option<Duration>,
    /// SQLite's page cache for the whole pool, in MiB (each connection has its own
    /// cache, so each gets its share). The operating system caches the file as well.
    pub sqlite_cache_mib: u32,
    /// How much of the SQLite database file its connections read through memory
    /// mapping, in MiB (`PRAGMA mmap_size`; 0: none). Mapped pages are read where the
    /// operating system caches them, shared by every connection, with no system call
    /// and no copy into the connection's own cache: a search whose checks touch pages
    /// all over a 5.5 GB database spent more time in the kernel reading them than in
    /// SQLite (`_has` with a frequent code at 1 M resources under 8 connections: 106
    /// requests/s; 168 with the first 2 GiB mapped, 417 with the whole file). The build
    /// raises SQLite's ceiling of 2 GiB (`.cargo/config.toml`).
    pub sqlite_mmap_mib: u64,
    /// The read cache of current versions, in MiB (0: off; [`crate::cache`]).
    pub read_cache_mib: u64,
    /// Connections kept open while idle (`None`: all of `max_connections`, opened
    /// at start). A tenant's pool keeps few, so that many tenants do not hold many
    /// idle PostgreSQL connections; connections above it close after a minute idle.
    pub min_idle: Option<u32>,
}

/// The default of [`PoolOptions::sqlite_mmap_mib`]: 64 GiB, address space only; the
/// operating system keeps in memory what is read and drops it under pressure.
pub const SQLITE_MMAP_MIB: u64 = 64 * 1024;

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_connections: 16,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Some(Duration::from_secs(30)),
            sqlite_cache_mib: 64,
            sqlite_mmap_mib: SQLITE_MMAP_MIB,
            read_cache_mib: 32,
            min_idle: None,
        }
    }
}

/// How long a request waits for a connection while the database is known to be down.
pub(crate) const DOWN_WAIT: Duration = Duration::from_millis(500);

/// How long after a failure connections are checked before use and on return.
const OUTAGE_WINDOW_MS: i64 = 60_000;

/// When the database last failed (a connection attempt, or a lost connection).
#[derive(Debug, Default)]
pub(crate) struct Outage {
    until_ms: AtomicI64,
}

impl Outage {
    pub fn noticed(&self) {
        self.until_ms.store(
            crate::time::now_millis() + OUTAGE_WINDOW_MS,
            Ordering::Relaxed,
        );
    }

    /// Whether a failure was seen recently.
    pub fn recent(&self) -> bool {
        crate::time::now_millis() < self.until_ms.load(Ordering::Relaxed)
    }
}

/// Opens connections of the one configured backend. (diesel's `MultiConnection` tries
/// every backend in turn and reports any failure as "Invalid connection url for
/// multiconnection", hiding the real reason, e.g. "connection refused"; it would even
/// try to open a PostgreSQL URL as a SQLite file.)
#[derive(Debug)]
pub struct Manager {
    pub(crate) url: String,
    pub(crate) kind: BackendKind,
    pub(crate) outage: Arc<Outage>,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Session;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Session, Self::Error> {
        match self.kind {
            BackendKind::Postgres => {
                let mut conn = diesel::PgConnection::establish(&self.url)
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                let pid = crate::cancel::backend_pid(&mut conn)
                    .map_err(diesel::r2d2::Error::QueryError)?;
                Ok(Session {
                    conn: AnyConnection::Postgresql(conn),
                    pg_pid: Some(pid),
                })
            }
            BackendKind::Sqlite => diesel::SqliteConnection::establish(&self.url)
                .map(|c| Session {
                    conn: AnyConnection::Sqlite(c),
                    pg_pid: None,
                })
                .map_err(diesel::r2d2::Error::ConnectionError),
        }
    }

    fn is_valid(&self, conn: &mut Session) -> Result<(), Self::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(diesel::r2d2::Error::QueryError)
    }

    /// Checked when a connection goes back to the pool. Shortly after an outage a
    /// connection may be dead without knowing it: one round trip tells.
    fn has_broken(&self, conn: &mut Session) -> bool {
        std::thread::panicking()
            || conn.is_broken()
            || (self.outage.recent() && conn.batch_execute("SELECT 1").is_err())
    }
}

/// Logs pool errors (failed connection attempts) once per outage, instead of once per
/// attempt (a restart gives "shutting down", then "connection refused", and so on),
/// and marks the outage.
#[derive(Debug, Default)]
pub(crate) struct PoolErrors {
    last: Mutex<Option<std::time::Instant>>,
    outage: Arc<Outage>,
}

impl PoolErrors {
    pub fn new(outage: Arc<Outage>) -> PoolErrors {
        PoolErrors {
            last: Mutex::default(),
            outage,
        }
    }
}

impl r2d2::HandleError<diesel::r2d2::Error> for PoolErrors {
    fn handle_error(&self, error: diesel::r2d2::Error) {
        self.outage.noticed();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let repeat = last.is_some_and(|at| at.elapsed() < Duration::from_secs(60));
        if !repeat {
            tracing::error!(error = %error.to_string().trim(), "cannot connect to the database");
            *last = Some(std::time::Instant::now());
        }
    }
}

/// Session settings of every new connection.
#[derive(Debug)]
pub(crate) struct SessionSettings {
    pub statement_timeout: Option<Duration>,
    /// SQLite `cache_size` of each connection, in KiB.
    pub sqlite_cache_kib: u32,
    /// SQLite `mmap_size`, in bytes ([`PoolOptions::sqlite_mmap_mib`]).
    pub sqlite_mmap_bytes: u64,
}

/// Pages a SQLite transaction may change before they are spilled to the log before its
/// commit (64 MiB of 4 KiB pages). The page cache is shared out among the pool's
/// connections (4 MiB each by default), and a batch of a bulk load changes more pages
/// than that: spilling them mid-transaction wrote many pages twice (`pagerStress`: 5 % of
/// the writer). SQLite writes one transaction at a time, so one connection at a time
/// holds such a set; after the commit its cache shrinks back to its share.
const WRITE_SET_PAGES: u32 = 16_384;

impl CustomizeConnection<Session, diesel::r2d2::Error> for SessionSettings {
    fn on_acquire(&self, conn: &mut Session) -> Result<(), diesel::r2d2::Error> {
        if let AnyConnection::Postgresql(c) = &mut **conn {
            // Requests run side by side, each wanting its page in milliseconds: parallel
            // workers cost more to start than such a statement takes (a walked page:
            // 15 ms with them, 9.5 ms without) and only contend under load.
            c.batch_execute("SET max_parallel_workers_per_gather = 0")
                .map_err(diesel::r2d2::Error::QueryError)?;
            if let Some(t) = self.statement_timeout {
                c.batch_execute(&format!("SET statement_timeout = {}", t.as_millis().max(1)))
                    .map_err(diesel::r2d2::Error::QueryError)?;
            }
        }
        if let AnyConnection::Sqlite(c) = &mut **conn {
            // busy_timeout first: the pool opens connections in parallel, and switching a
            // new database to WAL needs a moment of exclusive access. `optimize` refreshes
            // missing or stale planner statistics; `analysis_limit` makes it sample each
            // index instead of reading it whole (a full ANALYZE of a 232k-resource database
            // outlasted the pool's connect timeout, and the server did not start). No
            // automatic checkpoints: `checkpoint.rs` runs them beside the writer.
            c.batch_execute(&format!(
                "PRAGMA busy_timeout = 30000; PRAGMA journal_mode = WAL; \
                 PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -{}; PRAGMA cache_spill = {}; \
                 PRAGMA temp_store = MEMORY; PRAGMA journal_size_limit = 67108864; \
                 PRAGMA analysis_limit = 1000; PRAGMA optimize = 0x10002; PRAGMA wal_autocheckpoint = 0; PRAGMA mmap_size = {};",
                self.sqlite_cache_kib,
                WRITE_SET_PAGES,
                self.sqlite_mmap_bytes
            ))
            .map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}
