//! The export worker: one background thread that runs export jobs one after another,
//! reading the store page by page (keyset on `rid`, `batch` resources per page, through
//! the shared pool) and streaming each resource as one NDJSON line to a file per type
//! (a new part after `max_file_resources`). Memory stays that of one page and the file
//! buffers, whatever the export's size. Jobs are rows of `export_jobs`, run by one
//! node at a time: a node claims a job (its `owner`) before it runs it, and every node
//! looks every [`crate::jobs::CLAIM_EVERY`] for jobs that are queued or whose node is gone
//! ([`fhir_store::nodes`]), which it takes over and runs again from the beginning. Each
//! run writes its own folder, so a node that lost its job (it stalled, and another
//! took over) cannot spoil the other's files. Finished jobs and their files are
//! removed after `retention`.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fhir_model::Definitions;
use fhir_store::{ExportJob, JobKind, JobUpdate, Store, StoredResource};
use serde::{Deserialize, Serialize};

/// One page of an export, as the reader thread hands it over.
type Page = fhir_store::StoreResult<Vec<(i64, StoredResource)>>;

use super::{export_scope, ExportError, ExportPlan, ExportRequest};
use crate::jobs::job_node;

/// How often a running job records its progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

pub use crate::jobs::{COMPLETED, FAILED, QUEUED, RUNNING};

/// Settings of the export worker.
#[derive(Debug, Clone)]
pub struct ExportConfig {
    /// Where job folders (one per job, named by its id) are written.
    pub dir: PathBuf,
    /// Resources read per database round trip.
    pub batch: usize,
    /// Resources per file before a new part begins.
    pub max_file_resources: u64,
    /// How long finished jobs and their files are kept.
    pub retention: Duration,
    /// A pause after each page (for tests that need a job to be slow).
    pub batch_delay: Duration,
}

/// One file of a job's output, as recorded in `export_jobs.output`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputFile {
    #[serde(rename = "type")]
    pub res_type: String,
    pub file: String,
    pub count: u64,
    /// The folder of the run that wrote it, inside the job's folder.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub run: String,
    /// Which list of the manifest it belongs to.
    #[serde(default, skip_serializing_if = "FileKind::is_output")]
    pub kind: FileKind,
}

/// The manifest's lists: `output`, `deleted` (Bundles of the resources deleted since
/// `_since`) and `error` (OperationOutcomes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    #[default]
    Output,
    Deleted,
    Error,
}

impl FileKind {
    fn is_output(&self) -> bool {
        *self == FileKind::Output
    }

    fn prefix(self) -> &'static str {
        match self {
            FileKind::Output => "",
            FileKind::Deleted => "deleted-",
            FileKind::Error => "error-",
        }
    }
}

/// Deleted resources per `Bundle` line of a `deleted` file.
const DELETED_PER_BUNDLE: usize = 1000;

/// The export worker and the job operations of the HTTP handlers.
pub struct Exporter {
    store: Arc<Store>,
    defs: &'static Definitions,
    config: ExportConfig,
    queue: Mutex<Sender<String>>,
    cancelled: Mutex<HashSet<String>>,
    /// This node's id: the `owner` of the jobs it runs.
    node: String,
    folders: crate::jobs::JobFolders,
}

