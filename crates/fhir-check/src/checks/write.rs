//! Writes, with `--write` only, on scratch Patients (and an Observation) tagged
//! `urn:fhir-check|[run]` and deleted at the end: create, update, conditional create
//! and update, a search that finds what was written, a transaction with a `urn:uuid`
//! reference, delete, conditional delete.

use serde_json::{json, Value};

use super::{resource_of, Ctx};
use crate::client::Response;
use crate::report::Outcome;

const TAG: &str = "urn:fhir-check";
const IDENTIFIER: &str = "urn:fhir-check:identifier";
const JSON: (&str, &str) = ("Content-Type", "application/fhir+json");
const REPRESENTATION: (&str, &str) = ("Prefer", "return=representation");

pub(super) struct Run {
    tag: String,
    /// `Type/id` of every resource made, deleted at the end.
    made: Vec<String>,
}

fn patient(run: &Run, family: &str, id: Option<&str>) -> Value {
    let mut p = json!({"resourceType": "Patient",
        "meta": {"tag": [{"system": TAG, "code": run.tag}]},
        "identifier": [{"system": IDENTIFIER, "value": run.tag}],
        "name": [{"family": family, "given": ["Scratch"]}]});
    if let Some(id) = id {
        p["id"] = json!(id);
    }
    p
}

fn version_of(r: &Response, body: &Value) -> Option<String> {
    body.pointer("/meta/versionId")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| r.header("ETag").map(str::to_string))
}

/// Runs the write checks; the scratch resources still there (the transaction's) are
/// left for the type checks to read, and removed by [`cleanup`] at the end.
pub(super) fn check(ctx: &mut Ctx) -> Option<Run> {
    const IDS: [&str; 8] = [
        "write.create",
        "write.update",
        "write.conditional-create",
        "write.conditional-update",
        "write.search-after-write",
        "write.transaction",
        "write.delete",
        "write.conditional-delete",
    ];
    if !ctx.options.write {
        for id in IDS {
            ctx.record(
                id,
                Outcome::Skipped,
                "writes are tried with --write only",
                None,
            );
        }
        return None;
    }
    if !ctx.claims("Patient", "create") {
        for id in IDS {
            ctx.record(
                id,
                Outcome::NotClaimed,
                "scratch resources are Patients, and Patient create is not claimed",
                None,
            );
        }
        return None;
    }
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let mut run = Run {
        tag: format!("run-{stamp}"),
        made: Vec::new(),
    };
    if let Some((id, version)) = create(ctx, &mut run) {
        update(ctx, &run, &id, &version);
        conditional(ctx, &mut run, &id);
        search_after_write(ctx, &run, &id);
        transaction(ctx, &mut run);
        delete(ctx, &mut run, &id);
        conditional_delete(ctx, &mut run);
    }
    Some(run)
}

fn create(ctx: &mut Ctx, run: &mut Run) -> Option<(String, String)> {
    const ID: &str = "write.create";
    let body = patient(run, "Check", None).to_string();
    let r = match ctx
        .client
        .send("POST", "/Patient", &[JSON, REPRESENTATION], Some(&body))
    {
        Ok(r) => r,
        Err(e) => {
            ctx.unanswered(ID, &e);
            return None;
        }
    };
    let created = resource_of(&r, "Patient");
    let location = r.header("Location").unwrap_or_default().to_string();
    match (r.status, created) {
        (201, Ok(p)) if p["id"].is_string() && location.contains("/Patient/") => {
            let id = p["id"].as_str().unwrap_or_default().to_string();
            run.made.push(format!("Patient/{id}"));
            let version = version_of(&r, &p).unwrap_or_default();
            ctx.pass(ID, format!("201, Location {location}"));
            Some((id, version))
        }
        (201, Ok(_)) => {
            ctx.fail(
                ID,
                "201 without an id in the body or a Location naming Patient/[id]",
                &r,
            );
            None
        }
        (status, Ok(_)) => {
            ctx.fail(ID, format!("status {status}, expected 201"), &r);
            None
        }
        (status, Err(p)) => {
            ctx.fail(ID, format!("status {status}: {p}"), &r);
            None
        }
    }
}

