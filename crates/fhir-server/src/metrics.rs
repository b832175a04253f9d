//! Prometheus metrics at `GET /metrics` (text exposition format 0.0.4): requests by
//! interaction and status with their latencies, the database pool and the waits for
//! it and for the SQLite writer, the read cache, the work waiting in the database
//! (bulk jobs, the change feed, undelivered notifications, audit events), the audit
//! writer's queue, and the process (CPU, memory, open files).
//!
//! Everything is recorded through the `metrics` facade (the store records its own
//! events the same way) into metrics-exporter-prometheus's recorder, installed once
//! per process; gauges of state (pool, backlog) are read when `/metrics` is scraped.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::error::ApiError;
use crate::guard;
use crate::http::interaction;
use crate::state::AppState;

/// Bucket bounds (seconds) of every latency and wait histogram: 0.5 ms to 30 s.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How often histogram samples are folded into their buckets between scrapes.
const UPKEEP: Duration = Duration::from_secs(5);

/// The installed recorder.
pub struct Metrics {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
}

static INSTALLED: OnceLock<Option<Metrics>> = OnceLock::new();

/// Installs the recorder (once per process; later calls return the same); `None` if
/// another recorder was installed first.
pub fn install() -> Option<&'static Metrics> {
    INSTALLED
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP);
                    upkeep.run_upkeep();
                })
                .ok()?;
            let process = metrics_process::Collector::default();
            process.describe();
            describe();
            Some(Metrics { handle, process })
        })
        .as_ref()
}

fn installed() -> Option<&'static Metrics> {
    INSTALLED.get().and_then(Option::as_ref)
}

fn describe() {
    describe_counter!(
        "fhir_http_requests_total",
        "HTTP requests answered, by interaction (or operation) and status code"
    );
    describe_histogram!(
        "fhir_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time from a request's arrival to its response, by interaction"
    );
    describe_gauge!(
        "fhir_http_requests_in_flight",
        "Requests being answered now"
    );
    describe_histogram!(
        "fhir_db_pool_wait_seconds",
        metrics::Unit::Seconds,
        "Time a request waited for a database connection"
    );
    describe_histogram!(
        "fhir_db_write_lock_wait_seconds",
        metrics::Unit::Seconds,
        "Time a write waited for SQLite's one writer (not used on PostgreSQL)"
    );
    describe_gauge!(
        "fhir_db_pool_connections",
        "Database connections: max (the pool's size), open, idle"
    );
    describe_counter!(
        "fhir_read_cache_requests_total",
        "Reads through the read cache: hit, checked (used after a version check), miss"
    );
    describe_gauge!("fhir_export_jobs", "Bulk export jobs by status");
    describe_gauge!("fhir_import_jobs", "Bulk import jobs by status");
    describe_gauge!(
        "fhir_subscription_changes_pending",
        "Committed changes not yet matched against the subscriptions"
    );
    describe_gauge!(
        "fhir_subscription_events_pending",
        "Notifications waiting for delivery (or for a retry)"
    );
    describe_gauge!(
        "fhir_audit_events_unprojected",
        "Logged AuditEvents not yet searchable"
    );
    describe_gauge!(
        "fhir_audit_queue_events",
        "AuditEvents of reads and searches waiting for the audit writer"
    );
}

/// Middleware: counts each request and its latency, by interaction and status.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if installed().is_none() {
        return next.call(req).await;
    }
    let start = Instant::now();
    let label = interaction::label(req.method().as_str(), req.path());
    let _in_flight = InFlight::new();
    let res = next.call(req).await;
    let status = match &res {
        Ok(r) => r.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    counter!("fhir_http_requests_total", "interaction" => label, "status" => status_label(status))
        .increment(1);
    histogram!("fhir_http_request_duration_seconds", "interaction" => label)
        .record(start.elapsed());
    res
}

/// Counts a request in flight until dropped (also when its client leaves and the
/// request's future is dropped before it ends).
struct InFlight;

impl InFlight {
    fn new() -> InFlight {
        gauge!("fhir_http_requests_in_flight").increment(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        gauge!("fhir_http_requests_in_flight").decrement(1.0);
    }
}

/// The status code as a label (a static string for the codes this server answers).
fn status_label(status: u16) -> &'static str {
    const CODES: &[(u16, &str)] = &[
        (200, "200"),
        (201, "201"),
        (202, "202"),
        (204, "204"),
        (206, "206"),
        (301, "301"),
        (302, "302"),
        (304, "304"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (406, "406"),
        (409, "409"),
        (410, "410"),
        (412, "412"),
        (413, "413"),
        (414, "414"),
        (415, "415"),
        (422, "422"),
        (428, "428"),
        (429, "429"),
        (431, "431"),
        (500, "500"),
        (501, "501"),
        (503, "503"),
    ];
    CODES
        .iter()
        .find(|(c, _)| *c == status)
        .map_or("other", |(_, s)| s)
}

/// `GET /metrics` on the API's listener: for operators ([`crate::access::decide_metrics`]).
pub async fn scrape(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = guard::access(&req);
    crate::access::decide_metrics(&guard::context(&state, caller.as_deref()))?;
    render(&state).await
}

/// `GET /metrics` on the separate metrics listener (`--metrics-listen`): no token.
pub async fn scrape_open(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    render(&state).await
}

async fn render(state: &AppState) -> Result<HttpResponse, ApiError> {
    let Some(m) = installed() else {
        return Err(ApiError::NotFound("metrics are off (--metrics off)".into()));
    };
    let pool = state.store.pool_state();
    for (kind, n) in [("max", pool.max), ("open", pool.open), ("idle", pool.idle)] {
        gauge!("fhir_db_pool_connections", "state" => kind).set(n);
    }
    // The backlog is a few counts; a database that does not answer leaves the last
    // figures in place (the pool's and the requests' figures say what is wrong).
    match state.blocking(|s| s.backlog()).await {
        Ok(b) => record_backlog(&b),
        Err(e) => tracing::warn!(error = ?e, "metrics: cannot read the backlog"),
    }
    m.process.collect();
    m.handle.run_upkeep();
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(m.handle.render()))
}

fn record_backlog(b: &fhir_store::observe::Backlog) {
    for (name, jobs) in [
        ("fhir_export_jobs", &b.export_jobs),
        ("fhir_import_jobs", &b.import_jobs),
    ] {
        for status in ["queued", "running", "completed", "failed"] {
            let n = jobs
                .iter()
                .filter(|(s, _)| s == status)
                .map(|(_, n)| *n)
                .sum::<i64>();
            gauge!(name, "status" => status).set(n as f64);
        }
    }
    gauge!("fhir_subscription_changes_pending").set(b.changes as f64);
    gauge!("fhir_subscription_events_pending").set(b.events as f64);
    gauge!("fhir_audit_events_unprojected").set(b.audit_unprojected as f64);
}
