//! Black-box tests of FHIR Bulk Data export (`$export`, Bulk Data Access 2.0) and of
//! Patient `$everything`, on SQLite and PostgreSQL, with Synthea patient records loaded
//! as transaction Bundles.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{shared, Backend, Resp, Server};
use serde_json::{json, Value};

const SMALL: &str = "/work/shared/synthea/Darrell_Erdman_c9efcb62.json";
const SECOND: &str = "/work/shared/synthea/Juliane_Hammes_700ccefc.json";

// ----------------------------------------------------------------------- helpers

/// Posts a Synthea transaction Bundle; returns the number of resources it holds.
fn load(s: &Server, file: &str) -> usize {
    let text = std::fs::read_to_string(file).expect("synthea bundle");
    let r = s.req("POST", "").json(&text);
    assert_eq!(
        r.status,
        200,
        "load {file}: {}",
        &r.body[..r.body.len().min(500)]
    );
    let bundle: Value = serde_json::from_str(&text).expect("bundle JSON");
    bundle["entry"].as_array().map_or(0, Vec::len)
}

/// The id of the one Patient whose family name is `family`.
fn patient_id(s: &Server, family: &str) -> String {
    let b = s.get(&format!("/Patient?family={family}")).json();
    assert_eq!(b["total"], 1, "{b}");
    b["entry"][0]["resource"]["id"]
        .as_str()
        .expect("id")
        .to_string()
}

/// A path of the server's base from an absolute URL it answered.
fn local(s: &Server, url: &str) -> String {
    url.strip_prefix(&s.base)
        .unwrap_or_else(|| panic!("{url} is not under {}", s.base))
        .to_string()
}

/// Kicks off an export with the headers the spec requires.
fn kickoff(s: &Server, path: &str) -> Resp {
    s.req("GET", path)
        .header("Prefer", "respond-async")
        .header("Accept", "application/fhir+json")
        .send()
}

/// Kicks off and returns the status path.
fn start(s: &Server, path: &str) -> String {
    let r = kickoff(s, path);
    assert_eq!(r.status, 202, "kick-off {path}: {}", r.body);
    local(s, r.header("content-location").expect("Content-Location"))
}

/// Polls the status URL until the job completes; returns the manifest.
fn wait(s: &Server, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = s.get(status);
        match r.status {
            200 => {
                assert!(r
                    .header("content-type")
                    .is_some_and(|c| c.starts_with("application/json")));
                return r.json();
            }
            202 => {
                assert!(r.header("x-progress").is_some(), "X-Progress missing");
                assert!(r.header("retry-after").is_some(), "Retry-After missing");
            }
            other => panic!("status {other}: {}", r.body),
        }
        assert!(Instant::now() < deadline, "export did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every output file's resources: type → ids (asserting no id twice and the type).
fn download(s: &Server, manifest: &Value) -> BTreeMap<String, Vec<Value>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for o in manifest["output"].as_array().expect("output") {
        let t = o["type"].as_str().expect("type");
        let r = s.get(&local(s, o["url"].as_str().expect("url")));
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("content-type"), Some("application/fhir+ndjson"));
        let lines: Vec<Value> = r
            .body
            .lines()
            .map(|l| serde_json::from_str(l).expect("NDJSON line"))
            .collect();
        assert_eq!(lines.len() as u64, o["count"].as_u64().expect("count"));
        for l in &lines {
            assert_eq!(l["resourceType"], t);
        }
        out.entry(t.to_string()).or_default().extend(lines);
    }
    out
}

fn ids(resources: &[Value]) -> BTreeSet<String> {
    let set: BTreeSet<String> = resources
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(set.len(), resources.len(), "a resource was exported twice");
    set
}

fn search_total(s: &Server, query: &str) -> u64 {
    let b = s.get(&format!("{query}&_summary=count")).json();
    b["total"]
        .as_u64()
        .unwrap_or_else(|| panic!("no total: {b}"))
}

fn count_of(export: &BTreeMap<String, Vec<Value>>) -> usize {
    export.values().map(Vec::len).sum()
}

