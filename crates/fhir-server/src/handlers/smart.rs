//! SMART on FHIR over HTTP: `/.well-known/smart-configuration` (discovery) and the
//! Backend Services token endpoint `POST /auth/token` (client_credentials with a
//! private_key_jwt client assertion), over the token logic of `crate::auth`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use crate::access::scopes::ScopeSet;
use crate::auth::tokens::{self, OAuthError};
use crate::state::AppState;

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
