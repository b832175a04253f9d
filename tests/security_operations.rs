//! Black-box tests that operations and Bundle entries confine a client as the plain
//! interactions do: `$everything` refuses another patient before telling whether it
//! exists, a Binary read inside a Bundle is checked against its `securityContext`,
//! and the subscription operations (`$status`, `$get-ws-binding-token`) check the
//! Subscription and the resources its notifications carry.

mod common;

use common::smart::*;
use common::{unique, Backend, Server};
use serde_json::{json, Value};

fn create(s: &Server, token: &str, rt: &str, body: Value) -> String {
    let r = as_(s, token, "POST", &format!("/{rt}")).json(&body.to_string());
    assert_eq!(r.status, 201, "create {rt}: {}", r.body);
    r.json()["id"].as_str().expect("id").to_string()
}

/// Two patients with one Observation each: (patient a, patient b, a's, b's).
fn two_patients(s: &Server) -> (String, String, String, String) {
    let t = admin(s);
    let a = create(s, &t, "Patient", json!({"resourceType": "Patient"}));
    let b = create(s, &t, "Patient", json!({"resourceType": "Patient"}));
    let obs = |p: &str| {
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "subject": {"reference": format!("Patient/{p}")}})
    };
    let a_obs = create(s, &t, "Observation", obs(&a));
    let b_obs = create(s, &t, "Observation", obs(&b));
    (a, b, a_obs, b_obs)
}

fn everything_refuses_before_looking_up(b: Backend) {
    let s = secure(b);
    let (a, other, _, _) = two_patients(s);
    let t = oidc_token("patient/*.rs", Some(&a));
    let get = |id: &str| as_(s, &t, "GET", &format!("/Patient/{id}/$everything")).send();
    assert_eq!(get(&a).status, 200);
    // Whether the other patient exists or not, the answer is the same 403.
    let existing = get(&other);
    let missing = get(&unique("nobody"));
    existing.outcome(403);
    missing.outcome(403);
    let deleted = create(s, &admin(s), "Patient", json!({"resourceType": "Patient"}));
    let r = as_(s, &admin(s), "DELETE", &format!("/Patient/{deleted}")).send();
    assert!(r.status == 200 || r.status == 204, "{}", r.body);
    get(&deleted).outcome(403);
    // An administrator still learns that a patient is not known.
    let r = as_(
        s,
        &admin(s),
        "GET",
        &format!("/Patient/{}/$everything", unique("nobody")),
    )
    .send();
    r.outcome(404);
}

