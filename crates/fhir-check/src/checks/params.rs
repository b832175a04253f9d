//! Each declared search parameter of a type, tried with a value taken from a resource
//! the server returned: `[type]?_id=[id]&[param]=[value]` must find that resource. The
//! value is computed with this project's own index extraction (fhir-search) from the
//! parameter's R4 expression; parameters the sample has no value for are skipped (and
//! listed), as are number, quantity, composite and special ones. Then each declared
//! `_include` whose reference the sample holds, and two declared `_revinclude`s.

use fhir_search::{extract, IndexValues, SearchParamType, SearchRegistry};
use serde_json::Value;

use super::types::searchset;
use super::Ctx;
use crate::report::Outcome;

/// A search value's special characters escaped (search.html#escaping).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '$' | '|') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A query value for `code` that `rows` (the sample's index) must match, if any.
fn value_for(rows: &IndexValues, code: &str, kind: SearchParamType) -> Option<String> {
    match kind {
        SearchParamType::String => rows
            .strings
            .iter()
            .find(|r| r.param == code && !r.value.trim().is_empty())
            .map(|r| escape(r.value.trim())),
        SearchParamType::Token => rows
            .tokens
            .iter()
            .filter(|r| r.param == code)
            .find_map(|r| {
                let code = r.code.as_deref()?;
                Some(match &r.system {
                    Some(s) => format!("{}|{}", escape(s), escape(code)),
                    None => escape(code),
                })
            }),
        SearchParamType::Reference => rows
            .references
            .iter()
            .filter(|r| r.param == code && !r.contained)
            .find_map(|r| match (&r.target_type, &r.id) {
                (Some(t), Some(id)) => Some(format!("{t}/{id}")),
                _ => r.url.clone().map(|u| escape(&u)),
            }),
        SearchParamType::Date => rows.dates.iter().filter(|r| r.param == code).find_map(|r| {
            // A day before the value's start: `ge` then holds wherever the server's
            // time zone puts midnight.
            let start = time::OffsetDateTime::from_unix_timestamp(r.start.div_euclid(1000)).ok()?;
            (start.year() > 1).then(|| {
                let day = start.date().previous_day().unwrap_or(start.date());
                format!("ge{day}")
            })
        }),
        SearchParamType::Uri => rows
            .uris
            .iter()
            .find(|r| r.param == code)
            .map(|r| escape(&r.uri)),
        _ => None,
    }
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub(super) fn check(ctx: &mut Ctx, t: &str, sample: &Value) {
    let registry = SearchRegistry::r4();
    let rows = extract(registry, t, sample);
    let rid = sample["id"].as_str().unwrap_or_default().to_string();
    let declared: Vec<(String, String)> = ctx
        .resource(t)
        .and_then(|r| r["searchParam"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                p["name"].as_str()?.to_string(),
                p["type"].as_str().unwrap_or_default().to_string(),
            ))
        })
        .collect();
    let mut without_value = Vec::new();
    for (code, _) in &declared {
        let Some(param) = registry.param(t, code) else {
            continue;
        };
        let Some(value) = value_for(&rows, code, param.kind()) else {
            without_value.push(code.clone());
            continue;
        };
        let id = format!("{t}.search.{code}");
        let path = format!(
            "/{t}?_id={}&{}={}",
            encode(&rid),
            encode(code),
            encode(&value)
        );
        match ctx.client.get(&path, &[]) {
            Ok(r) => match searchset(&r) {
                Ok(entries) if entries.iter().any(|e| e["resource"]["id"] == rid.as_str()) => {
                    ctx.pass(id, format!("{code}={value} finds {t}/{rid}"))
                }
                Ok(_) => ctx.fail(
                    id,
                    format!("{code}={value} (a value {t}/{rid} holds) did not find it"),
                    &r,
                ),
                Err(p) => ctx.fail(id, p, &r),
            },
            Err(e) => ctx.unanswered(id, &e),
        }
    }
    if !without_value.is_empty() {
        ctx.record(
            format!("{t}.search.others"),
            Outcome::Skipped,
            format!(
                "the sample {t}/{rid} has no value for: {}",
                without_value.join(", ")
            ),
            None,
        );
    }
    includes(ctx, t, &rid, &rows);
    revincludes(ctx, t, &rid);
}

