//! Black-box tests of the terminology operations on SQLite and PostgreSQL, against the
//! core package's code systems and value sets (administrative-gender, v3-ActCode):
//! `CodeSystem/$lookup`, `$validate-code` (code system and value set; code, coding and
//! codeableConcept; displays), `CodeSystem/$subsumes`, `ValueSet/$expand` (filter,
//! offset, count), by GET and by POST of a Parameters resource, at the type and the
//! instance level, and their errors.

mod common;

use common::Backend;
use serde_json::{json, Value};

const GENDER: &str = "http://hl7.org/fhir/administrative-gender";
const GENDER_VS: &str = "http://hl7.org/fhir/ValueSet/administrative-gender";
const ACT: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";

fn get(v: &Value, name: &str) -> Value {
    v["parameter"]
        .as_array()
        .unwrap_or_else(|| panic!("not Parameters: {v}"))
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

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
        .contains("is not in the value set"));
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
/// with `activeOnly`, `includeDesignations` and `displayLanguage` (POSTed as
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
/// `$validate` and on writes.
fn validation_checks_uploaded_codes(b: Backend) {
    let s = common::shared(b);
    let cs = format!("http://example.org/cs/{}", common::unique("checked"));
    let code_system = json!({"resourceType": "CodeSystem", "url": cs, "status": "active",
        "content": "complete", "concept": [{"code": "a", "display": "Alpha"}]});
    s.create_id("CodeSystem", &code_system.to_string());
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
}

/// Several versions of one URL: a version asked for (`version`, `valueSetVersion`,
/// `url|version`, a coding's `version`, an instance) is used; without one, the version
/// written last; an unknown version is not found.
fn versions_of_one_url(b: Backend) {
    let s = common::shared(b);
    let u = common::unique("versions");
    let (cs, vs) = (
        format!("http://example.org/cs/{u}"),
        format!("http://example.org/vs/{u}"),
    );
    let code_system = |version: &str, concepts: Value| {
        json!({"resourceType": "CodeSystem", "url": cs, "version": version, "status": "active",
            "content": "complete", "concept": concepts})
        .to_string()
    };
    let v1 = s.create_id(
        "CodeSystem",
        &code_system("1", json!([{"code": "a", "display": "Alpha"}])),
    );
    s.create_id(
        "CodeSystem",
        &code_system(
            "2",
            json!([{"code": "a", "display": "Alpha two"}, {"code": "b"}]),
        ),
    );
    for version in ["1", "2"] {
        let value_set = json!({"resourceType": "ValueSet", "url": vs, "version": version,
            "status": "active", "compose": {"include": [{"system": cs, "version": version}]}});
        s.create_id("ValueSet", &value_set.to_string());
    }
    let display = |query: &str| {
        let v = s.get(&format!("/CodeSystem/$lookup?{query}")).json();
        (
            get(&v, "display")["valueString"].clone(),
            get(&v, "version")["valueString"].clone(),
        )
    };
    assert_eq!(
        display(&format!("system={cs}&code=a&version=1")),
        (json!("Alpha"), json!("1"))
    );
    assert_eq!(
        display(&format!("system={cs}&code=a&version=2")),
        (json!("Alpha two"), json!("2"))
    );
    assert_eq!(
        display(&format!("system={cs}&code=a")),
        (json!("Alpha two"), json!("2"))
    );
    let coding = json!({"resourceType": "Parameters", "parameter": [{"name": "coding",
        "valueCoding": {"system": cs, "version": "1", "code": "a"}}]});
    let r = s
        .req("POST", "/CodeSystem/$lookup")
        .json(&coding.to_string());
    assert_eq!(
        get(&r.json(), "display")["valueString"],
        "Alpha",
        "{}",
        r.body
    );
    let valid = |path: String| get(&s.get(&path).json(), "result")["valueBoolean"].clone();
    assert_eq!(
        valid(format!(
            "/CodeSystem/$validate-code?url={cs}&version=1&code=b"
        )),
        json!(false)
    );
    assert_eq!(
        valid(format!(
            "/CodeSystem/$validate-code?url={cs}&version=2&code=b"
        )),
        json!(true)
    );
    assert_eq!(
        valid(format!("/CodeSystem/{v1}/$validate-code?code=b")),
        json!(false)
    );
    let total = |query: String| {
        let v = s.get(&format!("/ValueSet/$expand?{query}")).json();
        (v["expansion"]["total"].clone(), v["version"].clone())
    };
    assert_eq!(
        total(format!("url={vs}&valueSetVersion=1")),
        (json!(1), json!("1"))
    );
    assert_eq!(total(format!("url={vs}%7C1")), (json!(1), json!("1")));
    assert_eq!(total(format!("url={vs}")), (json!(2), json!("2")));
    let r = s.get(&format!("/ValueSet/$expand?url={vs}&valueSetVersion=9"));
    assert_eq!(r.status, 404, "{}", r.body);
    let cm = format!("http://example.org/cm/{u}");
    for (version, target) in [("1", "X"), ("2", "Y")] {
        let map = json!({"resourceType": "ConceptMap", "url": cm, "version": version,
            "status": "active", "group": [{"source": cs, "target": "http://example.org/other",
            "element": [{"code": "a", "target": [{"code": target, "equivalence": "equivalent"}]}]}]});
        s.create_id("ConceptMap", &map.to_string());
    }
    let translated = |extra: &str| {
        let v = s
            .get(&format!(
                "/ConceptMap/$translate?url={cm}&system={cs}&code=a{extra}"
            ))
            .json();
        get(&v, "match")["part"][1]["valueCoding"]["code"].clone()
    };
    assert_eq!(translated("&conceptMapVersion=1"), json!("X"));
    assert_eq!(translated(""), json!("Y"));
}

