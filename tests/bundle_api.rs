//! Black-box tests of batch and transaction Bundles (bundle.html, http.html#transaction),
//! on SQLite and PostgreSQL.

mod common;

use std::sync::Arc;

use common::{shared, unique, Backend, Server};
use serde_json::{json, Value};

fn post_bundle(s: &Server, bundle: &Value) -> common::Resp {
    s.req("POST", "").json(&bundle.to_string())
}

fn count(s: &Server, query: &str) -> i64 {
    s.get(&format!("{query}&_summary=count")).json()["total"]
        .as_i64()
        .unwrap()
}

fn tx(entries: Vec<Value>) -> Value {
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

fn patient_entry(full_url: &str, mrn: &str) -> Value {
    json!({"fullUrl": full_url,
        "resource": {"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": mrn}], "name": [{"family": "Bundle"}]},
        "request": {"method": "POST", "url": "Patient"}})
}

fn observation_entry(subject: &str, code: &str) -> Value {
    json!({"resource": {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": subject},
            "extension": [{"url": "http://example.org/also", "valueReference": {"reference": subject}}]},
        "request": {"method": "POST", "url": "Observation"}})
}

fn transaction_resolves_urn_uuid_references_everywhere(b: Backend) {
    let s = shared(b);
    let mrn = unique("tx");
    let urn = format!("urn:uuid:{}", uuid_like(&mrn));
    let r = post_bundle(
        s,
        &tx(vec![
            observation_entry(&urn, "8867-4"),
            patient_entry(&urn, &mrn),
        ]),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["type"], "transaction-response");
    // Answers follow the request order; POSTs are 201 with a location.
    let obs = &body["entry"][0];
    let pat = &body["entry"][1];
    assert_eq!(obs["response"]["status"], "201 Created");
    assert_eq!(pat["response"]["status"], "201 Created");
    let pat_loc = pat["response"]["location"].as_str().unwrap();
    let pat_ref = pat_loc.split("/_history").next().unwrap();
    let obs_loc = obs["response"]["location"].as_str().unwrap();
    let stored = s
        .get(&format!("/{}", obs_loc.split("/_history").next().unwrap()))
        .json();
    assert_eq!(stored["subject"]["reference"], pat_ref);
    assert_eq!(
        stored["extension"][0]["valueReference"]["reference"],
        pat_ref
    );
    assert!(pat["fullUrl"].as_str().unwrap().ends_with(pat_ref));
}

fn uuid_like(seed: &str) -> String {
    let h = seed
        .bytes()
        .fold(0u64, |a, c| a.wrapping_mul(31).wrapping_add(c as u64));
    format!(
        "{:08x}-0000-4000-8000-{:012x}",
        h as u32,
        h & 0xffff_ffff_ffff
    )
}

