//! The import worker: one background thread that runs import jobs one after another.
//! Jobs are rows of `import_jobs`, claimed by one node like export jobs (a node that is
//! gone leaves its job to another). An input is loaded batch by batch; each batch is
//! one store transaction that also records the job's resume point (input, line, length
//! of its error file) and counts, so the job commits exactly what it has loaded. A
//! resumed job truncates its error file to the recorded length and skips the lines
//! already loaded. Finished jobs and their error files are removed after `retention`.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fhir_model::Definitions;
use fhir_store::{Job, JobKind, JobUpdate, Store, StoreError};
use serde::{Deserialize, Serialize};

use super::load::{check_inputs, Checked, FromInput, Judge, Written};
use super::{ImportError, ImportRequest, Sources};
use crate::jobs::{COMPLETED, FAILED, QUEUED, RUNNING};
use crate::validation::Strictness;

/// A batch that meets a database restart or a lock conflict is tried again this often.
const RETRIES: u32 = 30;
const RETRY_WAIT: Duration = Duration::from_secs(1);

/// Settings of the import worker.
#[derive(Debug, Clone)]
pub struct ImportConfig {
    /// Where job folders (error files) are written.
    pub dir: PathBuf,
    /// Lines per transaction.
    pub batch: usize,
    /// How long finished jobs and their files are kept.
    pub retention: Duration,
    /// Where inputs may be read from.
    pub sources: Sources,
    /// A pause after each batch (for tests that need a job to be slow).
    pub batch_delay: Duration,
    /// See `ServeArgs::terminology_rows_from`.
    pub terminology_rows_from: u64,
}

/// What one input came to, as recorded in `import_jobs.output`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputOutcome {
    #[serde(rename = "type")]
    pub res_type: String,
    #[serde(rename = "inputUrl")]
    pub input_url: String,
    /// Resources loaded.
    pub count: u64,
    /// Lines refused (each an OperationOutcome in the input's error file).
    pub errors: u64,
    /// Why the input could not be read (to the end), if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

impl InputOutcome {
    /// The name of the input's error file in the job folder.
    pub fn error_file(index: usize) -> String {
        format!("errors-{index}.ndjson")
    }
}

/// Where a job stands: recorded with every batch it commits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// The input being loaded.
    pub input: usize,
    /// Lines of it loaded (or refused) and committed.
    pub line: u64,
    /// Bytes of its error file that belong to committed batches.
    pub error_bytes: u64,
}

/// The import worker and the job operations of the HTTP handlers.
pub struct Importer {
    store: Arc<Store>,
    /// Stored terminology gathered for validation (the server's, shared).
    terminology: Arc<fhir_terminology::cache::Cache>,
    defs: &'static Definitions,
    validation: crate::validation::Validation,
    audit_on: bool,
    config: ImportConfig,
    queue: Mutex<Sender<String>>,
    cancelled: Mutex<HashSet<String>>,
    node: String,
    /// Threads that prepare a batch's versions (index extraction) before it is written.
    threads: usize,
    folders: crate::jobs::JobFolders,
}

/// A job's state while it runs.
struct Running {
    job: Job,
    request: ImportRequest,
    resume: Resume,
    outcomes: Vec<InputOutcome>,
}

impl Importer {
    /// Starts the worker thread, which also takes up the jobs no live node runs.
    pub fn start(
        (store, terminology): (Arc<Store>, Arc<fhir_terminology::cache::Cache>),
        defs: &'static Definitions,
        validation: crate::validation::Validation,
        audit_on: bool,
        config: ImportConfig,
    ) -> Result<Arc<Importer>, ImportError> {
        std::fs::create_dir_all(&config.dir)?;
        let (config_dir, config_retention) = (config.dir.clone(), config.retention);
        let node = crate::jobs::job_node(&store.node_id());
        let (tx, rx) = mpsc::channel();
        let importer = Arc::new(Importer {
            store,
            terminology,
            defs,
            validation,
            audit_on,
            config,
            queue: Mutex::new(tx),
            cancelled: Mutex::new(HashSet::new()),
            node,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            folders: crate::jobs::JobFolders {
                kind: JobKind::Import,
                dir: config_dir,
                retention: config_retention,
            },
        });
        let worker = importer.clone();
        std::thread::Builder::new()
            .name("import".into())
            .spawn(move || {
                worker
                    .folders
                    .run(&worker.store, rx, |id| worker.run_job(id))
            })?;
        Ok(importer)
    }

