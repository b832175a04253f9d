//! FHIR Bulk Data Access 2.0 export (`$export`, export.html of the Bulk Data IG): the
//! kick-off parameters ([`request`]), the decision of what a request exports
//! ([`plan::export_scope`], the one place where access checks will go), the background
//! worker that writes NDJSON files and records jobs in the database ([`worker`]), and
//! the `fhir-server export` client ([`client`]).

pub mod plan;
pub mod request;
pub mod worker;

use fhir_store::StoreError;

pub use plan::{export_scope, leave_out_unsupported, ExportPlan};
pub use request::{ExportLevel, ExportRequest, Ignored};
pub use worker::{ExportConfig, Exporter};

/// What can go wrong with an export request or job.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("$export is asynchronous: the request needs the header 'Prefer: respond-async'")]
    NotAsync,
    #[error("_outputFormat '{0}' is not supported; use application/fhir+ndjson")]
    OutputFormat(String),
    #[error("_type names '{0}', which is not a resource type")]
    UnknownType(String),
    #[error("_since '{0}' is not a FHIR instant (e.g. 2026-11-30T10:00:00Z)")]
    Since(String),
    #[error("_until '{0}' is not a FHIR instant (e.g. 2026-11-30T10:00:00Z)")]
    Until(String),
    #[error("_typeFilter '{filter}': {message}")]
    TypeFilter { filter: String, message: String },
    #[error("_elements '{0}' is not an element name or Type.element")]
    Elements(String),
    #[error("patient: {0}")]
    Patient(String),
    #[error("{0}")]
    Parameters(String),
    #[error("{parameter} {message}")]
    Unsupported { parameter: String, message: String },
    #[error("{0} may be given only once")]
    Repeated(String),
    #[error("Group/{0} is not known")]
    GroupNotFound(String),
    #[error("no export job '{0}' is known (finished jobs are removed after their retention)")]
    JobNotFound(String),
    #[error("no file '{0}' belongs to this export")]
    FileNotFound(String),
    /// The job ran and failed: the status URL answers this as the spec's error.
    #[error("the export failed: {0}")]
    Failed(String),
    #[error("export file error: {0}")]
    Io(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<std::io::Error> for ExportError {
    fn from(e: std::io::Error) -> Self {
        ExportError::Io(e.to_string())
    }
}

impl ExportError {
    /// The kick-off parameter the error is about, for `issue.expression`.
    pub fn parameter(&self) -> Option<String> {
        Some(match self {
            ExportError::OutputFormat(_) => "_outputFormat".into(),
            ExportError::UnknownType(_) => "_type".into(),
            ExportError::Since(_) => "_since".into(),
            ExportError::Until(_) => "_until".into(),
            ExportError::TypeFilter { .. } => "_typeFilter".into(),
            ExportError::Elements(_) => "_elements".into(),
            ExportError::Patient(_) => "patient".into(),
            ExportError::Unsupported { parameter, .. } | ExportError::Repeated(parameter) => {
                parameter.clone()
            }
            _ => return None,
        })
    }

    /// A problem `Prefer: handling=lenient` lets the export leave out (a parameter it
    /// does not support, an unknown type, a `_typeFilter` it cannot run).
    pub fn is_tolerable(&self) -> bool {
        matches!(
            self,
            ExportError::Unsupported { .. }
                | ExportError::Repeated(_)
                | ExportError::UnknownType(_)
                | ExportError::TypeFilter { .. }
        )
    }
}

/// An export error as the client hears it.
impl From<ExportError> for crate::error::ApiError {
    fn from(e: ExportError) -> Self {
        use crate::error::ApiError;
        if let Some(param) = e.parameter() {
            return ApiError::bad_at(e.to_string(), param.as_str());
        }
        match e {
            ExportError::NotAsync | ExportError::Parameters(_) => ApiError::bad(e.to_string()),
            ExportError::GroupNotFound(_)
            | ExportError::JobNotFound(_)
            | ExportError::FileNotFound(_) => ApiError::NotFound(e.to_string()),
            ExportError::Failed(_) => ApiError::JobFailed(e.to_string()),
            ExportError::Store(s) => s.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}
