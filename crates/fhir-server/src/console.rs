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

use fhir_store::JobKind;

use crate::state::AppState;
pub use crate::state::{ConsoleConfig, ConsoleOidc};

const INDEX: &str = include_str!("../console/index.html");
const SCRIPT: &str = include_str!("../console/console.js");
const STYLE: &str = include_str!("../console/console.css");

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

/// One bulk job, as the console lists it.
#[derive(Debug, Serialize)]
struct JobRow {
    kind: &'static str,
    id: String,
    status: String,
    request: String,
    created: String,
    updated: String,
    /// The export's `X-Progress` text (an import keeps a resume point there instead).
    progress: String,
    /// Where the job's status is read (relative to the FHIR base).
    status_url: String,
}

/// `/console/jobs.json`: every bulk export and import job, for operators
/// ([`crate::access::decide_job_list`]).
pub async fn jobs(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, crate::error::ApiError> {
    let caller = crate::guard::access(&req);
    crate::access::decide_job_list(&crate::guard::context(&state, caller.as_deref()))?;
    let (exports, imports) = state
        .blocking(|s| Ok((s.jobs(JobKind::Export)?, s.jobs(JobKind::Import)?)))
        .await?;
    let instant = fhir_store::time::fhir_instant;
    let row = |kind: &'static str, j: fhir_store::Job| JobRow {
        kind,
        status_url: format!("/${kind}-status/{}", j.id),
        progress: if kind == "export" {
            j.progress
        } else {
            String::new()
        },
        id: j.id,
        status: j.status,
        request: j.request_url,
        created: instant(j.created_at),
        updated: instant(j.updated_at),
    };
    let mut rows: Vec<JobRow> = exports
        .into_iter()
        .map(|j| row("export", j))
        .chain(imports.into_iter().map(|j| row("import", j)))
        .collect();
    rows.sort_by(|a, b| b.created.cmp(&a.created));
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(rows))
}

pub use crate::http::interaction::is_console;
