//! `fhir-server import PATH…`: loads transaction, batch and collection Bundles, single
//! resources and NDJSON files (gzip accepted) through the FHIR API, so every load gets
//! the same checks, indexing and atomicity as a client's request. With `--url` it loads
//! into a running server; otherwise it starts one in-process on the configured database.
//! Finished files are recorded in a state file, so a re-run skips them; files that are
//! (or are wrapped into) transactions are also safe to load again after a crash, as
//! each is sent with an idempotency key (see [`post`]).

use std::collections::HashSet;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::config::{ImportArgs, ServeArgs};

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}: {1}")]
    Read(String, String),
    #[error("{file}: {message}")]
    Rejected { file: String, message: String },
    /// A transaction refused as a whole because a conditional reference matched no
    /// resource or several (404, 412): it may depend on a file loaded at the same time.
    #[error("{file}: {message}")]
    Unresolved { file: String, message: String },
    #[error("cannot start the embedded server: {0}")]
    Server(String),
}

pub(crate) fn files_of(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ImportError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| ImportError::Read(p.display().to_string(), e.to_string()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            out.extend(files_of(&entries)?);
        } else if p.exists() {
            let name = p.to_string_lossy();
            if [
                ".json",
                ".json.gz",
                ".ndjson",
                ".ndjson.gz",
                ".xml",
                ".xml.gz",
            ]
            .iter()
            .any(|s| name.ends_with(s))
            {
                out.push(p.clone());
            }
        } else {
            return Err(ImportError::Read(
                p.display().to_string(),
                "no such file or folder".into(),
            ));
        }
    }
    Ok(out)
}

fn read_text(path: &Path) -> Result<String, ImportError> {
    let err = |e: std::io::Error| ImportError::Read(path.display().to_string(), e.to_string());
    let file = std::fs::File::open(path).map_err(err)?;
    let mut text = String::new();
    if path.to_string_lossy().ends_with(".gz") {
        flate2::read::GzDecoder::new(file)
            .read_to_string(&mut text)
            .map_err(err)?;
    } else {
        std::io::BufReader::new(file)
            .read_to_string(&mut text)
            .map_err(err)?;
    }
    Ok(text)
}

/// A transaction entry that stores `resource` as is: PUT when it has an id, POST otherwise.
fn entry_for(resource: Value) -> Value {
    let rt = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let request = match resource.get("id").and_then(Value::as_str) {
        Some(id) => json!({"method": "PUT", "url": format!("{rt}/{id}")}),
        None => json!({"method": "POST", "url": rt}),
    };
    json!({"resource": resource, "request": request})
}

/// What a file's top level is, read without building the whole tree.
#[derive(serde::Deserialize)]
struct Head {
    #[serde(rename = "resourceType")]
    resource_type: Option<String>,
    #[serde(rename = "type")]
    kind: Option<serde_json::Value>,
}

/// A file's content as JSON text (FHIR XML is read into the JSON it stands for), and
/// whether it is NDJSON.
pub(crate) fn json_text(path: &Path) -> Result<(String, bool), ImportError> {
    let name = path.display().to_string();
    let ndjson = name.ends_with(".ndjson") || name.ends_with(".ndjson.gz");
    let mut text = read_text(path)?;
    if name.ends_with(".xml") || name.ends_with(".xml.gz") {
        let v = fhir_model::xml::from_xml(fhir_model::Definitions::r4(), text.as_bytes()).map_err(
            |e| ImportError::Rejected {
                file: name.clone(),
                message: e.to_string(),
            },
        )?;
        text = fhir_model::json::to_string(&v);
    }
    Ok((text, ndjson))
}

