//! What the export and import workers share: a folder per job under the worker's
//! directory (removed with the job), a finished job's expiry after the retention, and
//! the worker loop — a job just queued at once, every [`CLAIM_EVERY`] the jobs that no
//! live node runs (queued, or left by a node that is gone), and every [`PURGE_EVERY`]
//! (or the retention, if shorter) the finished jobs past their retention.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use fhir_store::{Job, JobKind, Store, StoreResult};

/// The states of a bulk job.
pub const QUEUED: &str = "queued";
pub const RUNNING: &str = "running";
pub const COMPLETED: &str = "completed";
pub const FAILED: &str = "failed";

/// The id a node's job workers claim jobs with: its entry in `server_nodes`, or (a
/// store that has not joined the nodes: tools, tests) a local one of its own.
pub(crate) fn job_node(node: &Option<String>) -> String {
    node.clone()
        .unwrap_or_else(|| format!("local-{}", uuid::Uuid::new_v4()))
}

/// How often finished jobs are checked for expiry.
pub const PURGE_EVERY: Duration = Duration::from_secs(60);
/// How often an idle worker looks for jobs no live node runs.
pub const CLAIM_EVERY: Duration = Duration::from_secs(2);

/// The jobs of one kind and their folders.
#[derive(Debug, Clone)]
pub struct JobFolders {
    pub kind: JobKind,
    /// A folder per job, named by its id.
    pub dir: PathBuf,
    /// How long finished jobs and their folders are kept.
    pub retention: Duration,
}

impl JobFolders {
    pub fn dir_of(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Removes a job's folder, if it has one.
    pub fn remove(&self, id: &str) {
        let dir = self.dir_of(id);
        if dir.exists() {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(job = %id, error = %e, "cannot remove job files");
            }
        }
    }

    /// When a finished job and its files will be removed (ms since the epoch).
    pub fn expires(&self, job: &Job) -> i64 {
        job.updated_at
            .saturating_add(self.retention.as_millis() as i64)
    }

    /// Removes the finished jobs past their retention, with their folders.
    fn purge_expired(&self, store: &Store) -> StoreResult<()> {
        let now = fhir_store::time::now_millis();
        for job in store.jobs(self.kind)? {
            let finished = job.status == COMPLETED || job.status == FAILED;
            if finished && self.expires(&job) <= now {
                store.delete_job(self.kind, &job.id)?;
                self.remove(&job.id);
            }
        }
        Ok(())
    }

    /// The worker loop, on the calling thread until the queue's sender is gone:
    /// `run_job` gets each job to run (it claims the job itself).
    pub fn run(&self, store: &Store, rx: Receiver<String>, mut run_job: impl FnMut(&str)) {
        // A retention shorter than the purge period is honoured to within a claim period.
        let purge_every = PURGE_EVERY.min(self.retention.max(CLAIM_EVERY));
        let mut purged = Instant::now() - purge_every;
        loop {
            match rx.recv_timeout(CLAIM_EVERY) {
                Ok(id) => run_job(&id),
                Err(RecvTimeoutError::Timeout) => match store.claimable_jobs(self.kind) {
                    Ok(ids) => ids.iter().for_each(|id| run_job(id)),
                    Err(e) => {
                        tracing::warn!(kind = ?self.kind, error = %e, "looking for jobs failed")
                    }
                },
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if purged.elapsed() >= purge_every {
                purged = Instant::now();
                if let Err(e) = self.purge_expired(store) {
                    tracing::warn!(kind = ?self.kind, error = %e, "removing expired jobs failed");
                }
            }
        }
    }
}
