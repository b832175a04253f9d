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

both_backends!(
    transaction_resolves_urn_uuid_references_everywhere,
    failing_entry_rolls_back_everything,
    if_none_exist_and_conditional_references,
    bad_bundles_get_4xx_naming_the_entry,
    processing_order_delete_post_put_get,
    patch_entries_carry_a_json_patch_binary,
    batch_entries_are_independent,
    twenty_clients_post_transactions,
);
