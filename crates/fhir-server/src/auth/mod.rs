//! Who is calling and what they may do: SMART on FHIR Backend Services tokens, bearer
//! tokens of an OpenID Connect provider, client certificates (mutual TLS), and the
//! scopes that confine every interaction.
//!
//! [`guard::authenticate`] (middleware) turns credentials into an [`Access`] kept in
//! the request; handlers ask [`guard::grant`] whether an interaction on a type is
//! allowed, and how far (everything, one patient's compartment, or only resources
//! matching search constraints). With no auth configured every request is allowed
//! (the server then only listens on loopback unless told otherwise).

pub mod clients;
pub mod guard;
pub mod jwks;
pub mod links;
pub mod scopes;
pub mod tokens;

use std::path::Path;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use crate::state::AppState;
use clients::ClientsFile;
use scopes::{Interaction, ScopeSet};
use tokens::{OAuthError, OidcProvider};

pub use crate::access::{Access, Grant};

/// Authentication settings, built at start-up.
pub struct AuthConfig {
    pub clients: ClientsFile,
    pub oidc: Option<OidcProvider>,
    /// HMAC key of the access tokens this server issues.
    pub secret: Vec<u8>,
    /// `iss` and `aud` of this server's tokens.
    pub issuer: String,
    /// Lifetime of issued access tokens, in seconds.
    pub token_lifetime: u64,
    /// Bearer tokens already verified.
    pub cache: tokens::TokenCache,
    /// Clients' keys fetched from their JWKS URLs.
    pub jwks: jwks::JwksCache,
}

/// What `serve` needs to build an [`AuthConfig`].
pub struct AuthSettings<'a> {
    pub clients_file: Option<&'a Path>,
    pub oidc_issuer: Option<&'a str>,
    pub oidc_audience: Option<&'a str>,
    pub oidc_jwks: Option<&'a str>,
    pub token_secret: Option<&'a str>,
    /// The key all nodes share in the database, used when no `token_secret` is set.
    pub stored_secret: Option<String>,
    pub issuer: String,
    pub token_lifetime: u64,
}

impl AuthConfig {
    /// `None` when neither clients nor an OpenID Connect provider are configured.
    pub fn load(s: &AuthSettings<'_>) -> Result<Option<AuthConfig>, String> {
        if s.clients_file.is_none() && s.oidc_issuer.is_none() {
            return Ok(None);
        }
        let clients = match s.clients_file {
            Some(p) => ClientsFile::load(p).map_err(|e| e.to_string())?,
            None => ClientsFile::default(),
        };
        let oidc = match s.oidc_issuer {
            Some(issuer) => Some(load_oidc(issuer, s.oidc_audience, s.oidc_jwks)?),
            None => None,
        };
        let secret = match s.token_secret {
            Some(t) if t.len() >= 32 => t.as_bytes().to_vec(),
            Some(_) => return Err("--auth-token-secret must be at least 32 characters".into()),
            None if s.stored_secret.is_some() => {
                s.stored_secret.clone().unwrap_or_default().into_bytes()
            }
            None => {
                tracing::warn!("no --auth-token-secret: access tokens are signed with a random key and stop working when this process stops (set one shared secret for all nodes)");
                use rand::RngCore;
                let mut key = vec![0u8; 32];
                rand::thread_rng().fill_bytes(&mut key);
                key
            }
        };
        Ok(Some(AuthConfig {
            clients,
            oidc,
            secret,
            issuer: s.issuer.clone(),
            token_lifetime: s.token_lifetime,
            cache: Default::default(),
            jwks: Default::default(),
        }))
    }
}

fn load_oidc(
    issuer: &str,
    audience: Option<&str>,
    jwks: Option<&str>,
) -> Result<OidcProvider, String> {
    let audience = audience.ok_or("--oidc-audience is required with --oidc-issuer")?;
    let source =
        jwks.ok_or("--oidc-jwks (a file or an https URL) is required with --oidc-issuer")?;
    let text = if source.starts_with("https://") || source.starts_with("http://") {
        ureq::get(source)
            .timeout(std::time::Duration::from_secs(10))
            .call()
            .map_err(|e| format!("cannot fetch {source}: {e}"))?
            .into_string()
            .map_err(|e| format!("cannot read {source}: {e}"))?
    } else {
        std::fs::read_to_string(source).map_err(|e| format!("{source}: {e}"))?
    };
    let jwks = serde_json::from_str(&text).map_err(|e| format!("{source}: not a JWKS: {e}"))?;
    Ok(OidcProvider {
        issuer: issuer.to_string(),
        audience: audience.to_string(),
        jwks,
    })
}

/// The token endpoint's URL, which client assertions must name as their audience.
pub fn token_url(state: &AppState, req: &HttpRequest) -> String {
    let base = state.base(req);
    format!("{}/auth/token", base.strip_suffix("/fhir").unwrap_or(&base))
}

