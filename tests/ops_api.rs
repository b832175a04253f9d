//! Black-box tests of what operators use: Prometheus metrics at `/metrics` (parsed with
//! a Prometheus text-format parser), who may scrape them, the separate metrics
//! listener, and the configuration file's place among flags and environment.

mod common;

use common::smart::{admin, as_, oidc_token, start_secure};
use common::{free_port, Backend, Server};
use prometheus_parse::{Sample, Scrape, Value as Metric};

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

both_backends!(
    metrics_count_requests_by_interaction,
    metrics_need_an_operator_or_their_own_listener,
    metrics_can_be_turned_off,
);