// ----------------------------------------------------------------------- $export

fn system_export_every_resource_once(backend: Backend) {
    let s = Server::start_with(backend, &["--export-file-resources", "150"]);
    let loaded = load(&s, SMALL) + load(&s, SECOND);
    let status = start(&s, "/$export");
    let manifest = wait(&s, &status);
    assert!(manifest["transactionTime"].is_string());
    assert_eq!(manifest["request"], format!("{}/$export", s.base));
    assert_eq!(manifest["requiresAccessToken"], false);
    assert_eq!(manifest["error"], json!([]));
    let parts = manifest["output"]
        .as_array()
        .expect("output")
        .iter()
        .filter(|o| o["type"] == "Observation")
        .count();
    assert!(
        parts > 1,
        "Observations should span several files: {manifest}"
    );
    let export = download(&s, &manifest);
    assert_eq!(count_of(&export), loaded);
    for (t, resources) in &export {
        ids(resources);
        assert_eq!(
            resources.len() as u64,
            search_total(&s, &format!("/{t}?_total=accurate")),
            "{t}"
        );
    }
}

fn type_since_typefilter_and_elements(backend: Backend) {
    let s = Server::start(backend);
    load(&s, SMALL);
    let before = s.create(
        "Patient",
        r#"{"resourceType":"Patient","name":[{"family":"Since"}]}"#,
    );
    let since = before.json()["meta"]["lastUpdated"]
        .as_str()
        .expect("lastUpdated")
        .to_string();
    std::thread::sleep(Duration::from_millis(20));
    let pid = patient_id(&s, "Since");
    let obs = s.create_id(
        "Observation",
        &json!({"resourceType": "Observation", "status": "final",
                "code": {"text": "late"}, "subject": {"reference": format!("Patient/{pid}")}})
        .to_string(),
    );
    let q = format!(
        "/$export?_type=Patient,Observation&_since={}",
        since.replace('+', "%2B")
    );
    let export = download(&s, &wait(&s, &start(&s, &q)));
    assert_eq!(export.keys().collect::<Vec<_>>(), vec!["Observation"]);
    assert_eq!(ids(&export["Observation"]), BTreeSet::from([obs]));

    let export = download(&s, &wait(&s, &start(&s, "/$export?_type=Patient")));
    assert_eq!(export.keys().collect::<Vec<_>>(), vec!["Patient"]);
    assert_eq!(export["Patient"].len(), 2);

    let filter = "Observation%3Fcategory%3Dlaboratory";
    let path = format!("/$export?_type=Observation&_typeFilter={filter}&_elements=status");
    let export = download(&s, &wait(&s, &start(&s, &path)));
    let labs = search_total(&s, "/Observation?category=laboratory");
    assert!(labs > 0);
    assert_eq!(export["Observation"].len() as u64, labs);
    let first = &export["Observation"][0];
    assert!(first.get("valueQuantity").is_none(), "{first}");
    assert!(first["status"].is_string());
    let tags = first["meta"]["tag"].as_array().expect("tags");
    assert!(tags.iter().any(|t| t["code"] == "SUBSETTED"));
}