fn failing_entry_rolls_back_everything(b: Backend) {
    let s = shared(b);
    let mrn = unique("rb");
    let urn = format!("urn:uuid:{}", uuid_like(&mrn));
    let before = count(s, &format!("/Patient?identifier=urn:mrn|{mrn}"));
    let bad = json!({"resource": {"resourceType": "Observation", "status": "not-a-status-but-valid-code", "code": {"text": "x"}, "valueQuantity": {"value": "oops"}},
        "request": {"method": "POST", "url": "Observation"}});
    let r = post_bundle(s, &tx(vec![patient_entry(&urn, &mrn), bad]));
    let oo = r.outcome(400);
    assert!(
        oo["issue"][0]["expression"][0]
            .as_str()
            .unwrap()
            .starts_with("Bundle.entry[1]"),
        "{oo}"
    );
    assert_eq!(
        count(s, &format!("/Patient?identifier=urn:mrn|{mrn}")),
        before,
        "nothing of a failed transaction is stored"
    );
    // A failure found while running (a stale ifMatch) rolls back earlier writes too.
    let id = s.create_id("Patient", r#"{"resourceType":"Patient"}"#);
    let r = post_bundle(
        s,
        &tx(vec![
            patient_entry(&urn, &mrn),
            json!({"resource": {"resourceType": "Patient", "id": id, "active": true}, "request": {"method": "PUT", "url": format!("Patient/{id}"), "ifMatch": "W/\"7\""}}),
        ]),
    );
    let oo = r.outcome(412);
    assert!(
        oo["issue"][0]["expression"][0]
            .as_str()
            .unwrap()
            .starts_with("Bundle.entry[1]"),
        "{oo}"
    );
    assert_eq!(
        count(s, &format!("/Patient?identifier=urn:mrn|{mrn}")),
        before
    );
}

fn if_none_exist_and_conditional_references(b: Backend) {
    let s = shared(b);
    let mrn = unique("ine");
    let existing = s.create_id(
        "Patient",
        &format!(
            r#"{{"resourceType":"Patient","identifier":[{{"system":"urn:mrn","value":"{mrn}"}}]}}"#
        ),
    );
    let urn = format!("urn:uuid:{}", uuid_like(&mrn));
    let mut p = patient_entry(&urn, &mrn);
    p["request"]["ifNoneExist"] = json!(format!("identifier=urn:mrn|{mrn}"));
    let r = post_bundle(
        s,
        &tx(vec![
            p,
            observation_entry(&urn, "1-1"),
            observation_entry(&format!("Patient?identifier=urn:mrn|{mrn}"), "2-2"),
        ]),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["entry"][0]["response"]["status"], "200 OK");
    for i in [1, 2] {
        let loc = body["entry"][i]["response"]["location"].as_str().unwrap();
        let obs = s
            .get(&format!("/{}", loc.split("/_history").next().unwrap()))
            .json();
        assert_eq!(obs["subject"]["reference"], format!("Patient/{existing}"));
    }
    assert_eq!(count(s, &format!("/Patient?identifier=urn:mrn|{mrn}")), 1);
    // Ambiguous and unmatched conditional references fail the transaction.
    s.create_id(
        "Patient",
        &format!(
            r#"{{"resourceType":"Patient","identifier":[{{"system":"urn:mrn","value":"{mrn}"}}]}}"#
        ),
    );
    post_bundle(
        s,
        &tx(vec![observation_entry(
            &format!("Patient?identifier=urn:mrn|{mrn}"),
            "3-3",
        )]),
    )
    .outcome(412);
    post_bundle(
        s,
        &tx(vec![observation_entry(
            "Patient?identifier=urn:mrn|nobody-at-all",
            "3-3",
        )]),
    )
    .outcome(404);
    // The first entry (in request order) whose reference finds nothing is named.
    let oo = post_bundle(
        s,
        &tx(vec![
            patient_entry(&urn, &unique("other")),
            observation_entry("Patient?identifier=urn:mrn|nobody-z", "4-4"),
            observation_entry("Patient?identifier=urn:mrn|nobody-a", "5-5"),
        ]),
    )
    .outcome(404);
    assert_eq!(oo["issue"][0]["expression"][0], "Bundle.entry[1]", "{oo}");
    let text = oo["issue"][0]["details"]["text"].as_str().unwrap();
    assert!(text.contains("nobody-z"), "{oo}");
}

fn bad_bundles_get_4xx_naming_the_entry(b: Backend) {
    let s = shared(b);
    post_bundle(s, &json!({"resourceType": "Patient"})).outcome(400);
    post_bundle(s, &json!({"resourceType": "Bundle", "type": "collection"})).outcome(400);
    let r = post_bundle(
        s,
        &tx(vec![json!({"resource": {"resourceType": "Patient"}})]),
    );
    r.outcome(400);
    assert_eq!(r.issue_expression(), "Bundle.entry[0]");
    let dup = patient_entry(
        "urn:uuid:5b3c9f0e-0000-4000-8000-000000000001",
        &unique("dup"),
    );
    let r = post_bundle(s, &tx(vec![dup.clone(), dup]));
    r.outcome(400);
    assert_eq!(r.issue_expression(), "Bundle.entry[1].fullUrl");
    let r = post_bundle(
        s,
        &tx(vec![observation_entry(
            "urn:uuid:00000000-0000-4000-8000-00000000dead",
            "1-1",
        )]),
    );
    r.outcome(400);
    assert!(r.issue_expression().starts_with("Bundle.entry[0]"));
    let put = |id: &str| json!({"resource": {"resourceType": "Patient", "id": id}, "request": {"method": "PUT", "url": format!("Patient/{id}")}});
    let twice = unique("twice");
    post_bundle(s, &tx(vec![put(&twice), put(&twice)])).outcome(400);
    let r = post_bundle(
        s,
        &tx(vec![
            json!({"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Observation"}}),
        ]),
    );
    r.outcome(400);
    assert!(
        r.issue_expression().starts_with("Bundle.entry[0].resource"),
        "{}",
        r.body
    );
    post_bundle(
        s,
        &tx(vec![
            json!({"request": {"method": "FETCH", "url": "Patient"}}),
        ]),
    )
    .outcome(400);
}

