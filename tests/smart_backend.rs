//! Black-box tests of SMART Backend Services at the token endpoint (backend-services
//! and client-confidential-asymmetric of the SMART App Launch IG): client assertions
//! (`kid`, `jku`, keys from a JWKS URL, cached), scope negotiation (narrowed grants,
//! unknown types), the OAuth error codes, and the discovery document.

mod common;

use std::sync::atomic::Ordering;

use common::smart::*;
use common::{unique, Backend};
use jsonwebtoken::{Algorithm, Header};
use serde_json::json;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn discovery_and_metadata_are_public(b: Backend) {
    let s = secure(b);
    let r = s.get("/.well-known/smart-configuration");
    assert_eq!(r.status, 200, "{}", r.body);
    let c = r.json();
    assert_eq!(c["token_endpoint"], token_url(s));
    assert!(c["token_endpoint_auth_signing_alg_values_supported"]
        .as_array()
        .expect("algs")
        .contains(&json!("ES384")));
    assert_eq!(s.get("/metadata").status, 200);
    let r = s.get("/Patient");
    r.outcome(401);
    // No credentials at all: a challenge without an error code (RFC 6750 §3.1).
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"fhir\""));
    // Security headers, HSTS over HTTPS.
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert!(r.header("strict-transport-security").is_some());
}

fn backend_services_token_flow(b: Backend) {
    let s = secure(b);
    for alg in [Algorithm::RS384, Algorithm::ES384] {
        let a = assertion(s, "reader", alg, &unique("jti"), now() + 120);
        let form = [
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", a.as_str()),
            ("scope", "system/Patient.rs system/Patient.c"),
        ];
        let r = token_request(s, &form);
        assert_eq!(r.status, 200, "{alg:?}: {}", r.body);
        let t = r.json();
        assert_eq!(t["token_type"], "bearer");
        assert_eq!(t["scope"], "system/Patient.rs", "c is not registered");
        assert!(t["expires_in"].as_u64().is_some_and(|e| e <= 300));
        assert_eq!(r.header("cache-control"), Some("no-store"));
        // The same assertion again is a replay.
        let again = token_request(s, &form);
        assert_eq!(again.status, 401, "{}", again.body);
        assert_eq!(again.json()["error"], "invalid_client");
        let token = t["access_token"].as_str().expect("token");
        assert_eq!(as_(s, token, "GET", "/Patient?_count=1").send().status, 200);
    }
}

fn token_endpoint_rejects_bad_requests(b: Backend) {
    let s = secure(b);
    let good = |jti: &str| assertion(s, "reader", Algorithm::RS384, jti, now() + 120);
    let cat = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
    type Case<'a> = (Vec<(&'a str, String)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("grant_type", "password".into())],
            400,
            "unsupported_grant_type",
        ),
        (
            vec![
                ("grant_type", "client_credentials".into()),
                ("client_assertion_type", cat.into()),
                ("scope", "system/*.rs".into()),
            ],
            400,
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "client_credentials".into()),
                ("client_assertion_type", cat.into()),
                ("client_assertion", good(&unique("j"))),
                ("scope", "system/*.c".into()),
            ],
            400,
            "invalid_scope",
        ),
        (
            vec![
                ("grant_type", "client_credentials".into()),
                ("client_assertion_type", cat.into()),
                (
                    "client_assertion",
                    assertion(s, "nobody", Algorithm::RS384, "j", now() + 60),
                ),
                ("scope", "system/*.rs".into()),
            ],
            401,
            "invalid_client",
        ),
        (
            // Expires too far in the future.
            vec![
                ("grant_type", "client_credentials".into()),
                ("client_assertion_type", cat.into()),
                (
                    "client_assertion",
                    assertion(s, "reader", Algorithm::RS384, &unique("j"), now() + 3600),
                ),
                ("scope", "system/*.rs".into()),
            ],
            401,
            "invalid_client",
        ),
        (
            // Expired.
            vec![
                ("grant_type", "client_credentials".into()),
                ("client_assertion_type", cat.into()),
                (
                    "client_assertion",
                    assertion(s, "reader", Algorithm::RS384, &unique("j"), now() - 600),
                ),
                ("scope", "system/*.rs".into()),
            ],
            401,
            "invalid_client",
        ),
        (
            // Signed with a key the client did not register (the OIDC provider's).
            vec![
                ("grant_type", "client_credentials".into()),
                ("client_assertion_type", cat.into()),
                (
                    "client_assertion",
                    sign(
                        Algorithm::RS384,
                        "rs-1",
                        "oidc.key",
                        &json!({"iss": "reader", "sub": "reader", "aud": token_url(s), "exp": now() + 60, "jti": unique("j")}),
                    ),
                ),
                ("scope", "system/*.rs".into()),
            ],
            401,
            "invalid_client",
        ),
    ];
    for (form, status, error) in cases {
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = token_request(s, &pairs);
        assert_eq!(r.status, status, "{form:?}: {}", r.body);
        assert_eq!(r.json()["error"], error, "{}", r.body);
    }
}

