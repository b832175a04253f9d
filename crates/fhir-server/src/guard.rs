//! Enforcement: the authentication middleware, and the checks handlers make before
//! they answer (type allowed? resource inside the patient's compartment? resource
//! matching a search-constrained scope?).

use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, ResponseError};
use fhir_search::SearchRegistry;
use fhir_store::{Store, StoreResult};
use serde_json::Value;

use crate::access::scopes::{Interaction, Rule};
use crate::access::RequestContext;
pub use crate::access::{in_patient_compartment, patient_allows, SearchLimits};
use crate::access::{Access, Grant};
use crate::auth::tokens;
use crate::error::ApiError;
use crate::state::AppState;

pub use crate::tls::PeerSubject;

/// Paths anyone may call: discovery, the token endpoint, probes.
fn is_public(path: &str) -> bool {
    crate::http::interaction::is_console(path)
        || matches!(
            path,
            "/health"
            | "/ready"
            | "/auth/token"
            | "/.well-known/smart-configuration"
            | "/fhir/.well-known/smart-configuration"
            | "/fhir/metadata"
            | "/fhir/openapi.json"
            // The websocket channel: a binding token from $get-ws-binding-token (which
            // needs the caller's access) is its credential.
            | "/fhir/ws"
        )
}

/// Middleware: turns the bearer token (or client certificate) into an [`Access`] in
/// the request's extensions; 401 without valid credentials when auth is on.
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let config = state.as_ref().and_then(|s| s.auth.clone());
    let path = req.path().trim_end_matches('/');
    let Some(config) = config.filter(|_| !is_public(path)) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let tenant = state.as_ref().and_then(|s| s.tenant.as_deref());
    let identified = identify(&config, &req).and_then(|access| {
        crate::access::decide_tenant(Some(&access), tenant)?;
        Ok(access)
    });
    match identified {
        Ok(access) => {
            req.extensions_mut().insert(access);
            Ok(next.call(req).await?.map_into_left_body())
        }
        Err(e) => {
            let resp = e.error_response();
            Ok(req.into_response(resp).map_into_right_body())
        }
    }
}

fn identify(
    config: &crate::auth::AuthConfig,
    req: &ServiceRequest,
) -> Result<Arc<Access>, ApiError> {
    if let Some(h) = req.headers().get("Authorization") {
        let text = h.to_str().map_err(|_| {
            ApiError::Unauthorized(
                "the Authorization header is not text".into(),
                Some("invalid_request"),
            )
        })?;
        let token = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "use Authorization: Bearer <token>".into(),
                    Some("invalid_request"),
                )
            })?;
        return tokens::verify_cached(config, token.trim())
            .map_err(|e| ApiError::Unauthorized(e.0, Some("invalid_token")));
    }
    if let Some(subject) = req.conn_data::<PeerSubject>() {
        return match config.clients.by_certificate(&subject.0) {
            Some(c) => Ok(Arc::new(Access {
                client_id: c.client_id.clone(),
                scopes: crate::access::scopes::ScopeSet::parse(&c.scope),
                patient: None,
                tenant: c.tenant.clone(),
            })),
            None => Err(ApiError::Unauthorized(
                format!("the client certificate '{}' is not registered", subject.0),
                Some("invalid_token"),
            )),
        };
    }
    // No credentials at all: RFC 6750 §3.1 says the challenge carries no error code.
    Err(ApiError::Unauthorized(
        "this server requires an access token (Authorization: Bearer <token>)".into(),
        None,
    ))
}

/// The authenticated caller; `None` when auth is off.
pub fn access(req: &HttpRequest) -> Option<Arc<Access>> {
    req.extensions().get::<Arc<Access>>().cloned()
}

/// What the access decision needs to know of this request.
pub fn context<'a>(state: &AppState, caller: Option<&'a Access>) -> RequestContext<'a> {
    RequestContext {
        caller,
        audit_on: state.audit_on(),
    }
}

/// How far `interaction` on `resource_type` is allowed for this request.
pub fn grant(
    req: &HttpRequest,
    interaction: Interaction,
    resource_type: &str,
) -> Result<Grant, ApiError> {
    let caller = access(req);
    // `decide` asks only who the caller is (the audit trail matters to writes).
    let ctx = RequestContext {
        caller: caller.as_deref(),
        audit_on: false,
    };
    Ok(crate::access::decide(&ctx, interaction, resource_type)?)
}

