//! Tenants (`--tenancy url|claim`): two partner organisations with the same resource
//! ids and identifiers on one server; nothing of one — reads, searches, includes,
//! chains, history, counts, conditional writes, `$everything`, export, audit trail —
//! ever reaches the other, and tokens reach their own tenant only.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::receiver::Receiver;
use common::smart::{agent, as_, now, secure_args, sign, AUDIENCE, ISSUER};
use common::{Backend, Req, Resp, Server};
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

const SYS: &str = "urn:oid:1.2.36.146.595.217.0.1";

/// `fhir-server tenants …` on the server's database.
fn tenants_cli(s: &Server, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fhir-server"))
        .args(["tenants", "--database-url", &s.db_url])
        .args(args)
        .output()
        .expect("run fhir-server tenants");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn add_tenants(s: &Server, names: &[&str]) {
    for n in names {
        let (ok, text) = tenants_cli(s, &["add", n]);
        assert!(ok, "tenants add {n}: {text}");
    }
}

/// A request to `path` of tenant `tenant`'s base (`/fhir/{tenant}`).
fn at(s: &Server, tenant: &str, method: &str, path: &str) -> Req {
    s.root(method, &format!("/fhir/{tenant}{path}"))
}

fn get(s: &Server, tenant: &str, path: &str) -> Resp {
    at(s, tenant, "GET", path).send()
}

fn put(s: &Server, tenant: &str, path: &str, body: Value) -> Resp {
    at(s, tenant, "PUT", path).json(&body.to_string())
}

fn entries(bundle: &Value) -> Vec<Value> {
    bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|e| e["resource"].clone()).collect())
        .unwrap_or_default()
}

fn families(bundle: &Value) -> Vec<String> {
    entries(bundle)
        .iter()
        .filter_map(|r| r["name"][0]["family"].as_str().map(str::to_string))
        .collect()
}

/// The same ids and identifier in both tenants, told apart by the family name and
/// the Observation's value; tenant `beta` also has a Patient `only-b` and a second
/// version of `p1`.
fn seed(s: &Server) {
    for (t, family, status) in [("acme", "Acme", "final"), ("beta", "Beta", "amended")] {
        let patient = json!({"resourceType": "Patient", "id": "p1",
            "identifier": [{"system": SYS, "value": "123"}], "name": [{"family": family}]});
        assert_eq!(put(s, t, "/Patient/p1", patient).status, 201);
        let obs = json!({"resourceType": "Observation", "id": "o1", "status": status,
            "code": {"text": family}, "subject": {"reference": "Patient/p1"}});
        assert_eq!(put(s, t, "/Observation/o1", obs).status, 201);
    }
    let again = json!({"resourceType": "Patient", "id": "p1", "active": true,
        "identifier": [{"system": SYS, "value": "123"}], "name": [{"family": "Beta"}]});
    assert_eq!(put(s, "beta", "/Patient/p1", again).status, 200);
    let only = json!({"resourceType": "Patient", "id": "only-b",
        "identifier": [{"system": SYS, "value": "only-b"}], "name": [{"family": "Beta"}]});
    assert_eq!(put(s, "beta", "/Patient/only-b", only).status, 201);
}

