//! Database statements stop at the request's deadline ([`fhir_model::budget`]).
//!
//! - SQLite: every connection gets a progress handler (installed for all connections
//!   the process opens, through `sqlite3_auto_extension`, since diesel does not expose
//!   its raw handle). SQLite calls it every few thousand virtual-machine steps on the
//!   thread running the statement; it interrupts the statement once that thread's
//!   deadline has passed.
//! - PostgreSQL: each session's `statement_timeout` is the request time limit (set when
//!   the pool opens the connection); the database cancels a statement that runs longer.
//!
//! A statement stopped either way fails with a database error that the store turns
//! into [`crate::StoreError::Timeout`] (see `error.rs`).

use std::os::raw::{c_char, c_int, c_void};
use std::sync::Once;

use libsqlite3_sys as ffi;

/// Virtual-machine steps between two checks of the deadline: a check is a
/// thread-local read and a clock read, negligible at this interval.
const PROGRESS_STEPS: c_int = 4096;

unsafe extern "C" fn progress(_: *mut c_void) -> c_int {
    c_int::from(fhir_model::budget::expired())
}

unsafe extern "C" fn install(
    db: *mut ffi::sqlite3,
    _err: *mut *mut c_char,
    _api: *const ffi::sqlite3_api_routines,
) -> c_int {
    // SAFETY: `db` is the connection SQLite is opening; the handler lives as long as
    // the process and keeps no pointer.
    unsafe {
        ffi::sqlite3_progress_handler(db, PROGRESS_STEPS, Some(progress), std::ptr::null_mut())
    };
    ffi::SQLITE_OK
}

/// Installs the progress handler for every SQLite connection opened from now on
/// (idempotent; call before opening the pool).
pub fn install_sqlite_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a function with the signature SQLite expects of an
        // extension entry point; it is called once per new connection.
        unsafe { ffi::sqlite3_auto_extension(Some(install)) };
    });
}
