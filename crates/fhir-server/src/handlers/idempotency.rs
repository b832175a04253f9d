//! `Idempotency-Key` on transaction Bundles (after the IETF draft "The
//! Idempotency-Key HTTP Header Field"): a client that did not hear the answer — a
//! timeout, a dropped connection, a crashed or killed import — sends the same request
//! with the same key again and gets the first answer, not a second copy of every
//! resource. The key is recorded with the writes in one database transaction.
//!
//! - a known key with the same body: the recorded response, 200, with
//!   `Idempotent-Replayed: true`;
//! - a known key with another body: 422;
//! - the same key in flight twice at once: the later one fails with 409.
//!
//! Keys are per client: two clients never see each other's.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::guard;
use crate::http::negotiate::Output;
use crate::state::AppState;

/// The longest key accepted.
const MAX_KEY: usize = 255;

/// A request's idempotency key (namespaced by client) and body fingerprint.
#[derive(Debug, Clone)]
pub struct Idempotent {
    pub key: String,
    pub fingerprint: String,
}

/// The key of `req`, if it has one; 400 for a malformed one.
pub fn of(req: &HttpRequest, body: &[u8]) -> Result<Option<Idempotent>, ApiError> {
    let Some(value) = req.headers().get("Idempotency-Key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(|k| k.trim().trim_matches('"'))
        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY)
        .ok_or_else(|| {
            ApiError::bad(format!(
                "Idempotency-Key must be 1-{MAX_KEY} visible ASCII characters"
            ))
        })?;
    let client = guard::access(req).map_or_else(String::new, |a| a.client_id.clone());
    Ok(Some(Idempotent {
        key: format!("{client}\n{key}"),
        fingerprint: hex::encode(Sha256::digest(body)),
    }))
}

/// The recorded answer to a request already carried out under this key, if any.
pub async fn replay(
    state: &AppState,
    idem: &Idempotent,
    out: Output,
) -> Result<Option<HttpResponse>, ApiError> {
    let key = idem.key.clone();
    let Some(recorded) = state.blocking(move |s| s.idempotent(&key)).await? else {
        return Ok(None);
    };
    if recorded.fingerprint != idem.fingerprint {
        return Err(ApiError::Unprocessable(
            "this Idempotency-Key was used for a different request; use a new key".into(),
            None,
        ));
    }
    let body = crate::http::respond::stored_body(&recorded.response, out);
    Ok(Some(
        HttpResponse::build(StatusCode::OK)
            .content_type(out.content_type())
            .insert_header(("Idempotent-Replayed", "true"))
            .body(body),
    ))
}
