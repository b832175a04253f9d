//! The web console at `/`: a page, a script and a style sheet, embedded in the binary
//! (no build step, no Node at run time). The console works only through the FHIR API
//! with the user's own token — pasted, or from the OpenID Connect provider the API
//! trusts (`--console-client-id`: the authorization code flow with PKCE, the console
//! being a public client of the provider) — so it has no security model of its own;
//! its script runs under a policy that allows nothing but this server (and the
//! provider, for signing in).

use actix_web::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY};
use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::state::AppState;

const INDEX: &str = include_str!("../console/index.html");
const SCRIPT: &str = include_str!("../console/console.js");
const STYLE: &str = include_str!("../console/console.css");

/// How the console signs in with the OpenID Connect provider, when it may.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConsoleConfig {
    pub oidc: Option<ConsoleOidc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsoleOidc {
    /// The provider the API trusts (`--oidc-issuer`).
    pub issuer: String,
    /// The console's client id at the provider (`--console-client-id`).
    pub client_id: String,
    /// The scopes it asks for (`--console-scope`).
    pub scope: String,
}

impl ConsoleConfig {
    /// Scripts, styles and requests from this server only (and the provider's origin,
    /// to sign in); no frames, no plugins.
    fn policy(&self) -> String {
        let provider = self
            .oidc
            .as_ref()
            .and_then(|o| url::Url::parse(&o.issuer).ok())
            .map(|u| format!(" {}", u.origin().ascii_serialization()))
            .unwrap_or_default();
        format!("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'{provider}; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    }
}

fn asset(state: &AppState, content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((CONTENT_SECURITY_POLICY, state.console.policy()))
        .insert_header((CACHE_CONTROL, "no-cache"))
        .body(body)
}

pub async fn index(state: web::Data<AppState>) -> HttpResponse {
    asset(&state, "text/html; charset=utf-8", INDEX)
}

pub async fn script(state: web::Data<AppState>) -> HttpResponse {
    asset(&state, "text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style(state: web::Data<AppState>) -> HttpResponse {
    asset(&state, "text/css; charset=utf-8", STYLE)
}

/// `/console/config.json`: how to sign in.
pub async fn config(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-cache"))
        .json(&state.console)
}

/// Paths of the console's files (public: they hold no data).
pub fn is_console(path: &str) -> bool {
    matches!(
        path,
        "" | "/" | "/console.js" | "/console.css" | "/console/config.json"
    )
}
