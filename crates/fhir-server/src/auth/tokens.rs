//! Access tokens: SMART Backend Services (`client_credentials` with a
//! `private_key_jwt` client assertion) issues them; bearer tokens of this server or of
//! a configured OpenID Connect provider are verified on every request.
//!
//! All signing and verification is done by `jsonwebtoken` (ring underneath).

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::clients::Client;
use super::{Access, AuthConfig};
use crate::access::scopes::ScopeSet;

/// How far in the future a client assertion may expire (SMART: at most five minutes).
const MAX_ASSERTION_LIFETIME: u64 = 300;
/// Clock skew allowed when checking `exp`/`nbf`.
const LEEWAY: u64 = 5;
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An OAuth 2.0 error answer of the token endpoint (RFC 6749 §5.2).
#[derive(Debug, thiserror::Error)]
#[error("{code}: {description}")]
pub struct OAuthError {
    pub code: &'static str,
    pub description: String,
}

fn oauth(code: &'static str, description: impl Into<String>) -> OAuthError {
    OAuthError {
        code,
        description: description.into(),
    }
}

/// Claims of the access tokens this server issues.
#[derive(Debug, Serialize, Deserialize)]
struct AccessClaims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
    iat: u64,
    jti: String,
    scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenant: Option<String>,
}

pub fn now_secs() -> u64 {
    (fhir_store::time::now_millis() / 1000).max(0) as u64
}

/// The claims of a JWT read without checking it, to learn who claims to have signed it.
fn peek_claims(token: &str) -> Option<Value> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Claim `name` (a string) of a JWT, read without checking the token.
pub(crate) fn peek_claim(token: &str, name: &str) -> Option<String> {
    peek_claims(token)?.get(name)?.as_str().map(str::to_string)
}

/// The one key of `set` with the assertion's `kid` whose key type fits `alg` (SMART:
/// none or several is a failure).
fn assertion_key<'a>(set: &'a JwkSet, kid: &str, alg: Algorithm) -> Option<&'a Jwk> {
    use jsonwebtoken::jwk::AlgorithmParameters as P;
    let fits = |k: &&Jwk| {
        matches!(
            (&k.algorithm, alg),
            (P::RSA(_), Algorithm::RS384) | (P::EllipticCurve(_), Algorithm::ES384)
        )
    };
    let mut matching = set
        .keys
        .iter()
        .filter(|k| k.common.key_id.as_deref() == Some(kid))
        .filter(fits);
    let first = matching.next();
    matching.next().is_none().then_some(first).flatten()
}

/// The key of `set` that signed a token with header `kid` and `alg`.
fn find_key<'a>(set: &'a JwkSet, kid: Option<&str>, alg: Algorithm) -> Option<&'a Jwk> {
    let usable = |k: &&Jwk| {
        k.common
            .key_algorithm
            .is_none_or(|a| format!("{a:?}") == format!("{alg:?}"))
    };
    match kid {
        Some(kid) => set
            .keys
            .iter()
            .find(|k| k.common.key_id.as_deref() == Some(kid)),
        None => {
            let mut candidates = set.keys.iter().filter(usable);
            let first = candidates.next();
            candidates.next().is_none().then_some(first).flatten()
        }
    }
}

/// What a valid client assertion proved.
pub struct Assertion {
    pub client: Client,
    pub jti: String,
    pub exp: u64,
}

