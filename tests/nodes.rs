//! Black-box tests of several server nodes on one PostgreSQL database: they behave as
//! one server. A write on one is read on the other at once (the read caches never
//! serve a replaced version), conditional creates never duplicate, an export job is
//! run by one node and taken over when that node dies, the audit chain stays one valid
//! chain, and tokens (and the replay checks of their client assertions) hold on every
//! node.

mod common;

use std::time::{Duration, Instant};

use common::{unique, Backend, Server};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

fn two_nodes(extra: &[&str]) -> (Server, Server) {
    let a = Server::start_with(Backend::Postgres, extra);
    let b = a.start_beside(extra);
    (a, b)
}

fn version_of(r: &common::Resp) -> String {
    r.json()["meta"]["versionId"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_write_on_one_node_is_read_at_once_on_the_other() {
    let (a, b) = two_nodes(&[]);
    let r = a
        .req("POST", "/Patient")
        .json(r#"{"resourceType":"Patient","gender":"male"}"#);
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().expect("id").to_string();
    for round in 2..=30 {
        // Both nodes have read (and may cache) the current version...
        for node in [&a, &b] {
            node.get(&format!("/Patient/{id}"));
        }
        // ...then one of them writes, and the next read on either sees the write.
        let (writer, other) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let body = json!({"resourceType": "Patient", "id": id, "birthDate": format!("19{round:02}-01-01")});
        let w = writer
            .req("PUT", &format!("/Patient/{id}"))
            .json(&body.to_string());
        assert_eq!(w.status, 200, "{}", w.body);
        for node in [other, writer] {
            let r = node.get(&format!("/Patient/{id}"));
            assert_eq!(r.status, 200);
            assert_eq!(
                version_of(&r),
                round.to_string(),
                "round {round}: {}",
                r.body
            );
            assert_eq!(r.json()["birthDate"], format!("19{round:02}-01-01"));
        }
    }
    // A delete on one node is a 410 on the other at once; vread still answers.
    assert_eq!(b.get(&format!("/Patient/{id}")).status, 200);
    assert_eq!(
        a.req("DELETE", &format!("/Patient/{id}")).send().status,
        204
    );
    assert_eq!(b.get(&format!("/Patient/{id}")).status, 410);
    let old = b.get(&format!("/Patient/{id}/_history/30"));
    assert_eq!(old.status, 200);
    assert_eq!(old.json()["birthDate"], "1930-01-01");
}

#[test]
fn a_node_that_joins_makes_the_others_check_their_caches() {
    let a = Server::start(Backend::Postgres);
    let r = a
        .req("POST", "/Patient")
        .json(r#"{"resourceType":"Patient","gender":"female"}"#);
    let id = r.json()["id"].as_str().expect("id").to_string();
    // Alone, `a` answers this read from memory from now on.
    for _ in 0..3 {
        assert_eq!(version_of(&a.get(&format!("/Patient/{id}"))), "1");
    }
    let b = a.start_beside(&[]);
    let body = json!({"resourceType": "Patient", "id": id, "gender": "other"});
    let w = b
        .req("PUT", &format!("/Patient/{id}"))
        .json(&body.to_string());
    assert_eq!(w.status, 200, "{}", w.body);
    let r = a.get(&format!("/Patient/{id}"));
    assert_eq!(version_of(&r), "2", "{}", r.body);
    assert_eq!(r.json()["gender"], "other");
}

#[test]
fn conditional_creates_never_duplicate_across_nodes() {
    let (a, b) = two_nodes(&[]);
    let value = unique("mrn");
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let node = if i % 2 == 0 { &a } else { &b };
                let value = value.clone();
                scope.spawn(move || {
                    let body = json!({"resourceType": "Patient",
                        "identifier": [{"system": "urn:test:mrn", "value": value}]});
                    node.req("POST", "/Patient")
                        .header("If-None-Exist", &format!("identifier=urn:test:mrn|{value}"))
                        .json(&body.to_string())
                        .status
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 200),
        "{statuses:?}"
    );
    // The same through transaction bundles (`ifNoneExist`) on both nodes.
    let tvalue = unique("mrn");
    std::thread::scope(|scope| {
        for i in 0..6 {
            let node = if i % 2 == 0 { &a } else { &b };
            let tvalue = tvalue.clone();
            scope.spawn(move || {
                let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
                    "fullUrl": "urn:uuid:6b3f7a52-0d4e-4c6a-9f57-0f7e1d2c3b4a",
                    "resource": {"resourceType": "Patient",
                        "identifier": [{"system": "urn:test:mrn", "value": tvalue}]},
                    "request": {"method": "POST", "url": "Patient",
                        "ifNoneExist": format!("identifier=urn:test:mrn|{tvalue}")}}]});
                let r = node.req("POST", "").json(&bundle.to_string());
                assert_eq!(r.status, 200, "{}", r.body);
            });
        }
    });
    for v in [&value, &tvalue] {
        let found = a.get(&format!(
            "/Patient?identifier=urn:test:mrn|{v}&_total=accurate"
        ));
        assert_eq!(found.json()["total"], 1, "{v}: {}", found.body);
    }
}

