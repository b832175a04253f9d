//! Reading request bodies: size limit first, then lossless JSON.

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;
use serde_json::Value;

use crate::error::ApiError;

/// Reads the whole body, refusing more than `limit` bytes (413).
pub async fn read_limited(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad(format!("the request body could not be read: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Parses a body as its `Content-Type` says: FHIR XML into the same JSON, else JSON.
pub fn parse_body(req: &HttpRequest, bytes: &[u8]) -> Result<Value, ApiError> {
    if !crate::http::negotiate::body_is_xml(req)? {
        return parse_json(bytes);
    }
    fhir_model::xml::from_xml(fhir_model::Definitions::r4(), bytes).map_err(|e| {
        ApiError::structure(
            format!(
                "the body is not valid FHIR XML (line {}, column {}): {}",
                e.line, e.column, e.message
            ),
            e.path,
        )
    })
}

/// Parses a JSON body; syntax errors name the line and column.
pub fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::structure(
            "the request body is empty: a FHIR JSON resource is required",
            None,
        ));
    }
    fhir_model::json::parse_strict(bytes).map_err(|e| {
        ApiError::structure(
            format!(
                "the body is not valid FHIR JSON (line {}, column {}): {}",
                e.line, e.column, e.message
            ),
            None,
        )
    })
}