fn update(ctx: &mut Ctx, run: &Run, id: &str, first: &str) {
    const ID: &str = "write.update";
    if !ctx.claims("Patient", "update") {
        return ctx.record(
            ID,
            Outcome::NotClaimed,
            "Patient update is not claimed",
            None,
        );
    }
    let body = patient(run, "Checked", Some(id)).to_string();
    let r = match ctx.client.send(
        "PUT",
        &format!("/Patient/{id}"),
        &[JSON, REPRESENTATION],
        Some(&body),
    ) {
        Ok(r) => r,
        Err(e) => return ctx.unanswered(ID, &e),
    };
    match (r.status, resource_of(&r, "Patient")) {
        (200, Ok(p)) if version_of(&r, &p).as_deref() == Some(first) => ctx.fail(
            ID,
            format!("the version is still {first} after an update"),
            &r,
        ),
        (200, Ok(p)) if p.pointer("/name/0/family") == Some(&json!("Checked")) => {
            ctx.pass(ID, "200, a new version")
        }
        (200, Ok(_)) => ctx.fail(ID, "200, but the body is not the updated Patient", &r),
        (status, _) => ctx.fail(ID, format!("status {status}, expected 200"), &r),
    }
}

fn conditional(ctx: &mut Ctx, run: &mut Run, id: &str) {
    let criteria = format!("identifier={IDENTIFIER}|{}", run.tag);
    let body = patient(run, "Checked", None).to_string();
    let cases = [
        (
            "write.conditional-create",
            "conditionalCreate",
            "POST",
            "/Patient".to_string(),
            vec![JSON, REPRESENTATION, ("If-None-Exist", criteria.as_str())],
        ),
        (
            "write.conditional-update",
            "conditionalUpdate",
            "PUT",
            format!("/Patient?{criteria}"),
            vec![JSON, REPRESENTATION],
        ),
    ];
    for (check, flag, method, path, headers) in cases {
        if ctx.resource("Patient").and_then(|r| r[flag].as_bool()) != Some(true) {
            let detail = format!("Patient {flag} is not claimed");
            ctx.record(check, Outcome::NotClaimed, detail, None);
            continue;
        }
        let r = match ctx.client.send(method, &path, &headers, Some(&body)) {
            Ok(r) => r,
            Err(e) => {
                ctx.unanswered(check, &e);
                continue;
            }
        };
        if let (201, Some(made)) = (r.status, r.header("Location").and_then(type_and_id)) {
            run.made.push(made);
        }
        if r.status != 200 {
            let detail = format!(
                "status {}: expected 200 on the one match Patient/{id}",
                r.status
            );
            ctx.fail(check, detail, &r);
            continue;
        }
        one_match(ctx, check, run, id, &r);
    }
}

/// After a conditional write answered 200, the identifier still finds Patient/`id` alone.
fn one_match(ctx: &mut Ctx, check: &str, run: &Run, id: &str, answer: &Response) {
    let path = format!("/Patient?identifier={IDENTIFIER}|{}", run.tag);
    match ctx.client.get(&path, &[]) {
        Ok(r) => match super::types::searchset(&r) {
            Ok(entries) if entries.len() == 1 && entries[0]["resource"]["id"] == id => {
                ctx.pass(check, format!("200 on the one match, Patient/{id}"))
            }
            Ok(entries) => {
                let detail = format!(
                    "200, but {} Patients now carry the identifier",
                    entries.len()
                );
                ctx.fail(check, detail, answer)
            }
            Err(p) => ctx.fail(check, p, &r),
        },
        Err(e) => ctx.unanswered(check, &e),
    }
}

fn search_after_write(ctx: &mut Ctx, run: &Run, id: &str) {
    const ID: &str = "write.search-after-write";
    let path = format!("/Patient?identifier={IDENTIFIER}|{}", run.tag);
    match ctx.client.get(&path, &[]) {
        Ok(r) => match super::types::searchset(&r) {
            Ok(entries) if entries.len() == 1 && entries[0]["resource"]["id"] == id => {
                ctx.pass(ID, "the written identifier finds its one Patient")
            }
            Ok(entries) => ctx.fail(
                ID,
                format!("{} matches, expected Patient/{id} alone", entries.len()),
                &r,
            ),
            Err(p) => ctx.fail(ID, p, &r),
        },
        Err(e) => ctx.unanswered(ID, &e),
    }
}

