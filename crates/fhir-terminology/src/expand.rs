//! `ValueSet/$expand`: a value set's codes (valueset.html#expansion) as a ValueSet with
//! an `expansion` — `total`, `offset`, the parameters used, `contains` — narrowed by
//! `filter` (every word of it starts a word of the display, or the code starts with
//! it; case-insensitive) and `activeOnly`, and paged by `offset` and `count`. Without
//! `count`, an expansion of more than [`MAX_UNPAGED`] codes is refused as too costly.
//! Each code says what its code system says of it: `inactive`, `abstract` (not
//! selectable), its `designation`s with `includeDesignations`, its display in
//! `displayLanguage` where it has a designation in that language, its definition and
//! properties when asked. `excludeNested=false` nests codes under their ancestors
//! (unpaged expansions of value sets that do not list their codes, at most
//! [`MAX_DEPTH`] deep); otherwise expansions are flat.

use std::collections::HashMap;

use fhir_model::terminology::rows::filter_words as words;
use fhir_model::terminology::{Concept, ExpandedCode, Terminology};
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
    let url = expanded_url(p, instance_url)?;
    let shared = expansion(t, url, "url")?;
    let options = Options::of(p)?;
    let concepts = Concepts::of(t, &shared);
    let mut codes: Vec<&ExpandedCode> = shared.iter().collect();
    if options.active_only {
        codes.retain(|c| !concepts.get(c).is_some_and(Concept::inactive));
    }
    if let Some(f) = filter_text(p) {
        codes.retain(|c| matches(c, f));
    }
    let range = window(p, codes.len())?;
    let page = Page {
        total: codes.len(),
        codes: &codes[range],
        concepts: &concepts,
    };
    render(t, p, url, stamp, page, &options)
}

/// An expansion whose codes were chosen elsewhere — by the store, from a code system
/// kept as rows, with the same `filter`, `activeOnly` and paging: `page` of `total`
/// codes; `t` holds the value set and the page's concepts.
pub fn expand_page(
    t: &Terminology,
    p: &Params,
    instance_url: Option<&str>,
    stamp: Stamp,
    total: usize,
    page: &[ExpandedCode],
) -> Result<Value, TxError> {
    let url = expanded_url(p, instance_url)?;
    let options = Options::of(p)?;
    let concepts = Concepts::of(t, page);
    let codes: Vec<&ExpandedCode> = page.iter().collect();
    let page = Page {
        total,
        codes: &codes,
        concepts: &concepts,
    };
    render(t, p, url, stamp, page, &options)
}

/// The value set an expansion is of.
pub fn expanded_url<'a>(p: &'a Params, instance_url: Option<&'a str>) -> Result<&'a str, TxError> {
    instance_url
        .or(p.text("url"))
        .ok_or_else(|| invalid("the value set is needed (url, or valueSet)", "url"))
}

/// The `filter` text, when there is one.
pub fn filter_text(p: &Params) -> Option<&str> {
    p.text("filter").filter(|f| !f.trim().is_empty())
}

/// Which of `total` codes the page holds (`offset`, `count`); without `count`, more
/// than [`MAX_UNPAGED`] codes are refused as too costly.
pub fn window(p: &Params, total: usize) -> Result<std::ops::Range<usize>, TxError> {
    let offset = p.count("offset")?.unwrap_or(0);
    let count = p.count("count")?;
    if count.is_none() && total > MAX_UNPAGED {
        return Err(TxError::TooCostly {
            message: format!("the expansion has {total} codes: page it with count (at most {MAX_UNPAGED} without)"),
            param: "count".into(),
        });
    }
    let start = offset.min(total);
    Ok(start..count.map_or(total, |c| start.saturating_add(c).min(total)))
}

/// The codes an answer carries, and how many matched.
struct Page<'a, 't> {
    total: usize,
    codes: &'a [&'a ExpandedCode],
    concepts: &'a Concepts<'t>,
}

