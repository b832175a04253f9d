//! SMART on FHIR over HTTPS for the security tests: the test PKI and keys of
//! fixtures/security, a server started with clients, an OpenID Connect provider and
//! mutual TLS, signed client assertions and token requests.

use std::io::BufReader;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::{unique, Backend, Resp, Server};

pub const ISSUER: &str = "https://idp.test";
pub const AUDIENCE: &str = "fhir-tests";
pub const SECRET: &str = "test-secret-test-secret-test-secret-0123";

pub fn fixture(name: &str) -> String {
    format!(
        "{}/../../fixtures/security/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

pub fn pem_certs(name: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    let f = std::fs::File::open(fixture(name)).expect("fixture");
    rustls_pemfile::certs(&mut BufReader::new(f))
        .collect::<Result<_, _>>()
        .expect("certs")
}

pub fn pem_key(name: &str) -> rustls::pki_types::PrivateKeyDer<'static> {
    let f = std::fs::File::open(fixture(name)).expect("fixture");
    rustls_pemfile::private_key(&mut BufReader::new(f))
        .expect("key")
        .expect("a key")
}

/// A TLS client trusting the test CA, with an optional client certificate.
pub fn tls_config(client: Option<(&str, &str)>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in pem_certs("ca.pem") {
        roots.add(c).expect("ca");
    }
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    Arc::new(match client {
        Some((cert, key)) => b
            .with_client_auth_cert(pem_certs(cert), pem_key(key))
            .expect("client cert"),
        None => b.with_no_client_auth(),
    })
}

pub fn agent(client: Option<(&str, &str)>) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .tls_config(tls_config(client))
        .build()
}

pub fn clients_file() -> String {
    let path = std::env::temp_dir().join(format!("fhir-sec-clients-{}.json", std::process::id()));
    let jwks = fixture("client.jwks.json");
    let clients = json!({"clients": [
        {"client_id": "backend-all", "scope": "system/*.cruds system/AuditEvent.rs", "jwks_file": jwks},
        {"client_id": "reader", "scope": "system/*.rs", "jwks_file": jwks},
        {"client_id": "partner-lab", "scope": "system/Observation.rs", "certificate_subject": "CN=partner-lab, O=Test Hospital"},
        {"client_id": "url-client", "scope": "system/*.rs", "jwks_url": jwks_server().0},
    ]});
    std::fs::write(&path, clients.to_string()).expect("clients file");
    path.display().to_string()
}

pub fn secure_args(clients: &str) -> Vec<String> {
    [
        "--tls-cert",
        &fixture("server.pem"),
        "--tls-key",
        &fixture("server.key"),
        "--tls-client-ca",
        &fixture("ca.pem"),
        "--auth-clients",
        clients,
        "--auth-token-secret",
        SECRET,
        "--oidc-issuer",
        ISSUER,
        "--oidc-audience",
        AUDIENCE,
        "--oidc-jwks",
        &fixture("oidc.jwks.json"),
        "--audit",
        "on",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

pub fn start_secure(b: Backend, more: &[&str]) -> Server {
    let clients = clients_file();
    let mut args = secure_args(&clients);
    args.extend(more.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start_full(b, &args, Some(agent(None)))
}

/// One secure server per backend.
pub fn secure(b: Backend) -> &'static Server {
    static SQLITE: OnceLock<Server> = OnceLock::new();
    static POSTGRES: OnceLock<Server> = OnceLock::new();
    match b {
        Backend::Sqlite => SQLITE.get_or_init(|| start_secure(b, &[])),
        Backend::Postgres => POSTGRES.get_or_init(|| start_secure(b, &[])),
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

pub fn sign(alg: Algorithm, kid: &str, key_file: &str, claims: &Value) -> String {
    let pem = std::fs::read(fixture(key_file)).expect("key");
    let key = match alg {
        Algorithm::ES384 => EncodingKey::from_ec_pem(&pem),
        _ => EncodingKey::from_rsa_pem(&pem),
    }
    .expect("encoding key");
    let mut h = Header::new(alg);
    h.kid = Some(kid.to_string());
    encode(&h, claims, &key).expect("sign")
}

/// A token of the OpenID Connect provider.
pub fn oidc_token(scope: &str, patient: Option<&str>) -> String {
    oidc_token_with(scope, patient, now() + 300, AUDIENCE, "oidc.key")
}

pub fn oidc_token_with(
    scope: &str,
    patient: Option<&str>,
    exp: i64,
    aud: &str,
    key: &str,
) -> String {
    let mut claims = json!({"iss": ISSUER, "sub": "app-1", "aud": aud, "exp": exp, "iat": now(), "scope": scope});
    if let Some(p) = patient {
        claims["patient"] = json!(p);
    }
    sign(Algorithm::RS256, "oidc-1", key, &claims)
}

pub fn token_url(s: &Server) -> String {
    s.base.replace("/fhir", "/auth/token")
}

pub fn assertion(s: &Server, client: &str, alg: Algorithm, jti: &str, exp: i64) -> String {
    let (kid, key) = match alg {
        Algorithm::ES384 => ("es-1", "client-es.key"),
        _ => ("rs-1", "client-rs.key"),
    };
    let claims = json!({"iss": client, "sub": client, "aud": token_url(s), "exp": exp, "jti": jti});
    sign(alg, kid, key, &claims)
}

pub fn token_request(s: &Server, form: &[(&str, &str)]) -> Resp {
    let body = form
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&");
    Resp::from(
        s.agent
            .post(&token_url(s))
            .set("Content-Type", "application/x-www-form-urlencoded")
            .send_string(&body),
    )
}

pub fn urlencode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Backend Services access token for a registered client.
pub fn backend_token(s: &Server, client: &str, scope: &str) -> String {
    let a = assertion(s, client, Algorithm::RS384, &unique("jti"), now() + 120);
    let r = token_request(
        s,
        &[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &a),
            ("scope", scope),
        ],
    );
    assert_eq!(r.status, 200, "token: {}", r.body);
    r.json()["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

pub fn as_(s: &Server, token: &str, method: &str, path: &str) -> super::Req {
    s.req(method, path)
        .header("Authorization", &format!("Bearer {token}"))
}

pub fn admin(s: &Server) -> String {
    backend_token(s, "backend-all", "system/*.cruds system/AuditEvent.rs")
}

/// A client's JWKS published over HTTP (`client.jwks.json`, `Cache-Control:
/// max-age=300`): its URL and how many times it was fetched.
pub fn jwks_server() -> &'static (String, Arc<AtomicUsize>) {
    static SERVER: OnceLock<(String, Arc<AtomicUsize>)> = OnceLock::new();
    SERVER.get_or_init(|| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let body = std::fs::read_to_string(fixture("client.jwks.json")).expect("jwks");
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                counted.fetch_add(1, Ordering::SeqCst);
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: max-age=300\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        (format!("http://127.0.0.1:{port}/jwks.json"), hits)
    })
}

/// A client assertion with the header given (to leave out `kid`, add `jku`…).
pub fn assertion_with(s: &Server, client: &str, header: Header) -> String {
    let claims = json!({"iss": client, "sub": client, "aud": token_url(s), "exp": now() + 120, "jti": unique("j")});
    let pem = std::fs::read(fixture("client-rs.key")).expect("key");
    let key = EncodingKey::from_rsa_pem(&pem).expect("key");
    encode(&header, &claims, &key).expect("sign")
}
