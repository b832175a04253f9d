//! `ConceptMap/$translate` (conceptmap-operation-translate): the codes a ConceptMap
//! gives for a code (code + system, coding, or each coding of a codeableConcept) —
//! from the map named by `url` (or the instance), else from every map whose source
//! and target value sets match `source` and `target` — with each match's equivalence,
//! concept and map. `targetsystem` keeps the matches in that system. `reverse=true`
//! maps a target code back to its sources (`wider` and `narrower`, `subsumes` and
//! `specializes` swap). A group's `unmapped` applies to codes it has no element for:
//! `provided` maps the code to itself, `fixed` to the given code; `other-map` to what
//! the named map gives (one level). `result` is true when some match is neither
//! `unmatched` nor `disjoint`. A target that `dependsOn` other elements holds only
//! when the request's `dependency` parameters give those elements those values; its
//! `product`s are returned with the match (reversed, the two swap roles).

use fhir_model::terminology::{ConceptMapDef, ConceptMapGroup, OtherElement, Terminology};
use serde_json::{json, Value};

use crate::{codings, not_found, param, parameters, Coding, Params, TxError};

/// One match: equivalence, the concept, the map it came from, and what else the
/// mapping produces.
struct Match {
    equivalence: String,
    system: Option<String>,
    code: String,
    display: Option<String>,
    map: String,
    products: Vec<OtherElement>,
}

/// A `dependency` of the request: an element and the codings it has.
pub(crate) struct Dependency {
    element: String,
    codings: Vec<Coding>,
}

/// The request's `dependency` parameters (parts `element` and `concept`, a
/// CodeableConcept or a Coding).
fn dependencies(p: &Params) -> Vec<Dependency> {
    p.0.iter()
        .filter(|(n, _)| n == "dependency")
        .filter_map(|(_, v)| v["part"].as_array())
        .map(|parts| {
            let part = |name: &str| parts.iter().find(|x| x["name"] == name);
            let element = part("element")
                .and_then(|x| x["valueUri"].as_str())
                .unwrap_or("")
                .to_string();
            let concept = part("concept");
            let codings = match concept.and_then(|x| x["valueCodeableConcept"]["coding"].as_array())
            {
                Some(all) => all.iter().map(Coding::of).collect(),
                None => concept
                    .map(|x| Coding::of(&x["valueCoding"]))
                    .into_iter()
                    .collect(),
            };
            Dependency { element, codings }
        })
        .collect()
}