/// The Bundles to post for one file as JSON text, with a label for errors. A file that
/// already is a transaction or batch is posted as it was read.
fn bundles_of(path: &Path, batch: usize) -> Result<Vec<(String, String)>, ImportError> {
    let name = path.display().to_string();
    let (text, ndjson) = json_text(path)?;
    if !ndjson {
        let head: Option<Head> = serde_json::from_str(&text).ok();
        if let Some(Head {
            resource_type: Some(rt),
            kind: Some(Value::String(kind)),
        }) = &head
        {
            if rt == "Bundle" && (kind == "transaction" || kind == "batch") {
                return Ok(vec![(name, text)]);
            }
        }
    }
    Ok(bundle_values(name, &text, ndjson, batch)?
        .into_iter()
        .map(|(label, v)| (label, fhir_model::json::to_string(&v)))
        .collect())
}

/// The Bundles to post for a file that needs wrapping (NDJSON, collections, single
/// resources).
pub(crate) fn bundle_values(
    name: String,
    text: &str,
    ndjson: bool,
    batch: usize,
) -> Result<Vec<(String, Value)>, ImportError> {
    if ndjson {
        let mut out = Vec::new();
        let mut entries = Vec::new();
        let mut first_line = 1;
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v =
                fhir_model::json::parse(line.as_bytes()).map_err(|e| ImportError::Rejected {
                    file: name.clone(),
                    message: format!("line {}: {e}", n + 1),
                })?;
            entries.push(entry_for(v));
            if entries.len() == batch.max(1) {
                let label = format!("{name} lines {first_line}-{}", n + 1);
                out.push((label, json!({"resourceType": "Bundle", "type": "transaction", "entry": std::mem::take(&mut entries)})));
                first_line = n + 2;
            }
        }
        if !entries.is_empty() {
            out.push((
                format!("{name} lines {first_line}-"),
                json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}),
            ));
        }
        return Ok(out);
    }
    let v = fhir_model::json::parse(text.as_bytes()).map_err(|e| ImportError::Rejected {
        file: name.clone(),
        message: e.to_string(),
    })?;
    let is_bundle = v.get("resourceType").and_then(Value::as_str) == Some("Bundle");
    let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
    Ok(vec![match (is_bundle, kind) {
        (true, "transaction" | "batch") => (name, v),
        (true, _) => {
            let entries: Vec<Value> = v
                .get("entry")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|e| e.get("resource").cloned())
                .map(entry_for)
                .collect();
            (
                name,
                json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}),
            )
        }
        (false, _) => (
            name,
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [entry_for(v)]}),
        ),
    }])
}

/// How often, and after how long, a transaction answered 409 or 503 is sent again.
const RETRIES: usize = 60;
const RETRY_WAIT: Duration = Duration::from_millis(500);