impl Exporter {
    /// Starts the worker thread, which also takes up the jobs no live node runs.
    pub fn start(
        store: Arc<Store>,
        defs: &'static Definitions,
        config: ExportConfig,
    ) -> Result<Arc<Exporter>, ExportError> {
        std::fs::create_dir_all(&config.dir)?;
        let store_node = store.node_id();
        let (tx, rx) = mpsc::channel();
        let folders = crate::jobs::JobFolders {
            kind: JobKind::Export,
            dir: config.dir.clone(),
            retention: config.retention,
        };
        let exporter = Arc::new(Exporter {
            store,
            defs,
            config,
            folders,
            queue: Mutex::new(tx),
            cancelled: Mutex::new(HashSet::new()),
            node: job_node(&store_node),
        });
        let worker = exporter.clone();
        std::thread::Builder::new()
            .name("export".into())
            .spawn(move || {
                worker
                    .folders
                    .run(&worker.store, rx, |id| worker.run_job(id))
            })?;
        Ok(exporter)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn enqueue(&self, id: &str) {
        let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        // The receiver lives as long as the process: sending cannot fail in practice.
        let _ = queue.send(id.to_string());
    }

    /// Records a new job for a checked request and queues it; returns its id.
    /// Blocking.
    pub fn submit(
        &self,
        request_url: &str,
        request: &ExportRequest,
        transaction_time: i64,
    ) -> Result<String, ExportError> {
        let id = uuid::Uuid::new_v4().to_string();
        let now = fhir_store::time::now_millis();
        let job = ExportJob {
            id: id.clone(),
            status: QUEUED.into(),
            request_url: request_url.into(),
            request: serde_json::to_string(request).map_err(|e| ExportError::Io(e.to_string()))?,
            transaction_time,
            created_at: now,
            updated_at: now,
            progress: "queued".into(),
            output: "[]".into(),
            error: None,
            owner: None,
        };
        self.store.create_job(JobKind::Export, &job)?;
        self.enqueue(&id);
        Ok(id)
    }

    /// A job by id. Blocking.
    pub fn job(&self, id: &str) -> Result<ExportJob, ExportError> {
        self.store
            .job(JobKind::Export, id)?
            .ok_or_else(|| ExportError::JobNotFound(id.to_string()))
    }

    /// Cancels a job (running or not) and removes its files. Blocking.
    pub fn cancel(&self, id: &str) -> Result<(), ExportError> {
        if !self.store.delete_job(JobKind::Export, id)? {
            return Err(ExportError::JobNotFound(id.to_string()));
        }
        self.cancelled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string());
        self.folders.remove(id);
        Ok(())
    }

    /// One output file of a completed job, if the job lists it, and its path. Blocking.
    pub fn file_path(&self, id: &str, file: &str) -> Result<(OutputFile, PathBuf), ExportError> {
        let job = self.job(id)?;
        let outputs: Vec<OutputFile> = serde_json::from_str(&job.output).unwrap_or_default();
        match outputs.into_iter().find(|o| o.file == file) {
            Some(o) if job.status == COMPLETED => {
                let path = self.folders.dir_of(id).join(&o.run).join(file);
                Ok((o, path))
            }
            _ => Err(ExportError::FileNotFound(file.to_string())),
        }
    }

    /// When a finished job and its files will be removed (ms since the epoch).
    pub fn expires(&self, job: &ExportJob) -> i64 {
        self.folders.expires(job)
    }

    fn is_cancelled(&self, id: &str) -> bool {
        self.cancelled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }

    fn run_job(&self, id: &str) {
        let started = Instant::now();
        match self.store.claim_job(JobKind::Export, id, &self.node) {
            Ok(true) => {}
            Ok(false) => return, // done, cancelled, or another node runs it
            Err(e) => return tracing::error!(job = %id, error = %e, "export job not claimed"),
        }
        let result = self
            .store
            .job(JobKind::Export, id)
            .map_err(ExportError::from);
        let job = match result {
            Ok(Some(job)) if job.owner_is(&self.node) => job,
            Ok(_) => return,
            Err(e) => return tracing::error!(job = %id, error = %e, "export job unreadable"),
        };
        let run = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let outcome = self.write_job(&job, &run);
        if self.is_cancelled(id) {
            self.lost_or_cancelled(id, &run);
            return;
        }
        let (status, output, error) = match &outcome {
            Ok(files) => (COMPLETED, files.clone(), None),
            Err(e) => {
                tracing::error!(job = %id, error = %e, "export job failed");
                (FAILED, Vec::new(), Some(e.to_string()))
            }
        };
        let total: u64 = output.iter().map(|o| o.count).sum();
        let update = JobUpdate {
            status,
            progress: &format!("exported {total} resources"),
            output: &serde_json::to_string(&output).unwrap_or_else(|_| "[]".into()),
            error: error.as_deref(),
        };
        match self
            .store
            .update_job(JobKind::Export, id, &self.node, &update)
        {
            Ok(true) => tracing::info!(
                job = %id, status, resources = total,
                ms = started.elapsed().as_millis() as u64, "export job finished"
            ),
            Ok(false) => self.lost_or_cancelled(id, &run),
            Err(e) => tracing::error!(job = %id, error = %e, "export job state not saved"),
        }
    }

