//! HTTP details of the FHIR API: content negotiation, the Prefer header, request bodies,
//! conditional-request headers, and building resource responses.

pub mod body;
pub mod headers;
pub mod interaction;
pub mod limits;
pub mod negotiate;
pub mod params;
pub mod peer;
pub mod prefer;
pub mod ratelimit;
pub mod respond;
pub mod security;

use std::sync::Arc;

use actix_web::{HttpMessage, HttpRequest};

use crate::access::Access;

/// The authenticated caller of a request (put there by authentication); `None` when
/// authentication is off or the path is public.
pub fn caller(req: &HttpRequest) -> Option<Arc<Access>> {
    req.extensions().get::<Arc<Access>>().cloned()
}