fn patient_and_group_export(backend: Backend) {
    let s = Server::start(backend);
    load(&s, SMALL);
    load(&s, SECOND);
    let darrell = patient_id(&s, "Erdman");
    let juliane = patient_id(&s, "Hammes");
    let group = s.create_id(
        "Group",
        &json!({"resourceType": "Group", "type": "person", "actual": true,
                "member": [{"entity": {"reference": format!("Patient/{darrell}")}}]})
        .to_string(),
    );
    let export = download(
        &s,
        &wait(&s, &start(&s, &format!("/Group/{group}/$export"))),
    );
    assert_eq!(ids(&export["Patient"]), BTreeSet::from([darrell.clone()]));
    let obs = search_total(&s, &format!("/Observation?subject=Patient/{darrell}"));
    assert_eq!(export["Observation"].len() as u64, obs);
    assert!(
        !export.contains_key("Practitioner"),
        "not in the compartment"
    );
    for o in &export["Observation"] {
        assert_eq!(o["subject"]["reference"], format!("Patient/{darrell}"));
    }

    let all = download(&s, &wait(&s, &start(&s, "/Patient/$export")));
    assert_eq!(ids(&all["Patient"]).len(), 2);
    assert_eq!(
        all["Observation"].len() as u64,
        search_total(&s, "/Observation?_total=accurate")
    );

    // POST kick-off with a patient parameter: only Juliane.
    let body = json!({"resourceType": "Parameters", "parameter": [
        {"name": "_type", "valueString": "Patient,Condition"},
        {"name": "patient", "valueReference": {"reference": format!("Patient/{juliane}")}}
    ]});
    let r = s
        .req("POST", "/Patient/$export")
        .header("Prefer", "respond-async")
        .json(&body.to_string());
    assert_eq!(r.status, 202, "{}", r.body);
    let status = local(&s, r.header("content-location").expect("location"));
    let export = download(&s, &wait(&s, &status));
    assert_eq!(ids(&export["Patient"]), BTreeSet::from([juliane.clone()]));
    let conditions = search_total(&s, &format!("/Condition?patient=Patient/{juliane}"));
    assert_eq!(export["Condition"].len() as u64, conditions);
}

fn restart_mid_export(backend: Backend) {
    let args = ["--export-batch", "25", "--export-batch-delay-ms", "150"];
    let mut s = Server::start_with(backend, &args);
    let loaded = load(&s, SMALL);
    let status = start(&s, "/$export");
    // Wait until the job has written something, then kill the server under it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = s.get(&status);
        assert_eq!(r.status, 202, "the job finished too early: {}", r.body);
        if r.header("x-progress").is_some_and(|p| p.contains("so far")) {
            break;
        }
        assert!(Instant::now() < deadline, "the job did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    s.restart();
    let export = download(&s, &wait(&s, &status));
    assert_eq!(count_of(&export), loaded);
    for resources in export.values() {
        ids(resources);
    }
}

fn cancel_removes_job_and_files(backend: Backend) {
    let args = ["--export-batch", "10", "--export-batch-delay-ms", "200"];
    let s = Server::start_with(backend, &args);
    load(&s, SMALL);
    let status = start(&s, "/$export");
    let job = status.rsplit('/').next().expect("job id").to_string();
    std::thread::sleep(Duration::from_millis(500));
    let r = s.req("DELETE", &status).send();
    assert_eq!(r.status, 202, "{}", r.body);
    s.get(&status).outcome(404);
    s.req("DELETE", &status).send().outcome(404);
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        !s.dir().join("exports").join(&job).exists(),
        "files of a cancelled job remain"
    );

    // A finished job can be deleted too; its files go with it.
    let status = start(&s, "/$export?_type=Patient");
    let manifest = wait(&s, &status);
    let url = local(&s, manifest["output"][0]["url"].as_str().expect("url"));
    assert_eq!(s.get(&url).status, 200);
    assert_eq!(s.req("DELETE", &status).send().status, 202);
    s.get(&url).outcome(404);
}