/// Reads, searches, includes, chains, history and counts of `acme` see acme only.
fn reads_stay_home(s: &Server) {
    let p = get(s, "acme", "/Patient/p1").json();
    assert_eq!(p["name"][0]["family"], "Acme");
    assert_eq!(p["meta"]["versionId"], "1");
    assert_eq!(get(s, "acme", "/Patient/p1/_history/2").status, 404);
    assert_eq!(get(s, "acme", "/Patient/only-b").status, 404);
    let found = get(s, "acme", &format!("/Patient?identifier={SYS}|123")).json();
    assert_eq!(families(&found), ["Acme"]);
    let url = found["entry"][0]["fullUrl"].as_str().unwrap_or_default();
    assert!(url.ends_with("/fhir/acme/Patient/p1"), "{url}");
    assert!(found["link"][0]["url"]
        .as_str()
        .is_some_and(|u| u.contains("/fhir/acme/Patient?")));
    let included = get(s, "acme", "/Observation?_include=Observation:subject").json();
    assert_eq!(families(&included), ["Acme"]);
    let rev = get(s, "acme", "/Patient?_revinclude=Observation:subject").json();
    let codes: Vec<Value> = entries(&rev)
        .into_iter()
        .map(|r| r["code"]["text"].clone())
        .filter(|c| !c.is_null())
        .collect();
    assert_eq!(codes, [json!("Acme")]);
    let chained = get(s, "acme", "/Observation?subject.name=Beta").json();
    assert_eq!(chained["total"], 0, "{chained}");
    let has = get(
        s,
        "acme",
        "/Patient?_has:Observation:subject:status=amended",
    )
    .json();
    assert!(entries(&has).is_empty(), "{has}");
    let history = get(s, "acme", "/Patient/p1/_history").json();
    assert_eq!(history["total"], 1);
    let system = get(s, "acme", "/_history").json();
    // Patient, Observation and the Subscription.
    assert_eq!(system["total"], 3, "{system}");
    let count = get(s, "acme", "/Patient?_summary=count").json();
    assert_eq!(count["total"], 1);
    assert_eq!(get(s, "acme", "/Patient/_history").json()["total"], 1);
    let across = get(s, "acme", "?_type=Patient,Observation&_total=accurate").json();
    assert_eq!(across["total"], 2, "{across}");
    let wildcard = get(s, "acme", "/Observation?_include=*").json();
    assert_eq!(families(&wildcard), ["Acme"]);
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "Patient/only-b"}},
        {"request": {"method": "GET", "url": format!("Patient?identifier={SYS}|only-b")}}]});
    let r = at(s, "acme", "POST", "").json(&batch.to_string()).json();
    assert!(
        r["entry"][0]["response"]["status"]
            .as_str()
            .is_some_and(|st| st.starts_with("404")),
        "{r}"
    );
    assert_eq!(r["entry"][1]["resource"]["total"], 0, "{r}");
    let everything = get(s, "acme", "/Patient/p1/$everything").json();
    let texts: Vec<String> = entries(&everything)
        .iter()
        .map(|r| {
            r["name"][0]["family"]
                .as_str()
                .or(r["code"]["text"].as_str())
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(texts.len(), 2, "{everything}");
    assert!(texts.iter().all(|t| t == "Acme"), "{texts:?}");
    // The default tenant has none of them.
    assert_eq!(s.get("/Patient/p1").status, 404);
    assert_eq!(s.get("/Patient?_summary=count").json()["total"], 0);
}

/// Conditional writes of `acme` never match `beta`'s resources.
fn conditional_writes_stay_home(s: &Server) {
    let only = format!("identifier={SYS}|only-b");
    let create = json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
        "resource": {"resourceType": "Patient", "identifier": [{"system": SYS, "value": "only-b"}],
            "name": [{"family": "Acme"}]},
        "request": {"method": "POST", "url": "Patient", "ifNoneExist": only}}]});
    let r = at(s, "acme", "POST", "").json(&create.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["entry"][0]["response"]["status"]
        .as_str()
        .is_some_and(|st| st.starts_with("201")));
    let update = json!({"resourceType": "Patient", "identifier": [{"system": SYS, "value": "only-b"}],
        "name": [{"family": "Acme"}], "active": false});
    let r = put(s, "acme", &format!("/Patient?{only}"), update);
    assert_eq!(r.status, 200, "one acme match is updated: {}", r.body);
    let r = at(s, "acme", "DELETE", &format!("/Patient?{only}")).send();
    assert!(r.status < 300, "{}", r.body);
    let b = get(s, "beta", "/Patient/only-b");
    assert_eq!(
        b.status, 200,
        "beta's Patient survives acme's conditional delete"
    );
    assert_eq!(b.json()["meta"]["versionId"], "1");
}

