//! Black-box tests of the search parameters beyond the per-type ones: `_list` (a List's
//! entries, and the functional lists such as `$current-allergies`), and full-text
//! `_text` (narrative) and `_content` (all text) with stemming, accents, phrases and OR.

mod common;

use std::collections::BTreeSet;

use common::{shared, unique, Backend, Server};
use serde_json::{json, Value};

fn ids(s: &Server, path: &str) -> BTreeSet<String> {
    let r = s.get(path);
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.json()["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|e| e["search"]["mode"] == "match")
        .filter_map(|e| e["resource"]["id"].as_str().map(str::to_string))
        .collect()
}

fn list_selects_the_entries_of_a_list(b: Backend) {
    let s = shared(b);
    let family = unique("Listed");
    let p: Vec<String> = (0..3)
        .map(|_| {
            s.create_id(
                "Patient",
                &json!({"resourceType": "Patient", "name": [{"family": family}]}).to_string(),
            )
        })
        .collect();
    let list = s.create_id(
        "List",
        &json!({"resourceType": "List", "status": "current", "mode": "working",
            "entry": [{"item": {"reference": format!("Patient/{}", p[0])}},
                      {"item": {"reference": format!("Patient/{}", p[2])}}]})
        .to_string(),
    );
    assert_eq!(
        ids(s, &format!("/Patient?_list={list}")),
        BTreeSet::from([p[0].clone(), p[2].clone()])
    );
    // With other criteria, and on a type the list does not hold.
    assert_eq!(
        ids(
            s,
            &format!("/Patient?_list={list}&family={family}&_id={}", p[2])
        ),
        BTreeSet::from([p[2].clone()])
    );
    assert!(ids(s, &format!("/Observation?_list={list}")).is_empty());
    assert!(ids(s, "/Patient?_list=no-such-list").is_empty());
    s.get("/Patient?_list=not%20an%20id").outcome(400);
    s.get(&format!("/Patient?_list:missing={list}"))
        .outcome(400);
}

fn functional_lists_select_current_entries(b: Backend) {
    let s = shared(b);
    let patient = s.create_id("Patient", r#"{"resourceType":"Patient"}"#);
    let allergy = |status: &str| {
        s.create_id(
            "AllergyIntolerance",
            &json!({"resourceType": "AllergyIntolerance", "patient": {"reference": format!("Patient/{patient}")},
                "code": {"text": "peanut"},
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": status}]}})
            .to_string(),
        )
    };
    let active = allergy("active");
    allergy("resolved");
    let current = ids(
        s,
        &format!("/Patient/{patient}/AllergyIntolerance?_list=$current-allergies"),
    );
    assert_eq!(current, BTreeSet::from([active]));
    let r = s.get("/Patient?_list=$current-allergies");
    let oo: Value = r.outcome(400);
    assert!(oo.to_string().contains("AllergyIntolerance"), "{oo}");
    s.get("/Condition?_list=$current-everything").outcome(400);
}

fn observation(s: &Server, marker: &str, narrative: &str, code: &str) -> String {
    s.create_id(
        "Observation",
        &json!({"resourceType": "Observation", "status": "final", "code": {"text": code},
            "text": {"status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>{marker}: {narrative}</p></div>")}})
        .to_string(),
    )
}

fn full_text_searches_narrative_and_content(b: Backend) {
    let s = shared(b);
    let marker = unique("mark").replace('-', "");
    let headache = observation(
        s,
        &marker,
        "Patient reports <b>severe</b> headaches",
        "Migraine",
    );
    let arm = observation(
        s,
        &marker,
        "Broken arm after a fall at the Café",
        "Fracture",
    );
    let q = |p: &str, v: &str| ids(s, &format!("/Observation?{p}={marker}%20{v}"));
    // Stemming (headaches ~ headache), case and accents folded.
    assert_eq!(q("_text", "headache"), BTreeSet::from([headache.clone()]));
    assert_eq!(q("_text", "CAF%C3%89"), BTreeSet::from([arm.clone()]));
    assert_eq!(q("_text", "cafe"), BTreeSet::from([arm.clone()]));
    // _text is the narrative only; _content is all the text.
    assert!(q("_text", "migraine").is_empty());
    assert_eq!(
        q("_content", "migraine"),
        BTreeSet::from([headache.clone()])
    );
    // Phrases keep their order; OR (and commas) give alternatives.
    assert_eq!(
        q("_content", "%22severe%20headaches%22"),
        BTreeSet::from([headache.clone()])
    );
    assert!(q("_content", "%22headaches%20severe%22").is_empty());
    let both = BTreeSet::from([headache.clone(), arm.clone()]);
    assert_eq!(
        ids(
            s,
            &format!("/Observation?_text=headache%20OR%20fracture%20OR%20arm&_content={marker}")
        ),
        both
    );
    assert_eq!(
        ids(
            s,
            &format!("/Observation?_text=headache,arm&_content={marker}")
        ),
        both
    );
    // The index follows updates and deletes in the same transaction.
    let changed = json!({"resourceType": "Observation", "id": headache, "status": "final", "code": {"text": "Migraine"},
        "text": {"status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{marker}: resolved</div>")}});
    assert_eq!(
        s.req("PUT", &format!("/Observation/{headache}"))
            .json(&changed.to_string())
            .status,
        200
    );
    assert!(q("_text", "headache").is_empty());
    assert_eq!(q("_text", "resolved"), BTreeSet::from([headache.clone()]));
    s.req("DELETE", &format!("/Observation/{arm}")).send();
    assert!(q("_text", "arm").is_empty());
    // Bad requests.
    s.get("/Observation?_text:exact=x").outcome(400);
    s.get("/Observation?_content=%2C%20OR").outcome(400);
}

both_backends!(
    full_text_searches_narrative_and_content,
    list_selects_the_entries_of_a_list,
    functional_lists_select_current_entries,
);
