//! Error handling (http.html): an unknown resource is 404 and an unknown type 400 or
//! 404, each with an OperationOutcome (without one: a warning, as http.html says SHOULD); with `--write`, a body that is not JSON and a
//! resource of the wrong type are refused (400 or 422) with an OperationOutcome.

use super::{outcome_of, Ctx};
use crate::report::Outcome;

/// An id no server will have.
const MISSING_ID: &str = "fhir-check-no-such-id-0";

pub(super) fn check(ctx: &mut Ctx) {
    let t = ctx.types().into_iter().find(|t| ctx.claims(t, "read"));
    match &t {
        Some(t) => expect(
            ctx,
            "errors.not-found",
            "GET",
            &format!("/{t}/{MISSING_ID}"),
            None,
            &[404, 410],
        ),
        None => ctx.record(
            "errors.not-found",
            Outcome::NotClaimed,
            "no tried type claims read",
            None,
        ),
    }
    expect(
        ctx,
        "errors.unknown-type",
        "GET",
        "/NoSuchResourceType/1",
        None,
        &[400, 404],
    );
    if !ctx.options.write {
        for id in ["errors.invalid-json", "errors.wrong-type"] {
            ctx.record(
                id,
                Outcome::Skipped,
                "writes are tried with --write only",
                None,
            );
        }
        return;
    }
    let Some(t) = ctx.types().into_iter().find(|t| ctx.claims(t, "create")) else {
        for id in ["errors.invalid-json", "errors.wrong-type"] {
            ctx.record(id, Outcome::NotClaimed, "no tried type claims create", None);
        }
        return;
    };
    let path = format!("/{t}");
    expect(
        ctx,
        "errors.invalid-json",
        "POST",
        &path,
        Some("{\"resourceType\": "),
        &[400, 422],
    );
    let other = if t == "Patient" {
        "Organization"
    } else {
        "Patient"
    };
    let body = format!("{{\"resourceType\":\"{other}\"}}");
    expect(
        ctx,
        "errors.wrong-type",
        "POST",
        &path,
        Some(&body),
        &[400, 422],
    );
}

fn expect(ctx: &mut Ctx, id: &str, method: &str, path: &str, body: Option<&str>, statuses: &[u16]) {
    let headers: &[(&str, &str)] = if body.is_some() {
        &[("Content-Type", "application/fhir+json")]
    } else {
        &[]
    };
    let r = match ctx.client.send(method, path, headers, body) {
        Ok(r) => r,
        Err(e) => return ctx.unanswered(id, &e),
    };
    let wanted = statuses
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(" or ");
    if !statuses.contains(&r.status) {
        return ctx.fail(id, format!("status {}, expected {wanted}", r.status), &r);
    }
    match outcome_of(&r) {
        Ok(()) => ctx.pass(
            id,
            format!("{method} {path}: {} with an OperationOutcome", r.status),
        ),
        Err(p) => ctx.fail(
            id,
            format!("{}, but {p}: errors carry an OperationOutcome", r.status),
            &r,
        ),
    }
}