fn processing_order_delete_post_put_get(b: Backend) {
    let s = shared(b);
    let gone = s.create_id("Patient", r#"{"resourceType":"Patient"}"#);
    let kept = s.create_id("Patient", r#"{"resourceType":"Patient"}"#);
    let entries = vec![
        json!({"request": {"method": "GET", "url": format!("Patient/{kept}")}}),
        json!({"resource": {"resourceType": "Patient", "id": kept, "active": true}, "request": {"method": "PUT", "url": format!("Patient/{kept}")}}),
        json!({"request": {"method": "DELETE", "url": format!("Patient/{gone}")}}),
    ];
    let r = post_bundle(s, &tx(entries));
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    // GET runs last, so it sees the PUT.
    assert_eq!(body["entry"][0]["resource"]["active"], true);
    assert_eq!(body["entry"][1]["response"]["status"], "200 OK");
    assert_eq!(body["entry"][2]["response"]["status"], "204 No Content");
    s.get(&format!("/Patient/{gone}")).outcome(410);
}

fn patch_entries_carry_a_json_patch_binary(b: Backend) {
    let s = shared(b);
    let id = s.create_id("Patient", r#"{"resourceType":"Patient","active":false}"#);
    // base64 of [{"op":"replace","path":"/active","value":true}]
    let data = "W3sib3AiOiJyZXBsYWNlIiwicGF0aCI6Ii9hY3RpdmUiLCJ2YWx1ZSI6dHJ1ZX1d";
    let entry = json!({"resource": {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": data},
        "request": {"method": "PATCH", "url": format!("Patient/{id}")}});
    let r = post_bundle(s, &tx(vec![entry]));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s.get(&format!("/Patient/{id}")).json()["active"], true);
    // The patched resource is validated as a single PATCH's is: gender 'robot' is not
    // in the required value set, so the transaction fails and nothing changes.
    // base64 of [{"op":"add","path":"/gender","value":"robot"}]
    let data = "W3sib3AiOiJhZGQiLCJwYXRoIjoiL2dlbmRlciIsInZhbHVlIjoicm9ib3QifV0=";
    let mut bad = json!({"resource": {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": data},
        "request": {"method": "PATCH", "url": format!("Patient/{id}")}});
    let r = post_bundle(s, &tx(vec![bad.clone()]));
    assert!(matches!(r.status, 400 | 422), "{} {}", r.status, r.body);
    assert!(r.body.contains("gender"), "{}", r.body);
    assert!(s
        .get(&format!("/Patient/{id}"))
        .json()
        .get("gender")
        .is_none());
    bad["request"]["url"] = json!(format!("Patient/{id}"));
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [bad]});
    let r = post_bundle(s, &batch);
    assert_eq!(r.status, 200, "{}", r.body);
    let status = r.json()["entry"][0]["response"]["status"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(status.starts_with("4"), "{status}");
}

fn batch_entries_are_independent(b: Backend) {
    let s = shared(b);
    let mrn = unique("batch");
    let ok = json!({"resource": {"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": mrn}]}, "request": {"method": "POST", "url": "Patient"}});
    let missing = json!({"request": {"method": "GET", "url": "Patient/does-not-exist"}});
    let invalid = json!({"resource": {"resourceType": "Patient", "birthDate": "nope"}, "request": {"method": "POST", "url": "Patient"}});
    let r = post_bundle(
        s,
        &json!({"resourceType": "Bundle", "type": "batch", "entry": [ok, missing, invalid]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["type"], "batch-response");
    assert_eq!(body["entry"][0]["response"]["status"], "201 Created");
    assert!(body["entry"][0]["response"]["etag"].is_string());
    assert_eq!(body["entry"][1]["response"]["status"], "404 Not Found");
    assert_eq!(
        body["entry"][1]["response"]["outcome"]["resourceType"],
        "OperationOutcome"
    );
    assert_eq!(body["entry"][2]["response"]["status"], "400 Bad Request");
    assert_eq!(
        count(s, &format!("/Patient?identifier=urn:mrn|{mrn}")),
        1,
        "the good entry is kept"
    );
}

fn twenty_clients_post_transactions(b: Backend) {
    let s = Arc::new(Server::start(b));
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || {
                let urn = format!("urn:uuid:{}", uuid_like(&format!("c{i}")));
                let r = post_bundle(
                    &s,
                    &tx(vec![
                        patient_entry(&urn, &format!("client-{i}")),
                        observation_entry(&urn, "8867-4"),
                    ]),
                );
                r.status
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 200);
    }
    assert_eq!(s.get("/Patient?_summary=count").json()["total"], 20);
    assert_eq!(
        s.get("/Observation?subject:Patient.name=bundle&_summary=count")
            .json()["total"],
        20
    );
}

fn ids_of(searchset: &Value) -> Vec<String> {
    let mut ids: Vec<String> = searchset["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] != "outcome")
        .map(|e| {
            format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap(),
                e["resource"]["id"].as_str().unwrap()
            )
        })
        .collect();
    ids.sort();
    ids
}

fn location_ref(entry: &Value) -> String {
    let loc = entry["response"]["location"].as_str().unwrap();
    loc.split("/_history").next().unwrap().to_string()
}

fn searches_inside_bundles(b: Backend) {
    let s = shared(b);
    let mrn = unique("srch");
    let urn = format!("urn:uuid:{}", uuid_like(&mrn));
    // A transaction's searches run last and see its own writes.
    let r = post_bundle(
        s,
        &tx(vec![
            json!({"request": {"method": "GET", "url": format!("Patient?identifier=urn:mrn|{mrn}&_revinclude=Observation:subject")}}),
            patient_entry(&urn, &mrn),
            observation_entry(&urn, "5-5"),
        ]),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    let patient = location_ref(&body["entry"][1]);
    let obs = location_ref(&body["entry"][2]);
    let search = &body["entry"][0];
    assert_eq!(search["response"]["status"], "200 OK");
    assert_eq!(search["resource"]["type"], "searchset");
    assert_eq!(search["resource"]["total"], 1);
    let mut want = vec![patient.clone(), obs.clone()];
    want.sort();
    assert_eq!(ids_of(&search["resource"]), want);
    // A batch answers each search with a searchset, and a bad one alone with 400.
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": format!("Observation?subject:Patient.identifier=urn:mrn|{mrn}")}},
        {"request": {"method": "GET", "url": "Patient?birthdate=notadate"}},
        {"request": {"method": "GET", "url": format!("Patient?identifier=urn:mrn|{mrn}&_summary=count")}},
    ]});
    let r = post_bundle(s, &batch);
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(ids_of(&body["entry"][0]["resource"]), vec![obs]);
    assert_eq!(body["entry"][1]["response"]["status"], "400 Bad Request");
    assert_eq!(
        body["entry"][1]["response"]["outcome"]["issue"][0]["expression"][0],
        "Bundle.entry[1].request.url"
    );
    assert_eq!(body["entry"][2]["resource"]["total"], 1);
}