    /// After a run stopped because its job is gone or another node has it: removes
    /// the job's files (cancelled) or this run's (taken over).
    fn lost_or_cancelled(&self, id: &str, run: &str) {
        match self.store.job(JobKind::Export, id) {
            Ok(Some(_)) => {
                tracing::warn!(job = %id, "export job taken over by another node; this run stops");
                // Not cancelled: this node may take the job up again later.
                self.cancelled
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(id);
                let dir = self.folders.dir_of(id).join(run);
                let _ = std::fs::remove_dir_all(dir);
            }
            _ => self.folders.remove(id),
        }
    }

    /// Writes the job's files into the folder of `run`; returns them (empty if the
    /// job was cancelled or taken over).
    fn write_job(&self, job: &ExportJob, run: &str) -> Result<Vec<OutputFile>, ExportError> {
        let request: ExportRequest = serde_json::from_str(&job.request)
            .map_err(|e| ExportError::Io(format!("stored request unreadable: {e}")))?;
        let mut plan = export_scope(&self.store, self.defs, &request)?;
        plan.query.at = Some(job.transaction_time);
        let dir = self.folders.dir_of(&job.id).join(run);
        std::fs::create_dir_all(&dir)?;
        let mut files = Files::new(dir, run, self.config.max_file_resources);
        // The next page is read while this one is written (two pages in flight).
        let (tx, pages) = std::sync::mpsc::sync_channel(1);
        std::thread::scope(|scope| {
            let plan = &plan;
            // The reader owns the sender: if it stops for any reason, the pages end.
            scope.spawn(move || self.read_pages(plan, &tx));
            let written = self.write_pages(&job.id, plan, &pages, &mut files);
            drop(pages); // stops the reader if the job ended early
            written
        })?;
        if self.is_cancelled(&job.id) {
            return Ok(Vec::new());
        }
        self.write_deleted(&plan, &mut files)?;
        write_ignored(&request, &mut files)?;
        files.finish()
    }

    /// The `deleted` list of an export with `_since`: transaction Bundles of DELETE
    /// entries for the resources deleted since then.
    fn write_deleted(&self, plan: &ExportPlan, files: &mut Files) -> Result<(), ExportError> {
        let mut after = 0i64;
        loop {
            let page = self
                .store
                .export_deleted(&plan.query, after, DELETED_PER_BUNDLE)?;
            let Some((last, _, _)) = page.last() else {
                return Ok(());
            };
            after = *last;
            let entries: Vec<serde_json::Value> = page
                .iter()
                .map(|(_, t, i)| serde_json::json!({"request": {"method": "DELETE", "url": format!("{t}/{i}")}}))
                .collect();
            let bundle = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
            files.write(
                FileKind::Deleted,
                "Bundle",
                &fhir_model::json::to_string(&bundle),
            )?;
        }
    }

    /// Reads the export's pages in order into `tx`, until the end, an error, or the
    /// receiver going away.
    fn read_pages(&self, plan: &ExportPlan, tx: &std::sync::mpsc::SyncSender<Page>) {
        let mut after = 0i64;
        loop {
            let page = self
                .store
                .export_page(&plan.query, after, self.config.batch);
            let last = match &page {
                Ok(p) => p.last().map(|(rid, _)| *rid),
                Err(_) => None,
            };
            if tx.send(page).is_err() {
                return;
            }
            match last {
                Some(l) => after = l,
                None => return,
            }
        }
    }

    /// Writes pages to the files until the last one; stops early when cancelled.
    fn write_pages(
        &self,
        id: &str,
        plan: &ExportPlan,
        pages: &Receiver<Page>,
        files: &mut Files,
    ) -> Result<(), ExportError> {
        let mut total = 0u64;
        let mut reported = Instant::now() - PROGRESS_EVERY;
        for page in pages {
            let page = page?;
            if page.is_empty() || self.is_cancelled(id) {
                break;
            }
            for (_, r) in &page {
                files.write(FileKind::Output, &r.res_type, &self.line(plan, r)?)?;
            }
            total += page.len() as u64;
            if reported.elapsed() >= PROGRESS_EVERY {
                reported = Instant::now();
                if !self.report(id, total)? {
                    self.cancelled
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(id.to_string());
                    break;
                }
            }
            if !self.config.batch_delay.is_zero() {
                std::thread::sleep(self.config.batch_delay);
            }
        }
        Ok(())
    }

