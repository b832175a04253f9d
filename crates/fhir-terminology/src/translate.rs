//! `ConceptMap/$translate` (conceptmap-operation-translate): the codes a ConceptMap
//! gives for a code (code + system, coding, or each coding of a codeableConcept) —
//! from the map named by `url` (or the instance), else from every map whose source
//! and target value sets match `source` and `target` — with each match's equivalence,
//! concept and map. `targetsystem` keeps the matches in that system. `reverse=true`
//! maps a target code back to its sources (`wider` and `narrower`, `subsumes` and
//! `specializes` swap). A group's `unmapped` applies to codes it has no element for:
//! `provided` maps the code to itself, `fixed` to the given code; `other-map` to what
//! the named map gives (one level). `result` is true when some match is neither
//! `unmatched` nor `disjoint`.

use fhir_model::terminology::{ConceptMapDef, ConceptMapGroup, Terminology};
use serde_json::{json, Value};

use crate::{codings, not_found, param, parameters, Coding, Params, TxError};

/// One match: equivalence, the concept, and the map it came from.
struct Match {
    equivalence: String,
    system: Option<String>,
    code: String,
    display: Option<String>,
    map: String,
}

fn reversed(equivalence: &str) -> &str {
    match equivalence {
        "wider" => "narrower",
        "narrower" => "wider",
        "subsumes" => "specializes",
        "specializes" => "subsumes",
        other => other,
    }
}

/// The maps to use.
fn maps<'t>(
    t: &'t Terminology,
    p: &Params,
    instance_url: Option<&str>,
) -> Result<Vec<&'t ConceptMapDef>, TxError> {
    if let Some(url) = instance_url.or(p.text("url")) {
        let map = t.concept_map(url).ok_or_else(|| {
            not_found(
                format!("ConceptMap {url} is not known to this server"),
                "url",
            )
        })?;
        return Ok(vec![map]);
    }
    let (source, target) = (p.text("source"), p.text("target"));
    let mut all: Vec<&ConceptMapDef> = t
        .concept_maps
        .values()
        .filter(|m| source.is_none_or(|s| m.source() == Some(s)))
        .filter(|m| target.is_none_or(|s| m.target() == Some(s)))
        .collect();
    all.sort_by(|a, b| a.url.cmp(&b.url));
    Ok(all)
}

