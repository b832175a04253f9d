//! One resource type's interactions: search (a Bundle of type `searchset` holding only
//! that type's matches), paging links, read, vread, instance history, then each
//! declared search parameter ([`super::params`]).

use serde_json::Value;

use super::{params, resource_of, Ctx};
use crate::report::Outcome;

pub(super) fn check(ctx: &mut Ctx, t: &str) {
    if ctx.resource(t).is_none() {
        ctx.record(
            format!("{t}.search"),
            Outcome::NotClaimed,
            "the type is not in the CapabilityStatement",
            None,
        );
        return;
    }
    let sample = search(ctx, t);
    let Some(sample) = sample else {
        for i in ["read", "vread", "history-instance"] {
            if ctx.claims(t, i) {
                ctx.record(
                    format!("{t}.{i}"),
                    Outcome::Skipped,
                    "no resource of the type to try it on (run with --write to create one)",
                    None,
                );
            }
        }
        return;
    };
    read(ctx, t, &sample);
    vread(ctx, t, &sample);
    history(ctx, t, &sample);
    params::check(ctx, t, &sample);
}

/// Whether a searchset entry is a match (not an `_include` nor an `outcome`).
pub(super) fn is_match(entry: &Value) -> bool {
    matches!(
        entry.pointer("/search/mode").and_then(Value::as_str),
        None | Some("match")
    )
}

/// The entries' resources of a searchset Bundle, or the problem.
pub(super) fn searchset(r: &crate::client::Response) -> Result<Vec<Value>, String> {
    if r.status != 200 {
        return Err(format!("status {}, expected 200", r.status));
    }
    let bundle = resource_of(r, "Bundle")?;
    if bundle["type"] != "searchset" {
        return Err(format!(
            "Bundle.type is {}, expected searchset",
            bundle["type"]
        ));
    }
    Ok(bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .cloned()
        .collect())
}

fn search(ctx: &mut Ctx, t: &str) -> Option<Value> {
    let id = format!("{t}.search");
    if !ctx.claims(t, "search-type") {
        ctx.record(id, Outcome::NotClaimed, "search-type is not claimed", None);
        return None;
    }
    let r = match ctx.client.get(&format!("/{t}?_count=2"), &[]) {
        Ok(r) => r,
        Err(e) => {
            ctx.unanswered(id, &e);
            return None;
        }
    };
    let entries = match searchset(&r) {
        Ok(e) => e,
        Err(p) => {
            ctx.fail(id, p, &r);
            return None;
        }
    };
    let matches: Vec<&Value> = entries.iter().filter(|e| is_match(e)).collect();
    if let Some(other) = matches.iter().find(|e| e["resource"]["resourceType"] != t) {
        ctx.fail(
            id,
            format!(
                "a match is a {}, not a {t}",
                other["resource"]["resourceType"]
            ),
            &r,
        );
        return None;
    }
    if matches.len() > 2 {
        ctx.fail(
            id,
            format!("_count=2 returned {} matches", matches.len()),
            &r,
        );
        return None;
    }
    ctx.pass(&id, format!("{} matches on the first page", matches.len()));
    paging(ctx, t, &r);
    matches.first().map(|e| e["resource"].clone())
}

/// The `next` link of a first page leads to another searchset page.
fn paging(ctx: &mut Ctx, t: &str, first: &crate::client::Response) {
    let id = format!("{t}.paging");
    let bundle = first.json().unwrap_or(Value::Null);
    let next = bundle["link"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["relation"] == "next")
        .and_then(|l| l["url"].as_str())
        .map(str::to_string);
    let Some(next) = next else {
        let total = bundle["total"].as_u64();
        let detail = match total {
            Some(n) if n > 2 => {
                return ctx.fail(
                    id,
                    format!("total is {n} but the first page of 2 has no next link"),
                    first,
                );
            }
            _ => "one page only: nothing to page through",
        };
        return ctx.record(id, Outcome::Skipped, detail, None);
    };
    match ctx.client.get(&next, &[]) {
        Ok(r) => match searchset(&r) {
            Ok(entries) => ctx.pass(id, format!("next page: {} entries", entries.len())),
            Err(p) => ctx.fail(id, format!("following next: {p}"), &r),
        },
        Err(e) => ctx.unanswered(id, &e),
    }
}

