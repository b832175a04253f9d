//! Black-box tests of bulk `$import` (NDJSON inputs by URL, asynchronous like
//! `$export`), on SQLite and PostgreSQL: inputs from the import folder and from an
//! allowed HTTP prefix, refused lines reported as OperationOutcomes per line, kick-off
//! errors, access rules, cancellation, a job resumed after the server is killed (no line
//! lost, none loaded twice), and the Synthea set exported from one server and imported
//! into another with every resource type's count checked.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::smart::{as_, backend_token, start_secure};
use common::{unique, Backend, Resp, Server};
use serde_json::{json, Value};

// ----------------------------------------------------------------------- helpers

/// A folder for a test's input files.
fn input_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fhir-import-{}", unique(name)));
    std::fs::create_dir_all(&dir).expect("input dir");
    dir
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").expect("write input");
}

fn parameters(inputs: &[(&str, &str)]) -> String {
    let mut params = vec![json!({"name": "inputFormat", "valueCode": "application/fhir+ndjson"})];
    for (t, url) in inputs {
        params.push(json!({"name": "input", "part": [
            {"name": "type", "valueCode": t}, {"name": "url", "valueUri": url}]}));
    }
    json!({"resourceType": "Parameters", "parameter": params}).to_string()
}

fn kickoff(s: &Server, body: &str) -> Resp {
    s.req("POST", "/$import")
        .header("Prefer", "respond-async")
        .json(body)
}

fn local(s: &Server, url: &str) -> String {
    url.strip_prefix(&s.base).expect("under base").to_string()
}

/// Kicks off and returns the status path.
fn start(s: &Server, body: &str) -> String {
    let r = kickoff(s, body);
    assert_eq!(r.status, 202, "kick-off: {}", r.body);
    local(s, r.header("content-location").expect("Content-Location"))
}

