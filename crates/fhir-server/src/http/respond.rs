//! Building responses: resources with their version headers, and other JSON bodies.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use fhir_model::{Bundle, BundleEntry, Issue, IssueType, OperationOutcome};
use fhir_store::time::http_date;
use fhir_store::StoredResource;
use serde_json::Value;

use super::negotiate::{output, Output, FHIR_JSON, FHIR_XML};
use super::prefer::Return;

/// The FHIR base URL for links: configured, or taken from the request's host.
pub fn base_url(req: &HttpRequest, configured: Option<&str>) -> String {
    match configured {
        Some(b) => b.trim_end_matches('/').to_string(),
        None => {
            let info = req.connection_info();
            format!("{}://{}/fhir", info.scheme(), info.host())
        }
    }
}

/// Writes a JSON value as the negotiated format.
pub fn json(status: StatusCode, value: &Value, out: Output) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(out.content_type())
        .body(render(value, out))
}

/// An OperationOutcome with one informational issue saying `text`.
pub fn informational(status: StatusCode, text: impl Into<String>, out: Output) -> HttpResponse {
    let oo = fhir_model::OperationOutcome::of(fhir_model::Issue::information(
        fhir_model::IssueType::Informational,
        text,
    ));
    json(status, &oo.to_value(), out)
}

/// A resource's JSON as the body text of the negotiated format (FHIR XML is a view of
/// the JSON, written from the core definitions: profiles do not change element names
/// or order).
pub fn render(value: &Value, out: Output) -> String {
    if out.xml {
        return fhir_model::xml::to_xml(fhir_model::Definitions::r4(), value, out.pretty)
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "a response could not be written as XML");
                let oo = OperationOutcome::of(Issue::error(
                    IssueType::Exception,
                    format!("the response could not be written as XML: {e}"),
                ));
                fhir_model::xml::to_xml(fhir_model::Definitions::r4(), &oo.to_value(), false)
                    .unwrap_or_default()
            });
    }
    if out.pretty {
        fhir_model::json::to_string_pretty(value)
    } else {
        fhir_model::json::to_string(value)
    }
}

/// A Bundle whose entries' resources are stored versions (`stored[i]` for entry `i`;
/// `None`: the entry has its resource, or none): each written into the body as it is
/// stored, as a read serves it, instead of parsed and written again (most of the CPU
/// of a page of twenty resources went to that); `_pretty` and XML are rendered from the
/// parsed resources.
pub fn bundle_as_stored(
    status: StatusCode,
    mut bundle: Bundle,
    stored: &[Option<&StoredResource>],
    out: Output,
) -> HttpResponse {
    let texts: Vec<Option<&str>> = stored
        .iter()
        .map(|s| s.map(|s| s.content.as_str()))
        .collect();
    if out.xml || out.pretty {
        for (e, text) in bundle.entry.iter_mut().zip(texts) {
            if let Some(text) = text {
                e.resource = fhir_model::json::parse(text.as_bytes()).ok();
            }
        }
        return json(status, &bundle.to_value(), out);
    }
    HttpResponse::build(status)
        .content_type(out.content_type())
        .body(spliced(bundle, &texts))
}

/// The Bundle's JSON text with `stored[i]` as entry `i`'s resource. Written by hand
/// because serde cannot splice in text already written: `entry` is the last member a
/// Bundle has, and in an entry `resource` follows `link` and `fullUrl` and precedes
/// the rest (the order of Bundle.entry's elements).
fn spliced(mut bundle: Bundle, stored: &[Option<&str>]) -> String {
    // Serializing these types cannot fail: their keys are strings.
    fn text<T: serde::Serialize>(v: &T) -> String {
        serde_json::to_string(v).unwrap_or_default()
    }
    let entries = std::mem::take(&mut bundle.entry);
    let mut out = text(&bundle);
    if entries.is_empty() {
        return out;
    }
    let size: usize = stored.iter().flatten().map(|s| s.len() + 256).sum();
    out.reserve(size + 16);
    out.pop(); // the closing brace
    out.push_str(",\"entry\":[");
    for (i, mut e) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let Some(raw) = stored.get(i).copied().flatten() else {
            out.push_str(&text(&e));
            continue;
        };
        // `{"link":…,"fullUrl":…` then the resource, then the rest.
        let head = BundleEntry {
            link: std::mem::take(&mut e.link),
            full_url: e.full_url.take(),
            ..Default::default()
        };
        let head = text(&head);
        out.push_str(&head[..head.len() - 1]);
        if head.len() > 2 {
            out.push(',');
        }
        out.push_str("\"resource\":");
        out.push_str(raw);
        e.resource = None;
        let rest = text(&e);
        if rest.len() > 2 {
            out.push(',');
            out.push_str(&rest[1..]);
        } else {
            out.push('}');
        }
    }
    out.push_str("]}");
    out
}

/// Stored JSON text as the body: served as written unless `_pretty` or XML asks
/// otherwise.
pub fn stored_body(content: &str, out: Output) -> String {
    if !out.pretty && !out.xml {
        return content.to_string();
    }
    match fhir_model::json::parse(content.as_bytes()) {
        Ok(v) => render(&v, out),
        Err(_) => content.to_string(),
    }
}

/// `ETag` and `Last-Modified` of a version.
pub fn version_headers(b: &mut HttpResponseBuilder, stored: &StoredResource) {
    b.insert_header((header::ETAG, stored.etag()));
    b.insert_header((header::LAST_MODIFIED, http_date(stored.last_updated)));
}