/// The ValueSet with its `expansion`: `page.codes`, the parameters used, `total`.
fn render(
    t: &Terminology,
    p: &Params,
    url: &str,
    stamp: Stamp,
    page: Page<'_, '_>,
    options: &Options,
) -> Result<Value, TxError> {
    let filter = filter_text(p);
    let offset = p.count("offset")?.unwrap_or(0);
    let count = p.count("count")?;
    let total = page.total;
    let paged = p.text("offset").is_some() || count.is_some();
    let hierarchical = options.exclude_nested == Some(false) && !paged && !enumerated(t, url);
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
    used.extend(options.used());
    for system in crate::status::used_code_systems(t, url) {
        used.push(json!({"name": "used-codesystem", "valueUri": system}));
        if system.contains('|') {
            used.push(json!({"name": "version", "valueUri": system}));
        }
    }
    used.extend(crate::status::notes(t, url).iter().map(|n| n.parameter()));
    let entries: Vec<Value> = page
        .codes
        .iter()
        .map(|c| entry(c, page.concepts.get(c), options))
        .collect();
    // Paging applies to flat expansions (the operation's definition): a paged
    // expansion stays flat.
    let contains = if hierarchical {
        nest(t, page.codes, entries)
    } else {
        entries
    };
    let mut out = answer_resource(t, url);
    let mut expansion = json!({"identifier": stamp.identifier, "timestamp": stamp.timestamp,
        "total": total});
    if p.text("offset").is_some() {
        expansion["offset"] = json!(offset);
    }
    if !used.is_empty() {
        expansion["parameter"] = Value::Array(used);
    }
    if !contains.is_empty() {
        expansion["contains"] = Value::Array(contains);
    }
    out["expansion"] = expansion;
    Ok(out)
}

/// The value set an expansion answers with: its definition as written (less `id`,
/// `meta`, `text`), to which the expansion is added.
fn answer_resource(t: &Terminology, url: &str) -> Value {
    match t.value_set(url) {
        Some(vs) => Value::Object(vs.definition_json()),
        None => json!({"resourceType": "ValueSet",
            "url": fhir_model::terminology::canonical_url(url), "status": "active"}),
    }
}

/// The parameters that shape each code of an expansion.
struct Options {
    active_only: bool,
    /// Whether `activeOnly` was given (its value is repeated, `false` too).
    active_only_given: bool,
    include_designations: bool,
    include_designations_given: bool,
    /// `includeDefinition`: each code's definition (valueset-concept-definition).
    include_definition: bool,
    /// `property`: the concept properties each code carries (`definition` too).
    properties: Vec<String>,
    /// `designation` tokens (`system|code`): a designation is given when its language
    /// (`urn:ietf:bcp:47|de`, or a bare `de`) or its `use` is one of them.
    designations: Vec<String>,
    display_language: Option<String>,
    exclude_nested: Option<bool>,
}

/// The language system of a `designation` token (BCP 47, as `Coding.system`).
const LANGUAGE_SYSTEM: &str = "urn:ietf:bcp:47";

/// The most `property` or `designation` values one expansion takes (each repeated
/// value counts once).
const MAX_ASKED: usize = 32;

/// The distinct texts of a repeatable parameter, at most [`MAX_ASKED`].
fn distinct(p: &Params, name: &str) -> Result<Vec<String>, TxError> {
    let mut out: Vec<String> = Vec::new();
    for v in p.texts(name) {
        if !out.iter().any(|o| o == v) {
            out.push(v.to_string());
        }
        if out.len() > MAX_ASKED {
            return Err(invalid(
                format!("at most {MAX_ASKED} different {name} values are taken"),
                name,
            ));
        }
    }
    Ok(out)
}

impl Options {
    fn of(p: &Params) -> Result<Options, TxError> {
        Ok(Options {
            active_only: p.boolean("activeOnly")?.unwrap_or(false),
            active_only_given: p.boolean("activeOnly")?.is_some(),
            include_designations_given: p.boolean("includeDesignations")?.is_some(),
            // Asking for designations by language or use asks for designations.
            include_designations: p
                .boolean("includeDesignations")?
                .unwrap_or(!p.texts("designation").is_empty()),
            designations: distinct(p, "designation")?,
            include_definition: p.boolean("includeDefinition")?.unwrap_or(false),
            properties: distinct(p, "property")?,
            display_language: p
                .text("displayLanguage")
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string),
            exclude_nested: p.boolean("excludeNested")?,
        })
    }

    /// The expansion parameters these stand for (`expansion.parameter`).
    fn used(&self) -> Vec<Value> {
        let mut out = Vec::new();
        if self.active_only_given {
            out.push(json!({"name": "activeOnly", "valueBoolean": self.active_only}));
        }
        if self.include_designations_given {
            let v = self.include_designations;
            out.push(json!({"name": "includeDesignations", "valueBoolean": v}));
        }
        for d in &self.designations {
            out.push(json!({"name": "designation", "valueString": d}));
        }
        if let Some(l) = &self.display_language {
            out.push(json!({"name": "displayLanguage", "valueCode": l}));
        }
        if let Some(e) = self.exclude_nested {
            out.push(json!({"name": "excludeNested", "valueBoolean": e}));
        }

        out
    }
}