/// Posts a Bundle; an error names the file and the failing entry. Transactions carry
/// an `Idempotency-Key` made from the import's run id and their content: the server
/// records it with their writes, so a transaction that committed before a crash or a
/// kill is answered from that record when a re-run (same `--state`) posts it again,
/// never written twice; a new import (another `--state`) of the same files loads them
/// again.
pub(crate) fn post(
    agent: &ureq::Agent,
    base: &str,
    run_id: &str,
    label: &str,
    bundle: &str,
) -> Result<usize, ImportError> {
    use sha2::{Digest, Sha256};
    let rejected = |message: String| ImportError::Rejected {
        file: label.to_string(),
        message,
    };
    let mut hash = Sha256::new();
    hash.update(run_id.as_bytes());
    hash.update(b"\n");
    hash.update(bundle.as_bytes());
    let key = format!("import-{}", hex::encode(hash.finalize()));
    // 409: the same transaction is still in flight (sent by a run that was killed);
    // 503: the server is busy or its database is restarting. Both pass: wait, retry.
    let mut attempts = 0;
    let response = loop {
        let r = agent
            .post(base)
            .set("Content-Type", "application/fhir+json")
            .set("Prefer", "return=minimal")
            .set("Idempotency-Key", &key)
            .send_string(bundle);
        match &r {
            Err(ureq::Error::Status(409 | 503, _)) if attempts < RETRIES => {
                attempts += 1;
                std::thread::sleep(RETRY_WAIT);
            }
            _ => break r,
        }
    };
    let body: Value = match response {
        Ok(r) => r.into_json().map_err(|e| rejected(e.to_string()))?,
        Err(ureq::Error::Status(code, r)) => {
            let oo: Value = r.into_json().unwrap_or(Value::Null);
            let text = oo["issue"][0]["details"]["text"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let message = format!("HTTP {code}: {text}");
            if matches!(code, 404 | 412) {
                return Err(ImportError::Unresolved {
                    file: label.to_string(),
                    message,
                });
            }
            return Err(rejected(message));
        }
        Err(e) => return Err(rejected(e.to_string())),
    };
    let entries = body["entry"].as_array().cloned().unwrap_or_default();
    for (i, e) in entries.iter().enumerate() {
        let status = e["response"]["status"].as_str().unwrap_or("");
        if !status.starts_with('2') {
            let text = e["response"]["outcome"]["issue"][0]["details"]["text"]
                .as_str()
                .unwrap_or("");
            return Err(rejected(format!("entry {i}: {status}: {text}")));
        }
    }
    Ok(entries.len())
}

/// A key of a file's content and where it was loaded: a re-run into the same target
/// skips files whose key is in the state file; another database loads them again.
fn file_key(target: &str, path: &Path) -> String {
    let meta = std::fs::metadata(path).ok();
    let size = meta.as_ref().map_or(0, |m| m.len());
    let mtime = meta
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    format!("{target}\t{}\t{size}\t{mtime}", abs.display())
}

/// Starts the server in this process on a free loopback port; returns its base URL.
pub(crate) fn embedded_server(
    database_url: &str,
    full_text: crate::config::OnOff,
) -> Result<String, ImportError> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| ImportError::Server(e.to_string()))?
        .port();
    let args = ServeArgs::embedded(database_url, port, full_text);
    std::thread::spawn(move || actix_web::rt::System::new().block_on(crate::serve::serve(args)));
    let base = format!("http://127.0.0.1:{port}/fhir");
    let ready = format!("http://127.0.0.1:{port}/ready");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if ureq::get(&ready).call().is_ok() {
            return Ok(base);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(ImportError::Server(format!("no answer from {ready}")))
}

/// The id of the import that `state` records, kept beside it (`STATE.run`) and made
/// when the import starts for the first time: re-runs after a crash send the same
/// idempotency keys, a new import new ones.
fn run_id(state: &Path) -> Result<String, ImportError> {
    let mut path = state.as_os_str().to_owned();
    path.push(".run");
    let path = PathBuf::from(path);
    let err = |e: std::io::Error| ImportError::Read(path.display().to_string(), e.to_string());
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_string()),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(err(e)),
        _ => {
            let id = uuid::Uuid::new_v4().to_string();
            std::fs::write(&path, format!("{id}\n")).map_err(err)?;
            Ok(id)
        }
    }
}

