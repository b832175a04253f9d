//! The audit trail of the HTTP API, after the IHE Basic Audit Log Patterns (BALP):
//! one AuditEvent per interaction: who (client, network address), what (interaction,
//! resource or query), when, and the outcome.
//!
//! Changes are recorded in the transaction that makes them ([`write_hook`], called by
//! the store before commit); reads, searches, operations and refused requests are
//! recorded by [`record`] (middleware) through a background writer that appends them
//! in batches, so that auditing a read costs no write transaction of its own. The
//! store chains every event to the previous one (see `fhir_store::audit`).

use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpRequest};
use fhir_store::{AuditContext, Store, WriteRecord};
use serde_json::{json, Value};

const QUEUE: usize = 20_000;
const BATCH: usize = 1_000;

/// Sends AuditEvents to the background writer.
#[derive(Clone)]
pub struct AuditSink {
    tx: SyncSender<String>,
}

impl AuditSink {
    /// Starts the background writer on `store`.
    pub fn start(store: Arc<Store>) -> AuditSink {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || write_loop(&store, &rx))
            .map_err(|e| tracing::error!(error = %e, "cannot start the audit writer"))
            .ok();
        AuditSink { tx }
    }

    /// Queues an event; when the queue is full the request waits (off the async
    /// executor) rather than the event being lost.
    pub(crate) async fn send(&self, event: String) {
        metrics::gauge!("fhir_audit_queue_events").increment(1.0);
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(event)) => {
                let tx = self.tx.clone();
                if !matches!(web::block(move || tx.send(event)).await, Ok(Ok(()))) {
                    metrics::gauge!("fhir_audit_queue_events").decrement(1.0);
                    tracing::error!("the audit writer has stopped; an audit event was not recorded")
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                metrics::gauge!("fhir_audit_queue_events").decrement(1.0);
                tracing::error!("the audit writer has stopped; an audit event was not recorded")
            }
        }
    }
}

fn write_loop(store: &Store, rx: &Receiver<String>) {
    loop {
        let first = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(e) => e,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                match project_while_idle(store, rx) {
                    Idle::Event(e) => e,
                    Idle::Done => continue,
                    Idle::Closed => return,
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let mut batch = vec![first];
        let deadline = std::time::Instant::now() + Duration::from_millis(20);
        while batch.len() < BATCH && std::time::Instant::now() < deadline {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(TryRecvError::Empty) => std::thread::sleep(Duration::from_millis(2)),
                Err(TryRecvError::Disconnected) => break,
            }
        }
        let n = batch.len();
        let mut attempt = 0;
        while let Err(e) = store.append_audit(&batch) {
            attempt += 1;
            tracing::error!(error = %e, events = n, attempt, "cannot write audit events; retrying");
            std::thread::sleep(Duration::from_millis(200 * attempt.min(25)));
        }
        metrics::gauge!("fhir_audit_queue_events").decrement(n as f64);
    }
}

/// Events projected per transaction while idle: small, so that the projection holds
/// the (SQLite) write lock only briefly and new events are logged without delay.
const PROJECT_CHUNK: i64 = 500;

enum Idle {
    /// An event arrived: log it (the projection goes on at the next idle second).
    Event(String),
    /// Everything logged is projected.
    Done,
    /// The server is stopping.
    Closed,
}

/// Makes logged events searchable, a chunk at a time, until all are or an event arrives.
fn project_while_idle(store: &Store, rx: &Receiver<String>) -> Idle {
    loop {
        match store.project_audit(PROJECT_CHUNK) {
            Ok(0) => return Idle::Done,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot project audit events");
                return Idle::Done;
            }
        }
        match rx.try_recv() {
            Ok(e) => return Idle::Event(e),
            Err(TryRecvError::Empty) => {}
            Err(TryRecvError::Disconnected) => return Idle::Closed,
        }
    }
}