fn transaction(ctx: &mut Ctx, run: &mut Run) {
    const ID: &str = "write.transaction";
    if !ctx.claims_system("transaction") {
        return ctx.record(ID, Outcome::NotClaimed, "transaction is not claimed", None);
    }
    let uuid = format!("urn:uuid:7d1e0c5a-0000-4000-8000-{:012}", run.made.len());
    let observation = json!({"resourceType": "Observation", "status": "final",
        "meta": {"tag": [{"system": TAG, "code": run.tag}]},
        "code": {"text": "fhir-check scratch"}, "subject": {"reference": uuid}});
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": uuid, "resource": patient(run, "Transaction", None), "request": {"method": "POST", "url": "Patient"}},
        {"resource": observation, "request": {"method": "POST", "url": "Observation"}},
    ]})
    .to_string();
    let r = match ctx.client.send("POST", "", &[JSON], Some(&bundle)) {
        Ok(r) => r,
        Err(e) => return ctx.unanswered(ID, &e),
    };
    let reply = resource_of(&r, "Bundle");
    let locations: Vec<String> = reply
        .as_ref()
        .ok()
        .and_then(|b| b["entry"].as_array().cloned())
        .into_iter()
        .flatten()
        .filter_map(|e| {
            e.pointer("/response/location")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    for l in &locations {
        if let Some(made) = type_and_id(l) {
            run.made.push(made);
        }
    }
    match (r.status, reply) {
        (200, Ok(b)) if b["type"] == "transaction-response" && locations.len() == 2 => {
            let patient = type_and_id(&locations[0]).unwrap_or_default();
            check_reference(ctx, &locations[1], &patient);
        }
        (200, Ok(b)) => ctx.fail(
            ID,
            format!(
                "Bundle.type {} with {} locations: expected transaction-response with 2",
                b["type"],
                locations.len()
            ),
            &r,
        ),
        (status, Ok(_)) => ctx.fail(ID, format!("status {status}, expected 200"), &r),
        (status, Err(p)) => ctx.fail(ID, format!("status {status}: {p}"), &r),
    }
}

/// `Type/id` of a location (`[base]/Type/id/_history/n` or `Type/id/…`).
fn type_and_id(location: &str) -> Option<String> {
    let path = location.split("/_history").next()?;
    let mut parts = path.rsplit('/');
    let id = parts.next()?;
    let t = parts.next()?;
    Some(format!("{t}/{id}"))
}

/// The transaction's Observation refers to its new Patient (the `urn:uuid` replaced).
fn check_reference(ctx: &mut Ctx, observation: &str, patient: &str) {
    const ID: &str = "write.transaction";
    let path = format!("/{}", type_and_id(observation).unwrap_or_default());
    match ctx.client.get(&path, &[]) {
        Ok(r) => {
            let reference = r.json().and_then(|o| {
                o.pointer("/subject/reference")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
            match reference {
                Some(rf) if rf.ends_with(patient) => ctx.pass(
                    ID,
                    format!("both entries created; the urn:uuid became {rf}"),
                ),
                other => ctx.fail(
                    ID,
                    format!("Observation.subject is {other:?}, expected {patient}"),
                    &r,
                ),
            }
        }
        Err(e) => ctx.unanswered(ID, &e),
    }
}

fn delete(ctx: &mut Ctx, run: &mut Run, id: &str) {
    const ID: &str = "write.delete";
    if !ctx.claims("Patient", "delete") {
        return ctx.record(
            ID,
            Outcome::NotClaimed,
            "Patient delete is not claimed",
            None,
        );
    }
    let Some(r) = send_delete(ctx, ID, &format!("/Patient/{id}")) else {
        return;
    };
    run.made.retain(|m| m != &format!("Patient/{id}"));
    // 202: the server accepted the delete without saying it is done (http.html).
    let accepted = r.status == 202;
    match ctx.client.get(&format!("/Patient/{id}"), &[]) {
        Ok(r) if matches!(r.status, 404 | 410) => {
            ctx.pass(ID, format!("deleted; a read then answers {}", r.status))
        }
        Ok(r) if accepted => ctx.warn(
            ID,
            format!(
                "202 (accepted, not said to be done): a read then answers {}",
                r.status
            ),
            &r,
        ),
        Ok(r) => ctx.fail(
            ID,
            format!(
                "a read after the delete answers {}, expected 410 (or 404)",
                r.status
            ),
            &r,
        ),
        Err(e) => ctx.unanswered(ID, &e),
    }
}

/// A Patient of its own (identifier `[run]-cd`) deleted by a search for it: 200, 202 or
/// 204, and the search then finds nothing.
fn conditional_delete(ctx: &mut Ctx, run: &mut Run) {
    const ID: &str = "write.conditional-delete";
    let claimed = ctx
        .resource("Patient")
        .and_then(|r| r["conditionalDelete"].as_str())
        .is_some_and(|v| v != "not-supported");
    if !claimed || !ctx.claims("Patient", "delete") {
        return ctx.record(
            ID,
            Outcome::NotClaimed,
            "Patient conditionalDelete is not claimed",
            None,
        );
    }
    let value = format!("{}-cd", run.tag);
    let mut p = patient(run, "Conditional", None);
    p["identifier"][0]["value"] = json!(value);
    let created = ctx
        .client
        .send("POST", "/Patient", &[JSON], Some(&p.to_string()));
    match created
        .as_ref()
        .map(|r| (r.status, r.header("Location").and_then(type_and_id)))
    {
        Ok((201, Some(made))) => run.made.push(made),
        Ok(_) => {
            return ctx.record(
                ID,
                Outcome::Skipped,
                "the Patient to delete could not be created",
                None,
            )
        }
        Err(e) => return ctx.unanswered(ID, e),
    }
    let criteria = format!("identifier={IDENTIFIER}|{value}");
    let Some(r) = send_delete(ctx, ID, &format!("/Patient?{criteria}")) else {
        return;
    };
    match ctx.client.get(&format!("/Patient?{criteria}"), &[]) {
        Ok(s) => match super::types::searchset(&s) {
            Ok(entries) if entries.is_empty() => {
                ctx.pass(ID, format!("{}; the search then finds nothing", r.status))
            }
            Ok(_) if r.status == 202 => ctx.warn(
                ID,
                "202 (accepted, not said to be done): the search still finds it",
                &s,
            ),
            Ok(_) => ctx.fail(ID, "the search still finds the deleted Patient", &s),
            Err(p) => ctx.fail(ID, p, &s),
        },
        Err(e) => ctx.unanswered(ID, &e),
    }
}

/// `DELETE path`: the response when it is 200, 202 or 204; else the check `id` is
/// recorded as failed (or unanswered) and `None` returned.
fn send_delete(ctx: &mut Ctx, id: &str, path: &str) -> Option<Response> {
    let r = match ctx.client.send("DELETE", path, &[], None) {
        Ok(r) => r,
        Err(e) => {
            ctx.unanswered(id, &e);
            return None;
        }
    };
    if matches!(r.status, 200 | 202 | 204) {
        return Some(r);
    }
    let detail = format!("status {}, expected 200, 202 or 204", r.status);
    ctx.fail(id, detail, &r);
    None
}

/// Deletes every scratch resource left (Observations before Patients).
pub(super) fn cleanup(ctx: &mut Ctx, run: &Run) {
    let mut left: Vec<&String> = run.made.iter().collect();
    left.sort_by_key(|m| m.starts_with("Patient/"));
    let mut failed = Vec::new();
    for m in left {
        match ctx.client.send("DELETE", &format!("/{m}"), &[], None) {
            Ok(r) if r.status < 300 || r.status == 404 || r.status == 410 => {}
            _ => failed.push(m.clone()),
        }
    }
    if failed.is_empty() {
        ctx.pass(
            "write.cleanup",
            format!("scratch resources tagged {TAG}|{} removed", run.tag),
        );
    } else {
        ctx.record(
            "write.cleanup",
            Outcome::Warn,
            format!("could not delete {}", failed.join(", ")),
            None,
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn locations_name_their_resource() {
        for (location, want) in [
            ("https://x.example/fhir/Patient/1/_history/2", "Patient/1"),
            ("Observation/abc/_history/1", "Observation/abc"),
            ("Patient/7", "Patient/7"),
        ] {
            assert_eq!(
                super::type_and_id(location).as_deref(),
                Some(want),
                "{location}"
            );
        }
    }
}
