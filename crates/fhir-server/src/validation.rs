//! Validation of what clients write (create, update, Bundle entries, bulk import), with
//! `fhir-validation` doing the checking: the validator (loaded in the background at
//! start-up) and when a report rejects a write. Requests are validated, and
//! `$validate` answered, by `handlers::validate`, on the blocking pool so that a slow
//! validation never stalls other requests.
//!
//! Errors reject a write with 422 and the OperationOutcome; warnings are accepted
//! unless the server rejects warnings (`--reject-warnings`) or the request says
//! `Prefer: handling=strict`; `Prefer: handling=lenient` accepts errors other than
//! syntax (they are still reported by `$validate`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use fhir_validation::{ValidationReport, Validator};

use crate::error::ApiError;

/// The validator, built in the background at start-up (it takes a moment). Clones
/// share it.
#[derive(Clone)]
pub struct Validation {
    cell: Arc<OnceLock<Result<Arc<Validator>, String>>>,
    ready: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    /// Validate creates, updates and Bundle entries.
    pub on_write: bool,
    /// Warnings reject writes too.
    pub reject_warnings: bool,
}

impl Validation {
    /// Starts building the R4 validator plus every `.tgz` package in `packages`.
    pub fn start(packages: Option<PathBuf>, on_write: bool, reject_warnings: bool) -> Validation {
        let cell = Arc::new(OnceLock::new());
        let ready = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let (c, r) = (cell.clone(), ready.clone());
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let built = build(packages.as_deref()).map(Arc::new);
            match &built {
                Ok(_) => {
                    tracing::info!(ms = started.elapsed().as_millis() as u64, "validator ready")
                }
                Err(e) => tracing::error!(error = %e, "validator failed to load"),
            }
            let _ = c.set(built);
            let (lock, cvar) = &*r;
            *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
            cvar.notify_all();
        });
        Validation {
            cell,
            ready,
            on_write,
            reject_warnings,
        }
    }

    /// The validator (blocking until it is built: call off the async executor).
    pub fn validator(&self) -> Result<Arc<Validator>, ApiError> {
        let (lock, cvar) = &*self.ready;
        let mut done = lock.lock().unwrap_or_else(|p| p.into_inner());
        while !*done {
            done = cvar.wait(done).unwrap_or_else(|p| p.into_inner());
        }
        match self.cell.get() {
            Some(Ok(v)) => Ok(v.clone()),
            Some(Err(e)) => Err(ApiError::Internal(format!("validator unavailable: {e}"))),
            None => Err(ApiError::Internal("validator unavailable".into())),
        }
    }
}

/// The R4 validator with the packages of a folder.
pub fn build(packages: Option<&Path>) -> Result<Validator, String> {
    let mut v = Validator::r4();
    let Some(dir) = packages else {
        return Ok(v);
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "tgz"))
        .collect();
    files.sort();
    for f in files {
        v.add_package_file(&f)
            .map_err(|e| format!("{}: {e}", f.display()))?;
        tracing::info!(package = %f.display(), "package loaded");
    }
    Ok(v)
}

/// How strictly a request's writes are judged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strictness {
    Lenient,
    #[default]
    Normal,
    Strict,
}

/// Whether a report rejects a write.
pub fn rejects(report: &ValidationReport, s: Strictness) -> bool {
    match s {
        Strictness::Lenient => false,
        Strictness::Normal => report.has_errors(),
        Strictness::Strict => {
            !report.issues.is_empty()
                && report.issues.iter().any(|i| {
                    i.severity.is_error()
                        || matches!(i.severity, fhir_validation::Severity::Warning)
                })
        }
    }
}
