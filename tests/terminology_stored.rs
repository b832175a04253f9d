//! Black-box tests of stored terminology beyond the basics of `terminology_api.rs`, on
//! SQLite and PostgreSQL: several versions of one URL, what a code system's `content`
//! says is held (`fragment`, `not-present`, `supplement`), `$translate` by source and
//! target over stored maps (with `dependsOn` and `product`), and supplements adding
//! designations to stored and packaged code systems; resources given with the request
//! (`tx-resource`, an inline `valueSet`) used without being stored.

mod common;

use common::{parameter as get, Backend};
use serde_json::{json, Value};

const GENDER: &str = "http://hl7.org/fhir/administrative-gender";

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

/// Code systems and value sets given with a request (`tx-resource` parameters, as
/// HL7's terminology test runner sends them; `valueSet` in `$expand` and
/// `$validate-code`) are used for that request alone: nothing is stored.
fn resources_given_with_the_request(b: Backend) {
    let s = common::shared(b);
    let u = common::unique("given");
    let (cs, vs) = (
        format!("http://example.org/cs/{u}"),
        format!("http://example.org/vs/{u}"),
    );
    let code_system = json!({"resourceType": "CodeSystem", "url": cs, "version": "2",
        "status": "active", "content": "complete",
        "concept": [{"code": "a", "display": "Alpha"}, {"code": "b", "display": "Beta"}]});
    let value_set = json!({"resourceType": "ValueSet", "url": vs, "status": "active",
        "compose": {"include": [{"system": cs, "concept": [{"code": "a"}]}]}});
    let post = |op: &str, params: Value| {
        let body = json!({"resourceType": "Parameters", "parameter": params});
        let r = s.req("POST", op).json(&body.to_string());
        assert_eq!(r.status, 200, "{op}: {}", r.body);
        r.json()
    };
    let v = post(
        "/ValueSet/$expand",
        json!([{"name": "url", "valueUri": vs},
            {"name": "tx-resource", "resource": code_system},
            {"name": "tx-resource", "resource": value_set}]),
    );
    assert_eq!(v["expansion"]["total"], 1, "{v}");
    assert_eq!(v["expansion"]["contains"][0]["display"], "Alpha", "{v}");
    let used = &v["expansion"]["parameter"];
    assert!(used.to_string().contains(&format!("{cs}|2")), "{v}");
    let v = post(
        "/ValueSet/$validate-code",
        json!([{"name": "valueSet", "resource": value_set},
            {"name": "coding", "valueCoding": {"system": cs, "code": "b"}},
            {"name": "tx-resource", "resource": code_system}]),
    );
    assert_eq!(get(&v, "result")["valueBoolean"], false, "{v}");
    assert!(
        v.to_string().contains("was not found in the value set"),
        "{v}"
    );
    let v = post(
        "/CodeSystem/$lookup",
        json!([{"name": "system", "valueUri": cs}, {"name": "code", "valueCode": "b"},
            {"name": "tx-resource", "resource": code_system}]),
    );
    assert_eq!(get(&v, "display")["valueString"], "Beta", "{v}");
    // An inline value set without a url.
    let anonymous = json!({"resourceType": "ValueSet", "status": "active",
        "compose": {"include": [{"system": GENDER}]}});
    let v = post(
        "/ValueSet/$expand",
        json!([{"name": "valueSet", "resource": anonymous}]),
    );
    assert_eq!(v["expansion"]["total"], 4, "{v}");
    for t in ["CodeSystem", "ValueSet"] {
        let b = s
            .get(&format!(
                "/{t}?url={}&_summary=count",
                if t == "CodeSystem" { &cs } else { &vs }
            ))
            .json();
        assert_eq!(b["total"], 0, "{t} was stored: {b}");
    }
    // A value set that needs a supplement (valueset-supplement) is refused without it
    // (422, naming it) and answered with it.
    let supplement_url = format!("http://example.org/cs/{u}-supplement");
    let needy = json!({"resourceType": "ValueSet", "url": format!("{vs}-needy"), "status": "active",
        "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/valueset-supplement",
            "valueCanonical": supplement_url}],
        "compose": {"include": [{"system": cs}]}});
    let body = json!({"resourceType": "Parameters", "parameter": [
        {"name": "valueSet", "resource": needy}, {"name": "tx-resource", "resource": code_system}]});
    let r = s.req("POST", "/ValueSet/$expand").json(&body.to_string());
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body.contains(&format!(
            "Required supplements not found: [{supplement_url}]"
        )),
        "{}",
        r.body
    );
    // More than eight needed supplements are not looked up (too costly, 400).
    let many: Vec<Value> = (0..9)
        .map(|i| {
            json!({"url": "http://hl7.org/fhir/StructureDefinition/valueset-supplement",
            "valueCanonical": format!("{supplement_url}-{i}")})
        })
        .collect();
    let mut greedy = needy.clone();
    greedy["extension"] = Value::Array(many);
    let body9 = json!({"resourceType": "Parameters", "parameter": [
        {"name": "valueSet", "resource": greedy}, {"name": "tx-resource", "resource": code_system}]});
    let r = s.req("POST", "/ValueSet/$expand").json(&body9.to_string());
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("too-costly"), "{}", r.body);
    let supplement = json!({"resourceType": "CodeSystem", "url": supplement_url, "status": "active",
        "content": "supplement", "supplements": cs,
        "concept": [{"code": "a", "designation": [{"language": "nl", "value": "Alfa"}]}]});
    let mut with = body.clone();
    with["parameter"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "tx-resource", "resource": supplement}));
    let v = post("/ValueSet/$expand", with["parameter"].clone());
    assert_eq!(v["expansion"]["total"], 2, "{v}");
    // Without them, the same request does not know the value set.
    let r = s.get(&format!("/ValueSet/$expand?url={vs}"));
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.body.contains("tx-issue-type"), "{}", r.body);
}

both_backends!(
    resources_given_with_the_request,
    versions_of_one_url,
    fragments_and_codes_not_held,
    translations_by_source_and_target,
    supplements_add_designations,
);
