//! Stops a PostgreSQL statement whose request was abandoned (its client disconnected),
//! instead of letting it run until `statement_timeout`.
//!
//! A statement running in the database server cannot check the request's budget as
//! SQLite's progress handler does ([`crate::deadline`]). While a request holds a
//! PostgreSQL connection, a [`Canceller`] registers a hook with the request's budget;
//! when the server cancels the budget, the hook asks the database, over a connection
//! of its own (the pool may be exhausted), to cancel the backend serving that
//! connection (`pg_cancel_backend`). The statement then fails with "canceling
//! statement due to user request", which the store reports as a timeout.
//!
//! The hook never cancels a connection that is back in the pool: dropping the
//! [`Canceller`] (before the connection returns) waits for a cancel in progress and
//! disarms it.

use std::sync::{Arc, Mutex};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, QueryResult, RunQueryDsl};
use fhir_model::budget::{self, HookGuard};

#[derive(diesel::QueryableByName)]
struct Pid {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
}

/// The backend process id of a new connection.
pub(crate) fn backend_pid(conn: &mut PgConnection) -> QueryResult<i32> {
    diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .get_result::<Pid>(conn)
        .map(|p| p.pid)
}

/// Cancels the statement of one checked-out connection if the request running on
/// this thread is cancelled, for as long as it lives.
pub(crate) struct Canceller {
    /// The backend to cancel; `None` once disarmed.
    target: Arc<Mutex<Option<i32>>>,
    _hook: HookGuard,
}

impl Canceller {
    /// Watches the current request's budget for connection `pid`; `None` outside a
    /// request.
    pub fn watch(url: &Arc<str>, pid: i32) -> Option<Canceller> {
        let target = Arc::new(Mutex::new(Some(pid)));
        let (armed, url) = (target.clone(), url.clone());
        // Budgets are cancelled on the async executor: the round trip runs apart.
        let hook = budget::on_cancel(move || {
            std::thread::spawn(move || cancel(&url, &armed));
        })?;
        Some(Canceller {
            target,
            _hook: hook,
        })
    }
}

impl Drop for Canceller {
    fn drop(&mut self) {
        *self.target.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// Cancels the armed backend's statement. The connection is made before the lock is
/// taken (it may be slow while the database is in trouble); the cancel itself runs
/// under the lock, so that the connection cannot return to the pool meanwhile.
fn cancel(url: &str, armed: &Mutex<Option<i32>>) {
    if armed.lock().unwrap_or_else(|p| p.into_inner()).is_none() {
        return;
    }
    let mut conn = match PgConnection::establish(&with_connect_timeout(url)) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "could not cancel an abandoned statement");
            return;
        }
    };
    let armed = armed.lock().unwrap_or_else(|p| p.into_inner());
    let Some(pid) = *armed else { return };
    match conn.batch_execute(&format!("SELECT pg_cancel_backend({pid})")) {
        Ok(()) => tracing::debug!(pid, "cancelled the statement of an abandoned request"),
        Err(e) => tracing::warn!(pid, error = %e, "could not cancel an abandoned statement"),
    }
}

/// `url` with a connect timeout (libpq waits for ever by default), unless it sets one.
fn with_connect_timeout(url: &str) -> String {
    if url.contains("connect_timeout=") {
        return url.to_string();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}connect_timeout=5")
}

#[cfg(test)]
mod tests {
    use super::with_connect_timeout;

    #[test]
    fn cancel_connections_time_out() {
        assert_eq!(
            with_connect_timeout("postgres://h/db"),
            "postgres://h/db?connect_timeout=5"
        );
        assert_eq!(
            with_connect_timeout("postgres://h/db?sslmode=require"),
            "postgres://h/db?sslmode=require&connect_timeout=5"
        );
        assert_eq!(
            with_connect_timeout("postgres://h/db?connect_timeout=1"),
            "postgres://h/db?connect_timeout=1"
        );
    }
}
