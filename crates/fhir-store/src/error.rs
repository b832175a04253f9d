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
    Database(diesel::result::Error),
    /// The connection to the database was lost or could not be made (the database is
    /// restarting or down): worth retrying shortly.
    #[error("the database is not reachable: {0}")]
    Unavailable(String),
    /// The database broke a lock cycle (deadlock) or a serialization conflict with
    /// concurrent writes by aborting this one: nothing was written; worth retrying.
    #[error("the change collided with concurrent changes of the same records: {0}")]
    Contention(String),
    /// A statement was stopped at the request's deadline (or because its client left).
    #[error("the request ran out of its time budget")]
    Timeout,
    /// The database has no room left (disk full, or SQLite's size limit).
    #[error("the database has no space left: {0}")]
    StorageFull(String),
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

impl From<diesel::result::Error> for StoreError {
    /// Statements stopped at the deadline become [`StoreError::Timeout`] and lost
    /// connections [`StoreError::Unavailable`], so that the server answers 503 for
    /// them, not 500.
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind as K, Error};
        let Error::DatabaseError(kind, info) = &e else {
            return StoreError::Database(e);
        };
        let m = info.message();
        if m == "interrupted"
            || m.contains("statement timeout")
            || m.contains("canceling statement due to user request")
        {
            return StoreError::Timeout;
        }
        if matches!(kind, K::SerializationFailure) || m.contains("deadlock detected") {
            return StoreError::Contention(m.to_string());
        }
        if m.contains("database or disk is full")
            || m.contains("No space left on device")
            || m.contains("could not extend file")
        {
            return StoreError::StorageFull(m.to_string());
        }
        let lost = matches!(kind, K::ClosedConnection | K::UnableToSendCommand)
            || m.contains("terminating connection")
            || m.contains("server closed the connection")
            || m.contains("no connection to the server")
            || m.contains("the database system is");
        if lost {
            return StoreError::Unavailable(m.to_string());
        }
        StoreError::Database(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::result::{DatabaseErrorKind, Error};

    fn db_error(kind: DatabaseErrorKind, message: &str) -> StoreError {
        Error::DatabaseError(kind, Box::new(message.to_string())).into()
    }

    #[test]
    fn deadlocks_and_serialization_failures_are_contention() {
        let deadlock = db_error(DatabaseErrorKind::Unknown, "deadlock detected");
        assert!(
            matches!(deadlock, StoreError::Contention(_)),
            "{deadlock:?}"
        );
        let serial = db_error(
            DatabaseErrorKind::SerializationFailure,
            "could not serialize access",
        );
        assert!(matches!(serial, StoreError::Contention(_)), "{serial:?}");
        let other = db_error(DatabaseErrorKind::UniqueViolation, "duplicate key");
        assert!(matches!(other, StoreError::Database(_)), "{other:?}");
    }
}
