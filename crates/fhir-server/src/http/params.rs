//! An operation's input parameters (operations.html): those of the query string
//! (without `_format`, `_pretty` and other `_` parameters), then, for a POST, those of
//! a `Parameters` body — primitives as JSON strings, Codings, CodeableConcepts and
//! resources as their JSON.

use actix_web::{web, HttpRequest};
use serde_json::Value;

use crate::error::ApiError;
use crate::http::body::{parse_body, read_limited};

/// The parameters as (name, value) pairs, in order.
pub async fn operation_params(
    max_body_bytes: usize,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Vec<(String, Value)>, ApiError> {
    let mut out: Vec<(String, Value)> = form_urlencoded::parse(req.query_string().as_bytes())
        .filter(|(k, _)| !k.starts_with('_'))
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    if req.method() != actix_web::http::Method::POST {
        return Ok(out);
    }
    let bytes = read_limited(req, payload, max_body_bytes).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(out);
    }
    let body = parse_body(req, &bytes)?;
    if body.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(ApiError::bad_at(
            "the body of this operation is a Parameters resource",
            "resourceType",
        ));
    }
    for p in body["parameter"].as_array().into_iter().flatten() {
        let name = p.get("name").and_then(Value::as_str).unwrap_or("");
        // A parameter of parts (`$translate`'s `dependency`) keeps them.
        let parts = p
            .get("part")
            .map(|parts| serde_json::json!({ "part": parts }));
        let value = p.get("resource").cloned().or(parts).or_else(|| {
            p.as_object()?
                .iter()
                .find(|(k, _)| k.starts_with("value"))
                .map(|(_, v)| match v {
                    Value::Object(_) | Value::String(_) => v.clone(),
                    other => Value::String(other.to_string()),
                })
        });
        if let Some(v) = value {
            out.push((name.to_string(), v));
        }
    }
    Ok(out)
}
