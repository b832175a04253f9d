//! Black-box tests of security over HTTPS: SMART Backend Services tokens, OpenID
//! Connect bearer tokens, scopes on every interaction, patient-compartment
//! confinement, mutual TLS, the audit trail and its verification, rate limits and
//! secure defaults. Keys and certificates: fixtures/security (test-only).

mod common;

use std::process::Command;
use std::sync::Arc;

use common::smart::*;
use common::{unique, Backend, Resp, Server};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

fn create(s: &Server, token: &str, rt: &str, body: Value) -> String {
    let r = as_(s, token, "POST", &format!("/{rt}")).json(&body.to_string());
    assert_eq!(r.status, 201, "create {rt}: {}", r.body);
    r.json()["id"].as_str().expect("id").to_string()
}

/// Two patients, each with a laboratory and a vital-signs Observation.
struct World {
    a: String,
    b: String,
    a_lab: String,
    a_vital: String,
    b_lab: String,
    tag: String,
}

fn world(s: &Server) -> World {
    let t = admin(s);
    let tag = unique("sec");
    let meta = json!({"tag": [{"system": "urn:test", "code": tag}]});
    let a = create(
        s,
        &t,
        "Patient",
        json!({"resourceType": "Patient", "meta": meta, "name": [{"family": format!("A{tag}")}]}),
    );
    let b = create(
        s,
        &t,
        "Patient",
        json!({"resourceType": "Patient", "meta": meta, "name": [{"family": format!("B{tag}")}]}),
    );
    let obs = |p: &str, cat: &str| {
        json!({"resourceType": "Observation", "meta": meta, "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": cat}]}],
            "code": {"text": "x"}, "subject": {"reference": format!("Patient/{p}")}})
    };
    let a_lab = create(s, &t, "Observation", obs(&a, "laboratory"));
    let a_vital = create(s, &t, "Observation", obs(&a, "vital-signs"));
    let b_lab = create(s, &t, "Observation", obs(&b, "laboratory"));
    World {
        a,
        b,
        a_lab,
        a_vital,
        b_lab,
        tag,
    }
}

fn ids(r: &Resp, mode: &str) -> Vec<String> {
    let mut v: Vec<String> = r.json()["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|e| e["search"]["mode"] == mode)
        .map(|e| {
            format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap_or(""),
                e["resource"]["id"].as_str().unwrap_or("")
            )
        })
        .collect();
    v.sort();
    v
}

// --------------------------------------------------------------------- tokens

fn invalid_bearer_tokens_are_401(b: Backend) {
    let s = secure(b);
    let scope = "system/*.rs";
    let tokens = [
        ("garbage", "not-a-jwt".to_string()),
        ("expired", oidc_token_with(scope, None, now() - 600, AUDIENCE, "oidc.key")),
        ("wrong audience", oidc_token_with(scope, None, now() + 300, "someone-else", "oidc.key")),
        ("forged", oidc_token_with(scope, None, now() + 300, AUDIENCE, "client-rs.key")),
        (
            "unknown issuer",
            sign(Algorithm::RS256, "oidc-1", "oidc.key", &json!({"iss": "https://evil.test", "aud": AUDIENCE, "exp": now() + 300, "scope": scope})),
        ),
        (
            "own token with a wrong secret",
            encode(&Header::new(Algorithm::HS256), &json!({"iss": "urn:fhir-server", "aud": "urn:fhir-server", "sub": "x", "exp": now() + 300, "iat": now(), "jti": "j", "scope": scope}), &EncodingKey::from_secret(b"not-the-secret-not-the-secret-000")).expect("sign"),
        ),
    ];
    for (what, t) in tokens {
        let r = as_(s, &t, "GET", "/Patient").send();
        assert_eq!(r.status, 401, "{what}: {}", r.body);
        r.outcome(401);
        assert!(
            r.header("www-authenticate")
                .is_some_and(|h| h.contains("error=\"invalid_token\"")),
            "{what}: {:?}",
            r.header("www-authenticate")
        );
    }
    let r = s
        .req("GET", "/Patient")
        .header("Authorization", "Basic abc")
        .send();
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .is_some_and(|h| h.contains("error=\"invalid_request\"")));
    // A valid token of the provider works.
    let ok = as_(s, &oidc_token(scope, None), "GET", "/Patient?_count=1").send();
    assert_eq!(ok.status, 200, "{}", ok.body);
}