/// Checks a `private_key_jwt` client assertion: signed (RS384 or ES384) by the one key
/// of the registered client its `kid` names (from the client's registered keys, or its
/// JWKS URL, which a `jku` header must name), for this token endpoint, not expired, not
/// too long-lived. Replay (`jti`) is checked by the caller against the database.
/// Blocking: it may fetch the client's keys.
pub fn check_assertion(
    config: &AuthConfig,
    assertion: &str,
    token_url: &str,
) -> Result<Assertion, OAuthError> {
    let header = decode_header(assertion).map_err(|e| {
        oauth(
            "invalid_client",
            format!("client_assertion is not a JWT: {e}"),
        )
    })?;
    if !matches!(header.alg, Algorithm::RS384 | Algorithm::ES384) {
        return Err(oauth(
            "invalid_client",
            format!(
                "client_assertion algorithm {:?} is not accepted (RS384, ES384)",
                header.alg
            ),
        ));
    }
    let claims = peek_claims(assertion)
        .ok_or_else(|| oauth("invalid_client", "client_assertion claims are unreadable"))?;
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    let client = config.clients.get(iss).ok_or_else(|| {
        oauth(
            "invalid_client",
            format!("client '{iss}' is not registered"),
        )
    })?;
    let kid = header.kid.as_deref().ok_or_else(|| {
        oauth(
            "invalid_client",
            "client_assertion has no kid header: it names the key that signed it",
        )
    })?;
    if let Some(jku) = &header.jku {
        if client.jwks_url.as_deref() != Some(jku.as_str()) {
            return Err(oauth(
                "invalid_client",
                format!("the jku header '{jku}' is not the JWKS URL registered for the client"),
            ));
        }
    }
    let fetched;
    let keys = match (&client.jwks, &client.jwks_url) {
        (Some(k), _) => k,
        (None, Some(url)) => {
            fetched = config
                .jwks
                .keys(url, kid)
                .map_err(|e| oauth("invalid_client", e))?;
            &fetched
        }
        (None, None) => return Err(oauth("invalid_client", "the client has no registered keys")),
    };
    let jwk = assertion_key(keys, kid, header.alg).ok_or_else(|| {
        oauth(
            "invalid_client",
            format!(
                "not exactly one key of the client has kid '{kid}' and suits {:?}",
                header.alg
            ),
        )
    })?;
    let key = DecodingKey::from_jwk(jwk)
        .map_err(|e| oauth("invalid_client", format!("registered key unusable: {e}")))?;
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.leeway = LEEWAY;
    v.set_issuer(&[&client.client_id]);
    v.set_audience(&[token_url]);
    v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let data = decode::<Value>(assertion, &key, &v)
        .map_err(|e| oauth("invalid_client", format!("client_assertion rejected: {e}")))?;
    let c = data.claims;
    if c.get("sub").and_then(Value::as_str) != Some(client.client_id.as_str()) {
        return Err(oauth(
            "invalid_client",
            "client_assertion sub must equal iss",
        ));
    }
    let exp = c.get("exp").and_then(Value::as_u64).unwrap_or(0);
    if exp > now_secs() + MAX_ASSERTION_LIFETIME + LEEWAY {
        return Err(oauth(
            "invalid_client",
            "client_assertion expires more than five minutes from now",
        ));
    }
    let jti = c
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty())
        .ok_or_else(|| oauth("invalid_client", "client_assertion has no jti"))?;
    Ok(Assertion {
        client: client.clone(),
        jti: jti.to_string(),
        exp,
    })
}

/// Signs an access token for `client_id` with the granted scopes.
pub fn issue(
    config: &AuthConfig,
    client_id: &str,
    scopes: &ScopeSet,
    tenant: Option<&str>,
) -> Result<(String, u64), OAuthError> {
    let now = now_secs();
    let claims = AccessClaims {
        iss: config.issuer.clone(),
        sub: client_id.to_string(),
        aud: config.issuer.clone(),
        exp: now + config.token_lifetime,
        iat: now,
        jti: uuid::Uuid::new_v4().to_string(),
        scope: scopes.to_text(),
        tenant: tenant.map(str::to_string),
    };
    let token = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&config.secret),
    )
    .map_err(|e| oauth("server_error", e.to_string()))?;
    Ok((token, config.token_lifetime))
}

/// Why a bearer token was refused (answered as 401).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TokenRejected(pub String);

/// Tokens already verified, until they expire: clients reuse a token for many
/// requests, and checking its signature again each time is wasted work.
#[derive(Default)]
pub struct TokenCache {
    map: std::sync::Mutex<std::collections::HashMap<String, (std::sync::Arc<Access>, u64)>>,
}

/// Most tokens kept; when full the cache starts again (tokens are short-lived).
const CACHE_MAX: usize = 10_000;

impl TokenCache {
    fn get(&self, token: &str) -> Option<std::sync::Arc<Access>> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(token) {
            Some((access, exp)) if *exp > now_secs() => Some(access.clone()),
            _ => None,
        }
    }

    fn put(&self, token: &str, access: std::sync::Arc<Access>, exp: u64) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CACHE_MAX {
            map.clear();
        }
        map.insert(token.to_string(), (access, exp));
    }
}

