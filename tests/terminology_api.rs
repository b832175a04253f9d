//! Black-box tests of the terminology operations on SQLite and PostgreSQL, against the
//! core package's code systems and value sets (administrative-gender, v3-ActCode):
//! `CodeSystem/$lookup`, `$validate-code` (code system and value set; code, coding and
//! codeableConcept; displays), `CodeSystem/$subsumes`, `ValueSet/$expand` (filter,
//! offset, count), by GET and by POST of a Parameters resource, at the type and the
//! instance level, and their errors; and the basics of terminology written through the
//! API (uploads, designations, changes used at once, search and validation with stored
//! codes; versions, contents, maps and supplements are in `terminology_stored.rs`).

mod common;

use common::{parameter as get, Backend, Server};
use serde_json::{json, Value};

const GENDER: &str = "http://hl7.org/fhir/administrative-gender";
const GENDER_VS: &str = "http://hl7.org/fhir/ValueSet/administrative-gender";
const ACT: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";

fn lookup_and_subsumes(b: Backend) {
    let s = common::shared(b);
    let r = s.get(&format!("/CodeSystem/$lookup?system={GENDER}&code=female"));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(get(&v, "name")["valueString"], "AdministrativeGender");
    assert_eq!(get(&v, "display")["valueString"], "Female");
    let body = json!({"resourceType": "Parameters", "parameter": [
        {"name": "coding", "valueCoding": {"system": ACT, "code": "AMB"}},
        {"name": "property", "valueCode": "parent"}]});
    let v = s
        .req("POST", "/CodeSystem/$lookup")
        .json(&body.to_string())
        .json();
    let parent = get(&v, "property");
    assert_eq!(parent["part"][0]["valueCode"], "parent", "{v}");
    assert_eq!(parent["part"][1]["valueCode"], "_ActEncounterCode");
    let sub = |a: &str, b: &str| {
        s.get(&format!(
            "/CodeSystem/$subsumes?system={ACT}&codeA={a}&codeB={b}"
        ))
        .json()["parameter"][0]["valueCode"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(sub("_ActEncounterCode", "AMB"), "subsumes");
    assert_eq!(sub("AMB", "_ActEncounterCode"), "subsumed-by");
    assert_eq!(sub("AMB", "AMB"), "equivalent");
    assert_eq!(sub("AMB", "EMER"), "not-subsumed");
}

fn validate_codes(b: Backend) {
    let s = common::shared(b);
    let v = s
        .get(&format!(
            "/CodeSystem/$validate-code?url={GENDER}&code=male&display=Male"
        ))
        .json();
    assert_eq!(get(&v, "result")["valueBoolean"], true, "{v}");
    let v = s
        .get(&format!(
            "/CodeSystem/$validate-code?url={GENDER}&code=male&display=Man"
        ))
        .json();
    assert_eq!(get(&v, "result")["valueBoolean"], false);
    assert!(get(&v, "message")["valueString"]
        .as_str()
        .unwrap()
        .contains("Valid display is 'Male'"));
    let v = s
        .get(&format!(
            "/ValueSet/$validate-code?url={GENDER_VS}&system={GENDER}&code=unknown"
        ))
        .json();
    assert_eq!(get(&v, "result")["valueBoolean"], true, "{v}");
    let body = json!({"resourceType": "Parameters", "parameter": [
        {"name": "url", "valueUri": GENDER_VS},
        {"name": "codeableConcept", "valueCodeableConcept": {"coding": [
            {"system": "http://loinc.org", "code": "x"}, {"system": GENDER, "code": "female"}]}}]});
    let v = s
        .req("POST", "/ValueSet/$validate-code")
        .json(&body.to_string())
        .json();
    assert_eq!(get(&v, "result")["valueBoolean"], true, "{v}");
    let v = s
        .get(&format!(
            "/ValueSet/$validate-code?url={GENDER_VS}&system={ACT}&code=AMB"
        ))
        .json();
    assert_eq!(get(&v, "result")["valueBoolean"], false);
    assert!(get(&v, "message")["valueString"]
        .as_str()
        .unwrap()
        .contains("was not found in the value set"));
    // A codeableConcept comes back with its valid coding completed; a code of a code
    // system this server does not have says so (HL7's terminology servers' outputs).
    let cc = get(&v_concept(s), "codeableConcept")["valueCodeableConcept"].clone();
    assert_eq!(
        cc["coding"][1],
        json!({"system": GENDER, "code": "female", "display": "Female", "version": "4.0.1"})
    );
    let v = s
        .get(&format!(
            "/ValueSet/$validate-code?url={GENDER_VS}&system=http://example.org/nowhere&code=a"
        ))
        .json();
    assert_eq!(get(&v, "result")["valueBoolean"], false, "{v}");
    assert_eq!(
        get(&v, "x-caused-by-unknown-system")["valueCanonical"],
        "http://example.org/nowhere"
    );
    assert!(v
        .to_string()
        .contains("A definition for CodeSystem http://example.org/nowhere could not be found"));
}

fn v_concept(s: &Server) -> Value {
    let body = json!({"resourceType": "Parameters", "parameter": [
        {"name": "url", "valueUri": GENDER_VS},
        {"name": "codeableConcept", "valueCodeableConcept": {"coding": [
            {"system": "http://loinc.org", "code": "x"}, {"system": GENDER, "code": "female"}]}}]});
    s.req("POST", "/ValueSet/$validate-code")
        .json(&body.to_string())
        .json()
}

fn expansions(b: Backend) {
    let s = common::shared(b);
    let v = s.get(&format!("/ValueSet/$expand?url={GENDER_VS}")).json();
    assert_eq!(v["resourceType"], "ValueSet");
    assert_eq!(v["expansion"]["total"], 4, "{v}");
    assert!(v["expansion"]["identifier"]
        .as_str()
        .unwrap()
        .starts_with("urn:uuid:"));
    let v = s
        .get(&format!("/ValueSet/$expand?url={GENDER_VS}&filter=fem"))
        .json();
    assert_eq!(v["expansion"]["contains"][0]["code"], "female", "{v}");
    assert_eq!(v["expansion"]["total"], 1);
    let v = s
        .get(&format!(
            "/ValueSet/$expand?url={GENDER_VS}&offset=2&count=5"
        ))
        .json();
    assert_eq!(
        v["expansion"]["contains"].as_array().unwrap().len(),
        2,
        "{v}"
    );
    assert_eq!(v["expansion"]["offset"], 2);
}

fn translations(b: Backend) {
    let s = common::shared(b);
    let map = "http://hl7.org/fhir/ConceptMap/cm-administrative-gender-v2";
    let v2 = "http://terminology.hl7.org/CodeSystem/v2-0001";
    let v = s
        .get(&format!(
            "/ConceptMap/$translate?url={map}&system={GENDER}&code=female"
        ))
        .json();
    assert_eq!(get(&v, "result")["valueBoolean"], true, "{v}");
    let m = get(&v, "match");
    assert_eq!(m["part"][0]["valueCode"], "equal");
    assert_eq!(m["part"][1]["valueCoding"]["code"], "F");
    assert_eq!(m["part"][1]["valueCoding"]["system"], v2);
    assert_eq!(m["part"][2]["valueUri"], map);
    let body = json!({"resourceType": "Parameters", "parameter": [
        {"name": "url", "valueUri": map},
        {"name": "coding", "valueCoding": {"system": v2, "code": "M"}},
        {"name": "reverse", "valueBoolean": true}]});
    let v = s
        .req("POST", "/ConceptMap/$translate")
        .json(&body.to_string())
        .json();
    assert_eq!(
        get(&v, "match")["part"][1]["valueCoding"]["code"],
        "male",
        "{v}"
    );
    let v = s
        .get(&format!(
            "/ConceptMap/$translate?url={map}&system={GENDER}&code=nope"
        ))
        .json();
    assert_eq!(get(&v, "result")["valueBoolean"], false);
    s.get(&format!(
        "/ConceptMap/$translate?url=http://example.org/no-map&system={GENDER}&code=male"
    ))
    .outcome(404);
    let r = s.get(&format!(
        "/ConceptMap/$translate?url={map}&system={GENDER}&code=male&reverse=maybe"
    ));
    assert_eq!(r.outcome(400)["issue"][0]["expression"][0], "reverse");
}

fn instance_level_and_errors(b: Backend) {
    let s = common::shared(b);
    // A stored copy of a core code system answers at the instance level.
    let copy = json!({"resourceType": "CodeSystem", "url": GENDER, "status": "active", "content": "not-present"});
    let id = s.create_id("CodeSystem", &copy.to_string());
    let v = s
        .get(&format!("/CodeSystem/{id}/$validate-code?code=other"))
        .json();
    assert_eq!(get(&v, "result")["valueBoolean"], true, "{v}");
    // A stored value set drawing on a code system nobody has: said so, not guessed.
    let vs = json!({"resourceType": "ValueSet", "url": format!("http://example.org/vs/{}", common::unique("x")),
        "status": "active", "compose": {"include": [{"system": "http://example.org/nowhere"}]}});
    let id = s.create_id("ValueSet", &vs.to_string());
    let r = s.get(&format!("/ValueSet/{id}/$expand"));
    assert!(r.outcome(422)["issue"][0]["details"]["text"]
        .as_str()
        .unwrap()
        .contains("nowhere"));
    s.get("/CodeSystem/nope/$validate-code?code=a").outcome(404);
    s.get("/CodeSystem/$lookup?system=http://example.org/none&code=a")
        .outcome(404);
    s.get(&format!("/CodeSystem/$lookup?system={GENDER}&code=nope"))
        .outcome(404);
    let r = s.get(&format!("/CodeSystem/$lookup?system={GENDER}"));
    assert_eq!(r.outcome(400)["issue"][0]["expression"][0], "code");
    let r = s.get(&format!("/ValueSet/$expand?url={GENDER_VS}&count=x"));
    assert_eq!(r.outcome(400)["issue"][0]["expression"][0], "count");
    s.get("/ValueSet/$expand?url=http://example.org/no-such-vs")
        .outcome(404);
    let r = s
        .req("POST", "/ValueSet/$expand")
        .json(r#"{"resourceType": "Patient"}"#);
    r.outcome(400);
    let cs = s.get("/metadata").json();
    let ops = cs["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "ValueSet")
        .unwrap()["operation"]
        .to_string();
    assert!(
        ops.contains("ValueSet-expand") && ops.contains("ValueSet-validate-code"),
        "{ops}"
    );
}

/// Code systems, value sets and concept maps written through the API are terminology
/// too: a hospital's own code system with a hierarchy, a value set drawing on it with a
/// filter, a map from it.
fn uploaded_terminology(b: Backend) {
    let s = common::shared(b);
    let u = common::unique("local");
    let (cs, vs, cm) = (
        format!("http://example.org/cs/{u}"),
        format!("http://example.org/vs/{u}"),
        format!("http://example.org/cm/{u}"),
    );
    let code_system = json!({"resourceType": "CodeSystem", "url": cs, "status": "active",
        "content": "complete", "caseSensitive": true, "name": "LocalCodes",
        "concept": [{"code": "a", "display": "Alpha", "concept": [{"code": "b", "display": "Beta"}]},
                    {"code": "c", "display": "Gamma"}]});
    let cs_id = s.create_id("CodeSystem", &code_system.to_string());
    let value_set = json!({"resourceType": "ValueSet", "url": vs, "status": "active",
        "compose": {"include": [{"system": cs, "filter": [{"property": "concept", "op": "is-a", "value": "a"}]}]}});
    let vs_id = s.create_id("ValueSet", &value_set.to_string());
    let map = json!({"resourceType": "ConceptMap", "url": cm, "status": "active",
        "group": [{"source": cs, "target": "http://example.org/other",
                   "element": [{"code": "a", "target": [{"code": "X", "equivalence": "equivalent"}]}]}]});
    s.create("ConceptMap", &map.to_string());

    let v = s
        .get(&format!("/CodeSystem/$lookup?system={cs}&code=b"))
        .json();
    assert_eq!(get(&v, "name")["valueString"], "LocalCodes", "{v}");
    assert_eq!(get(&v, "display")["valueString"], "Beta");
    assert_eq!(get(&v, "property")["part"][1]["valueCode"], "a");
    let v = s
        .get(&format!(
            "/CodeSystem/{cs_id}/$validate-code?code=c&display=Gamma"
        ))
        .json();
    assert_eq!(get(&v, "result")["valueBoolean"], true, "{v}");
    let v = s
        .get(&format!(
            "/CodeSystem/$subsumes?system={cs}&codeA=a&codeB=b"
        ))
        .json();
    assert_eq!(v["parameter"][0]["valueCode"], "subsumes", "{v}");
    let v = s.get(&format!("/ValueSet/$expand?url={vs}")).json();
    assert_eq!(v["expansion"]["total"], 2, "{v}");
    let v = s
        .get(&format!("/ValueSet/{vs_id}/$expand?filter=bet"))
        .json();
    assert_eq!(v["expansion"]["contains"][0]["code"], "b", "{v}");
    let v = s
        .get(&format!(
            "/ValueSet/$validate-code?url={vs}&system={cs}&code=c"
        ))
        .json();
    assert_eq!(get(&v, "result")["valueBoolean"], false, "{v}");
    let v = s
        .get(&format!(
            "/ConceptMap/$translate?url={cm}&system={cs}&code=a"
        ))
        .json();
    assert_eq!(
        get(&v, "match")["part"][1]["valueCoding"]["code"],
        "X",
        "{v}"
    );
}

/// An uploaded code system's designations, inactive and abstract concepts: `$expand`
/// with `activeOnly`, `includeDesignations`, `designation` and `displayLanguage` (POSTed as
/// Parameters too), `$lookup` with its designations and a display in a language.
fn designations_and_inactive_codes(b: Backend) {
    let s = common::shared(b);
    let u = common::unique("lang");
    let (cs, vs) = (
        format!("http://example.org/cs/{u}"),
        format!("http://example.org/vs/{u}"),
    );
    let code_system = json!({"resourceType": "CodeSystem", "url": cs, "status": "active",
        "content": "complete", "concept": [
            {"code": "fever", "display": "Fever", "designation": [
                {"language": "de-CH", "value": "Fieber"}, {"language": "fr", "value": "Fièvre"}]},
            {"code": "old", "display": "Old", "property": [{"code": "inactive", "valueBoolean": true}]},
            {"code": "group", "display": "Group", "property": [{"code": "notSelectable", "valueBoolean": true}]}]});
    s.create_id("CodeSystem", &code_system.to_string());
    let value_set = json!({"resourceType": "ValueSet", "url": vs, "status": "active",
        "compose": {"include": [{"system": cs}]}});
    s.create_id("ValueSet", &value_set.to_string());
    let v = s.get(&format!("/ValueSet/$expand?url={vs}")).json();
    assert_eq!(v["expansion"]["total"], 3, "{v}");
    assert_eq!(v["expansion"]["contains"][1]["inactive"], true, "{v}");
    assert_eq!(v["expansion"]["contains"][2]["abstract"], true, "{v}");
    let v = s
        .get(&format!(
            "/ValueSet/$expand?url={vs}&activeOnly=true&includeDesignations=true&displayLanguage=de"
        ))
        .json();
    assert_eq!(v["expansion"]["total"], 2, "{v}");
    let fever = &v["expansion"]["contains"][0];
    assert_eq!(fever["display"], "Fieber", "{v}");
    assert_eq!(
        fever["designation"][1],
        json!({"language": "fr", "value": "Fièvre"})
    );
    let body = json!({"resourceType": "Parameters", "parameter": [
        {"name": "url", "valueUri": vs}, {"name": "activeOnly", "valueBoolean": true},
        {"name": "displayLanguage", "valueCode": "fr"}]});
    let r = s.req("POST", "/ValueSet/$expand").json(&body.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["expansion"]["contains"][0]["display"], "Fièvre");
    // `designation` (a language token, as a POSTed string too) gives only those.
    let v = s
        .get(&format!(
            "/ValueSet/$expand?url={vs}&designation=urn:ietf:bcp:47%7Cde"
        ))
        .json();
    assert_eq!(
        v["expansion"]["contains"][0]["designation"],
        json!([{"language": "de-CH", "value": "Fieber"}]),
        "{v}"
    );
    let body = json!({"resourceType": "Parameters", "parameter": [
        {"name": "url", "valueUri": vs}, {"name": "designation", "valueString": "fr"}]});
    let v = s
        .req("POST", "/ValueSet/$expand")
        .json(&body.to_string())
        .json();
    assert_eq!(
        v["expansion"]["contains"][0]["designation"],
        json!([{"language": "fr", "value": "Fièvre"}]),
        "{v}"
    );
    let r = s.get(&format!("/ValueSet/$expand?url={vs}&activeOnly=maybe"));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("activeOnly"), "{}", r.body);
    let v = s
        .get(&format!(
            "/CodeSystem/$lookup?system={cs}&code=fever&displayLanguage=fr"
        ))
        .json();
    assert_eq!(get(&v, "display")["valueString"], "Fièvre", "{v}");
    assert_eq!(
        get(&v, "designation")["part"],
        json!([{"name": "language", "valueCode": "de-CH"}, {"name": "value", "valueString": "Fieber"}])
    );
}

/// Stored terminology is kept between requests, and a change made on this node or on
/// another one sharing the database is used at once: an updated display, a deleted
/// code system, an added value set include.
fn changes_are_used_at_once(b: Backend) {
    let s = common::Server::start(b);
    let other = s.start_beside(&[]);
    let u = common::unique("cached");
    let (cs, vs) = (
        format!("http://example.org/cs/{u}"),
        format!("http://example.org/vs/{u}"),
    );
    let code_system = |display: &str| {
        json!({"resourceType": "CodeSystem", "url": cs, "status": "active",
            "content": "complete", "concept": [{"code": "a", "display": display}, {"code": "b"}]})
    };
    let cs_id = s.create_id("CodeSystem", &code_system("First").to_string());
    let value_set = json!({"resourceType": "ValueSet", "url": vs, "status": "active",
        "compose": {"include": [{"system": cs, "concept": [{"code": "a"}]}]}});
    let vs_id = s.create_id("ValueSet", &value_set.to_string());
    let display = |node: &common::Server| {
        let v = node
            .get(&format!("/CodeSystem/$lookup?system={cs}&code=a"))
            .json();
        get(&v, "display")["valueString"].clone()
    };
    let total = |node: &common::Server| {
        node.get(&format!("/ValueSet/$expand?url={vs}")).json()["expansion"]["total"].clone()
    };
    assert_eq!(
        (display(&s), display(&other)),
        (json!("First"), json!("First"))
    );
    assert_eq!((total(&s), total(&other)), (json!(1), json!(1)));
    let mut updated = code_system("Second");
    updated["id"] = json!(cs_id);
    let r = s
        .req("PUT", &format!("/CodeSystem/{cs_id}"))
        .json(&updated.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (display(&s), display(&other)),
        (json!("Second"), json!("Second"))
    );
    let mut wider = value_set.clone();
    wider["id"] = json!(vs_id);
    wider["compose"]["include"][0] = json!({"system": cs});
    let r = other
        .req("PUT", &format!("/ValueSet/{vs_id}"))
        .json(&wider.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!((total(&s), total(&other)), (json!(2), json!(2)));
    let r = other.req("DELETE", &format!("/CodeSystem/{cs_id}")).send();
    assert_eq!(r.status / 100, 2);
    let gone = s.get(&format!("/CodeSystem/$lookup?system={cs}&code=a"));
    assert_eq!(gone.status, 404, "{}", gone.body);
}

/// Search follows the hierarchy of an uploaded code system: `:below` finds the code
/// and its descendants, `:above` the code and its ancestors; `:in` a stored value set.
fn search_below_and_above_stored_codes(b: Backend) {
    let s = common::shared(b);
    let u = common::unique("tree");
    let cs = format!("http://example.org/cs/{u}");
    let code_system = json!({"resourceType": "CodeSystem", "url": cs, "status": "active",
        "content": "complete", "concept": [
            {"code": "a", "concept": [{"code": "b", "concept": [{"code": "c"}]}]},
            {"code": "x"}]});
    s.create_id("CodeSystem", &code_system.to_string());
    let mut ids = std::collections::HashMap::new();
    for code in ["a", "b", "c", "x"] {
        let o = json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": cs, "code": code}]}});
        ids.insert(code, s.create_id("Observation", &o.to_string()));
    }
    let found = |query: &str| {
        let r = s.get(&format!("/Observation?{query}&_count=50"));
        assert_eq!(r.status, 200, "{query}: {}", r.body);
        let mut got: Vec<String> = r.json()["entry"]
            .as_array()
            .map(|es| {
                es.iter()
                    .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        got.sort();
        got
    };
    let want = |codes: &[&str]| {
        let mut v: Vec<String> = codes.iter().map(|c| ids[c].clone()).collect();
        v.sort();
        v
    };
    assert_eq!(found(&format!("code:below={cs}|b")), want(&["b", "c"]));
    assert_eq!(found(&format!("code:below={cs}|a")), want(&["a", "b", "c"]));
    assert_eq!(found(&format!("code:above={cs}|c")), want(&["a", "b", "c"]));
    assert_eq!(found(&format!("code:above={cs}|x")), want(&["x"]));
    let r = s.get(&format!("/Observation?code:below={cs}|nope"));
    assert_eq!(r.status / 100, 4, "{}", r.body);
}

/// Validation uses the same terminology: a code of an uploaded code system is checked
/// like a core one — an unknown code is an error, a wrong display a warning — by
/// `$validate` and on writes; a code added to the code system is valid on the next
/// write.
fn validation_checks_uploaded_codes(b: Backend) {
    let s = common::shared(b);
    let cs = format!("http://example.org/cs/{}", common::unique("checked"));
    let code_system = json!({"resourceType": "CodeSystem", "url": cs, "status": "active",
        "content": "complete", "concept": [{"code": "a", "display": "Alpha"}]});
    let cs_id = s.create_id("CodeSystem", &code_system.to_string());
    let observation = |code: &str, display: &str| {
        json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": cs, "code": code, "display": display}]}})
        .to_string()
    };
    let issues = |body: String| {
        let r = s.req("POST", "/Observation/$validate").json(&body);
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["issue"].clone()
    };
    let unknown = issues(observation("zz", "Zed"));
    assert!(
        unknown
            .to_string()
            .contains(&format!("Unknown code 'zz' in the CodeSystem '{cs}'")),
        "{unknown}"
    );
    let coded = unknown
        .as_array()
        .and_then(|is| is.iter().find(|i| i["code"] == "code-invalid"))
        .cloned();
    assert_eq!(coded.map(|i| i["severity"].clone()), Some(json!("error")));
    let wrong = issues(observation("a", "Beta"));
    let text = wrong.to_string();
    assert!(text.contains("Valid display is 'Alpha'"), "{text}");
    assert!(!text.contains("\"error\""), "{text}");
    let right = issues(observation("a", "Alpha")).to_string();
    assert!(!right.contains("Alpha"), "{right}");
    let r = s.create("Observation", &observation("zz", "Zed"));
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("Unknown code 'zz'"), "{}", r.body);
    let r = s.create("Observation", &observation("a", "Alpha"));
    assert_eq!(r.status, 201, "{}", r.body);
    // What a write's validation knows of stored terminology is kept between writes
    // only until terminology is written.
    let mut wider = code_system.clone();
    wider["id"] = json!(cs_id);
    wider["concept"] = json!([{"code": "a", "display": "Alpha"}, {"code": "zz", "display": "Zed"}]);
    let r = s
        .req("PUT", &format!("/CodeSystem/{cs_id}"))
        .json(&wider.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.create("Observation", &observation("zz", "Zed"));
    assert_eq!(r.status, 201, "{}", r.body);
}

both_backends!(
    validation_checks_uploaded_codes,
    search_below_and_above_stored_codes,
    changes_are_used_at_once,
    designations_and_inactive_codes,
    uploaded_terminology,
    lookup_and_subsumes,
    validate_codes,
    expansions,
    translations,
    instance_level_and_errors,
);