/// `acme`'s export holds acme's resources only.
fn export_stays_home(s: &Server) {
    let r = at(s, "acme", "GET", "/$export?_type=Patient,Observation")
        .header("Prefer", "respond-async")
        .header("Accept", "application/fhir+json")
        .send();
    assert_eq!(r.status, 202, "{}", r.body);
    let status = r
        .header("content-location")
        .expect("Content-Location")
        .to_string();
    assert!(status.contains("/fhir/acme/$export-status/"), "{status}");
    let local = |url: &str| {
        url.split("/fhir/acme")
            .nth(1)
            .unwrap_or_default()
            .to_string()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let manifest = loop {
        let r = get(s, "acme", &local(&status));
        if r.status == 200 {
            break r.json();
        }
        assert_eq!(r.status, 202, "{}", r.body);
        assert!(Instant::now() < deadline, "export did not finish");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut lines = Vec::new();
    for o in manifest["output"].as_array().expect("output") {
        let r = get(s, "acme", &local(o["url"].as_str().expect("url")));
        assert_eq!(r.status, 200, "{}", r.body);
        lines.extend(
            r.body
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).expect("NDJSON")),
        );
    }
    assert_eq!(lines.len(), 2, "{lines:?}");
    for l in &lines {
        assert!(
            !l.to_string().contains("Beta"),
            "beta's data in acme's export: {l}"
        );
    }
    // beta knows nothing of acme's job.
    assert_eq!(get(s, "beta", &local(&status)).status, 404);
}

/// A subscription of `acme` to what both tenants write: notified of acme's only.
fn subscribe(s: &Server) -> Receiver {
    let hook = Receiver::start(200);
    let sub = json!({"resourceType": "Subscription", "status": "requested", "reason": "t",
        "criteria": "Observation?subject=Patient/p1",
        "channel": {"type": "rest-hook", "endpoint": hook.url, "payload": "application/fhir+json"}});
    let r = at(s, "acme", "POST", "/Subscription").json(&sub.to_string());
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["status"], "active", "{}", r.body);
    hook
}

fn notified_of_own_writes(hook: &Receiver) {
    let got = hook.wait_for(1);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(hook.count(), 1, "{got:?}");
    let resource: Value = serde_json::from_str(&got[0].body).expect("resource");
    assert_eq!(resource["code"]["text"], "Acme");
}