// --------------------------------------------------------------------- scopes

/// Each scope form against each interaction: allowed or 403.
fn scope_matrix(b: Backend) {
    let s = secure(b);
    let w = world(s);
    let admin = admin(s);
    let patient = json!({"resourceType": "Patient", "active": true}).to_string();
    let upd = |id: &str| json!({"resourceType": "Patient", "id": id, "active": false}).to_string();
    let scratch = create(s, &admin, "Patient", json!({"resourceType": "Patient"}));
    // (scope, read, search, create, update, delete, history, type history)
    let matrix: [(&str, [bool; 7]); 8] = [
        (
            "system/Patient.r",
            [true, false, false, false, false, true, false],
        ),
        (
            "system/Patient.s",
            [false, true, false, false, false, false, true],
        ),
        (
            "system/Patient.c",
            [false, false, true, false, false, false, false],
        ),
        (
            "system/Patient.u",
            [false, false, false, true, false, false, false],
        ),
        (
            "system/Patient.d",
            [false, false, false, false, true, false, false],
        ),
        (
            "system/Patient.read",
            [true, true, false, false, false, true, true],
        ),
        (
            "user/*.write",
            [false, false, true, true, true, false, false],
        ),
        (
            "system/Observation.cruds",
            [false, false, false, false, false, false, false],
        ),
    ];
    for (scope, expect) in matrix {
        let t = oidc_token(scope, None);
        let got = [
            as_(s, &t, "GET", &format!("/Patient/{}", w.a))
                .send()
                .status,
            as_(s, &t, "GET", &format!("/Patient?_id={}", w.a))
                .send()
                .status,
            as_(s, &t, "POST", "/Patient").json(&patient).status,
            as_(s, &t, "PUT", &format!("/Patient/{scratch}"))
                .json(&upd(&scratch))
                .status,
            as_(
                s,
                &t,
                "DELETE",
                &format!(
                    "/Patient/{}",
                    create(s, &admin, "Patient", json!({"resourceType": "Patient"}))
                ),
            )
            .send()
            .status,
            as_(s, &t, "GET", &format!("/Patient/{}/_history", w.a))
                .send()
                .status,
            as_(s, &t, "GET", "/Patient/_history?_count=1")
                .send()
                .status,
        ];
        for (i, (g, e)) in got.iter().zip(expect).enumerate() {
            let ok = (200..300).contains(g);
            assert_eq!(ok, e, "{scope}: interaction {i} answered {g}");
            if !ok {
                assert_eq!(*g, 403, "{scope}: interaction {i}");
            }
        }
    }
    // A refusal is an OperationOutcome that says why.
    let r = as_(s, &oidc_token("system/Patient.r", None), "POST", "/Patient").json(&patient);
    let oo = r.outcome(403);
    assert_eq!(oo["issue"][0]["code"], "forbidden");
}