/// What `group` of `map` gives for `coding` (forward).
fn forward(
    t: &Terminology,
    map: &ConceptMapDef,
    group: &ConceptMapGroup,
    coding: &Coding,
    depth: usize,
) -> Vec<Match> {
    let code = coding.code.as_deref().unwrap_or("");
    let elements: Vec<_> = group
        .element
        .iter()
        .filter(|e| e.code.as_deref() == Some(code))
        .collect();
    if !elements.is_empty() {
        return elements
            .iter()
            .flat_map(|e| e.target.iter())
            .map(|tg| Match {
                equivalence: tg
                    .equivalence
                    .clone()
                    .unwrap_or_else(|| "equivalent".into()),
                system: group.target.clone(),
                code: tg.code.clone().unwrap_or_default(),
                display: tg.display.clone(),
                map: map.url.clone(),
            })
            .collect();
    }
    let Some(u) = &group.unmapped else {
        return Vec::new();
    };
    let single = |code: String, display: Option<String>| Match {
        equivalence: "equal".into(),
        system: group.target.clone(),
        code,
        display,
        map: map.url.clone(),
    };
    match u.mode.as_str() {
        "provided" => vec![single(code.to_string(), coding.display.clone())],
        "fixed" => u
            .code
            .clone()
            .map(|c| single(c, u.display.clone()))
            .into_iter()
            .collect(),
        "other-map" if depth == 0 => u
            .url
            .as_deref()
            .and_then(|url| t.concept_map(url))
            .map(|other| translate_with(t, other, coding, false, depth + 1))
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// What `group` of `map` gives for `coding` read as a target (reverse).
fn backward(map: &ConceptMapDef, group: &ConceptMapGroup, coding: &Coding) -> Vec<Match> {
    let code = coding.code.as_deref().unwrap_or("");
    group
        .element
        .iter()
        .flat_map(|e| e.target.iter().map(move |tg| (e, tg)))
        .filter(|(_, tg)| tg.code.as_deref() == Some(code))
        .map(|(e, tg)| Match {
            equivalence: reversed(tg.equivalence.as_deref().unwrap_or("equivalent")).to_string(),
            system: group.source.clone(),
            code: e.code.clone().unwrap_or_default(),
            display: e.display.clone(),
            map: map.url.clone(),
        })
        .collect()
}

fn translate_with(
    t: &Terminology,
    map: &ConceptMapDef,
    coding: &Coding,
    reverse: bool,
    depth: usize,
) -> Vec<Match> {
    let mut out = Vec::new();
    for g in &map.group {
        let (from, _) = if reverse {
            (&g.target, &g.source)
        } else {
            (&g.source, &g.target)
        };
        if coding.system.is_some() && from.is_some() && coding.system != *from {
            continue;
        }
        out.extend(if reverse {
            backward(map, g, coding)
        } else {
            forward(t, map, g, coding, depth)
        });
    }
    out
}

/// `instance_url` is the ConceptMap of an instance-level call (else `url`).
pub fn translate(
    t: &Terminology,
    p: &Params,
    instance_url: Option<&str>,
) -> Result<Value, TxError> {
    let (found, _) = codings(p, "system")?;
    let reverse = p.boolean("reverse")?.unwrap_or(false);
    let target_system = p.text("targetsystem");
    let mut matches = Vec::new();
    for map in maps(t, p, instance_url)? {
        for coding in &found {
            matches.extend(translate_with(t, map, coding, reverse, 0));
        }
    }
    matches.retain(|m| target_system.is_none_or(|s| m.system.as_deref() == Some(s)));
    let result = matches
        .iter()
        .any(|m| m.equivalence != "unmatched" && m.equivalence != "disjoint");
    let mut out = vec![param("result", "Boolean", result)];
    if !result {
        let asked: Vec<String> = found.iter().map(Coding::label).collect();
        out.push(param(
            "message",
            "String",
            format!("No mappings could be found for {}", asked.join(", ")),
        ));
    }
    for m in matches {
        let mut concept = json!({"code": m.code});
        if let Some(s) = m.system {
            concept["system"] = json!(s);
        }
        if let Some(d) = m.display {
            concept["display"] = json!(d);
        }
        out.push(json!({"name": "match", "part": [
            {"name": "equivalence", "valueCode": m.equivalence},
            {"name": "concept", "valueCoding": concept},
            {"name": "source", "valueUri": m.map}]}));
    }
    Ok(parameters(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{params, r4};

    const GENDER: &str = "http://hl7.org/fhir/administrative-gender";
    const V2: &str = "http://terminology.hl7.org/CodeSystem/v2-0001";
    const MAP: &str = "http://hl7.org/fhir/ConceptMap/cm-administrative-gender-v2";

    fn found(v: &Value) -> Vec<(String, String)> {
        v["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["name"] == "match")
            .map(|p| {
                (
                    p["part"][0]["valueCode"].as_str().unwrap().to_string(),
                    p["part"][1]["valueCoding"]["code"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn forward_reverse_and_none() {
        let v = translate(
            r4(),
            &params(&[("url", MAP), ("system", GENDER), ("code", "male")]),
            None,
        )
        .unwrap();
        assert_eq!(v["parameter"][0]["valueBoolean"], true);
        assert_eq!(found(&v), vec![("equal".to_string(), "M".to_string())]);
        let v = translate(
            r4(),
            &params(&[("url", MAP), ("system", GENDER), ("code", "other")]),
            None,
        )
        .unwrap();
        assert_eq!(found(&v).len(), 2);
        let v = translate(
            r4(),
            &params(&[
                ("url", MAP),
                ("system", V2),
                ("code", "A"),
                ("reverse", "true"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(
            found(&v),
            vec![("narrower".to_string(), "other".to_string())]
        );
        let v = translate(
            r4(),
            &params(&[("url", MAP), ("system", GENDER), ("code", "nope")]),
            None,
        )
        .unwrap();
        assert_eq!(v["parameter"][0]["valueBoolean"], false);
        assert!(v["parameter"][1]["valueString"]
            .as_str()
            .unwrap()
            .contains("No mappings"));
        let by_target = translate(
            r4(),
            &params(&[("system", GENDER), ("code", "female"), ("targetsystem", V2)]),
            None,
        )
        .unwrap();
        assert!(
            found(&by_target).contains(&("equal".to_string(), "F".to_string())),
            "{by_target}"
        );
        assert!(translate(r4(), &params(&[("url", "http://x"), ("code", "a")]), None).is_err());
    }
}