/// The concepts of the code systems an expansion draws on, by system and code (codes
/// of systems this server does not have, or of enumerations only, have none).
struct Concepts<'t>(HashMap<String, HashMap<&'t str, &'t Concept>>);

impl<'t> Concepts<'t> {
    fn of(t: &'t Terminology, codes: &[ExpandedCode]) -> Concepts<'t> {
        let mut out: HashMap<String, HashMap<&'t str, &'t Concept>> = HashMap::new();
        for c in codes {
            if out.contains_key(&c.system) {
                continue;
            }
            let Some(cs) = t.code_system(&c.system) else {
                continue;
            };
            out.entry(c.system.clone()).or_insert_with(|| {
                cs.all_concepts()
                    .into_iter()
                    .map(|k| (k.code.as_str(), k))
                    .collect()
            });
        }
        Concepts(out)
    }

    fn get(&self, c: &ExpandedCode) -> Option<&'t Concept> {
        self.0.get(&c.system)?.get(c.code.as_str()).copied()
    }
}

/// One `expansion.contains`.
fn entry(c: &ExpandedCode, concept: Option<&Concept>, o: &Options) -> Value {
    let mut v = json!({"system": c.system});
    if concept.is_some_and(Concept::not_selectable) {
        v["abstract"] = json!(true);
    }
    if concept.is_some_and(Concept::inactive) {
        v["inactive"] = json!(true);
    }
    v["code"] = json!(c.code);
    let localized = o
        .display_language
        .as_deref()
        .and_then(|l| concept.and_then(|k| k.designation_in(l)));
    if let Some(d) = localized.or(c.display.as_deref()) {
        v["display"] = json!(d);
    }
    let designations = concept.map_or(&[][..], |k| &k.designations[..]);
    let wanted: Vec<Value> = designations
        .iter()
        .filter(|d| o.wants(d))
        .map(designation)
        .collect();
    if o.include_designations && !wanted.is_empty() {
        v["designation"] = Value::Array(wanted);
    }
    let definition = concept.and_then(|k| k.definition.as_deref());
    // Asked for as a property, the definition is given as one instead.
    let as_property = o.properties.iter().any(|p| p == "definition");
    if let (true, false, Some(d)) = (o.include_definition, as_property, definition) {
        v["extension"] = json!([{"url": CONCEPT_DEFINITION, "valueString": d}]);
    }
    let properties: Vec<Value> = concept
        .map(|k| properties(k, &o.properties))
        .unwrap_or_default();
    if !properties.is_empty() {
        let ext = v["extension"].as_array().cloned().unwrap_or_default();
        v["extension"] = Value::Array([ext, properties].concat());
    }
    v
}

/// Whether the value set lists its codes (then its expansion is that list, not a
/// hierarchy).
fn enumerated(t: &Terminology, url: &str) -> bool {
    t.value_set(url)
        .and_then(|v| v.compose.as_ref())
        .is_some_and(|c| c.include.iter().any(|i| !i.concept.is_empty()))
}

/// The extension that gives a code's definition in an expansion (R4).
const CONCEPT_DEFINITION: &str =
    "http://hl7.org/fhir/StructureDefinition/valueset-concept-definition";

/// R5's `expansion.contains.property` as R4 carries it (the cross-version extension).
const CONTAINS_PROPERTY: &str =
    "http://hl7.org/fhir/5.0/StructureDefinition/extension-ValueSet.expansion.contains.property";