fn includes_and_transactions_respect_scopes(b: Backend) {
    let s = secure(b);
    let w = world(s);
    let q = format!(
        "/Observation?_tag=urn:test|{}&_include=Observation:subject",
        w.tag
    );
    let only_obs = oidc_token("system/Observation.rs", None);
    let r = as_(s, &only_obs, "GET", &q).send();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ids(&r, "match").len(), 3);
    assert!(
        ids(&r, "include").is_empty(),
        "Patients need a Patient scope"
    );
    let both = oidc_token("system/Observation.rs system/Patient.r", None);
    assert_eq!(ids(&as_(s, &both, "GET", &q).send(), "include").len(), 2);
    // Transactions: one entry not allowed fails the whole; nothing is written.
    let tag = unique("tx");
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "meta": {"tag": [{"system": "urn:test", "code": tag}]}}, "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation", "meta": {"tag": [{"system": "urn:test", "code": tag}]}, "status": "final", "code": {"text": "x"}}, "request": {"method": "POST", "url": "Observation"}},
    ]});
    let patients_only = oidc_token("system/Patient.crus", None);
    let r = as_(s, &patients_only, "POST", "").json(&tx.to_string());
    r.outcome(403);
    let admin = admin(s);
    let r = as_(
        s,
        &admin,
        "GET",
        &format!("/Patient?_tag=urn:test|{tag}&_summary=count"),
    )
    .send();
    assert_eq!(
        r.json()["total"],
        0,
        "nothing of the failed transaction is kept"
    );
    // Batches answer per entry.
    let mut batch = tx.clone();
    batch["type"] = json!("batch");
    let r = as_(s, &patients_only, "POST", "").json(&batch.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    let entries = r.json()["entry"].as_array().cloned().expect("entries");
    assert!(entries[0]["response"]["status"]
        .as_str()
        .unwrap_or("")
        .starts_with("201"));
    assert!(entries[1]["response"]["status"]
        .as_str()
        .unwrap_or("")
        .starts_with("403"));
    // Searches inside a batch are confined as plain searches are.
    let searches = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": q.trim_start_matches('/')}},
        {"request": {"method": "GET", "url": format!("Patient?_tag=urn:test|{}", w.tag)}},
    ]});
    let r = as_(s, &only_obs, "POST", "").json(&searches.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    let entries = r.json()["entry"].as_array().cloned().expect("entries");
    let modes: Vec<&str> = entries[0]["resource"]["entry"]
        .as_array()
        .expect("searchset")
        .iter()
        .filter_map(|e| e["search"]["mode"].as_str())
        .collect();
    assert_eq!(
        modes,
        vec!["match"; 3],
        "no Patient without a Patient scope"
    );
    assert_eq!(entries[1]["response"]["status"], "403 Forbidden");
    let _ = w.b_lab;
}

// ------------------------------------------------------- patient compartment

/// Chains and `_has` step only on resources the token could search itself: comparing
/// the results of two chained criteria must not reveal values of another patient's
/// resources (both reads of which are 403).
fn chains_and_has_cannot_infer_other_patients_data(b: Backend) {
    let s = secure(b);
    let w = world(s);
    let t = admin(s);
    let tag = &w.tag;
    let meta = json!({"tag": [{"system": "urn:test", "code": tag}]});
    let b_value = create(
        s,
        &t,
        "Observation",
        json!({"resourceType": "Observation", "meta": meta, "status": "final", "code": {"text": "x"},
            "subject": {"reference": format!("Patient/{}", w.b)},
            "valueQuantity": {"value": 1.0, "system": "http://unitsofmeasure.org", "code": "mg"}}),
    );
    let b_encounter = create(
        s,
        &t,
        "Encounter",
        json!({"resourceType": "Encounter", "meta": meta, "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": format!("Patient/{}", w.b)}}),
    );
    let practitioner = create(
        s,
        &t,
        "Practitioner",
        json!({"resourceType": "Practitioner", "meta": meta, "name": [{"family": "P"}]}),
    );
    create(
        s,
        &t,
        "Observation",
        json!({"resourceType": "Observation", "meta": meta, "status": "final", "code": {"text": "y"},
            "subject": {"reference": format!("Patient/{}", w.a)},
            "hasMember": [{"reference": format!("Observation/{b_value}")}],
            "focus": [{"reference": format!("Encounter/{b_encounter}")}]}),
    );
    create(
        s,
        &t,
        "Observation",
        json!({"resourceType": "Observation", "meta": meta, "status": "final",
            "code": {"coding": [{"system": "urn:test", "code": format!("secret{tag}")}]},
            "subject": {"reference": format!("Patient/{}", w.b)},
            "performer": [{"reference": format!("Practitioner/{practitioner}")}]}),
    );
    let count = |token: &str, query: &str| {
        let r = as_(s, token, "GET", query).send();
        assert_eq!(r.status, 200, "{query}: {}", r.body);
        r.json()["total"].as_i64().unwrap_or(-1)
    };
    let probes = [
        format!("/Observation?_tag=urn:test|{tag}&has-member:Observation.value-quantity=gt0.5"),
        format!("/Observation?_tag=urn:test|{tag}&focus:Encounter.status=finished"),
        format!("/Practitioner?_tag=urn:test|{tag}&_has:Observation:performer:code=urn:test|secret{tag}"),
    ];
    // An unrestricted token sees each link; the patient's token sees none of them.
    for q in &probes {
        assert_eq!(count(&t, q), 1, "{q}");
    }
    let patient_a = oidc_token("patient/*.rs", Some(&w.a));
    for q in &probes {
        assert_eq!(count(&patient_a, q), 0, "{q}");
    }
    // A type the scopes do not allow cannot be stepped on at all.
    let only_obs = oidc_token("patient/Observation.rs", Some(&w.a));
    let r = as_(
        s,
        &only_obs,
        "GET",
        &format!("/Observation?_tag=urn:test|{tag}&focus:Encounter.status=finished"),
    )
    .send();
    r.outcome(403);
}