/// BALP outcome codes: 0 success, 4 minor failure (client error), 8 serious (server).
fn outcome_code(status: u16) -> &'static str {
    match status {
        0..=399 => "0",
        400..=499 => "4",
        _ => "8",
    }
}

/// Who made a request, for its events.
#[derive(Debug, Clone, Default)]
pub struct Who {
    pub client: Option<String>,
    pub patient: Option<String>,
    pub address: Option<String>,
    /// `METHOD /path`.
    pub request: String,
}

/// The client and network parts of an event, from the request.
pub fn who(req: &HttpRequest) -> Who {
    let access = crate::http::caller(req);
    Who {
        client: access.as_ref().map(|a| a.client_id.clone()),
        patient: access.as_ref().and_then(|a| a.patient.clone()),
        address: req.peer_addr().map(|a| a.ip().to_string()),
        request: format!("{} {}", req.method(), req.path()),
    }
}

fn who_of(details: &Value) -> Who {
    let text = |k: &str| details.get(k).and_then(Value::as_str).map(str::to_string);
    Who {
        client: text("client"),
        patient: text("patient"),
        address: text("address"),
        request: text("request").unwrap_or_default(),
    }
}

/// The audit context of a write made for `req` (when auditing is on).
pub fn context(audit_on: bool, req: &HttpRequest) -> Option<AuditContext> {
    let source =
        crate::http::caller(req).map(|a| format!("urn:fhir-server:client:{}", a.client_id));
    if !audit_on && source.is_none() {
        return None;
    }
    let w = who(req);
    Some(AuditContext {
        source,
        details: Arc::new(json!({
            "client": w.client,
            "patient": w.patient,
            "address": w.address,
            "request": w.request,
        })),
    })
}

/// The audit context of writes a background job makes for `client` (bulk import): the
/// same `meta.source` and event details a request of that client would give.
pub fn job_context(audit_on: bool, client: Option<&str>, request: &str) -> Option<AuditContext> {
    let source = client.map(|c| format!("urn:fhir-server:client:{c}"));
    if !audit_on && source.is_none() {
        return None;
    }
    Some(AuditContext {
        source,
        details: Arc::new(json!({"client": client, "request": request})),
    })
}

/// A JSON string literal.
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

const SOURCE: &str = r#""source":{"observer":{"display":"fhir-server"},"type":[{"system":"http://terminology.hl7.org/CodeSystem/security-source-type","code":"4","display":"Application Server"}]}"#;
const SERVER_AGENT: &str = r#"{"type":{"coding":[{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"110152","display":"Destination Role ID"}]},"who":{"display":"fhir-server"},"requestor":false}"#;

/// What the log keeps of one event: the parts that vary, a few hundred bytes. The BALP
/// codings that every event repeats are added when the event is projected into an
/// AuditEvent resource ([`expand`]), so the log, its hashing and its writes stay small.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Logged {
    /// Marks the compact form (a full AuditEvent has `resourceType` instead).
    balp: u8,
    subtype: String,
    action: String,
    /// When the event happened, in ms since the epoch.
    recorded: i64,
    status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    patient: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    request: String,
    /// References of the resources the interaction touched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    resources: Vec<String>,
    /// The query, for searches and operations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    query: Option<String>,
    /// Why the request was refused, in the access decision's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// One event in the log's compact form.
pub(crate) fn event(
    w: &Who,
    subtype: &str,
    action: &str,
    status: u16,
    resources: Vec<String>,
    query: Option<String>,
    reason: Option<String>,
) -> String {
    let logged = Logged {
        balp: 1,
        subtype: subtype.to_string(),
        action: action.to_string(),
        recorded: fhir_store::time::now_millis(),
        status,
        client: w.client.clone(),
        patient: w.patient.clone(),
        address: w.address.clone(),
        request: w.request.clone(),
        resources,
        query,
        reason,
    };
    serde_json::to_string(&logged).unwrap_or_default()
}

