//! Black-box tests of R4 criteria-based Subscriptions with rest-hook delivery, on SQLite
//! and PostgreSQL, against a real HTTP receiver: notifications for matching writes only
//! (REST, transactions, bulk import), in order, with the channel's headers; an empty
//! POST without a payload; nothing for a rolled-back transaction; a failing endpoint
//! sets the subscription to `error` with the reason; the checks on writing a
//! Subscription (channel, endpoint, criteria, payload, SSRF); and two nodes on one
//! PostgreSQL notifying each change once.

mod common;

use std::time::{Duration, Instant};

use common::receiver::Receiver;
use common::{shared, unique, Backend, Server};
use serde_json::{json, Value};

/// A server that may deliver to the loopback receivers of these tests.
fn server(b: Backend) -> Server {
    common::receiver::subscription_server(b)
}

fn subscription(criteria: &str, endpoint: &str, payload: Option<&str>) -> Value {
    let mut channel = json!({"type": "rest-hook", "endpoint": endpoint,
        "header": ["Authorization: Bearer partner-secret"]});
    if let Some(p) = payload {
        channel["payload"] = json!(p);
    }
    json!({"resourceType": "Subscription", "status": "requested", "reason": "test",
        "criteria": criteria, "channel": channel})
}

fn observation(code: &str, value: f64) -> String {
    json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "urn:test", "code": code}]},
        "valueQuantity": {"value": value}})
    .to_string()
}

/// Subscribes `hook` (with a payload) to Observations of a new code; returns the code.
fn watch_code(s: &Server, hook: &Receiver, prefix: &str) -> String {
    let code = unique(prefix);
    let criteria = format!("Observation?code=urn:test|{code}");
    let r = s.create(
        "Subscription",
        &subscription(&criteria, &hook.url, Some("application/fhir+json")).to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    code
}

// ------------------------------------------------------------------------- tests

/// Matching creates and updates are PUT to the endpoint, in order, with the headers;
/// other writes are not; the subscription is stored `active`.
fn rest_hook_delivers_matching_writes(b: Backend) {
    let s = server(b);
    let hook = Receiver::start(200);
    let code = unique("sub");
    let body = subscription(
        &format!("Observation?code=urn:test|{code}"),
        &hook.url,
        Some("application/fhir+json"),
    );
    let r = s.create("Subscription", &body.to_string());
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["status"], "active", "{}", r.body);
    let id = s.create_id("Observation", &observation(&code, 1.0));
    s.create("Observation", &observation("something-else", 2.0));
    let mut updated: Value = serde_json::from_str(&observation(&code, 3.0)).unwrap();
    updated["id"] = json!(id);
    let r = s
        .req("PUT", &format!("/Observation/{id}"))
        .json(&updated.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    let got = hook.wait_for(2);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        hook.count(),
        2,
        "only matching writes notify: {:?}",
        hook.got.lock().unwrap()
    );
    for (n, r) in got.iter().enumerate() {
        assert_eq!(r.method, "PUT");
        assert_eq!(r.path, format!("/hook/Observation/{id}"));
        assert_eq!(r.header("authorization"), Some("Bearer partner-secret"));
        assert!(r
            .header("content-type")
            .unwrap()
            .starts_with("application/fhir+json"));
        let resource: Value = serde_json::from_str(&r.body).expect("resource");
        assert_eq!(
            resource["meta"]["versionId"],
            (n + 1).to_string(),
            "in order"
        );
        // Each notification carries the version that made it, not the latest.
        assert_eq!(
            resource["valueQuantity"]["value"],
            [1.0, 3.0][n],
            "{resource}"
        );
    }
}