fn patient_scopes_confine_to_the_patient(b: Backend) {
    let s = secure(b);
    let w = world(s);
    let t = oidc_token("patient/*.rs", Some(&w.a));
    let st = |path: &str| as_(s, &t, "GET", path).send().status;
    assert_eq!(st(&format!("/Patient/{}", w.a)), 200);
    assert_eq!(st(&format!("/Patient/{}", w.b)), 403);
    assert_eq!(st(&format!("/Observation/{}", w.a_lab)), 200);
    assert_eq!(st(&format!("/Observation/{}", w.b_lab)), 403);
    assert_eq!(st(&format!("/Observation/{}/_history", w.b_lab)), 403);
    assert_eq!(st(&format!("/Observation/{}/_history/1", w.b_lab)), 403);
    let tag = format!("_tag=urn:test|{}", w.tag);
    // Searches see only the patient's resources, totals included.
    let r = as_(s, &t, "GET", &format!("/Observation?{tag}")).send();
    assert_eq!(r.json()["total"], 2, "{}", r.body);
    assert_eq!(ids(&r, "match"), {
        let mut v = vec![
            format!("Observation/{}", w.a_lab),
            format!("Observation/{}", w.a_vital),
        ];
        v.sort();
        v
    });
    let r = as_(s, &t, "GET", &format!("/Patient?{tag}")).send();
    assert_eq!(ids(&r, "match"), vec![format!("Patient/{}", w.a)]);
    let r = as_(
        s,
        &t,
        "GET",
        &format!("/Patient?{tag}&_revinclude=Observation:subject"),
    )
    .send();
    assert_eq!(ids(&r, "include").len(), 2);
    let r = as_(
        s,
        &t,
        "GET",
        &format!("/Observation?subject:Patient.family=B{}", w.tag),
    )
    .send();
    assert_eq!(
        r.json()["total"],
        0,
        "chains cannot reach the other patient"
    );
    assert_eq!(st(&format!("/Patient/{}/Observation", w.b)), 403);
    assert_eq!(st(&format!("/Patient/{}/Observation", w.a)), 200);
    assert_eq!(st("/Observation/_history"), 403);
    assert_eq!(st("/?_type=Observation"), 403);
    // No patient in the token: patient scopes grant nothing.
    let none = oidc_token("patient/*.rs", None);
    assert_eq!(
        as_(s, &none, "GET", &format!("/Patient/{}", w.a))
            .send()
            .status,
        403
    );
}

fn patient_scopes_confine_writes(b: Backend) {
    let s = secure(b);
    let w = world(s);
    let t = oidc_token("patient/Observation.cruds patient/Patient.rs", Some(&w.a));
    let obs = |p: &str| json!({"resourceType": "Observation", "status": "final", "code": {"text": "w"}, "subject": {"reference": format!("Patient/{p}")}});
    let r = as_(s, &t, "POST", "/Observation").json(&obs(&w.a).to_string());
    assert_eq!(r.status, 201, "{}", r.body);
    let mine = r.json()["id"].as_str().expect("id").to_string();
    as_(s, &t, "POST", "/Observation")
        .json(&obs(&w.b).to_string())
        .outcome(403);
    let mut moved = obs(&w.b);
    moved["id"] = json!(mine);
    as_(s, &t, "PUT", &format!("/Observation/{mine}"))
        .json(&moved.to_string())
        .outcome(403);
    let mut other = obs(&w.a);
    other["id"] = json!(w.b_lab);
    as_(s, &t, "PUT", &format!("/Observation/{}", w.b_lab))
        .json(&other.to_string())
        .outcome(403);
    as_(s, &t, "DELETE", &format!("/Observation/{}", w.b_lab))
        .send()
        .outcome(403);
    assert_eq!(
        as_(s, &t, "DELETE", &format!("/Observation/{mine}"))
            .send()
            .status,
        204
    );
    as_(
        s,
        &t,
        "DELETE",
        &format!("/Observation?subject=Patient/{}", w.a),
    )
    .send()
    .outcome(403);
}

