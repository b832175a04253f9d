//! Black-box tests of what operators use: Prometheus metrics at `/metrics` (parsed with
//! a Prometheus text-format parser), who may scrape them, the separate metrics
//! listener, the configuration file's place among flags and environment, the OpenAPI
//! document generated from the CapabilityStatement, and OpenTelemetry traces sent to a
//! collector.

mod common;

use common::smart::{admin, as_, oidc_token, secure, start_secure};
use common::{free_port, shared, Backend, Server};
use openapiv3::{OpenAPI, Operation, Parameter, PathItem, ReferenceOr};
use prometheus_parse::{Sample, Scrape, Value as Metric};
use serde_json::Value;

fn parse(body: &str) -> Scrape {
    Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text format")
}

/// The samples of `name` whose labels include `labels`.
fn samples<'a>(scrape: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect()
}

/// The value of the one counter or gauge `name` with `labels`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = samples(scrape, name, labels);
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    match &found[0].value {
        Metric::Counter(v) | Metric::Gauge(v) | Metric::Untyped(v) => *v,
        other => panic!("{name} is not a number: {other:?}"),
    }
}

fn scrape(s: &Server) -> Scrape {
    let r = s.root("GET", "/metrics").send();
    assert_eq!(r.status, 200, "{}", r.body);
    let ct = r.header("Content-Type").unwrap_or_default();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    parse(&r.body)
}

/// Requests are counted by interaction and status, with their latencies; the pool,
/// the queues and the process are reported.
fn metrics_count_requests_by_interaction(b: Backend) {
    let s = Server::start(b);
    assert_eq!(s.get("/Patient/nobody").status, 404);
    let id = s.create_id("Patient", r#"{"resourceType":"Patient","active":true}"#);
    assert_eq!(s.get(&format!("/Patient/{id}")).status, 200);
    assert_eq!(s.get(&format!("/Patient/{id}")).status, 200);
    assert_eq!(s.get("/Patient?active=true").status, 200);
    let made_up = s.get("/Patient/$made-up-operation").status;
    assert!(made_up >= 400, "{made_up}");
    let m = scrape(&s);
    let requests = |interaction: &str, status: &str| {
        value(
            &m,
            "fhir_http_requests_total",
            &[("interaction", interaction), ("status", status)],
        )
    };
    assert_eq!(requests("read", "404"), 1.0);
    assert_eq!(requests("read", "200"), 2.0);
    assert_eq!(requests("create", "201"), 1.0);
    assert_eq!(requests("search-type", "200"), 1.0);
    // A made-up operation's name is not a label value.
    assert!(samples(
        &m,
        "fhir_http_requests_total",
        &[("interaction", "$made-up-operation")]
    )
    .is_empty());
    let latency = samples(
        &m,
        "fhir_http_request_duration_seconds",
        &[("interaction", "read")],
    );
    match latency.first().map(|s| &s.value) {
        Some(Metric::Histogram(buckets)) => {
            let all = buckets.last().expect("buckets");
            assert!(
                all.less_than.is_infinite() && all.count == 3.0,
                "{buckets:?}"
            );
        }
        other => panic!("no read latency histogram: {other:?}"),
    }
    assert_eq!(
        value(&m, "fhir_db_pool_connections", &[("state", "max")]),
        16.0
    );
    let cache_hits = value(&m, "fhir_read_cache_requests_total", &[("result", "hit")]);
    assert!(cache_hits >= 1.0, "the second read comes from memory");
    for (name, labels) in [
        ("fhir_export_jobs", &[("status", "queued")][..]),
        ("fhir_import_jobs", &[("status", "running")][..]),
        ("fhir_subscription_events_pending", &[][..]),
        ("fhir_audit_events_unprojected", &[][..]),
    ] {
        assert_eq!(value(&m, name, labels), 0.0, "{name}");
    }
    assert!(value(&m, "process_resident_memory_bytes", &[]) > 1e6);
}

/// With authentication on, `/metrics` on the API's address needs an operator's token
/// (one that may read the whole audit trail); `--metrics-listen` serves it apart,
/// without a token.
fn metrics_need_an_operator_or_their_own_listener(b: Backend) {
    let addr = format!("127.0.0.1:{}", free_port());
    let s = start_secure(b, &["--metrics-listen", &addr]);
    let r = s.root("GET", "/metrics").send();
    assert_eq!(r.status, 401, "{}", r.body);
    let patient = oidc_token("patient/*.rs", Some("p1"));
    let r = as_(&s, &patient, "GET", "/Patient/p1").send();
    assert_eq!(r.status, 404, "the token works for the API: {}", r.body);
    let r = s
        .root("GET", "/metrics")
        .header("Authorization", &format!("Bearer {patient}"))
        .send();
    let outcome = r.outcome(403);
    assert!(
        outcome.to_string().contains("system/AuditEvent.r"),
        "{outcome}"
    );
    let r = s
        .root("GET", "/metrics")
        .header("Authorization", &format!("Bearer {}", admin(&s)))
        .send();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        value(
            &parse(&r.body),
            "fhir_db_pool_connections",
            &[("state", "max")]
        ) > 0.0
    );
    let open = ureq::get(&format!("http://{addr}/metrics"))
        .call()
        .expect("the metrics listener answers without a token");
    let m = parse(&open.into_string().expect("body"));
    assert!(!samples(&m, "fhir_http_requests_total", &[("status", "401")]).is_empty());
}

