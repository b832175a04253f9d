//! Black-box tests of `fhir-server check URL`, the conformance checker of partner
//! endpoints: against this server (both backends, with `--write`) every claimed
//! capability passes and the scratch resources are gone afterwards; against a stub
//! server that answers wrongly in known ways, exactly those failures are reported,
//! each with the request and response that showed it.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;

use common::{Backend, Server};
use serde_json::{json, Value};

/// Runs the checker; returns its exit code, its text output and its JSON report.
fn check(base: &str, extra: &[&str]) -> (i32, String, Value) {
    let dir = std::env::temp_dir().join(format!(
        "fhir-check-{}-{}",
        std::process::id(),
        common::unique("r")
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let json_path = dir.join("report.json");
    let html_path = dir.join("report.html");
    let out = Command::new(env!("CARGO_BIN_EXE_fhir-server"))
        .args(["check", base, "--rate", "500", "--json"])
        .arg(&json_path)
        .arg("--html")
        .arg(&html_path)
        .args(extra)
        .output()
        .expect("run fhir-server check");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap_or_default())
            .unwrap_or_else(|_| {
                panic!(
                    "no JSON report: {text}{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
    let html = std::fs::read_to_string(&html_path).expect("HTML report");
    assert!(
        html.starts_with("<!doctype html>") && html.contains(base),
        "{html}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    (out.status.code().unwrap_or(-1), text, report)
}

fn with_outcome<'a>(report: &'a Value, outcome: &str) -> Vec<&'a str> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["outcome"] == outcome)
        .filter_map(|c| c["id"].as_str())
        .collect()
}

/// This server passes everything it claims, reads and writes; the scratch resources
/// are deleted afterwards.
fn our_server_conforms(b: Backend) {
    let s = Server::start(b);
    let org = s.create_id(
        "Organization",
        r#"{"resourceType":"Organization","name":"Check Hospital"}"#,
    );
    let patient = json!({"resourceType": "Patient", "active": true, "gender": "female",
        "birthDate": "1970-03-04", "name": [{"family": "Chalmers", "given": ["Peter"]}],
        "identifier": [{"system": "urn:mrn", "value": "12345"}],
        "address": [{"city": "PleasantVille", "postalCode": "3999"}],
        "managingOrganization": {"reference": format!("Organization/{org}")}});
    let pid = s.create_id("Patient", &patient.to_string());
    for i in 0..3 {
        let obs = json!({"resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
            "subject": {"reference": format!("Patient/{pid}")},
            "effectiveDateTime": format!("2020-0{}-01T10:00:00Z", i + 1),
            "valueQuantity": {"value": 70 + i, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}});
        s.create_id("Observation", &obs.to_string());
    }
    let (code, text, report) = check(&s.base, &["--write"]);
    let failed = with_outcome(&report, "fail");
    assert!(failed.is_empty(), "failed: {failed:?}\n{text}");
    assert_eq!(code, 0, "{text}");
    let passed = with_outcome(&report, "pass");
    for id in [
        "capabilities.metadata",
        "format.accept-xml",
        "Patient.read",
        "Patient.vread",
        "Patient.search.family",
        "Patient.search.birthdate",
        "Patient.search.identifier",
        "Patient.include.organization",
        "Observation.paging",
        "Observation.search.subject",
        "Observation.search.code",
        "errors.not-found",
        "errors.invalid-json",
        "write.transaction",
        "write.conditional-update",
        "write.delete",
        "write.conditional-delete",
        "write.cleanup",
        "bulk.kick-off",
    ] {
        assert!(passed.contains(&id), "{id} did not pass:\n{text}");
    }
    assert!(
        passed
            .iter()
            .filter(|id| id.starts_with("Patient.revinclude."))
            .count()
            == 2,
        "two declared _revinclude of Patient tried: {text}"
    );
    assert!(text.contains("CONFORMS"), "{text}");
    let left = s
        .get("/Patient?family=Check,Checked,Transaction&_total=accurate")
        .json();
    assert_eq!(left["total"], 0, "scratch Patients left: {left}");
}

/// On a server without data, the writes' scratch resources are what the type checks
/// read (and they are gone afterwards).
fn an_empty_server_is_checked_on_scratch_data(b: Backend) {
    let s = Server::start(b);
    let (code, text, report) = check(&s.base, &["--write", "--types", "Observation,Patient"]);
    assert_eq!(code, 0, "{text}");
    let passed = with_outcome(&report, "pass");
    for id in [
        "Observation.read",
        "Observation.search.subject",
        "Observation.include.subject",
        "Patient.read",
    ] {
        assert!(passed.contains(&id), "{id}: {text}");
    }
    assert_eq!(s.get("/Observation?_total=accurate").json()["total"], 0);
}

/// Over TLS with authentication: the TLS session and certificate, SMART discovery,
/// and every claimed capability with an administrator's token.
fn a_secure_server_is_checked_with_a_token(b: Backend) {
    let s = common::smart::secure(b);
    let token = common::smart::admin(s);
    let ca = common::smart::fixture("ca.pem");
    let (code, text, report) = check(
        &s.base,
        &["--token", &token, "--ca-file", &ca, "--types", "Patient"],
    );
    assert_eq!(code, 0, "{text}");
    let passed = with_outcome(&report, "pass");
    for id in [
        "tls.protocol",
        "smart.discovery",
        "capabilities.metadata",
        "Patient.search",
        "bulk.kick-off",
    ] {
        assert!(passed.contains(&id), "{id}: {text}");
    }
    assert!(!text.contains(&token), "the token is not printed");
}

/// A stub FHIR server that claims Patient read, vread and search but answers a read
/// with another Patient, a `family` search without the match, and an unknown id with
/// an HTML page. Everything else it answers correctly.
fn broken_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}/fhir", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
            }
            let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            let (status, ct, body) = stub_answer(&target);
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    base
}

