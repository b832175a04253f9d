//! What every request handler shares.

use std::sync::Arc;

use actix_web::{web, HttpRequest};
use fhir_model::Definitions;
use fhir_store::Store;

use crate::audit::AuditSink;
use crate::auth::AuthConfig;
use crate::error::ApiError;
use crate::export::{ExportError, Exporter};

/// Shared, read-only server state.
pub struct AppState {
    pub store: Arc<Store>,
    pub defs: &'static Definitions,
    /// Configured public base URL (`https://fhir.example.org/fhir`), if any.
    pub base_url: Option<String>,
    pub max_body_bytes: usize,
    /// The CapabilityStatement JSON, built once at start-up.
    pub capability: String,
    /// Authentication; `None`: every request is allowed (loopback only by default).
    pub auth: Option<Arc<AuthConfig>>,
    /// The background audit writer; `None`: auditing is off.
    pub audit: Option<AuditSink>,
    /// The validator and how writes are validated.
    pub validation: crate::validation::Validation,
    /// Bulk Data export jobs.
    pub exporter: Arc<Exporter>,
}

impl AppState {
    pub fn base(&self, req: &HttpRequest) -> String {
        crate::http::respond::base_url(req, self.base_url.as_deref())
    }

    /// Runs blocking store work off the async executor.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&Store) -> Result<T, fhir_store::StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let store = self.store.clone();
        Ok(web::block(move || f(&store)).await??)
    }

    pub fn audit_on(&self) -> bool {
        self.audit.is_some()
    }

    /// Runs blocking store work that writes on behalf of `req`: its changes carry
    /// `meta.source` of the client and are audited in their own transaction.
    pub async fn writing<T, F>(&self, req: &HttpRequest, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&Store) -> Result<T, fhir_store::StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let store = self.store.clone();
        let ctx = crate::audit::context(self, req);
        Ok(web::block(move || fhir_store::audit::with_context(ctx, || f(&store))).await??)
    }

    /// Runs blocking export work off the async executor.
    pub async fn export<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&Exporter) -> Result<T, ExportError> + Send + 'static,
        T: Send + 'static,
    {
        let exporter = self.exporter.clone();
        Ok(web::block(move || f(&exporter)).await??)
    }

    /// Checks a resource type from the URL against the definitions.
    pub fn check_type(&self, resource_type: &str) -> Result<(), ApiError> {
        if self.defs.is_resource_type(resource_type) {
            Ok(())
        } else {
            Err(ApiError::NotFound(format!(
                "unknown resource type '{resource_type}'"
            )))
        }
    }
}

/// The spec's id syntax: 1 to 64 of `A-Z a-z 0-9 - .`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

pub fn check_id(id: &str) -> Result<(), ApiError> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(ApiError::bad(format!(
            "'{id}' is not a valid resource id (1-64 characters of A-Z, a-z, 0-9, '-' and '.')"
        )))
    }
}
