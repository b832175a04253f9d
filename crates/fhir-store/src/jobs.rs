//! Background jobs that outlive a request and the process: Bulk Data export
//! (`export_jobs`) and bulk import (`import_jobs`), one table per kind with the same
//! columns. A job is claimed by one node (its `owner`); a job whose node is gone
//! ([`crate::nodes`]) is claimable again. A running import records its progress in the
//! transaction that writes its resources ([`crate::TxOps::record_job_progress`]), so a
//! restart resumes exactly where the last commit left off.

use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::QueryableByName;

use crate::error::{StoreError, StoreResult};
use crate::sql::{Bind, Sql};
use crate::Store;

/// Which table a job lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Export,
    Import,
}

impl JobKind {
    fn table(self) -> &'static str {
        match self {
            JobKind::Export => "export_jobs",
            JobKind::Import => "import_jobs",
        }
    }

    /// A job no live node runs: never taken, or its node is gone.
    fn unowned(self) -> String {
        format!(
            "(owner IS NULL OR NOT EXISTS \
             (SELECT 1 FROM server_nodes n WHERE n.node_id = {}.owner))",
            self.table()
        )
    }
}

/// One job row.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct Job {
    #[diesel(sql_type = Text)]
    pub id: String,
    /// `queued`, `running`, `completed` or `failed`.
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Text)]
    pub request_url: String,
    /// The kick-off parameters as JSON.
    #[diesel(sql_type = Text)]
    pub request: String,
    #[diesel(sql_type = BigInt)]
    pub transaction_time: i64,
    #[diesel(sql_type = BigInt)]
    pub created_at: i64,
    #[diesel(sql_type = BigInt)]
    pub updated_at: i64,
    /// For `X-Progress` (an import keeps its resume point here as JSON).
    #[diesel(sql_type = Text)]
    pub progress: String,
    /// JSON: the files written (export) or the outcome per input (import).
    #[diesel(sql_type = Text)]
    pub output: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub error: Option<String>,
    /// The node running it (see [`Store::claim_job`]).
    #[diesel(sql_type = Nullable<Text>)]
    pub owner: Option<String>,
}

/// The export job row (the name the export code knows it by).
pub type ExportJob = Job;

impl Job {
    pub fn owner_is(&self, node: &str) -> bool {
        self.owner.as_deref() == Some(node)
    }
}

/// The state a running job reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobUpdate<'a> {
    pub status: &'a str,
    pub progress: &'a str,
    pub output: &'a str,
    pub error: Option<&'a str>,
}

const JOB_COLUMNS: &str = "id, status, request_url, request, transaction_time, created_at, \
                           updated_at, progress, output, error, owner";

/// `UPDATE … SET status, progress, output, error, updated_at WHERE id AND owner`.
fn update_sql(kind: JobKind, id: &str, owner: &str, update: &JobUpdate<'_>) -> Sql {
    let mut q = Sql::new(&format!("UPDATE {} SET status = ", kind.table()));
    q.bind(Bind::Text(update.status.into()));
    q.push(", progress = ")
        .bind(Bind::Text(update.progress.into()));
    q.push(", output = ").bind(Bind::Text(update.output.into()));
    q.push(", error = ")
        .bind(Bind::OptText(update.error.map(str::to_string)));
    q.push(", updated_at = ")
        .bind(Bind::BigInt(crate::time::now_millis()));
    q.push(" WHERE id = ").bind(Bind::Text(id.into()));
    q.push(" AND owner = ").bind(Bind::Text(owner.into()));
    q
}

impl Store {
    /// Records a new job.
    pub fn create_job(&self, kind: JobKind, job: &Job) -> StoreResult<()> {
        let mut q = Sql::new(&format!(
            "INSERT INTO {} ({JOB_COLUMNS}) VALUES (",
            kind.table()
        ));
        q.bind(Bind::Text(job.id.clone())).push(", ");
        q.bind(Bind::Text(job.status.clone())).push(", ");
        q.bind(Bind::Text(job.request_url.clone())).push(", ");
        q.bind(Bind::Text(job.request.clone())).push(", ");
        q.bind(Bind::BigInt(job.transaction_time)).push(", ");
        q.bind(Bind::BigInt(job.created_at)).push(", ");
        q.bind(Bind::BigInt(job.updated_at)).push(", ");
        q.bind(Bind::Text(job.progress.clone())).push(", ");
        q.bind(Bind::Text(job.output.clone())).push(", ");
        q.bind(Bind::OptText(job.error.clone())).push(", ");
        q.bind(Bind::OptText(job.owner.clone())).push(")");
        self.db.write(|tx| q.execute(tx.conn).map(|_| ()))
    }

