//! `ValueSet/$expand`: a value set's codes (valueset.html#expansion) as a ValueSet with
//! an `expansion` — `total`, `offset`, the parameters used, `contains` — narrowed by
//! `filter` (every word of it starts a word of the display, or the code starts with
//! it; case-insensitive) and paged by `offset` and `count`. Without `count`, an
//! expansion of more than [`MAX_UNPAGED`] codes is refused as too costly.

use fhir_model::terminology::{ExpandedCode, Terminology};
use serde_json::{json, Value};

use crate::validate::expansion;
use crate::{invalid, Params, TxError};

/// The most codes one answer carries without `count`.
pub const MAX_UNPAGED: usize = 10_000;

/// What the caller stamps an expansion with: a unique identifier (`urn:uuid:…`) and
/// the time (FHIR dateTime).
pub struct Stamp {
    pub identifier: String,
    pub timestamp: String,
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Whether `c` matches the filter text.
fn matches(c: &ExpandedCode, filter: &str) -> bool {
    let f = filter.to_lowercase();
    if c.code.to_lowercase().starts_with(&f) {
        return true;
    }
    let display = words(c.display.as_deref().unwrap_or(""));
    words(filter)
        .iter()
        .all(|w| display.iter().any(|d| d.starts_with(w.as_str())))
}

/// `instance_url` is the value set of an instance-level call (else `url`).
pub fn expand(
    t: &Terminology,
    p: &Params,
    instance_url: Option<&str>,
    stamp: Stamp,
) -> Result<Value, TxError> {
    if p.json("valueSet").is_some() {
        return Err(TxError::NotSupported {
            message: "a value set given in the request (valueSet) is not supported yet: name a known one with url".into(),
            param: "valueSet".into(),
        });
    }
    let url = instance_url
        .or(p.text("url"))
        .ok_or_else(|| invalid("the value set is needed (url)", "url"))?;
    let mut codes = expansion(t, url, "url")?;
    let filter = p.text("filter").filter(|f| !f.trim().is_empty());
    if let Some(f) = filter {
        codes.retain(|c| matches(c, f));
    }
    let total = codes.len();
    let offset = p.count("offset")?.unwrap_or(0);
    let count = p.count("count")?;
    if count.is_none() && total > MAX_UNPAGED {
        return Err(TxError::TooCostly {
            message: format!("the expansion has {total} codes: page it with count (at most {MAX_UNPAGED} without)"),
            param: "count".into(),
        });
    }
    let start = offset.min(total);
    let end = count.map_or(total, |c| start.saturating_add(c).min(total));
    let mut used = Vec::new();
    if let Some(f) = filter {
        used.push(json!({"name": "filter", "valueString": f}));
    }
    if p.text("offset").is_some() {
        used.push(json!({"name": "offset", "valueInteger": offset}));
    }
    if let Some(c) = count {
        used.push(json!({"name": "count", "valueInteger": c}));
    }
    let contains: Vec<Value> = codes[start..end]
        .iter()
        .map(|c| {
            let mut v = json!({"system": c.system, "code": c.code});
            if let Some(d) = &c.display {
                v["display"] = json!(d);
            }
            v
        })
        .collect();
    let vs = t.value_set(url);
    let mut out = json!({"resourceType": "ValueSet", "url": url, "status": "active"});
    if let Some(v) = vs.and_then(|v| v.version.clone()) {
        out["version"] = json!(v);
    }
    if let Some(n) = vs.and_then(|v| v.name.clone()) {
        out["name"] = json!(n);
    }
    let mut expansion = json!({"identifier": stamp.identifier, "timestamp": stamp.timestamp,
        "total": total, "offset": offset});
    if !used.is_empty() {
        expansion["parameter"] = Value::Array(used);
    }
    if !contains.is_empty() {
        expansion["contains"] = Value::Array(contains);
    }
    out["expansion"] = expansion;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{params, r4};

    fn stamp() -> Stamp {
        Stamp {
            identifier: "urn:uuid:00000000-0000-0000-0000-000000000000".into(),
            timestamp: "2026-12-05T00:00:00Z".into(),
        }
    }

    #[test]
    fn expands_filters_and_pages() {
        let vs = "http://hl7.org/fhir/ValueSet/administrative-gender";
        let all = expand(r4(), &params(&[("url", vs)]), None, stamp()).unwrap();
        assert_eq!(all["expansion"]["total"], 4);
        let f = expand(
            r4(),
            &params(&[("url", vs), ("filter", "fem")]),
            None,
            stamp(),
        )
        .unwrap();
        assert_eq!(f["expansion"]["total"], 1);
        assert_eq!(f["expansion"]["contains"][0]["code"], "female");
        let page = expand(
            r4(),
            &params(&[("url", vs), ("offset", "1"), ("count", "2")]),
            None,
            stamp(),
        )
        .unwrap();
        assert_eq!(page["expansion"]["contains"].as_array().unwrap().len(), 2);
        assert_eq!(page["expansion"]["offset"], 1);
        let e = expand(
            r4(),
            &params(&[("url", vs), ("count", "-1")]),
            None,
            stamp(),
        )
        .unwrap_err();
        assert_eq!(e.param(), "count");
    }
}
