//! Bulk `$import` (`POST [base]/$import`): NDJSON files named by URL are loaded in the
//! background, as the Bulk Data Import draft ("ping and pull") and HAPI FHIR's `$import`
//! describe it. The kick-off names the inputs ([`request`]); the server fetches each
//! one ([`source`]: `file://` under a configured folder, `http(s)://` under configured
//! URL prefixes) and a worker loads it batch by batch through the store's one write
//! path, validated like any write ([`worker`]). Each batch commits with the job's resume
//! point in the same database transaction, so a job resumed after a crash or a restart
//! neither loses nor duplicates a line. Lines that cannot be loaded are reported, one
//! OperationOutcome each, in the job's error files; the others load.

mod load;
pub mod request;
pub mod source;
pub mod worker;

use fhir_store::StoreError;

pub use request::{ImportInput, ImportRequest};
pub use source::Sources;
pub use worker::{ImportConfig, Importer};

/// What can go wrong with an import request or job.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("$import is asynchronous: the request needs the header 'Prefer: respond-async'")]
    NotAsync,
    /// A malformed kick-off: the message and the parameter it is about.
    #[error("{message}")]
    Parameters { message: String, at: String },
    /// An input URL this server may not read.
    #[error("{url}: {why}")]
    Source { url: String, why: String },
    #[error("no import job '{0}' is known (finished jobs are removed after their retention)")]
    JobNotFound(String),
    #[error("no file '{0}' belongs to this import")]
    FileNotFound(String),
    #[error("the import failed: {0}")]
    Failed(String),
    #[error("import file error: {0}")]
    Io(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<std::io::Error> for ImportError {
    fn from(e: std::io::Error) -> Self {
        ImportError::Io(e.to_string())
    }
}

fn bad(message: impl Into<String>, at: impl Into<String>) -> ImportError {
    ImportError::Parameters {
        message: message.into(),
        at: at.into(),
    }
}

/// An import error as the client hears it.
impl From<ImportError> for crate::error::ApiError {
    fn from(e: ImportError) -> Self {
        use crate::error::ApiError;
        use ImportError as E;
        match e {
            E::Parameters { message, at } if at.is_empty() => ApiError::bad(message),
            E::Parameters { message, at } => ApiError::bad_at(message, at),
            E::NotAsync | E::Source { .. } => ApiError::bad(e.to_string()),
            E::JobNotFound(_) | E::FileNotFound(_) => ApiError::NotFound(e.to_string()),
            E::Failed(_) => ApiError::JobFailed(e.to_string()),
            E::Store(s) => s.into(),
            E::Io(_) => ApiError::Internal(e.to_string()),
        }
    }
}
