//! Limits on the request line, answered as FHIR errors. The HTTP layer itself refuses
//! a target over 64 KiB (400) and a request head over 128 KiB (431) before any handler
//! runs, with no body; a URL over [`MAX_URI`] is refused here first, with a 414 and an
//! OperationOutcome that says to search with POST `_search` instead.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::ResponseError;

use crate::error::ApiError;

/// The longest request target (path and query) served, in bytes.
pub const MAX_URI: usize = 32 * 1024;

/// Middleware: 414 for a request target longer than [`MAX_URI`].
pub async fn uri_length(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if len <= MAX_URI {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let resp = ApiError::UriTooLong(len, MAX_URI).error_response();
    Ok(req.into_response(resp).map_into_right_body())
}
