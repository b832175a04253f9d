//! Content negotiation (`Accept`, `_format`, `_pretty`) and request media types.

use actix_web::http::header;
use actix_web::HttpRequest;

use crate::error::ApiError;

pub use crate::error::FHIR_JSON;
pub const PLAIN_JSON: &str = "application/json; charset=utf-8";
pub const FHIR_XML: &str = "application/fhir+xml; charset=utf-8";

/// How to write the response body (the default: FHIR JSON, not pretty).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Output {
    /// `application/json` was asked for rather than `application/fhir+json`.
    pub plain_json: bool,
    /// FHIR XML was asked for (`application/fhir+xml`, `application/xml`, `text/xml`,
    /// `_format=xml`).
    pub xml: bool,
    pub pretty: bool,
}

impl Output {
    const fn of(wanted: &Wanted, pretty: bool) -> Output {
        Output {
            plain_json: matches!(wanted, Wanted::PlainJson),
            xml: matches!(wanted, Wanted::Xml),
            pretty,
        }
    }

    pub fn content_type(&self) -> &'static str {
        if self.xml {
            FHIR_XML
        } else if self.plain_json {
            PLAIN_JSON
        } else {
            FHIR_JSON
        }
    }
}

enum Wanted {
    FhirJson,
    PlainJson,
    Xml,
    Other,
}

fn classify(mime: &str) -> Wanted {
    // `_format=application/fhir+json` unencoded arrives as "application/fhir json".
    let m = mime
        .replace(' ', "+")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match m.as_str() {
        "json" | "application/fhir+json" | "application/json+fhir" | "*/*" | "application/*" => {
            Wanted::FhirJson
        }
        "application/json" | "text/json" => Wanted::PlainJson,
        "xml"
        | "application/fhir+xml"
        | "application/xml+fhir"
        | "application/xml"
        | "text/xml" => Wanted::Xml,
        _ => Wanted::Other,
    }
}

/// A query parameter's first value.
pub fn query_param(req: &HttpRequest, name: &str) -> Option<String> {
    form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Decides the response format from `_format` (wins) or `Accept`: FHIR JSON, plain
/// JSON or FHIR XML; other formats are 406 Not Acceptable.
pub fn output(req: &HttpRequest) -> Result<Output, ApiError> {
    let pretty = query_param(req, "_pretty").is_some_and(|v| v == "true");
    if let Some(format) = query_param(req, "_format") {
        return match classify(&format) {
            Wanted::Other => Err(ApiError::NotAcceptable(format!(
                "_format '{format}' is not supported: this server returns application/fhir+json or application/fhir+xml"
            ))),
            wanted => Ok(Output::of(&wanted, pretty)),
        };
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.trim().is_empty() {
        return Ok(Output::of(&Wanted::FhirJson, pretty));
    }
    for item in accept.split(',') {
        let q_zero = item.split(';').skip(1).any(|p| {
            let p = p.trim().replace(' ', "");
            p.strip_prefix("q=").and_then(|q| q.parse::<f32>().ok()) == Some(0.0)
        });
        // `fhirVersion` (http.html#version-parameter): this server speaks 4.0 only.
        let other_version = item.split(';').skip(1).any(|p| {
            let p = p.trim().replace(' ', "");
            p.strip_prefix("fhirVersion=")
                .is_some_and(|v| !v.starts_with("4.0"))
        });
        if q_zero || other_version {
            continue;
        }
        match classify(item) {
            Wanted::Other => {}
            wanted => return Ok(Output::of(&wanted, pretty)),
        }
    }
    Err(ApiError::NotAcceptable(format!(
        "Accept '{accept}': none of the accepted media types is supported; this server returns \
         application/fhir+json, application/json or application/fhir+xml"
    )))
}

/// `_summary` / `_elements` on a read: the subset asked for, if any.
pub fn subset(req: &HttpRequest) -> Result<Option<fhir_model::Subset>, ApiError> {
    use fhir_model::{Subset, Summary};
    match (query_param(req, "_summary"), query_param(req, "_elements")) {
        (Some(_), Some(_)) => Err(ApiError::bad_at(
            "_summary and _elements cannot be combined",
            "_summary",
        )),
        (Some(s), None) => match Summary::parse(&s) {
            Some(m) => Ok(Some(Subset::Summary(m))),
            None if s == "count" => Err(ApiError::bad_at(
                "_summary=count applies to searches, not reads",
                "_summary",
            )),
            None => Err(ApiError::bad_at(
                format!("_summary '{s}' is not one of true, text, data, count, false"),
                "_summary",
            )),
        },
        (None, Some(e)) => {
            let names: Vec<String> = e
                .split(',')
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .collect();
            if names.is_empty() {
                return Err(ApiError::bad_at("_elements lists no element", "_elements"));
            }
            Ok(Some(Subset::Elements(names)))
        }
        (None, None) => Ok(None),
    }
}

/// The request body's format from its media type: FHIR JSON (or plain JSON; a missing
/// `Content-Type` is taken as JSON) or FHIR XML (`true`); others are 415.
pub fn body_is_xml(req: &HttpRequest) -> Result<bool, ApiError> {
    let Some(ct) = req.headers().get(header::CONTENT_TYPE) else {
        return Ok(false);
    };
    let ct = ct.to_str().unwrap_or("");
    match classify(ct) {
        Wanted::FhirJson | Wanted::PlainJson => Ok(false),
        Wanted::Xml => Ok(true),
        Wanted::Other => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type '{ct}' is not supported: send application/fhir+json or application/fhir+xml"
        ))),
    }
}

/// The media type of the body, lower-case, without parameters.
pub fn content_type(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}
