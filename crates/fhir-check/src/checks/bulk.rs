//! Bulk Data (IG v2.0 kick-off): when the statement declares `export`, a system-level
//! kick-off asks for as little as possible (`_type=Patient`, `_since` a minute ago),
//! must be accepted with 202 and a `Content-Location`, whose status request answers
//! 202 or 200, and is then cancelled (`DELETE`: 202); a kick-off without
//! `Prefer: respond-async` is refused, or run as if it had been (both allowed).

use super::{outcome_of, Ctx};
use crate::report::Outcome;

const ACCEPT: (&str, &str) = ("Accept", "application/fhir+json");

pub(super) fn check(ctx: &mut Ctx) {
    let declared = ctx.rest["operation"]
        .as_array()
        .is_some_and(|ops| ops.iter().any(|o| o["name"] == "export"));
    if !declared {
        for id in ["bulk.kick-off", "bulk.requires-respond-async"] {
            ctx.record(
                id,
                Outcome::NotClaimed,
                "no system-level export operation is declared",
                None,
            );
        }
        return;
    }
    let since = (time::OffsetDateTime::now_utc() - time::Duration::minutes(1))
        .replace_nanosecond(0)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let since = since
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let path = format!(
        "/$export?_type=Patient&_since={}",
        url::form_urlencoded::byte_serialize(since.as_bytes()).collect::<String>()
    );
    kick_off(ctx, &path);
    without_prefer(ctx, &path);
}

/// Without `Prefer: respond-async` the IG lets a server refuse the kick-off (400 with
/// an OperationOutcome) or run it as if asked.
fn without_prefer(ctx: &mut Ctx, path: &str) {
    const ID: &str = "bulk.requires-respond-async";
    match ctx.client.get(path, &[ACCEPT]) {
        Ok(r) if r.status == 400 && outcome_of(&r).is_ok() => {
            ctx.pass(ID, "400 with an OperationOutcome")
        }
        Ok(r) if r.status == 400 => ctx.warn(ID, "400 without an OperationOutcome", &r),
        Ok(r) if r.status == 202 => {
            if let Some(l) = r.header("Content-Location").map(str::to_string) {
                let _ = ctx.client.send("DELETE", &l, &[ACCEPT], None);
            }
            ctx.pass(
                ID,
                "run as if respond-async were asked (the IG allows it); cancelled",
            )
        }
        Ok(r) if matches!(r.status, 401 | 403) => ctx.record(
            ID,
            Outcome::Skipped,
            format!("{}: the token given (if any) may not export", r.status),
            None,
        ),
        Ok(r) => ctx.fail(
            ID,
            format!(
                "status {}: expected 400 with an OperationOutcome, or 202",
                r.status
            ),
            &r,
        ),
        Err(e) => ctx.unanswered(ID, &e),
    }
}

fn kick_off(ctx: &mut Ctx, path: &str) {
    const ID: &str = "bulk.kick-off";
    let r = match ctx.client.get(path, &[ACCEPT, ("Prefer", "respond-async")]) {
        Ok(r) => r,
        Err(e) => return ctx.unanswered(ID, &e),
    };
    if matches!(r.status, 401 | 403) {
        return ctx.record(
            ID,
            Outcome::Skipped,
            format!("{}: the token given (if any) may not export", r.status),
            None,
        );
    }
    let Some(status_url) = r
        .header("Content-Location")
        .map(str::to_string)
        .filter(|_| r.status == 202)
    else {
        return ctx.fail(
            ID,
            format!("status {}: expected 202 with Content-Location", r.status),
            &r,
        );
    };
    let polled = match ctx.client.get(&status_url, &[ACCEPT]) {
        Ok(p) => p,
        Err(e) => return ctx.unanswered(ID, &e),
    };
    if !matches!(polled.status, 200 | 202) {
        return ctx.fail(
            ID,
            format!(
                "the status URL answered {}, expected 202 or 200",
                polled.status
            ),
            &polled,
        );
    }
    match ctx.client.send("DELETE", &status_url, &[ACCEPT], None) {
        Ok(d) if d.status == 202 => ctx.pass(
            ID,
            "202 + Content-Location; status polled; cancelled with 202",
        ),
        Ok(d) => ctx.fail(
            ID,
            format!("cancelling answered {}, expected 202", d.status),
            &d,
        ),
        Err(e) => ctx.unanswered(ID, &e),
    }
}