/// [`verify`], remembering valid tokens until they expire.
pub fn verify_cached(
    config: &AuthConfig,
    token: &str,
) -> Result<std::sync::Arc<Access>, TokenRejected> {
    if let Some(a) = config.cache.get(token) {
        return Ok(a);
    }
    let (access, exp) = verify(config, token)?;
    let access = std::sync::Arc::new(access);
    config.cache.put(token, access.clone(), exp);
    Ok(access)
}

/// Verifies a bearer token: one of ours (HS256) or one of the OpenID Connect
/// provider's (its JWKS, issuer and audience). Returns the caller and the expiry.
pub fn verify(config: &AuthConfig, token: &str) -> Result<(Access, u64), TokenRejected> {
    let header =
        decode_header(token).map_err(|e| TokenRejected(format!("the token is not a JWT: {e}")))?;
    let claims = peek_claims(token).ok_or_else(|| TokenRejected("unreadable token".into()))?;
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    if iss == config.issuer {
        return verify_own(config, token, header.alg);
    }
    match &config.oidc {
        Some(p) if p.issuer == iss => verify_oidc(p, token, &header),
        _ => Err(TokenRejected(format!(
            "tokens of issuer '{iss}' are not accepted"
        ))),
    }
}

fn verify_own(
    config: &AuthConfig,
    token: &str,
    alg: Algorithm,
) -> Result<(Access, u64), TokenRejected> {
    if alg != Algorithm::HS256 {
        return Err(TokenRejected("unexpected token algorithm".into()));
    }
    let mut v = jsonwebtoken::Validation::new(Algorithm::HS256);
    v.leeway = LEEWAY;
    v.set_issuer(&[&config.issuer]);
    v.set_audience(&[&config.issuer]);
    let data = decode::<AccessClaims>(token, &DecodingKey::from_secret(&config.secret), &v)
        .map_err(|e| TokenRejected(format!("token rejected: {e}")))?;
    let exp = data.claims.exp;
    Ok((
        Access {
            client_id: data.claims.sub,
            scopes: ScopeSet::parse(&data.claims.scope),
            patient: None,
            tenant: data.claims.tenant,
        },
        exp,
    ))
}

/// An external OpenID Connect provider whose tokens are accepted.
#[derive(Debug, Clone)]
pub struct OidcProvider {
    pub issuer: String,
    pub audience: String,
    pub jwks: JwkSet,
}

fn verify_oidc(
    p: &OidcProvider,
    token: &str,
    header: &Header,
) -> Result<(Access, u64), TokenRejected> {
    use Algorithm::*;
    if !matches!(
        header.alg,
        RS256 | RS384 | RS512 | ES256 | ES384 | PS256 | PS384 | PS512
    ) {
        return Err(TokenRejected(format!(
            "token algorithm {:?} is not accepted",
            header.alg
        )));
    }
    let jwk = find_key(&p.jwks, header.kid.as_deref(), header.alg)
        .ok_or_else(|| TokenRejected("no key of the issuer matches the token's kid".into()))?;
    let key = DecodingKey::from_jwk(jwk)
        .map_err(|e| TokenRejected(format!("issuer key unusable: {e}")))?;
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.leeway = LEEWAY;
    v.set_issuer(&[&p.issuer]);
    v.set_audience(&[&p.audience]);
    let c = decode::<Value>(token, &key, &v)
        .map_err(|e| TokenRejected(format!("token rejected: {e}")))?
        .claims;
    let scope = match c.get("scope").or_else(|| c.get("scp")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    };
    let client_id = ["client_id", "azp", "sub"]
        .iter()
        .find_map(|k| c.get(*k).and_then(Value::as_str))
        .unwrap_or("unknown")
        .to_string();
    let patient = c
        .get("patient")
        .and_then(Value::as_str)
        .filter(|p| crate::ids::valid_id(p))
        .map(str::to_string);
    let exp = c.get("exp").and_then(Value::as_u64).unwrap_or(0);
    let tenant = c.get("tenant").and_then(Value::as_str).map(str::to_string);
    Ok((
        Access {
            client_id,
            scopes: ScopeSet::parse(&scope),
            patient,
            tenant,
        },
        exp,
    ))
}