fn conditions_naming_other_entries(b: Backend) {
    let s = shared(b);
    let mrn = unique("cond");
    let urn = format!("urn:uuid:{}", uuid_like(&mrn));
    let mut patient = patient_entry(&urn, &mrn);
    patient["request"]["ifNoneExist"] = json!(format!("identifier=urn:mrn|{mrn}"));
    let mut obs = observation_entry(&format!("Patient?identifier=urn:mrn|{mrn}"), "7-7");
    // The Observation's condition names the Patient entry by its fullUrl, and its
    // conditional reference is the Patient entry's own condition.
    obs["request"]["ifNoneExist"] = json!(format!("subject={urn}&code=http://loinc.org|7-7"));
    let bundle = tx(vec![obs, patient]);
    let first = post_bundle(s, &bundle);
    assert_eq!(first.status, 200, "{}", first.body);
    let first = first.json();
    assert_eq!(first["entry"][0]["response"]["status"], "201 Created");
    assert_eq!(first["entry"][1]["response"]["status"], "201 Created");
    let patient_ref = location_ref(&first["entry"][1]);
    let stored = s
        .get(&format!("/{}", location_ref(&first["entry"][0])))
        .json();
    assert_eq!(stored["subject"]["reference"], patient_ref.as_str());
    // Sent again, both conditions find what the first run created: nothing new.
    let again = post_bundle(s, &bundle);
    assert_eq!(again.status, 200, "{}", again.body);
    let again = again.json();
    for i in [0, 1] {
        assert_eq!(again["entry"][i]["response"]["status"], "200 OK");
        assert_eq!(
            location_ref(&again["entry"][i]),
            location_ref(&first["entry"][i])
        );
    }
    assert_eq!(count(s, &format!("/Observation?subject={patient_ref}")), 1);
    // Two entries whose conditions name each other cannot be resolved: 400, nothing stored.
    let before = count(s, "/Observation?code=http://loinc.org|8-8");
    let a = format!("urn:uuid:{}", uuid_like(&format!("{mrn}a")));
    let bb = format!("urn:uuid:{}", uuid_like(&format!("{mrn}b")));
    let entry = |me: &str, other: &str| {
        let mut e = observation_entry("Patient/nobody", "8-8");
        e["fullUrl"] = json!(me);
        e["request"]["ifNoneExist"] = json!(format!("has-member={other}"));
        e
    };
    let r = post_bundle(s, &tx(vec![entry(&a, &bb), entry(&bb, &a)]));
    r.outcome(400);
    assert!(r.body.contains("circular"), "{}", r.body);
    assert_eq!(r.issue_expression(), "Bundle.entry[0].request");
    assert_eq!(count(s, "/Observation?code=http://loinc.org|8-8"), before);
}

