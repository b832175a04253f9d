//! The search plans that stop after a page (fhir-store `search/walk.rs`,
//! `search/sort_walk.rs` and `search/sort_prefix.rs`) give exactly the pages of the
//! generic plan, which finds every match and orders them: two servers on one database — one that walks the sort index
//! whenever it can (`--sort-walk-above 0`), one that never does — page through the same
//! searches, over data with ties, several dates per resource, resources without a date,
//! deleted and updated resources, and writes between pages.

mod common;

use common::{unique, Backend, Server};
use serde_json::{json, Value};

/// Every page of `query` on `s`, following `next` links: the ids in order.
fn pages(s: &Server, query: &str) -> Vec<Vec<String>> {
    follow(s, query, "next").0
}

/// The pages from `query` on, following the links of `relation`, and the path of
/// the last one.
fn follow(s: &Server, query: &str, relation: &str) -> (Vec<Vec<String>>, String) {
    let mut out = Vec::new();
    let mut path = query.to_string();
    let mut r = s.get(query);
    loop {
        assert_eq!(r.status, 200, "{query}: {}", r.body);
        let b = r.json();
        let ids = b["entry"]
            .as_array()
            .map(|es| {
                es.iter()
                    .filter(|e| e["search"]["mode"] == "match")
                    .map(|e| e["resource"]["id"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default();
        out.push(ids);
        let next = b["link"].as_array().and_then(|ls| {
            ls.iter()
                .find(|l| l["relation"] == relation)
                .and_then(|l| l["url"].as_str().map(str::to_string))
        });
        let Some(next) = next else { break };
        assert!(out.len() < 100, "{query}: paging does not end");
        path = next
            .strip_prefix(&s.base)
            .expect("a link under the base")
            .to_string();
        r = s.get(&path);
    }
    (out, path)
}

/// Observations with effective dates that tie, periods, several dates, and none.
fn load(s: &Server, tag: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..40 {
        let mut o = json!({
            "resourceType": "Observation",
            "status": if i % 4 == 0 { "preliminary" } else { "final" },
            "code": {"coding": [{"system": "http://example.org/plans", "code": tag}]},
            "meta": {"tag": [{"system": "http://example.org/plans", "code": tag}]},
        });
        match i % 5 {
            0 => {} // no date: sorted last
            1 => o["effectiveDateTime"] = json!(format!("2020-01-{:02}", 1 + i % 3)), // ties
            2 => {
                o["effectivePeriod"] = json!({"start": format!("2019-0{}-01", 1 + i % 9),
                                              "end": format!("2021-0{}-15", 1 + i % 7)})
            }
            3 => o["effectiveDateTime"] = json!(format!("2018-{:02}-10T08:00:00Z", 1 + i % 12)),
            _ => o["effectiveDateTime"] = json!("2020-01-02"), // ties with case 1
        }
        ids.push(s.create_id("Observation", &o.to_string()));
    }
    ids
}

fn walked_and_generic_pages_agree(b: Backend) {
    let generic = Server::start_with(b, &["--sort-walk-above", "1000000000"]);
    let walking = generic.start_beside(&["--sort-walk-above", "0"]);
    let tag = unique("plans");
    let ids = load(&generic, &tag);
    assert_eq!(
        generic
            .req("DELETE", &format!("/Observation/{}", ids[7]))
            .send()
            .status
            / 100,
        2
    );
    let updated = json!({"resourceType": "Observation", "id": ids[8], "status": "final",
        "code": {"coding": [{"system": "http://example.org/plans", "code": tag}]},
        "meta": {"tag": [{"system": "http://example.org/plans", "code": tag}]},
        "effectiveDateTime": "2017-06-01"});
    let r = generic
        .req("PUT", &format!("/Observation/{}", ids[8]))
        .json(&updated.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    let code = format!("code=http://example.org/plans|{tag}");
    for query in [
        format!("/Observation?{code}&_sort=-date&_count=3"),
        format!("/Observation?{code}&_sort=date&_count=4"),
        format!("/Observation?{code}&status=final&_sort=-date&_count=5"),
        format!("/Observation?_tag=http://example.org/plans|{tag}&_sort=date&_count=7"),
        format!("/Observation?{code}&date=ge2019-06-01&_sort=-date&_count=2"),
        format!("/Observation?{code}&_sort=-_lastUpdated&_count=6"),
        format!("/Observation?{code}&status=final&_sort=_lastUpdated&_count=4"),
        // One criterion: whether to walk is counted from its index entries.
        "/Observation?date=ge2019-06-01&_sort=-date&_count=2".to_string(),
        "/Observation?date=ge2019-06-01&_sort=date&_count=3".to_string(),
    ] {
        let expected = pages(&generic, &query);
        let n = expected.concat().len();
        assert!((10..=39).contains(&n), "{query}: {expected:?}");
        assert_eq!(pages(&walking, &query), expected, "{query}");
        for s in [&generic, &walking] {
            assert_eq!(s.get(&query).json()["total"], n, "{query}");
        }
    }
}

/// A page boundary stays put when resources are written between pages: the next page
/// goes on after the boundary in both plans.
fn walked_pages_continue_after_writes(b: Backend) {
    let generic = Server::start_with(b, &["--sort-walk-above", "1000000000"]);
    let walking = generic.start_beside(&["--sort-walk-above", "0"]);
    let tag = unique("plans");
    load(&generic, &tag);
    let query = format!("/Observation?code=http://example.org/plans|{tag}&_sort=-date&_count=6");
    let first: Value = walking.get(&query).json();
    let next = first["link"]
        .as_array()
        .and_then(|ls| ls.iter().find(|l| l["relation"] == "next"))
        .and_then(|l| l["url"].as_str())
        .expect("a next link")
        .to_string();
    // A newer Observation sorts first: it is not on the next page.
    let newer = json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://example.org/plans", "code": tag}]},
        "effectiveDateTime": "2030-01-01"});
    let newer_id = generic.create_id("Observation", &newer.to_string());
    let path = next.strip_prefix(&walking.base).expect("under the base");
    let rest_walked = pages(&walking, path);
    let rest_generic = pages(&generic, path);
    assert_eq!(rest_walked, rest_generic);
    assert!(!rest_walked.concat().contains(&newer_id));
}

/// Several values of the sort parameter per resource (an Immunization's reactions):
/// each resource comes once, at its earliest date ascending and its latest descending.
fn several_dates_per_resource_sort_alike(b: Backend) {
    let generic = Server::start_with(b, &["--sort-walk-above", "1000000000"]);
    let walking = generic.start_beside(&["--sort-walk-above", "0"]);
    let tag = unique("plans");
    for i in 0..24 {
        let reactions: Vec<Value> = (0..i % 4)
            .map(|k| json!({"date": format!("20{:02}-0{}-01", 10 + (i * 7 + k * 5) % 13, 1 + k)}))
            .collect();
        let mut imm = json!({"resourceType": "Immunization", "status": "completed",
            "vaccineCode": {"coding": [{"system": "http://example.org/plans", "code": tag}]},
            "patient": {"reference": "Patient/p"}, "occurrenceDateTime": "2020-01-01"});
        if !reactions.is_empty() {
            imm["reaction"] = Value::Array(reactions);
        }
        generic.create_id("Immunization", &imm.to_string());
    }
    for sort in ["reaction-date", "-reaction-date"] {
        let query = format!(
            "/Immunization?vaccine-code=http://example.org/plans|{tag}&_sort={sort}&_count=5"
        );
        let expected = pages(&generic, &query);
        assert_eq!(expected.concat().len(), 24, "{query}: {expected:?}");
        assert_eq!(pages(&walking, &query), expected, "{query}");
    }
}

/// `_has` takes one of two plans by how many referrers its inner criterion matches
/// (fhir-store `search/plan.rs`: from ten per resource of the searched type on, the
/// candidates are walked; below, the search starts from the referrers). Both give every target once, in order, with
/// the right total, page after page.
fn has_pages_are_right_with_either_plan(b: Backend) {
    let s = Server::start(b);
    let tag = unique("has");
    let patients: Vec<String> = (0..30)
        .map(|_| s.create_id("Patient", r#"{"resourceType":"Patient"}"#))
        .collect();
    // 1,050 Observations with the frequent code on patients 0..25; 5 with the rare
    // one; 40 with a third code, two on each of patients 5..25 (the search starts from
    // them, and pages through the 20 Patients it lists once).
    // 400 with a late code, searched before they exist: the plan decided then (start
    // from the few matching referrers) is kept a while (fhir-store
    // `plan::kept_decision`), and still pages right once they are many.
    let late = format!("/Patient?_has:Observation:subject:code=urn:{tag}|late&_count=4");
    assert_eq!(s.get(&late).json()["total"], 0);
    let mut expected_frequent = std::collections::BTreeSet::new();
    let mut expected_late = std::collections::BTreeSet::new();
    let mut entries = Vec::new();
    for i in 0..1495 {
        let (code, who) = match i {
            0..1050 => ("frequent", &patients[(i * 7) % 25]),
            1050..1055 => ("rare", &patients[27 + i % 3]),
            1055..1095 => ("some", &patients[5 + i % 20]),
            _ => ("late", &patients[(i * 3) % 20]),
        };
        match code {
            "frequent" => expected_frequent.insert(who.clone()),
            "late" => expected_late.insert(who.clone()),
            _ => false,
        };
        entries.push(
            json!({"resource": {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": format!("urn:{tag}"), "code": code}]},
            "subject": {"reference": format!("Patient/{who}")}},
            "request": {"method": "POST", "url": "Observation"}}),
        );
    }
    for chunk in entries.chunks(400) {
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": chunk});
        assert_eq!(s.req("POST", "").json(&bundle.to_string()).status, 200);
    }
    let in_order = |ids: &[String]| {
        let mut sorted: Vec<String> = patients
            .iter()
            .filter(|p| ids.contains(p))
            .cloned()
            .collect();
        sorted.dedup();
        sorted
    };
    for (code, expected) in [
        (
            "frequent",
            expected_frequent.into_iter().collect::<Vec<_>>(),
        ),
        ("rare", patients[27..30].to_vec()),
        ("some", patients[5..25].to_vec()),
        ("late", expected_late.into_iter().collect()),
    ] {
        let query = format!("/Patient?_has:Observation:subject:code=urn:{tag}|{code}&_count=4");
        let got = pages(&s, &query).concat();
        let mut want = expected.clone();
        want.sort_by_key(|id| patients.iter().position(|p| p == id));
        assert_eq!(got, want, "{code}: every target once, in creation order");
        assert_eq!(in_order(&got), got);
        let (forwards, last) = follow(&s, &query, "next");
        let (mut backwards, _) = follow(&s, &last, "previous");
        backwards.reverse();
        assert_eq!(backwards, forwards, "{code}: backwards, page by page");
        let first = s.get(&query).json();
        assert_eq!(
            first["total"],
            json!(expected.len()),
            "{code}: default total"
        );
        let total = s.get(&format!("{query}&_total=accurate")).json()["total"].clone();
        assert_eq!(total, json!(expected.len()), "{code}");
    }
}

/// A chain takes one of two plans by how many resources refer to its matching targets
/// (fhir-store `search/chain.rs`: from 5,000 on, the candidates are walked and the
/// chain checked per candidate; below, the search starts from the targets). Both give
/// every match once, in order, with exact totals counted from the reference index,
/// deleted referrers and targets left out.
fn chain_pages_are_right_with_either_plan(b: Backend) {
    let s = Server::start(b);
    let tag = unique("chain");
    let patient = |family: &str| {
        let p = json!({"resourceType": "Patient", "name": [{"family": family}]});
        s.create_id("Patient", &p.to_string())
    };
    let shared: Vec<String> = (0..20).map(|_| patient(&format!("Shared{tag}"))).collect();
    let rare: Vec<String> = (0..3).map(|_| patient(&format!("Rare{tag}"))).collect();
    let gone = patient(&format!("Rare{tag}"));
    let observation = |subject: &str, performers: &[&String]| {
        let performer: Vec<Value> = performers
            .iter()
            .map(|p| json!({"reference": format!("Patient/{p}")}))
            .collect();
        let mut o = json!({"resourceType": "Observation", "status": "final",
            "code": {"text": "x"}, "subject": {"reference": format!("Patient/{subject}")}});
        if !performer.is_empty() {
            o["performer"] = Value::Array(performer);
        }
        json!({"resource": o, "request": {"method": "POST", "url": "Observation"}})
    };
    let mut entries: Vec<Value> = (0..5050)
        .map(|i| observation(&shared[(i * 7) % 20], &[]))
        .collect();
    // Rare: three Observations, one with its subject twice among its performers too.
    entries.push(observation(&rare[0], &[&rare[1], &rare[2]]));
    entries.push(observation(&rare[1], &[]));
    entries.push(observation(&rare[2], &[&rare[2]]));
    entries.push(observation(&gone, &[&gone]));
    let mut ids = Vec::new();
    for chunk in entries.chunks(1000) {
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": chunk});
        let r = s.req("POST", "").json(&bundle.to_string());
        assert_eq!(r.status, 200, "{}", r.body);
        for e in r.json()["entry"].as_array().expect("entries") {
            let location = e["response"]["location"].as_str().expect("location");
            ids.push(location.split('/').nth(1).expect("id").to_string());
        }
    }
    assert_eq!(
        s.req("DELETE", &format!("/Patient/{gone}")).send().status,
        204
    );
    let dropped = ids[17].clone();
    assert_eq!(
        s.req("DELETE", &format!("/Observation/{dropped}"))
            .send()
            .status,
        204
    );
    let frequent: Vec<String> = ids[..5050]
        .iter()
        .filter(|id| **id != dropped)
        .cloned()
        .collect();
    let cases = [
        (format!("subject:Patient.name=Shared{tag}"), frequent),
        (
            format!("subject:Patient.name=Rare{tag}"),
            ids[5050..5053].to_vec(),
        ),
        (
            format!("performer:Patient.name=Rare{tag}"),
            vec![ids[5050].clone(), ids[5052].clone()],
        ),
    ];
    for (criterion, want) in cases {
        let query = format!("/Observation?{criterion}&_count=700");
        let got = pages(&s, &query).concat();
        assert_eq!(got.len(), want.len(), "{criterion}: every match once");
        assert_eq!(got, want, "{criterion}: in creation order");
        let total = s.get(&format!("{query}&_total=accurate")).json()["total"].clone();
        assert_eq!(total, json!(want.len()), "{criterion}: exact total");
        let counted = s
            .get(&format!("/Observation?{criterion}&_summary=count"))
            .json();
        assert_eq!(
            counted["total"],
            json!(want.len()),
            "{criterion}: _summary=count"
        );
        if want.len() < 1000 {
            let page = s.get(&format!("/Observation?{criterion}&_count=1")).json();
            assert_eq!(
                page["total"],
                json!(want.len()),
                "{criterion}: default total"
            );
        }
    }
}

/// A chain that reaches few targets through its first link merges its page from each
/// target's referrers (fhir-store `search/chain.rs`, `per_target_page`): forwards and
/// backwards, with a referrer that names two of the targets, every match comes once,
/// in order; with a further criterion (the other plan) too.
fn chain_pages_merged_per_target(b: Backend) {
    let s = Server::start(b);
    let tag = unique("merge");
    let patient = |family: String| {
        let p = json!({"resourceType": "Patient", "name": [{"family": family}]});
        s.create_id("Patient", &p.to_string())
    };
    let named: Vec<String> = (0..3).map(|_| patient(format!("Merge{tag}"))).collect();
    let other = patient(format!("Other{tag}"));
    let (mut created, mut subjects, mut finals) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..30 {
        let subject = if i % 4 == 3 { &other } else { &named[i % 3] };
        let status = if i % 3 == 1 { "preliminary" } else { "final" };
        // Its subject and the next named Patient: some name one target twice.
        let performer: Vec<Value> = [subject, &named[(i + 1) % 3], &named[(i + 1) % 3]]
            .iter()
            .map(|p| json!({"reference": format!("Patient/{p}")}))
            .collect();
        let o = json!({"resourceType": "Observation", "status": status, "code": {"text": "x"},
            "subject": {"reference": format!("Patient/{subject}")}, "performer": performer});
        let id = s.create_id("Observation", &o.to_string());
        created.push(id.clone());
        if subject != &other {
            subjects.push(id.clone());
            if status == "final" {
                finals.push(id);
            }
        }
    }
    let cases = [
        (format!("subject:Patient.name=Merge{tag}"), subjects, 4),
        (
            format!("subject:Patient.name=Merge{tag}&status=final"),
            finals.clone(),
            4,
        ),
        (format!("performer:Patient.name=Merge{tag}"), created, 7),
        // The chain leads (a `:not` is checked after it): walked, not merged.
        (
            format!("subject:Patient.name=Merge{tag}&status:not=preliminary"),
            finals,
            3,
        ),
    ];
    for (criteria, want, count) in cases {
        let query = format!("/Observation?{criteria}&_count={count}");
        let (forwards, last) = follow(&s, &query, "next");
        assert_eq!(
            forwards.concat(),
            want,
            "{criteria}: each match once, in order"
        );
        assert!(forwards.len() > 2, "{criteria}: several pages");
        let (mut backwards, _) = follow(&s, &last, "previous");
        backwards.reverse();
        assert_eq!(backwards, forwards, "{criteria}: backwards, page by page");
        let total = s.get(&format!("{query}&_total=accurate")).json()["total"].clone();
        assert_eq!(total, json!(want.len()), "{criteria}: total");
    }
}

/// A chain to few targets with a further criterion reads the targets' referrers in
/// `rid` order a round at a time (fhir-store `search/chain.rs`, `walked_page`): with
/// 330 referrers whose matches are all late (the first round of 128 has none), every
/// match comes once, in order, forwards and backwards, and the totals are exact.
fn chain_with_criteria_walks_in_rounds(b: Backend) {
    let s = Server::start(b);
    let tag = unique("rounds");
    let named: Vec<String> = (0..2)
        .map(|_| {
            let p = json!({"resourceType": "Patient", "name": [{"family": format!("Round{tag}")}]});
            s.create_id("Patient", &p.to_string())
        })
        .collect();
    let entries: Vec<Value> = (0..330)
        .map(|i| {
            let year = if i >= 200 && i % 7 == 0 { 2024 } else { 2010 };
            json!({"request": {"method": "POST", "url": "Observation"},
                "resource": {"resourceType": "Observation", "status": "final",
                    "code": {"text": "x"}, "effectiveDateTime": format!("{year}-03-0{}", 1 + i % 9),
                    "subject": {"reference": format!("Patient/{}", named[i % 2])}}})
        })
        .collect();
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
    let r = s.req("POST", "/").json(&bundle.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    let created: Vec<String> = r.json()["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            let loc = e["response"]["location"].as_str().expect("a location");
            loc.split('/').nth(1).expect("an id").to_string()
        })
        .collect();
    let late: Vec<String> = (0..330)
        .filter(|i| *i >= 200 && i % 7 == 0)
        .map(|i| created[i].clone())
        .collect();
    let query = format!("/Observation?subject:Patient.name=Round{tag}&date=ge2020-01-01&_count=4");
    let (forwards, last) = follow(&s, &query, "next");
    assert_eq!(forwards.concat(), late, "each late match once, in order");
    let (mut backwards, _) = follow(&s, &last, "previous");
    backwards.reverse();
    assert_eq!(backwards, forwards, "backwards, page by page");
    let first = s.get(&query).json();
    assert_eq!(first["total"], json!(late.len()), "the default total");
    let none = format!("/Observation?subject:Patient.name=Round{tag}&date=ge2030-01-01");
    let empty = s.get(&none).json();
    assert_eq!(empty["total"], json!(0), "no match: {empty}");
    assert!(empty["entry"].is_null(), "no entries: {empty}");
}

/// Patients whose names, genders and birth dates tie, several names, and none; an
/// organization reference on some.
fn load_patients(s: &Server, tag: &str) -> Vec<String> {
    let families = ["Smith", "smith", "Jones", "Ávila", "Brown"];
    let givens = ["Ann", "Bob", "ann", "Cy"];
    let mut ids = Vec::new();
    for i in 0..36 {
        let mut p = json!({"resourceType": "Patient",
            "meta": {"tag": [{"system": "http://example.org/plans", "code": tag}]}});
        if i % 6 != 0 {
            let mut names = vec![json!({"family": families[i % 5], "given": [givens[i % 4]]})];
            if i % 7 == 0 {
                names.push(json!({"family": "Adams", "given": ["Zed"]}));
            }
            p["name"] = json!(names);
        }
        if i % 3 != 0 {
            p["gender"] = json!(["male", "female", "other"][i % 3]);
        }
        if i % 4 != 0 {
            p["birthDate"] = json!(format!("19{:02}-0{}-01", 50 + i % 5, 1 + i % 3));
        }
        if i % 5 == 1 {
            p["managingOrganization"] = json!({"reference": format!("Organization/o{}", i % 3)});
        }
        // A reference by identifier only: an index entry without a target id.
        if i % 5 == 3 {
            p["managingOrganization"] = json!({"identifier": {"system": "urn:x", "value": "v"}});
        }
        ids.push(s.create_id("Patient", &p.to_string()));
    }
    ids
}

/// Sorts whose first key is walked in its index (fhir-store `search/sort_prefix.rs`:
/// strings, tokens, dates with further keys, references), or whose pages inside one
/// first-key value walk the second key's, page exactly as the generic plan, with and
/// without criteria, over ties, several values per resource and resources without one,
/// after deletes and updates, and with writes between pages.
fn first_key_walks_agree(b: Backend) {
    let generic = Server::start_with(b, &["--sort-walk-above", "1000000000"]);
    let walking = generic.start_beside(&["--sort-walk-above", "0"]);
    // Every first-key range too wide to order alone: pages inside one first key walk
    // the second key, the others take the generic plan.
    let grouped = generic.start_beside(&["--sort-walk-above", "0", "--sort-range-at-most", "0"]);
    let tag = unique("prefix");
    let ids = load_patients(&generic, &tag);
    let r = generic
        .req("DELETE", &format!("/Patient/{}", ids[9]))
        .send();
    assert_eq!(r.status / 100, 2);
    let updated = json!({"resourceType": "Patient", "id": ids[10],
        "meta": {"tag": [{"system": "http://example.org/plans", "code": tag}]},
        "name": [{"family": "Aaron", "given": ["Al"]}]});
    let r = generic
        .req("PUT", &format!("/Patient/{}", ids[10]))
        .json(&updated.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    let t = format!("_tag=http://example.org/plans|{tag}");
    let queries = [
        "/Patient?_sort=family,given&_count=4".to_string(),
        "/Patient?_sort=-family,-given&_count=5".to_string(),
        "/Patient?_sort=given&_count=3".to_string(),
        format!("/Patient?{t}&_sort=family,given&_count=4"),
        format!("/Patient?{t}&_sort=-family,birthdate&_count=3"),
        format!("/Patient?{t}&_sort=gender,-birthdate&_count=4"),
        format!("/Patient?{t}&_sort=-birthdate,family&_count=5"),
        format!("/Patient?{t}&_sort=birthdate,-_id&_count=6"),
        format!("/Patient?{t}&_sort=organization,family&_count=4"),
        format!("/Patient?{t}&gender=male,female&_sort=name,-gender&_count=2"),
        // Pages inside one first key (every page of a gender, then of a family, walked
        // by its second key), with ties and missing values of the second key.
        format!("/Patient?{t}&_sort=gender,family,given&_count=3"),
        format!("/Patient?{t}&_sort=-gender,birthdate&_count=2"),
        format!("/Patient?{t}&gender=female,other&_sort=gender,-birthdate,_id&_count=2"),
        format!("/Patient?{t}&_sort=family,-birthdate&_count=2"),
        format!("/Patient?{t}&_sort=-family,organization&_count=2"),
    ];
    for query in &queries {
        let expected = pages(&generic, query);
        assert!(expected.concat().len() >= 10, "{query}: {expected:?}");
        assert_eq!(pages(&walking, query), expected, "{query}");
        assert_eq!(pages(&grouped, query), expected, "{query} (grouped)");
        // The count that chose the walk gives the default total; it is the same.
        let total = |s: &Server| s.get(query).json()["total"].clone();
        let want = total(&generic);
        assert!(want.as_u64().is_some_and(|n| n >= 10), "{query}: {want}");
        assert_eq!(total(&walking), want, "{query}: total");
        assert_eq!(total(&grouped), want, "{query}: total (grouped)");
    }
    // A name that sorts first, written between pages, is not on the next page.
    let query = format!("/Patient?{t}&_sort=family,given&_count=5");
    let first: Value = walking.get(&query).json();
    let next = first["link"]
        .as_array()
        .and_then(|ls| ls.iter().find(|l| l["relation"] == "next"))
        .and_then(|l| l["url"].as_str())
        .expect("a next link")
        .to_string();
    let early = json!({"resourceType": "Patient", "name": [{"family": "Aa"}],
        "meta": {"tag": [{"system": "http://example.org/plans", "code": tag}]}});
    let early_id = generic.create_id("Patient", &early.to_string());
    let path = next.strip_prefix(&walking.base).expect("under the base");
    let rest = pages(&walking, path);
    assert_eq!(rest, pages(&generic, path));
    assert!(!rest.concat().contains(&early_id));
}

/// A search by one criterion that most of its type matches (checked per resource walked
/// in `rid` order: fhir-store `search/frequent.rs`), one whose entries, read up to the
/// bound, hold too few resources to decide (driven by the criterion: a name matches by
/// family and by given) and one that few match (its matches listed) page as every
/// search does: creation order forwards and backwards, each match
/// once though its name matches twice, a deleted one left out, an updated one in its
/// place, the total exact up to the threshold and, above it, none or an estimate.
fn frequent_and_rare_values_page_alike(b: Backend) {
    let s = Server::start_with(b, &["--total-threshold", "8"]);
    let name = unique("Often").replace('-', "");
    let (mut often, mut rare) = (Vec::new(), Vec::new());
    for i in 0..14 {
        let is_rare = i % 6 == 2;
        let (born, family, given) = match is_rare {
            true => ("1950-01-01", format!("Rare{i}"), "Solo".to_string()),
            false => ("2001-01-01", format!("{name}{i}"), format!("{name}G")),
        };
        let p = json!({"resourceType": "Patient", "birthDate": born,
            "name": [{"family": family, "given": [given]}]});
        let id = s.create_id("Patient", &p.to_string());
        if is_rare { &mut rare } else { &mut often }.push(id);
    }
    let gone = often.remove(1);
    assert_eq!(
        s.req("DELETE", &format!("/Patient/{gone}")).send().status / 100,
        2
    );
    let kept = json!({"resourceType": "Patient", "id": often[4], "birthDate": "2002-02-02",
        "name": [{"family": format!("{name}Kept")}]});
    let r = s
        .req("PUT", &format!("/Patient/{}", often[4]))
        .json(&kept.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    // Statistics give the planner's estimate of the Patients (PostgreSQL; before them
    // it guesses far more), which decides that the frequent birth date is walked, as
    // it is on SQLite, which counts them.
    s.execute("ANALYZE");
    for (query, expected) in [
        (
            "/Patient?birthdate=ge2000-01-01&_count=2".to_string(),
            &often,
        ),
        (format!("/Patient?name={name}&_count=3"), &often),
        (
            "/Patient?birthdate=lt1960-01-01&_count=2".to_string(),
            &rare,
        ),
    ] {
        let forwards = pages(&s, &query);
        assert_eq!(&forwards.concat(), expected, "{query}: {forwards:?}");
        let (mut backwards, _) = follow(&s, &last_page(&s, &query), "previous");
        backwards.reverse();
        assert_eq!(backwards, forwards, "{query}: read backwards");
        let first = s.get(&query).json();
        match (expected.len() <= 8, b) {
            (true, _) => assert_eq!(first["total"], expected.len(), "{query}: {first}"),
            (false, Backend::Sqlite) => assert!(first.get("total").is_none(), "{query}"),
            (false, Backend::Postgres) => assert!(first["total"].as_u64() >= Some(9), "{query}"),
        }
        let accurate = s.get(&format!("{query}&_total=accurate")).json();
        assert_eq!(accurate["total"], expected.len(), "{query}");
    }
}

/// A search by one code walks that code's entries in statements its connection keeps
/// prepared; after five runs PostgreSQL plans such a statement once for any value.
/// Frequent, rare and absent codes, asked again and again in turns, with and without
/// the system, page and count as their resources say: a deleted one gone, an updated
/// one once.
fn one_code_pages_alike_again_and_again(b: Backend) {
    let s = Server::start(b);
    let (tag, rare) = (unique("plans"), unique("rare"));
    let mut frequent = load(&s, &tag);
    let gone = frequent.remove(7);
    assert_eq!(
        s.req("DELETE", &format!("/Observation/{gone}"))
            .send()
            .status
            / 100,
        2
    );
    let kept = json!({"resourceType": "Observation", "id": frequent[3], "status": "final",
        "code": {"coding": [{"system": "http://example.org/plans", "code": tag}]}});
    let r = s
        .req("PUT", &format!("/Observation/{}", frequent[3]))
        .json(&kept.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    let few: Vec<String> = (0..3)
        .map(|_| {
            let o = json!({"resourceType": "Observation", "status": "final",
                "code": {"coding": [{"system": "http://example.org/plans", "code": rare}]}});
            s.create_id("Observation", &o.to_string())
        })
        .collect();
    let system = "http://example.org/plans";
    for round in 0..4 {
        for (code, expected) in [
            (format!("{system}|{tag}"), &frequent),
            (tag.clone(), &frequent),
            (format!("{system}|{rare}"), &few),
            (format!("{system}|{}", unique("absent")), &Vec::new()),
        ] {
            let query = format!("/Observation?code={code}&_count=7");
            assert_eq!(
                &pages(&s, &query).concat(),
                expected,
                "round {round}: {query}"
            );
            for total in ["", "&_total=accurate"] {
                let b = s.get(&format!("{query}{total}")).json();
                assert_eq!(b["total"], expected.len(), "round {round}: {query}{total}");
            }
        }
    }
}

/// The path of the last page of `query`, following `next` links.
fn last_page(s: &Server, query: &str) -> String {
    follow(s, query, "next").1
}

both_backends!(
    first_key_walks_agree,
    chain_pages_are_right_with_either_plan,
    chain_pages_merged_per_target,
    chain_with_criteria_walks_in_rounds,
    has_pages_are_right_with_either_plan,
    walked_and_generic_pages_agree,
    walked_pages_continue_after_writes,
    several_dates_per_resource_sort_alike,
    frequent_and_rare_values_page_alike,
    one_code_pages_alike_again_and_again
);
