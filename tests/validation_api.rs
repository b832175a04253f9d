//! Black-box tests of validation: writes are validated (422 with an OperationOutcome
//! naming the element), `Prefer: handling=lenient` accepts, Bundles answer per entry,
//! `$validate` at type and instance level, and the `validate` CLI.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{shared, unique, Backend};
use serde_json::{json, Value};

fn issues_at(oo: &Value) -> Vec<String> {
    oo["issue"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|i| i["severity"] == "error" || i["severity"] == "fatal")
        .flat_map(|i| {
            i["expression"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|e| e.as_str().map(str::to_string))
        })
        .collect()
}

fn invalid_writes_are_422_with_the_element(b: Backend) {
    let s = shared(b);
    let r = s.create("Patient", r#"{"resourceType":"Patient","gender":"fish"}"#);
    let oo = r.outcome(422);
    assert!(
        issues_at(&oo).contains(&"Patient.gender".to_string()),
        "{oo}"
    );
    let r = s.create(
        "Observation",
        r#"{"resourceType":"Observation","code":{"text":"x"}}"#,
    );
    let oo = r.outcome(422);
    assert!(
        issues_at(&oo).contains(&"Observation.status".to_string()),
        "a missing required element is pointed at: {oo}"
    );
    // Lenient handling accepts it.
    let r = s
        .req("POST", "/Patient")
        .header("Prefer", "handling=lenient")
        .json(r#"{"resourceType":"Patient","gender":"fish"}"#);
    assert_eq!(r.status, 201, "{}", r.body);
    // An invalid update changes nothing.
    let id = s.create_id("Patient", r#"{"resourceType":"Patient","gender":"male"}"#);
    let r = s
        .req("PUT", &format!("/Patient/{id}"))
        .json(&json!({"resourceType": "Patient", "id": id, "gender": "fish"}).to_string());
    r.outcome(422);
    assert_eq!(
        s.get(&format!("/Patient/{id}")).json()["meta"]["versionId"],
        "1"
    );
    // A patch that makes it invalid is refused too.
    let r = s
        .req("PATCH", &format!("/Patient/{id}"))
        .header("Content-Type", "application/json-patch+json")
        .bytes(br#"[{"op":"replace","path":"/gender","value":"fish"}]"#);
    r.outcome(422);
}

fn bundles_validate_each_entry(b: Backend) {
    let s = shared(b);
    let tag = unique("val");
    let entry = |gender: &str| {
        json!({"resource": {"resourceType": "Patient", "meta": {"tag": [{"system": "urn:test", "code": tag}]}, "gender": gender},
            "request": {"method": "POST", "url": "Patient"}})
    };
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [entry("male"), entry("fish")]});
    let r = s.req("POST", "").json(&tx.to_string());
    let oo = r.outcome(422);
    assert!(
        issues_at(&oo).contains(&"Bundle.entry[1].resource.gender".to_string()),
        "{oo}"
    );
    let count = s.get(&format!("/Patient?_tag=urn:test|{tag}&_summary=count"));
    assert_eq!(
        count.json()["total"],
        0,
        "nothing of the failed transaction"
    );
    let mut batch = tx.clone();
    batch["type"] = json!("batch");
    let r = s.req("POST", "").json(&batch.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    let e = r.json()["entry"].as_array().cloned().expect("entries");
    assert!(e[0]["response"]["status"]
        .as_str()
        .unwrap_or("")
        .starts_with("201"));
    assert!(e[1]["response"]["status"]
        .as_str()
        .unwrap_or("")
        .starts_with("422"));
}

fn validate_operation(b: Backend) {
    let s = shared(b);
    let post = |path: &str, body: &Value| s.req("POST", path).json(&body.to_string());
    let ok = post(
        "/Patient/$validate",
        &json!({"resourceType": "Patient", "gender": "male"}),
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(issues_at(&ok.json()).is_empty(), "{}", ok.body);
    let bad = post(
        "/Patient/$validate",
        &json!({"resourceType": "Patient", "gender": "fish"}),
    );
    assert_eq!(bad.status, 200, "{}", bad.body);
    assert!(issues_at(&bad.json()).contains(&"Patient.gender".to_string()));
    // Parameters form, with a profile the server does not know.
    let params = json!({"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": {"resourceType": "Patient"}},
        {"name": "profile", "valueUri": "http://example.org/StructureDefinition/unknown"}]});
    let r = post("/Patient/$validate", &params);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        !issues_at(&r.json()).is_empty() || r.body.contains("unknown"),
        "{}",
        r.body
    );
    // Instance level: update with the wrong id, delete of an unknown resource.
    let id = s.create_id("Patient", r#"{"resourceType":"Patient"}"#);
    let upd = json!({"resourceType": "Parameters", "parameter": [
        {"name": "mode", "valueCode": "update"},
        {"name": "resource", "resource": {"resourceType": "Patient", "id": "other"}}]});
    let r = post(&format!("/Patient/{id}/$validate"), &upd);
    assert!(
        issues_at(&r.json()).contains(&"Patient.id".to_string()),
        "{}",
        r.body
    );
    let del = json!({"resourceType": "Parameters", "parameter": [{"name": "mode", "valueCode": "delete"}]});
    let r = post("/Patient/nope-404/$validate", &del);
    assert_eq!(r.json()["issue"][0]["code"], "not-found", "{}", r.body);
    let r = post(&format!("/Patient/{id}/$validate"), &del);
    assert_eq!(
        r.json()["issue"][0]["severity"],
        "information",
        "{}",
        r.body
    );
    // Errors of the request itself.
    post(
        "/Patient/$validate?mode=bogus",
        &json!({"resourceType": "Patient"}),
    )
    .outcome(400);
    post(
        "/Patient/$validate",
        &json!({"resourceType": "Observation"}),
    )
    .outcome(400);
    s.req("POST", "/Patient/$validate").json("").outcome(400);
    post("/NotAType/$validate", &json!({"resourceType": "Patient"})).outcome(404);
    // GET: at the type level there is nothing to validate; at the instance level the
    // stored resource is validated, with `profile` from the query.
    s.get("/Patient/$validate").outcome(400);
    let r = s.get(&format!("/Patient/{id}/$validate"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(issues_at(&r.json()).is_empty(), "{}", r.body);
    let vs = "http://hl7.org/fhir/StructureDefinition/vitalsigns";
    let obs = s.create_id(
        "Observation",
        r#"{"resourceType":"Observation","status":"final","code":{"text":"x"}}"#,
    );
    let r = s.get(&format!("/Observation/{obs}/$validate?profile={vs}"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        issues_at(&r.json())
            .iter()
            .any(|e| e.starts_with("Observation")),
        "the vital-signs profile is not met: {}",
        r.body
    );
    s.get("/Patient/nope-404/$validate").outcome(404);
    let r = s.req("DELETE", "/Patient/$validate").send();
    r.outcome(405);
    assert_eq!(r.header("Allow"), Some("GET, POST"));
}

fn big_resources_validate_without_stalling_others(b: Backend) {
    let s = shared(b);
    let names: Vec<Value> = (0..20_000)
        .map(|i| json!({"family": format!("F{i}"), "given": ["G"]}))
        .collect();
    let body = json!({"resourceType": "Patient", "name": names}).to_string();
    let base = s.base.clone();
    let worker = std::thread::spawn(move || {
        let started = Instant::now();
        let r = ureq::post(&format!("{base}/Patient/$validate"))
            .set("Content-Type", "application/fhir+json")
            .timeout(Duration::from_secs(120))
            .send_string(&body);
        (r.map(|r| r.status()).unwrap_or(0), started.elapsed())
    });
    let mut slowest = Duration::ZERO;
    while !worker.is_finished() {
        let t = Instant::now();
        assert_eq!(s.get("/metadata?_summary=true").status, 200);
        slowest = slowest.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, took) = worker.join().expect("worker");
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(30), "20,000 names took {took:?}");
    assert!(
        slowest < Duration::from_secs(2),
        "metadata took {slowest:?} meanwhile"
    );
}

both_backends!(
    invalid_writes_are_422_with_the_element,
    bundles_validate_each_entry,
    validate_operation,
    big_resources_validate_without_stalling_others,
);

#[test]
fn validate_cli_prints_issues_and_fails_on_errors() {
    let dir = std::env::temp_dir().join(format!("fhir-val-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let bad = dir.join("bad.json");
    let good = dir.join("good.json");
    std::fs::write(&bad, r#"{"resourceType":"Patient","gender":"fish"}"#).expect("write");
    std::fs::write(&good, r#"{"resourceType":"Patient","gender":"male"}"#).expect("write");
    let run = |f: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_fhir-server"))
            .arg("validate")
            .arg(f)
            .output()
            .expect("run")
    };
    let out = run(&bad);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("bad.json: error: Patient.gender:"), "{text}");
    assert!(run(&good).status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
