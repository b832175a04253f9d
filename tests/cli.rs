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

/// `import` loads Bundles and NDJSON (gzip too) through a running server, skips what a
/// previous run loaded, and stops with the file and entry of what is invalid.
#[test]
fn import_loads_files_resumably_and_names_failures() {
    use std::io::Write;
    for backend in [common::Backend::Sqlite, common::Backend::Postgres] {
        let s = common::Server::start(backend);
        let dir =
            std::env::temp_dir().join(format!("fhir-import-{}-{:?}", std::process::id(), backend));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let tx = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:7c1c2b1e-0000-4000-8000-000000000001",
             "resource": {"resourceType": "Patient", "name": [{"family": "Imported"}]},
             "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                          "subject": {"reference": "urn:uuid:7c1c2b1e-0000-4000-8000-000000000001"}},
             "request": {"method": "POST", "url": "Observation"}}]});
        std::fs::write(dir.join("a.json"), tx.to_string()).unwrap();
        let ndjson = "{\"resourceType\":\"Patient\",\"id\":\"nd1\"}\n{\"resourceType\":\"Patient\",\"id\":\"nd2\"}\n";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(ndjson.as_bytes()).unwrap();
        std::fs::write(dir.join("b.ndjson.gz"), gz.finish().unwrap()).unwrap();
        let state = dir.join("state");
        let args = |extra: &str| {
            vec![
                "import".to_string(),
                "--url".into(),
                s.base.clone(),
                "--state".into(),
                state.display().to_string(),
                dir.join(extra).display().to_string(),
            ]
        };
        let run_args = |a: Vec<String>| run(&a.iter().map(String::as_str).collect::<Vec<_>>());
        let (ok, out, err) = run_args(args(""));
        assert!(ok, "{err}");
        assert!(out.contains("imported 4 resources from 2 files"), "{out}");
        assert_eq!(
            s.get("/Observation?subject:Patient.name=imported&_summary=count")
                .json()["total"],
            1
        );
        assert_eq!(s.get("/Patient/nd2").status, 200);
        let (ok, out, _) = run_args(args(""));
        assert!(ok && out.contains("2 files already loaded"), "{out}");
        // A new import (its own state) of the same files loads them again: the
        // idempotency keys of a crashed run's re-run do not outlive that import.
        let mut again = args("a.json");
        again[4] = dir.join("state-2").display().to_string();
        let (ok, out, err) = run_args(again);
        assert!(ok, "{err}");
        assert!(out.contains("imported 2 resources from 1 files"), "{out}");
        assert_eq!(
            s.get("/Observation?subject:Patient.name=imported&_summary=count")
                .json()["total"],
            2
        );
        // The state is per target: another server's database gets the files too.
        let other = common::Server::start(backend);
        let mut to_other = args("");
        to_other[2] = other.base.clone();
        let (ok, out, err) = run_args(to_other);
        assert!(ok, "{err}");
        assert!(out.contains("imported 4 resources from 2 files"), "{out}");
        std::fs::write(dir.join("c.json"), r#"{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient","birthDate":"soon"},"request":{"method":"POST","url":"Patient"}}]}"#).unwrap();
        let (ok, _, err) = run_args(args("c.json"));
        assert!(!ok);
        assert!(err.contains("c.json") && err.contains("entry 0"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn import_loads_again_files_whose_conditional_references_come_from_another_file() {
    for backend in [common::Backend::Sqlite, common::Backend::Postgres] {
        let s = common::Server::start(backend);
        let dir = std::env::temp_dir().join(format!(
            "fhir-import-deps-{}-{:?}",
            std::process::id(),
            backend
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // As Synthea writes them: patients refer to practitioners by identifier, and the
        // practitioners come in a file of their own (here sorted after the patients).
        let patient = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Encounter", "status": "finished",
                          "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                          "participant": [{"individual": {"reference": "Practitioner?identifier=urn:npi|dep-42"}}]},
             "request": {"method": "POST", "url": "Encounter"}}]});
        let practitioner = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Practitioner", "identifier": [{"system": "urn:npi", "value": "dep-42"}]},
             "request": {"method": "POST", "url": "Practitioner", "ifNoneExist": "identifier=urn:npi|dep-42"}}]});
        std::fs::write(dir.join("a_patient.json"), patient.to_string()).unwrap();
        std::fs::write(dir.join("b_practitioners.json"), practitioner.to_string()).unwrap();
        let state = dir.join("state");
        // One job: the patients' file is loaded first, and must be loaded again.
        let (ok, out, err) = run(&[
            "import",
            "--jobs",
            "1",
            "--url",
            &s.base,
            "--state",
            &state.display().to_string(),
            &dir.display().to_string(),
        ]);
        assert!(ok, "{err}");
        assert!(out.contains("imported 2 resources from 2 files"), "{out}");
        let found = s
            .get("/Encounter?participant:Practitioner.identifier=urn:npi|dep-42&_summary=count")
            .json();
        assert_eq!(found["total"], 1, "{found}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn validate_and_import_read_fhir_xml_files() {
    let dir = std::env::temp_dir().join(format!("fhir-cli-xml-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.xml");
    std::fs::write(&good, r#"<Patient xmlns="http://hl7.org/fhir"><name><family value="Xmlfile"/></name><birthDate value="1974-12-25"/></Patient>"#).unwrap();
    let bad = dir.join("bad.xml");
    std::fs::write(
        &bad,
        r#"<Patient xmlns="http://hl7.org/fhir"><birthDate value="soon"/></Patient>"#,
    )
    .unwrap();
    let broken = dir.join("broken.xml");
    std::fs::write(
        &broken,
        "<Patient xmlns=\"http://hl7.org/fhir\">\n<colour value=\"red\"/></Patient>",
    )
    .unwrap();
    let (ok, out, _) = run(&["validate", good.to_str().unwrap()]);
    assert!(ok, "{out}");
    let (ok, out, _) = run(&["validate", bad.to_str().unwrap(), broken.to_str().unwrap()]);
    assert!(!ok);
    assert!(out.contains("bad.xml: error: Patient.birthDate"), "{out}");
    assert!(
        out.contains("broken.xml: error: invalid FHIR XML at line 2, column 1"),
        "{out}"
    );
    std::fs::remove_file(&bad).unwrap();
    std::fs::remove_file(&broken).unwrap();
    let s = common::Server::start(common::Backend::Sqlite);
    let state = dir.join("state");
    let (ok, out, err) = run(&[
        "import",
        "--url",
        &s.base,
        "--state",
        state.to_str().unwrap(),
        dir.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("imported 1 resources from 1 files"), "{out}");
    assert_eq!(
        s.get("/Patient?family=xmlfile&_summary=count").json()["total"],
        1
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `terminology load` writes code systems, value sets and concept maps from JSON, NDJSON
/// and XML; a second load replaces them by URL and version; the operations use them at
/// once; a file with another resource type writes nothing.
#[test]
fn terminology_load_replaces_by_url_and_version() {
    for backend in [common::Backend::Sqlite, common::Backend::Postgres] {
        let s = common::Server::start(backend);
        let dir = std::env::temp_dir().join(format!("fhir-tx-{}-{backend:?}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let cs_url = format!("http://example.org/cs/{}", common::unique("load"));
        let code_system = |display: &str| {
            serde_json::json!({"resourceType": "CodeSystem", "url": cs_url, "version": "1",
                "status": "active", "content": "complete", "concept": [
                    {"code": "a", "display": display, "concept": [{"code": "a1", "display": "Alpha one"}]},
                    {"code": "b", "display": "Beta"}]})
            .to_string()
        };
        std::fs::write(dir.join("cs.json"), code_system("Alpha")).unwrap();
        let vs_url = format!("{cs_url}/vs");
        let vs = serde_json::json!({"resourceType": "ValueSet", "url": vs_url, "status": "active",
            "compose": {"include": [{"system": cs_url}]}});
        let cm = serde_json::json!({"resourceType": "ConceptMap", "url": format!("{cs_url}/cm"),
            "status": "active", "group": [{"source": cs_url, "target": "http://example.org/other",
            "element": [{"code": "a", "target": [{"code": "z", "equivalence": "equivalent"}]}]}]});
        std::fs::write(dir.join("more.ndjson"), format!("{vs}\n{cm}\n")).unwrap();
        let xml = format!(
            r#"<CodeSystem xmlns="http://hl7.org/fhir"><url value="{cs_url}/x"/><status value="active"/><content value="complete"/><concept><code value="x"/><display value="Ex"/></concept></CodeSystem>"#
        );
        std::fs::write(dir.join("x.xml"), xml).unwrap();
        let load = |path: &std::path::Path| {
            run(&[
                "terminology",
                "load",
                "--url",
                &s.base,
                path.to_str().unwrap(),
            ])
        };
        let (ok, out, err) = load(&dir);
        assert!(ok, "{err}");
        assert!(
            out.contains("loaded 2 code systems (4 concepts), 1 value sets and 1 concept maps"),
            "{out}"
        );
        let lookup = |code: &str| {
            s.get(&format!("/CodeSystem/$lookup?system={cs_url}&code={code}"))
                .json()
        };
        assert_eq!(
            common::parameter(&lookup("a1"), "display")["valueString"],
            "Alpha one"
        );
        let expanded = s.get(&format!("/ValueSet/$expand?url={vs_url}")).json();
        assert_eq!(expanded["expansion"]["total"], 3, "{expanded}");
        // Loaded again with a new display: replaced, not added.
        std::fs::write(dir.join("cs.json"), code_system("Alpha 2")).unwrap();
        let (ok, _, err) = load(&dir.join("cs.json"));
        assert!(ok, "{err}");
        let count = s
            .get(&format!("/CodeSystem?url={cs_url}&_summary=count"))
            .json();
        assert_eq!(count["total"], 1, "{count}");
        let display = lookup("a");
        assert!(display.to_string().contains("Alpha 2"), "{display}");
        // Another version is kept beside it; the one written last answers.
        let v2 = code_system("Alpha v2").replace(r#""version":"1""#, r#""version":"2""#);
        std::fs::write(dir.join("cs.json"), v2).unwrap();
        let (ok, _, err) = load(&dir.join("cs.json"));
        assert!(ok, "{err}");
        let count = s
            .get(&format!("/CodeSystem?url={cs_url}&_summary=count"))
            .json();
        assert_eq!(count["total"], 2, "{count}");
        let display = lookup("a");
        assert!(display.to_string().contains("Alpha v2"), "{display}");
        // A Patient among them: refused before anything is written.
        let other = serde_json::json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": {"resourceType": "CodeSystem", "url": format!("{cs_url}/late"),
                "status": "active", "content": "complete"}},
            {"resource": {"resourceType": "Patient"}}]});
        std::fs::write(dir.join("bad.json"), other.to_string()).unwrap();
        let (ok, _, err) = load(&dir.join("bad.json"));
        assert!(
            !ok && err.contains("resource 2") && err.contains("use import"),
            "{err}"
        );
        let late = s
            .get(&format!("/CodeSystem?url={cs_url}/late&_summary=count"))
            .json();
        assert_eq!(late["total"], 0);
    }
}