/// The `property` values asked for, each as a contains-property extension (`code`,
/// `value`); `definition` is the concept's definition.
fn properties(k: &Concept, asked: &[String]) -> Vec<Value> {
    let one = |code: &str, kind: &str, value: Value| {
        let mut v = json!({"url": "value"});
        v[format!("value{kind}")] = value;
        json!({"url": CONTAINS_PROPERTY, "extension": [{"url": "code", "valueCode": code}, v]})
    };
    let mut out = Vec::new();
    for a in asked {
        if a == "definition" {
            out.extend(k.definition.as_ref().map(|d| one(a, "String", json!(d))));
            continue;
        }
        for p in k.properties.iter().filter(|p| &p.code == a) {
            out.push(one(a, p.kind.0, crate::lookup::typed_value(p)));
        }
    }
    out
}

/// The codes of a page nested under their nearest ancestor in the page (each code
/// system's hierarchy), in the page's order: the hierarchical expansion of
/// `excludeNested=false`.
fn nest(t: &Terminology, page: &[&ExpandedCode], mut entries: Vec<Value>) -> Vec<Value> {
    let mut parents: HashMap<&str, HashMap<&str, Vec<&str>>> = HashMap::new();
    for c in page {
        if parents.contains_key(c.system.as_str()) {
            continue;
        }
        let mut up: HashMap<&str, Vec<&str>> = HashMap::new();
        if let Some(cs) = t.code_system(&c.system) {
            for (p, kids) in cs.children_index() {
                for k in kids {
                    up.entry(k).or_default().push(p);
                }
            }
        }
        parents.insert(c.system.as_str(), up);
    }
    let at: HashMap<(&str, &str), usize> = page
        .iter()
        .enumerate()
        .map(|(i, c)| ((c.system.as_str(), c.code.as_str()), i))
        .collect();
    let mut above: Vec<Option<usize>> = page
        .iter()
        .enumerate()
        .map(|(i, c)| nearest(&parents[c.system.as_str()], &at, c).filter(|p| *p != i))
        .collect();
    // A hierarchy with a cycle: the code that closes it is a root. A hierarchy deeper
    // than MAX_DEPTH stays flat (its nesting would be as deep).
    for i in 0..above.len() {
        let (mut j, mut steps) = (above[i], 0);
        while let Some(k) = j {
            if k == i {
                above[i] = None;
                break;
            }
            if steps > MAX_DEPTH {
                return entries;
            }
            (j, steps) = (above[k], steps + 1);
        }
    }
    let mut kids: Vec<Vec<usize>> = vec![Vec::new(); page.len()];
    for (i, p) in above.iter().enumerate() {
        if let Some(p) = p {
            kids[*p].push(i);
        }
    }
    fn build(i: usize, kids: &[Vec<usize>], entries: &mut [Value]) -> Value {
        let mut v = std::mem::take(&mut entries[i]);
        let nested: Vec<Value> = kids[i].iter().map(|k| build(*k, kids, entries)).collect();
        if !nested.is_empty() {
            v["contains"] = Value::Array(nested);
        }
        v
    }
    (0..page.len())
        .filter(|i| above[*i].is_none())
        .map(|i| build(i, &kids, &mut entries))
        .collect()
}

/// The deepest nesting of a hierarchical expansion (a deeper one stays flat).
const MAX_DEPTH: usize = 64;

/// The most ancestors looked at to find a code's nearest one in the page.
const MAX_ANCESTORS: usize = 256;

/// The position of `c`'s nearest ancestor among the page's codes (breadth first up
/// its code system's hierarchy, at most [`MAX_ANCESTORS`] looked at), if any.
fn nearest(
    up: &HashMap<&str, Vec<&str>>,
    at: &HashMap<(&str, &str), usize>,
    c: &ExpandedCode,
) -> Option<usize> {
    let mut seen = std::collections::HashSet::new();
    let mut level: Vec<&str> = up.get(c.code.as_str()).cloned().unwrap_or_default();
    level.truncate(MAX_ANCESTORS);
    while !level.is_empty() && seen.len() < MAX_ANCESTORS {
        for p in &level {
            if let Some(i) = at.get(&(c.system.as_str(), *p)) {
                return Some(*i);
            }
        }
        let mut next: Vec<&str> = level
            .iter()
            .filter(|p| seen.insert(**p))
            .flat_map(|p| up.get(p).into_iter().flatten().copied())
            .collect();
        next.truncate(MAX_ANCESTORS);
        level = next;
    }
    None
}