fn stub_answer(target: &str) -> (&'static str, &'static str, String) {
    const FHIR: &str = "application/fhir+json";
    let patient =
        |id: &str| json!({"resourceType": "Patient", "id": id, "name": [{"family": "Smith"}]});
    let bundle = |entries: Vec<Value>| {
        json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(),
            "entry": entries.into_iter().map(|r| json!({"resource": r, "search": {"mode": "match"}})).collect::<Vec<_>>()})
        .to_string()
    };
    let path = target.trim_start_matches("/fhir");
    if path.starts_with("/metadata") {
        let cs = json!({"resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
            "fhirVersion": "4.0.1", "format": ["application/fhir+json"],
            "rest": [{"mode": "server", "resource": [{"type": "Patient", "versioning": "no-version",
                "interaction": [{"code": "read"}, {"code": "search-type"}],
                "searchParam": [{"name": "family", "type": "string"}]}]}]});
        return ("200 OK", FHIR, cs.to_string());
    }
    if path.starts_with("/Patient?_id=p1&family=") {
        return ("200 OK", FHIR, bundle(vec![]));
    }
    if path.starts_with("/Patient?") {
        return ("200 OK", FHIR, bundle(vec![patient("p1")]));
    }
    if path == "/Patient/p1" {
        return ("200 OK", FHIR, patient("p2").to_string());
    }
    if path.starts_with("/Patient/") {
        return ("200 OK", "text/html", "<html>not here</html>".into());
    }
    let outcome = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found"}]});
    ("404 Not Found", FHIR, outcome.to_string())
}

#[test]
fn a_broken_server_fails_exactly_where_it_is_broken() {
    let base = broken_server();
    let (code, text, report) = check(&base, &[]);
    assert_eq!(code, 1, "{text}");
    let mut failed = with_outcome(&report, "fail");
    failed.sort();
    assert_eq!(
        failed,
        ["Patient.read", "Patient.search.family", "errors.not-found"],
        "{text}"
    );
    let read = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["id"] == "Patient.read")
        .expect("read check");
    assert_eq!(read["exchange"]["url"], format!("{base}/Patient/p1"));
    assert!(read["exchange"]["response_body"]
        .as_str()
        .unwrap_or_default()
        .contains("\"p2\""));
    assert!(
        text.contains("DOES NOT CONFORM") && text.contains("asked for p1, got id \"p2\""),
        "{text}"
    );
    for not_claimed in [
        "Patient.vread",
        "bulk.kick-off",
        "smart.discovery",
        "tls.protocol",
    ] {
        assert!(
            with_outcome(&report, "not-claimed").contains(&not_claimed),
            "{not_claimed}: {text}"
        );
    }
    assert!(
        with_outcome(&report, "pass").contains(&"errors.unknown-type"),
        "{text}"
    );
}

/// A server that does not answer: exit 1 and the reason, not a panic.
#[test]
fn an_unreachable_server_is_reported() {
    let port = common::free_port();
    let (code, text, report) = check(
        &format!("http://127.0.0.1:{port}/fhir"),
        &["--timeout", "2"],
    );
    assert_eq!(code, 1, "{text}");
    assert_eq!(
        with_outcome(&report, "fail"),
        ["capabilities.metadata"],
        "{text}"
    );
}

both_backends!(
    our_server_conforms,
    an_empty_server_is_checked_on_scratch_data,
    a_secure_server_is_checked_with_a_token,
);