    pub fn sources(&self) -> &Sources {
        &self.config.sources
    }

    /// Records a new job for a checked request and queues it; returns its id. Blocking.
    pub fn submit(
        &self,
        request_url: &str,
        request: &ImportRequest,
    ) -> Result<String, ImportError> {
        let id = uuid::Uuid::new_v4().to_string();
        let now = fhir_store::time::now_millis();
        let outcomes: Vec<InputOutcome> = request
            .inputs
            .iter()
            .map(|i| InputOutcome {
                res_type: i.res_type.clone(),
                input_url: i.url.clone(),
                ..Default::default()
            })
            .collect();
        let job = Job {
            id: id.clone(),
            status: QUEUED.into(),
            request_url: request_url.into(),
            request: to_json(request)?,
            transaction_time: now,
            created_at: now,
            updated_at: now,
            progress: to_json(&Resume::default())?,
            output: to_json(&outcomes)?,
            error: None,
            owner: None,
        };
        self.store.create_job(JobKind::Import, &job)?;
        let _ = self
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(id.clone());
        Ok(id)
    }

    /// A job by id. Blocking.
    pub fn job(&self, id: &str) -> Result<Job, ImportError> {
        self.store
            .job(JobKind::Import, id)?
            .ok_or_else(|| ImportError::JobNotFound(id.to_string()))
    }