fn assertions_name_their_key_and_keys_come_from_the_jwks_url(b: Backend) {
    let s = secure(b);
    let request = |a: &str, scope: &str| {
        token_request(
            s,
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", a),
                ("scope", scope),
            ],
        )
    };
    // No kid: refused (the IG requires it).
    let mut h = Header::new(Algorithm::RS384);
    h.kid = None;
    let r = request(&assertion_with(s, "reader", h), "system/*.rs");
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (401, json!("invalid_client")),
        "{}",
        r.body
    );
    // A jku that is not the client's registered JWKS URL: refused.
    let mut h = Header::new(Algorithm::RS384);
    h.kid = Some("rs-1".into());
    h.jku = Some("https://attacker.test/jwks.json".into());
    let r = request(&assertion_with(s, "reader", h), "system/*.rs");
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(
        r.json()["error_description"]
            .as_str()
            .unwrap_or("")
            .contains("jku"),
        "{}",
        r.body
    );
    // A client registered by JWKS URL: its keys are fetched, once while cached.
    let (url, hits) = jwks_server();
    let before = hits.load(Ordering::SeqCst);
    for _ in 0..5 {
        let mut h = Header::new(Algorithm::RS384);
        h.kid = Some("rs-1".into());
        h.jku = Some(url.clone());
        let r = request(&assertion_with(s, "url-client", h), "system/Patient.rs");
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // At most one fetch per server (the other backend's server shares the counter).
    let fetched = hits.load(Ordering::SeqCst) - before;
    assert!(
        fetched <= 2,
        "the JWKS is cached as its Cache-Control allows ({fetched} fetches for 5 tokens)"
    );
}

fn scopes_are_negotiated(b: Backend) {
    let s = secure(b);
    let request = |scope: &str| {
        let a = assertion(s, "reader", Algorithm::RS384, &unique("j"), now() + 120);
        token_request(
            s,
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &a),
                ("scope", scope),
            ],
        )
    };
    // reader is registered with system/*.rs: a wider request is narrowed to it.
    let r = request("system/*.cruds");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["scope"], "system/*.rs");
    let r = request("system/Observation.read");
    assert_eq!(
        r.json()["scope"],
        "system/Observation.read",
        "SMART v1 scopes too"
    );
    // Nothing allowed, or a type the server does not hold: invalid_scope.
    for scope in ["system/*.c", "system/Bogus.rs"] {
        let r = request(scope);
        assert_eq!(
            (r.status, r.json()["error"].clone()),
            (400, json!("invalid_scope")),
            "{scope}: {}",
            r.body
        );
    }
}

fn oauth_errors_follow_rfc_6749(b: Backend) {
    let s = secure(b);
    let a = assertion(s, "reader", Algorithm::RS384, &unique("j"), now() + 120);
    let missing = token_request(
        s,
        &[
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &a),
            ("scope", "system/*.rs"),
        ],
    );
    assert_eq!(
        (missing.status, missing.json()["error"].clone()),
        (400, json!("invalid_request"))
    );
    assert_eq!(missing.header("cache-control"), Some("no-store"));
    assert_eq!(missing.header("pragma"), Some("no-cache"));
    let twice = token_request(
        s,
        &[
            ("grant_type", "client_credentials"),
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &a),
            ("scope", "system/*.rs"),
        ],
    );
    assert_eq!(twice.json()["error"], "invalid_request", "{}", twice.body);
    // Discovery: only what this server does.
    let c = s.get("/.well-known/smart-configuration").json();
    assert!(
        c.get("issuer").is_none() && c.get("response_types_supported").is_none(),
        "{c}"
    );
    assert_eq!(c["grant_types_supported"], json!(["client_credentials"]));
    assert_eq!(
        c["token_endpoint_auth_methods_supported"],
        json!(["private_key_jwt"])
    );
}

/// A value set's operations read the code systems it draws on: a token that may read
/// ValueSets but not CodeSystems is refused (a value set given in the request could
/// otherwise list any stored code system).
fn value_set_operations_need_code_system_read(b: Backend) {
    let s = secure(b);
    let url = "/ValueSet/$expand?url=http://hl7.org/fhir/ValueSet/administrative-gender";
    let narrow = backend_token(s, "reader", "system/ValueSet.rs");
    as_(s, &narrow, "GET", url).send().outcome(403);
    let both = backend_token(s, "reader", "system/ValueSet.rs system/CodeSystem.rs");
    let r = as_(s, &both, "GET", url).send();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["expansion"]["total"], 4);
}

both_backends!(
    value_set_operations_need_code_system_read,
    discovery_and_metadata_are_public,
    backend_services_token_flow,
    token_endpoint_rejects_bad_requests,
    assertions_name_their_key_and_keys_come_from_the_jwks_url,
    scopes_are_negotiated,
    oauth_errors_follow_rfc_6749,
);
