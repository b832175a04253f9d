//! Tenancy: which tenant (partner organisation) a request is for, and that tenant's
//! server state, opened on its first request.
//!
//! With `--tenancy url` the tenant is the first segment after `/fhir`
//! (`/fhir/acme/Patient/1`; a segment that cannot name a tenant — a resource type,
//! `metadata`, `_history`, `$export` — leaves the request to the default tenant, so
//! single-organisation URLs keep working); with `--tenancy claim` it is the bearer
//! token's `tenant` claim. The middleware [`route`] strips the tenant segment from the
//! path and puts the tenant's [`AppState`] in front of the default one, so every
//! extractor, middleware and handler after it works on the tenant's own store, jobs,
//! audit trail and subscriptions without knowing tenants exist. Authentication then
//! checks that the token is for that tenant ([`crate::access::decide_tenant`]).
//! Tenants' data are apart by construction: see `fhir_store::tenants`.

pub mod admin;
pub mod open;

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::config::Tenancy;
pub use crate::http::interaction::url_tenant;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};
use fhir_store::tenants::DEFAULT;

use crate::error::ApiError;
use crate::http::ratelimit::RateLimiter;
use crate::state::AppState;

/// How long a tenant's registry entry (exists, active) is trusted before it is read
/// again: a tenant disabled with the CLI is refused by every node within this time.
const RECHECK: Duration = Duration::from_secs(2);

struct Slot {
    state: Option<web::Data<AppState>>,
    active: bool,
    checked: Instant,
    /// Keeps this process among the nodes of the tenant's database.
    _node: Option<fhir_store::nodes::NodeHandle>,
}

/// The tenants of this server: the default one's state, the others' once opened.
pub struct Tenants {
    pub mode: Tenancy,
    default: web::Data<AppState>,
    opener: Arc<open::Opener>,
    slots: Mutex<HashMap<String, Slot>>,
    /// Held while a tenant is opened, so that it is opened once.
    opening: Mutex<()>,
    /// `--tenant-rate-limit`: one bucket per tenant.
    limiter: RateLimiter,
}

impl Tenants {
    pub fn new(
        mode: Tenancy,
        default: web::Data<AppState>,
        opener: Arc<open::Opener>,
        rate: u32,
    ) -> Tenants {
        Tenants {
            mode,
            default,
            opener,
            slots: Mutex::default(),
            opening: Mutex::default(),
            limiter: RateLimiter::new(rate),
        }
    }

    /// The registry of tenants lives in the default tenant's database.
    pub fn registry(&self) -> &fhir_store::Store {
        &self.default.store
    }

    /// The state of tenant `name` if its registry entry is fresh (no blocking).
    fn fresh(&self, name: &str) -> Option<Result<web::Data<AppState>, ApiError>> {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = slots.get(name).filter(|s| s.checked.elapsed() < RECHECK)?;
        Some(match (&slot.state, slot.active) {
            (Some(state), true) => Ok(state.clone()),
            _ => Err(disabled(name)),
        })
    }

    /// The state of tenant `name`, opening it if it is not yet (blocking).
    fn resolve(&self, name: &str) -> Result<web::Data<AppState>, ApiError> {
        let Some(entry) = self.registry().tenant(name)? else {
            self.forget(name);
            return Err(ApiError::NotFound(format!("there is no tenant '{name}'")));
        };
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = slots.get_mut(name) {
            slot.active = entry.active;
            slot.checked = Instant::now();
        }
        if !entry.active {
            return Err(disabled(name));
        }
        if let Some(state) = slots.get(name).and_then(|s| s.state.clone()) {
            return Ok(state);
        }
        drop(slots);
        let _opening = self.opening.lock().unwrap_or_else(|p| p.into_inner());
        // Another request may have opened it while this one waited: never twice.
        let opened = self
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .and_then(|s| s.state.clone());
        if let Some(state) = opened {
            return Ok(state);
        }
        let parts = self.opener.open_tenant(name).map_err(|e| {
            tracing::error!(tenant = name, error = %e, "cannot open the tenant's database");
            ApiError::Unavailable(format!("tenant '{name}' cannot be served now"))
        })?;
        let (state, node) = self.opener.state(&self.default, name, parts);
        let state = web::Data::new(state);
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).insert(
            name.to_string(),
            Slot {
                state: Some(state.clone()),
                active: true,
                checked: Instant::now(),
                _node: Some(node),
            },
        );
        Ok(state)
    }

    /// Forgets that tenant `name` was active (it was removed from the registry).
    fn forget(&self, name: &str) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = slots.get_mut(name) {
            slot.active = false;
            slot.checked = Instant::now();
        }
    }

    /// Opens every active tenant (blocking): their bulk jobs resume, and notifications
    /// left in their outboxes are delivered, without waiting for a request to them.
    pub fn open_all(&self) {
        if self.mode == Tenancy::Off {
            return;
        }
        let tenants = match self.registry().tenants() {
            Ok(t) => t,
            Err(e) => return tracing::error!(error = %e, "cannot list the tenants"),
        };
        for t in tenants.into_iter().filter(|t| t.active) {
            if let Err(e) = self.resolve(&t.name) {
                tracing::error!(tenant = %t.name, error = %e, "tenant not opened");
            }
        }
    }

    /// The state of requests to tenant `name`.
    pub async fn state(self: &Arc<Self>, name: &str) -> Result<web::Data<AppState>, ApiError> {
        if name == DEFAULT {
            return Ok(self.default.clone());
        }
        if let Some(fresh) = self.fresh(name) {
            return fresh;
        }
        let (tenants, name) = (self.clone(), name.to_string());
        web::block(move || tenants.resolve(&name)).await?
    }
}