/// A read or vread: the resource with its version headers.
pub fn resource(status: StatusCode, stored: &StoredResource, out: Output) -> HttpResponse {
    let mut b = HttpResponse::build(status);
    version_headers(&mut b, stored);
    b.content_type(out.content_type())
        .body(stored_body(&stored.content, out))
}

/// A read of part of a resource (`_summary`, `_elements`), tagged SUBSETTED.
pub fn resource_subset(
    stored: &StoredResource,
    out: Output,
    defs: &fhir_model::Definitions,
    subset: &fhir_model::Subset,
) -> HttpResponse {
    let full = match fhir_model::json::parse(stored.content.as_bytes()) {
        Ok(v) => v,
        Err(_) => return resource(StatusCode::OK, stored, out),
    };
    let mut r = json(StatusCode::OK, &defs.subset(&full, subset), out);
    let mut b = HttpResponse::Ok();
    version_headers(&mut b, stored);
    for (k, v) in b.finish().headers() {
        r.headers_mut().insert(k.clone(), v.clone());
    }
    r
}

/// The answer to a write, shaped by `Prefer: return=…`; `Location` when asked.
pub fn written(
    status: StatusCode,
    stored: &StoredResource,
    out: Output,
    ret: Return,
    base: &str,
    location: bool,
) -> HttpResponse {
    let mut b = HttpResponse::build(status);
    version_headers(&mut b, stored);
    if location {
        b.insert_header((
            header::LOCATION,
            format!("{base}/{}", stored.versioned_path()),
        ));
    }
    match ret {
        Return::Minimal => b.finish(),
        Return::Representation => b
            .content_type(out.content_type())
            .body(stored_body(&stored.content, out)),
        Return::OperationOutcome => {
            let what = match status {
                StatusCode::CREATED => "created",
                _ => "updated",
            };
            let oo = OperationOutcome::of(Issue::information(
                IssueType::Informational,
                format!(
                    "{}/{} {what}: version {}",
                    stored.res_type, stored.res_id, stored.version
                ),
            ));
            let body = json(status, &oo.to_value(), out);
            let mut r = body;
            for (k, v) in b.finish().headers() {
                r.headers_mut().insert(k.clone(), v.clone());
            }
            r
        }
    }
}

/// Middleware: an error's OperationOutcome in the format the request asked for. Errors
/// are answered as FHIR JSON wherever they arise (handlers, authentication, limits);
/// when the request asked for XML (`Accept`, `_format`), the outcome is written again
/// as XML here, in one place. An outcome is small, so reading it whole costs nothing.
pub async fn errors_in_format(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<
    actix_web::dev::ServiceResponse<actix_web::body::EitherBody<impl actix_web::body::MessageBody>>,
    actix_web::Error,
> {
    // Bulk Data answers in FHIR JSON only ("Accept … Currently, only
    // application/fhir+json is supported"), its errors too.
    let bulk = req.path().contains("/$export");
    let out = output(req.request()).ok().filter(|o| o.xml && !bulk);
    let res = next.call(req).await?;
    let json_error = res.status().as_u16() >= 400
        && res
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes() == FHIR_JSON.as_bytes());
    let Some(out) = out.filter(|_| json_error) else {
        return Ok(res.map_into_left_body());
    };
    let (req, res) = res.into_parts();
    let (head, body) = res.into_parts();
    let bytes = actix_web::body::to_bytes(body).await.map_err(|e| {
        actix_web::error::ErrorInternalServerError(format!(
            "the error response could not be read: {}",
            e.into()
        ))
    })?;
    let text = match fhir_model::json::parse(&bytes) {
        Ok(v) => render(&v, out),
        Err(_) => String::from_utf8_lossy(&bytes).into_owned(),
    };
    let mut res = head.set_body(text);
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(FHIR_XML),
    );
    Ok(actix_web::dev::ServiceResponse::new(req, res.map_into_boxed_body()).map_into_right_body())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fhir_model::{BundleType, EntrySearch, SearchEntryMode};
    use serde_json::json;

    #[test]
    fn stored_resources_are_spliced_in_as_written() {
        let entry = |url: Option<&str>, resource: Option<Value>| BundleEntry {
            full_url: url.map(str::to_string),
            resource,
            search: Some(EntrySearch {
                mode: Some(SearchEntryMode::Match),
                score: None,
            }),
            ..Default::default()
        };
        let bundle = Bundle::new(BundleType::Searchset)
            .total(2)
            .entry(entry(Some("http://x/fhir/Observation/1"), None))
            .entry(entry(
                None,
                Some(json!({"resourceType": "OperationOutcome"})),
            ))
            .entry(BundleEntry::default());
        let raw = r#"{"resourceType":"Observation","id":"1","valueQuantity":{"value":1.50}}"#;
        let text = spliced(bundle, &[Some(raw), None, Some(raw)]);
        let first = format!(
            r#"{{"fullUrl":"http://x/fhir/Observation/1","resource":{raw},"search":{{"mode":"match"}}}}"#
        );
        assert!(text.contains(&first), "{text}");
        assert!(
            text.ends_with(&format!(r#",{{"resource":{raw}}}]}}"#)),
            "{text}"
        );
        let parsed: Value = fhir_model::json::parse(text.as_bytes()).unwrap();
        assert_eq!(
            parsed["entry"][1]["resource"]["resourceType"],
            "OperationOutcome"
        );
        assert_eq!(parsed["total"], 2);
        let empty = spliced(Bundle::new(BundleType::History), &[]);
        assert_eq!(empty, r#"{"resourceType":"Bundle","type":"history"}"#);
    }
}