/// Runs an import; returns (files loaded, files skipped, resources loaded).
pub fn run(args: &ImportArgs) -> Result<(usize, usize, usize), ImportError> {
    let files = files_of(&args.target.paths)?;
    let (base, target) = match &args.target.url {
        Some(u) => (
            u.trim_end_matches('/').to_string(),
            u.trim_end_matches('/').to_string(),
        ),
        None => (
            embedded_server(&args.target.database_url, args.full_text)?,
            args.target.database_url.clone(),
        ),
    };
    let done: HashSet<String> = std::fs::File::open(&args.state)
        .map(|f| {
            std::io::BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .collect()
        })
        .unwrap_or_default();
    let (todo, skipped): (Vec<_>, Vec<_>) = files
        .iter()
        .map(|p| (file_key(&target, p), p))
        .partition(|(key, _)| !done.contains(key));
    let bar = indicatif::ProgressBar::new(files.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} files, {msg} [{elapsed} < {eta}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.inc(skipped.len() as u64);
    let run = Run {
        run_id: run_id(&args.state)?,
        base,
        batch: args.batch,
        state: args.state.clone(),
        bar,
        started: Instant::now(),
        next: AtomicUsize::new(0),
        resources: AtomicUsize::new(0),
        loaded: AtomicUsize::new(0),
        failed: Mutex::new(None),
        deferred: Mutex::new(Vec::new()),
        state_lock: Mutex::new(()),
    };
    // Files load side by side (`--jobs`), so that reading and checking one overlaps
    // writing another; each file's Bundles go in order. A transaction whose conditional
    // references found nothing may need a file loaded beside it (Synthea's practitioner
    // and hospital files): such files are loaded again, one at a time, at the end.
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.max(1) {
            scope.spawn(|| run.worker(&todo, true));
        }
    });
    let mut deferred = std::mem::take(&mut *run.deferred.lock().unwrap_or_else(|e| e.into_inner()));
    deferred.sort();
    if !deferred.is_empty() {
        run.next.store(0, Ordering::Relaxed);
        run.worker(&deferred, false);
    }
    run.bar.finish_and_clear();
    if let Some(e) = run.failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    Ok((
        run.loaded.into_inner(),
        skipped.len(),
        run.resources.into_inner(),
    ))
}

/// One import run shared by its worker threads.
struct Run<'a> {
    /// Identifies this import across re-runs ([`run_id`]).
    run_id: String,
    base: String,
    batch: usize,
    state: PathBuf,
    bar: indicatif::ProgressBar,
    started: Instant,
    /// The next file of the list to take.
    next: AtomicUsize,
    resources: AtomicUsize,
    loaded: AtomicUsize,
    /// The first failure; the other workers stop taking files.
    failed: Mutex<Option<ImportError>>,
    /// Files to load again at the end ([`ImportError::Unresolved`]).
    deferred: Mutex<Vec<(String, &'a PathBuf)>>,
    state_lock: Mutex<()>,
}

impl<'a> Run<'a> {
    /// Loads files of `todo` until none is left; with `may_defer`, a file refused as
    /// [`ImportError::Unresolved`] is kept for later instead of failing the import.
    fn worker(&self, todo: &[(String, &'a PathBuf)], may_defer: bool) {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(600))
            .build();
        loop {
            if self.failed.lock().map_or(true, |f| f.is_some()) {
                return;
            }
            let Some((key, path)) = todo.get(self.next.fetch_add(1, Ordering::Relaxed)) else {
                return;
            };
            match self.file(&agent, key, path) {
                Ok(()) => {}
                Err(ImportError::Unresolved { .. }) if may_defer => {
                    if let Ok(mut d) = self.deferred.lock() {
                        d.push((key.clone(), *path));
                    }
                }
                Err(e) => {
                    if let Ok(mut f) = self.failed.lock() {
                        f.get_or_insert(e);
                    }
                    return;
                }
            }
        }
    }

    fn file(&self, agent: &ureq::Agent, key: &str, path: &Path) -> Result<(), ImportError> {
        for (label, bundle) in bundles_of(path, self.batch)? {
            let n = post(agent, &self.base, &self.run_id, &label, &bundle)?;
            let total = self.resources.fetch_add(n, Ordering::Relaxed) + n;
            let rate = total as f64 / self.started.elapsed().as_secs_f64().max(0.001);
            self.bar
                .set_message(format!("{total} resources, {rate:.0}/s"));
        }
        let state_err =
            |e: std::io::Error| ImportError::Read(self.state.display().to_string(), e.to_string());
        let _guard = self.state_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut state = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.state)
            .map_err(state_err)?;
        std::io::Write::write_all(&mut state, format!("{key}\n").as_bytes()).map_err(state_err)?;
        self.loaded.fetch_add(1, Ordering::Relaxed);
        self.bar.inc(1);
        Ok(())
    }
}