    /// Cancels a job: what it has loaded stays; it loads no more. Blocking.
    pub fn cancel(&self, id: &str) -> Result<(), ImportError> {
        if !self.store.delete_job(JobKind::Import, id)? {
            return Err(ImportError::JobNotFound(id.to_string()));
        }
        self.cancelled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string());
        self.folders.remove(id);
        Ok(())
    }

    /// The error file of input `index` of a finished job. Blocking.
    pub fn error_file(&self, id: &str, index: usize) -> Result<PathBuf, ImportError> {
        let job = self.job(id)?;
        let path = self
            .folders
            .dir_of(id)
            .join(InputOutcome::error_file(index));
        if job.status != COMPLETED || !path.is_file() {
            return Err(ImportError::FileNotFound(InputOutcome::error_file(index)));
        }
        Ok(path)
    }

    /// When a finished job and its files will be removed (ms since the epoch).
    pub fn expires(&self, job: &Job) -> i64 {
        self.folders.expires(job)
    }

    fn run_job(&self, id: &str) {
        let started = Instant::now();
        match self.store.claim_job(JobKind::Import, id, &self.node) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => return tracing::error!(job = %id, error = %e, "import job not claimed"),
        }
        let mut running = match self.running(id) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => return self.finish(id, Err(e), &[]),
        };
        let result = self.load_all(&mut running);
        if self.is_cancelled(id) {
            return;
        }
        let total: u64 = running.outcomes.iter().map(|o| o.count).sum();
        tracing::info!(
            job = %id, resources = total, ms = started.elapsed().as_millis() as u64,
            ok = result.is_ok(), "import job finished"
        );
        self.finish(id, result, &running.outcomes);
    }

    /// The claimed job's state, from its row (`None`: another node has it).
    fn running(&self, id: &str) -> Result<Option<Running>, ImportError> {
        let Some(job) = self.store.job(JobKind::Import, id)? else {
            return Ok(None);
        };
        if !job.owner_is(&self.node) {
            return Ok(None);
        }
        let unreadable =
            |e: serde_json::Error| ImportError::Io(format!("job state unreadable: {e}"));
        Ok(Some(Running {
            request: serde_json::from_str(&job.request).map_err(unreadable)?,
            resume: serde_json::from_str(&job.progress).map_err(unreadable)?,
            outcomes: serde_json::from_str(&job.output).map_err(unreadable)?,
            job,
        }))
    }

    fn finish(&self, id: &str, result: Result<(), ImportError>, outcomes: &[InputOutcome]) {
        let (status, error) = match &result {
            Ok(()) => (COMPLETED, None),
            Err(ImportError::Store(StoreError::Conflict(_))) => return, // cancelled or taken over
            Err(e) => {
                tracing::error!(job = %id, error = %e, "import job failed");
                (FAILED, Some(e.to_string()))
            }
        };
        let output = to_json(&outcomes).unwrap_or_else(|_| "[]".into());
        let update = JobUpdate {
            status,
            progress: &to_json(&Resume {
                input: outcomes.len(),
                ..Default::default()
            })
            .unwrap_or_default(),
            output: &output,
            error: error.as_deref(),
        };
        if let Err(e) = self
            .store
            .update_job(JobKind::Import, id, &self.node, &update)
        {
            tracing::error!(job = %id, error = %e, "import job state not saved");
        }
    }

    fn is_cancelled(&self, id: &str) -> bool {
        self.cancelled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }

    /// Loads the job's inputs from its resume point on: one thread checks them in order
    /// while this one writes what it has checked.
    fn load_all(&self, r: &mut Running) -> Result<(), ImportError> {
        let strictness = r.request.strictness;
        let validator = if self.validation.on_write && strictness != Strictness::Lenient {
            Some(
                self.validation
                    .validator()
                    .map_err(|e| ImportError::Failed(e.to_string()))?,
            )
        } else {
            None
        };
        std::fs::create_dir_all(self.folders.dir_of(&r.job.id))?;
        let judge = Judge {
            defs: self.defs,
            validator,
            strictness,
            audit_on: self.audit_on,
            stored: (self.store.clone(), self.terminology.clone()),
            rows_from: self.config.terminology_rows_from,
        };
        let inputs = r.request.inputs.clone();
        let from = (r.resume.input, r.resume.line);
        let (tx, batches) = mpsc::sync_channel(2);
        let (stop, handled) = (AtomicBool::new(false), AtomicU64::new(0));
        std::thread::scope(|scope| {
            let (judge, inputs) = (&judge, &inputs);
            let progress = Written {
                handled: &handled,
                stop: &stop,
            };
            let send = move |m: FromInput| tx.send(m).is_ok();
            std::thread::Builder::new()
                .name("import-check".into())
                .spawn_scoped(scope, move || {
                    let sources = &self.config.sources;
                    let batch = self.config.batch;
                    check_inputs(inputs, from, sources, judge, batch, &send, &progress)
                })?;
            let written = self.write_all(r, &batches, &handled);
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            drop(batches);
            written
        })
    }

    /// Writes the checked batches in order, moving the resume point to each new input;
    /// an input that could not be read is recorded as failed and the job goes on.
    fn write_all(
        &self,
        r: &mut Running,
        batches: &Receiver<FromInput>,
        handled: &AtomicU64,
    ) -> Result<(), ImportError> {
        let mut errors: Option<(usize, File)> = None;
        for FromInput { input, batch } in batches {
            let going = self.write_one(r, input, batch, &mut errors);
            handled.fetch_add(1, std::sync::atomic::Ordering::Release);
            if !going? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Writes one checked batch (or records why its input could not be read); false
    /// when the job was cancelled.
    fn write_one(
        &self,
        r: &mut Running,
        input: usize,
        batch: Result<Checked, ImportError>,
        errors: &mut Option<(usize, File)>,
    ) -> Result<bool, ImportError> {
        if r.resume.input != input {
            r.resume = Resume {
                input,
                ..Default::default()
            };
        }
        let batch = match batch {
            Ok(batch) => batch,
            Err(ImportError::Source { why, .. }) => {
                self.input_failed(r, why)?;
                return Ok(true);
            }
            Err(e) => return Err(e),
        };
        if self.is_cancelled(&r.job.id) {
            return Ok(false);
        }
        let file = match errors {
            Some((i, file)) if *i == input => file,
            slot => &mut slot.insert((input, self.open_error_file(r)?)).1,
        };
        self.write_batch(r, batch, file)?;
        if !self.config.batch_delay.is_zero() {
            std::thread::sleep(self.config.batch_delay);
        }
        Ok(true)
    }

    /// The current input's error file, opened without truncating what is committed.
    fn open_error_file(&self, r: &Running) -> Result<File, ImportError> {
        let path = self
            .folders
            .dir_of(&r.job.id)
            .join(InputOutcome::error_file(r.resume.input));
        Ok(std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?)
    }

    /// Records why the current input could not be read (to the end): in its outcome,
    /// and as an OperationOutcome after its committed error lines.
    fn input_failed(&self, r: &mut Running, why: String) -> Result<(), ImportError> {
        let index = r.resume.input;
        let mut errors = self.open_error_file(r)?;
        errors.set_len(r.resume.error_bytes)?;
        errors.seek(SeekFrom::Start(r.resume.error_bytes))?;
        let oo = fhir_model::OperationOutcome::of(fhir_model::Issue::error(
            fhir_model::IssueType::Exception,
            format!("{} could not be read: {why}", r.outcomes[index].input_url),
        ));
        writeln!(errors, "{}", fhir_model::json::to_string(&oo.to_value()))?;
        let outcome = &mut r.outcomes[index];
        outcome.errors += 1;
        outcome.failure = Some(why);
        Ok(())
    }

    /// Appends the batch's error lines after the committed part of the error file, then
    /// writes its resources and the new resume point in one transaction.
    fn write_batch(
        &self,
        r: &mut Running,
        batch: Checked,
        errors: &mut File,
    ) -> Result<(), ImportError> {
        errors.set_len(r.resume.error_bytes)?;
        errors.seek(SeekFrom::Start(r.resume.error_bytes))?;
        let mut text = String::new();
        for e in &batch.errors {
            text.push_str(e);
            text.push('\n');
        }
        errors.write_all(text.as_bytes())?;
        errors.flush()?;
        let resume = Resume {
            input: r.resume.input,
            line: batch.last_line,
            error_bytes: r.resume.error_bytes + text.len() as u64,
        };
        let mut outcomes = r.outcomes.clone();
        let outcome = &mut outcomes[resume.input];
        outcome.count += batch.resources.len() as u64;
        outcome.errors += batch.errors.len() as u64;
        let progress = to_json(&resume)?;
        let output = to_json(&outcomes)?;
        let update = JobUpdate {
            status: RUNNING,
            progress: &progress,
            output: &output,
            error: None,
        };
        self.commit(r, &batch.resources, &update)?;
        r.resume = resume;
        r.outcomes = outcomes;
        // Freeing a batch's parsed resources took 3.5 % of the writer's time in a
        // profiled load: the one writer thread is what bounds a load's speed. (Should
        // no thread start, the batch is freed here, as the closure is dropped.)
        let _ = std::thread::Builder::new()
            .name("import-free".into())
            .spawn(move || drop(batch));
        Ok(())
    }

    /// Writes the resources (update with their id, create without) and the job's state
    /// in one transaction, on behalf of the client that asked; tried again while the
    /// database restarts or a concurrent writer holds the same records.
    fn commit(
        &self,
        r: &Running,
        resources: &[serde_json::Value],
        update: &JobUpdate<'_>,
    ) -> Result<(), ImportError> {
        let res_type = &r.request.inputs[r.resume.input].res_type;
        let ctx =
            crate::audit::job_context(self.audit_on, r.request.client.as_deref(), "POST /$import");
        let mut attempt = 0;
        loop {
            let result = fhir_store::audit::with_context(ctx.clone(), || {
                self.store.transaction(|ops| {
                    ops.put_many(res_type, resources, self.threads)?;
                    ops.record_job_progress(JobKind::Import, &r.job.id, &self.node, update)
                })
            });
            match result {
                Err(StoreError::Unavailable(_) | StoreError::Contention(_))
                    if attempt < RETRIES =>
                {
                    attempt += 1;
                    std::thread::sleep(RETRY_WAIT);
                }
                other => return other.map_err(ImportError::from),
            }
        }
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<String, ImportError> {
    serde_json::to_string(v).map_err(|e| ImportError::Io(e.to_string()))
}