fn search_constrained_scopes(b: Backend) {
    let s = secure(b);
    let w = world(s);
    let t = oidc_token("patient/Observation.rs?category=laboratory", Some(&w.a));
    let r = as_(
        s,
        &t,
        "GET",
        &format!("/Observation?_tag=urn:test|{}", w.tag),
    )
    .send();
    assert_eq!(
        ids(&r, "match"),
        vec![format!("Observation/{}", w.a_lab)],
        "{}",
        r.body
    );
    assert_eq!(
        as_(s, &t, "GET", &format!("/Observation/{}", w.a_lab))
            .send()
            .status,
        200
    );
    assert_eq!(
        as_(s, &t, "GET", &format!("/Observation/{}", w.a_vital))
            .send()
            .status,
        403
    );
    // Included resources are held to the constraint too: the patient's vital signs
    // are left out of a `_revinclude`.
    let both = oidc_token(
        "patient/Patient.rs patient/Observation.rs?category=laboratory",
        Some(&w.a),
    );
    let r = as_(
        s,
        &both,
        "GET",
        &format!("/Patient?_id={}&_revinclude=Observation:subject", w.a),
    )
    .send();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        ids(&r, "include"),
        vec![format!("Observation/{}", w.a_lab)],
        "{}",
        r.body
    );
    let sys = oidc_token(
        "system/Observation.rs?category=laboratory system/Observation.rs?category=vital-signs",
        None,
    );
    let r = as_(
        s,
        &sys,
        "GET",
        &format!("/Observation?_tag=urn:test|{}", w.tag),
    )
    .send();
    assert_eq!(
        r.json()["total"],
        3,
        "two constraints on one parameter combine"
    );
}

