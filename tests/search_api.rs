//! Black-box tests of the search API (search.html of FHIR R4) against a real server
//! process, on SQLite and on PostgreSQL.
//!
//! Every test creates its own resources, all carrying a `meta.tag` unique to the test
//! (system [`TAG_SYSTEM`]), and every search is restricted by `_tag` so that tests can
//! share one server per backend and still assert the exact set of ids returned.

mod common;

use std::collections::BTreeSet;

use common::{shared, unique, Backend, Resp, Server};
use serde_json::{json, Value};

const TAG_SYSTEM: &str = "http://example.org/fhir/test-run";
const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";

// ----------------------------------------------------------------------- helpers

/// A tag code unique to one test; `_tag` restricts searches to that test's resources.
fn new_tag() -> String {
    unique("search")
}

/// `_tag=system|code` for a query string.
fn tag_param(tag: &str) -> String {
    format!("_tag={TAG_SYSTEM}|{tag}")
}

/// Creates a resource of `resource_type` from `body` (resourceType and the test tag are
/// added) and returns its id.
fn create(s: &Server, tag: &str, resource_type: &str, mut body: Value) -> String {
    body["resourceType"] = json!(resource_type);
    let mut tags = body["meta"]["tag"].as_array().cloned().unwrap_or_default();
    tags.push(json!({"system": TAG_SYSTEM, "code": tag}));
    body["meta"]["tag"] = Value::Array(tags);
    s.create_id(resource_type, &body.to_string())
}

/// A Patient with a family name, given names and (optionally) a birth date.
fn patient(s: &Server, tag: &str, family: &str, given: &[&str], birth: Option<&str>) -> String {
    let mut body = json!({"name": [{"family": family, "given": given}]});
    if let Some(b) = birth {
        body["birthDate"] = json!(b);
    }
    create(s, tag, "Patient", body)
}

/// A final vital-signs Observation with one LOINC code, about `Patient/{subject}`.
fn observation(s: &Server, tag: &str, subject: &str, code: &str, display: &str) -> String {
    create(
        s,
        tag,
        "Observation",
        json!({
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
            "subject": {"reference": format!("Patient/{subject}")},
            "effectiveDateTime": "2021-05-04T09:30:00Z"
        }),
    )
}

/// Checks what every search response must be, and returns the Bundle.
fn check_searchset(r: &Resp, query: &str) -> Value {
    assert_eq!(r.status, 200, "search {query}: {}", r.body);
    assert_eq!(
        r.header("content-type"),
        Some("application/fhir+json; charset=utf-8"),
        "search {query}"
    );
    let b = r.json();
    assert_eq!(b["resourceType"], "Bundle", "search {query}: {}", r.body);
    assert_eq!(b["type"], "searchset", "search {query}");
    b
}

/// `GET {base}{path}` (path like `/Patient?name=x`); asserts a searchset Bundle.
fn search(s: &Server, path: &str) -> Value {
    check_searchset(&s.get(path), path)
}

/// The ids of the `match` entries, sorted.
fn ids(bundle: &Value) -> Vec<String> {
    let mut v = ordered_ids(bundle);
    v.sort();
    v
}

/// The ids of the `match` entries, in Bundle order.
fn ordered_ids(bundle: &Value) -> Vec<String> {
    entries_with_mode(bundle, "match")
        .iter()
        .map(|e| e["resource"]["id"].as_str().expect("entry id").to_string())
        .collect()
}

/// `Type/id` of the `match` entries, sorted (system searches).
fn typed_ids(bundle: &Value) -> Vec<String> {
    typed(&entries_with_mode(bundle, "match"))
}

/// `Type/id` of the `include` entries, sorted.
fn included(bundle: &Value) -> Vec<String> {
    typed(&entries_with_mode(bundle, "include"))
}

fn typed(entries: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = entries
        .iter()
        .map(|e| {
            format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap(),
                e["resource"]["id"].as_str().unwrap()
            )
        })
        .collect();
    v.sort();
    v
}

