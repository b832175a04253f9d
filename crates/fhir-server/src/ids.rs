//! Resource ids as the spec writes them (`[A-Za-z0-9\-\.]{1,64}`), checked wherever an id
//! comes from outside: URLs, bodies, tokens, export and import requests.

use crate::error::ApiError;

/// The spec's id syntax: 1 to 64 of `A-Z a-z 0-9 - .`, except `.` and `..`, which
/// URLs cannot carry as a path segment (clients and proxies resolve them away), so a
/// resource with such an id could never be read back.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

pub fn check_id(id: &str) -> Result<(), ApiError> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(ApiError::bad(format!(
            "'{id}' is not a valid resource id (1-64 characters of A-Z, a-z, 0-9, '-' and '.', not '.' or '..')"
        )))
    }
}