/// `beta`'s bulk `$import` loads into beta only.
fn import_stays_home(s: &Server, dir: &std::path::Path) {
    let file = dir.join("p.ndjson");
    let line = json!({"resourceType": "Patient", "id": "imported",
        "identifier": [{"system": SYS, "value": "123"}], "name": [{"family": "Beta"}]});
    std::fs::write(&file, format!("{line}\n")).expect("input");
    let params = json!({"resourceType": "Parameters", "parameter": [
        {"name": "inputFormat", "valueCode": "application/fhir+ndjson"},
        {"name": "input", "part": [{"name": "type", "valueCode": "Patient"},
            {"name": "url", "valueUri": format!("file://{}", file.display())}]}]});
    let r = at(s, "beta", "POST", "/$import")
        .header("Prefer", "respond-async")
        .json(&params.to_string());
    assert_eq!(r.status, 202, "{}", r.body);
    let status = r
        .header("content-location")
        .expect("Content-Location")
        .to_string();
    let local = status
        .split("/fhir/beta")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(s, "beta", &local).status == 202 {
        assert!(Instant::now() < deadline, "import did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get(s, "beta", "/Patient/imported").status, 200);
    assert_eq!(get(s, "acme", "/Patient/imported").status, 404);
    assert_eq!(get(s, "acme", &local).status, 404, "acme sees beta's job");
}

fn leak_matrix_by_url(b: Backend) {
    let dir = std::env::temp_dir().join(common::unique("fhir-tenant-import"));
    std::fs::create_dir_all(&dir).expect("import dir");
    let s = Server::start_with(
        b,
        &[
            "--tenancy",
            "url",
            "--subscription-allow-private-endpoints",
            "--import-dir",
            &dir.display().to_string(),
        ],
    );
    add_tenants(&s, &["acme", "beta"]);
    let hook = subscribe(&s);
    seed(&s);
    notified_of_own_writes(&hook);
    reads_stay_home(&s);
    conditional_writes_stay_home(&s);
    export_stays_home(&s);
    import_stays_home(&s, &dir);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Tenants that do not exist, or are disabled, are refused with an OperationOutcome;
/// the `tenants` command and `/admin/tenants` list, add and switch them.
fn unknown_and_disabled_tenants(b: Backend) {
    let base = "https://fhir.example.org/fhir";
    let s = Server::start_with(b, &["--tenancy", "url", "--base-url", base]);
    let r = get(&s, "nosuch", "/Patient");
    assert_eq!(r.status, 404);
    assert!(r.body.contains("no tenant 'nosuch'"), "{}", r.body);
    let (ok, text) = tenants_cli(&s, &["add", "Bad_Name"]);
    assert!(!ok && text.contains("not a tenant name"), "{text}");
    let (ok, text) = tenants_cli(&s, &["add", "metadata"]);
    assert!(!ok && text.contains("reserved"), "{text}");
    add_tenants(&s, &["acme"]);
    // Added while the server runs: served at once.
    assert_eq!(get(&s, "acme", "/Patient").status, 200);
    let (ok, text) = tenants_cli(&s, &["disable", "acme"]);
    assert!(ok, "{text}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(&s, "acme", "/Patient");
        if r.status == 403 {
            assert!(r.body.contains("disabled"), "{}", r.body);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a disabled tenant is still served"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, list) = tenants_cli(&s, &["list"]);
    assert!(list.contains("acme\tdisabled"), "{list}");
    // Over HTTP (authentication off: loopback, operators only).
    let r = s.root("POST", "/admin/tenants/acme/$enable").json("");
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .root("POST", "/admin/tenants")
        .header("Content-Type", "application/json")
        .json(r#"{"name":"gamma"}"#);
    assert_eq!(r.status, 201, "{}", r.body);
    let r = s
        .root("POST", "/admin/tenants")
        .header("Content-Type", "application/json")
        .json(r#"{"name":"no way"}"#);
    assert_eq!(r.status, 400, "{}", r.body);
    let r = s
        .root("POST", "/admin/tenants")
        .header("Content-Type", "application/json")
        .json("{not json");
    assert!(
        r.outcome(400).to_string().contains("the body must be"),
        "{}",
        r.body
    );
    let list = s.root("GET", "/admin/tenants").send().json();
    let names: Vec<(&str, bool)> = list["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .map(|t| (t["name"].as_str().unwrap_or(""), t["active"] == true))
        .collect();
    assert_eq!(names, [("acme", true), ("gamma", true)]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&s, "acme", "/Patient").status != 200 {
        assert!(Instant::now() < deadline, "an enabled tenant is not served");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Each tenant's CapabilityStatement names its own base.
    let meta = get(&s, "gamma", "/metadata").json();
    assert_eq!(meta["implementation"]["url"], format!("{base}/gamma"));
    assert_eq!(s.get("/metadata").json()["implementation"]["url"], base);
}

/// A token of the OpenID Connect provider for `tenant` (none: no claim).
fn token(scope: &str, tenant: Option<&str>) -> String {
    let mut claims = json!({"iss": ISSUER, "sub": "app-t", "aud": AUDIENCE,
        "exp": now() + 300, "iat": now(), "scope": scope});
    if let Some(t) = tenant {
        claims["tenant"] = json!(t);
    }
    sign(Algorithm::RS256, "oidc-1", "oidc.key", &claims)
}

fn secure(b: Backend, tenancy: &str, more: &[&str]) -> Server {
    let clients =
        std::env::temp_dir().join(format!("{}.json", common::unique("fhir-tenant-clients")));
    let jwks = common::smart::fixture("client.jwks.json");
    let file = json!({"clients": [
        {"client_id": "acme-backend", "scope": "system/*.rs", "jwks_file": jwks, "tenant": "acme"},
    ]});
    std::fs::write(&clients, file.to_string()).expect("clients file");
    let mut args = secure_args(&clients.display().to_string());
    args.extend(
        ["--tenancy", tenancy]
            .iter()
            .chain(more)
            .map(|s| s.to_string()),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start_full(b, &args, Some(agent(None)))
}

const ALL: &str = "system/*.cruds system/AuditEvent.rs";

/// With `--tenancy url`, a token reaches the tenant of its claim (or of its
/// registered client) and no other; each tenant's audit trail holds its own events.
fn tokens_reach_their_tenant(b: Backend) {
    let s = secure(b, "url", &[]);
    add_tenants(&s, &["acme", "beta"]);
    let (acme, beta, plain) = (
        token(ALL, Some("acme")),
        token(ALL, Some("beta")),
        token(ALL, None),
    );
    let create = |t: &str, tok: &str| {
        let r = at(&s, t, "PUT", "/Patient/p1")
            .header("Authorization", &format!("Bearer {tok}"))
            .json(
                &json!({"resourceType": "Patient", "id": "p1", "name": [{"family": t}]})
                    .to_string(),
            );
        assert_eq!(r.status, 201, "{}", r.body);
    };
    create("acme", &acme);
    create("beta", &beta);
    let read = |t: &str, tok: &str| {
        at(&s, t, "GET", "/Patient/p1")
            .header("Authorization", &format!("Bearer {tok}"))
            .send()
    };
    assert_eq!(read("acme", &acme).json()["name"][0]["family"], "acme");
    let r = read("beta", &acme);
    assert_eq!(r.status, 403);
    assert!(
        r.body.contains("for tenant 'acme', not for tenant 'beta'"),
        "{}",
        r.body
    );
    assert_eq!(read("acme", &plain).status, 403);
    assert_eq!(
        as_(&s, &acme, "GET", "/Patient").send().status,
        403,
        "acme's token on the default tenant"
    );
    assert_eq!(as_(&s, &plain, "GET", "/Patient").send().status, 200);
    // A registered client of acme gets tokens for acme.
    let backend = common::smart::backend_token(&s, "acme-backend", "system/Patient.rs");
    assert_eq!(read("acme", &backend).status, 200);
    assert_eq!(read("beta", &backend).status, 403);
    // Each tenant's audit trail: acme's holds acme's reads of p1, beta's does not.
    let deadline = Instant::now() + Duration::from_secs(20);
    let audit = |t: &str, tok: &str| {
        at(&s, t, "GET", "/AuditEvent?_count=200")
            .header("Authorization", &format!("Bearer {tok}"))
            .send()
    };
    loop {
        let events = audit("acme", &acme);
        assert_eq!(events.status, 200, "{}", events.body);
        if events.body.contains("acme-backend") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "acme's audit trail lacks its client's reads"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let beta_events = audit("beta", &beta);
    assert_eq!(beta_events.status, 200, "{}", beta_events.body);
    // The refusal is in beta's trail, in the access decision's words.
    assert!(
        beta_events
            .body
            .contains("403: this access token is for tenant 'acme', not for tenant 'beta'"),
        "{}",
        beta_events.body
    );
    assert!(
        !beta_events.body.contains("acme-backend"),
        "acme's events in beta's trail"
    );
    let default_events = as_(&s, &plain, "GET", "/AuditEvent?_count=200").send();
    assert!(
        !default_events.body.contains("acme-backend"),
        "acme's events in the default trail"
    );
    // Tenant administration is for the default tenant's operators.
    let admin = |tok: &str| {
        s.root("GET", "/admin/tenants")
            .header("Authorization", &format!("Bearer {tok}"))
            .send()
            .status
    };
    assert_eq!(admin(&plain), 200);
    assert_eq!(admin(&acme), 403);
    assert_eq!(admin(&token("system/Patient.rs", None)), 403);
}

/// With `--tenancy claim`, the token's claim chooses the tenant behind the same URLs;
/// a forged claim is refused by the signature check; per-tenant rate limits.
fn tenant_by_claim(b: Backend) {
    let s = secure(b, "claim", &["--tenant-rate-limit", "5"]);
    add_tenants(&s, &["acme"]);
    let (acme, plain) = (token(ALL, Some("acme")), token(ALL, None));
    let r = as_(&s, &acme, "PUT", "/Patient/p1").json(
        &json!({"resourceType": "Patient", "id": "p1", "name": [{"family": "acme"}]}).to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r
        .header("location")
        .is_some_and(|l| l.contains("/fhir/Patient/p1")));
    assert_eq!(as_(&s, &plain, "GET", "/Patient/p1").send().status, 404);
    let mine = as_(&s, &acme, "GET", "/Patient/p1").send();
    assert_eq!(mine.json()["name"][0]["family"], "acme");
    let nowhere = as_(&s, &token(ALL, Some("nosuch")), "GET", "/Patient").send();
    assert_eq!(nowhere.status, 404, "{}", nowhere.body);
    // The same claims signed by someone else: the claim chose acme, the check refuses.
    let forged = {
        let mut parts: Vec<String> = acme.split('.').map(str::to_string).collect();
        parts[2] = "AAAA".into();
        parts.join(".")
    };
    assert_eq!(as_(&s, &forged, "GET", "/Patient/p1").send().status, 401);
    // acme spends its rate; the default tenant does not notice.
    let limited = (0..30)
        .map(|_| as_(&s, &acme, "GET", "/Patient/p1").send().status)
        .filter(|st| *st == 429)
        .count();
    assert!(limited > 0, "no 429 past acme's rate");
    assert_eq!(
        as_(&s, &plain, "GET", "/Patient?_count=1").send().status,
        200
    );
}

/// After a restart every active tenant is served again at once: a notification a
/// tenant's partner refused before the restart is delivered without any request to
/// that tenant.
fn tenants_resume_after_restart(b: Backend) {
    let mut s = Server::start_with(
        b,
        &[
            "--tenancy",
            "url",
            "--subscription-allow-private-endpoints",
            "--subscription-retry-ms",
            "300",
        ],
    );
    add_tenants(&s, &["acme"]);
    let hook = Receiver::flaky(200, 1);
    let sub = json!({"resourceType": "Subscription", "status": "requested", "reason": "t",
        "criteria": "Observation?status=final",
        "channel": {"type": "rest-hook", "endpoint": hook.url, "payload": "application/fhir+json"}});
    let r = at(&s, "acme", "POST", "/Subscription").json(&sub.to_string());
    assert_eq!(r.status, 201, "{}", r.body);
    let obs = json!({"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "x"}});
    assert_eq!(put(&s, "acme", "/Observation/o1", obs).status, 201);
    hook.wait_for(1); // refused (503): the event waits for its retry
    std::thread::sleep(Duration::from_millis(300)); // the refusal is recorded
    s.restart();
    let got = hook.wait_for(2);
    assert_eq!(got[1].path, "/hook/Observation/o1", "{got:?}");
}

both_backends!(
    tenants_resume_after_restart,
    leak_matrix_by_url,
    unknown_and_disabled_tenants,
    tokens_reach_their_tenant,
    tenant_by_claim,
);