    /// One job, if it exists.
    pub fn job(&self, kind: JobKind, id: &str) -> StoreResult<Option<Job>> {
        let mut q = Sql::new(&format!(
            "SELECT {JOB_COLUMNS} FROM {} WHERE id = ",
            kind.table()
        ));
        q.bind(Bind::Text(id.to_string()));
        self.db
            .read(|tx| Ok(q.load::<Job>(tx.conn)?.into_iter().next()))
    }

    /// Every job of a kind (the tables hold few rows: jobs are removed after their
    /// retention).
    pub fn jobs(&self, kind: JobKind) -> StoreResult<Vec<Job>> {
        let q = Sql::new(&format!(
            "SELECT {JOB_COLUMNS} FROM {} ORDER BY created_at",
            kind.table()
        ));
        self.db.read(|tx| q.load::<Job>(tx.conn))
    }

    /// Takes job `id` for the node `owner` when it is queued, or running on a node that
    /// is gone ([`crate::nodes`]); `false` when another live node has it or it is done.
    pub fn claim_job(&self, kind: JobKind, id: &str, owner: &str) -> StoreResult<bool> {
        let mut q = Sql::new(&format!(
            "UPDATE {} SET status = 'running', owner = ",
            kind.table()
        ));
        q.bind(Bind::Text(owner.into()));
        q.push(", updated_at = ")
            .bind(Bind::BigInt(crate::time::now_millis()));
        q.push(" WHERE id = ").bind(Bind::Text(id.into()));
        q.push(" AND status IN ('queued', 'running') AND (owner = ")
            .bind(Bind::Text(owner.into()))
            .push(" OR ")
            .push(&kind.unowned())
            .push(")");
        self.db.write(|tx| Ok(q.execute(tx.conn)? > 0))
    }

    /// Jobs waiting for a node: queued, or running on a node that is gone; oldest first.
    pub fn claimable_jobs(&self, kind: JobKind) -> StoreResult<Vec<String>> {
        let q = Sql::new(&format!(
            "SELECT id AS s FROM {} WHERE status IN ('queued', 'running') AND {} \
             ORDER BY created_at",
            kind.table(),
            kind.unowned()
        ));
        self.db.read(|tx| {
            Ok(q.load::<crate::sql::TextRow>(tx.conn)?
                .into_iter()
                .map(|r| r.s)
                .collect())
        })
    }

    /// Records a job's state as its runner `owner` sees it; `false` when the job is
    /// gone (cancelled) or another node has taken it over.
    pub fn update_job(
        &self,
        kind: JobKind,
        id: &str,
        owner: &str,
        update: &JobUpdate<'_>,
    ) -> StoreResult<bool> {
        let q = update_sql(kind, id, owner, update);
        self.db.write(|tx| Ok(q.execute(tx.conn)? > 0))
    }

    /// Removes a job's record; `false` if there was none.
    pub fn delete_job(&self, kind: JobKind, id: &str) -> StoreResult<bool> {
        let mut q = Sql::new(&format!("DELETE FROM {} WHERE id = ", kind.table()));
        q.bind(Bind::Text(id.into()));
        self.db.write(|tx| Ok(q.execute(tx.conn)? > 0))
    }
}

impl crate::TxOps<'_, '_> {
    /// Records a running job's state in this transaction, so that it commits (or not)
    /// with the writes it describes. [`StoreError::Conflict`] (and so a rollback) when
    /// the job is gone (cancelled) or another node has taken it over.
    pub fn record_job_progress(
        &mut self,
        kind: JobKind,
        id: &str,
        owner: &str,
        update: &JobUpdate<'_>,
    ) -> StoreResult<()> {
        let q = update_sql(kind, id, owner, update);
        match q.execute(self.tx.conn)? {
            0 => Err(StoreError::Conflict(format!(
                "job {id} was cancelled or taken over by another node"
            ))),
            _ => Ok(()),
        }
    }
}