fn conditional_reads_inside_bundles(b: Backend) {
    let s = shared(b);
    let id = s.create_id("Patient", r#"{"resourceType":"Patient","active":true}"#);
    let get = |extra: Value| {
        let mut request = json!({"method": "GET", "url": format!("Patient/{id}")});
        for (k, v) in extra.as_object().unwrap() {
            request[k] = v.clone();
        }
        json!({"request": request})
    };
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        get(json!({"ifNoneMatch": "W/\"1\""})),
        get(json!({"ifNoneMatch": "W/\"7\""})),
        get(json!({"ifModifiedSince": "2999-01-01T00:00:00Z"})),
        get(json!({"ifModifiedSince": "2001-01-01T00:00:00Z"})),
    ]});
    let r = post_bundle(s, &batch);
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    let status = |i: usize| {
        body["entry"][i]["response"]["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(status(0), "304 Not Modified");
    assert!(body["entry"][0].get("resource").is_none());
    assert_eq!(body["entry"][0]["response"]["etag"], "W/\"1\"");
    assert_eq!(status(1), "200 OK");
    assert_eq!(body["entry"][1]["resource"]["id"], id.as_str());
    assert_eq!(status(2), "304 Not Modified");
    assert_eq!(status(3), "200 OK");
    // An unreadable instant makes the Bundle itself invalid.
    let bad = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        get(json!({"ifModifiedSince": "yesterday"})),
    ]});
    let r = post_bundle(s, &bad);
    r.outcome(400);
    assert_eq!(
        r.issue_expression(),
        "Bundle.entry[0].request.ifModifiedSince"
    );
}