/// What a code system's `content` says is held: a `fragment`'s unknown code may be
/// valid in another fragment (result true, with HL7's message; a warning when a
/// resource is validated), a `not-present` one cannot answer for its codes (422), and
/// a supplement is not asked about itself (400).
fn fragments_and_codes_not_held(b: Backend) {
    let s = common::shared(b);
    let u = common::unique("content");
    let (fragment, absent, supplement) = (
        format!("http://example.org/cs/{u}-fragment"),
        format!("http://example.org/cs/{u}-absent"),
        format!("http://example.org/cs/{u}-supplement"),
    );
    let cs = |url: &str, content: &str, concepts: Value| {
        let mut v = json!({"resourceType": "CodeSystem", "url": url, "version": "2.0",
            "status": "active", "content": content});
        if concepts != json!([]) {
            v["concept"] = concepts;
        }
        if content == "supplement" {
            v["supplements"] = json!(fragment);
        }
        let r = s.create("CodeSystem", &v.to_string());
        assert_eq!(r.status, 201, "{}", r.body);
    };
    cs(
        &fragment,
        "fragment",
        json!([{"code": "a", "display": "Alpha"}]),
    );
    cs(&absent, "not-present", json!([]));
    cs(
        &supplement,
        "supplement",
        json!([{"code": "a", "designation": [{"language": "es", "value": "Alfa"}]}]),
    );
    let check = |code: &str| {
        let r = s.get(&format!(
            "/CodeSystem/$validate-code?url={fragment}&code={code}"
        ));
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    let v = check("a");
    assert_eq!(get(&v, "result")["valueBoolean"], true, "{v}");
    assert_eq!(get(&v, "display")["valueString"], "Alpha", "{v}");
    assert_eq!(get(&v, "version")["valueString"], "2.0", "{v}");
    let v = check("zz");
    assert_eq!(get(&v, "result")["valueBoolean"], true, "{v}");
    assert_eq!(get(&v, "message"), Value::Null, "{v}");
    let issue = &get(&v, "issues")["resource"]["issue"][0];
    assert_eq!(issue["severity"], "warning", "{v}");
    assert_eq!(
        issue["details"]["text"],
        json!(format!("Unknown Code 'zz' in the CodeSystem '{fragment}' version '2.0' - note that the code system is labeled as a fragment, so the code may be valid in some other fragment"))
    );
    let observation = json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": fragment, "code": "zz"}]}});
    let r = s
        .req("POST", "/Observation/$validate")
        .json(&observation.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    let issue = r.json()["issue"]
        .as_array()
        .and_then(|is| is.iter().find(|i| i["code"] == "code-invalid").cloned())
        .unwrap_or_else(|| panic!("no code issue: {}", r.body));
    assert_eq!(issue["severity"], "warning", "{issue}");
    assert!(
        issue.to_string().contains("labeled as a fragment"),
        "{issue}"
    );
    assert_eq!(
        s.create("Observation", &observation.to_string()).status,
        201
    );
    for path in [
        format!("/CodeSystem/$lookup?system={absent}&code=x"),
        format!("/CodeSystem/$validate-code?url={absent}&code=x"),
    ] {
        let r = s.get(&path);
        assert_eq!(r.status, 422, "{path}: {}", r.body);
        assert!(r.body.contains("not-present"), "{}", r.body);
    }
    let r = s.get(&format!("/CodeSystem/$lookup?system={supplement}&code=a"));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("supplement"), "{}", r.body);
}

/// `$translate` without `url` chooses the maps by `source` and `target` among the
/// packages' and the stored ones; of a stored URL the version written last is used, at
/// once after it is written.
fn translations_by_source_and_target(b: Backend) {
    let s = common::shared(b);
    let u = common::unique("maps");
    let (map, src, tgt) = (
        format!("http://example.org/cm/{u}"),
        format!("http://example.org/vs/{u}-source"),
        format!("http://example.org/vs/{u}-target"),
    );
    let (from, to) = (
        format!("http://example.org/cs/{u}-from"),
        format!("http://example.org/cs/{u}-to"),
    );
    let write = |version: &str, target_code: &str| {
        let cm = json!({"resourceType": "ConceptMap", "url": map, "version": version,
            "status": "active", "sourceUri": src, "targetUri": tgt,
            "group": [{"source": from, "target": to, "element": [{"code": "a",
                "target": [{"code": target_code, "equivalence": "equivalent"}]}]}]});
        let r = s.create("ConceptMap", &cm.to_string());
        assert_eq!(r.status, 201, "{}", r.body);
    };
    write("1", "x");
    let translate = |query: &str| {
        let r = s.get(&format!("/ConceptMap/$translate?{query}"));
        assert_eq!(r.status, 200, "{query}: {}", r.body);
        r.json()
    };
    for query in [
        format!("source={src}&target={tgt}&system={from}&code=a"),
        format!("target={tgt}&system={from}&code=a"),
        format!("source={src}&system={from}&code=a"),
    ] {
        let v = translate(&query);
        assert_eq!(get(&v, "result")["valueBoolean"], true, "{query}: {v}");
        let m = get(&v, "match");
        assert_eq!(m["part"][1]["valueCoding"]["code"], "x", "{v}");
        assert_eq!(m["part"][1]["valueCoding"]["system"], to.as_str(), "{v}");
        assert_eq!(m["part"][2]["valueUri"], map.as_str(), "{v}");
    }
    let v = translate(&format!("source={tgt}&target={src}&system={from}&code=a"));
    assert_eq!(get(&v, "result")["valueBoolean"], false, "{v}");
    let v = translate(&format!(
        "source={src}&target={tgt}&system={to}&code=x&reverse=true"
    ));
    assert_eq!(
        get(&v, "match")["part"][1]["valueCoding"]["code"],
        "a",
        "{v}"
    );
    write("2", "y");
    let v = translate(&format!("source={src}&target={tgt}&system={from}&code=a"));
    assert_eq!(
        get(&v, "match")["part"][1]["valueCoding"]["code"],
        "y",
        "{v}"
    );
    // A target that depends on another element holds when the request gives it
    // (a POSTed `dependency`), and its products come back with it.
    let cm = json!({"resourceType": "ConceptMap", "url": format!("{map}-dependent"),
        "status": "active", "sourceUri": format!("{src}-d"), "targetUri": format!("{tgt}-d"),
        "group": [{"source": from, "target": to, "element": [{"code": "b", "target": [
            {"code": "adult-b", "equivalence": "equivalent",
             "dependsOn": [{"property": "http://example.org/age", "value": "adult"}],
             "product": [{"property": "http://example.org/unit", "value": "kg"}]}]}]}]});
    assert_eq!(s.create("ConceptMap", &cm.to_string()).status, 201);
    let ask = |dependency: Option<&str>| {
        let mut parameter = vec![
            json!({"name": "url", "valueUri": format!("{map}-dependent")}),
            json!({"name": "coding", "valueCoding": {"system": from, "code": "b"}}),
        ];
        if let Some(age) = dependency {
            parameter.push(json!({"name": "dependency", "part": [
                {"name": "element", "valueUri": "http://example.org/age"},
                {"name": "concept", "valueCodeableConcept": {"coding": [{"code": age}]}}]}));
        }
        let body = json!({"resourceType": "Parameters", "parameter": parameter});
        let r = s
            .req("POST", "/ConceptMap/$translate")
            .json(&body.to_string());
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    assert_eq!(get(&ask(None), "result")["valueBoolean"], false);
    assert_eq!(get(&ask(Some("child")), "result")["valueBoolean"], false);
    let v = ask(Some("adult"));
    let m = get(&v, "match");
    assert_eq!(m["part"][1]["valueCoding"]["code"], "adult-b", "{v}");
    assert_eq!(m["part"][2]["name"], "product", "{v}");
    assert_eq!(m["part"][2]["part"][1]["valueCoding"]["code"], "kg", "{v}");
    // The packages' maps are still found by their value sets.
    let v = translate(&format!(
        "source=http://hl7.org/fhir/ValueSet/administrative-gender&system={GENDER}&code=female"
    ));
    assert_eq!(get(&v, "result")["valueBoolean"], true, "{v}");
}

/// Supplements (`content: supplement`) add designations and properties to the code
/// system they supplement, stored or a package's: `$lookup`, `$expand` with
/// `includeDesignations` and `displayLanguage` use them.
fn supplements_add_designations(b: Backend) {
    let s = common::shared(b);
    let u = common::unique("supplement");
    let (cs, vs) = (
        format!("http://example.org/cs/{u}"),
        format!("http://example.org/vs/{u}"),
    );
    let base = json!({"resourceType": "CodeSystem", "url": cs, "version": "1", "status": "active",
        "content": "complete", "concept": [{"code": "a", "display": "Alpha"}, {"code": "b", "display": "Beta"}]});
    s.create_id("CodeSystem", &base.to_string());
    let value_set = json!({"resourceType": "ValueSet", "url": vs, "status": "active",
        "compose": {"include": [{"system": cs}]}});
    s.create_id("ValueSet", &value_set.to_string());
    let supplement = |url: String, of: &str, code: &str, value: &str| {
        let body = json!({"resourceType": "CodeSystem", "url": url, "status": "active",
            "content": "supplement", "supplements": of,
            "concept": [{"code": code, "designation": [{"language": "es", "value": value}]}]});
        let r = s.create("CodeSystem", &body.to_string());
        assert_eq!(r.status, 201, "{}", r.body);
    };
    supplement(format!("{cs}-es"), &format!("{cs}|1"), "a", "Alfa");
    // A supplement of another version is not applied.
    supplement(format!("{cs}-es2"), &format!("{cs}|2"), "b", "Beta-2");
    let v = s
        .get(&format!(
            "/CodeSystem/$lookup?system={cs}&code=a&displayLanguage=es"
        ))
        .json();
    assert_eq!(get(&v, "display")["valueString"], "Alfa", "{v}");
    let designation = get(&v, "designation");
    assert!(designation.to_string().contains("Alfa"), "{v}");
    let v = s
        .get(&format!(
            "/ValueSet/$expand?url={vs}&includeDesignations=true&displayLanguage=es"
        ))
        .json();
    let contains = &v["expansion"]["contains"];
    assert_eq!(contains[0]["display"], "Alfa", "{v}");
    assert_eq!(contains[0]["designation"][0]["value"], "Alfa", "{v}");
    assert_eq!(contains[1]["display"], "Beta", "{v}");
    // Without displayLanguage, the language the client accepts first.
    let r = s
        .req("GET", &format!("/CodeSystem/$lookup?system={cs}&code=a"))
        .header("Accept-Language", "en;q=0.3, es-ES;q=0.9, *;q=0.1")
        .send();
    assert_eq!(
        get(&r.json(), "display")["valueString"],
        "Alfa",
        "{}",
        r.body
    );
    // A package's code system takes a stored supplement too.
    let system = "http://hl7.org/fhir/contact-point-system";
    supplement(
        format!("http://example.org/cs/{u}-cps"),
        system,
        "fax",
        "Telefax",
    );
    let v = s
        .get(&format!(
            "/CodeSystem/$lookup?system={system}&code=fax&displayLanguage=es"
        ))
        .json();
    assert_eq!(get(&v, "display")["valueString"], "Telefax", "{v}");
    let v = s
        .get(&format!("/CodeSystem/$lookup?system={system}&code=fax"))
        .json();
    assert_eq!(get(&v, "display")["valueString"], "Fax", "{v}");
}

both_backends!(
    supplements_add_designations,
    translations_by_source_and_target,
    fragments_and_codes_not_held,
    versions_of_one_url,
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