fn kickoff_errors(backend: Backend) {
    let s = shared(backend);
    let r = s.get("/$export");
    r.outcome(400);
    let bad = |path: &str, expression: &str| {
        let r = kickoff(s, path);
        r.outcome(400);
        assert_eq!(r.issue_expression(), expression, "{path}: {}", r.body);
    };
    bad(
        "/$export?_outputFormat=application/fhir%2Bxml",
        "_outputFormat",
    );
    bad("/$export?_outputFormat=text/csv", "_outputFormat");
    bad("/$export?_type=Patient,Bogus", "_type");
    bad("/$export?_since=yesterday", "_since");
    bad(
        "/$export?_typeFilter=Observation%3Fbogus%3D1",
        "_typeFilter",
    );
    bad("/$export?_typeFilter=Nope%3Fstatus%3Dfinal", "_typeFilter");
    bad("/$export?_elements=a.b.c", "_elements");
    bad("/$export?patient=Patient/x", "patient");
    for format in ["application/fhir%2Bndjson", "application/ndjson", "ndjson"] {
        let r = kickoff(s, &format!("/$export?_type=Basic&_outputFormat={format}"));
        assert_eq!(r.status, 202, "{format}: {}", r.body);
    }
    kickoff(s, "/Group/no-such-group/$export").outcome(404);
    s.get("/$export-status/no-such-job").outcome(404);
    s.req("DELETE", "/$export-status/no-such-job")
        .send()
        .outcome(404);
    s.get("/$export-file/no-such-job/Patient-1.ndjson")
        .outcome(404);
    let r = s
        .req("POST", "/$export")
        .header("Prefer", "respond-async")
        .json(r#"{"resourceType":"Patient"}"#);
    r.outcome(400);
    let r = s
        .req("POST", "/$export")
        .header("Prefer", "respond-async")
        .json(
            r#"{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Nope"}]}"#,
        );
    r.outcome(400);
    assert_eq!(r.issue_expression(), "_type");
    let r = s
        .req("GET", "/$export")
        .header("Prefer", "respond-async")
        .header("Accept", "application/fhir+xml")
        .send();
    r.outcome(406);
}

both_backends!(
    system_export_every_resource_once,
    type_since_typefilter_and_elements,
    patient_and_group_export,
    restart_mid_export,
    cancel_removes_job_and_files,
    kickoff_errors,
    everything_paging_and_references,
    everything_since_type_level_and_errors,
    capability_advertises_operations,
    cli_export_downloads_files,
    failed_job_answers_500_outcome,
    retention_removes_finished_jobs,
);

// ----------------------------------------------------------------------- $everything

/// Follows `next` links from `path`; returns (matches, includes) of all pages.
fn everything_pages(s: &Server, path: &str) -> (Vec<Value>, Vec<Value>, usize) {
    let (mut matches, mut includes, mut pages) = (Vec::new(), Vec::new(), 0);
    let mut next = Some(path.to_string());
    while let Some(p) = next.take() {
        let r = s.get(&p);
        assert_eq!(r.status, 200, "{p}: {}", r.body);
        let b = r.json();
        assert_eq!(b["type"], "searchset");
        pages += 1;
        for e in b["entry"].as_array().into_iter().flatten() {
            match e["search"]["mode"].as_str() {
                Some("match") => matches.push(e["resource"].clone()),
                Some("include") => includes.push(e["resource"].clone()),
                other => panic!("unexpected entry mode {other:?}"),
            }
        }
        next = b["link"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["relation"] == "next")
            .map(|l| local(s, l["url"].as_str().expect("url")));
        assert!(pages < 100, "too many pages");
    }
    (matches, includes, pages)
}

fn keys(resources: &[Value]) -> BTreeSet<String> {
    let set: BTreeSet<String> = resources
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap_or("?"),
                r["id"].as_str().unwrap_or("?")
            )
        })
        .collect();
    assert_eq!(set.len(), resources.len(), "a resource appeared twice");
    set
}

fn everything_paging_and_references(backend: Backend) {
    let s = Server::start(backend);
    load(&s, SMALL);
    load(&s, SECOND);
    let darrell = patient_id(&s, "Erdman");
    let juliane = patient_id(&s, "Hammes");
    let group = s.create_id(
        "Group",
        &json!({"resourceType": "Group", "type": "person", "actual": true,
                "member": [{"entity": {"reference": format!("Patient/{darrell}")}}]})
        .to_string(),
    );
    let exported = download(
        &s,
        &wait(&s, &start(&s, &format!("/Group/{group}/$export"))),
    );
    let expected: BTreeSet<String> = exported.values().flat_map(|v| keys(v)).collect();
    let (matches, includes, pages) =
        everything_pages(&s, &format!("/Patient/{darrell}/$everything?_count=60"));
    assert!(pages > 2, "expected several pages, got {pages}");
    assert_eq!(keys(&matches), expected);
    assert!(expected.contains(&format!("Patient/{darrell}")));
    assert!(!expected.contains(&format!("Patient/{juliane}")));
    let included: BTreeSet<String> = includes
        .iter()
        .map(|r| r["resourceType"].as_str().unwrap_or("?").to_string())
        .collect();
    for t in ["Practitioner", "Organization"] {
        assert!(included.contains(t), "{t} not included: {included:?}");
    }

    let (matches, includes, _) = everything_pages(
        &s,
        &format!("/Patient/{darrell}/$everything?_type=Observation,Practitioner&_count=1000"),
    );
    let obs = search_total(&s, &format!("/Observation?subject=Patient/{darrell}"));
    assert_eq!(matches.len() as u64, obs);
    assert!(matches.iter().all(|m| m["resourceType"] == "Observation"));
    assert!(includes.iter().all(|m| m["resourceType"] == "Practitioner"));
}

