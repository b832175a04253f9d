//! Black-box tests of topic-based Subscriptions (the Subscriptions Backport IG, R4
//! form) on SQLite and PostgreSQL against a real HTTP receiver: a topic written as a
//! `Basic`, a subscription to it with filters; the handshake that makes it active;
//! notification Bundles (history, SubscriptionStatus Parameters first, event numbers in
//! order, focus references) for exactly the changes the topic's trigger and the filters
//! select, through REST and transactions; `id-only`, `full-resource` and deletions;
//! `$status` and `$events`; a failed handshake; counting while in error; heartbeats;
//! and the checks on writing topics and topic-based subscriptions.

mod common;

use std::time::{Duration, Instant};

use common::receiver::{Received, Receiver};
use common::{unique, Backend, Server};
use serde_json::{json, Value};

const V5: &str = "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic";
const V43: &str = "http://hl7.org/fhir/4.3/StructureDefinition/extension-SubscriptionTopic";
const IG: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition";

fn server(b: Backend) -> Server {
    common::receiver::subscription_server(b)
}

/// The IG's "encounter complete" topic (Basic-r4-encounter-complete), at `url`.
fn encounter_complete(url: &str) -> Value {
    json!({"resourceType": "Basic",
      "modifierExtension": [{"url": format!("{V5}.status"), "valueCode": "active"}],
      "extension": [
        {"url": format!("{V5}.url"), "valueUri": url},
        {"url": format!("{V5}.title"), "valueString": "Encounter complete"},
        {"url": format!("{V43}.resourceTrigger"), "extension": [
          {"url": "resource", "valueUri": "http://hl7.org/fhir/StructureDefinition/Encounter"},
          {"url": "supportedInteraction", "valueCode": "create"},
          {"url": "supportedInteraction", "valueCode": "update"},
          {"url": "queryCriteria", "extension": [
            {"url": "previous", "valueString": "status:not=finished"},
            {"url": "resultForCreate", "valueCode": "test-passes"},
            {"url": "current", "valueString": "status=finished"},
            {"url": "resultForDelete", "valueCode": "test-fails"},
            {"url": "requireBoth", "valueBoolean": true}]},
          {"url": "fhirPathCriteria", "valueString": "(%previous.id.empty() or (%previous.status != 'finished')) and (%current.status = 'finished')"}]},
        {"url": format!("{V43}.canFilterBy"), "extension": [
          {"url": "resource", "valueUri": "Encounter"},
          {"url": "filterParameter", "valueString": "patient"}]}],
      "code": {"coding": [{"system": "http://hl7.org/fhir/fhir-types", "code": "SubscriptionTopic"}]}})
}

/// A topic on every create and delete of an Observation (no criteria).
fn observation_topic(url: &str) -> Value {
    json!({"resourceType": "Basic",
      "extension": [
        {"url": format!("{V5}.url"), "valueUri": url},
        {"url": format!("{V43}.resourceTrigger"), "extension": [
          {"url": "resource", "valueUri": "Observation"},
          {"url": "supportedInteraction", "valueCode": "create"},
          {"url": "supportedInteraction", "valueCode": "delete"}]}],
      "code": {"coding": [{"system": "http://hl7.org/fhir/fhir-types", "code": "SubscriptionTopic"}]}})
}

/// A topic-based subscription (backport-subscription profile).
fn subscription(topic: &str, filters: &[&str], endpoint: &str, content: &str) -> Value {
    let filters: Vec<Value> = filters
        .iter()
        .map(|f| json!({"url": format!("{IG}/backport-filter-criteria"), "valueString": f}))
        .collect();
    let mut sub = json!({"resourceType": "Subscription",
      "meta": {"profile": [format!("{IG}/backport-subscription")]},
      "status": "requested", "reason": "test",
      "criteria": topic,
      "channel": {"type": "rest-hook", "endpoint": endpoint,
        "header": ["Authorization: Bearer partner-secret"],
        "payload": "application/fhir+json",
        "_payload": {"extension": [{"url": format!("{IG}/backport-payload-content"), "valueCode": content}]}}});
    if !filters.is_empty() {
        sub["_criteria"] = json!({"extension": filters});
    }
    sub
}