/// `/console/jobs.json` (every bulk job, with kick-off URLs that may name patients) is
/// for operators: 401 without a token, 403 with a clinician's, the list with an
/// operator's.
fn job_list_is_for_operators(b: Backend) {
    let s = secure(b);
    assert_eq!(s.root("GET", "/console/jobs.json").send().status, 401);
    let clinician = oidc_token("user/*.cruds", None);
    let r = s
        .root("GET", "/console/jobs.json")
        .header("Authorization", &format!("Bearer {clinician}"))
        .send();
    let outcome = r.outcome(403);
    assert!(outcome.to_string().contains("all bulk jobs"), "{outcome}");
    let r = s
        .root("GET", "/console/jobs.json")
        .header("Authorization", &format!("Bearer {}", admin(s)))
        .send();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json().is_array(), "{}", r.body);
}

/// `--metrics off`: nothing recorded, `/metrics` is not there.
fn metrics_can_be_turned_off(b: Backend) {
    let s = Server::start_with(b, &["--metrics", "off"]);
    let r = s.root("GET", "/metrics").send();
    let outcome = r.outcome(404);
    assert!(outcome.to_string().contains("--metrics off"), "{outcome}");
}

/// Where the server says it is: the base of a search's `self` link.
fn base_in_links(s: &Server) -> String {
    let r = s.get("/Patient?_count=1");
    assert_eq!(r.status, 200, "{}", r.body);
    let url = r.json()["link"][0]["url"]
        .as_str()
        .expect("self link")
        .to_string();
    url.split("/Patient").next().expect("base").to_string()
}

/// The configuration file sets what neither a flag nor the environment sets. (The
/// layer is read before any database is opened: one backend shows it.)
/// Megabytes of the SQLite database file `pid` has mapped into memory.
fn mapped_mib(pid: u32, db: &str) -> u64 {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("/proc/PID/maps");
    let bytes: u64 = maps
        .lines()
        .filter(|l| l.ends_with(db))
        .filter_map(|l| {
            let (from, to) = l.split_whitespace().next()?.split_once('-')?;
            Some(u64::from_str_radix(to, 16).ok()? - u64::from_str_radix(from, 16).ok()?)
        })
        .max()
        .unwrap_or(0);
    bytes / (1024 * 1024)
}