fn everything_since_type_level_and_errors(backend: Backend) {
    let s = Server::start(backend);
    load(&s, SMALL);
    load(&s, SECOND);
    let darrell = patient_id(&s, "Erdman");
    // A marker outside Darrell's compartment gives a server time before the new Observation.
    let marker = s.create(
        "Basic",
        r#"{"resourceType":"Basic","code":{"text":"marker"}}"#,
    );
    let since = marker.json()["meta"]["lastUpdated"]
        .as_str()
        .expect("lastUpdated")
        .to_string();
    std::thread::sleep(Duration::from_millis(20));
    let obs = s.create(
        "Observation",
        &json!({"resourceType": "Observation", "status": "final", "code": {"text": "late"},
                "subject": {"reference": format!("Patient/{darrell}")}})
        .to_string(),
    );
    let obs = obs.json();
    let (matches, _, _) = everything_pages(
        &s,
        &format!(
            "/Patient/{darrell}/$everything?_since={}",
            since.replace('+', "%2B")
        ),
    );
    assert_eq!(
        keys(&matches),
        BTreeSet::from([format!("Observation/{}", obs["id"].as_str().unwrap_or("?"))])
    );

    let (matches, _, _) = everything_pages(&s, "/Patient/$everything?_type=Patient&_count=1");
    assert_eq!(keys(&matches).len(), 2);
    // Every patient's everything, paged, is what each patient's gives, together: the
    // marker outside both compartments is not in it.
    let (all, _, pages) = everything_pages(&s, "/Patient/$everything?_count=40");
    assert!(pages > 1, "paged");
    let mut each = BTreeSet::new();
    for p in &matches {
        let id = p["id"].as_str().expect("id");
        let (mine, _, _) = everything_pages(&s, &format!("/Patient/{id}/$everything?_count=50"));
        each.extend(keys(&mine));
    }
    assert_eq!(keys(&all), each);
    assert!(!each.contains(&format!(
        "Basic/{}",
        marker.json()["id"].as_str().unwrap_or("?")
    )));

    s.get("/Patient/no-such-patient/$everything").outcome(404);
    let r = s.get(&format!("/Patient/{darrell}/$everything?_type=Nope"));
    r.outcome(400);
    assert_eq!(r.issue_expression(), "_type");
    let r = s.get(&format!("/Patient/{darrell}/$everything?_count=many"));
    r.outcome(400);
    assert_eq!(r.issue_expression(), "_count");
    let r = s.get(&format!("/Patient/{darrell}/$everything?_since=soon"));
    r.outcome(400);
    assert_eq!(r.issue_expression(), "_since");
    let r = s.get(&format!("/Patient/{darrell}/$everything?_page=zz"));
    r.outcome(400);
    assert_eq!(r.issue_expression(), "_page");
}