fn entries_with_mode(bundle: &Value, mode: &str) -> Vec<Value> {
    bundle["entry"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["search"]["mode"] == mode)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Sorted owned strings, for comparing with [`ids`].
fn set(v: &[&String]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// `Type/id` strings, sorted.
fn tset(v: &[(&str, &String)]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|(t, id)| format!("{t}/{id}")).collect();
    v.sort();
    v
}

/// The URL of the link with `relation`, if any.
fn link(bundle: &Value, relation: &str) -> Option<String> {
    bundle["link"].as_array().and_then(|a| {
        a.iter()
            .find(|l| l["relation"] == relation)
            .and_then(|l| l["url"].as_str().map(str::to_string))
    })
}

/// Follows an absolute link of this server.
fn follow(s: &Server, url: &str) -> Value {
    assert!(
        url.starts_with(&s.base),
        "link {url} is not under the server base {}",
        s.base
    );
    search(s, &url[s.base.len()..])
}

/// Percent-encodes one query value.
fn enc(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

// ------------------------------------------------------------------ bundle shape

fn searchset_bundle_has_total_self_link_full_urls_and_match_mode(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let p1 = patient(s, &tag, "Chalmers", &["Peter"], Some("1974-12-25"));
    let p2 = patient(s, &tag, "Windsor", &["Anne"], Some("1950-08-15"));
    let bundle = search(s, &format!("/Patient?{}", tag_param(&tag)));
    assert_eq!(bundle["total"], 2);
    assert_eq!(ids(&bundle), set(&[&p1, &p2]));
    let self_link = link(&bundle, "self").expect("self link");
    assert!(self_link.starts_with(&s.url("/Patient")), "{self_link}");
    assert!(link(&bundle, "next").is_none(), "one page only");
    for e in bundle["entry"].as_array().unwrap() {
        let id = e["resource"]["id"].as_str().unwrap();
        assert_eq!(e["fullUrl"], s.url(&format!("/Patient/{id}")));
        assert_eq!(e["search"]["mode"], "match");
        assert_eq!(e["resource"]["resourceType"], "Patient");
        assert_eq!(e["resource"]["meta"]["versionId"], "1");
    }
    // No match: an empty searchset with total 0.
    let none = search(s, &format!("/Patient?{}&family=Nobody", tag_param(&tag)));
    assert_eq!(none["total"], 0);
    assert!(ids(&none).is_empty());
}

fn post_search_with_form_body_matches_get(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let chalmers = patient(s, &tag, "Chalmers", &["Peter"], Some("1974-12-25"));
    let _windsor = patient(s, &tag, "Windsor", &["Anne"], Some("1950-08-15"));
    let body = format!("{}&family=chalmers", tag_param(&tag));
    let r = s
        .req("POST", "/Patient/_search")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .json(&body);
    let posted = check_searchset(&r, &body);
    assert_eq!(ids(&posted), vec![chalmers.clone()]);
    assert_eq!(posted["total"], 1);
    let got = search(s, &format!("/Patient?{body}"));
    assert_eq!(ids(&got), ids(&posted));
    // Parameters in the URL and in the body are combined (AND).
    let r = s
        .req("POST", &format!("/Patient/_search?{}", tag_param(&tag)))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .json("given=peter");
    assert_eq!(ids(&check_searchset(&r, "given=peter")), vec![chalmers]);
}

// ------------------------------------------------------------------------ string

fn string_search_is_starts_with_case_and_accent_insensitive(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let chalmers = patient(s, &tag, "Chalmers", &["Peter", "James"], None);
    let muller = patient(s, &tag, "Müller", &["Jürgen"], None);
    let achalm = patient(s, &tag, "Achalm", &["Eva"], None);
    assert_eq!(
        ids(&search(s, &format!("/Patient?{t}&name=chal"))),
        vec![chalmers.clone()]
    );
    assert_eq!(
        ids(&search(s, &format!("/Patient?{t}&name=CHALMERS"))),
        vec![chalmers.clone()]
    );
    assert_eq!(
        ids(&search(s, &format!("/Patient?{t}&name=muller"))),
        vec![muller.clone()]
    );
    assert_eq!(
        ids(&search(s, &format!("/Patient?{t}&family={}", enc("MÜL")))),
        vec![muller.clone()]
    );
    // `name` covers given names too.
    assert_eq!(
        ids(&search(s, &format!("/Patient?{t}&name=jurg"))),
        vec![muller.clone()]
    );
    assert_eq!(
        ids(&search(s, &format!("/Patient?{t}&given=jam"))),
        vec![chalmers.clone()]
    );
    // Starts-with, not contains.
    assert_eq!(
        ids(&search(s, &format!("/Patient?{t}&family=halm"))),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&search(s, &format!("/Patient?{t}&family=a"))),
        vec![achalm]
    );
}

fn string_exact_and_contains_modifiers(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let chalmers = patient(s, &tag, "Chalmers", &["Peter"], None);
    let achalm = patient(s, &tag, "Achalm", &["Eva"], None);
    let muller = patient(s, &tag, "Müller", &["Jürgen"], None);
    // :exact — whole string, case and accents significant.
    assert_eq!(
        ids(&search(s, &format!("/Patient?{t}&family:exact=Chalmers"))),
        vec![chalmers.clone()]
    );
    assert!(ids(&search(s, &format!("/Patient?{t}&family:exact=chalmers"))).is_empty());
    assert!(ids(&search(s, &format!("/Patient?{t}&family:exact=Chalm"))).is_empty());
    assert_eq!(
        ids(&search(
            s,
            &format!("/Patient?{t}&family:exact={}", enc("Müller"))
        )),
        vec![muller.clone()]
    );
    assert!(ids(&search(s, &format!("/Patient?{t}&family:exact=Muller"))).is_empty());
    // :contains — anywhere, case/accent-insensitive.
    assert_eq!(
        ids(&search(s, &format!("/Patient?{t}&family:contains=HALM"))),
        set(&[&chalmers, &achalm])
    );
    assert_eq!(
        ids(&search(s, &format!("/Patient?{t}&name:contains=ulle"))),
        vec![muller]
    );
    assert_eq!(
        ids(&search(s, &format!("/Patient?{t}&family:contains=mers"))),
        vec![chalmers]
    );
}

fn string_values_with_sql_and_fhir_special_characters(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let obrien = patient(s, &tag, "O'Brien", &["Siobhan"], None);
    let underscore = patient(s, &tag, "Ma_ier", &["Anna"], None);
    let maxier = patient(s, &tag, "Maxier", &["Max"], None);
    let percent = patient(s, &tag, "Hundred%Smith", &["Pat"], None);
    let backslash = patient(s, &tag, "Back\\slash", &["Bea"], None);
    let q = |v: &str| ids(&search(s, &format!("/Patient?{t}&{v}")));
    assert_eq!(q(&format!("family={}", enc("o'b"))), vec![obrien.clone()]);
    // LIKE wildcards in values are literal characters.
    assert_eq!(q("family=ma_"), vec![underscore.clone()]);
    assert_eq!(q("family=max"), vec![maxier]);
    assert_eq!(q("family:contains=_"), vec![underscore]);
    assert_eq!(q("family:contains=%25"), vec![percent.clone()]);
    assert_eq!(q("family=hundred%25"), vec![percent]);
    assert!(q("family=%25").is_empty());
    // FHIR escapes: `\\` is a backslash, `\,` a literal comma.
    assert_eq!(q(&format!("family={}", enc("back\\\\"))), vec![backslash]);
    assert!(q(&format!("family={}", enc("' OR '1'='1"))).is_empty());
    let org = create(
        s,
        &tag,
        "Organization",
        json!({"name": "Heart, Lung and Blood Institute"}),
    );
    let _heart = create(s, &tag, "Organization", json!({"name": "Heart Clinic"}));
    assert_eq!(
        ids(&search(
            s,
            &format!("/Organization?{t}&name={}", enc("heart\\, lung"))
        )),
        vec![org]
    );
}

// ------------------------------------------------------------------------- token

fn token_code_system_and_no_system_forms(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let pat = patient(s, &tag, "Token", &["Tim"], None);
    let loinc_hr = observation(s, &tag, &pat, "8867-4", "Heart rate");
    let loinc_sbp = observation(s, &tag, &pat, "8480-6", "Systolic blood pressure");
    let local_hr = create(
        s,
        &tag,
        "Observation",
        json!({"status": "final", "subject": {"reference": format!("Patient/{pat}")},
               "code": {"coding": [{"system": "http://acme.example/codes", "code": "8867-4"}]}}),
    );
    let bare_hr = create(
        s,
        &tag,
        "Observation",
        json!({"status": "final", "subject": {"reference": format!("Patient/{pat}")},
               "code": {"coding": [{"code": "8867-4"}]}}),
    );
    let q = |v: &str| ids(&search(s, &format!("/Observation?{t}&code={v}")));
    assert_eq!(q("8867-4"), set(&[&loinc_hr, &local_hr, &bare_hr]));
    assert_eq!(q("http://loinc.org|8867-4"), vec![loinc_hr.clone()]);
    assert_eq!(q("|8867-4"), vec![bare_hr.clone()]);
    assert_eq!(q("http://loinc.org|"), set(&[&loinc_hr, &loinc_sbp]));
    assert!(q("http://loinc.org|8310-5").is_empty());
    // Codes are compared exactly (no prefix matching for tokens).
    assert!(q("8867").is_empty());
    // `status` (code) and `identifier` (Identifier) tokens.
    let mrn = unique("mrn");
    let with_mrn = create(
        s,
        &tag,
        "Patient",
        json!({"identifier": [{"system": "http://hospital.example/mrn", "value": mrn}]}),
    );
    let other_system = create(
        s,
        &tag,
        "Patient",
        json!({"identifier": [{"system": "http://other.example/id", "value": mrn}]}),
    );
    assert_eq!(
        ids(&search(s, &format!("/Patient?{t}&identifier={mrn}"))),
        set(&[&with_mrn, &other_system])
    );
    assert_eq!(
        ids(&search(
            s,
            &format!("/Patient?{t}&identifier=http://hospital.example/mrn|{mrn}")
        )),
        vec![with_mrn]
    );
    assert_eq!(
        ids(&search(s, &format!("/Observation?{t}&status=final"))),
        set(&[&loinc_hr, &loinc_sbp, &local_hr, &bare_hr])
    );
    assert!(ids(&search(s, &format!("/Observation?{t}&status=amended"))).is_empty());
    // A boolean token.
    let inactive = create(s, &tag, "Patient", json!({"active": false}));
    assert_eq!(
        ids(&search(s, &format!("/Patient?{t}&active=false"))),
        vec![inactive]
    );
}

fn token_not_and_text_modifiers(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let female = create(s, &tag, "Patient", json!({"gender": "female"}));
    let male = create(s, &tag, "Patient", json!({"gender": "male"}));
    let unknown = create(s, &tag, "Patient", json!({"active": true}));
    assert_eq!(
        ids(&search(s, &format!("/Patient?{t}&gender=male"))),
        vec![male.clone()]
    );
    // search.html: ":not … includes resources that have no value for the parameter".
    assert_eq!(
        ids(&search(s, &format!("/Patient?{t}&gender:not=male"))),
        set(&[&female, &unknown])
    );
    let hr = observation(s, &tag, &male, "8867-4", "Heart rate");
    let bmi = create(
        s,
        &tag,
        "Observation",
        json!({"status": "final", "subject": {"reference": format!("Patient/{male}")},
               "code": {"coding": [{"system": LOINC, "code": "39156-5"}], "text": "Body mass index"}}),
    );
    // :text searches Coding.display and CodeableConcept.text.
    assert_eq!(
        ids(&search(s, &format!("/Observation?{t}&code:text=heart"))),
        vec![hr.clone()]
    );
    assert_eq!(
        ids(&search(
            s,
            &format!("/Observation?{t}&code:text=body%20mass")
        )),
        vec![bmi.clone()]
    );
    assert_eq!(
        ids(&search(
            s,
            &format!("/Observation?{t}&code:not=http://loinc.org|8867-4")
        )),
        vec![bmi]
    );
}

// -------------------------------------------------------------------------- date

fn birthdate_matches_by_precision(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let xmas = patient(s, &tag, "Chalmers", &["Peter"], Some("1974-12-25"));
    let june = patient(s, &tag, "Jones", &["Mary"], Some("1974-06-01"));
    let dec = patient(s, &tag, "Month", &["Only"], Some("1974-12"));
    let _older = patient(s, &tag, "Older", &["Olga"], Some("1973-12-31"));
    let _younger = patient(s, &tag, "Younger", &["Yann"], Some("1975-01-01"));
    let q = |v: &str| ids(&search(s, &format!("/Patient?{t}&birthdate={v}")));
    assert_eq!(q("1974"), set(&[&xmas, &june, &dec]));
    assert_eq!(q("1974-12"), set(&[&xmas, &dec]));
    // eq: the search range must contain the target's range; a month does not fit a day.
    assert_eq!(q("1974-12-25"), vec![xmas.clone()]);
    assert_eq!(q("eq1974-06-01"), vec![june]);
    assert!(q("1974-12-24").is_empty());
}

fn date_prefixes_on_birthdate(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let p73 = patient(s, &tag, "A", &["a"], Some("1973-12-31"));
    let p74a = patient(s, &tag, "B", &["b"], Some("1974-06-01"));
    let p74b = patient(s, &tag, "C", &["c"], Some("1974-12-25"));
    let p75 = patient(s, &tag, "D", &["d"], Some("1975-01-01"));
    let _none = patient(s, &tag, "E", &["e"], None);
    let q = |v: &str| ids(&search(s, &format!("/Patient?{t}&birthdate={v}")));
    assert_eq!(q("gt1974-12-25"), vec![p75.clone()]);
    assert_eq!(q("ge1974-12-25"), set(&[&p74b, &p75]));
    assert_eq!(q("lt1974-06-01"), vec![p73.clone()]);
    assert_eq!(q("le1974-06-01"), set(&[&p73, &p74a]));
    assert_eq!(q("ne1974"), set(&[&p73, &p75]));
    assert_eq!(q("sa1974"), vec![p75.clone()]);
    assert_eq!(q("eb1974"), vec![p73.clone()]);
    assert_eq!(q("gt1974"), vec![p75.clone()]);
    assert_eq!(q("le1974"), set(&[&p73, &p74a, &p74b]));
    // Repeated parameters are ANDed: a range.
    assert_eq!(
        ids(&search(
            s,
            &format!("/Patient?{t}&birthdate=ge1974-01-01&birthdate=lt1975-01-01")
        )),
        set(&[&p74a, &p74b])
    );
    // Comma-separated values are ORed.
    assert_eq!(q("1973,1975"), set(&[&p73, &p75]));
}

fn observation_date_with_date_times_and_periods(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let pat = patient(s, &tag, "Dates", &["Dora"], None);
    let obs = |effective: Value| {
        let mut body = json!({"status": "final",
            "code": {"coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"}]},
            "subject": {"reference": format!("Patient/{pat}")},
            "valueQuantity": {"value": 72, "unit": "beats/minute", "system": UCUM, "code": "/min"}});
        let obj = body.as_object_mut().unwrap();
        for (k, v) in effective.as_object().unwrap() {
            obj.insert(k.clone(), v.clone());
        }
        create(s, &tag, "Observation", body)
    };
    let instant = obs(json!({"effectiveDateTime": "2020-03-15T10:00:00Z"}));
    let march = obs(json!({"effectivePeriod": {"start": "2020-03-01", "end": "2020-03-31"}}));
    let year = obs(json!({"effectivePeriod": {"start": "2020-01-01", "end": "2020-12-31"}}));
    let later = obs(json!({"effectiveDateTime": "2021-02-01T08:00:00Z"}));
    let open = obs(json!({"effectivePeriod": {"start": "2020-11-01"}}));
    let q = |v: &str| ids(&search(s, &format!("/Observation?{t}&date={v}")));
    assert_eq!(q("2020-03-15"), vec![instant.clone()]);
    assert_eq!(q("2020-03"), set(&[&instant, &march]));
    assert_eq!(q("2020"), set(&[&instant, &march, &year]));
    // gt: the target's range goes beyond the search value's (an open end does).
    assert_eq!(q("gt2020-06-01"), set(&[&year, &later, &open]));
    // lt: the target's range starts before the search value's.
    assert_eq!(q("lt2020-03-10"), set(&[&march, &year]));
    // sa / eb: wholly after / wholly before.
    assert_eq!(q("sa2020-03-31"), set(&[&later, &open]));
    assert_eq!(q("eb2020-04-15"), set(&[&instant, &march]));
    // Offsets are honoured: 11:00+01:00 is 10:00Z (second precision).
    assert_eq!(q(&enc("2020-03-15T11:00:00+01:00")), vec![instant.clone()]);
    assert!(q(&enc("2020-03-15T10:00:00+01:00")).is_empty());
    // A range by AND: the March instant and the periods covering that day.
    assert_eq!(
        ids(&search(
            s,
            &format!("/Observation?{t}&date=ge2020-03-15T00:00:00Z&date=le2020-03-15T23:59:59Z")
        )),
        set(&[&instant, &march, &year])
    );
}