/// Rows of a query on the test database (PostgreSQL), one text column `s`.
fn pg_texts(server: &Server, sql: &str) -> Vec<String> {
    use diesel::{Connection, QueryableByName, RunQueryDsl};
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        s: String,
    }
    let mut conn = diesel::PgConnection::establish(&server.db_url).expect("connect");
    let rows: Vec<Row> = diesel::sql_query(sql).load(&mut conn).expect("query");
    rows.into_iter().map(|r| r.s).collect()
}

fn kick_off(node: &Server) -> String {
    let r = node
        .req("GET", "/Patient/$export")
        .header("Accept", "application/fhir+json")
        .header("Prefer", "respond-async")
        .send();
    assert_eq!(r.status, 202, "{}", r.body);
    let location = r.header("content-location").expect("Content-Location");
    location.rsplit('/').next().expect("job id").to_string()
}

fn wait_complete(node: &Server, job: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let r = node.get(&format!("/$export-status/{job}"));
        match r.status {
            200 => return r.json(),
            202 if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            s => panic!("export status {s} after {within:?}: {}", r.body),
        }
    }
}

#[test]
fn an_export_job_is_run_by_one_node_and_taken_over_when_it_dies() {
    // Slow pages, so that the job is still running when its node dies.
    let slow = ["--export-batch", "10", "--export-batch-delay-ms", "300"];
    let (mut a, b) = two_nodes(&slow);
    let entries: Vec<Value> = (0..60)
        .map(|i| {
            json!({"resource": {"resourceType": "Patient", "gender": "male",
            "name": [{"family": format!("Export{i}")}]},
            "request": {"method": "POST", "url": "Patient"}})
        })
        .collect();
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
    assert_eq!(a.req("POST", "").json(&bundle.to_string()).status, 200);
    let job = kick_off(&a);
    // The node that accepted the job runs it; the other only reports on it.
    std::thread::sleep(Duration::from_millis(700));
    let owner = pg_texts(
        &a,
        &format!("SELECT owner AS s FROM export_jobs WHERE id = '{job}'"),
    );
    let a_port = a
        .base
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .replace("/fhir", "");
    let a_node = pg_texts(
        &a,
        &format!("SELECT node_id AS s FROM server_nodes WHERE host LIKE '%:{a_port}'"),
    );
    assert_eq!(owner, a_node, "the job runs on the node that accepted it");
    assert_eq!(b.get(&format!("/$export-status/{job}")).status, 202);
    a.kill();
    // `b` notices `a` is gone (10 s without a beat), takes the job and finishes it.
    let manifest = wait_complete(&b, &job, Duration::from_secs(60));
    let outputs = manifest["output"].as_array().expect("output");
    let mut lines = 0;
    for o in outputs {
        let url = o["url"].as_str().expect("url");
        let path = url.split("/fhir").nth(1).expect("path");
        let r = b.get(path);
        assert_eq!(r.status, 200, "{url}: {}", r.body);
        lines += r.body.lines().count();
    }
    assert_eq!(lines, 60, "every Patient exactly once: {manifest}");
    let owner = pg_texts(
        &b,
        &format!("SELECT owner AS s FROM export_jobs WHERE id = '{job}'"),
    );
    assert_ne!(owner, a_node);
}

