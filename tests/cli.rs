//! The command-line sub-commands, run as a user would.

use std::process::Command;

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fhir-server"))
        .args(args)
        .output()
        .expect("run fhir-server");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn patient_file() -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("fhir-cli-{}.json", std::process::id()));
    std::fs::write(
        &path,
        r#"{"resourceType":"Patient","name":[{"given":["Peter","James"]}],"birthDate":"1974-12-25"}"#,
    )
    .unwrap();
    path
}

#[test]
fn fhirpath_prints_the_result_collection() {
    let file = patient_file();
    let (ok, out, err) = run(&["fhirpath", "Patient.name.given", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v, serde_json::json!(["Peter", "James"]));
    let (ok, out, _) = run(&[
        "fhirpath",
        "birthDate < @2000-01-01",
        file.to_str().unwrap(),
    ]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap(),
        serde_json::json!([true])
    );
}

#[test]
fn fhirpath_reports_bad_expressions_with_their_position() {
    let file = patient_file();
    let (ok, _, err) = run(&["fhirpath", "Patient.name.where(", file.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("column"), "{err}");
    let (ok, _, err) = run(&["fhirpath", "name", "/no/such/file.json"]);
    assert!(!ok);
    assert!(err.contains("/no/such/file.json"), "{err}");
}

#[test]
fn unsupported_database_urls_are_refused_at_start() {
    let (ok, _, err) = run(&[
        "serve",
        "--database-url",
        "mysql://x",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!ok);
    assert!(err.contains("unsupported database URL"), "{err}");
}

mod common;

/// `reindex` recomputes the index of stored resources, with the server running.
#[test]
fn reindex_rebuilds_the_search_index() {
    for backend in [common::Backend::Sqlite, common::Backend::Postgres] {
        let s = common::Server::start(backend);
        let id = s.create_id(
            "Patient",
            r#"{"resourceType":"Patient","name":[{"family":"Reindexed"}]}"#,
        );
        let (ok, out, err) = run(&["reindex", "--database-url", &s.db_url]);
        assert!(ok, "{err}");
        assert!(out.contains("reindexed 1 resources"), "{out}");
        let found = s.get("/Patient?name=reindexed").json();
        assert_eq!(found["entry"][0]["resource"]["id"], id.as_str());
        let (ok, _, err) = run(&["reindex", "--database-url", &s.db_url, "--type", "Nope"]);
        assert!(!ok && err.contains("unknown resource type"), "{err}");
    }
}
