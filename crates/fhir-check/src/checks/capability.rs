//! The CapabilityStatement (`GET [base]/metadata`) and SMART discovery
//! (`[base]/.well-known/smart-configuration`, when the statement names SMART-on-FHIR).

use serde_json::Value;

use super::{resource_of, Ctx};
use crate::report::Outcome;

/// Reads and checks the statement; false when there is none to go on with.
pub(super) fn check(ctx: &mut Ctx) -> bool {
    let r = match ctx.client.get("/metadata", &[]) {
        Ok(r) => r,
        Err(e) => {
            ctx.unanswered("capabilities.metadata", &e);
            return false;
        }
    };
    let cs = match (r.status, resource_of(&r, "CapabilityStatement")) {
        (200, Ok(cs)) => cs,
        (status, Err(problem)) => {
            ctx.fail("capabilities.metadata", format!("{status}: {problem}"), &r);
            return false;
        }
        (status, Ok(_)) => {
            ctx.fail(
                "capabilities.metadata",
                format!("status {status}, expected 200"),
                &r,
            );
            return false;
        }
    };
    let version = cs["fhirVersion"].as_str().unwrap_or_default().to_string();
    let rest = cs["rest"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["mode"] == "server"))
        .cloned()
        .unwrap_or(Value::Null);
    let kind_ok = matches!(cs["kind"].as_str(), Some("instance" | "capability"));
    let json = formats(&cs).iter().any(|f| f.contains("json"));
    let problem = if !version.starts_with("4.0") {
        Some(format!("fhirVersion is {version:?}, not 4.0.x (R4)"))
    } else if rest.is_null() {
        Some("no rest entry with mode server".into())
    } else if !kind_ok {
        Some(format!(
            "kind is {}, expected instance or capability",
            cs["kind"]
        ))
    } else if !json {
        Some("format does not list JSON".into())
    } else {
        None
    };
    match problem {
        Some(p) => ctx.fail("capabilities.metadata", p, &r),
        None => ctx.pass(
            "capabilities.metadata",
            format!(
                "FHIR {version}, {} resource types",
                rest["resource"].as_array().map_or(0, Vec::len)
            ),
        ),
    }
    ctx.capability = cs;
    ctx.rest = rest;
    smart(ctx);
    !ctx.rest.is_null()
}

/// The statement's `format` entries.
pub(super) fn formats(cs: &Value) -> Vec<String> {
    cs["format"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect()
}

fn smart(ctx: &mut Ctx) {
    const ID: &str = "smart.discovery";
    let claimed = ctx
        .rest
        .pointer("/security/service")
        .and_then(Value::as_array)
        .is_some_and(|s| {
            s.iter().any(|c| {
                c["coding"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|c| c["code"] == "SMART-on-FHIR"))
            })
        });
    if !claimed {
        ctx.record(
            ID,
            Outcome::NotClaimed,
            "rest.security.service names no SMART-on-FHIR",
            None,
        );
        return;
    }
    let r = match ctx.client.get(
        "/.well-known/smart-configuration",
        &[("Accept", "application/json")],
    ) {
        Ok(r) => r,
        Err(e) => return ctx.unanswered(ID, &e),
    };
    let config = r.json().unwrap_or(Value::Null);
    let endpoint = config["token_endpoint"].as_str();
    match (r.status, endpoint) {
        (200, Some(url)) => ctx.pass(ID, format!("token endpoint {url}")),
        (status, _) => ctx.fail(
            ID,
            format!("status {status}: expected 200 with JSON naming token_endpoint"),
            &r,
        ),
    }
}