/// Without a payload, the notification is an empty POST to the endpoint; writes in a
/// transaction and a bulk import notify too; a rolled-back transaction does not.
fn empty_payload_transactions_and_rollbacks(b: Backend) {
    let s = server(b);
    let hook = Receiver::start(200);
    let code = unique("tx");
    let r = s.create(
        "Subscription",
        &subscription(
            &format!("Observation?code=urn:test|{code}"),
            &hook.url,
            None,
        )
        .to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    s.create("Observation", &observation(&code, 1.0));
    let got = hook.wait_for(1);
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].path, "/hook");
    assert!(got[0].body.is_empty());
    // A transaction that fails in its second entry writes nothing, notifies nothing.
    let failing = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": serde_json::from_str::<Value>(&observation(&code, 2.0)).unwrap(),
         "request": {"method": "POST", "url": "Observation"}},
        {"request": {"method": "DELETE", "url": "Observation?code=nope&_id=x&status=final"}},
        {"resource": {"resourceType": "Observation"}, "request": {"method": "POST", "url": "Observation"}}]});
    let r = s.req("POST", "").json(&failing.to_string());
    assert!(r.status >= 400, "{}", r.body);
    let ok = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": serde_json::from_str::<Value>(&observation(&code, 3.0)).unwrap(),
         "request": {"method": "POST", "url": "Observation"}},
        {"resource": serde_json::from_str::<Value>(&observation(&code, 4.0)).unwrap(),
         "request": {"method": "POST", "url": "Observation"}}]});
    let r = s.req("POST", "").json(&ok.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    hook.wait_for(3);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(hook.count(), 3, "the rolled-back transaction notified");
}

/// An endpoint that keeps failing: after the configured attempts the subscription's
/// status is `error`, with the reason.
fn failing_endpoint_sets_error(b: Backend) {
    let s = server(b);
    let hook = Receiver::start(500);
    let code = unique("err");
    let id = s.create_id(
        "Subscription",
        &subscription(
            &format!("Observation?code=urn:test|{code}"),
            &hook.url,
            None,
        )
        .to_string(),
    );
    s.create("Observation", &observation(&code, 1.0));
    let deadline = Instant::now() + Duration::from_secs(20);
    let sub = loop {
        let sub = s.get(&format!("/Subscription/{id}")).json();
        if sub["status"] == "error" {
            break sub;
        }
        assert!(Instant::now() < deadline, "still {}", sub["status"]);
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(hook.count(), 3, "three attempts");
    let error = sub["error"].as_str().unwrap();
    assert!(error.contains("HTTP 500"), "{error}");
    // Turned on again by its owner, it delivers again.
    let mut on = sub.clone();
    on["status"] = json!("requested");
    let r = s
        .req("PUT", &format!("/Subscription/{id}"))
        .json(&on.to_string());
    assert_eq!(r.json()["status"], "active", "{}", r.body);
}

/// A receiver that is down for a while: the deliveries are tried again and every event
/// arrives, in order; a server killed (`kill -9`) with an event not yet delivered
/// delivers it after its restart.
fn retries_and_restarts_lose_nothing(b: Backend) {
    let mut s = Server::start_with(
        b,
        &[
            "--subscription-allow-private-endpoints",
            "--subscription-retry-ms",
            "300",
        ],
    );
    let hook = Receiver::flaky(200, 2);
    let code = watch_code(&s, &hook, "down");
    let first = s.create_id("Observation", &observation(&code, 1.0));
    hook.wait_for(1); // refused (503): the event waits for its retry
    std::thread::sleep(Duration::from_millis(300)); // the refusal is recorded
    s.restart();
    let second = s.create_id("Observation", &observation(&code, 2.0));
    let got = hook.wait_for(4);
    let delivered: Vec<&str> = got[2..].iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        delivered,
        [
            format!("/hook/Observation/{first}"),
            format!("/hook/Observation/{second}")
        ],
        "after two refusals, both in order: {got:?}"
    );
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(hook.count(), 4, "nothing twice");
}

