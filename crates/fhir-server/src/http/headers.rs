//! Conditional-request headers: `If-Match`, `If-None-Match`, `If-Modified-Since`,
//! `If-None-Exist`.

use actix_web::HttpRequest;

use crate::error::ApiError;

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// A version from an ETag (`W/"3"`, `"3"` or `3`).
pub fn parse_etag_version(value: &str) -> Option<i64> {
    let v = value.trim();
    let v = v.strip_prefix("W/").unwrap_or(v);
    v.trim_matches('"').parse().ok()
}

/// `If-Match`: the version the client expects to replace. A header that is present
/// but unreadable is refused, never ignored: ignoring it would make the write
/// unconditional.
pub fn if_match(req: &HttpRequest) -> Result<Option<i64>, ApiError> {
    if req
        .headers()
        .get("if-match")
        .is_some_and(|v| v.to_str().is_err())
    {
        return Err(ApiError::bad("If-Match is not a readable ETag"));
    }
    match header(req, "if-match") {
        None => Ok(None),
        Some(v) => parse_etag_version(v).map(Some).ok_or_else(|| {
            ApiError::bad(format!(
                "If-Match '{v}' is not a version ETag such as W/\"1\""
            ))
        }),
    }
}

/// `If-None-Match` on a read: the versions the client already has (`*` is any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoneMatch {
    Any,
    Versions(Vec<i64>),
}

impl NoneMatch {
    /// `*` or a list of ETags (`W/"1", W/"2"`).
    pub fn parse(v: &str) -> NoneMatch {
        if v.trim() == "*" {
            return NoneMatch::Any;
        }
        NoneMatch::Versions(v.split(',').filter_map(parse_etag_version).collect())
    }

    /// Whether a read of `version`, last updated at `last_updated` (ms), is answered
    /// 304 Not Modified, given also `If-Modified-Since` (ms), which counts only
    /// without `If-None-Match` (RFC 9110, 13.1.3).
    pub fn not_modified(
        none_match: Option<&NoneMatch>,
        modified_since: Option<i64>,
        version: i64,
        last_updated: i64,
    ) -> bool {
        match none_match {
            Some(NoneMatch::Any) => true,
            Some(NoneMatch::Versions(v)) => v.contains(&version),
            None => modified_since.is_some_and(|since| last_updated / 1000 <= since / 1000),
        }
    }
}

pub fn if_none_match(req: &HttpRequest) -> Option<NoneMatch> {
    header(req, "if-none-match").map(NoneMatch::parse)
}

/// `If-Modified-Since` in milliseconds; an unreadable date is ignored, as HTTP says.
pub fn if_modified_since(req: &HttpRequest) -> Option<i64> {
    header(req, "if-modified-since").and_then(fhir_store::time::parse_http_date)
}

/// `If-None-Exist`: the query part of a search (`identifier=a|b`).
pub fn if_none_exist(req: &HttpRequest) -> Option<String> {
    header(req, "if-none-exist").map(|v| match v.split_once('?') {
        Some((_, q)) => q.to_string(),
        None => v.to_string(),
    })
}