/// The store's audit expander: the AuditEvent resource of a logged event (after the
/// Basic Audit Log Patterns, BALP). Events logged in full pass as they are.
pub fn expand(logged: Value) -> fhir_store::StoreResult<Value> {
    if logged.get("resourceType").is_some() {
        return Ok(logged);
    }
    let l: Logged = serde_json::from_value(logged)
        .map_err(|e| fhir_store::StoreError::Corrupt(format!("audit log event: {e}")))?;
    let text = full_event(&l);
    fhir_model::json::parse(text.as_bytes())
        .map_err(|e| fhir_store::StoreError::Corrupt(format!("audit event: {e}")))
}

/// A logged event as AuditEvent JSON text.
fn full_event(l: &Logged) -> String {
    use std::fmt::Write;
    let mut e = String::with_capacity(1600);
    let _ = write!(
        e,
        r#"{{"resourceType":"AuditEvent","type":{{"system":"http://terminology.hl7.org/CodeSystem/audit-event-type","code":"rest","display":"RESTful Operation"}},"subtype":[{{"system":"http://hl7.org/fhir/restful-interaction","code":{}}}],"action":{},"recorded":"{}","outcome":"{}","outcomeDesc":{},"agent":[{{"type":{{"coding":[{{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"110153","display":"Source Role ID"}}]}},"who":{{"identifier":{{"system":"urn:fhir-server:client","value":{}}}}},"requestor":true"#,
        q(&l.subtype),
        q(&l.action),
        fhir_store::time::fhir_instant(l.recorded),
        outcome_code(l.status),
        q(&match &l.reason {
            Some(why) => format!("{} → {}: {why}", l.request, l.status),
            None => format!("{} → {}", l.request, l.status),
        }),
        q(l.client.as_deref().unwrap_or("anonymous")),
    );
    if let Some(addr) = &l.address {
        let _ = write!(e, r#","network":{{"address":{},"type":"2"}}"#, q(addr));
    }
    let _ = write!(e, "}},{SERVER_AGENT}],{SOURCE}");
    let mut entities: Vec<String> = l.resources.iter().map(|r| resource_entity(r)).collect();
    entities.extend(l.query.as_deref().map(query_entity));
    entities.extend(l.patient.as_ref().map(|p| {
        format!(
            r#"{{"what":{{"reference":{}}},"type":{{"system":"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"1","display":"Person"}},"role":{{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"1","display":"Patient"}}}}"#,
            q(&format!("Patient/{p}"))
        )
    }));
    if !entities.is_empty() {
        let _ = write!(e, r#","entity":[{}]"#, entities.join(","));
    }
    e.push('}');
    e
}

fn resource_entity(reference: &str) -> String {
    format!(
        r#"{{"what":{{"reference":{}}},"type":{{"system":"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"2","display":"System Object"}},"role":{{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"4","display":"Domain Resource"}}}}"#,
        q(reference)
    )
}

fn query_entity(query: &str) -> String {
    use base64::Engine;
    format!(
        r#"{{"type":{{"system":"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"2","display":"System Object"}},"role":{{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"24","display":"Query"}},"query":"{}"}}"#,
        base64::engine::general_purpose::STANDARD.encode(query.as_bytes())
    )
}

/// The store's audit hook: one event per version written, in the writing transaction.
pub fn write_hook(ctx: &AuditContext, writes: &[WriteRecord]) -> Vec<String> {
    let w = who_of(&ctx.details);
    writes
        .iter()
        .map(|r| {
            let (subtype, action) = match r.method.as_str() {
                "POST" => ("create", "C"),
                "PUT" if r.version == 1 => ("create", "C"),
                "PUT" => ("update", "U"),
                "PATCH" => ("patch", "U"),
                _ => ("delete", "D"),
            };
            let reference = format!("{}/{}/_history/{}", r.res_type, r.id, r.version);
            event(&w, subtype, action, 200, vec![reference], None, None)
        })
        .collect()
}