fn capability_advertises_operations(backend: Backend) {
    let cs = shared(backend).get("/metadata").json();
    assert_eq!(
        cs["instantiates"][0],
        "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"
    );
    let rest = &cs["rest"][0];
    let system_ops: Vec<&str> = rest["operation"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert!(system_ops.contains(&"export"), "{system_ops:?}");
    assert!(system_ops.contains(&"validate"), "{system_ops:?}");
    // Each operation by its canonical OperationDefinition (the IG's for export).
    let definition = |ops: &Value, name: &str| -> String {
        ops.as_array()
            .into_iter()
            .flatten()
            .find(|o| o["name"] == name)
            .and_then(|o| o["definition"].as_str())
            .unwrap_or("")
            .to_string()
    };
    let ig = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition";
    assert_eq!(
        definition(&rest["operation"], "export"),
        format!("{ig}/export")
    );
    let of_type = |t: &str| {
        rest["resource"]
            .as_array()
            .expect("resources")
            .iter()
            .find(|r| r["type"] == t)
            .expect("type")["operation"]
            .clone()
    };
    assert_eq!(
        definition(&of_type("Patient"), "export"),
        format!("{ig}/patient-export")
    );
    assert_eq!(
        definition(&of_type("Group"), "export"),
        format!("{ig}/group-export")
    );
    let ops = |t: &str| -> Vec<String> {
        let r = rest["resource"]
            .as_array()
            .expect("resources")
            .iter()
            .find(|r| r["type"] == t)
            .expect("type");
        r["operation"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| o["name"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(ops("Patient"), vec!["export", "everything"]);
    assert_eq!(ops("Group"), vec!["export"]);
}

fn cli_export_downloads_files(backend: Backend) {
    let s = Server::start(backend);
    load(&s, SMALL);
    let out = s.dir().join("cli-out");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_fhir-server"))
        .args(["export", "--url", &s.base, "--out"])
        .arg(&out)
        .args(["--type", "Patient,Observation"])
        .output()
        .expect("run export");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("exported"), "{stdout}");
    let lines = |name: &str| {
        std::fs::read_to_string(out.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .lines()
            .count() as u64
    };
    assert_eq!(lines("Patient-1.ndjson"), 1);
    assert_eq!(
        lines("Observation-1.ndjson"),
        search_total(&s, "/Observation?_total=accurate")
    );
    assert!(out.join("manifest.json").exists());

    let run = std::process::Command::new(env!("CARGO_BIN_EXE_fhir-server"))
        .args(["export", "--url", &s.base, "--out"])
        .arg(&out)
        .args(["--type", "Bogus"])
        .output()
        .expect("run export");
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("Bogus"), "{stderr}");
}

fn failed_job_answers_500_outcome(backend: Backend) {
    // One worker runs jobs in turn: the Group job waits behind a slow export, and its
    // Group is deleted meanwhile, so planning it fails.
    let args = ["--export-batch", "20", "--export-batch-delay-ms", "50"];
    let s = Server::start_with(backend, &args);
    load(&s, SMALL);
    let darrell = patient_id(&s, "Erdman");
    let group = s.create_id(
        "Group",
        &json!({"resourceType": "Group", "type": "person", "actual": true,
                "member": [{"entity": {"reference": format!("Patient/{darrell}")}}]})
        .to_string(),
    );
    let slow = start(&s, "/$export");
    let status = start(&s, &format!("/Group/{group}/$export"));
    assert_eq!(
        s.req("DELETE", &format!("/Group/{group}")).send().status,
        204
    );
    wait(&s, &slow);
    let deadline = Instant::now() + Duration::from_secs(60);
    let r = loop {
        let r = s.get(&status);
        if r.status != 202 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let oo = r.outcome(500);
    let text = oo["issue"][0]["details"]["text"].as_str().unwrap_or("");
    assert!(text.contains(&format!("Group/{group}")), "{oo}");
}

fn retention_removes_finished_jobs(backend: Backend) {
    let s = Server::start_with(backend, &["--export-retention", "0"]);
    load(&s, SMALL);
    let status = start(&s, "/$export?_type=Patient");
    let job = status.rsplit('/').next().expect("job id").to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.get(&status).status != 404 {
        assert!(Instant::now() < deadline, "the job was not removed");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!s.dir().join("exports").join(&job).exists());
}