fn encounter(patient: &str, status: &str) -> Value {
    json!({"resourceType": "Encounter", "status": status, "class": {"code": "IMP"},
        "subject": {"reference": format!("Patient/{patient}")}})
}

/// The status Parameters of a notification Bundle, by parameter name.
fn status_of(bundle: &Value) -> Value {
    assert_eq!(bundle["resourceType"], "Bundle", "{bundle}");
    let params = &bundle["entry"][0]["resource"];
    assert_eq!(params["resourceType"], "Parameters", "{bundle}");
    params.clone()
}

fn param<'a>(params: &'a Value, name: &str) -> Vec<&'a Value> {
    params["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == name)
        .collect()
}

fn kind(bundle: &Value) -> String {
    param(&status_of(bundle), "type")[0]["valueCode"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The event numbers and focus references a notification carries.
fn events(bundle: &Value) -> Vec<(String, String)> {
    param(&status_of(bundle), "notification-event")
        .iter()
        .map(|e| {
            let part = |n: &str| {
                e["part"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p["name"] == n)
                    .cloned()
                    .unwrap_or(Value::Null)
            };
            let focus = part("focus")["valueReference"]["reference"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let number = part("event-number")["valueString"]
                .as_str()
                .unwrap()
                .to_string();
            (number, focus)
        })
        .collect()
}

fn bodies(got: &[Received]) -> Vec<Value> {
    got.iter()
        .map(|r| serde_json::from_str(&r.body).unwrap_or(Value::Null))
        .collect()
}

fn wait_status(s: &Server, id: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let sub = s.get(&format!("/Subscription/{id}")).json();
        if sub["status"] == want {
            return sub;
        }
        assert!(Instant::now() < deadline, "still {}: {sub}", sub["status"]);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Creates the topic and a subscription to it; waits for the handshake to make it active.
fn subscribe(s: &Server, topic: Value, sub: Value, hook: &Receiver) -> String {
    let r = s.create("Basic", &topic.to_string());
    assert_eq!(r.status, 201, "{}", r.body);
    let r = s.create("Subscription", &sub.to_string());
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.json()["status"],
        "requested",
        "active only after the handshake"
    );
    let id = r.json()["id"].as_str().unwrap().to_string();
    let handshake = &bodies(&hook.wait_for(1))[0];
    assert_eq!(kind(handshake), "handshake", "{handshake}");
    assert_eq!(
        param(&status_of(handshake), "status")[0]["valueCode"],
        "requested"
    );
    wait_status(s, &id, "active");
    id
}

// ------------------------------------------------------------------------- tests

/// The IG's encounter-complete topic with a patient filter: the handshake, then a
/// notification for each encounter of that patient that becomes finished (update,
/// create, transaction), numbered in order; nothing for other patients or for
/// encounters that stay unfinished or were finished already.
fn topic_notifications_in_order(b: Backend) {
    let s = server(b);
    let hook = Receiver::start(200);
    let url = format!("http://example.org/topic/{}", unique("enc"));
    let patient = unique("pat");
    let sub = subscription(
        &url,
        &[&format!("Encounter?patient=Patient/{patient}")],
        &hook.url,
        "id-only",
    );
    let id = subscribe(&s, encounter_complete(&url), sub, &hook);
    // Discovery: the CapabilityStatement names the topic; Basic search finds it.
    let cs = s.get("/metadata").json();
    let instantiates = cs["instantiates"].to_string();
    assert!(
        instantiates.contains("backport-subscription-server-r4"),
        "{instantiates}"
    );
    let rs = cs["rest"][0]["resource"].as_array().unwrap();
    let sub_cs = rs.iter().find(|r| r["type"] == "Subscription").unwrap();
    assert!(
        sub_cs["extension"].to_string().contains(&url),
        "{}",
        sub_cs["extension"]
    );
    let ops: Vec<&str> = sub_cs["operation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert!(
        ops.contains(&"status") && ops.contains(&"events"),
        "{ops:?}"
    );
    let topics = s
        .get("/Basic?code=http://hl7.org/fhir/fhir-types|SubscriptionTopic")
        .json();
    assert!(topics.to_string().contains(&url), "{topics}");

    let e1 = s.create_id("Encounter", &encounter(&patient, "planned").to_string());
    let mut finished = encounter(&patient, "finished");
    finished["id"] = json!(e1);
    let r = s
        .req("PUT", &format!("/Encounter/{e1}"))
        .json(&finished.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    // Finished again: the previous version was finished already.
    finished["priority"] = json!({"text": "routine"});
    s.req("PUT", &format!("/Encounter/{e1}"))
        .json(&finished.to_string());
    s.create(
        "Encounter",
        &encounter("someone-else", "finished").to_string(),
    );
    let e2 = s.create_id("Encounter", &encounter(&patient, "finished").to_string());
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:1b6a6f4e-0c43-4c2a-9f7e-2a0d4c1d7a01",
         "resource": encounter(&patient, "finished"),
         "request": {"method": "POST", "url": "Encounter"}},
        {"resource": encounter(&patient, "in-progress"),
         "request": {"method": "POST", "url": "Encounter"}}]});
    let r = s.req("POST", "").json(&tx.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    let e3 = r.json()["entry"][0]["response"]["location"]
        .as_str()
        .unwrap()
        .split('/')
        .nth(1)
        .unwrap()
        .to_string();
    // PATCH: a planned encounter finished.
    let e4 = s.create_id("Encounter", &encounter(&patient, "planned").to_string());
    let r = s
        .req("PATCH", &format!("/Encounter/{e4}"))
        .header("Content-Type", "application/json-patch+json")
        .json(r#"[{"op": "replace", "path": "/status", "value": "finished"}]"#);
    assert_eq!(r.status, 200, "{}", r.body);

    let got = hook.wait_for(5);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        hook.count(),
        5,
        "handshake and four events: {:?}",
        hook.got.lock().unwrap()
    );
    let base = s.url("");
    let base = base.trim_end_matches('/');
    let notes = bodies(&got[1..]);
    for (n, (note, e)) in notes.iter().zip([&e1, &e2, &e3, &e4]).enumerate() {
        assert_eq!(note["type"], "history");
        assert_eq!(kind(note), "event-notification");
        let st = status_of(note);
        assert_eq!(
            param(&st, "subscription")[0]["valueReference"]["reference"],
            format!("{base}/Subscription/{id}")
        );
        assert_eq!(param(&st, "topic")[0]["valueCanonical"], url.as_str());
        assert_eq!(
            param(&st, "events-since-subscription-start")[0]["valueString"],
            (n + 1).to_string()
        );
        let focus = format!("{base}/Encounter/{e}");
        assert_eq!(events(note), vec![((n + 1).to_string(), focus.clone())]);
        // id-only: the focus as an entry, without its content.
        assert_eq!(note["entry"][1]["fullUrl"], focus.as_str());
        assert!(note["entry"][1].get("resource").is_none(), "{note}");
        assert!(note["entry"][1]["request"]["method"].is_string());
        assert_eq!(
            got[n + 1].header("authorization"),
            Some("Bearer partner-secret")
        );
        assert!(got[n + 1]
            .header("content-type")
            .unwrap()
            .starts_with("application/fhir+json"));
    }

    // $status: a searchset of one status Parameters, four events counted.
    let st = s.get(&format!("/Subscription/{id}/$status")).json();
    assert_eq!(st["type"], "searchset", "{st}");
    let p = &st["entry"][0]["resource"];
    assert_eq!(param(p, "type")[0]["valueCode"], "query-status");
    assert_eq!(param(p, "status")[0]["valueCode"], "active");
    assert_eq!(
        param(p, "events-since-subscription-start")[0]["valueString"],
        "4"
    );
    let by_type = s.get(&format!("/Subscription/$status?id={id}")).json();
    assert_eq!(by_type["entry"].as_array().unwrap().len(), 1, "{by_type}");

    // $events: the kept events, in the content asked for.
    let ev = s
        .get(&format!("/Subscription/{id}/$events?eventsSinceNumber=2"))
        .json();
    assert_eq!(ev["type"], "history", "{ev}");
    assert_eq!(kind(&ev), "query-event");
    let numbers: Vec<String> = events(&ev).into_iter().map(|(n, _)| n).collect();
    assert_eq!(numbers, vec!["2", "3", "4"]);
    let full = s
        .get(&format!("/Subscription/{id}/$events?eventsSinceNumber=1&eventsUntilNumber=1&content=full-resource"))
        .json();
    assert_eq!(full["entry"][1]["resource"]["status"], "finished", "{full}");
    assert_eq!(full["entry"][1]["resource"]["id"], e1.as_str());
    let posted = s.req("POST", &format!("/Subscription/{id}/$events")).json(
        &json!({"resourceType": "Parameters", "parameter": [
            {"name": "eventsSinceNumber", "valueString": "4"}]})
        .to_string(),
    );
    assert_eq!(events(&posted.json()).len(), 1, "{}", posted.body);
}

/// A topic on Observation creates and deletes, full-resource: the created resource in
/// the notification; a deletion notifies with its request and without content.
fn full_resource_and_deletions(b: Backend) {
    let s = server(b);
    let hook = Receiver::start(200);
    let url = format!("http://example.org/topic/{}", unique("obs"));
    let sub = subscription(&url, &[], &hook.url, "full-resource");
    subscribe(&s, observation_topic(&url), sub, &hook);
    let obs = r#"{"resourceType": "Observation", "status": "final",
        "code": {"text": "x"}, "valueQuantity": {"value": 1.50}}"#;
    let id = s.create_id("Observation", obs);
    let r = s.req("DELETE", &format!("/Observation/{id}")).send();
    assert!(r.status == 200 || r.status == 204, "{}", r.body);
    let got = bodies(&hook.wait_for(3));
    let created = &got[1]["entry"][1];
    assert_eq!(created["resource"]["id"], id.as_str(), "{}", got[1]);
    assert_eq!(created["request"]["method"], "POST");
    assert!(
        hook.got.lock().unwrap()[1].body.contains("1.50"),
        "decimals as written"
    );
    let deleted = &got[2]["entry"][1];
    assert_eq!(deleted["request"]["method"], "DELETE", "{}", got[2]);
    assert_eq!(deleted["request"]["url"], format!("Observation/{id}"));
    assert!(deleted.get("resource").is_none());
}