/// Polls until the job completes; returns the manifest.
fn wait(s: &Server, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let r = s.get(status);
        match r.status {
            200 => return r.json(),
            202 => assert!(r.header("x-progress").is_some(), "X-Progress missing"),
            other => panic!("status {other}: {}", r.body),
        }
        assert!(Instant::now() < deadline, "import did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn count(s: &Server, query: &str) -> u64 {
    let sep = if query.contains('?') { '&' } else { '?' };
    let r = s.get(&format!("/{query}{sep}_summary=count"));
    assert_eq!(r.status, 200, "{query}: {}", r.body);
    r.json()["total"].as_u64().expect("total")
}

fn patient(id: Option<&str>, tag: &str, n: usize) -> String {
    let mut p = json!({"resourceType": "Patient", "identifier": [{"system": "urn:import-test", "value": format!("{tag}-{n}")}],
        "name": [{"family": tag}]});
    if let Some(id) = id {
        p["id"] = json!(id);
    }
    p.to_string()
}

// ------------------------------------------------------------------------- tests

/// Two inputs from the import folder load; the manifest counts them; references
/// between the files resolve; a line without an id is created with a new one.
fn loads_ndjson_files(b: Backend) {
    let dir = input_dir("ok");
    let s = Server::start_with(b, &["--import-dir", &dir.display().to_string()]);
    let tag = unique("imp").replace('-', "");
    let patients: Vec<String> = (0..3)
        .map(|n| patient(Some(&format!("{tag}-p{n}")), &tag, n))
        .collect();
    write_lines(&dir.join("Patient.ndjson"), &patients);
    let mut observations: Vec<String> = (0..3)
        .map(|n| {
            json!({"resourceType": "Observation", "id": format!("{tag}-o{n}"), "status": "final",
            "code": {"text": "weight"}, "subject": {"reference": format!("Patient/{tag}-p{n}")}})
            .to_string()
        })
        .collect();
    observations.push(
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "weight"},
        "subject": {"reference": format!("Patient/{tag}-p0")}})
        .to_string(),
    );
    write_lines(&dir.join("Observation.ndjson"), &observations);
    let body = parameters(&[
        ("Patient", &file_url(&dir.join("Patient.ndjson"))),
        ("Observation", &file_url(&dir.join("Observation.ndjson"))),
    ]);
    let manifest = wait(&s, &start(&s, &body));
    assert_eq!(manifest["output"][0]["type"], "Patient", "{manifest}");
    assert_eq!(manifest["output"][0]["count"], 3, "{manifest}");
    assert_eq!(manifest["output"][1]["count"], 4, "{manifest}");
    assert_eq!(manifest["error"], json!([]), "{manifest}");
    assert!(manifest["request"].as_str().unwrap().ends_with("/$import"));
    assert!(manifest["transactionTime"].is_string());
    let p = s.get(&format!("/Patient/{tag}-p1"));
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(p.json()["meta"]["versionId"], "1");
    assert_eq!(
        count(&s, &format!("Observation?subject=Patient/{tag}-p0")),
        2
    );
    assert_eq!(
        count(&s, &format!("Observation?subject:Patient.family={tag}")),
        4
    );
    // The draft's JSON manifest form of the kick-off works too; a second import of the
    // same file updates the resources (new versions), it does not duplicate them.
    let manifest_body = json!({"inputFormat": "application/fhir+ndjson",
        "input": [{"type": "Patient", "url": file_url(&dir.join("Patient.ndjson"))}]});
    let again = wait(&s, &start(&s, &manifest_body.to_string()));
    assert_eq!(again["output"][0]["count"], 3, "{again}");
    assert_eq!(count(&s, &format!("Patient?family={tag}")), 3);
    assert_eq!(
        s.get(&format!("/Patient/{tag}-p1")).json()["meta"]["versionId"],
        "2"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Lines are written in groups (one statement per group for versions and rows): an id
/// given twice in one group, and one given in two groups for a resource that existed
/// before, each get every version in order, and search sees only the last one.
fn ids_repeated_within_and_across_groups(b: Backend) {
    let dir = input_dir("groups");
    let s = Server::start_with(b, &["--import-dir", &dir.display().to_string()]);
    let tag = unique("grp").replace('-', "");
    let with_family = |id: &str, family: &str| {
        json!({"resourceType": "Patient", "id": id, "name": [{"family": family}],
            "identifier": [{"system": "urn:import-test", "value": tag}]})
        .to_string()
    };
    let old = s
        .req("PUT", &format!("/Patient/{tag}-x"))
        .json(&with_family(&format!("{tag}-x"), &format!("{tag}old")));
    assert_eq!(old.status, 201, "{}", old.body);
    let mut lines: Vec<String> = (0..150)
        .map(|n| with_family(&format!("{tag}-p{n}"), &format!("{tag}f{n}")))
        .collect();
    lines[6] = with_family(&format!("{tag}-p5"), &format!("{tag}twice"));
    lines[10] = with_family(&format!("{tag}-x"), &format!("{tag}first"));
    lines[100] = with_family(&format!("{tag}-x"), &format!("{tag}second"));
    for line in &mut lines[140..150] {
        *line = json!({"resourceType": "Patient", "name": [{"family": format!("{tag}new")}],
            "identifier": [{"system": "urn:import-test", "value": tag}]})
        .to_string();
    }
    write_lines(&dir.join("Patient.ndjson"), &lines);
    let body = parameters(&[("Patient", &file_url(&dir.join("Patient.ndjson")))]);
    let manifest = wait(&s, &start(&s, &body));
    assert_eq!(manifest["output"][0]["count"], 150, "{manifest}");
    // 150 lines: p0…p139 but p6, p10 and p100 (137; p5 twice), x, and 10 new.
    assert_eq!(
        count(&s, &format!("Patient?identifier=urn:import-test|{tag}")),
        148
    );
    let x = s.get(&format!("/Patient/{tag}-x")).json();
    assert_eq!(x["meta"]["versionId"], "3", "{x}");
    assert_eq!(x["name"][0]["family"], format!("{tag}second"));
    let history = s.get(&format!("/Patient/{tag}-x/_history")).json();
    assert_eq!(history["total"], 3, "{history}");
    let p5 = s.get(&format!("/Patient/{tag}-p5")).json();
    assert_eq!(p5["meta"]["versionId"], "2", "{p5}");
    assert_eq!(p5["name"][0]["family"], format!("{tag}twice"));
    for (family, n) in [
        ("old", 0),
        ("first", 0),
        ("second", 1),
        ("twice", 1),
        ("f5", 0),
        ("new", 10),
    ] {
        assert_eq!(
            count(&s, &format!("Patient?family:exact={tag}{family}")),
            n,
            "{family}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Lines are validated against the code systems written through the API, as on any
/// write, including one loaded by an earlier input of the same job: a code the code
/// system does not have is refused, one it has loads.
fn codes_checked_against_stored_code_systems(b: Backend) {
    let dir = input_dir("codes");
    let s = Server::start_with(b, &["--import-dir", &dir.display().to_string()]);
    let tag = unique("codes").replace('-', "");
    let cs = format!("http://example.org/cs/{tag}");
    let code_system = json!({"resourceType": "CodeSystem", "url": cs, "status": "active",
        "content": "complete", "concept": [{"code": "a", "display": "Alpha"}]});
    write_lines(&dir.join("cs.ndjson"), &[code_system.to_string()]);
    let observation = |code: &str| {
        json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": cs, "code": code}], "text": tag}})
        .to_string()
    };
    let lines = [observation("a"), observation("zz"), observation("a")];
    write_lines(&dir.join("obs.ndjson"), &lines);
    let body = parameters(&[
        ("CodeSystem", &file_url(&dir.join("cs.ndjson"))),
        ("Observation", &file_url(&dir.join("obs.ndjson"))),
    ]);
    let manifest = wait(&s, &start(&s, &body));
    assert_eq!(manifest["output"][0]["count"], 1, "{manifest}");
    assert_eq!(manifest["output"][1]["count"], 2, "{manifest}");
    let error = &manifest["error"][0];
    assert_eq!(error["count"], 1, "{manifest}");
    let r = s.get(&local(&s, error["url"].as_str().expect("url")));
    assert!(r.body.contains("line 2"), "{}", r.body);
    assert!(
        r.body
            .contains(&format!("Unknown code 'zz' in the CodeSystem '{cs}'")),
        "{}",
        r.body
    );
    assert_eq!(count(&s, &format!("Observation?code:text={tag}")), 2);
    let _ = std::fs::remove_dir_all(dir);
}

/// Bad lines are refused one by one, each reported with its line number in the
/// input's error file; the good lines load.
fn refused_lines_are_reported(b: Backend) {
    let dir = input_dir("bad");
    let s = Server::start_with(b, &["--import-dir", &dir.display().to_string()]);
    let tag = unique("bad").replace('-', "");
    let lines = vec![
        json!({"resourceType": "Observation", "status": "final", "code": {"text": tag}}).to_string(),
        "{not json".to_string(),
        json!({"resourceType": "Patient", "name": [{"family": tag}]}).to_string(),
        String::new(),
        json!({"resourceType": "Observation", "id": "no-status", "code": {"text": tag}}).to_string(),
        json!({"resourceType": "Observation", "status": "final", "code": {"text": tag}, "bogus": 1}).to_string(),
        json!({"resourceType": "Observation", "status": "final", "code": {"text": tag}}).to_string(),
    ];
    write_lines(&dir.join("obs.ndjson"), &lines);
    let url = file_url(&dir.join("obs.ndjson"));
    let manifest = wait(&s, &start(&s, &parameters(&[("Observation", &url)])));
    assert_eq!(manifest["output"][0]["count"], 2, "{manifest}");
    let error = &manifest["error"][0];
    assert_eq!(error["type"], "OperationOutcome", "{manifest}");
    assert_eq!(error["inputUrl"], url.as_str());
    assert_eq!(error["count"], 4, "{manifest}");
    let r = s.get(&local(&s, error["url"].as_str().expect("url")));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/fhir+ndjson"));
    let outcomes: Vec<Value> = r
        .body
        .lines()
        .map(|l| serde_json::from_str(l).expect("ndjson"))
        .collect();
    let lines_named: Vec<&str> = outcomes
        .iter()
        .map(|o| o["issue"][0]["diagnostics"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        lines_named,
        ["line 2", "line 3", "line 5", "line 6"],
        "{}",
        r.body
    );
    let text = r.body.to_lowercase();
    assert!(text.contains("json"), "{text}");
    assert!(text.contains("'patient'"), "{text}");
    assert!(text.contains("observation.status"), "{text}");
    assert!(text.contains("bogus"), "{text}");
    assert!(outcomes[2]["issue"][0]["details"]["text"]
        .as_str()
        .unwrap()
        .contains("Observation/no-status"));
    assert_eq!(count(&s, &format!("Observation?code:text={tag}")), 2);
    let _ = std::fs::remove_dir_all(dir);
}

/// The kick-off's rules: async only, JSON only, inputs only from where the server may
/// read, parameters named when wrong; unknown jobs are 404; other methods 405.
fn kickoff_errors(b: Backend) {
    let dir = input_dir("err");
    let s = Server::start_with(b, &["--import-dir", &dir.display().to_string()]);
    write_lines(&dir.join("p.ndjson"), &[patient(None, "x", 0)]);
    let good = parameters(&[("Patient", &file_url(&dir.join("p.ndjson")))]);
    let r = s.req("POST", "/$import").json(&good);
    assert!(
        r.outcome(400).to_string().contains("respond-async"),
        "{}",
        r.body
    );
    let r = s
        .req("POST", "/$import")
        .header("Prefer", "respond-async")
        .header("Accept", "application/fhir+xml")
        .json(&good);
    assert_eq!(r.status, 406, "{}", r.body);
    let outside = std::env::temp_dir().join(format!("{}.ndjson", unique("outside")));
    write_lines(&outside, &[patient(None, "x", 0)]);
    let cases = [
        (parameters(&[("Patient", &file_url(&outside))]), "input[0].url"),
        (
            parameters(&[("Patient", &format!("{}/../x.ndjson", file_url(&dir)))]),
            "input[0].url",
        ),
        (parameters(&[("Patient", "https://partner.example/p.ndjson")]), "input[0].url"),
        (parameters(&[("Patient", "ftp://partner.example/p.ndjson")]), "input[0].url"),
        (parameters(&[("Nope", &file_url(&dir.join("p.ndjson")))]), "input[0].type"),
        (parameters(&[]), "input"),
        (
            json!({"resourceType": "Parameters", "parameter": [{"name": "inputFormat", "valueCode": "text/csv"}]}).to_string(),
            "Parameters.parameter[0]",
        ),
        (json!({"resourceType": "Patient"}).to_string(), "resourceType"),
    ];
    for (body, at) in cases {
        let r = kickoff(&s, &body);
        r.outcome(400);
        assert_eq!(r.issue_expression(), at, "{body}: {}", r.body);
    }
    let r = s.get("/$import-status/no-such-job");
    r.outcome(404);
    s.get("/$import-errors/no-such-job/0").outcome(404);
    s.get("/$import-errors/no-such-job/not-a-number")
        .outcome(404);
    let r = s.req("DELETE", "/$import-status/no-such-job").send();
    r.outcome(404);
    let r = s.get("/$import");
    assert_eq!(r.status, 405, "{}", r.body);
    assert_eq!(r.header("allow"), Some("POST"));
    let _ = std::fs::remove_file(outside);
    let _ = std::fs::remove_dir_all(dir);
}

/// A tiny HTTP file server: `GET /data/NAME` answers the file, `/moved` redirects.
fn http_files(dir: PathBuf) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
            let reply = match path.strip_prefix("/data/").map(|f| std::fs::read(dir.join(f))) {
                Some(Ok(body)) => {
                    let mut r = format!("HTTP/1.1 200 OK\r\nContent-Type: application/fhir+ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).into_bytes();
                    r.extend(body);
                    r
                }
                _ if path == "/data/moved.ndjson" || path.starts_with("/moved") => {
                    b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
                }
                _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
            };
            let _ = stream.write_all(&reply);
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// Inputs fetched over HTTP under an allowed prefix load (gzip too); a redirect is not
/// followed and a missing file is reported as that input's failure.
fn http_inputs(b: Backend) {
    let dir = input_dir("http");
    let tag = unique("http").replace('-', "");
    write_lines(
        &dir.join("p.ndjson"),
        &[patient(None, &tag, 0), patient(None, &tag, 1)],
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all((patient(None, &tag, 2) + "\n").as_bytes())
        .unwrap();
    std::fs::write(dir.join("q.ndjson.gz"), gz.finish().unwrap()).unwrap();
    let host = http_files(dir.clone());
    let prefix = format!("{host}/data/");
    let s = Server::start_with(b, &["--import-allowed-urls", &prefix]);
    let body = parameters(&[
        ("Patient", &format!("{prefix}p.ndjson")),
        ("Patient", &format!("{prefix}q.ndjson.gz")),
        ("Patient", &format!("{prefix}missing.ndjson")),
        ("Patient", &format!("{prefix}moved.ndjson")),
    ]);
    let manifest = wait(&s, &start(&s, &body));
    let counts: Vec<u64> = manifest["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [2, 1, 0, 0], "{manifest}");
    assert_eq!(count(&s, &format!("Patient?family={tag}")), 3);
    let errors = manifest["error"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{manifest}");
    let text: Vec<String> = errors
        .iter()
        .map(|e| s.get(&local(&s, e["url"].as_str().unwrap())).body)
        .collect();
    assert!(text[0].contains("HTTP 404"), "{}", text[0]);
    assert!(
        text[1].contains("redirects are not followed"),
        "{}",
        text[1]
    );
    // Outside the prefix: refused at kick-off.
    let r = kickoff(
        &s,
        &parameters(&[("Patient", &format!("{host}/other/p.ndjson"))]),
    );
    assert!(
        r.outcome(400).to_string().contains("--import-allowed-urls"),
        "{}",
        r.body
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A job killed half-way — in its second input, while the first is written and the
/// second checked ahead — resumes when the server starts again: every line loaded once
/// (lines without ids are not created twice), none lost.
fn resumes_after_a_crash(b: Backend) {
    let dir = input_dir("resume");
    let tag = unique("res").replace('-', "");
    let n = 1500;
    let lines: Vec<String> = (0..n)
        .map(|i| {
            let id = format!("{tag}-{i}");
            patient((i % 2 == 0).then_some(id.as_str()), &tag, i)
        })
        .collect();
    let first = 600;
    write_lines(&dir.join("p.ndjson"), &lines[..first]);
    write_lines(&dir.join("q.ndjson"), &lines[first..]);
    let dir_arg = dir.display().to_string();
    let mut s = Server::start_with(
        b,
        &[
            "--import-dir",
            &dir_arg,
            "--import-batch",
            "50",
            "--import-batch-delay-ms",
            "40",
        ],
    );
    let status = start(
        &s,
        &parameters(&[
            ("Patient", &file_url(&dir.join("p.ndjson"))),
            ("Patient", &file_url(&dir.join("q.ndjson"))),
        ]),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let loaded = count(&s, &format!("Patient?family={tag}"));
        if loaded >= first as u64 + 200 {
            assert!(loaded < n as u64, "finished before the kill");
            break;
        }
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(50));
    }
    s.restart();
    let manifest = wait(&s, &status);
    assert_eq!(manifest["output"][0]["count"], first, "{manifest}");
    assert_eq!(manifest["output"][1]["count"], n - first, "{manifest}");
    assert_eq!(manifest["error"], json!([]), "{manifest}");
    assert_eq!(count(&s, &format!("Patient?family={tag}")), n as u64);
    for i in [0, 2, n - 2] {
        let r = s.get(&format!("/Patient/{tag}-{i}"));
        assert_eq!(r.json()["meta"]["versionId"], "1", "{}", r.body);
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A cancelled job stops and is gone: its status answers 404.
fn cancel(b: Backend) {
    let dir = input_dir("cancel");
    let tag = unique("can").replace('-', "");
    let lines: Vec<String> = (0..400).map(|i| patient(None, &tag, i)).collect();
    write_lines(&dir.join("p.ndjson"), &lines);
    let dir_arg = dir.display().to_string();
    let s = Server::start_with(
        b,
        &[
            "--import-dir",
            &dir_arg,
            "--import-batch",
            "20",
            "--import-batch-delay-ms",
            "50",
        ],
    );
    let status = start(
        &s,
        &parameters(&[("Patient", &file_url(&dir.join("p.ndjson")))]),
    );
    let r = s.req("DELETE", &status).send();
    assert_eq!(r.status, 202, "{}", r.body);
    s.get(&status).outcome(404);
    std::thread::sleep(Duration::from_millis(500));
    let loaded = count(&s, &format!("Patient?family={tag}"));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        count(&s, &format!("Patient?family={tag}")),
        loaded,
        "still loading"
    );
    assert!(loaded < 400);
    let _ = std::fs::remove_dir_all(dir);
}

/// With authentication: importing needs unrestricted create and update of each input
/// type; a job is only visible to its client; writes carry the client as meta.source.
fn access_rules(b: Backend) {
    let dir = input_dir("auth");
    let tag = unique("auth").replace('-', "");
    write_lines(&dir.join("p.ndjson"), &[patient(None, &tag, 0)]);
    let s = start_secure(b, &["--import-dir", &dir.display().to_string()]);
    let body = parameters(&[("Patient", &file_url(&dir.join("p.ndjson")))]);
    let reader = backend_token(&s, "reader", "system/*.rs");
    let r = as_(&s, &reader, "POST", "/$import")
        .header("Prefer", "respond-async")
        .json(&body);
    assert_eq!(r.status, 403, "{}", r.body);
    let admin = backend_token(&s, "backend-all", "system/*.cruds");
    let r = as_(&s, &admin, "POST", "/$import")
        .header("Prefer", "respond-async")
        .json(&body);
    assert_eq!(r.status, 202, "{}", r.body);
    let status = local(&s, r.header("content-location").unwrap());
    assert_eq!(as_(&s, &reader, "GET", &status).send().status, 404);
    let deadline = Instant::now() + Duration::from_secs(60);
    let manifest = loop {
        let r = as_(&s, &admin, "GET", &status).send();
        if r.status == 200 {
            break r.json();
        }
        assert_eq!(r.status, 202, "{}", r.body);
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(manifest["requiresAccessToken"], true);
    assert_eq!(manifest["output"][0]["count"], 1, "{manifest}");
    let found = as_(&s, &admin, "GET", &format!("/Patient?family={tag}"))
        .send()
        .json();
    assert_eq!(
        found["entry"][0]["resource"]["meta"]["source"], "urn:fhir-server:client:backend-all",
        "{found}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// The Synthea set, loaded into one server as transaction Bundles and exported, is
/// imported into another: every type's count matches the export's.
fn synthea_round_trip(b: Backend) {
    let dir = input_dir("synthea");
    let source = Server::start(b);
    let mut files: Vec<PathBuf> = std::fs::read_dir("/work/shared/synthea")
        .expect("the shared Synthea set (/work/shared/synthea) is missing")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        10,
        "the shared Synthea set should hold 10 Bundles"
    );
    for f in &files {
        let r = source
            .req("POST", "")
            .json(&std::fs::read_to_string(f).unwrap());
        assert_eq!(
            r.status,
            200,
            "{}: {}",
            f.display(),
            &r.body[..r.body.len().min(300)]
        );
    }
    let r = source
        .req("GET", "/$export")
        .header("Prefer", "respond-async")
        .send();
    assert_eq!(r.status, 202, "{}", r.body);
    let export = wait(
        &source,
        &local(&source, r.header("content-location").unwrap()),
    );
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let mut inputs = Vec::new();
    for (i, f) in export["output"].as_array().unwrap().iter().enumerate() {
        let t = f["type"].as_str().unwrap().to_string();
        *expected.entry(t.clone()).or_default() += f["count"].as_u64().unwrap();
        let body = source.get(&local(&source, f["url"].as_str().unwrap())).body;
        let path = dir.join(format!("{i}-{t}.ndjson"));
        std::fs::write(&path, body).unwrap();
        inputs.push((t, file_url(&path)));
    }
    drop(source);
    assert!(expected.values().sum::<u64>() > 20_000, "{expected:?}");
    let target = Server::start_with(b, &["--import-dir", &dir.display().to_string()]);
    let refs: Vec<(&str, &str)> = inputs
        .iter()
        .map(|(t, u)| (t.as_str(), u.as_str()))
        .collect();
    let manifest = wait(&target, &start(&target, &parameters(&refs)));
    // Validation on: Synthea's self-pay claims name the Patient as the insurer, which
    // ExplanationOfBenefit.insurer (Reference(Organization)) does not allow; those lines
    // are refused, each with that reason, and nothing else is.
    let errors = manifest["error"].as_array().expect("error list");
    assert_eq!(errors.len(), 1, "{manifest}");
    let eob_input = errors[0]["inputUrl"].as_str().unwrap().to_string();
    assert!(
        eob_input.ends_with("-ExplanationOfBenefit.ndjson"),
        "{manifest}"
    );
    let refused = errors[0]["count"].as_u64().unwrap();
    let file = target
        .get(&local(&target, errors[0]["url"].as_str().unwrap()))
        .body;
    assert_eq!(file.lines().count() as u64, refused);
    assert!(
        file.lines()
            .all(|l| l.contains("ExplanationOfBenefit.insurer.reference")),
        "{}",
        &file[..file.len().min(2000)]
    );
    for (t, n) in &expected {
        let loaded = if t == "ExplanationOfBenefit" {
            n - refused
        } else {
            *n
        };
        assert_eq!(count(&target, t), loaded, "{t}");
    }
    // `Prefer: handling=lenient` loads them as a lenient write would.
    let r = target
        .req("POST", "/$import")
        .header("Prefer", "respond-async, handling=lenient")
        .json(&parameters(&[("ExplanationOfBenefit", &eob_input)]));
    assert_eq!(r.status, 202, "{}", r.body);
    let lenient = wait(
        &target,
        &local(&target, r.header("content-location").unwrap()),
    );
    assert_eq!(lenient["error"], json!([]), "{lenient}");
    for (t, n) in &expected {
        assert_eq!(count(&target, t), *n, "{t}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

both_backends!(
    loads_ndjson_files,
    ids_repeated_within_and_across_groups,
    codes_checked_against_stored_code_systems,
    refused_lines_are_reported,
    kickoff_errors,
    http_inputs,
    resumes_after_a_crash,
    cancel,
    access_rules,
    synthea_round_trip,
);
