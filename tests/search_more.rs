//! Black-box tests of the search parameters beyond the per-type ones: `_list` (a List's
//! entries, and the functional lists such as `$current-allergies`), and full-text
//! `_text` (narrative) and `_content` (all text) with stemming, accents, phrases and OR,
//! `_filter` (the examples of search_filter.html, and its logic), and Location `near`.

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

fn filter_follows_search_filter_html(b: Backend) {
    let s = shared(b);
    let tag = unique("filter");
    let meta = json!({"tag": [{"system": "urn:filter", "code": tag}]});
    let patient = |given: &str, family: &str, born: &str| {
        s.create_id(
            "Patient",
            &json!({"resourceType": "Patient", "meta": meta, "birthDate": born,
                "name": [{"given": [given], "family": family}]})
            .to_string(),
        )
    };
    let peter = patient("Peter", "Smith", "2015-01-01");
    let petra = patient("Petra", "Jones", "2010-05-05");
    let anne = patient("Anne", "Peterson", "2016-03-03");
    let john = patient("John", "Doe", "2017-07-07");
    let scope = format!("_tag=urn:filter|{tag}");
    let f = |t: &str, filter: &str| {
        let q: String = url_encode(filter);
        ids(s, &format!("/{t}?{scope}&_filter={q}"))
    };
    let set = |xs: &[&String]| xs.iter().map(|x| x.to_string()).collect::<BTreeSet<_>>();
    // The page's examples.
    assert_eq!(
        f("Patient", r#"name co "pet""#),
        set(&[&peter, &petra, &anne])
    );
    assert_eq!(
        f("Patient", r#"given eq "peter" and birthdate ge 2014-10-10"#),
        set(&[&peter])
    );
    let obs = |code: &str, subject: &str| {
        s.create_id(
            "Observation",
            &json!({"resourceType": "Observation", "meta": meta, "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "subject": {"reference": format!("Patient/{subject}")}})
            .to_string(),
        )
    };
    let o1 = obs("1234-5", &peter);
    let o2 = obs("9999-9", &john);
    let o3 = obs("9999-9", &anne);
    assert_eq!(
        f("Observation", "code eq http://loinc.org|1234-5"),
        set(&[&o1])
    );
    assert_eq!(
        f("Observation", r#"subject.name co "pet""#),
        set(&[&o1, &o3])
    );
    for related in [
        r#"related[type eq "has-component"].target pr true"#,
        "related[type eq has-component].target re Observation/4",
    ] {
        let r = s.get(&format!("/Observation?_filter={}", url_encode(related)));
        let oo = r.outcome(400);
        assert!(oo.to_string().contains("parts of a parameter"), "{oo}");
    }
    // ew: the end of the string, case- and accent-insensitive.
    assert_eq!(f("Patient", "family ew SON"), set(&[&anne]));
    assert_eq!(f("Patient", "name ew ra"), set(&[&petra]));
    // Logic: or, not, parentheses, ne, pr, comparisons.
    assert_eq!(
        f("Patient", "given eq john or family eq jones"),
        set(&[&john, &petra])
    );
    assert_eq!(f("Patient", r#"not(name co "pet")"#), set(&[&john]));
    assert_eq!(
        f(
            "Patient",
            "(given sw pe or given eq anne) and birthdate lt 2015-06-01"
        ),
        set(&[&peter, &petra])
    );
    assert_eq!(
        f("Patient", "family ne smith and birthdate le 2016-03-03"),
        set(&[&petra, &anne])
    );
    assert_eq!(
        f("Patient", "birthdate pr true"),
        set(&[&peter, &petra, &anne, &john])
    );
    assert!(f("Patient", "gender pr true").is_empty());
    assert_eq!(
        f("Observation", &format!("subject re Patient/{john}")),
        set(&[&o2])
    );
    // Errors say what is wrong.
    for (bad, says) in [
        (r#"name eq "open"#, "not closed"),
        ("name foo x", "not a filter operator"),
        ("birthdate ew 2010", "ew compares strings"),
        ("nosuch eq x", "nosuch"),
        ("(name eq x", "not closed"),
        ("name eq", "ends where a value"),
        ("birthdate co 2010", "contains"),
    ] {
        let r = s.get(&format!("/Patient?_filter={}", url_encode(bad)));
        let oo = r.outcome(400);
        assert!(oo.to_string().contains(says), "{bad}: {oo}");
    }
}

fn url_encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn near_finds_locations_within_a_distance(b: Backend) {
    let s = shared(b);
    let tag = unique("near");
    let place = |name: &str, lat: f64, lon: f64| {
        s.create_id(
            "Location",
            &json!({"resourceType": "Location", "name": name,
                "meta": {"tag": [{"system": "urn:near", "code": tag}]},
                "position": {"latitude": lat, "longitude": lon}})
            .to_string(),
        )
    };
    let ann_arbor = place("Ann Arbor", 42.2808, -83.7430);
    let detroit = place("Detroit", 42.3314, -83.0458);
    let chicago = place("Chicago", 41.8781, -87.6298);
    let near = |v: &str| ids(s, &format!("/Location?_tag=urn:near|{tag}&near={v}"));
    let set = |xs: &[&String]| xs.iter().map(|x| x.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(near("42.2808|-83.7430|10|km"), set(&[&ann_arbor]));
    assert_eq!(
        near("42.2808|-83.7430"),
        set(&[&ann_arbor]),
        "10 km by default"
    );
    // Detroit is about 58 km from Ann Arbor, Chicago about 380 km.
    assert_eq!(near("42.2808|-83.7430|50"), set(&[&ann_arbor]));
    assert_eq!(near("42.2808|-83.7430|65|km"), set(&[&ann_arbor, &detroit]));
    assert_eq!(near("42.2808|-83.7430|40|mi"), set(&[&ann_arbor, &detroit]));
    assert_eq!(
        near("42.2808|-83.7430|400000|m"),
        set(&[&ann_arbor, &detroit, &chicago])
    );
    // Closest first, from wherever the point is; pages keep that order.
    let ordered = |v: &str, count: usize| -> Vec<String> {
        let mut out = Vec::new();
        let mut url = format!("/Location?_tag=urn:near|{tag}&near={v}&_count={count}");
        loop {
            let b = s.get(&url).json();
            out.extend(
                b["entry"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| e["resource"]["id"].as_str().unwrap().to_string()),
            );
            match b["link"]
                .as_array()
                .and_then(|l| l.iter().find(|l| l["relation"] == "next"))
            {
                Some(next) => {
                    url = next["url"]
                        .as_str()
                        .unwrap()
                        .strip_prefix(&s.base)
                        .unwrap()
                        .to_string()
                }
                None => return out,
            }
        }
    };
    assert_eq!(
        ordered("41.8781|-87.6298|400|km", 10),
        [chicago.clone(), ann_arbor.clone(), detroit.clone()]
    );
    assert_eq!(
        ordered("42.3314|-83.0458|400|km", 1),
        [detroit.clone(), ann_arbor.clone(), chicago.clone()]
    );
    s.get("/Location?near=91|0|1|km").outcome(400);
    s.get("/Location?near=42|-83|ten").outcome(400);
    s.get("/Location?near=42|-83|1|parsec").outcome(400);
}

both_backends!(
    near_finds_locations_within_a_distance,
    filter_follows_search_filter_html,
    full_text_searches_narrative_and_content,
    list_selects_the_entries_of_a_list,
    functional_lists_select_current_entries,
);