/// SQLite reads its file through memory mapping by default, up to `--db-mmap-mb`;
/// `--db-mmap-mb 0` turns it off. By default the mapping covers the whole file (grown
/// past 6 MiB here); asked for 4 MiB, it covers at most that.
#[test]
fn sqlite_reads_through_memory_mapping_as_configured() {
    let mapped_after_growing = |extra: &[&str]| {
        let mut s = Server::start_with(Backend::Sqlite, extra);
        let db = s.db_url.trim_start_matches("sqlite://").to_string();
        let size = || std::fs::metadata(&db).map_or(0, |m| m.len()) / (1024 * 1024);
        let text = "x".repeat(200_000);
        // The file grows as the log is checkpointed into it, beside the writes.
        let mut i = 0;
        while size() < 6 {
            assert!(i < 400, "the file stays at {} MiB", size());
            let p = serde_json::json!({"resourceType": "Patient", "id": format!("big{i}"),
                "text": {"status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{i}{text}</div>")}});
            let r = s
                .req("PUT", &format!("/Patient/big{i}"))
                .json(&p.to_string());
            assert!(r.status / 100 == 2, "{}", r.body);
            i += 1;
        }
        // A connection maps the file as it is when it first reads it: after a restart,
        // the whole file (up to the setting).
        s.restart();
        for _ in 0..40 {
            assert_eq!(s.get("/Patient?_count=1").status, 200);
        }
        mapped_mib(s.pid(), &db)
    };
    let mapped = mapped_after_growing(&[]);
    assert!(
        mapped >= 5,
        "default: {mapped} MiB mapped of a file past 6 MiB"
    );
    let mapped = mapped_after_growing(&["--db-mmap-mb", "4"]);
    assert!(
        (1..=4).contains(&mapped),
        "--db-mmap-mb 4: {mapped} MiB mapped"
    );
    let mapped = mapped_after_growing(&["--db-mmap-mb", "0"]);
    assert_eq!(mapped, 0, "--db-mmap-mb 0: nothing mapped");
}

