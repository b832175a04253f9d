//! Tenant administration over HTTP, for the default tenant's operators
//! ([`crate::access::decide_tenant_admin`]): `GET /admin/tenants` lists them,
//! `POST /admin/tenants` (`{"name": "acme"}`) adds one, `POST
//! /admin/tenants/{name}/$disable` and `/$enable` switch one off and on (its data
//! stay). The `fhir-server tenants` command does the same on the database directly.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::Tenants;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Serialize)]
struct TenantRow {
    name: String,
    active: bool,
    created: String,
}

impl From<fhir_store::tenants::Tenant> for TenantRow {
    fn from(t: fhir_store::tenants::Tenant) -> Self {
        TenantRow {
            name: t.name,
            active: t.active,
            created: fhir_store::time::fhir_instant(t.created_ms),
        }
    }
}

#[derive(Deserialize)]
pub struct NewTenant {
    name: String,
}

/// The administered tenants; 404 when tenancy is off, 403 for anyone but operators.
fn admitted(req: &HttpRequest, state: &AppState) -> Result<web::Data<Tenants>, ApiError> {
    let caller = crate::guard::access(req);
    crate::access::decide_tenant_admin(&crate::guard::context(state, caller.as_deref()))?;
    req.app_data::<web::Data<Tenants>>()
        .filter(|t| t.mode != super::Tenancy::Off)
        .cloned()
        .ok_or_else(|| ApiError::NotFound("tenancy is off (--tenancy url|claim)".into()))
}

pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let tenants = admitted(&req, &state)?;
    let rows = state
        .blocking(move |_| tenants.registry().tenants())
        .await?;
    let rows: Vec<TenantRow> = rows.into_iter().map(TenantRow::from).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "tenants": rows })))
}

pub async fn add(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let tenants = admitted(&req, &state)?;
    // Read here, not by actix's JSON extractor, whose refusals are plain text.
    let name = serde_json::from_slice::<NewTenant>(&body)
        .map_err(|e| ApiError::bad(format!("the body must be {{\"name\": \"…\"}}: {e}")))?
        .name;
    fhir_store::tenants::check_name(&name).map_err(ApiError::bad)?;
    let (added, row) = state
        .blocking(move |_| {
            let added = tenants.registry().add_tenant(&name)?;
            Ok((added, tenants.registry().tenant(&name)?))
        })
        .await?;
    let row = row.map(TenantRow::from);
    let status = if added {
        actix_web::http::StatusCode::CREATED
    } else {
        actix_web::http::StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(row))
}

/// `$disable` or `$enable` of `/admin/tenants/{name}/{op}`.
pub async fn switch(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let tenants = admitted(&req, &state)?;
    let (name, op) = path.into_inner();
    let active = match op.as_str() {
        "$enable" => true,
        "$disable" => false,
        _ => {
            return Err(ApiError::NotFound(format!(
                "no operation '{op}' on tenants"
            )))
        }
    };
    let row = state
        .blocking(move |_| {
            tenants.registry().set_tenant_active(&name, active)?;
            tenants.registry().tenant(&name)
        })
        .await?
        .ok_or_else(|| ApiError::NotFound("there is no such tenant".into()))?;
    Ok(HttpResponse::Ok().json(TenantRow::from(row)))
}