/// Declared `_revinclude`s (two, those from the types tried first): the search still
/// finds the sample, with whatever refers to it as `include` entries.
fn revincludes(ctx: &mut Ctx, t: &str, rid: &str) {
    let declared: Vec<String> = ctx
        .resource(t)
        .and_then(|r| r["searchRevInclude"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let tried = ctx.types();
    let from_tried = |d: &&String| tried.iter().any(|t| d.starts_with(&format!("{t}:")));
    let chosen: Vec<&String> = declared
        .iter()
        .filter(from_tried)
        .chain(declared.iter().filter(|d| !from_tried(d)))
        .collect();
    for revinclude in chosen.into_iter().take(2) {
        let id = format!("{t}.revinclude.{revinclude}");
        let path = format!(
            "/{t}?_id={}&_revinclude={}",
            encode(rid),
            encode(revinclude)
        );
        match ctx.client.get(&path, &[]) {
            Ok(r) => match searchset(&r) {
                Ok(entries)
                    if entries
                        .iter()
                        .any(|e| super::types::is_match(e) && e["resource"]["id"] == rid) =>
                {
                    let included = entries
                        .iter()
                        .filter(|e| !super::types::is_match(e))
                        .count();
                    ctx.pass(id, format!("_revinclude={revinclude}: {t}/{rid} and {included} resources referring to it"))
                }
                Ok(_) => ctx.fail(
                    id,
                    format!("_revinclude={revinclude} lost the match {t}/{rid}"),
                    &r,
                ),
                Err(p) => ctx.fail(id, p, &r),
            },
            Err(e) => ctx.unanswered(id, &e),
        }
    }
}

/// Each declared `_include` whose reference the sample holds brings the referenced
/// resource in with `search.mode` `include`.
fn includes(ctx: &mut Ctx, t: &str, rid: &str, rows: &IndexValues) {
    let declared: Vec<String> = ctx
        .resource(t)
        .and_then(|r| r["searchInclude"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .filter(|i| i != "*")
        .collect();
    let mut tried = 0;
    for include in declared {
        // `Type:param`, or `Type:param:Target` (only references to Target).
        let mut parts = include.split(':').skip(1);
        let Some(code) = parts.next() else {
            continue;
        };
        let only = parts.next();
        let target = rows
            .references
            .iter()
            .find_map(|r| match (&r.target_type, &r.id) {
                (Some(tt), Some(id))
                    if r.param == code && !r.contained && only.is_none_or(|o| o == tt) =>
                {
                    Some((tt.clone(), id.clone()))
                }
                _ => None,
            });
        let Some((tt, tid)) = target else { continue };
        tried += 1;
        let id = format!("{t}.include.{code}");
        let path = format!("/{t}?_id={}&_include={}", encode(rid), encode(&include));
        match ctx.client.get(&path, &[]) {
            Ok(r) => match searchset(&r) {
                Ok(entries)
                    if entries.iter().any(|e| {
                        e["resource"]["resourceType"] == tt.as_str()
                            && e["resource"]["id"] == tid.as_str()
                    }) =>
                {
                    ctx.pass(id, format!("_include={include} brings {tt}/{tid}"))
                }
                Ok(_) if dangling(ctx, &tt, &tid) => ctx.record(
                    id,
                    Outcome::Skipped,
                    format!("{tt}/{tid} is not on the server"),
                    None,
                ),
                Ok(_) => ctx.fail(
                    id,
                    format!("_include={include} did not bring {tt}/{tid}"),
                    &r,
                ),
                Err(p) => ctx.fail(id, p, &r),
            },
            Err(e) => ctx.unanswered(id, &e),
        }
        if tried >= 3 {
            break;
        }
    }
}

/// Whether a referenced resource is missing (then an include cannot bring it).
fn dangling(ctx: &mut Ctx, t: &str, id: &str) -> bool {
    ctx.client
        .get(&format!("/{t}/{id}"), &[])
        .is_ok_and(|r| matches!(r.status, 404 | 410))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_come_from_the_sample_escaped() {
        let patient = serde_json::json!({"resourceType": "Patient", "id": "p",
            "name": [{"family": "O,Brien$"}], "birthDate": "1970-03-04",
            "identifier": [{"system": "urn:a|b", "value": "1"}]});
        let rows = extract(SearchRegistry::r4(), "Patient", &patient);
        assert_eq!(
            value_for(&rows, "family", SearchParamType::String).as_deref(),
            Some("O\\,Brien\\$")
        );
        assert_eq!(
            value_for(&rows, "birthdate", SearchParamType::Date).as_deref(),
            Some("ge1970-03-03")
        );
        assert_eq!(
            value_for(&rows, "identifier", SearchParamType::Token).as_deref(),
            Some("urn:a\\|b|1")
        );
        assert_eq!(value_for(&rows, "gender", SearchParamType::Token), None);
    }
}
