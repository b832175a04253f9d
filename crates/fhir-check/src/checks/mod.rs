//! The checks, in the order a run makes them: the CapabilityStatement and SMART
//! discovery, content negotiation, writes (with `--write`), each resource type's
//! interactions and search parameters, error handling, Bulk Data, the removal of the
//! scratch resources, TLS.

mod bulk;
mod capability;
mod errors;
mod negotiation;
mod params;
mod tls;
mod types;
mod write;

use serde_json::Value;

use crate::client::{Client, ClientError, ClientOptions, Exchange, Response};
use crate::report::{Check, Outcome, Report};
use crate::Options;

/// Types tried when none are named, in this order, if the server claims them.
const COMMON_TYPES: &[&str] = &[
    "Patient",
    "Observation",
    "Encounter",
    "Condition",
    "Practitioner",
    "Organization",
];

/// A run's state: the client, the CapabilityStatement, the report so far.
pub(crate) struct Ctx {
    pub client: Client,
    pub options: Options,
    /// `rest[mode=server]` of the CapabilityStatement (`Null` until read).
    pub rest: Value,
    pub capability: Value,
    pub checks: Vec<Check>,
}

impl Ctx {
    pub fn record(
        &mut self,
        id: impl Into<String>,
        outcome: Outcome,
        detail: impl Into<String>,
        exchange: Option<&Exchange>,
    ) {
        self.checks.push(Check {
            id: id.into(),
            outcome,
            detail: detail.into(),
            exchange: exchange.cloned(),
        });
    }

    pub fn pass(&mut self, id: impl Into<String>, detail: impl Into<String>) {
        self.record(id, Outcome::Pass, detail, None);
    }

    pub fn fail(&mut self, id: impl Into<String>, detail: impl Into<String>, r: &Response) {
        self.record(id, Outcome::Fail, detail, Some(&r.exchange));
    }

    /// Works, but not as a SHOULD of the specification asks.
    pub fn warn(&mut self, id: impl Into<String>, detail: impl Into<String>, r: &Response) {
        self.record(id, Outcome::Warn, detail, Some(&r.exchange));
    }

    /// A check whose request got no response (or was not made).
    pub fn unanswered(&mut self, id: impl Into<String>, e: &ClientError) {
        let outcome = match e {
            ClientError::Spent(_) => Outcome::Skipped,
            ClientError::Transport(_) => Outcome::Fail,
        };
        self.record(id, outcome, e.to_string(), None);
    }

    /// The claimed resource entry of `type`, if any.
    pub fn resource(&self, resource_type: &str) -> Option<&Value> {
        self.rest["resource"]
            .as_array()?
            .iter()
            .find(|r| r["type"] == resource_type)
    }

    /// Whether `type` claims the interaction `code`.
    pub fn claims(&self, resource_type: &str, code: &str) -> bool {
        self.resource(resource_type)
            .and_then(|r| r["interaction"].as_array())
            .is_some_and(|a| a.iter().any(|i| i["code"] == code))
    }

    /// Whether the server claims the system interaction `code`.
    pub fn claims_system(&self, code: &str) -> bool {
        self.rest["interaction"]
            .as_array()
            .is_some_and(|a| a.iter().any(|i| i["code"] == code))
    }

    /// The types to try.
    fn types(&self) -> Vec<String> {
        if !self.options.types.is_empty() {
            return self.options.types.clone();
        }
        COMMON_TYPES
            .iter()
            .filter(|t| self.resource(t).is_some())
            .map(|t| t.to_string())
            .collect()
    }
}

/// Whether a response is a FHIR JSON resource of `resource_type` (with a FHIR JSON
/// content type); the problem otherwise.
pub(crate) fn resource_of(r: &Response, resource_type: &str) -> Result<Value, String> {
    let ct = r.header("Content-Type").unwrap_or_default();
    if !ct.starts_with("application/fhir+json") && !ct.starts_with("application/json") {
        return Err(format!("Content-Type is {ct:?}, not application/fhir+json"));
    }
    let v = r.json().ok_or("the body is not JSON")?;
    if v["resourceType"] != resource_type {
        return Err(format!(
            "expected a {resource_type}, got resourceType {}",
            v["resourceType"]
        ));
    }
    Ok(v)
}

/// Whether an error response carries an OperationOutcome, as http.html asks.
pub(crate) fn outcome_of(r: &Response) -> Result<(), String> {
    resource_of(r, "OperationOutcome").map(|_| ())
}

/// Runs every check.
pub fn run(options: &Options) -> Result<Report, String> {
    let client = Client::new(ClientOptions {
        base: options.base.trim_end_matches('/').to_string(),
        token: options.token.clone(),
        rate: options.rate,
        budget: options.budget,
        timeout: options.timeout,
        ca_file: options.ca_file.clone(),
    })?;
    let mut ctx = Ctx {
        client,
        options: options.clone(),
        rest: Value::Null,
        capability: Value::Null,
        checks: Vec::new(),
    };
    if capability::check(&mut ctx) {
        negotiation::check(&mut ctx);
        // Writes first: what they leave (the transaction's Patient and Observation) is
        // there for the type checks to read on a server without data.
        let scratch = write::check(&mut ctx);
        for t in ctx.types() {
            types::check(&mut ctx, &t);
        }
        errors::check(&mut ctx);
        bulk::check(&mut ctx);
        if let Some(run) = scratch {
            write::cleanup(&mut ctx, &run);
        }
    }
    tls::check(&mut ctx);
    Ok(Report {
        base: ctx.client.options.base.clone(),
        software: software(&ctx.capability),
        requests: ctx.client.sent(),
        checks: ctx.checks,
    })
}

fn software(cs: &Value) -> Option<String> {
    let name = cs.pointer("/software/name")?.as_str()?;
    Some(
        match cs.pointer("/software/version").and_then(Value::as_str) {
            Some(v) => format!("{name} {v}"),
            None => name.to_string(),
        },
    )
}