fn bundle_reads_of_a_binary_check_its_security_context(b: Backend) {
    let s = secure(b);
    let (a, _, a_obs, b_obs) = two_patients(s);
    let admin_t = admin(s);
    let binary = |context: &str| {
        let body = json!({"resourceType": "Binary", "contentType": "text/plain",
            "data": "cmVwb3J0", "securityContext": {"reference": context}});
        create(s, &admin_t, "Binary", body)
    };
    let mine = binary(&format!("Observation/{a_obs}"));
    let theirs = binary(&format!("Observation/{b_obs}"));
    let gone = binary(&format!("Observation/{}", unique("gone")));
    let t = oidc_token("patient/*.rs", Some(&a));
    for kind in ["batch", "transaction"] {
        let get = |id: &str| json!({"request": {"method": "GET", "url": format!("Binary/{id}")}});
        let bundle = json!({"resourceType": "Bundle", "type": kind,
            "entry": [get(&mine), get(&theirs), get(&gone)]});
        let r = as_(s, &t, "POST", "/").json(&bundle.to_string());
        if kind == "transaction" {
            // One entry is refused: the whole transaction is.
            r.outcome(403);
            continue;
        }
        assert_eq!(r.status, 200, "{}", r.body);
        let entries = r.json()["entry"].as_array().cloned().expect("entries");
        let status = |n: usize| {
            entries[n]["response"]["status"]
                .as_str()
                .unwrap_or("")
                .to_string()
        };
        assert!(status(0).starts_with("200"), "{}", r.body);
        assert_eq!(entries[0]["resource"]["id"], mine.as_str());
        for n in [1, 2] {
            assert!(status(n).starts_with("403"), "entry {n}: {}", r.body);
            assert!(entries[n].get("resource").is_none(), "{}", r.body);
            let text = entries[n]["response"]["outcome"].to_string();
            assert!(text.contains("securityContext"), "{text}");
        }
    }
    // An earlier version is checked as the version read, even once the current one
    // is deleted; a search cannot confine Binaries to their contexts, so it is refused.
    let r = as_(s, &admin_t, "DELETE", &format!("/Binary/{theirs}")).send();
    assert!(r.status == 200 || r.status == 204, "{}", r.body);
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": format!("Binary/{theirs}/_history/1")}},
        {"request": {"method": "GET", "url": format!("Binary/{mine}/_history/1")}}]});
    let r = as_(s, &t, "POST", "/").json(&bundle.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    let statuses: Vec<String> = r.json()["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(statuses[0].starts_with("403"), "{}", r.body);
    assert!(statuses[1].starts_with("200"), "{}", r.body);
    as_(s, &t, "GET", &format!("/Binary?_id={mine}"))
        .send()
        .outcome(403);
    // So is an earlier version of another patient's deleted Observation.
    let r = as_(s, &admin_t, "DELETE", &format!("/Observation/{b_obs}")).send();
    assert!(r.status == 200 || r.status == 204, "{}", r.body);
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": format!("Observation/{b_obs}/_history/1")}}]});
    let r = as_(s, &t, "POST", "/").json(&bundle.to_string());
    let status = r.json()["entry"][0]["response"]["status"].clone();
    assert!(
        status.as_str().unwrap_or("").starts_with("403"),
        "{}",
        r.body
    );
    // Alone, the readable one is also read in a transaction.
    let bundle = json!({"resourceType": "Bundle", "type": "transaction",
        "entry": [{"request": {"method": "GET", "url": format!("Binary/{mine}")}}]});
    let r = as_(s, &t, "POST", "/").json(&bundle.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
}

fn subscription_operations_check_the_caller(b: Backend) {
    let s = secure(b);
    let (a, _, _, _) = two_patients(s);
    let admin_t = admin(s);
    // A topic on Observations, and websocket subscriptions to it (Backport IG).
    let topic = format!("http://example.org/topic/{}", unique("sec"));
    let ext = "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic";
    let trigger = "http://hl7.org/fhir/4.3/StructureDefinition/extension-SubscriptionTopic";
    let basic = json!({"resourceType": "Basic",
      "extension": [
        {"url": format!("{ext}.url"), "valueUri": topic},
        {"url": format!("{trigger}.resourceTrigger"), "extension": [
          {"url": "resource", "valueUri": "Observation"},
          {"url": "supportedInteraction", "valueCode": "create"}]}],
      "code": {"coding": [{"system": "http://hl7.org/fhir/fhir-types", "code": "SubscriptionTopic"}]}});
    create(s, &admin_t, "Basic", basic);
    let ig = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition";
    let sub = |status: &str| {
        let body = json!({"resourceType": "Subscription",
            "meta": {"profile": [format!("{ig}/backport-subscription")]},
            "status": status, "reason": "test", "criteria": topic,
            "channel": {"type": "websocket", "payload": "application/fhir+json",
              "_payload": {"extension": [{"url": format!("{ig}/backport-payload-content"), "valueCode": "id-only"}]}}});
        create(s, &admin_t, "Subscription", body)
    };
    let on = sub("requested");
    let off = sub("off");
    // The notifications name Observations: a client confined to one patient may not
    // bind to them, as it may not read their `$events`.
    let patient_t = oidc_token("patient/*.rs", Some(&a));
    let bind = |t: &str| {
        as_(
            s,
            t,
            "GET",
            &format!("/Subscription/{on}/$get-ws-binding-token"),
        )
        .send()
    };
    let r = bind(&patient_t);
    r.outcome(403);
    assert!(r.body.contains("Observation"), "{}", r.body);
    as_(s, &patient_t, "GET", &format!("/Subscription/{on}/$events"))
        .send()
        .outcome(403);
    assert_eq!(bind(&admin_t).status, 200, "{}", bind(&admin_t).body);
    // A search-constrained scope on Subscription: `$status` shows only what it allows.
    let only_off = oidc_token("system/Subscription.rs?status=off", None);
    let r = as_(
        s,
        &only_off,
        "GET",
        &format!("/Subscription/$status?id={on},{off}"),
    )
    .send();
    assert_eq!(r.status, 200, "{}", r.body);
    let named: Vec<String> = r.json()["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| e["resource"]["parameter"].to_string())
        .collect();
    assert_eq!(named.len(), 1, "{}", r.body);
    assert!(named[0].contains(&off), "{}", r.body);
    as_(s, &only_off, "GET", &format!("/Subscription/{on}/$status"))
        .send()
        .outcome(403);
    let r = as_(s, &only_off, "GET", &format!("/Subscription/{off}/$status")).send();
    assert_eq!(r.status, 200, "{}", r.body);
}

both_backends!(
    everything_refuses_before_looking_up,
    bundle_reads_of_a_binary_check_its_security_context,
    subscription_operations_check_the_caller,
);