fn operations_respect_scopes(b: Backend) {
    let s = secure(b);
    let w = world(s);
    let t = oidc_token("patient/*.rs", Some(&w.a));
    let r = as_(s, &t, "GET", &format!("/Patient/{}/$everything", w.a)).send();
    assert_eq!(r.status, 200, "{}", r.body);
    let got = ids(&r, "match");
    assert!(got.contains(&format!("Observation/{}", w.a_lab)), "{got:?}");
    assert!(
        !got.contains(&format!("Observation/{}", w.b_lab)),
        "{got:?}"
    );
    as_(s, &t, "GET", &format!("/Patient/{}/$everything", w.b))
        .send()
        .outcome(403);
    let r = as_(s, &t, "GET", "/Patient/$everything?_count=1000").send();
    assert!(ids(&r, "match")
        .iter()
        .all(|m| m != &format!("Patient/{}", w.b)));
    // A Binary is read with the access of its securityContext.
    let admin_t = admin(s);
    let binary = |context: &str| {
        let r = as_(s, &admin_t, "POST", "/Binary")
            .header("Content-Type", "text/plain")
            .header("X-Security-Context", context)
            .bytes(b"report");
        assert_eq!(r.status, 201, "{}", r.body);
        let loc = r.header("location").expect("location").to_string();
        loc.split("/Binary/")
            .nth(1)
            .expect("id")
            .split('/')
            .next()
            .expect("id")
            .to_string()
    };
    let mine = binary(&format!("Observation/{}", w.a_lab));
    let theirs = binary(&format!("Observation/{}", w.b_lab));
    let r = as_(s, &t, "GET", &format!("/Binary/{mine}")).send();
    assert_eq!((r.status, r.body.as_str()), (200, "report"));
    as_(s, &t, "GET", &format!("/Binary/{theirs}"))
        .send()
        .outcome(403);
    as_(s, &t, "GET", &format!("/Binary/{theirs}/_history/1"))
        .header("Accept", "application/fhir+json")
        .send()
        .outcome(403);
    // $validate needs access to the type.
    let obs_only = oidc_token("system/Observation.rs", None);
    as_(s, &obs_only, "POST", "/Patient/$validate")
        .json(r#"{"resourceType":"Patient"}"#)
        .outcome(403);
    // Bulk export: system scopes only; a job is visible to the client that started it.
    let kick = |token: &str| {
        as_(s, token, "GET", "/$export?_type=Patient")
            .header("Prefer", "respond-async")
            .header("Accept", "application/fhir+json")
            .send()
    };
    kick(&t).outcome(403);
    let admin = admin(s);
    let r = kick(&admin);
    assert_eq!(r.status, 202, "{}", r.body);
    let status = r
        .header("content-location")
        .expect("status url")
        .to_string();
    let path = status.split("/fhir").nth(1).expect("path").to_string();
    let other = backend_token(s, "reader", "system/*.rs");
    as_(s, &other, "GET", &path).send().outcome(404);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let r = as_(s, &admin, "GET", &path).send();
        if r.status == 200 {
            assert_eq!(r.json()["requiresAccessToken"], true);
            // The same client with a token that does not cover Patient: neither the
            // status nor the files (export.html: protected like the kick-off).
            let narrow = backend_token(s, "backend-all", "system/Observation.rs");
            as_(s, &narrow, "GET", &path).send().outcome(403);
            let file = r.json()["output"][0]["url"]
                .as_str()
                .expect("file")
                .to_string();
            let file = file.split("/fhir").nth(1).expect("path").to_string();
            as_(s, &narrow, "GET", &file).send().outcome(403);
            assert_eq!(as_(s, &admin, "GET", &file).send().status, 200);
            break;
        }
        assert_eq!(r.status, 202, "{}", r.body);
        assert!(
            std::time::Instant::now() < deadline,
            "export did not finish"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

// ------------------------------------------------------------------ mutual TLS

fn mutual_tls_clients(b: Backend) {
    let s = secure(b);
    let w = world(s);
    let partner = agent(Some(("client.pem", "client.key")));
    let r = Resp::from(
        partner
            .get(&s.url(&format!("/Observation/{}", w.a_lab)))
            .call(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = Resp::from(
        partner
            .post(&s.url("/Observation"))
            .set("Content-Type", "application/fhir+json")
            .send_string(r#"{"resourceType":"Observation","status":"final","code":{"text":"x"}}"#),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    // A certificate of another CA is refused during the handshake.
    let rogue = agent(Some(("rogue.pem", "rogue.key")));
    let err = rogue.get(&s.url("/metadata")).call();
    assert!(
        matches!(err, Err(ureq::Error::Transport(_))),
        "a rogue client certificate must fail the TLS handshake"
    );
}

fn http2_is_offered(b: Backend) {
    let s = secure(b);
    let port: u16 = s
        .base
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("port");
    let mut config = (*tls_config(None)).clone();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("conn");
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).expect("handshake");
    }
    assert_eq!(conn.alpn_protocol(), Some(&b"h2"[..]));
}

// ------------------------------------------------------------------------ audit

fn audit_trail_is_recorded_and_verifiable(b: Backend) {
    let s = start_secure(b, &[]);
    let admin = admin(&s);
    let id = create(&s, &admin, "Patient", json!({"resourceType": "Patient"}));
    // Writes record who made them.
    let p = as_(&s, &admin, "GET", &format!("/Patient/{id}"))
        .send()
        .json();
    assert_eq!(p["meta"]["source"], "urn:fhir-server:client:backend-all");
    as_(
        &s,
        &oidc_token("system/Patient.r", None),
        "POST",
        "/Patient",
    )
    .json(r#"{"resourceType":"Patient"}"#)
    .outcome(403);
    let _ = s.get("/Patient");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let events = as_(&s, &admin, "GET", "/AuditEvent?_count=100").send();
    assert_eq!(events.status, 200, "{}", events.body);
    let all = events.json();
    let subtypes: Vec<String> = all["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["resource"]["subtype"][0]["code"].as_str().unwrap_or(""),
                e["resource"]["outcome"].as_str().unwrap_or("")
            )
        })
        .collect();
    for want in ["create:0", "read:0", "create:4", "search-type:4", "login:0"] {
        assert!(
            subtypes.contains(&want.to_string()),
            "{want} in {subtypes:?}"
        );
    }
    // Only auditors may see the trail, and nobody may change it.
    as_(&s, &oidc_token("system/*.rs", None), "GET", "/AuditEvent")
        .send()
        .outcome(403);
    as_(&s, &admin, "POST", "/AuditEvent")
        .json(r#"{"resourceType":"AuditEvent"}"#)
        .outcome(405);
    let verify = || {
        Command::new(env!("CARGO_BIN_EXE_fhir-server"))
            .args(["audit", "verify", "--database-url", &s.db_url])
            .output()
            .expect("run verify")
    };
    let ok = verify();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("audit chain verified"));
    tamper(&s);
    let bad = verify();
    assert!(
        !bad.status.success(),
        "{}",
        String::from_utf8_lossy(&bad.stdout)
    );
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("altered"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    s.execute("DELETE FROM audit_log WHERE seq = 2");
    let removed = verify();
    assert!(
        String::from_utf8_lossy(&removed.stderr).contains("removed"),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
}

/// Changes a logged AuditEvent behind the server's back.
fn tamper(s: &Server) {
    s.execute(
        "UPDATE audit_log SET content = REPLACE(content, '\"status\":', '\"status\": ') WHERE seq = 1",
    );
}

// -------------------------------------------------------------- rate and defaults

fn rate_limits_per_client(b: Backend) {
    let s = start_secure(b, &["--rate-limit", "5"]);
    let t = oidc_token("system/*.rs", None);
    let statuses: Vec<u16> = (0..12)
        .map(|_| as_(&s, &t, "GET", "/Patient?_count=1").send().status)
        .collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    let r = as_(&s, &t, "GET", "/Patient?_count=1").send();
    if r.status == 429 {
        assert!(r.header("retry-after").is_some());
        r.outcome(429);
    }
}

both_backends!(
    invalid_bearer_tokens_are_401,
    scope_matrix,
    includes_and_transactions_respect_scopes,
    patient_scopes_confine_to_the_patient,
    chains_and_has_cannot_infer_other_patients_data,
    patient_scopes_confine_writes,
    search_constrained_scopes,
    operations_respect_scopes,
    mutual_tls_clients,
    http2_is_offered,
    audit_trail_is_recorded_and_verifiable,
    rate_limits_per_client,
);

#[test]
fn refuses_to_expose_an_unauthenticated_server() {
    let out = Command::new(env!("CARGO_BIN_EXE_fhir-server"))
        .args(["serve", "--listen", "0.0.0.0:0", "--database-url"])
        .arg(format!(
            "sqlite://{}/fhir-sec-refuse-{}.db",
            std::env::temp_dir().display(),
            std::process::id()
        ))
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to serve"));
}

#[test]
fn clients_cli_manages_the_clients_file() {
    let file = std::env::temp_dir().join(format!("fhir-sec-cli-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_fhir-server"))
            .arg("clients")
            .arg("--file")
            .arg(&file)
            .args(args)
            .output()
            .expect("run")
    };
    let jwks = fixture("client.jwks.json");
    assert!(run(&[
        "add",
        "--id",
        "lab",
        "--scope",
        "system/Observation.rs",
        "--jwks",
        &jwks
    ])
    .status
    .success());
    let dup = run(&[
        "add",
        "--id",
        "lab",
        "--scope",
        "system/Observation.rs",
        "--jwks",
        &jwks,
    ]);
    assert!(!dup.status.success());
    let bad = run(&[
        "add",
        "--id",
        "x",
        "--scope",
        "system/Observation.zz",
        "--jwks",
        &jwks,
    ]);
    assert!(!bad.status.success());
    let list = run(&["list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("lab\tsystem/Observation.rs"));
    assert!(run(&["remove", "--id", "lab"]).status.success());
    assert!(!run(&["remove", "--id", "lab"]).status.success());
    let _ = std::fs::remove_file(&file);
}
