//! What operators watch of the store, read when `/metrics` is scraped: the connection
//! pool and the work waiting in the database (bulk jobs by status, the change feed,
//! notifications not yet delivered, audit events not yet searchable). Cheap counts
//! only: the waiting events and the change feed are read through partial or primary
//! indexes and counted up to [`COUNT_CAP`] (a scrape must stay quick when a backlog is
//! large), the job tables hold few rows.
//!
//! Events measured as they happen (read-cache hits, waits for a connection or for the
//! SQLite writer) are recorded where they happen through the `metrics` facade, which
//! costs nothing until the server installs a recorder.

use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;

use crate::backend::Tx;
use crate::error::StoreResult;
use crate::sql::{CountRow, Sql};
use crate::Store;

/// The connection pool now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolState {
    /// Connections the pool may open.
    pub max: u32,
    /// Connections open (idle or in use).
    pub open: u32,
    /// Open connections no request holds.
    pub idle: u32,
}

/// Work waiting in the database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Bulk export jobs per status (`queued`, `running`, `completed`, `failed`).
    pub export_jobs: Vec<(String, i64)>,
    /// Bulk import jobs per status.
    pub import_jobs: Vec<(String, i64)>,
    /// Committed changes the subscription dispatcher has not matched yet.
    pub changes: i64,
    /// Notifications waiting for delivery.
    pub events: i64,
    /// Logged AuditEvents not yet searchable.
    pub audit_unprojected: i64,
}

/// Rows counted at most in a backlog; a gauge at this value means "this many or more".
pub const COUNT_CAP: i64 = 100_000;

#[derive(QueryableByName)]
struct StatusCount {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn count(tx: &mut Tx<'_>, sql: &str) -> StoreResult<i64> {
    Ok(Sql::new(sql)
        .load::<CountRow>(tx.conn)?
        .first()
        .map_or(0, |r| r.n))
}

fn by_status(tx: &mut Tx<'_>, table: &str) -> StoreResult<Vec<(String, i64)>> {
    let q = Sql::new(&format!(
        "SELECT status, COUNT(*) AS n FROM {table} GROUP BY status ORDER BY status"
    ));
    Ok(q.load::<StatusCount>(tx.conn)?
        .into_iter()
        .map(|r| (r.status, r.n))
        .collect())
}

impl Store {
    /// The connection pool now (no database work).
    pub fn pool_state(&self) -> PoolState {
        self.db.pool_state()
    }

    /// Work waiting in the database (one connection, five small statements).
    pub fn backlog(&self) -> StoreResult<Backlog> {
        self.db.read(|tx| {
            Ok(Backlog {
                export_jobs: by_status(tx, "export_jobs")?,
                import_jobs: by_status(tx, "import_jobs")?,
                changes: count(
                    tx,
                    &format!("SELECT COUNT(*) AS n FROM (SELECT 1 FROM change_outbox LIMIT {COUNT_CAP}) x"),
                )?,
                events: count(
                    tx,
                    &format!(
                        "SELECT COUNT(*) AS n FROM (SELECT 1 FROM subscription_events \
                         WHERE delivered IS NULL LIMIT {COUNT_CAP}) x"
                    ),
                )?,
                audit_unprojected: count(
                    tx,
                    "SELECT COALESCE((SELECT MAX(seq) FROM audit_log), 0) - \
                     COALESCE((SELECT last_seq FROM audit_projection WHERE id = 1), 0) AS n",
                )?,
            })
        })
    }
}
