//! A large CodeSystem as rows: its header (the resource without its concepts), one row
//! per concept (code, display, the words a `filter` matches, whether it is inactive or
//! not selectable, and the concept's own JSON without its nested concepts) and one
//! row per parent link — what the store keeps beside the resource so that the
//! terminology operations read the concepts they need and page expansions from an
//! index instead of holding the whole code system in memory (a SNOMED CT edition is
//! 350,000 concepts).

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::{CodeSystemDef, Concept};

/// Code systems with at least this many concepts are kept as rows too (smaller ones
/// are read whole: parsing them costs less than the statements rows would take).
pub const ROWS_FROM: usize = 1_000;

/// A code system's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConceptRows {
    pub url: String,
    pub version: Option<String>,
    /// The CodeSystem's JSON without `concept`.
    pub header: String,
    /// The concepts in document order (a concept before its nested ones).
    pub concepts: Vec<ConceptRow>,
    /// (code, parent code): nested concepts under their concept, and the `parent` and
    /// `child` properties.
    pub links: Vec<(String, String)>,
}

/// One concept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConceptRow {
    pub code: String,
    pub display: Option<String>,
    /// The display's words, lower-cased, each after a space (` heart attack`): a
    /// `filter` word matches a word it starts (`LIKE '% hea%'`).
    pub words: String,
    pub inactive: bool,
    pub not_selectable: bool,
    /// The concept's JSON without its nested concepts and hierarchy properties
    /// (`parent`, `child`: those are [`ConceptRows::links`]).
    pub json: String,
}

/// The rows of `resource` when it is a CodeSystem that holds its concepts
/// (`complete` or `fragment`) and at least [`ROWS_FROM`] of them.
pub fn concept_rows(resource: &Value) -> Option<ConceptRows> {
    let content = resource.get("content").and_then(Value::as_str)?;
    if !matches!(content, "complete" | "fragment") || count(resource) < ROWS_FROM {
        return None;
    }
    let def: CodeSystemDef = serde_json::from_value(resource.clone()).ok()?;
    let mut header = resource.as_object()?.clone();
    let raw = header.remove("concept")?;
    let mut out = ConceptRows {
        url: def.url.clone(),
        version: def.version.clone(),
        header: Value::Object(header).to_string(),
        concepts: Vec::with_capacity(def.concepts.len()),
        links: Vec::new(),
    };
    let mut seen = HashSet::new();
    walk(raw.as_array()?, &def.concepts, None, &mut seen, &mut out);
    Some(out)
}

/// The number of concepts, nested ones included.
fn count(resource: &Value) -> usize {
    fn walk(v: Option<&Value>) -> usize {
        v.and_then(Value::as_array)
            .map_or(0, |a| a.iter().map(|c| 1 + walk(c.get("concept"))).sum())
    }
    walk(resource.get("concept"))
}

/// Adds `raw` (the JSON) and `parsed` (the same concepts read) under `parent`. A code
/// met again (a concept written under two parents) adds its links, not a second row:
/// an expansion holds each code once, where it is first met.
fn walk(
    raw: &[Value],
    parsed: &[Concept],
    parent: Option<&str>,
    seen: &mut HashSet<String>,
    out: &mut ConceptRows,
) {
    for (json, concept) in raw.iter().zip(parsed) {
        if let Some(p) = parent {
            out.links.push((concept.code.clone(), p.to_string()));
        }
        for p in concept.property("parent") {
            out.links.push((concept.code.clone(), p.to_string()));
        }
        for k in concept.property("child") {
            out.links.push((k.to_string(), concept.code.clone()));
        }
        if seen.insert(concept.code.clone()) {
            out.concepts.push(ConceptRow {
                code: concept.code.clone(),
                display: concept.display.clone(),
                words: words(concept.display.as_deref().unwrap_or("")),
                inactive: concept.inactive(),
                not_selectable: concept.not_selectable(),
                json: own(json).to_string(),
            });
        }
        let nested = json.get("concept").and_then(Value::as_array);
        walk(
            nested.map_or(&[], Vec::as_slice),
            &concept.children,
            Some(&concept.code),
            seen,
            out,
        );
    }
}

