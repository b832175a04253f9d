//! Black-box tests of the search API (search.html of FHIR R4) against a real server
//! process, on SQLite and on PostgreSQL.
//!
//! Every test creates its own resources, all carrying a `meta.tag` unique to the test
//! (system [`TAG_SYSTEM`]), and every search is restricted by `_tag` so that tests can
//! share one server per backend and still assert the exact set of ids returned.

mod common;

use common::search::*;
use common::{shared, unique, Backend, Server};
use serde_json::{json, Value};

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
    // ge / le: gt / lt, or within the search value's range; a period reaching over
    // the value's start (ge) or end (le) is neither.
    assert_eq!(q("ge2020-04-01"), set(&[&year, &later, &open]));
    assert_eq!(
        q("ge2020-03-15"),
        set(&[&instant, &march, &year, &later, &open])
    );
    assert_eq!(q("le2020-03-01"), vec![year.clone()]);
    assert_eq!(q("le2020-03-31"), set(&[&instant, &march, &year]));
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

/// A Period whose end comes before its start, which a server without validation takes
/// (and per-1 may not catch when the two differ in precision), is found at the instant
/// it starts, by every prefix alike.
fn inverted_period_is_found_at_its_start(b: Backend) {
    let server = Server::start_with(b, &["--validation", "off"]);
    let s = &server;
    let tag = new_tag();
    let t = tag_param(&tag);
    let pat = patient(s, &tag, "Inverted", &["Ivo"], None);
    // Starts 2020-03-02T04:30Z; its end, the day 2020-03-01 (UTC), is over before that.
    let inverted = create(
        s,
        &tag,
        "Observation",
        json!({"status": "final", "code": {"text": "Note"},
               "subject": {"reference": format!("Patient/{pat}")},
               "effectivePeriod": {"start": "2020-03-01T23:30:00-05:00", "end": "2020-03-01"}}),
    );
    let q = |v: &str| ids(&search(s, &format!("/Observation?{t}&date={v}")));
    for found in [
        "2020-03-02",
        "ge2020-03-02",
        "le2020-03-02",
        "2020-03",
        "gt2020-03-01",
    ] {
        assert_eq!(q(found), vec![inverted.clone()], "date={found}");
    }
    for missed in [
        "2020-03-01",
        "le2020-03-01",
        "ge2020-03-03",
        "lt2020-03-01",
        "sa2020-03-02",
    ] {
        assert!(q(missed).is_empty(), "date={missed}");
    }
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

both_backends!(
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
    inverted_period_is_found_at_its_start,
    number_search_on_risk_assessment_probability,
    quantity_search_with_units_and_prefixes,
    reference_search_forms,
    uri_exact_and_below,
    id_and_last_updated,
    tag_and_profile,
    composite_code_value_quantity,
    missing_modifier,
    comma_is_or_and_repetition_is_and,
);