/// `GET [base]/.well-known/smart-configuration`.
pub async fn smart_configuration(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    // No `issuer` (only for sso-openid-connect) and no `response_types_supported`:
    // this server's only grant is client_credentials.
    let body = json!({
        "token_endpoint": token_url(&state, &req),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": ["system/*.cruds", "system/*.read", "system/*.write", "user/*.cruds", "patient/*.cruds", "patient/*.read"],
        "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
        "code_challenge_methods_supported": ["S256"],
    });
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body.to_string())
}

fn oauth_response(e: &OAuthError) -> HttpResponse {
    let status = match e.code {
        "invalid_client" => StatusCode::UNAUTHORIZED,
        "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
        "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    HttpResponse::build(status)
        .content_type("application/json")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Pragma", "no-cache"))
        .body(json!({"error": e.code, "error_description": e.description}).to_string())
}

/// `POST /auth/token`: client_credentials with a private_key_jwt client assertion.
pub async fn token(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    match issue_token(&state, &req, &body).await {
        Ok(v) => HttpResponse::Ok()
            .content_type("application/json")
            .insert_header(("Cache-Control", "no-store"))
            .insert_header(("Pragma", "no-cache"))
            .body(v.to_string()),
        Err(e) => {
            tracing::info!(error = %e, "token request refused");
            oauth_response(&e)
        }
    }
}

fn oauth(code: &'static str, description: impl Into<String>) -> OAuthError {
    OAuthError {
        code,
        description: description.into(),
    }
}

async fn issue_token(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    body: &[u8],
) -> Result<Value, OAuthError> {
    let Some(config) = state.auth.clone() else {
        return Err(oauth(
            "invalid_request",
            "this server has no authorization configured",
        ));
    };
    let form: Vec<(String, String)> = form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if let Some((name, _)) = form
        .iter()
        .enumerate()
        .find(|(i, (n, _))| form[..*i].iter().any(|(m, _)| m == n))
        .map(|(_, p)| p)
    {
        return Err(oauth(
            "invalid_request",
            format!("{name} is given more than once"),
        ));
    }
    match get("grant_type") {
        Some("client_credentials") => {}
        None => return Err(oauth("invalid_request", "grant_type is missing")),
        Some(_) => {
            return Err(oauth(
                "unsupported_grant_type",
                "grant_type must be client_credentials",
            ))
        }
    }
    if get("client_assertion_type") != Some(tokens::ASSERTION_TYPE) {
        return Err(oauth(
            "invalid_request",
            format!("client_assertion_type must be {}", tokens::ASSERTION_TYPE),
        ));
    }
    let assertion = get("client_assertion")
        .ok_or_else(|| oauth("invalid_request", "client_assertion is missing"))?;
    let requested =
        ScopeSet::parse(get("scope").ok_or_else(|| oauth("invalid_request", "scope is missing"))?);
    if let Some(t) = requested
        .scopes
        .iter()
        .filter_map(|s| s.resource_type.as_deref())
        .find(|t| !state.defs.is_resource_type(t))
    {
        return Err(oauth(
            "invalid_scope",
            format!("'{t}' is not a resource type this server holds"),
        ));
    }
    let (cfg, text, url) = (config.clone(), assertion.to_string(), token_url(state, req));
    let checked = web::block(move || tokens::check_assertion(&cfg, &text, &url))
        .await
        .map_err(|e| oauth("server_error", e.to_string()))??;
    let nonce = format!("{}:{}", checked.client.client_id, checked.jti);
    let expires_ms = (checked.exp as i64 + 60) * 1000;
    let fresh = state
        .blocking(move |s| s.claim_nonce(&nonce, expires_ms))
        .await
        .map_err(|e| oauth("server_error", e.to_string()))?;
    if !fresh {
        return Err(oauth(
            "invalid_client",
            "client_assertion jti was used before (replay)",
        ));
    }
    let granted = ScopeSet::parse(&checked.client.scope).grant(&requested);
    if granted.scopes.is_empty() {
        return Err(oauth(
            "invalid_scope",
            "none of the requested scopes is allowed for this client",
        ));
    }
    let (token, expires_in) = tokens::issue(
        &config,
        &checked.client.client_id,
        &granted,
        checked.client.tenant.as_deref(),
    )?;
    Ok(json!({
        "access_token": token,
        "token_type": "bearer",
        "expires_in": expires_in,
        "scope": granted.to_text(),
    }))
}

/// The name of an interaction class, for messages.
pub fn interaction_name(i: Interaction) -> &'static str {
    match i {
        Interaction::Create => "create",
        Interaction::Read => "read",
        Interaction::Update => "update",
        Interaction::Delete => "delete",
        Interaction::Search => "search",
    }
}