fn read(ctx: &mut Ctx, t: &str, sample: &Value) {
    let id = format!("{t}.read");
    if !ctx.claims(t, "read") {
        return ctx.record(id, Outcome::NotClaimed, "read is not claimed", None);
    }
    let rid = sample["id"].as_str().unwrap_or_default();
    let r = match ctx.client.get(&format!("/{t}/{rid}"), &[]) {
        Ok(r) => r,
        Err(e) => return ctx.unanswered(id, &e),
    };
    let versioned = ctx
        .resource(t)
        .and_then(|r| r["versioning"].as_str())
        .is_some_and(|v| v != "no-version");
    match (r.status, resource_of(&r, t)) {
        (200, Ok(v)) if v["id"] != rid => {
            ctx.fail(id, format!("asked for {rid}, got id {}", v["id"]), &r)
        }
        (200, Ok(_)) if versioned && r.header("ETag").is_none() => ctx.fail(
            id,
            "no ETag header, though the type is versioned (http.html#read)",
            &r,
        ),
        (200, Ok(_)) => ctx.pass(id, format!("{t}/{rid}")),
        (status, Ok(_)) => ctx.fail(id, format!("status {status}, expected 200"), &r),
        (status, Err(p)) => ctx.fail(id, format!("status {status}: {p}"), &r),
    }
}

fn vread(ctx: &mut Ctx, t: &str, sample: &Value) {
    let id = format!("{t}.vread");
    if !ctx.claims(t, "vread") {
        return ctx.record(id, Outcome::NotClaimed, "vread is not claimed", None);
    }
    let (Some(rid), Some(vid)) = (
        sample["id"].as_str(),
        sample.pointer("/meta/versionId").and_then(Value::as_str),
    ) else {
        return ctx.record(
            id,
            Outcome::Skipped,
            "the resource has no meta.versionId",
            None,
        );
    };
    let r = match ctx.client.get(&format!("/{t}/{rid}/_history/{vid}"), &[]) {
        Ok(r) => r,
        Err(e) => return ctx.unanswered(id, &e),
    };
    match (r.status, resource_of(&r, t)) {
        (200, Ok(v)) if v.pointer("/meta/versionId").and_then(Value::as_str) == Some(vid) => {
            ctx.pass(id, format!("{t}/{rid}/_history/{vid}"))
        }
        (200, Ok(v)) => ctx.fail(
            id,
            format!("asked for version {vid}, got {}", v["meta"]["versionId"]),
            &r,
        ),
        (status, Ok(_)) => ctx.fail(id, format!("status {status}, expected 200"), &r),
        (status, Err(p)) => ctx.fail(id, format!("status {status}: {p}"), &r),
    }
}

fn history(ctx: &mut Ctx, t: &str, sample: &Value) {
    let id = format!("{t}.history-instance");
    if !ctx.claims(t, "history-instance") {
        return ctx.record(
            id,
            Outcome::NotClaimed,
            "history-instance is not claimed",
            None,
        );
    }
    let rid = sample["id"].as_str().unwrap_or_default();
    let r = match ctx.client.get(&format!("/{t}/{rid}/_history"), &[]) {
        Ok(r) => r,
        Err(e) => return ctx.unanswered(id, &e),
    };
    match (r.status, resource_of(&r, "Bundle")) {
        (200, Ok(b))
            if b["type"] == "history" && b["entry"].as_array().is_some_and(|e| !e.is_empty()) =>
        {
            ctx.pass(
                id,
                format!("{} versions", b["entry"].as_array().map_or(0, Vec::len)),
            )
        }
        (200, Ok(b)) => ctx.fail(
            id,
            format!(
                "expected a non-empty Bundle of type history, got type {}",
                b["type"]
            ),
            &r,
        ),
        (status, Ok(_)) => ctx.fail(id, format!("status {status}, expected 200"), &r),
        (status, Err(p)) => ctx.fail(id, format!("status {status}: {p}"), &r),
    }
}
