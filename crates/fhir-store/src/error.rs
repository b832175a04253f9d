//! Store errors: what went wrong, typed, for the server to map to HTTP in one place.

/// An error of a store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is not `sqlite://…` or `postgres://…`.
    #[error("unsupported database URL '{0}': use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("cannot open the database: {0}")]
    Open(String),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("no database connection available: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
    /// `If-Match` named another version than the current one.
    #[error("version conflict: expected version {expected}, current version is {current}")]
    VersionConflict { expected: i64, current: i64 },
    /// A precondition (`If-None-Match: *`, conditional match count) failed.
    #[error("{0}")]
    PreconditionFailed(String),
    /// The resource does not exist (or is deleted) where it must.
    #[error("{resource_type}/{id} is not known")]
    NotFound { resource_type: String, id: String },
    /// The resource was deleted.
    #[error("{resource_type}/{id} was deleted (version {version})")]
    Gone {
        resource_type: String,
        id: String,
        version: i64,
    },
    /// The request contradicts itself (e.g. a body id that the condition did not match).
    #[error("{message}")]
    BadRequest {
        message: String,
        expression: Option<String>,
    },
    /// The request conflicts with the current state (e.g. an id already taken).
    #[error("{0}")]
    Conflict(String),
    /// The change itself is not acceptable (e.g. a patch that breaks the resource).
    #[error("{message}")]
    Invalid {
        message: String,
        expression: Option<String>,
    },
    /// Stored data could not be read back (should never happen).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;
