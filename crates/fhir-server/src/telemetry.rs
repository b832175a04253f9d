//! OpenTelemetry traces, off unless `--otlp-endpoint` is set: each request is a span
//! (its interaction, method, path and status; a W3C `traceparent` header from the
//! caller becomes its parent), each blocking store call a child span, and the spans go
//! in batches, from a background thread, to an OTLP/HTTP collector (protobuf, or JSON
//! with `--otlp-protocol http/json`). The service is named by `OTEL_SERVICE_NAME`, else
//! `fhir-server`.
//!
//! The exporter sends with ureq (the HTTP client the server already has, on rustls with
//! ring) through opentelemetry-http's `HttpClient` trait, rather than pulling in
//! reqwest and a second TLS stack.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The wire format of the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OtlpProtocol {
    /// OTLP/HTTP with protobuf bodies (collectors' default).
    #[default]
    #[value(name = "http/protobuf")]
    HttpProtobuf,
    /// OTLP/HTTP with JSON bodies.
    #[value(name = "http/json")]
    HttpJson,
}

/// Whether spans are exported (request spans are made only then).
static ON: AtomicBool = AtomicBool::new(false);

pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// The span exporter's provider; flushes what is left when shut down.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Sends the spans still queued (at the end of `serve`).
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "OpenTelemetry: the last spans were not all sent");
        }
    }
}

/// Sends OTLP requests with ureq.
#[derive(Debug)]
struct UreqClient(ureq::Agent);

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for UreqClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        // The batch processor runs exports on its own thread: a blocking call is fine.
        let (parts, body) = request.into_parts();
        let mut req = self
            .0
            .request(parts.method.as_str(), &parts.uri.to_string());
        for (name, value) in &parts.headers {
            if let Ok(v) = value.to_str() {
                req = req.set(name.as_str(), v);
            }
        }
        let res = match req.send_bytes(&body) {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(Box::new(e)),
        };
        let status = res.status();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut res.into_reader(), &mut bytes)?;
        Ok(http::Response::builder()
            .status(status)
            .body(bytes::Bytes::from(bytes))?)
    }
}

/// The signal URL: `endpoint` + `/v1/traces` unless it names it already.
fn traces_url(endpoint: &str) -> String {
    let e = endpoint.trim_end_matches('/');
    if e.ends_with("/v1/traces") {
        e.to_string()
    } else {
        format!("{e}/v1/traces")
    }
}

/// The tracing layer that turns spans into OpenTelemetry spans, and its provider.
pub fn layer<S>(
    endpoint: &str,
    protocol: OtlpProtocol,
) -> Result<(impl tracing_subscriber::Layer<S>, Telemetry), String>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let agent = ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(10))
        .build();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(UreqClient(agent))
        .with_endpoint(traces_url(endpoint))
        .with_protocol(match protocol {
            OtlpProtocol::HttpProtobuf => Protocol::HttpBinary,
            OtlpProtocol::HttpJson => Protocol::HttpJson,
        })
        .build()
        .map_err(|e| format!("OpenTelemetry exporter: {e}"))?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "fhir-server".into());
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service).build())
        .build();
    let tracer = provider.tracer("fhir-server");
    ON.store(true, Ordering::Relaxed);
    Ok((
        tracing_opentelemetry::layer().with_tracer(tracer),
        Telemetry { provider },
    ))
}

/// Reads `traceparent`/`tracestate` from actix's headers.
struct Headers<'a>(&'a actix_web::http::header::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The span of one request, child of the caller's trace when it sent one.
pub fn request_span(
    headers: &actix_web::http::header::HeaderMap,
    method: &str,
    path: &str,
    interaction: &'static str,
) -> tracing::Span {
    let span = tracing::info_span!(
        target: "fhir_server::request",
        "request",
        otel.name = %format!("{method} {interaction}"),
        otel.kind = "server",
        http.request.method = %method,
        url.path = %path,
        fhir.interaction = interaction,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    let _ = span.set_parent(parent);
    span
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_traces_path_is_added_once() {
        assert_eq!(
            super::traces_url("http://c:4318"),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            super::traces_url("http://c:4318/v1/traces/"),
            "http://c:4318/v1/traces"
        );
    }
}