/// A transaction's creates are written together (a group of rows per statement, and
/// prepared on several threads from 128 on): each entry still gets its own answer, in
/// request order, its own id and version 1, with references between entries resolved;
/// a conditional create that finds its match in the middle answers 200 with it.
fn many_creates_of_several_types(b: Backend) {
    let s = shared(b);
    let mrn = unique("many");
    let existing = s.create_id(
        "Patient",
        &format!(r#"{{"resourceType":"Patient","identifier":[{{"system":"urn:mrn","value":"{mrn}-x"}}]}}"#),
    );
    let mut entries = Vec::new();
    for i in 0..150 {
        let urn = format!("urn:uuid:{}", uuid_like(&format!("{mrn}-{i}")));
        entries.push(patient_entry(&urn, &format!("{mrn}-{i}")));
        entries.push(observation_entry(&urn, &format!("{i}-0")));
        if i == 75 {
            let mut found = patient_entry(
                "urn:uuid:00000000-0000-4000-8000-000000000075",
                &format!("{mrn}-x"),
            );
            found["request"]["ifNoneExist"] = json!(format!("identifier=urn:mrn|{mrn}-x"));
            entries.push(found);
        }
    }
    let r = post_bundle(s, &tx(entries));
    assert_eq!(r.status, 200, "{}", r.body);
    let answers = r.json()["entry"].as_array().unwrap().clone();
    assert_eq!(answers.len(), 301);
    let mut ids = std::collections::HashSet::new();
    for (k, e) in answers.iter().enumerate() {
        let loc = e["response"]["location"].as_str().unwrap();
        if k == 152 {
            assert_eq!(e["response"]["status"], "200 OK");
            assert!(
                loc.starts_with(&format!("Patient/{existing}/_history/")),
                "{loc}"
            );
            continue;
        }
        assert_eq!(e["response"]["status"], "201 Created", "entry {k}");
        let ty = if k % 2 == 0 && k < 152 || k % 2 == 1 && k > 152 {
            "Patient"
        } else {
            "Observation"
        };
        assert!(
            loc.starts_with(&format!("{ty}/")) && loc.ends_with("/_history/1"),
            "entry {k}: {loc}"
        );
        assert!(
            ids.insert(loc.to_string()),
            "entry {k} has the id of another: {loc}"
        );
    }
    // Each Observation names the Patient created for it.
    for k in [1, 151, 154, 300] {
        let obs = s
            .get(&format!(
                "/{}",
                answers[k]["response"]["location"].as_str().unwrap()
            ))
            .json();
        let pat = answers[k - 1]["response"]["location"].as_str().unwrap();
        assert_eq!(
            obs["subject"]["reference"].as_str().unwrap(),
            pat.split("/_history").next().unwrap()
        );
        assert_eq!(obs["meta"]["versionId"], "1");
    }
    for i in [0, 75, 149] {
        assert_eq!(
            count(s, &format!("/Patient?identifier=urn:mrn|{mrn}-{i}")),
            1
        );
    }
    assert_eq!(count(s, &format!("/Patient?identifier=urn:mrn|{mrn}-x")), 1);
    let hist = s
        .get(&format!("/{}/_history", location_ref(&answers[0])))
        .json();
    assert_eq!(hist["total"], 1);
    assert_eq!(hist["entry"][0]["request"]["method"], "POST");
}

both_backends!(
    transaction_resolves_urn_uuid_references_everywhere,
    failing_entry_rolls_back_everything,
    if_none_exist_and_conditional_references,
    bad_bundles_get_4xx_naming_the_entry,
    processing_order_delete_post_put_get,
    patch_entries_carry_a_json_patch_binary,
    batch_entries_are_independent,
    twenty_clients_post_transactions,
    searches_inside_bundles,
    conditions_naming_other_entries,
    conditional_reads_inside_bundles,
    many_creates_of_several_types,
);