    /// Records progress; `false` when the job is gone (cancelled).
    fn report(&self, id: &str, total: u64) -> Result<bool, ExportError> {
        let update = JobUpdate {
            status: RUNNING,
            progress: &format!("exported {total} resources so far"),
            output: "[]",
            error: None,
        };
        Ok(self
            .store
            .update_job(JobKind::Export, id, &self.node, &update)?)
    }

    /// One resource as one NDJSON line (stored text as is, unless subsetted or, which
    /// the server never writes, spread over several lines).
    fn line(&self, plan: &ExportPlan, r: &StoredResource) -> Result<String, ExportError> {
        let subset = plan.subset_for(&r.res_type);
        if subset.is_none() && !r.content.contains('\n') {
            return Ok(r.content.clone());
        }
        let value = fhir_model::json::parse(r.content.as_bytes()).map_err(|e| {
            ExportError::Io(format!("{}/{} is unreadable: {e}", r.res_type, r.res_id))
        })?;
        let value = match subset {
            Some(s) => self.defs.subset(&value, &s),
            None => value,
        };
        Ok(fhir_model::json::to_string(&value))
    }
}

/// The manifest's `error` list of a lenient request: one OperationOutcome per
/// parameter (or value) it left out.
fn write_ignored(request: &ExportRequest, files: &mut Files) -> Result<(), ExportError> {
    for i in &request.ignored {
        let oo = fhir_model::OperationOutcome::of(
            fhir_model::Issue::warning(
                fhir_model::IssueType::NotSupported,
                format!("{} (left out: Prefer: handling=lenient)", i.message),
            )
            .at(i.parameter.clone()),
        );
        let line = fhir_model::json::to_string(&oo.to_value());
        files.write(FileKind::Error, "OperationOutcome", &line)?;
    }
    Ok(())
}

/// The open output files of a job, one per list, type (and part).
struct Files {
    dir: PathBuf,
    run: String,
    limit: u64,
    open: HashMap<(FileKind, String), (BufWriter<File>, usize)>,
    outputs: Vec<OutputFile>,
}

impl Files {
    fn new(dir: PathBuf, run: &str, limit: u64) -> Files {
        Files {
            dir,
            run: run.to_string(),
            limit: limit.max(1),
            open: HashMap::new(),
            outputs: Vec::new(),
        }
    }

    fn write(&mut self, kind: FileKind, res_type: &str, line: &str) -> Result<(), ExportError> {
        let key = (kind, res_type.to_string());
        let full = match self.open.get(&key) {
            Some((_, i)) => self.outputs[*i].count >= self.limit,
            None => true,
        };
        if full {
            self.start_part(kind, res_type)?;
        }
        let Some((w, i)) = self.open.get_mut(&key) else {
            return Err(ExportError::Io(format!("no open file for {res_type}")));
        };
        w.write_all(line.as_bytes())?;
        w.write_all(b"\n")?;
        self.outputs[*i].count += 1;
        Ok(())
    }

    fn start_part(&mut self, kind: FileKind, res_type: &str) -> Result<(), ExportError> {
        let key = (kind, res_type.to_string());
        if let Some((mut w, _)) = self.open.remove(&key) {
            w.flush()?;
        }
        let part = self
            .outputs
            .iter()
            .filter(|o| o.kind == kind && o.res_type == res_type)
            .count()
            + 1;
        let file = format!("{}{res_type}-{part}.ndjson", kind.prefix());
        let writer = BufWriter::with_capacity(64 * 1024, File::create(self.dir.join(&file))?);
        self.outputs.push(OutputFile {
            res_type: res_type.to_string(),
            file,
            count: 0,
            run: self.run.clone(),
            kind,
        });
        self.open.insert(key, (writer, self.outputs.len() - 1));
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<OutputFile>, ExportError> {
        for (_, (w, _)) in self.open.drain() {
            w.into_inner()
                .map_err(|e| ExportError::Io(e.to_string()))?
                .sync_all()?;
        }
        // By type; a type's parts stay in order (the sort is stable).
        self.outputs.sort_by(|a, b| a.res_type.cmp(&b.res_type));
        Ok(self.outputs)
    }
}
