//! The two database backends behind one connection type, the pool (parts in
//! `pool.rs`), migrations, and the write transaction that both backends run the same
//! way.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::Pool;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::error::{StoreError, StoreResult};

/// One connection to either backend. SQL is written once, with `$1…` placeholders,
/// which PostgreSQL and SQLite both accept.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgresql(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

use crate::cancel::Canceller;
pub use crate::pool::{Conn, PoolOptions};
use crate::pool::{Manager, Outage, PoolErrors, SessionSettings, DOWN_WAIT};

/// A connection checked out for one request. On PostgreSQL its statements are
/// cancelled when the request is abandoned ([`crate::cancel`]); the canceller is
/// disarmed before the connection returns to the pool (fields drop in order).
pub struct Checkout {
    _cancel: Option<Canceller>,
    conn: Conn,
}

impl std::ops::Deref for Checkout {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for Checkout {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }
}

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// The size past which the SQLite write-ahead log is checkpointed and truncated.
const WAL_LIMIT: u64 = 64 * 1024 * 1024;

/// Which database the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Sqlite,
    Postgres,
}

/// The connection pool and what the store needs to know about its backend.
pub struct Database {
    pool: Pool<Manager>,
    kind: BackendKind,
    /// Recent failures of the database: while there are some, a request waits at
    /// most [`DOWN_WAIT`] for a connection (clients hear 503 at once while it is
    /// down) and connections are checked before use.
    outage: Arc<Outage>,
    statement_timeout: Option<Duration>,
    /// PostgreSQL: the URL a cancel request connects with ([`crate::cancel`]).
    cancel_url: Option<Arc<str>>,
    /// The SQLite write-ahead log file, to keep it bounded ([`Database::bound_wal`]).
    wal: Option<std::path::PathBuf>,
    /// SQLite allows one writer at a time: writers queue here instead of spinning on
    /// `SQLITE_BUSY`. PostgreSQL writers lock rows instead.
    sqlite_writer: Option<Mutex<()>>,
    /// Versions written, to refresh SQLite's planner statistics now and then.
    writes: std::sync::atomic::AtomicU64,
    /// Current versions of hot resources ([`crate::cache`]).
    pub(crate) cache: crate::cache::ReadCache,
    /// Versions just written or read, for subscriptions ([`crate::recent`]).
    pub(crate) recent: crate::recent::Recent,
    /// Wakes the subscription dispatcher when changes commit ([`crate::changes`]).
    pub(crate) committed: crate::changes::Committed,
    /// This process as a node among those sharing the database ([`crate::nodes`]).
    pub(crate) membership: crate::nodes::Membership,
    /// PostgreSQL: when the planner statistics are next refreshed ([`crate::stats`]).
    stats: Arc<crate::stats::StatsKeeper>,
    /// PostgreSQL: planner estimates of searches' matches ([`crate::search::estimates`]).
    estimates: Arc<crate::search::estimates::Estimates>,
    /// SQLite: the write-ahead log's checkpoints, off the writer ([`crate::checkpoint`]).
    checkpointer: Arc<crate::checkpoint::Checkpointer>,
}

impl Database {
    /// PostgreSQL with autovacuum off: vacuums the small tables that are changed over
    /// and over ([`crate::stats::vacuum_hot_tables`]); nothing on SQLite.
    pub(crate) fn vacuum_hot_tables(&self) -> Result<(), String> {
        match self.kind {
            BackendKind::Postgres => {
                crate::stats::vacuum_hot_tables(&self.pool, self.statement_timeout)
            }
            BackendKind::Sqlite => Ok(()),
        }
    }