/// Whether `grant` allows `interaction` on a stored resource. Search-constrained rules
/// are checked by searching for the resource with the constraint (blocking: store).
pub fn allows_stored(
    state: &AppState,
    store: &Store,
    grant: &Grant,
    interaction: Interaction,
    resource_type: &str,
    id: &str,
    resource: &Value,
) -> StoreResult<bool> {
    match grant {
        Grant::All => Ok(true),
        Grant::Patient(p) => Ok(patient_allows(
            state.defs,
            interaction,
            resource_type,
            resource,
            p,
        )),
        Grant::Rules(rules) => {
            for rule in rules {
                if rule_allows(state, store, rule, interaction, resource_type, id, resource)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
    }
}

fn rule_allows(
    state: &AppState,
    store: &Store,
    rule: &Rule,
    interaction: Interaction,
    resource_type: &str,
    id: &str,
    resource: &Value,
) -> StoreResult<bool> {
    if let Some(p) = &rule.patient {
        if !patient_allows(state.defs, interaction, resource_type, resource, p) {
            return Ok(false);
        }
    }
    if rule.constraint.is_empty() {
        return Ok(true);
    }
    if let Some(decided) = constraint_matches(rule, resource_type, id, resource) {
        return Ok(decided);
    }
    let mut pairs = rule.constraint.clone();
    pairs.push(("_id".into(), id.to_string()));
    let Ok(query) = fhir_search::parse(SearchRegistry::r4(), Some(resource_type), &pairs, false)
    else {
        return Ok(false);
    };
    Ok(!store.find(resource_type, &query.clauses)?.is_empty())
}

/// Whether `resource` (the version about to be disclosed) matches the rule's search
/// constraint, decided from its own index values when every criterion can be: no
/// store call per resource (a page's included resources are checked in memory).
/// `None` when a criterion needs the store (a chain, `_has`, a value set without an
/// expansion).
fn constraint_matches(
    rule: &Rule,
    resource_type: &str,
    id: &str,
    resource: &Value,
) -> Option<bool> {
    let registry = SearchRegistry::r4();
    let query = fhir_search::parse(registry, Some(resource_type), &rule.constraint, false).ok()?;
    if !fhir_search::matcher::decidable(&query) {
        return None;
    }
    let codes = fhir_search::matcher::params_of(&query)
        .map(str::to_string)
        .collect();
    let values = fhir_search::extract_only(registry, resource_type, resource, &codes);
    fhir_search::matcher::matches(&query, resource_type, id, &values).ok()
}

/// What a search under `grant` is confined to; 403 when the grant's rules cannot be
/// expressed as one search.
pub fn search_limits(grant: &Grant, resource_type: &str) -> Result<SearchLimits, ApiError> {
    Ok(crate::access::search_limits(grant, resource_type)?)
}

fn outside(resource_type: &str, id: &str) -> ApiError {
    ApiError::Forbidden(format!(
        "{resource_type}/{id} is outside what the granted scopes allow"
    ))
}

/// 403 unless `grant` allows `interaction` on this stored resource.
pub async fn ensure_stored(
    state: &web::Data<AppState>,
    grant: &Grant,
    interaction: Interaction,
    stored: &fhir_store::StoredResource,
) -> Result<(), ApiError> {
    if *grant == Grant::All || stored.deleted {
        return Ok(());
    }
    let value = fhir_model::json::parse(stored.content.as_bytes())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let (rt, id) = (stored.res_type.clone(), stored.res_id.clone());
    let ok = match grant {
        Grant::Patient(p) => patient_allows(state.defs, interaction, &rt, &value, p),
        _ => {
            let (st, g, t, i) = (state.clone(), grant.clone(), rt.clone(), id.clone());
            web::block(move || allows_stored(&st, &st.store, &g, interaction, &t, &i, &value))
                .await?
                .map_err(ApiError::from)?
        }
    };
    if ok {
        Ok(())
    } else {
        Err(outside(&rt, &id))
    }
}

/// The grant for writing `resource` (create or update content): see
/// [`crate::access::decide_content`].
pub fn ensure_content(
    state: &AppState,
    req: &HttpRequest,
    interaction: Interaction,
    resource_type: &str,
    resource: &Value,
) -> Result<Grant, ApiError> {
    let caller = access(req);
    let ctx = context(state, caller.as_deref());
    Ok(crate::access::decide_content(
        &ctx,
        state.defs,
        interaction,
        resource_type,
        resource,
    )?)
}

/// Conditional writes, patches and writes of AuditEvents need an unrestricted grant:
/// see [`crate::access::decide_unrestricted`].
pub fn ensure_unrestricted(
    state: &AppState,
    req: &HttpRequest,
    interaction: Interaction,
    resource_type: &str,
    what: &str,
) -> Result<(), ApiError> {
    let caller = access(req);
    let ctx = context(state, caller.as_deref());
    Ok(crate::access::decide_unrestricted(
        &ctx,
        interaction,
        resource_type,
        what,
    )?)
}