#[test]
fn the_audit_chain_stays_one_valid_chain_with_two_writers() {
    let (a, b) = two_nodes(&["--audit", "on"]);
    std::thread::scope(|scope| {
        for i in 0..4 {
            let node = if i % 2 == 0 { &a } else { &b };
            scope.spawn(move || {
                for _ in 0..15 {
                    let r = node
                        .req("POST", "/Patient")
                        .json(r#"{"resourceType":"Patient","gender":"unknown"}"#);
                    assert_eq!(r.status, 201, "{}", r.body);
                    let id = r.json()["id"].as_str().unwrap_or_default().to_string();
                    assert_eq!(node.get(&format!("/Patient/{id}")).status, 200);
                }
            });
        }
    });
    // Reads are logged in the background: reading AuditEvents projects them all.
    let events = a.get("/AuditEvent?_total=accurate&_count=1");
    assert!(
        events.json()["total"].as_u64().unwrap_or(0) >= 60,
        "{}",
        events.body
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fhir-server"))
        .args(["audit", "verify", "--database-url", &a.db_url])
        .output()
        .expect("run audit verify");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn fixture(name: &str) -> String {
    format!(
        "{}/../../fixtures/security/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn assertion(server: &Server, jti: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let claims = json!({"iss": "reader", "sub": "reader", "exp": now + 120, "jti": jti,
        "aud": server.base.replace("/fhir", "/auth/token")});
    let mut header = Header::new(Algorithm::RS384);
    header.kid = Some("rs-1".into());
    let key = std::fs::read(fixture("client-rs.key")).expect("key");
    encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(&key).expect("rsa key"),
    )
    .expect("sign")
}

fn token_request(server: &Server, assertion: &str) -> common::Resp {
    let body = format!(
        "grant_type=client_credentials&scope=system%2FPatient.rs\
         &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
         &client_assertion={assertion}"
    );
    common::Resp::from(
        server
            .agent
            .post(&server.base.replace("/fhir", "/auth/token"))
            .set("Content-Type", "application/x-www-form-urlencoded")
            .send_string(&body),
    )
}

#[test]
fn tokens_hold_on_every_node_and_replays_are_refused_on_all() {
    let clients =
        std::env::temp_dir().join(format!("fhir-nodes-clients-{}.json", std::process::id()));
    let jwks = fixture("client.jwks.json");
    let file =
        json!({"clients": [{"client_id": "reader", "scope": "system/*.rs", "jwks_file": jwks}]});
    std::fs::write(&clients, file.to_string()).expect("clients file");
    let clients = clients.display().to_string();
    // No --auth-token-secret: the nodes share the key kept in the database.
    let (a, b) = two_nodes(&["--auth-clients", &clients]);
    // The assertion's audience is the token URL of the node it is sent to.
    let first = assertion(&a, &unique("jti"));
    let r = token_request(&a, &first);
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.json()["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let read = b
        .req("GET", "/Patient?_count=1")
        .header("Authorization", &format!("Bearer {token}"))
        .send();
    assert_eq!(
        read.status, 200,
        "a token from one node works on the other: {}",
        read.body
    );
    // The same jti presented to the other node is a replay.
    let jti = unique("jti");
    assert_eq!(token_request(&a, &assertion(&a, &jti)).status, 200);
    let again = token_request(&b, &assertion(&b, &jti));
    assert_eq!(again.status, 401, "{}", again.body);
    assert_eq!(again.json()["error"], "invalid_client");
}

/// With autovacuum off (as on this project's machines), each node vacuums the small
/// tables that every write or beat changes (its node row, the change feed, the
/// subscription counters and events), so that their dead row versions do not pile up
/// and slow every write; with autovacuum on, it leaves them to autovacuum.
#[test]
fn the_tables_every_write_changes_are_vacuumed_when_autovacuum_is_off() {
    let s = Server::start(Backend::Postgres);
    let r = s
        .req("POST", "/Patient")
        .json(r#"{"resourceType":"Patient","gender":"female"}"#);
    assert_eq!(r.status, 201, "{}", r.body);
    let off = pg_texts(
        &s,
        "SELECT setting AS s FROM pg_settings WHERE name = 'autovacuum'",
    ) == ["off"];
    let vacuumed = || {
        pg_texts(
            &s,
            "SELECT relname::text AS s FROM pg_stat_user_tables WHERE last_vacuum IS NOT NULL \
             AND relname IN ('server_nodes', 'change_outbox', 'subscription_counters', \
             'subscription_events') ORDER BY relname",
        )
    };
    let all = [
        "change_outbox",
        "server_nodes",
        "subscription_counters",
        "subscription_events",
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = vacuumed();
    while off && seen != all && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        seen = vacuumed();
    }
    if off {
        assert_eq!(seen, all, "autovacuum is off: the server vacuums these");
    } else {
        println!("autovacuum is on here: the server must leave these tables to it");
        assert!(seen.is_empty(), "vacuumed by the server: {seen:?}");
    }
}