// ------------------------------------------------------------- number / quantity

fn number_search_on_risk_assessment_probability(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let pat = patient(s, &tag, "Risk", &["Rita"], None);
    let risk = |p: f64| {
        create(
            s,
            &tag,
            "RiskAssessment",
            json!({"status": "final", "subject": {"reference": format!("Patient/{pat}")},
                   "prediction": [{"outcome": {"text": "Stroke"}, "probabilityDecimal": p}]}),
        )
    };
    let low = risk(0.3);
    let mid = risk(0.7);
    let high = risk(0.9);
    let q = |v: &str| ids(&search(s, &format!("/RiskAssessment?{t}&probability={v}")));
    assert_eq!(q("gt0.5"), set(&[&mid, &high]));
    assert_eq!(q("lt0.5"), vec![low.clone()]);
    assert_eq!(q("0.7"), vec![mid.clone()]);
    assert_eq!(q("ge0.7"), set(&[&mid, &high]));
    assert_eq!(q("ne0.7"), set(&[&low, &high]));
}

fn quantity_search_with_units_and_prefixes(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let pat = patient(s, &tag, "Glucose", &["Gina"], None);
    let glucose = |value: f64, unit: &str, system: Option<&str>| {
        let mut q = json!({"value": value, "unit": unit, "code": unit});
        match system {
            Some(sys) => q["system"] = json!(sys),
            None => {
                q.as_object_mut().unwrap().remove("code");
            }
        }
        create(
            s,
            &tag,
            "Observation",
            json!({"status": "final",
                   "code": {"coding": [{"system": LOINC, "code": "15074-8", "display": "Glucose [Moles/volume] in Blood"}]},
                   "subject": {"reference": format!("Patient/{pat}")},
                   "valueQuantity": q}),
        )
    };
    let mmol = glucose(5.4, "mmol/L", Some(UCUM));
    let mmol_no_system = glucose(5.4, "mmol/L", None);
    let high = glucose(7.1, "mmol/L", Some(UCUM));
    let mgdl = glucose(97.0, "mg/dL", Some(UCUM));
    let q = |v: &str| ids(&search(s, &format!("/Observation?{t}&value-quantity={v}")));
    assert_eq!(
        q("5.4|http://unitsofmeasure.org|mmol/L"),
        vec![mmol.clone()]
    );
    // No system: the code matches the code or the unit.
    assert_eq!(q("5.4||mmol/L"), set(&[&mmol, &mmol_no_system]));
    assert_eq!(q("5.4"), set(&[&mmol, &mmol_no_system]));
    assert_eq!(
        q("gt5|http://unitsofmeasure.org|mmol/L"),
        set(&[&mmol, &high])
    );
    assert_eq!(q("gt5"), set(&[&mmol, &mmol_no_system, &high, &mgdl]));
    assert_eq!(
        q("lt7|http://unitsofmeasure.org|mmol/L"),
        vec![mmol.clone()]
    );
    assert_eq!(
        q("le97|http://unitsofmeasure.org|mg/dL"),
        vec![mgdl.clone()]
    );
    assert!(q("5.4|http://unitsofmeasure.org|mg/dL").is_empty());
}

// --------------------------------------------------------------------- reference

fn reference_search_forms(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let peter = patient(s, &tag, "Chalmers", &["Peter"], None);
    let anne = patient(s, &tag, "Windsor", &["Anne"], None);
    let obs_peter = observation(s, &tag, &peter, "8867-4", "Heart rate");
    let obs_anne = observation(s, &tag, &anne, "8867-4", "Heart rate");
    let q = |v: &str| ids(&search(s, &format!("/Observation?{t}&{v}")));
    assert_eq!(
        q(&format!("subject=Patient/{peter}")),
        vec![obs_peter.clone()]
    );
    assert_eq!(
        q(&format!("subject:Patient={peter}")),
        vec![obs_peter.clone()]
    );
    assert_eq!(q(&format!("patient={peter}")), vec![obs_peter.clone()]);
    assert_eq!(
        q(&format!("patient=Patient/{peter}")),
        vec![obs_peter.clone()]
    );
    // An absolute URL on this server's base is the same reference.
    assert_eq!(
        q(&format!("subject={}", s.url(&format!("/Patient/{peter}")))),
        vec![obs_peter.clone()]
    );
    assert_eq!(
        q(&format!("subject=Patient/{peter},Patient/{anne}")),
        set(&[&obs_peter, &obs_anne])
    );
    assert!(q("subject=Patient/does-not-exist").is_empty());
    // `Group/{id}` is a different target type than `Patient/{id}`.
    assert!(q(&format!("subject=Group/{peter}")).is_empty());
}

// --------------------------------------------------------------------------- uri

fn uri_exact_and_below(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let u = unique("vs");
    let base = format!("http://acme.example/fhir/ValueSet/{u}");
    let vs = |url: &str| create(s, &tag, "ValueSet", json!({"url": url, "status": "active"}));
    let root = vs(&base);
    let child = vs(&format!("{base}/vital-signs"));
    let grandchild = vs(&format!("{base}/vital-signs/heart"));
    let _other = vs(&format!("http://other.example/fhir/ValueSet/{u}"));
    let q = |v: &str| ids(&search(s, &format!("/ValueSet?{t}&{v}")));
    assert_eq!(q(&format!("url={base}")), vec![root.clone()]);
    assert_eq!(q(&format!("url={base}/vital-signs")), vec![child.clone()]);
    // uri matching is exact, not starts-with.
    assert!(q(&format!("url={base}/vital")).is_empty());
    assert_eq!(
        q(&format!("url:below={base}")),
        set(&[&root, &child, &grandchild])
    );
    assert_eq!(
        q(&format!("url:below={base}/vital-signs")),
        set(&[&child, &grandchild])
    );
}

// --------------------------------------------------------- common parameters