/// A concept's JSON without its nested concepts and its `parent` and `child`
/// properties.
fn own(concept: &Value) -> Value {
    let mut own: Map<String, Value> = concept.as_object().cloned().unwrap_or_default();
    own.remove("concept");
    if let Some(Value::Array(props)) = own.get_mut("property") {
        props.retain(|p| {
            !matches!(
                p.get("code").and_then(Value::as_str),
                Some("parent" | "child")
            )
        });
        if props.is_empty() {
            own.remove("property");
        }
    }
    Value::Object(own)
}

/// The words of `s` as an expansion's `filter` matches them: split at what is not a
/// letter or a digit, lower-cased (fhir-terminology's `$expand` in memory, and the
/// rows' `words` and the database's conditions below).
pub fn filter_words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// [`filter_words`] each after a space, as a row keeps them (` heart attack`).
pub fn words(s: &str) -> String {
    filter_words(s).iter().map(|w| format!(" {w}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn system(n: usize) -> Value {
        let concepts: Vec<Value> = (0..n)
            .map(|i| json!({"code": format!("c{i}"), "display": format!("Code number {i}")}))
            .collect();
        json!({"resourceType": "CodeSystem", "url": "http://x/cs", "version": "2",
            "content": "complete", "concept": concepts})
    }

    #[test]
    fn small_systems_and_those_without_concepts_have_no_rows() {
        assert_eq!(concept_rows(&system(ROWS_FROM - 1)), None);
        let mut s = system(ROWS_FROM);
        s["content"] = json!("not-present");
        assert_eq!(concept_rows(&s), None);
        assert_eq!(concept_rows(&json!({"resourceType": "Patient"})), None);
    }

    #[test]
    fn rows_keep_order_hierarchy_and_status() {
        let mut s = system(ROWS_FROM);
        s["concept"][0]["concept"] = json!([{"code": "kid", "display": "A Kid-Code",
            "property": [{"code": "status", "valueCode": "retired"},
                         {"code": "parent", "valueCode": "c5"}],
            "concept": [{"code": "grandkid"}]}]);
        s["concept"][1]["property"] = json!([{"code": "notSelectable", "valueBoolean": true},
            {"code": "child", "valueCode": "c2"}]);
        let rows = concept_rows(&s).unwrap();
        assert_eq!(rows.concepts.len(), ROWS_FROM + 2);
        let codes: Vec<&str> = rows.concepts[..4].iter().map(|c| c.code.as_str()).collect();
        assert_eq!(codes, ["c0", "kid", "grandkid", "c1"]);
        let kid = &rows.concepts[1];
        assert!(kid.inactive && !kid.not_selectable);
        assert_eq!(kid.words, " a kid code");
        assert_eq!(
            kid.json,
            r#"{"code":"kid","display":"A Kid-Code","property":[{"code":"status","valueCode":"retired"}]}"#
        );
        assert!(rows.concepts[3].not_selectable);
        let links: Vec<(&str, &str)> = rows
            .links
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        assert_eq!(
            links,
            [
                ("kid", "c0"),
                ("kid", "c5"),
                ("grandkid", "kid"),
                ("c2", "c1")
            ]
        );
        assert!(!rows.header.contains("\"concept\""));
        // A code under two parents is one row with two links.
        let mut s = system(ROWS_FROM);
        s["concept"][0]["concept"] = json!([{"code": "c1"}]);
        let rows = concept_rows(&s).unwrap();
        assert_eq!(rows.concepts.len(), ROWS_FROM);
        assert_eq!(rows.concepts[1].code, "c1");
        assert!(rows.links.contains(&("c1".to_string(), "c0".to_string())));
        assert_eq!(rows.version.as_deref(), Some("2"));
    }
}