    /// Opens `sqlite://PATH` (file and folder created if missing) or `postgres://…`,
    /// and applies the embedded migrations.
    pub fn open(url: &str, options: &PoolOptions) -> StoreResult<Database> {
        let mut wal = None;
        let (kind, conn_url) = if let Some(path) = url.strip_prefix("sqlite://") {
            if path != ":memory:" {
                if let Some(dir) = Path::new(path)
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| StoreError::Open(format!("{}: {e}", dir.display())))?;
                }
            }
            wal = (path != ":memory:").then(|| std::path::PathBuf::from(format!("{path}-wal")));
            (BackendKind::Sqlite, format!("sqlite://{path}"))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (BackendKind::Postgres, url.to_string())
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        if kind == BackendKind::Sqlite {
            crate::deadline::install_sqlite_handler();
        }
        let outage = Arc::new(Outage::default());
        let cancel_url = (kind == BackendKind::Postgres).then(|| Arc::from(conn_url.as_str()));
        let manager = Manager {
            url: conn_url,
            kind,
            outage: outage.clone(),
        };
        let pool = Pool::builder()
            .max_size(options.max_connections.max(1))
            .min_idle(options.min_idle)
            .idle_timeout(
                options
                    .min_idle
                    .map(|_| Duration::from_secs(60))
                    .or(Some(Duration::from_secs(600))),
            )
            .connection_timeout(options.connect_timeout)
            .error_handler(Box::new(PoolErrors::new(outage.clone())))
            // A broken connection fails its query and is replaced; checking every
            // checkout with an extra round trip costs more than it saves.
            .test_on_check_out(false)
            .connection_customizer(Box::new(SessionSettings {
                statement_timeout: options.statement_timeout,
                sqlite_cache_kib: (options.sqlite_cache_mib.saturating_mul(1024)
                    / options.max_connections.max(1))
                .max(1024),
                sqlite_mmap_bytes: options.sqlite_mmap_mib.saturating_mul(1024 * 1024),
            }))
            .build(manager)
            .map_err(|e| StoreError::Open(e.to_string()))?;
        let db = Database {
            pool,
            kind,
            outage,
            statement_timeout: options.statement_timeout,
            cancel_url,
            wal,
            sqlite_writer: (kind == BackendKind::Sqlite).then(|| Mutex::new(())),
            writes: std::sync::atomic::AtomicU64::new(0),
            cache: crate::cache::ReadCache::new(options.read_cache_mib.saturating_mul(1 << 20)),
            recent: Default::default(),
            committed: Default::default(),
            membership: Default::default(),
            stats: Default::default(),
            estimates: Default::default(),
            checkpointer: Default::default(),
        };
        db.migrate()?;
        Ok(db)
    }

    fn migrate(&self) -> StoreResult<()> {
        let mut conn = self.conn()?;
        let result = match &mut *conn {
            AnyConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|_| ()),
            AnyConnection::Postgresql(c) => {
                // Two nodes starting together must not migrate at the same time, and
                // a migration may take longer than a request may.
                c.batch_execute("SET statement_timeout = 0; SELECT pg_advisory_lock(7243001)")?;
                let r = c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|_| ());
                c.batch_execute(&format!(
                    "SELECT pg_advisory_unlock(7243001); SET statement_timeout = {}",
                    self.statement_timeout.map_or(0, |t| t.as_millis().max(1))
                ))?;
                r
            }
        };
        result.map_err(|e| StoreError::Migration(e.to_string()))
    }

    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// The connection pool now ([`crate::observe`]).
    pub fn pool_state(&self) -> crate::observe::PoolState {
        let state = self.pool.state();
        crate::observe::PoolState {
            max: self.pool.max_size(),
            open: state.connections,
            idle: state.idle_connections,
        }
    }

    /// A pooled connection (blocking: call off the async executor), whose statements
    /// stop when the request running on this thread is abandoned.
    pub fn conn(&self) -> StoreResult<Checkout> {
        let conn = self.pooled()?;
        let cancel = match (&self.cancel_url, conn.pg_pid) {
            (Some(url), Some(pid)) => Canceller::watch(url, pid),
            _ => None,
        };
        Ok(Checkout {
            _cancel: cancel,
            conn,
        })
    }

    fn pooled(&self) -> StoreResult<Conn> {
        if !self.outage.recent() {
            let asked = std::time::Instant::now();
            let conn = self
                .pool
                .get()
                .map_err(|e| self.failed(StoreError::Unavailable(e.to_string())));
            metrics::histogram!("fhir_db_pool_wait_seconds").record(asked.elapsed());
            return conn;
        }
        // After a failure: connections made before it may be dead; a checked one, or
        // a new one, or 503 without a long wait.
        for _ in 0..=self.pool.state().connections {
            let mut conn = self
                .pool
                .get_timeout(DOWN_WAIT)
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            if conn.batch_execute("SELECT 1").is_ok() {
                return Ok(conn);
            }
            // Dropped here: the pool sees it broken and replaces it.
        }
        Err(StoreError::Unavailable(
            "no live database connection".into(),
        ))
    }

    /// Notes an error that says the database is unreachable (see [`Outage`]).
    fn failed(&self, e: StoreError) -> StoreError {
        if matches!(e, StoreError::Unavailable(_)) {
            self.outage.noticed();
        }
        e
    }

    /// Runs `f` in a write transaction: `BEGIN IMMEDIATE` on SQLite (behind the writer
    /// queue), `BEGIN` on PostgreSQL. Commits on `Ok`, rolls back on `Err`: nothing of
    /// a failed request stays behind.
    pub fn write<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> StoreResult<T>) -> StoreResult<T> {
        self.write_inner(true, f).map_err(|e| self.failed(e))
    }

    /// A write transaction without the node fence ([`crate::nodes`]): for the nodes'
    /// own bookkeeping, which writes no resources.
    pub(crate) fn write_unfenced<T>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.write_inner(false, f).map_err(|e| self.failed(e))
    }

    fn write_inner<T>(
        &self,
        fenced: bool,
        f: impl FnOnce(&mut Tx<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        if fenced {
            self.membership.wait_writable();
        }
        let _writer: Option<MutexGuard<'_, ()>> = self.sqlite_writer.as_ref().map(|m| {
            let queued = std::time::Instant::now();
            let guard = m.lock().unwrap_or_else(|p| p.into_inner());
            metrics::histogram!("fhir_db_write_lock_wait_seconds").record(queued.elapsed());
            guard
        });
        let mut conn = self.conn()?;
        let begin = match self.kind {
            BackendKind::Sqlite => "BEGIN IMMEDIATE",
            BackendKind::Postgres => "BEGIN",
        };
        conn.batch_execute(begin)?;
        let mut tx = Tx {
            conn: &mut conn,
            kind: self.kind,
            written: Vec::new(),
            estimates: &self.estimates,
        };
        let fence = if fenced {
            self.membership.fence(&mut tx)
        } else {
            Ok(())
        };
        // Work that ran past the request's deadline (or whose client left) is not
        // committed: the client has been told it failed.
        let result = fence.and_then(|()| f(&mut tx)).and_then(|v| {
            if fhir_model::budget::expired() {
                Err(StoreError::Timeout)
            } else {
                Ok(v)
            }
        });
        let written = std::mem::take(&mut tx.written);
        match result {
            Ok(v) => {
                if let Err(e) = conn.batch_execute("COMMIT") {
                    let _ = conn.batch_execute("ROLLBACK");
                    return Err(e.into());
                }
                self.cache
                    .written(written.iter().map(|(t, i)| (t.as_str(), i.as_str())));
                if self.kind == BackendKind::Postgres && !written.is_empty() {
                    crate::stats::after_commit(
                        &self.stats,
                        &self.estimates,
                        &self.pool,
                        self.statement_timeout,
                        written.len() as u64,
                    );
                }
                let written = (written.len() as u64).max(1);
                let before = self
                    .writes
                    .fetch_add(written, std::sync::atomic::Ordering::Relaxed);
                if self.kind == BackendKind::Sqlite && (before + written) / 2000 != before / 2000 {
                    // Statistics for the query planner as tables grow (on PostgreSQL:
                    // `stats.rs`): every 2,000 versions written.
                    // Usually quick; failure is harmless.
                    let _ = conn.batch_execute("PRAGMA optimize");
                }
                self.bound_wal(&mut conn);
                if self.wal.is_some() {
                    crate::checkpoint::after_commit(&self.checkpointer, &self.pool);
                }
                Ok(v)
            }
            Err(e) => {
                conn.batch_execute("ROLLBACK")?;
                Err(e)
            }
        }
    }

    /// Keeps SQLite's write-ahead log bounded. The log starts over only when no reader
    /// is using it, so under constant reads it grows without end ("checkpoint
    /// starvation": 830 MB after two minutes of the soak test, and every read slower for
    /// it). Past [`WAL_LIMIT`] the writer, still first in the writer queue, copies the log
    /// back and truncates it: `TRUNCATE` waits only for the readers that started before
    /// the copy, which are short. A checkpoint that cannot finish is tried again at the
    /// next commit.
    fn bound_wal(&self, conn: &mut AnyConnection) {
        let Some(wal) = &self.wal else { return };
        if std::fs::metadata(wal).map_or(0, |m| m.len()) <= WAL_LIMIT {
            return;
        }
        if let Err(e) = conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE)") {
            tracing::warn!(error = %e, "SQLite WAL checkpoint failed");
        }
    }

    /// Runs `f` on a connection for reading (a snapshot per statement).
    pub fn read<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> StoreResult<T>) -> StoreResult<T> {
        let mut conn = self.conn()?;
        let mut tx = Tx {
            conn: &mut conn,
            kind: self.kind,
            written: Vec::new(),
            estimates: &self.estimates,
        };
        f(&mut tx).map_err(|e| self.failed(e))
    }
}