impl Options {
    /// Whether the `designation` tokens let `d` through (all do without tokens).
    fn wants(&self, d: &fhir_model::terminology::Designation) -> bool {
        if self.designations.is_empty() {
            return true;
        }
        self.designations.iter().any(|t| {
            let (system, code) = t
                .split_once('|')
                .map_or((None, t.as_str()), |(s, c)| (Some(s), c));
            let language = system.is_none_or(|s| s == LANGUAGE_SYSTEM)
                && d.language
                    .as_deref()
                    .is_some_and(|l| fhir_model::terminology::language_within(l, code));
            let used = d.use_.as_ref().is_some_and(|u| {
                u["code"] == code && system.is_none_or(|s| s.is_empty() || u["system"] == s)
            });
            language || used
        })
    }
}

/// A designation as an expansion gives it (language, use, value).
fn designation(d: &fhir_model::terminology::Designation) -> Value {
    let mut v = json!({});
    if let Some(l) = &d.language {
        v["language"] = json!(l);
    }
    if let Some(u) = &d.use_ {
        v["use"] = u.clone();
    }
    v["value"] = json!(d.value);
    v
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testing::{params, r4};

    const CS: &str = "http://example.org/cs/lang";
    const VS: &str = "http://example.org/vs/lang";

    /// A code system with designations, an inactive, a retired and an abstract concept.
    pub(crate) fn hospital() -> Terminology {
        whole(json!([
            {"code": "fever", "display": "Fever", "designation": [
                {"language": "de-CH", "value": "Fieber"},
                {"language": "fr", "use": {"system": "http://snomed.info/sct", "code": "900000000000013009"},
                 "value": "Fièvre"}]},
            {"code": "old", "display": "Old", "property": [{"code": "inactive", "valueBoolean": true}]},
            {"code": "gone", "display": "Gone", "property": [{"code": "status", "valueCode": "retired"}]},
            {"code": "group", "display": "Group", "property": [{"code": "notSelectable", "valueBoolean": true}]}]))
    }

    fn codes(v: &Value) -> Vec<&str> {
        v["expansion"]["contains"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["code"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn marks_inactive_and_abstract_codes_and_leaves_them_out_when_asked() {
        let t = hospital();
        let all = expand(&t, &params(&[("url", VS)]), None, stamp()).unwrap();
        assert_eq!(codes(&all), ["fever", "old", "gone", "group"]);
        let contains = &all["expansion"]["contains"];
        assert_eq!(contains[1]["inactive"], true);
        assert_eq!(contains[2]["inactive"], true);
        assert_eq!(contains[3]["abstract"], true);
        assert!(contains[0].get("inactive").is_none() && contains[0].get("designation").is_none());
        let active = expand(
            &t,
            &params(&[("url", VS), ("activeOnly", "true")]),
            None,
            stamp(),
        )
        .unwrap();
        assert_eq!(codes(&active), ["fever", "group"]);
        assert_eq!(active["expansion"]["total"], 2);
        assert_eq!(
            active["expansion"]["parameter"][0],
            json!({"name": "activeOnly", "valueBoolean": true})
        );
        let bad = expand(
            &t,
            &params(&[("url", VS), ("activeOnly", "yes")]),
            None,
            stamp(),
        );
        assert_eq!(bad.unwrap_err().param(), "activeOnly");
    }

    #[test]
    fn gives_designations_and_displays_in_the_language_asked() {
        let t = hospital();
        let v = expand(
            &t,
            &params(&[
                ("url", VS),
                ("includeDesignations", "true"),
                ("displayLanguage", "de"),
                ("excludeNested", "true"),
            ]),
            None,
            stamp(),
        )
        .unwrap();
        let fever = &v["expansion"]["contains"][0];
        assert_eq!(fever["display"], "Fieber");
        assert_eq!(
            fever["designation"][1],
            json!({"language": "fr", "use": {"system": "http://snomed.info/sct",
                "code": "900000000000013009"}, "value": "Fièvre"})
        );
        assert_eq!(v["expansion"]["contains"][1]["display"], "Old");
        let used: Vec<&str> = v["expansion"]["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            used,
            [
                "includeDesignations",
                "displayLanguage",
                "excludeNested",
                "used-codesystem"
            ]
        );
    }

    #[test]
    fn designation_tokens_choose_designations_by_language_or_use() {
        let t = hospital();
        let values = |tokens: &[&str]| -> Value {
            let mut p = vec![("url", VS)];
            p.extend(tokens.iter().map(|t| ("designation", *t)));
            let v = expand(&t, &params(&p), None, stamp()).unwrap();
            v["expansion"]["contains"][0]["designation"]
                .as_array()
                .map_or(json!([]), |a| {
                    json!(a.iter().map(|d| &d["value"]).collect::<Vec<_>>())
                })
        };
        assert_eq!(values(&[]), json!([]), "no designations unless asked");
        assert_eq!(values(&["urn:ietf:bcp:47|de"]), json!(["Fieber"]));
        assert_eq!(values(&["fr"]), json!(["Fièvre"]));
        assert_eq!(
            values(&["http://snomed.info/sct|900000000000013009"]),
            json!(["Fièvre"])
        );
        assert_eq!(
            values(&[
                "urn:ietf:bcp:47|de",
                "http://snomed.info/sct|900000000000013009"
            ]),
            json!(["Fieber", "Fièvre"])
        );
        assert_eq!(values(&["urn:ietf:bcp:47|es"]), json!([]));
        assert_eq!(
            values(&["urn:ietf:bcp:47|d"]),
            json!([]),
            "not a prefix of a subtag"
        );
        let v = expand(
            &t,
            &params(&[
                ("url", VS),
                ("designation", "fr"),
                ("includeDesignations", "false"),
            ]),
            None,
            stamp(),
        )
        .unwrap();
        assert!(v["expansion"]["contains"][0].get("designation").is_none());
        assert_eq!(
            v["expansion"]["parameter"],
            json!([{"name": "includeDesignations", "valueBoolean": false},
                {"name": "designation", "valueString": "fr"},
                {"name": "used-codesystem", "valueUri": CS}])
        );
    }

    /// A terminology of one code system `concepts` and a value set of all of it.
    fn whole(concepts: Value) -> Terminology {
        let cs = json!({"resourceType": "CodeSystem", "url": CS, "content": "complete",
            "concept": concepts});
        let vs = json!({"resourceType": "ValueSet", "url": VS, "status": "active",
            "compose": {"include": [{"system": CS}]}});
        let mut t = Terminology::default();
        t.code_systems
            .insert(CS.into(), serde_json::from_value(cs).unwrap());
        t.value_sets
            .insert(VS.into(), serde_json::from_value(vs).unwrap());
        t
    }

    #[test]
    fn nests_under_ancestors_and_stays_flat_when_it_cannot() {
        let nested = |t: &Terminology| {
            let p = params(&[("url", VS), ("excludeNested", "false")]);
            expand(t, &p, None, stamp()).unwrap()["expansion"]["contains"].clone()
        };
        let tree = whole(
            json!([{"code": "a", "concept": [{"code": "b", "concept": [{"code": "c"}]}]},
            {"code": "d"}]),
        );
        let v = nested(&tree);
        assert_eq!(v[0]["code"], "a");
        assert_eq!(v[0]["contains"][0]["contains"][0]["code"], "c");
        assert_eq!(v[1]["code"], "d");
        // A cycle (a code its own ancestor) and a code its own parent: every code
        // comes back once.
        let cycle = whole(json!([
            {"code": "x", "property": [{"code": "parent", "valueCode": "y"}]},
            {"code": "y", "property": [{"code": "parent", "valueCode": "x"}]},
            {"code": "z", "property": [{"code": "parent", "valueCode": "z"}]}]));
        let v = nested(&cycle).to_string();
        for c in ["x", "y", "z"] {
            assert_eq!(v.matches(&format!("\"code\":\"{c}\"")).count(), 1, "{v}");
        }
        // A chain deeper than MAX_DEPTH stays flat.
        let chain: Vec<Value> = (0..200)
            .map(|i| match i {
                0 => json!({"code": "k0"}),
                _ => json!({"code": format!("k{i}"),
                    "property": [{"code": "parent", "valueCode": format!("k{}", i - 1)}]}),
            })
            .collect();
        let v = nested(&whole(Value::Array(chain)));
        assert_eq!(v.as_array().unwrap().len(), 200);
        // A designation language that is not ASCII is compared, not sliced.
        let lang =
            whole(json!([{"code": "a", "designation": [{"language": "é-x", "value": "v"}]}]));
        let p = params(&[("url", VS), ("designation", "e")]);
        assert!(expand(&lang, &p, None, stamp()).is_ok());
    }

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
