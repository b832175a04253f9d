//! HL7's terminology ecosystem test cases (`fixtures/tx-ecosystem/`, a copy of part of
//! the `tx/` folder of FHIR/fhir-test-cases) run against a server by
//! `scripts/tx-ecosystem/run.py`, which compares each answer as HL7's Java runner
//! does: on SQLite the suites' code systems and value sets go with each request as
//! `tx-resource` parameters (as the Java runner sends them), on PostgreSQL they are
//! written to the server first. Every case listed in `fixtures/tx-ecosystem/passing.txt` must
//! pass: a change that breaks one fails here. The others are printed with their first
//! difference (several of the copied expected answers are older than the setup files
//! they are run against; see that folder's README).

mod common;

use std::process::Command;

use common::{Backend, Server};
use serde_json::Value;

fn runs_the_ecosystem_cases(b: Backend) {
    let s = Server::start(b);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = s.dir.join("tx-ecosystem.json");
    let mut cmd = Command::new("python3");
    cmd.arg(root.join("scripts/tx-ecosystem/run.py"))
        .arg(&s.base)
        .arg("--json")
        .arg(&out);
    if b == Backend::Sqlite {
        cmd.args(["--no-setup", "--tx-resource"]);
    }
    let run = cmd
        .output()
        .expect("python3 is needed to run the terminology ecosystem cases");
    let printed = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("the runner's results"))
            .expect("results as JSON");
    let status = |name: &str| {
        results["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| {
                format!(
                    "{}/{}",
                    t["suite"].as_str().unwrap(),
                    t["test"].as_str().unwrap()
                ) == name
            })
            .map(|t| t["status"].as_str().unwrap().to_string())
    };
    let listed = std::fs::read_to_string(root.join("fixtures/tx-ecosystem/passing.txt"))
        .expect("fixtures/tx-ecosystem/passing.txt");
    let broken: Vec<String> = listed
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|name| status(name).as_deref() != Some("PASS"))
        .map(|name| format!("{name}: {:?}", status(name)))
        .collect();
    println!("{printed}");
    assert!(
        listed.lines().count() >= 79,
        "the list of passing cases is short"
    );
    assert!(
        broken.is_empty(),
        "cases that passed fail now: {broken:#?}\n{printed}"
    );
}

both_backends!(runs_the_ecosystem_cases);