/// Whether the request's dependencies meet every condition.
fn holds(conditions: &[OtherElement], given: &[Dependency]) -> bool {
    conditions.iter().all(|c| {
        given.iter().any(|d| {
            d.element == c.property
                && d.codings.iter().any(|k| {
                    k.code.as_deref() == Some(c.value.as_str())
                        && c.system
                            .as_ref()
                            .is_none_or(|s| k.system.as_ref() == Some(s))
                })
        })
    })
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
    given: &[Dependency],
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
            .filter(|tg| holds(&tg.depends_on, given))
            .map(|tg| Match {
                equivalence: tg
                    .equivalence
                    .clone()
                    .unwrap_or_else(|| "equivalent".into()),
                system: group.target.clone(),
                code: tg.code.clone().unwrap_or_default(),
                display: tg.display.clone(),
                map: map.url.clone(),
                products: tg.product.clone(),
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
        products: Vec::new(),
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
            .map(|other| translate_with(t, other, coding, false, given, depth + 1))
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// What `group` of `map` gives for `coding` read as a target (reverse).
fn backward(
    map: &ConceptMapDef,
    group: &ConceptMapGroup,
    coding: &Coding,
    given: &[Dependency],
) -> Vec<Match> {
    let code = coding.code.as_deref().unwrap_or("");
    group
        .element
        .iter()
        .flat_map(|e| e.target.iter().map(move |tg| (e, tg)))
        // The products of a mapping are conditions of its reverse only when the
        // request gives dependencies to compare them with.
        .filter(|(_, tg)| {
            tg.code.as_deref() == Some(code) && (given.is_empty() || holds(&tg.product, given))
        })
        .map(|(e, tg)| Match {
            equivalence: reversed(tg.equivalence.as_deref().unwrap_or("equivalent")).to_string(),
            system: group.source.clone(),
            code: e.code.clone().unwrap_or_default(),
            display: e.display.clone(),
            map: map.url.clone(),
            products: tg.depends_on.clone(),
        })
        .collect()
}

fn translate_with(
    t: &Terminology,
    map: &ConceptMapDef,
    coding: &Coding,
    reverse: bool,
    given: &[Dependency],
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
            backward(map, g, coding, given)
        } else {
            forward(t, map, g, coding, given, depth)
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
    let given = dependencies(p);
    let mut matches = Vec::new();
    for map in maps(t, p, instance_url)? {
        for coding in &found {
            matches.extend(translate_with(t, map, coding, reverse, &given, 0));
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
        let mut parts = vec![
            json!({"name": "equivalence", "valueCode": m.equivalence}),
            json!({"name": "concept", "valueCoding": concept}),
        ];
        parts.extend(m.products.iter().map(product));
        parts.push(json!({"name": "source", "valueUri": m.map}));
        out.push(json!({"name": "match", "part": parts}));
    }
    Ok(parameters(out))
}

/// A `match.product` part: the element and its value as a Coding.
fn product(o: &OtherElement) -> Value {
    let mut concept = json!({"code": o.value});
    if let Some(s) = &o.system {
        concept["system"] = json!(s);
    }
    if let Some(d) = &o.display {
        concept["display"] = json!(d);
    }
    json!({"name": "product", "part": [
        {"name": "element", "valueUri": o.property},
        {"name": "concept", "valueCoding": concept}]})
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
    fn dependencies_choose_targets_and_products_come_back() {
        let map = serde_json::from_value(json!({"url": "http://x/cm", "group": [{
            "source": "http://x/from", "target": "http://x/to",
            "element": [{"code": "a", "target": [
                {"code": "adult", "equivalence": "equivalent",
                 "dependsOn": [{"property": "http://x/age", "system": "http://x/ages", "value": "adult"}],
                 "product": [{"property": "http://x/unit", "value": "kg", "display": "kilogram"}]},
                {"code": "child", "equivalence": "equivalent",
                 "dependsOn": [{"property": "http://x/age", "value": "child"}]}]}]}]}))
        .unwrap();
        let mut t = Terminology::default();
        t.concept_maps.insert("http://x/cm".into(), map);
        let dependency = |system: &str, code: &str| {
            json!({"part": [{"name": "element", "valueUri": "http://x/age"},
                {"name": "concept", "valueCodeableConcept": {"coding": [{"system": system, "code": code}]}}]})
        };
        let ask = |deps: Vec<Value>, reverse: bool, code: &str| {
            let mut p = params(&[("url", "http://x/cm"), ("code", code)]);
            p.0.push((
                "system".into(),
                json!(if reverse {
                    "http://x/to"
                } else {
                    "http://x/from"
                }),
            ));
            p.0.extend(deps.into_iter().map(|d| ("dependency".to_string(), d)));
            if reverse {
                p.0.push(("reverse".into(), json!("true")));
            }
            translate(&t, &p, None).unwrap()
        };
        // No dependency given: no target holds.
        assert_eq!(
            ask(vec![], false, "a")["parameter"][0]["valueBoolean"],
            false
        );
        let v = ask(vec![dependency("http://x/ages", "adult")], false, "a");
        assert_eq!(
            found(&v),
            vec![("equivalent".to_string(), "adult".to_string())]
        );
        let m = &v["parameter"][1]["part"];
        assert_eq!(m[2]["name"], "product", "{v}");
        assert_eq!(m[2]["part"][0]["valueUri"], "http://x/unit");
        assert_eq!(m[2]["part"][1]["valueCoding"]["code"], "kg");
        assert_eq!(m[3]["name"], "source");
        // The system named by the condition must match.
        let v = ask(vec![dependency("http://x/other", "adult")], false, "a");
        assert!(found(&v).is_empty(), "{v}");
        let v = ask(vec![dependency("http://x/any", "child")], false, "a");
        assert_eq!(
            found(&v),
            vec![("equivalent".to_string(), "child".to_string())]
        );
        // Reversed, the condition comes back as a product.
        let v = ask(vec![], true, "child");
        assert_eq!(found(&v), vec![("equivalent".to_string(), "a".to_string())]);
        assert_eq!(
            v["parameter"][1]["part"][2]["part"][0]["valueUri"],
            "http://x/age"
        );
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
