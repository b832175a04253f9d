//! Logs through tracing-subscriber: human-readable by default, JSON lines on request,
//! and one line per request with method, path, status and latency. Query strings are
//! not logged: they can carry patient identifiers (nor are they in trace spans).

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use tracing::{Instrument, Level};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::telemetry::{OtlpProtocol, Telemetry};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Installs the global subscriber: logs filtered by `level` (`RUST_LOG` overrides it
/// when set) and, with `otlp` (endpoint and protocol), request and store spans
/// exported to an OpenTelemetry collector ([`crate::telemetry`]) whatever the log level.
pub fn init(
    format: LogFormat,
    level: &str,
    otlp: Option<(&str, OtlpProtocol)>,
) -> Result<Option<Telemetry>, String> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Human => Box::new(fmt),
        LogFormat::Json => Box::new(fmt.json().flatten_event(true)),
    };
    let (otel, telemetry) = match otlp {
        Some((endpoint, protocol)) => {
            let (layer, telemetry) = crate::telemetry::layer(endpoint, protocol)?;
            let spans = Targets::new()
                .with_target("fhir_server::request", Level::INFO)
                .with_target("fhir_server::store", Level::INFO);
            (Some(layer.with_filter(spans)), Some(telemetry))
        }
        None => (None, None),
    };
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .try_init();
    Ok(telemetry)
}

/// Middleware: one log line per request.
pub async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let method = req.method().to_string();
    let path = req.path().to_string();
    let span = crate::telemetry::on().then(|| {
        let interaction = crate::http::interaction::label(&method, &path);
        crate::telemetry::request_span(req.headers(), &method, &path, interaction)
    });
    let call = next.call(req);
    let res = match &span {
        Some(span) => call.instrument(span.clone()).await?,
        None => call.await?,
    };
    if let Some(span) = &span {
        let status = res.status().as_u16();
        span.record("http.response.status_code", status);
        if status >= 500 {
            span.record("otel.status_code", "ERROR");
        }
    }
    tracing::info!(
        target: "access",
        method = %method,
        path = %path,
        status = res.status().as_u16(),
        latency_ms = start.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    Ok(res)
}