fn disabled(name: &str) -> ApiError {
    ApiError::Forbidden(format!("tenant '{name}' is disabled"))
}

/// The `tenant` claim of the request's bearer token, read without checking the token:
/// authentication checks it afterwards, and refuses a forged one.
fn claimed_tenant(req: &ServiceRequest) -> Option<String> {
    let header = req.headers().get("Authorization")?.to_str().ok()?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))?;
    crate::auth::tokens::peek_claim(token.trim(), "tenant")
}

/// Replaces the request's path, keeping its query.
fn rewrite_path(req: &mut ServiceRequest, path: &str) {
    let uri = req.uri();
    let path_and_query = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut parts = uri.clone().into_parts();
    let Ok(pq) = path_and_query.parse() else {
        return;
    };
    parts.path_and_query = Some(pq);
    if let Ok(uri) = actix_web::http::Uri::from_parts(parts) {
        req.match_info_mut().get_mut().update(&uri);
        req.head_mut().uri = uri;
    }
}

/// Middleware (outside authentication and audit): finds the request's tenant, strips
/// it from the path, and serves the request with the tenant's state; 404 for a tenant
/// that does not exist, 403 for a disabled one, 429 past the tenant's rate.
pub async fn route(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let tenants = req.app_data::<web::Data<Tenants>>().cloned();
    let Some(tenants) = tenants.filter(|t| t.mode != Tenancy::Off) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let name = match tenants.mode {
        Tenancy::Url => match url_tenant(req.path()) {
            Some((name, path)) => {
                let name = name.to_string();
                rewrite_path(&mut req, &path);
                name
            }
            None => DEFAULT.to_string(),
        },
        _ => claimed_tenant(&req).unwrap_or_else(|| DEFAULT.to_string()),
    };
    let tenants = tenants.into_inner();
    let state = match tenants.state(&name).await {
        Ok(state) => state,
        Err(e) => return Ok(req.into_response(e.error_response()).map_into_right_body()),
    };
    if let Err(secs) = tenants.limiter.take(&name) {
        let resp = ApiError::TooManyRequests(secs).error_response();
        return Ok(req.into_response(resp).map_into_right_body());
    }
    let mut data = Extensions::new();
    data.insert(state);
    req.add_data_container(Rc::new(data));
    Ok(next.call(req).await?.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_segments() {
        assert_eq!(
            url_tenant("/fhir/acme/Patient/1"),
            Some(("acme", "/fhir/Patient/1".to_string()))
        );
        assert_eq!(
            url_tenant("/fhir/acme"),
            Some(("acme", "/fhir".to_string()))
        );
        assert_eq!(
            url_tenant("/fhir/default/metadata"),
            Some(("default", "/fhir/metadata".to_string()))
        );
        for default in [
            "/fhir/Patient/1",
            "/fhir/metadata",
            "/fhir/_history",
            "/fhir/$export",
            "/fhir/ws",
            "/fhir/.well-known/smart-configuration",
            "/fhir",
            "/auth/token",
        ] {
            assert_eq!(url_tenant(default), None, "{default}");
        }
    }
}