/// A connection inside [`Database::write`] or [`Database::read`].
pub struct Tx<'c> {
    pub conn: &'c mut AnyConnection,
    pub kind: BackendKind,
    /// Resources (`type`, `id`) written so far, dropped from the read cache once the
    /// transaction commits.
    pub(crate) written: Vec<(String, String)>,
    /// Planner estimates kept across requests ([`crate::search::estimates`]).
    pub(crate) estimates: &'c crate::search::estimates::Estimates,
}

impl Tx<'_> {
    /// ` FOR UPDATE` on PostgreSQL; nothing on SQLite, whose writer holds the database.
    pub fn for_update(&self) -> &'static str {
        match self.kind {
            BackendKind::Postgres => " FOR UPDATE",
            BackendKind::Sqlite => "",
        }
    }

    /// Serialises conditional writes on one resource type (PostgreSQL advisory lock
    /// held to the end of the transaction; SQLite is serialised already).
    pub fn lock_type(&mut self, resource_type: &str) -> StoreResult<()> {
        if self.kind == BackendKind::Postgres {
            use diesel::RunQueryDsl;
            diesel::sql_query(format!(
                "SELECT pg_advisory_xact_lock(hashtext({} || $1)) IS NULL AS locked",
                crate::tenants::LOCK_PREFIX
            ))
            .bind::<diesel::sql_types::Text, _>(format!("fhir-conditional:{resource_type}"))
            .execute(self.conn)?;
        }
        Ok(())
    }
}
