//! Black-box tests of search beyond one type's values, on SQLite and PostgreSQL:
//! errors (unknown and invalid parameters, oversized searches), deleted and updated
//! resources, system and compartment searches, `:in`/`:not-in`/`:of-type`, `:above`/
//! `:below` over a code system's hierarchy, and sorted paging while data changes.
//! Resources are tagged per test as in `search_api.rs`.

mod common;

use common::search::*;
use common::{shared, unique, Backend, Server};
use serde_json::json;

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
    sorted_paging_by_meta_ids_and_quantities,
    sorted_paging_stays_correct_while_data_changes,
    token_above_and_below_follow_the_code_system_hierarchy,
    unknown_parameters_are_reported_or_rejected_when_strict,
    invalid_values_get_400_naming_the_parameter,
    deleted_never_match_and_updates_match_by_current_version,
    system_search_with_type_and_id,
    patient_compartment_search,
    token_in_not_in_and_of_type,
    oversized_searches_get_400_not_500,
    include_iterate_reports_when_it_stops,
);