#[test]
fn configuration_file_precedence() {
    let dir = std::env::temp_dir().join(format!("fhir-ops-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("fhir-server.toml");
    std::fs::write(
        &file,
        "# operator's settings\nbase-url = \"http://file.example/fhir\"\nvalidation = false\n",
    )
    .expect("write");
    let file = file.display().to_string();
    let b = Backend::Sqlite;
    let from_file = Server::start_with(b, &["--config", &file]);
    assert_eq!(base_in_links(&from_file), "http://file.example/fhir");
    let invalid = r#"{"resourceType":"Patient","gender":"neither"}"#;
    assert_eq!(
        from_file.create("Patient", invalid).status,
        201,
        "validation = false"
    );
    drop(from_file);
    let named_by_env = Server::start_env(b, &[], &[("FHIR_CONFIG", &file)]);
    assert_eq!(base_in_links(&named_by_env), "http://file.example/fhir");
    drop(named_by_env);
    let env = [("FHIR_BASE_URL", "http://env.example/fhir")];
    let env_wins = Server::start_env(b, &["--config", &file], &env);
    assert_eq!(base_in_links(&env_wins), "http://env.example/fhir");
    drop(env_wins);
    let flag = ["--config", &file, "--base-url", "http://flag.example/fhir"];
    let flag_wins = Server::start_env(b, &flag, &env);
    assert_eq!(base_in_links(&flag_wins), "http://flag.example/fhir");
    drop(flag_wins);

    std::fs::write(dir.join("bad.toml"), "base-urll = \"x\"\n").expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fhir-server"))
        .args(["--config", &dir.join("bad.toml").display().to_string()])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.toml") && stderr.contains("unknown setting `base-urll`"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn path<'a>(doc: &'a OpenAPI, p: &str) -> &'a PathItem {
    doc.paths
        .paths
        .get(p)
        .and_then(|i| i.as_item())
        .unwrap_or_else(|| panic!("no path {p}"))
}

/// The names of an operation's own query parameters, and its references to shared ones.
fn parameter_names(op: &Operation) -> (Vec<String>, Vec<String>) {
    let (mut own, mut shared) = (Vec::new(), Vec::new());
    for p in &op.parameters {
        match p {
            ReferenceOr::Item(Parameter::Query { parameter_data, .. }) => {
                own.push(parameter_data.name.clone())
            }
            ReferenceOr::Reference { reference } => shared.push(reference.clone()),
            _ => {}
        }
    }
    (own, shared)
}

/// `/fhir/openapi.json` is an OpenAPI 3 document of what the CapabilityStatement says:
/// every type's interactions, its search parameters, every declared operation.
fn openapi_document_follows_the_capability_statement(b: Backend) {
    let s = shared(b);
    let r = s.get("/openapi.json");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let doc: OpenAPI = serde_json::from_str(&r.body).expect("an OpenAPI 3 document");
    assert_eq!(doc.openapi, "3.0.3");
    let search = path(&doc, "/Patient").get.as_ref().expect("search");
    let (own, refs) = parameter_names(search);
    assert!(own.contains(&"family".to_string()) && own.contains(&"birthdate".to_string()));
    assert!(refs.contains(&"#/components/parameters/_count".to_string()));
    assert!(path(&doc, "/Patient").post.is_some(), "create");
    let instance = path(&doc, "/Patient/{id}");
    assert!(instance.get.is_some() && instance.put.is_some());
    assert!(instance.patch.is_some() && instance.delete.is_some());
    assert!(path(&doc, "/Patient/{id}/_history/{vid}").get.is_some());
    let everything = path(&doc, "/Patient/{id}/$everything");
    assert!(everything.get.is_some() && everything.post.is_none());
    assert!(path(&doc, "/").post.is_some(), "transactions");

    let cs = s.get("/metadata").json();
    let rest = &cs["rest"][0];
    let has_op = |prefix: &str, name: &str| {
        doc.paths
            .paths
            .keys()
            .any(|p| p.starts_with(prefix) && p.ends_with(&format!("/${name}")))
    };
    for r in rest["resource"].as_array().expect("resources") {
        let t = r["type"].as_str().expect("type");
        let declared: Vec<&str> = r["searchParam"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["name"].as_str())
            .collect();
        let (own, _) = parameter_names(path(&doc, &format!("/{t}")).get.as_ref().expect("search"));
        assert_eq!(own, declared, "{t}");
        for o in r["operation"].as_array().into_iter().flatten() {
            let name = o["name"].as_str().expect("name");
            assert!(has_op(&format!("/{t}/"), name), "{t} ${name}");
        }
    }
    for o in rest["operation"].as_array().expect("operations") {
        let name = o["name"].as_str().expect("name");
        assert!(has_op("/", name), "${name}");
    }
}

/// With authentication on, the document is public (as the CapabilityStatement is) and
/// says how to authenticate.
fn openapi_document_states_security(b: Backend) {
    let s = secure(b);
    let r = s.get("/openapi.json");
    assert_eq!(r.status, 200, "{}", r.body);
    let doc: Value = r.json();
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer", "{schemes}");
    assert_eq!(doc["security"][0]["bearer"], serde_json::json!([]));
}

/// With `--otlp-endpoint`, each request is a span sent to the collector, child of the
/// caller's `traceparent`, with the interaction, the status and a child span per
/// database call.
fn traces_reach_an_otlp_collector(b: Backend) {
    // The collector: an endpoint that records what is POSTed to it.
    let collector = common::receiver::Receiver::start(200);
    let url = collector.url.clone();
    let s = Server::start_env(
        b,
        &["--otlp-endpoint", &url, "--otlp-protocol", "http/json"],
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    );
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let r = s
        .req("GET", "/Patient/nobody")
        .header("traceparent", &format!("00-{trace}-b7ad6b7169203331-01"))
        .send();
    assert_eq!(r.status, 404);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let spans: Vec<Value> = loop {
        let found: Vec<Value> = collector
            .got
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
            .flat_map(|v| {
                v.pointer("/resourceSpans/0/scopeSpans/0/spans")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            })
            .filter(|sp| sp["traceId"] == trace)
            .collect();
        if found.iter().any(|sp| sp["name"] == "GET read") || std::time::Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let request = spans
        .iter()
        .find(|sp| sp["name"] == "GET read")
        .unwrap_or_else(|| {
            panic!(
                "no request span in {spans:?} (bodies: {:?})",
                collector.count()
            )
        });
    assert_eq!(request["parentSpanId"], "b7ad6b7169203331");
    let attributes = request["attributes"].to_string();
    assert!(
        attributes.contains("http.response.status_code") && attributes.contains("404"),
        "{attributes}"
    );
    assert!(attributes.contains("fhir.interaction"), "{attributes}");
    let id = request["spanId"].clone();
    assert!(
        spans
            .iter()
            .any(|sp| sp["name"] == "store" && sp["parentSpanId"] == id),
        "no store span under the request: {spans:?}"
    );
}

both_backends!(
    job_list_is_for_operators,
    traces_reach_an_otlp_collector,
    openapi_document_follows_the_capability_statement,
    openapi_document_states_security,
    metrics_count_requests_by_interaction,
    metrics_need_an_operator_or_their_own_listener,
    metrics_can_be_turned_off,
);