/// A notification refused once is retried from the store, not from memory: the version
/// it carries, expunged meanwhile, is not sent; the next event goes out as usual.
fn a_version_expunged_before_its_retry_is_not_sent(b: Backend) {
    let s = Server::start_with(
        b,
        &[
            "--subscription-allow-private-endpoints",
            "--subscription-retry-ms",
            "1000",
            "--expunge",
            "on",
        ],
    );
    let hook = Receiver::flaky(200, 1);
    let code = watch_code(&s, &hook, "expunged");
    let id = s.create_id("Observation", &observation(&code, 1.0));
    hook.wait_for(1); // refused (503): the event waits for its retry
    let mut other: Value = serde_json::from_str(&observation("not-watched", 2.0)).unwrap();
    other["id"] = json!(id);
    let r = s
        .req("PUT", &format!("/Observation/{id}"))
        .json(&other.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    let prev = json!({"resourceType": "Parameters", "parameter": [
        {"name": "expungePreviousVersions", "valueBoolean": true}]});
    let r = s
        .req("POST", &format!("/Observation/{id}/$expunge"))
        .json(&prev.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    std::thread::sleep(Duration::from_millis(2500)); // past the retry
    assert_eq!(
        hook.count(),
        1,
        "the expunged version is not sent: {:?}",
        hook.got.lock().unwrap()
    );
    let next = s.create_id("Observation", &observation(&code, 3.0));
    let got = hook.wait_for(2);
    assert_eq!(got[1].path, format!("/hook/Observation/{next}"));
    let resource: Value = serde_json::from_str(&got[1].body).expect("resource");
    assert_eq!(resource["valueQuantity"]["value"], 3.0);
}

/// Every write path notifies — PATCH and bulk `$import` too — and a subscription for
/// one patient never carries another's resources.
fn patch_import_and_patient_confinement(b: Backend) {
    let dir = std::env::temp_dir().join(unique("sub-import"));
    std::fs::create_dir_all(&dir).unwrap();
    let s = Server::start_with(
        b,
        &[
            "--subscription-allow-private-endpoints",
            "--import-dir",
            &dir.display().to_string(),
        ],
    );
    let hook = Receiver::start(200);
    let a = s.create_id("Patient", r#"{"resourceType":"Patient"}"#);
    let other = s.create_id("Patient", r#"{"resourceType":"Patient"}"#);
    let r = s.create(
        "Subscription",
        &subscription(
            &format!("Observation?subject=Patient/{a}"),
            &hook.url,
            Some("application/fhir+json"),
        )
        .to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let obs = |patient: &str| {
        json!({"resourceType": "Observation", "status": "final",
        "code": {"text": "x"}, "subject": {"reference": format!("Patient/{patient}")}})
    };
    let mine = s.create_id("Observation", &obs(&a).to_string());
    s.create_id("Observation", &obs(&other).to_string());
    let r = s
        .req("PATCH", &format!("/Observation/{mine}"))
        .header("Content-Type", "application/json-patch+json")
        .json(r#"[{"op": "replace", "path": "/status", "value": "amended"}]"#);
    assert_eq!(r.status, 200, "{}", r.body);
    let lines = [obs(&a), obs(&other)].map(|v| v.to_string()).join("\n");
    std::fs::write(dir.join("obs.ndjson"), lines + "\n").unwrap();
    let kickoff = json!({"resourceType": "Parameters", "parameter": [{"name": "input", "part": [
        {"name": "type", "valueCode": "Observation"},
        {"name": "url", "valueUri": format!("file://{}", dir.join("obs.ndjson").display())}]}]});
    let r = s
        .req("POST", "/$import")
        .header("Prefer", "respond-async")
        .json(&kickoff.to_string());
    assert_eq!(r.status, 202, "{}", r.body);
    let got = hook.wait_for(3);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        hook.count(),
        3,
        "create, patch, import of patient A only: {got:?}"
    );
    for r in &got {
        let resource: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(
            resource["subject"]["reference"],
            format!("Patient/{a}"),
            "{}",
            r.body
        );
    }
    assert_eq!(got[1].path, format!("/hook/Observation/{mine}"));
    let _ = std::fs::remove_dir_all(dir);
}

/// Writing a Subscription checks it: 422 naming the element for what cannot work.
fn invalid_subscriptions_are_refused(b: Backend) {
    let s = shared(b); // no --subscription-allow-private-endpoints
    let good = subscription(
        "Observation?code=urn:test|x",
        "https://partner.example/hook",
        None,
    );
    let cases: Vec<(Value, &str)> = vec![
        (
            {
                let mut v = good.clone();
                v["channel"]["type"] = json!("websocket");
                v
            },
            "Subscription.channel.type",
        ),
        (
            {
                let mut v = good.clone();
                v["channel"]["endpoint"] = json!("http://127.0.0.1:9/hook");
                v
            },
            "Subscription.channel.endpoint",
        ),
        (
            {
                let mut v = good.clone();
                v["channel"]["endpoint"] = json!("http://169.254.169.254/latest");
                v
            },
            "Subscription.channel.endpoint",
        ),
        (
            {
                let mut v = good.clone();
                v["channel"]["endpoint"] = json!("ftp://partner.example/x");
                v
            },
            "Subscription.channel.endpoint",
        ),
        (
            {
                let mut v = good.clone();
                v["criteria"] = json!("Observation?nosuch=1");
                v
            },
            "Subscription.criteria",
        ),
        (
            {
                let mut v = good.clone();
                v["criteria"] = json!("Nope?x=1");
                v
            },
            "Subscription.criteria",
        ),
        (
            {
                let mut v = good.clone();
                v["channel"]["payload"] = json!("text/csv");
                v
            },
            "Subscription.channel.payload",
        ),
        (
            {
                let mut v = good.clone();
                v["channel"]["header"] = json!(["no colon"]);
                v
            },
            "Subscription.channel.header[0]",
        ),
    ];
    for (body, at) in cases {
        let r = s.create("Subscription", &body.to_string());
        r.outcome(422);
        assert_eq!(r.issue_expression(), at, "{body}: {}", r.body);
    }
    // In a transaction, the entry is named.
    let mut bad = good.clone();
    bad["channel"]["type"] = json!("email");
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": bad, "request": {"method": "POST", "url": "Subscription"}}]});
    let r = s.req("POST", "").json(&bundle.to_string());
    assert!(r.status == 422 || r.status == 400, "{}", r.body);
    assert!(r.body.contains("Bundle.entry[0].resource"), "{}", r.body);
    // PATCH is refused: a Subscription is checked as a whole.
    let id = s.create_id(
        "Subscription",
        &json!({"resourceType": "Subscription", "status": "off",
        "reason": "t", "criteria": "Observation?code=urn:test|x",
        "channel": {"type": "rest-hook", "endpoint": "https://partner.example/hook"}})
        .to_string(),
    );
    let r = s
        .req("PATCH", &format!("/Subscription/{id}"))
        .header("Content-Type", "application/json-patch+json")
        .json(r#"[{"op": "replace", "path": "/status", "value": "active"}]"#);
    r.outcome(422);
}

/// Under `Prefer: handling=lenient` a Subscription that cannot work is stored, never
/// active: status `error` with the reason.
fn lenient_subscription_is_stored_in_error(b: Backend) {
    let s = shared(b);
    let r = s
        .req("POST", "/Subscription")
        .header("Prefer", "handling=lenient")
        .json(r#"{"resourceType":"Subscription","status":"requested","criteria":"Observation?code=x","reason":"t","channel":{"type":"email"}}"#);
    assert_eq!(r.status, 201, "{}", r.body);
    let stored = r.json();
    assert_eq!(stored["status"], "error", "{stored}");
    assert!(
        stored["error"].as_str().unwrap().contains("email"),
        "{stored}"
    );
}

/// With authentication, the writer of a Subscription must be able to read every
/// resource its criteria can match: a patient-confined read scope is refused.
fn writer_must_read_the_whole_type(b: Backend) {
    use common::smart::{as_, oidc_token, secure};
    let s = secure(b);
    let body = subscription(
        "Observation?code=urn:test|x",
        "https://partner.example/hook",
        None,
    )
    .to_string();
    let confined = oidc_token(
        "user/Subscription.cruds patient/Observation.rs",
        Some("p-1"),
    );
    let r = as_(s, &confined, "POST", "/Subscription").json(&body);
    assert!(
        r.outcome(403).to_string().contains("read all of them"),
        "{}",
        r.body
    );
    let full = oidc_token("user/Subscription.cruds user/Observation.rs", None);
    let r = as_(s, &full, "POST", "/Subscription").json(&body);
    assert_eq!(r.status, 201, "{}", r.body);
}

/// Two nodes on one PostgreSQL database: writes on both notify, each change exactly
/// once (the feed is taken with SKIP LOCKED, each event is claimed before it is sent).
#[test]
fn two_nodes_notify_each_change_once() {
    let flags = ["--subscription-allow-private-endpoints"];
    let a = Server::start_with(Backend::Postgres, &flags);
    let b = a.start_beside(&flags);
    let hook = Receiver::start(200);
    let code = unique("nodes");
    let r = a.create(
        "Subscription",
        &subscription(
            &format!("Observation?code=urn:test|{code}"),
            &hook.url,
            Some("application/fhir+json"),
        )
        .to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let mut ids = Vec::new();
    for i in 0..20 {
        let node = if i % 2 == 0 { &a } else { &b };
        ids.push(node.create_id("Observation", &observation(&code, i as f64)));
    }
    hook.wait_for(20);
    std::thread::sleep(Duration::from_millis(1500));
    let got = hook.got.lock().unwrap().clone();
    let mut paths: Vec<String> = got.iter().map(|r| r.path.clone()).collect();
    paths.sort();
    let mut expected: Vec<String> = ids
        .iter()
        .map(|i| format!("/hook/Observation/{i}"))
        .collect();
    expected.sort();
    assert_eq!(paths, expected, "each change notified exactly once");
}

/// Criteria of every shape: anchored on a code with a quantity comparison (decided in
/// memory), a chain (decided by a search), no code or reference at all (every write is
/// a candidate, decided in memory): each subscription hears of exactly its matches.
fn criteria_of_every_shape(b: Backend) {
    let s = server(b);
    let code = unique("shape");
    let family = unique("Fam");
    let patient = s.create_id(
        "Patient",
        &json!({"resourceType": "Patient", "name": [{"family": family}]}).to_string(),
    );
    let hooks: Vec<Receiver> = (0..3).map(|_| Receiver::start(200)).collect();
    let criteria = [
        format!("Observation?code=urn:test|{code}&value-quantity=gt50"),
        format!("Observation?subject:Patient.family={family}"),
        "Observation?value-quantity=ge900".to_string(),
    ];
    for (c, h) in criteria.iter().zip(&hooks) {
        let r = s.create("Subscription", &subscription(c, &h.url, None).to_string());
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let mut first: Value = serde_json::from_str(&observation(&code, 60.0)).unwrap();
    first["subject"] = json!({"reference": format!("Patient/{patient}")});
    s.create("Observation", &first.to_string());
    s.create("Observation", &observation(&code, 10.0));
    s.create("Observation", &observation("other", 950.0));
    for h in &hooks {
        h.wait_for(1);
    }
    std::thread::sleep(Duration::from_millis(800));
    let counts: Vec<usize> = hooks.iter().map(Receiver::count).collect();
    assert_eq!(counts, vec![1, 1, 1], "each hears of its one match");
}

/// A version too large for the copies kept in memory for subscriptions (over 4 MiB)
/// is matched and sent all the same, read from the store.
fn a_large_version_is_matched_and_sent(b: Backend) {
    let s = server(b);
    let hook = Receiver::start(200);
    let code = watch_code(&s, &hook, "large");
    let mut big: Value = serde_json::from_str(&observation(&code, 1.0)).unwrap();
    // Strings are at most 1 MB each: six notes of 900 kB.
    let note = json!({"text": "x".repeat(900_000)});
    big["note"] = json!(vec![note; 6]);
    let id = s.create_id("Observation", &big.to_string());
    let got = hook.wait_for(1);
    assert_eq!(got[0].path, format!("/hook/Observation/{id}"));
    assert!(got[0].body.len() > 5_400_000, "the whole version");
}

both_backends!(
    a_large_version_is_matched_and_sent,
    criteria_of_every_shape,
    retries_and_restarts_lose_nothing,
    a_version_expunged_before_its_retry_is_not_sent,
    patch_import_and_patient_confinement,
    writer_must_read_the_whole_type,
    lenient_subscription_is_stored_in_error,
    rest_hook_delivers_matching_writes,
    empty_payload_transactions_and_rollbacks,
    failing_endpoint_sets_error,
    invalid_subscriptions_are_refused,
);