/// An endpoint that refuses the handshake: the subscription is `error` with the reason;
/// events while in error are counted (and kept for $events) but not sent.
fn failed_handshake_sets_error_and_counts_on(b: Backend) {
    let s = server(b);
    let hook = Receiver::start(500);
    let url = format!("http://example.org/topic/{}", unique("obs"));
    s.create("Basic", &observation_topic(&url).to_string());
    let r = s.create(
        "Subscription",
        &subscription(&url, &[], &hook.url, "empty").to_string(),
    );
    let id = r.json()["id"].as_str().unwrap().to_string();
    let sub = wait_status(&s, &id, "error");
    let error = sub["error"].as_str().unwrap();
    assert!(
        error.contains("handshake") && error.contains("HTTP 500"),
        "{error}"
    );
    s.create(
        "Observation",
        &json!({"resourceType": "Observation", "status": "final", "code": {"text": "y"}})
            .to_string(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = s.get(&format!("/Subscription/{id}/$status")).json();
        let p = &st["entry"][0]["resource"];
        if param(p, "events-since-subscription-start")[0]["valueString"] == "1" {
            assert_eq!(param(p, "status")[0]["valueCode"], "error");
            assert!(!param(p, "error").is_empty(), "{st}");
            break;
        }
        assert!(Instant::now() < deadline, "not counted: {st}");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(hook.count(), 1, "only the handshake was sent");
    // empty content: no focus, no topic.
    let ev = s.get(&format!("/Subscription/{id}/$events")).json();
    assert_eq!(events(&ev), vec![("1".to_string(), String::new())], "{ev}");
    assert_eq!(ev["entry"].as_array().unwrap().len(), 1);
}

/// `backport-heartbeat-period`: heartbeats arrive when nothing else is sent.
fn heartbeats(b: Backend) {
    let s = server(b);
    let hook = Receiver::start(200);
    let url = format!("http://example.org/topic/{}", unique("hb"));
    let mut sub = subscription(&url, &[], &hook.url, "id-only");
    sub["channel"]["extension"] =
        json!([{"url": format!("{IG}/backport-heartbeat-period"), "valueUnsignedInt": 1}]);
    subscribe(&s, observation_topic(&url), sub, &hook);
    let got = bodies(&hook.wait_for(3));
    assert_eq!(kind(&got[1]), "heartbeat", "{}", got[1]);
    assert_eq!(kind(&got[2]), "heartbeat");
    assert!(events(&got[1]).is_empty());
}

/// The websocket channel: a binding token from `$get-ws-binding-token`, then
/// `bind-with-token` on the websocket URL, a handshake and the notifications as text
/// frames; a bad token is answered with an OperationOutcome frame.
fn websocket_channel(b: Backend) {
    use tungstenite::Message;
    let s = server(b);
    let url = format!("http://example.org/topic/{}", unique("ws"));
    s.create("Basic", &observation_topic(&url).to_string());
    let mut sub = subscription(&url, &[], "", "full-resource");
    sub["channel"]["type"] = json!("websocket");
    let channel = sub["channel"].as_object_mut().unwrap();
    channel.remove("endpoint");
    channel.remove("header");
    let r = s.create("Subscription", &sub.to_string());
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.json()["status"],
        "active",
        "a websocket subscription needs no handshake to start"
    );
    let id = r.json()["id"].as_str().unwrap().to_string();
    let p = s
        .get(&format!("/Subscription/{id}/$get-ws-binding-token"))
        .json();
    let value = |name: &str, key: &str| param(&p, name)[0][key].as_str().unwrap().to_string();
    let (token, ws_url) = (
        value("token", "valueString"),
        value("websocket-url", "valueUrl"),
    );
    assert!(
        ws_url.starts_with("ws://") && ws_url.ends_with("/fhir/ws"),
        "{ws_url}"
    );
    assert!(value("subscription", "valueString").ends_with(&format!("/Subscription/{id}")));
    assert!(!value("expiration", "valueDateTime").is_empty());

    let connect = || {
        let (socket, _) = tungstenite::connect(ws_url.as_str()).expect("websocket");
        if let tungstenite::stream::MaybeTlsStream::Plain(t) = socket.get_ref() {
            t.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        }
        socket
    };
    let read_json = |socket: &mut tungstenite::WebSocket<_>| -> Value {
        loop {
            match socket.read().expect("a frame") {
                Message::Text(t) => return serde_json::from_str(&t).unwrap(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    };
    let mut bad = connect();
    bad.send(Message::Text("bind-with-token nonsense".into()))
        .unwrap();
    let refused = read_json(&mut bad);
    assert_eq!(refused["resourceType"], "OperationOutcome", "{refused}");

    let mut socket = connect();
    socket
        .send(Message::Text(format!("bind-with-token {token}")))
        .unwrap();
    let handshake = read_json(&mut socket);
    assert_eq!(kind(&handshake), "handshake", "{handshake}");
    let obs = json!({"resourceType": "Observation", "status": "final", "code": {"text": "ws"}});
    let oid = s.create_id("Observation", &obs.to_string());
    let note = read_json(&mut socket);
    assert_eq!(kind(&note), "event-notification", "{note}");
    assert_eq!(events(&note)[0].0, "1");
    assert_eq!(note["entry"][1]["resource"]["id"], oid.as_str());

    let hook = subscription(&url, &[], "http://127.0.0.1:9/hook", "empty");
    let rest_id = s.create_id("Subscription", &hook.to_string());
    let r = s.get(&format!("/Subscription/{rest_id}/$get-ws-binding-token"));
    assert_eq!(r.outcome(422)["issue"][0]["expression"][0], "id");
    assert_eq!(
        s.get("/Subscription/$get-ws-binding-token").outcome(400)["issue"][0]["expression"][0],
        "id"
    );
}

/// Partner endpoints over TLS: a private CA (`--subscription-ca-file`) and a client
/// certificate for a partner that requires mutual TLS (`--subscription-client-cert`);
/// without them the handshake fails and the subscription says why.
fn tls_partner_endpoints(b: Backend) {
    use common::smart::fixture;
    let hook = Receiver::tls(true);
    let (ca, cert, key) = (
        fixture("ca.pem"),
        fixture("client.pem"),
        fixture("client.key"),
    );
    let private = "--subscription-allow-private-endpoints";
    let s = Server::start_with(
        b,
        &[
            private,
            "--subscription-ca-file",
            &ca,
            "--subscription-client-cert",
            &cert,
            "--subscription-client-key",
            &key,
        ],
    );
    let url = format!("http://example.org/topic/{}", unique("tls"));
    subscribe(
        &s,
        observation_topic(&url),
        subscription(&url, &[], &hook.url, "id-only"),
        &hook,
    );
    for (flags, why) in [
        (
            vec![private, "--subscription-ca-file", ca.as_str()],
            "no client certificate",
        ),
        (vec![private], "an unknown CA"),
    ] {
        let other = Server::start_with(b, &flags);
        let url = format!("http://example.org/topic/{}", unique("tls"));
        other.create("Basic", &observation_topic(&url).to_string());
        let sub = subscription(&url, &[], &hook.url, "id-only");
        let id = other.create_id("Subscription", &sub.to_string());
        let error = wait_status(&other, &id, "error")["error"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            error.contains("handshake with https://127.0.0.1"),
            "{why}: {error}"
        );
    }
    assert_eq!(
        hook.count(),
        1,
        "only the server with the certificate got through"
    );
}

/// Topics and topic-based subscriptions that cannot work are refused, naming where.
fn bad_topics_and_subscriptions_are_refused(b: Backend) {
    let s = server(b);
    let url = format!("http://example.org/topic/{}", unique("bad"));
    let mut topic = encounter_complete(&url);
    topic["extension"][2]["extension"][3]["extension"][2]["valueString"] =
        json!("subject:Patient.name=x");
    let r = s.create("Basic", &topic.to_string());
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.issue_expression(), "Basic.extension[2]");
    assert!(r.body.contains("queryCriteria.current"), "{}", r.body);
    s.create("Basic", &encounter_complete(&url).to_string());
    let hook = "http://127.0.0.1:9/hook";
    let cases = [
        (
            subscription("http://example.org/topic/unknown", &[], hook, "id-only"),
            "Subscription.criteria",
        ),
        (
            subscription(&url, &["Observation?code=1"], hook, "id-only"),
            "Subscription.criteria.extension[0]",
        ),
        (
            subscription(&url, &["Encounter?nothing=1"], hook, "id-only"),
            "Subscription.criteria.extension[0]",
        ),
        (
            subscription(&url, &[], hook, "everything"),
            "Subscription.channel.payload.extension",
        ),
    ];
    for (sub, at) in cases {
        let r = s.create("Subscription", &sub.to_string());
        assert_eq!(r.status, 422, "{}", r.body);
        assert_eq!(r.issue_expression(), at, "{}", r.body);
    }
    let mut zulip = subscription(&url, &[], hook, "id-only");
    zulip["channel"]["_type"] = json!({"extension": [{"url": format!("{IG}/backport-channel-type"),
        "valueCoding": {"system": "http://example.org/subscription-channel-type", "code": "zulip"}}]});
    let r = s.create("Subscription", &zulip.to_string());
    assert_eq!(
        r.issue_expression(),
        "Subscription.channel.type.extension",
        "{}",
        r.body
    );
    let mut no_content = subscription(&url, &[], hook, "id-only");
    no_content["channel"]
        .as_object_mut()
        .unwrap()
        .remove("_payload");
    let r = s.create("Subscription", &no_content.to_string());
    assert_eq!(
        r.issue_expression(),
        "Subscription.channel.payload",
        "{}",
        r.body
    );
    assert_eq!(
        s.get("/Subscription/nope/$status").outcome(404)["resourceType"],
        "OperationOutcome"
    );
    let id = s.create_id(
        "Subscription",
        &subscription(&url, &[], hook, "id-only").to_string(),
    );
    let r = s.get(&format!("/Subscription/{id}/$events?eventsSinceNumber=abc"));
    assert_eq!(
        r.outcome(400)["issue"][0]["expression"][0],
        "eventsSinceNumber"
    );
    let r = s.get(&format!("/Subscription/{id}/$events?content=all"));
    assert_eq!(r.outcome(400)["issue"][0]["expression"][0], "content");
    let r = s.get("/Subscription/$status?status=sleeping");
    assert_eq!(r.outcome(400)["issue"][0]["expression"][0], "status");
}

both_backends!(
    topic_notifications_in_order,
    full_resource_and_deletions,
    failed_handshake_sets_error_and_counts_on,
    heartbeats,
    websocket_channel,
    tls_partner_endpoints,
    bad_topics_and_subscriptions_are_refused,
);