fn id_and_last_updated(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let first = patient(s, &tag, "First", &["F"], None);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let second = patient(s, &tag, "Second", &["S"], None);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let third = patient(s, &tag, "Third", &["T"], None);
    assert_eq!(
        ids(&search(s, &format!("/Patient?_id={first}"))),
        vec![first.clone()]
    );
    assert_eq!(
        ids(&search(s, &format!("/Patient?_id={first},{third}"))),
        set(&[&first, &third])
    );
    assert!(ids(&search(s, "/Patient?_id=no-such-id")).is_empty());
    let updated = |id: &str| {
        s.get(&format!("/Patient/{id}")).json()["meta"]["lastUpdated"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (lu1, lu2) = (updated(&first), updated(&second));
    let q = |v: &str| ids(&search(s, &format!("/Patient?{t}&_lastUpdated={}", enc(v))));
    assert_eq!(q(&format!("gt{lu1}")), set(&[&second, &third]));
    assert_eq!(q(&format!("ge{lu2}")), set(&[&second, &third]));
    assert_eq!(q(&format!("lt{lu2}")), vec![first.clone()]);
    assert_eq!(q(&lu2), vec![second.clone()]);
    assert_eq!(q("gt2000-01-01"), set(&[&first, &second, &third]));
    assert!(q("lt2000-01-01").is_empty());
}

fn tag_and_profile(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let profile = format!(
        "http://example.org/fhir/StructureDefinition/{}",
        unique("p")
    );
    let profiled = create(
        s,
        &tag,
        "Patient",
        json!({"meta": {"profile": [profile],
                        "tag": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HTEST"}]}}),
    );
    let plain = create(s, &tag, "Patient", json!({"active": true}));
    assert_eq!(
        ids(&search(s, &format!("/Patient?{t}"))),
        set(&[&profiled, &plain])
    );
    assert_eq!(
        ids(&search(s, &format!("/Patient?{t}&_profile={profile}"))),
        vec![profiled.clone()]
    );
    assert_eq!(
        ids(&search(
            s,
            &format!("/Patient?{t}&_tag=http://terminology.hl7.org/CodeSystem/v3-ActReason|HTEST")
        )),
        vec![profiled.clone()]
    );
    // The code alone matches any system.
    assert_eq!(
        ids(&search(s, &format!("/Patient?_tag={tag}"))),
        set(&[&profiled, &plain])
    );
    assert!(ids(&search(
        s,
        &format!("/Patient?_tag=http://other.example|{tag}")
    ))
    .is_empty());
}

// --------------------------------------------------------------------- composite

fn composite_code_value_quantity(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let pat = patient(s, &tag, "Pressure", &["Paul"], None);
    let bp = |code: &str, display: &str, value: f64| {
        create(
            s,
            &tag,
            "Observation",
            json!({"status": "final",
                   "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
                   "subject": {"reference": format!("Patient/{pat}")},
                   "valueQuantity": {"value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}}),
        )
    };
    let sys_high = bp("8480-6", "Systolic blood pressure", 150.0);
    let sys_normal = bp("8480-6", "Systolic blood pressure", 95.0);
    let _dia_high = bp("8462-4", "Diastolic blood pressure", 110.0);
    let q = |v: &str| ids(&search(s, &format!("/Observation?{t}&{v}")));
    assert_eq!(
        q("code-value-quantity=http://loinc.org|8480-6$gt100"),
        vec![sys_high.clone()]
    );
    assert_eq!(
        q("code-value-quantity=http://loinc.org|8480-6$lt100"),
        vec![sys_normal.clone()]
    );
    // Components belong together: panels with systolic/diastolic components.
    let panel = |systolic: f64, diastolic: f64| {
        create(
            s,
            &tag,
            "Observation",
            json!({"status": "final",
                   "code": {"coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"}]},
                   "subject": {"reference": format!("Patient/{pat}")},
                   "component": [
                     {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                      "valueQuantity": {"value": systolic, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}},
                     {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                      "valueQuantity": {"value": diastolic, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}}]}),
        )
    };
    let hypertensive = panel(150.0, 95.0);
    let normal = panel(118.0, 76.0);
    assert_eq!(
        q("component-code-value-quantity=http://loinc.org|8480-6$gt140"),
        vec![hypertensive.clone()]
    );
    assert_eq!(
        q("component-code-value-quantity=http://loinc.org|8480-6$lt140"),
        vec![normal]
    );
    // 150 is above 100, but it is the systolic component's value, not the diastolic's.
    assert!(q("component-code-value-quantity=http://loinc.org|8462-4$gt100").is_empty());
}

// ---------------------------------------------------------------------- :missing

fn missing_modifier(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let with = patient(s, &tag, "Born", &["B"], Some("1980-02-29"));
    let without = patient(s, &tag, "Unborn", &["U"], None);
    assert_eq!(
        ids(&search(s, &format!("/Patient?{t}&birthdate:missing=true"))),
        vec![without.clone()]
    );
    assert_eq!(
        ids(&search(s, &format!("/Patient?{t}&birthdate:missing=false"))),
        vec![with.clone()]
    );
    assert_eq!(
        ids(&search(s, &format!("/Patient?{t}&gender:missing=true"))),
        set(&[&with, &without])
    );
    assert!(ids(&search(s, &format!("/Patient?{t}&family:missing=true"))).is_empty());
}

// ------------------------------------------------------------------- OR / AND

fn comma_is_or_and_repetition_is_and(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let pj = patient(s, &tag, "Chalmers", &["Peter", "James"], None);
    let p = patient(s, &tag, "Pan", &["Peter"], None);
    let j = patient(s, &tag, "Joyce", &["James"], None);
    let _x = patient(s, &tag, "Xu", &["Xiaoming"], None);
    let q = |v: &str| ids(&search(s, &format!("/Patient?{t}&{v}")));
    assert_eq!(q("given=peter,james"), set(&[&pj, &p, &j]));
    assert_eq!(q("given=peter&given=james"), vec![pj.clone()]);
    assert_eq!(q("given=peter&family=pan"), vec![p.clone()]);
    assert_eq!(
        q("given=peter,james&family=joyce,chalmers"),
        set(&[&pj, &j])
    );
    let obs = |code: &str, display: &str| observation(s, &tag, &pj, code, display);
    let hr = obs("8867-4", "Heart rate");
    let sbp = obs("8480-6", "Systolic blood pressure");
    let _temp = obs("8310-5", "Body temperature");
    assert_eq!(
        ids(&search(
            s,
            &format!("/Observation?{t}&code=http://loinc.org|8867-4,http://loinc.org|8480-6")
        )),
        set(&[&hr, &sbp])
    );
    assert!(ids(&search(
        s,
        &format!("/Observation?{t}&code=8867-4&code=8480-6")
    ))
    .is_empty());
}

// ---------------------------------------------------------------------- chaining

fn forward_chaining_one_and_two_levels(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let org_name = unique("Acme Cardiology");
    let acme = create(s, &tag, "Organization", json!({"name": org_name}));
    let other = create(
        s,
        &tag,
        "Organization",
        json!({"name": unique("General Hospital")}),
    );
    let peter = create(
        s,
        &tag,
        "Patient",
        json!({"name": [{"family": "Chalmers", "given": ["Peter"]}],
               "managingOrganization": {"reference": format!("Organization/{acme}")}}),
    );
    let anne = create(
        s,
        &tag,
        "Patient",
        json!({"name": [{"family": "Windsor", "given": ["Anne"]}],
               "managingOrganization": {"reference": format!("Organization/{other}")}}),
    );
    let obs_peter = observation(s, &tag, &peter, "8867-4", "Heart rate");
    let obs_anne = observation(s, &tag, &anne, "8867-4", "Heart rate");
    let q = |v: &str| ids(&search(s, &format!("/Observation?{t}&{v}")));
    assert_eq!(q("subject:Patient.name=chalmers"), vec![obs_peter.clone()]);
    assert_eq!(q("patient.name=chalmers"), vec![obs_peter.clone()]);
    assert_eq!(q("subject:Patient.family=WINDSOR"), vec![obs_anne.clone()]);
    assert_eq!(
        q("subject:Patient.name=chalmers,windsor"),
        set(&[&obs_peter, &obs_anne])
    );
    assert!(q("subject:Patient.name=nobody").is_empty());
    assert_eq!(
        q(&format!(
            "subject:Patient.organization.name={}",
            enc(&org_name)
        )),
        vec![obs_peter.clone()]
    );
    assert_eq!(
        q(&format!("patient.organization={acme}")),
        vec![obs_peter.clone()]
    );
    // A chain on Patient itself.
    assert_eq!(
        ids(&search(
            s,
            &format!("/Patient?{t}&organization.name={}", enc(&org_name))
        )),
        vec![peter]
    );
}

fn reverse_chaining_with_has(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let with_hr = patient(s, &tag, "Cardio", &["Carl"], None);
    let with_sbp = patient(s, &tag, "Pressure", &["Petra"], None);
    let without = patient(s, &tag, "Nobs", &["Nora"], None);
    observation(s, &tag, &with_hr, "8867-4", "Heart rate");
    observation(s, &tag, &with_sbp, "8480-6", "Systolic blood pressure");
    let q = |v: &str| ids(&search(s, &format!("/Patient?{t}&{v}")));
    assert_eq!(
        q("_has:Observation:patient:code=8867-4"),
        vec![with_hr.clone()]
    );
    assert_eq!(
        q("_has:Observation:subject:code=http://loinc.org|8867-4,http://loinc.org|8480-6"),
        set(&[&with_hr, &with_sbp])
    );
    assert!(q("_has:Observation:patient:code=8310-5").is_empty());
    // Combined with an ordinary parameter (AND).
    assert_eq!(
        q("_has:Observation:patient:code=8867-4,8480-6&family=pressure"),
        vec![with_sbp]
    );
    let _ = without;
}

// ------------------------------------------------------------ include/revinclude

fn include_adds_referenced_resources_in_include_mode(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let peter = patient(s, &tag, "Chalmers", &["Peter"], None);
    let anne = patient(s, &tag, "Windsor", &["Anne"], None);
    let group = create(
        s,
        &tag,
        "Group",
        json!({"type": "person", "actual": true, "name": "Ward 3"}),
    );
    let o1 = observation(s, &tag, &peter, "8867-4", "Heart rate");
    let o2 = observation(s, &tag, &peter, "8480-6", "Systolic blood pressure");
    let o3 = create(
        s,
        &tag,
        "Observation",
        json!({"status": "final", "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
               "subject": {"reference": format!("Group/{group}")}}),
    );
    let bundle = search(s, &format!("/Observation?{t}&_include=Observation:subject"));
    assert_eq!(bundle["total"], 3, "included resources are not counted");
    assert_eq!(ids(&bundle), set(&[&o1, &o2, &o3]));
    // Peter is referenced twice but included once.
    assert_eq!(
        included(&bundle),
        tset(&[("Group", &group), ("Patient", &peter)])
    );
    for e in entries_with_mode(&bundle, "include") {
        let rt = e["resource"]["resourceType"].as_str().unwrap();
        let id = e["resource"]["id"].as_str().unwrap();
        assert_eq!(e["fullUrl"], s.url(&format!("/{rt}/{id}")));
    }
    // Restricted to a target type.
    let bundle = search(
        s,
        &format!("/Observation?{t}&_include=Observation:subject:Patient"),
    );
    assert_eq!(ids(&bundle), set(&[&o1, &o2, &o3]));
    assert_eq!(included(&bundle), tset(&[("Patient", &peter)]));
    // Only matches' references are followed.
    let bundle = search(
        s,
        &format!("/Observation?{t}&code=8480-6&_include=Observation:patient"),
    );
    assert_eq!(ids(&bundle), vec![o2.clone()]);
    assert_eq!(included(&bundle), tset(&[("Patient", &peter)]));
    assert_eq!(bundle["total"], 1);
    // Includes are per page: each page carries the resources its matches refer to.
    let anne_obs = observation(s, &tag, &anne, "8310-5", "Body temperature");
    let mut page = search(
        s,
        &format!("/Observation?{t}&_sort=_lastUpdated&_count=2&_include=Observation:subject"),
    );
    assert_eq!(page["total"], 4);
    let mut pages = Vec::new();
    loop {
        pages.push((ordered_ids(&page), included(&page)));
        match link(&page, "next") {
            Some(url) => page = follow(s, &url),
            None => break,
        }
    }
    assert_eq!(
        pages,
        vec![
            (vec![o1.clone(), o2.clone()], tset(&[("Patient", &peter)])),
            (
                vec![o3.clone(), anne_obs.clone()],
                tset(&[("Group", &group), ("Patient", &anne)])
            ),
        ]
    );
}

fn revinclude_and_include_iterate(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let org = create(s, &tag, "Organization", json!({"name": unique("Clinic")}));
    let peter = create(
        s,
        &tag,
        "Patient",
        json!({"name": [{"family": "Chalmers"}],
               "managingOrganization": {"reference": format!("Organization/{org}")}}),
    );
    let anne = patient(s, &tag, "Windsor", &["Anne"], None);
    let o1 = observation(s, &tag, &peter, "8867-4", "Heart rate");
    let o2 = observation(s, &tag, &peter, "8480-6", "Systolic blood pressure");
    let o3 = observation(s, &tag, &anne, "8867-4", "Heart rate");
    let bundle = search(
        s,
        &format!("/Patient?_id={peter}&_revinclude=Observation:subject"),
    );
    assert_eq!(bundle["total"], 1);
    assert_eq!(ids(&bundle), vec![peter.clone()]);
    assert_eq!(
        included(&bundle),
        tset(&[("Observation", &o1), ("Observation", &o2)])
    );
    let bundle = search(s, &format!("/Patient?{t}&_revinclude=Observation:patient"));
    assert_eq!(ids(&bundle), set(&[&peter, &anne]));
    assert_eq!(bundle["total"], 2);
    assert_eq!(
        included(&bundle),
        tset(&[
            ("Observation", &o1),
            ("Observation", &o2),
            ("Observation", &o3)
        ])
    );
    // :iterate follows references of included resources too.
    let bundle = search(
        s,
        &format!(
            "/Observation?{t}&code=http://loinc.org|8480-6&_include=Observation:subject&_include:iterate=Patient:organization"
        ),
    );
    assert_eq!(ids(&bundle), vec![o2.clone()]);
    assert_eq!(
        included(&bundle),
        tset(&[("Organization", &org), ("Patient", &peter)])
    );
    // Without :iterate the organization is not reached.
    let bundle = search(
        s,
        &format!(
            "/Observation?{t}&code=http://loinc.org|8480-6&_include=Observation:subject&_include=Patient:organization"
        ),
    );
    assert_eq!(included(&bundle), tset(&[("Patient", &peter)]));
}

// -------------------------------------------------------------------------- sort

fn sort_by_one_and_several_keys(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let adams80 = patient(s, &tag, "Adams", &["A"], Some("1980-05-01"));
    let baker70 = patient(s, &tag, "Baker", &["B"], Some("1970-05-01"));
    let baker90 = patient(s, &tag, "Baker", &["C"], Some("1990-05-01"));
    let clark60 = patient(s, &tag, "Clark", &["D"], Some("1960-05-01"));
    let q = |v: &str| ordered_ids(&search(s, &format!("/Patient?{t}&_sort={v}")));
    assert_eq!(
        q("birthdate"),
        vec![
            clark60.clone(),
            baker70.clone(),
            adams80.clone(),
            baker90.clone()
        ]
    );
    assert_eq!(
        q("-birthdate"),
        vec![
            baker90.clone(),
            adams80.clone(),
            baker70.clone(),
            clark60.clone()
        ]
    );
    assert_eq!(
        q("family,-birthdate"),
        vec![
            adams80.clone(),
            baker90.clone(),
            baker70.clone(),
            clark60.clone()
        ]
    );
    assert_eq!(
        q("family,birthdate"),
        vec![
            adams80.clone(),
            baker70.clone(),
            baker90.clone(),
            clark60.clone()
        ]
    );
    assert_eq!(
        q("_lastUpdated"),
        vec![
            adams80.clone(),
            baker70.clone(),
            baker90.clone(),
            clark60.clone()
        ]
    );
    assert_eq!(
        q("-_lastUpdated"),
        vec![
            clark60.clone(),
            baker90.clone(),
            baker70.clone(),
            adams80.clone()
        ]
    );
    // Sorting holds across pages.
    let page1 = search(s, &format!("/Patient?{t}&_sort=-birthdate&_count=2"));
    assert_eq!(ordered_ids(&page1), vec![baker90, adams80]);
    let page2 = follow(s, &link(&page1, "next").expect("next link"));
    assert_eq!(ordered_ids(&page2), vec![baker70, clark60]);
}

// ------------------------------------------------------------------------ paging

fn paging_returns_every_match_once_even_with_concurrent_creates(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let originals: Vec<String> = (0..7)
        .map(|i| patient(s, &tag, &format!("Page{i}"), &["P"], None))
        .collect();
    let first = search(s, &format!("/Patient?{t}&_count=3"));
    assert_eq!(first["total"], 7);
    assert_eq!(ordered_ids(&first).len(), 3);
    assert!(link(&first, "previous").is_none());
    assert!(link(&first, "first").is_none());
    // Creation order without _sort.
    assert_eq!(ordered_ids(&first), originals[..3].to_vec());
    let mut seen = ordered_ids(&first);
    let mut next = link(&first, "next");
    let mut pages = 1;
    let mut created = Vec::new();
    while let Some(url) = next {
        // New matches arrive between page fetches.
        created.push(patient(s, &tag, "Late", &["L"], None));
        let page = follow(s, &url);
        pages += 1;
        assert!(pages < 20, "too many pages");
        assert!(
            link(&page, "previous").is_some(),
            "page {pages} has no previous link"
        );
        // `first` leads back to the first page of the same search.
        let back = follow(s, &link(&page, "first").expect("first link"));
        assert_eq!(ordered_ids(&back)[0], originals[0]);
        assert!(ordered_ids(&page).len() <= 3);
        seen.extend(ordered_ids(&page));
        next = link(&page, "next");
    }
    let mut unique_seen = seen.clone();
    unique_seen.sort();
    unique_seen.dedup();
    assert_eq!(unique_seen.len(), seen.len(), "an id came twice: {seen:?}");
    for id in &originals {
        assert!(seen.contains(id), "{id} was never returned: {seen:?}");
    }
    for id in &seen {
        assert!(
            originals.contains(id) || created.contains(id),
            "{id} is not a match"
        );
    }
    assert!(pages >= 3);
    // _count=0: the total only.
    let count_only = search(s, &format!("/Patient?{t}&_count=0"));
    assert_eq!(
        count_only["total"].as_u64().unwrap() as usize,
        7 + created.len()
    );
    assert!(count_only["entry"].as_array().is_none_or(|e| e.is_empty()));
}

fn paging_links_keep_the_criteria_and_go_both_ways(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let linked: Vec<String> = (0..5)
        .map(|i| patient(s, &tag, "Linked", &[&format!("L{i}")], None))
        .collect();
    let _others: Vec<String> = (0..3)
        .map(|_| patient(s, &tag, "Other", &["O"], None))
        .collect();
    // A POST search pages through GET links that keep the criteria.
    let body = format!("{t}&family=linked&_count=2");
    let r = s
        .req("POST", "/Patient/_search")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .json(&body);
    let page1 = check_searchset(&r, &body);
    assert_eq!(page1["total"], 5);
    assert_eq!(ordered_ids(&page1), linked[..2].to_vec());
    let page2 = follow(s, &link(&page1, "next").expect("next link"));
    assert_eq!(ordered_ids(&page2), linked[2..4].to_vec());
    assert_eq!(page2["total"], 5);
    let page3 = follow(s, &link(&page2, "next").expect("next link"));
    assert_eq!(ordered_ids(&page3), linked[4..].to_vec());
    assert!(link(&page3, "next").is_none());
    // previous goes back.
    let back = follow(s, &link(&page3, "previous").expect("previous link"));
    assert_eq!(ordered_ids(&back), linked[2..4].to_vec());
    let back = follow(s, &link(&back, "previous").expect("previous link"));
    assert_eq!(ordered_ids(&back), linked[..2].to_vec());
    // The self link of a page reproduces it.
    let again = follow(s, &link(&page2, "self").expect("self link"));
    assert_eq!(ordered_ids(&again), linked[2..4].to_vec());
}

fn paging_is_not_disturbed_by_updates_between_pages(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let all: Vec<String> = (0..6)
        .map(|i| patient(s, &tag, "Stable", &[&format!("S{i}")], None))
        .collect();
    let page1 = search(s, &format!("/Patient?{t}&_count=2"));
    assert_eq!(ordered_ids(&page1), all[..2].to_vec());
    // Updating a resource of page 1 does not move it: the default order is creation order.
    for id in &all[..2] {
        let mut p = s.get(&format!("/Patient/{id}")).json();
        p["active"] = json!(true);
        let r = s.req("PUT", &format!("/Patient/{id}")).json(&p.to_string());
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let mut seen = ordered_ids(&page1);
    let mut next = link(&page1, "next");
    while let Some(url) = next {
        let page = follow(s, &url);
        seen.extend(ordered_ids(&page));
        next = link(&page, "next");
    }
    assert_eq!(seen, all);
}

fn default_page_size_is_at_least_twenty(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let all: BTreeSet<String> = (0..22)
        .map(|i| {
            create(
                s,
                &tag,
                "Basic",
                json!({"code": {"text": format!("item {i}")}}),
            )
        })
        .collect();
    let first = search(s, &format!("/Basic?{t}"));
    assert_eq!(first["total"], 22);
    let n = ordered_ids(&first).len();
    assert!(n >= 20, "default page size {n} < 20");
    let mut seen: Vec<String> = ordered_ids(&first);
    if n < 22 {
        let second = follow(s, &link(&first, "next").expect("next link"));
        seen.extend(ordered_ids(&second));
    }
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), all);
    assert_eq!(seen.len(), 22);
}

// ------------------------------------------------- _total / _summary / _elements

fn total_and_summary_count(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    for i in 0..3 {
        patient(s, &tag, &format!("Count{i}"), &["C"], None);
    }
    let counted = search(s, &format!("/Patient?{t}&_summary=count"));
    assert_eq!(counted["total"], 3);
    assert!(counted["entry"].as_array().is_none_or(|e| e.is_empty()));
    let no_total = search(s, &format!("/Patient?{t}&_total=none"));
    assert!(no_total.get("total").is_none(), "{no_total}");
    assert_eq!(ids(&no_total).len(), 3);
    let accurate = search(s, &format!("/Patient?{t}&_total=accurate&_count=1"));
    assert_eq!(accurate["total"], 3);
    assert_eq!(ids(&accurate).len(), 1);
}

/// Without `_total=accurate`, matches are counted exactly up to `--total-threshold`;
/// above it the total is PostgreSQL's estimate (never below what was counted) or, on
/// SQLite, left out. `_total=accurate` and `_summary=count` always count, and paging
/// does not depend on the total.
fn totals_are_exact_up_to_the_threshold(b: Backend) {
    let s = Server::start_with(b, &["--total-threshold", "5"]);
    let tag = new_tag();
    let t = tag_param(&tag);
    for i in 0..4 {
        patient(&s, &tag, &format!("Few{i}"), &["F"], None);
    }
    for mode in ["", "&_total=estimate"] {
        let few = search(&s, &format!("/Patient?{t}&_count=2{mode}"));
        assert_eq!(few["total"], 4, "{few}");
    }
    for i in 4..9 {
        patient(&s, &tag, &format!("Few{i}"), &["F"], None);
    }
    for mode in ["", "&_total=estimate"] {
        let many = search(&s, &format!("/Patient?{t}&_count=2{mode}"));
        match b {
            Backend::Sqlite => assert!(many.get("total").is_none(), "{many}"),
            Backend::Postgres => {
                let n = many["total"].as_i64().unwrap_or_default();
                assert!(n >= 6, "an estimate above the threshold: {many}");
            }
        }
    }
    let accurate = search(&s, &format!("/Patient?{t}&_count=2&_total=accurate"));
    assert_eq!(accurate["total"], 9);
    let counted = search(&s, &format!("/Patient?{t}&_summary=count"));
    assert_eq!(counted["total"], 9);
    let mut page = search(&s, &format!("/Patient?{t}&_count=2"));
    let mut seen = ids(&page);
    while let Some(next) = link(&page, "next") {
        page = follow(&s, &next);
        seen.extend(ids(&page));
    }
    assert_eq!(seen.len(), 9, "{seen:?}");
}

/// Follows `relation` links from `bundle` to the end; the pages' ids in link order.
fn pages_along(s: &Server, bundle: Value, relation: &str) -> Vec<Vec<String>> {
    let mut pages = vec![ordered_ids(&bundle)];
    let mut page = bundle;
    while let Some(url) = link(&page, relation) {
        page = follow(s, &url);
        pages.push(ordered_ids(&page));
        assert!(pages.len() < 50, "paging does not end");
    }
    pages
}

/// A page that walks one token value's index entries in `rid` order (fhir-store
/// `search/walk.rs`) gives the pages a search always gave: creation order, each
/// resource once even with the value twice, deleted ones left out, updated ones in
/// their place, the other criteria applied, and the same pages read backwards.
fn walked_token_pages_in_order_forwards_and_backwards(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let code = unique("walk");
    let coding = json!({"system": "http://example.org/codes", "code": code});
    let body = |i: usize| {
        let codings = if i == 2 {
            json!([coding, coding])
        } else {
            json!([coding])
        };
        let status = if i.is_multiple_of(3) {
            "preliminary"
        } else {
            "final"
        };
        json!({"status": status, "code": {"coding": codings}})
    };
    let ids: Vec<String> = (0..9)
        .map(|i| create(s, &tag, "Observation", body(i)))
        .collect();
    let gone = s.req("DELETE", &format!("/Observation/{}", ids[4])).send();
    assert!(gone.status == 200 || gone.status == 204, "{}", gone.body);
    let mut changed = body(5);
    changed["resourceType"] = json!("Observation");
    changed["id"] = json!(ids[5]);
    changed["meta"] = json!({"tag": [{"system": TAG_SYSTEM, "code": tag}]});
    changed["issued"] = json!("2021-01-01T00:00:00Z");
    let r = s
        .req("PUT", &format!("/Observation/{}", ids[5]))
        .json(&changed.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    let live: Vec<usize> = (0..9).filter(|i| *i != 4).collect();
    for (filter, finals_only) in [("", false), ("&status=final", true)] {
        let expected: Vec<String> = live
            .iter()
            .filter(|i| !finals_only || **i % 3 != 0)
            .map(|i| ids[*i].clone())
            .collect();
        let q = format!("/Observation?code=http://example.org/codes|{code}{filter}&{t}&_count=2&_total=accurate");
        let first = search(s, &q);
        assert_eq!(first["total"], expected.len(), "{q}");
        let forwards = pages_along(s, first, "next");
        assert_eq!(forwards.concat(), expected, "{q}");
        let mut last = search(s, &q);
        while let Some(url) = link(&last, "next") {
            last = follow(s, &url);
        }
        let mut backwards = pages_along(s, last, "previous");
        backwards.reverse();
        assert_eq!(backwards, forwards, "{q}");
    }
    // Counted from the index alone (the code is the only criterion): the deleted one is
    // not counted, the one with the code twice once.
    for total in ["_total=accurate", "_summary=count", "_count=1"] {
        let q = format!("/Observation?code=http://example.org/codes|{code}&{total}");
        assert_eq!(search(s, &q)["total"], 8, "{q}");
    }
}

fn summary_true_and_elements(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let id = create(
        s,
        &tag,
        "Patient",
        json!({"text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Peter Chalmers</div>"},
               "name": [{"family": "Chalmers", "given": ["Peter"]}],
               "gender": "male", "birthDate": "1974-12-25",
               "contact": [{"name": {"family": "Chalmers", "given": ["Ellen"]}}]}),
    );
    let summary = search(s, &format!("/Patient?{t}&_summary=true"));
    assert_eq!(ids(&summary), vec![id.clone()]);
    let r = &summary["entry"][0]["resource"];
    assert_eq!(r["name"][0]["family"], "Chalmers");
    assert_eq!(r["birthDate"], "1974-12-25");
    assert!(r.get("contact").is_none(), "{r}");
    assert!(r.get("text").is_none(), "{r}");
    let tags = r["meta"]["tag"].as_array().unwrap();
    assert!(tags.iter().any(|t| t["code"] == "SUBSETTED"), "{r}");
    let elements = search(s, &format!("/Patient?{t}&_elements=name"));
    assert_eq!(ids(&elements), vec![id.clone()]);
    let r = &elements["entry"][0]["resource"];
    assert_eq!(r["resourceType"], "Patient");
    assert_eq!(r["id"], id.as_str());
    assert_eq!(r["name"][0]["given"][0], "Peter");
    for absent in ["birthDate", "gender", "contact", "text"] {
        assert!(r.get(absent).is_none(), "{absent} in {r}");
    }
    let tags = r["meta"]["tag"].as_array().unwrap();
    assert!(tags.iter().any(|t| t["code"] == "SUBSETTED"), "{r}");
}

// ------------------------------------------------------------------------ errors

fn unknown_parameters_are_reported_or_rejected_when_strict(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let id = patient(s, &tag, "Lenient", &["L"], None);
    let bundle = search(s, &format!("/Patient?{t}&shoe-size=42"));
    assert_eq!(ids(&bundle), vec![id.clone()]);
    assert_eq!(bundle["total"], 1);
    let outcomes = entries_with_mode(&bundle, "outcome");
    assert_eq!(outcomes.len(), 1, "{bundle}");
    assert_eq!(outcomes[0]["resource"]["resourceType"], "OperationOutcome");
    assert!(
        outcomes[0]["resource"].to_string().contains("shoe-size"),
        "{}",
        outcomes[0]
    );
    // The self link states the parameters used, without the ignored one.
    let self_link = link(&bundle, "self").unwrap();
    assert!(!self_link.contains("shoe-size"), "{self_link}");
    let r = s
        .req("GET", &format!("/Patient?{t}&shoe-size=42"))
        .header("Prefer", "handling=strict")
        .send();
    r.outcome(400);
    let r = s
        .req("GET", &format!("/Patient?{t}"))
        .header("Prefer", "handling=strict")
        .send();
    assert_eq!(ids(&check_searchset(&r, "strict")), vec![id]);
}

fn invalid_values_get_400_naming_the_parameter(b: Backend) {
    let s = shared(b);
    let cases = [
        ("/Patient?birthdate=notadate", "birthdate"),
        ("/Patient?birthdate=1974-13", "birthdate"),
        ("/Patient?_count=abc", "_count"),
        ("/Observation?value-quantity=gtx", "value-quantity"),
        ("/Patient?gender:foo=male", "gender:foo"),
        ("/Patient?_sort=shoe-size", "_sort"),
    ];
    for (path, param) in cases {
        let r = s.get(path);
        r.outcome(400);
        assert_eq!(r.issue_expression(), param, "{path}: {}", r.body);
    }
    // Invalid values are errors under lenient handling too (not silently ignored).
    let r = s
        .req("GET", "/Patient?birthdate=notadate")
        .header("Prefer", "handling=lenient")
        .send();
    r.outcome(400);
    // The same through POST.
    let r = s
        .req("POST", "/Patient/_search")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .json("birthdate=notadate");
    r.outcome(400);
    assert_eq!(r.issue_expression(), "birthdate");
    // Unknown resource types.
    s.get("/Patientx?name=x").outcome(404);
    s.get("/Patientx").outcome(404);
}

// ------------------------------------------------------ deletes and updates

fn deleted_never_match_and_updates_match_by_current_version(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let old_name = unique("Oldname");
    let new_name = unique("Newname");
    let renamed = patient(s, &tag, &old_name, &["R"], Some("1960-01-01"));
    let deleted = patient(s, &tag, "Deleted", &["D"], Some("1960-01-01"));
    let kept = patient(s, &tag, "Kept", &["K"], Some("1960-01-01"));
    let mut body = s.get(&format!("/Patient/{renamed}")).json();
    body["name"][0]["family"] = json!(new_name);
    body["birthDate"] = json!("1961-01-01");
    let r = s
        .req("PUT", &format!("/Patient/{renamed}"))
        .json(&body.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.req("DELETE", &format!("/Patient/{deleted}")).send();
    assert!(r.status == 200 || r.status == 204, "{}", r.body);
    let q = |v: &str| ids(&search(s, &format!("/Patient?{t}&{v}")));
    assert!(q(&format!("family={old_name}")).is_empty());
    assert_eq!(q(&format!("family={new_name}")), vec![renamed.clone()]);
    assert_eq!(q("birthdate=1960"), vec![kept.clone()]);
    assert_eq!(q("birthdate=1961"), vec![renamed.clone()]);
    assert!(q("family=deleted").is_empty());
    assert!(q(&format!("_id={deleted}")).is_empty());
    let all = search(s, &format!("/Patient?{t}"));
    assert_eq!(ids(&all), set(&[&renamed, &kept]));
    assert_eq!(all["total"], 2);
    // The returned resource is the current version.
    let e = entries_with_mode(&all, "match")
        .into_iter()
        .find(|e| e["resource"]["id"] == renamed.as_str())
        .unwrap();
    assert_eq!(e["resource"]["meta"]["versionId"], "2");
}

// ----------------------------------------------------- system and compartment

fn system_search_with_type_and_id(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let pat = patient(s, &tag, "System", &["Sam"], None);
    let obs = observation(s, &tag, &pat, "8867-4", "Heart rate");
    let org = create(s, &tag, "Organization", json!({"name": unique("Sys Org")}));
    let bundle = search(s, &format!("?_type=Patient,Observation&{t}"));
    assert_eq!(
        typed_ids(&bundle),
        tset(&[("Patient", &pat), ("Observation", &obs)])
    );
    assert_eq!(bundle["total"], 2);
    for e in entries_with_mode(&bundle, "match") {
        let rt = e["resource"]["resourceType"].as_str().unwrap();
        let id = e["resource"]["id"].as_str().unwrap();
        assert_eq!(e["fullUrl"], s.url(&format!("/{rt}/{id}")));
    }
    let all = search(s, &format!("?{t}"));
    assert_eq!(
        typed_ids(&all),
        tset(&[
            ("Patient", &pat),
            ("Observation", &obs),
            ("Organization", &org)
        ])
    );
    let by_id = search(s, &format!("?_id={obs}"));
    assert_eq!(typed_ids(&by_id), tset(&[("Observation", &obs)]));
    let by_tag_and_type = search(s, &format!("?_type=Organization&{t}"));
    assert_eq!(typed_ids(&by_tag_and_type), tset(&[("Organization", &org)]));
}

fn include_iterate_reports_when_it_stops(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    // A chain of 25 Observations, each pointing at the next through hasMember.
    let mut next: Option<String> = None;
    let mut first = String::new();
    for n in 0..25 {
        let mut body = json!({"status": "final", "code": {"text": format!("link {n}")}});
        if let Some(id) = &next {
            body["hasMember"] = json!([{"reference": format!("Observation/{id}")}]);
        }
        first = create(s, &tag, "Observation", body);
        next = Some(first.clone());
    }
    let q = format!("/Observation?_id={first}&_include:iterate=Observation:has-member");
    let bundle = search(s, &q);
    assert_eq!(
        included(&bundle).len(),
        21,
        "20 iterations after the first include"
    );
    let outcome = entries_with_mode(&bundle, "outcome");
    assert_eq!(outcome.len(), 1, "{bundle}");
    assert_eq!(outcome[0]["resource"]["issue"][0]["code"], "incomplete");
}

fn oversized_searches_get_400_not_500(b: Backend) {
    let s = shared(b);
    let ids: Vec<String> = (0..5000).map(|i| format!("id{i}")).collect();
    let r = s
        .req("POST", "/Patient/_search")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .json(&format!("_id={}", ids.join(",")));
    r.outcome(400);
    assert_eq!(r.issue_expression(), "_id");
    let names: Vec<String> = (0..300).map(|i| format!("n{i}")).collect();
    let r = s
        .req("POST", "/Patient/_search")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .json(&format!("name={}", names.join(",")));
    r.outcome(400);
    let many: Vec<String> = (0..150).map(|i| format!("name=n{i}")).collect();
    s.req("POST", "/Patient/_search")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .json(&many.join("&"))
        .outcome(400);
    let r = s.get("/Patient?_sort=family&_page=o18446744073709551615");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(ordered_ids(&r.json()).is_empty());
}

fn token_in_not_in_and_of_type(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let vs = "http://hl7.org/fhir/ValueSet/administrative-gender";
    let male = create(s, &tag, "Patient", json!({"gender": "male"}));
    let odd = create(
        s,
        &tag,
        "Patient",
        json!({"gender": "male", "_gender": {"id": "x"}}),
    );
    let none = create(s, &tag, "Patient", json!({"active": true}));
    let mut both = vec![male.clone(), odd.clone()];
    both.sort();
    assert_eq!(
        ids(&search(s, &format!("/Patient?{t}&gender:in={vs}"))),
        both
    );
    assert_eq!(
        ids(&search(s, &format!("/Patient?{t}&gender:not-in={vs}"))),
        vec![none.clone()]
    );
    s.get(&format!(
        "/Patient?{t}&gender:in=http://example.org/unknown-vs"
    ))
    .outcome(400);
    let mr = "http://terminology.hl7.org/CodeSystem/v2-0203";
    let typed = create(
        s,
        &tag,
        "Patient",
        json!({"identifier": [{"type": {"coding": [{"system": mr, "code": "MR"}]}, "system": "urn:h", "value": "778"}]}),
    );
    create(
        s,
        &tag,
        "Patient",
        json!({"identifier": [{"system": "urn:h", "value": "778"}]}),
    );
    assert_eq!(
        ids(&search(
            s,
            &format!("/Patient?{t}&identifier:of-type={mr}|MR|778")
        )),
        vec![typed]
    );
    s.get(&format!("/Patient?{t}&identifier:of-type=778"))
        .outcome(400);
}

fn patient_compartment_search(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let peter = patient(s, &tag, "Chalmers", &["Peter"], None);
    let anne = patient(s, &tag, "Windsor", &["Anne"], None);
    let hr = observation(s, &tag, &peter, "8867-4", "Heart rate");
    let sbp = observation(s, &tag, &peter, "8480-6", "Systolic blood pressure");
    let _anne_hr = observation(s, &tag, &anne, "8867-4", "Heart rate");
    // In Peter's compartment through `performer` (a self-reported reading about Anne).
    let performed = create(
        s,
        &tag,
        "Observation",
        json!({"status": "final", "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
               "subject": {"reference": format!("Patient/{anne}")},
               "performer": [{"reference": format!("Patient/{peter}")}]}),
    );
    let all = search(s, &format!("/Patient/{peter}/Observation"));
    assert_eq!(ids(&all), set(&[&hr, &sbp, &performed]));
    assert_eq!(all["total"], 3);
    let hr_only = search(s, &format!("/Patient/{peter}/Observation?code=8867-4&{t}"));
    assert_eq!(ids(&hr_only), set(&[&hr, &performed]));
    let none = search(s, &format!("/Patient/{peter}/Condition"));
    assert!(ids(&none).is_empty());
    assert_eq!(none["total"], 0);
}

fn token_above_and_below_follow_the_code_system_hierarchy(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let act = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
    let enc_of = |code: &str, system: &str| {
        create(
            s,
            &tag,
            "Encounter",
            json!({"status": "finished", "class": {"system": system, "code": code}}),
        )
    };
    let amb = enc_of("AMB", act);
    let emer = enc_of("EMER", act);
    let group = enc_of("_ActEncounterCode", act);
    enc_of("AMB", "http://example.org/other-system");
    // In v3-ActCode, AMB and EMER are below _ActEncounterCode, which is below
    // _ActCareProvisionCode.
    assert_eq!(
        ids(&search(
            s,
            &format!("/Encounter?{t}&class:below={act}|_ActEncounterCode")
        )),
        set(&[&amb, &emer, &group])
    );
    assert_eq!(
        ids(&search(s, &format!("/Encounter?{t}&class:below={act}|AMB"))),
        vec![amb.clone()]
    );
    assert_eq!(
        ids(&search(s, &format!("/Encounter?{t}&class:above={act}|AMB"))),
        set(&[&amb, &group])
    );
    assert_eq!(
        ids(&search(
            s,
            &format!("/Encounter?{t}&class:above={act}|_ActCareProvisionCode")
        )),
        Vec::<String>::new()
    );
    // Without a system, or for a system whose hierarchy is not known: 400 saying so.
    let r = s.get(&format!("/Encounter?{t}&class:below=AMB"));
    r.outcome(400);
    assert_eq!(r.issue_expression(), "class:below");
    let r = s.get(&format!(
        "/Encounter?{t}&class:below=http://example.org/other-system|AMB"
    ));
    r.outcome(400);
    assert!(r.body.contains("hierarchy"), "{}", r.body);
}

fn sorted_paging_stays_correct_while_data_changes(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let names = ["Bravo", "Delta", "Foxtrot", "Hotel", "Juliet"];
    let ids: Vec<String> = names
        .iter()
        .map(|n| patient(s, &tag, n, &["S"], None))
        .collect();
    let nameless = create(s, &tag, "Patient", json!({"active": true}));
    let q = format!("/Patient?{t}&_sort=family&_count=2");
    let page1 = search(s, &q);
    assert_eq!(ordered_ids(&page1), ids[..2].to_vec());
    // A new match sorting before the next page, and a match of page 1 deleted, do not
    // shift what the next links return (a position would repeat or skip one).
    let early = patient(s, &tag, "Alpha", &["S"], None);
    let r = s.req("DELETE", &format!("/Patient/{}", ids[0])).send();
    assert!(r.status < 300, "{}", r.body);
    let page2 = follow(s, &link(&page1, "next").expect("next"));
    assert_eq!(ordered_ids(&page2), ids[2..4].to_vec());
    let page3 = follow(s, &link(&page2, "next").expect("next"));
    // Resources without the sort value come last.
    assert_eq!(ordered_ids(&page3), vec![ids[4].clone(), nameless.clone()]);
    assert!(link(&page3, "next").is_none());
    // Back from page 3: the two before Juliet as the data is now.
    let back = follow(s, &link(&page3, "previous").expect("previous"));
    assert_eq!(ordered_ids(&back), ids[2..4].to_vec());
    let back = follow(s, &link(&back, "previous").expect("previous"));
    assert_eq!(ordered_ids(&back), vec![early.clone(), ids[1].clone()]);
    assert!(link(&back, "previous").is_none());
    // Descending, by a date, with equal values: each match exactly once.
    let d = |i: usize| {
        create(
            s,
            &tag,
            "Observation",
            json!({"status": "final", "code": {"text": "x"}, "effectiveDateTime": format!("2020-01-0{}", 1 + i % 3)}),
        )
    };
    let obs: Vec<String> = (0..7).map(d).collect();
    let mut seen = Vec::new();
    let mut next = Some(format!("{}/Observation?{t}&_sort=-date&_count=3", s.base));
    while let Some(url) = next {
        let page = follow(s, &url);
        seen.extend(ordered_ids(&page));
        next = link(&page, "next");
    }
    let mut sorted_seen = seen.clone();
    sorted_seen.sort();
    let mut all = obs.clone();
    all.sort();
    assert_eq!(sorted_seen, all, "each once: {seen:?}");
    // A _page value of another search is refused.
    let r = s.get(&format!(
        "/Patient?{t}&_sort=family&_page={}",
        enc(r#"k["i1","i2"]"#)
    ));
    r.outcome(400);
}

/// Follows `next` links from `path`; the ids of every page, in order.
fn all_pages(s: &Server, path: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut next = Some(format!("{}{path}", s.base));
    let mut pages = 0;
    while let Some(url) = next {
        let page = follow(s, &url);
        seen.extend(ordered_ids(&page));
        next = link(&page, "next");
        pages += 1;
        assert!(pages < 50, "too many pages");
    }
    seen
}

fn sorted_paging_by_meta_ids_and_quantities(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let values = [5.25, 1.5, 5.25, 0.1, 7.0, 1.5, 2.75];
    let obs: Vec<String> = values
        .iter()
        .map(|v| {
            create(
                s,
                &tag,
                "Observation",
                json!({"status": "final", "code": {"text": "q"},
                       "valueQuantity": {"value": v, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}),
            )
        })
        .collect();
    // Quantities, equal values kept in creation order, through pages of two.
    let mut by_value: Vec<(f64, usize)> = values.iter().copied().zip(0..).collect();
    by_value.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let want: Vec<String> = by_value.iter().map(|(_, i)| obs[*i].clone()).collect();
    assert_eq!(
        all_pages(
            s,
            &format!("/Observation?{t}&_sort=value-quantity&_count=2")
        ),
        want
    );
    // Newest first, and by id.
    let mut newest = obs.clone();
    newest.reverse();
    assert_eq!(
        all_pages(s, &format!("/Observation?{t}&_sort=-_lastUpdated&_count=3")),
        newest
    );
    let mut by_id = obs.clone();
    by_id.sort();
    assert_eq!(
        all_pages(s, &format!("/Observation?{t}&_sort=_id&_count=2")),
        by_id
    );
}

both_backends!(
    totals_are_exact_up_to_the_threshold,
    walked_token_pages_in_order_forwards_and_backwards,
    sorted_paging_by_meta_ids_and_quantities,
    sorted_paging_stays_correct_while_data_changes,
    token_above_and_below_follow_the_code_system_hierarchy,
    searchset_bundle_has_total_self_link_full_urls_and_match_mode,
    post_search_with_form_body_matches_get,
    string_search_is_starts_with_case_and_accent_insensitive,
    string_exact_and_contains_modifiers,
    string_values_with_sql_and_fhir_special_characters,
    token_code_system_and_no_system_forms,
    token_not_and_text_modifiers,
    birthdate_matches_by_precision,
    date_prefixes_on_birthdate,
    observation_date_with_date_times_and_periods,
    number_search_on_risk_assessment_probability,
    quantity_search_with_units_and_prefixes,
    reference_search_forms,
    uri_exact_and_below,
    id_and_last_updated,
    tag_and_profile,
    composite_code_value_quantity,
    missing_modifier,
    comma_is_or_and_repetition_is_and,
    forward_chaining_one_and_two_levels,
    reverse_chaining_with_has,
    include_adds_referenced_resources_in_include_mode,
    revinclude_and_include_iterate,
    sort_by_one_and_several_keys,
    paging_returns_every_match_once_even_with_concurrent_creates,
    paging_links_keep_the_criteria_and_go_both_ways,
    paging_is_not_disturbed_by_updates_between_pages,
    default_page_size_is_at_least_twenty,
    total_and_summary_count,
    summary_true_and_elements,
    unknown_parameters_are_reported_or_rejected_when_strict,
    invalid_values_get_400_naming_the_parameter,
    deleted_never_match_and_updates_match_by_current_version,
    system_search_with_type_and_id,
    patient_compartment_search,
    token_in_not_in_and_of_type,
    oversized_searches_get_400_not_500,
    include_iterate_reports_when_it_stops,
);
