//! What every request handler shares.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpRequest};
use fhir_model::budget::Budget;
use fhir_model::Definitions;
use fhir_store::Store;

use crate::audit::AuditSink;
use crate::auth::AuthConfig;
use crate::error::ApiError;
use crate::export::{ExportError, Exporter};
pub use crate::ids::{check_id, valid_id};

/// How often a request waiting for blocking work checks that its client is still
/// connected ([`crate::http::peer`]).
const PEER_CHECK: Duration = Duration::from_millis(200);

/// Shared, read-only server state.
pub struct AppState {
    pub store: Arc<Store>,
    pub defs: &'static Definitions,
    /// Configured public base URL (`https://fhir.example.org/fhir`), if any.
    pub base_url: Option<String>,
    pub max_body_bytes: usize,
    /// How long one request's blocking work may run (`None`: no limit).
    pub request_timeout: Option<Duration>,
    /// Matches counted exactly when a search does not ask for `_total=accurate`.
    pub total_threshold: u64,
    /// See `ServeArgs::sort_walk_above`.
    pub sort_walk_above: u64,
    /// See `ServeArgs::terminology_rows_from`.
    pub terminology_rows_from: u64,
    /// See `ServeArgs::sort_range_at_most`.
    pub sort_range_at_most: i64,
    /// Resources' text is indexed for `_text` and `_content` (`--full-text`).
    pub full_text: bool,
    /// `$expunge` is allowed (`--expunge on`).
    pub expunge: bool,
    /// The CapabilityStatement JSON, built once at start-up.
    pub capability: String,
    /// The OpenAPI document generated from it ([`crate::openapi`]).
    pub openapi: String,
    /// How the web console signs in ([`crate::console`]).
    pub console: ConsoleConfig,
    /// Authentication; `None`: every request is allowed (loopback only by default).
    pub auth: Option<Arc<AuthConfig>>,
    /// The background audit writer; `None`: auditing is off.
    pub audit: Option<AuditSink>,
    /// The validator and how writes are validated.
    pub validation: crate::validation::Validation,
    /// Bulk Data export jobs.
    pub exporter: Arc<Exporter>,
    /// Bulk `$import` jobs.
    pub importer: Arc<crate::bulk_import::Importer>,
    /// Subscriptions (`--subscriptions on`); `None`: Subscription resources are stored
    /// as they are and nothing is delivered.
    pub subscriptions: Option<crate::subscriptions::Subscriptions>,
    /// Stored terminology gathered for the terminology operations and `:in` searches.
    pub terminology: Arc<fhir_terminology::cache::Cache>,
    /// The tenant this state serves (`None`: tenancy is off; [`crate::tenancy`]).
    pub tenant: Option<String>,
    /// The tenant's segment of the URL (`--tenancy url`, tenants but the default).
    pub url_tenant: Option<String>,
    /// Turns of the searches that may run at once, shared by every tenant
    /// (`--search-concurrency`; [`AppState::searching`]).
    pub search_slots: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// The FHIR base URL of this request's tenant, for links and `Location` headers.
    pub fn base(&self, req: &HttpRequest) -> String {
        let base = crate::http::respond::base_url(req, self.base_url.as_deref());
        match &self.url_tenant {
            Some(t) => format!("{base}/{t}"),
            None => base,
        }
    }

    /// Runs blocking store work off the async executor.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&Store) -> Result<T, fhir_store::StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let store = self.store.clone();
        self.budgeted(move || f(&store)).await
    }

    /// Runs a search's (or a history's) blocking store work when one of the search slots
    /// is free: waiting searches take their turns first come, first served, and the wait
    /// counts toward the request's time limit (503 when it runs out). On SQLite the
    /// searches run on this machine's cores; more of them at once than cores only share
    /// the cores out, so that every search in flight takes longer and the slowest far
    /// longer (p99 of `_has` at 1 M resources, eight clients on two cores: 103–119 ms
    /// with sixteen at once, 44–67 with four, serving as many). Reads by id and writes
    /// do not wait for a slot.
    pub async fn searching<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&Store) -> Result<T, fhir_store::StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let started = std::time::Instant::now();
        let turn = self.search_slots.clone().acquire_owned();
        let permit = match self.request_timeout {
            Some(limit) => actix_web::rt::time::timeout(limit, turn)
                .await
                .map_err(|_| ApiError::Timeout)?,
            None => turn.await,
        }
        .map_err(|_| ApiError::Unavailable("the server is stopping".into()))?;
        let left = self
            .request_timeout
            .map(|limit| limit.saturating_sub(started.elapsed()));
        let store = self.store.clone();
        // The turn is awaited here, not on a blocking thread: waiting searches hold no
        // thread that a read or a write could need. The slot is held by the work itself:
        // a search whose client has gone keeps it until the search stops (at its next
        // check).
        self.budgeted_for(left, move || {
            let _permit = permit;
            f(&store)
        })
        .await
    }

    /// Runs blocking work under the request's time budget ([`fhir_model::budget`]): it
    /// stops at the deadline, and when the client goes away (the future is dropped).
    pub async fn budgeted<T, E, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce() -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Into<ApiError> + Send + 'static,
    {
        self.budgeted_for(self.request_timeout, f).await
    }

    /// [`AppState::budgeted`] with `limit` left of the request's time.
    async fn budgeted_for<T, E, F>(&self, limit: Option<Duration>, f: F) -> Result<T, ApiError>
    where
        F: FnOnce() -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Into<ApiError> + Send + 'static,
    {
        struct CancelOnDrop(Budget);
        impl Drop for CancelOnDrop {
            fn drop(&mut self) {
                self.0.cancel();
            }
        }
        let budget = Budget::new(limit);
        let guard = CancelOnDrop(budget.clone());
        let peer = crate::http::peer::Peer::current();
        // With traces on, the blocking work is a child span of the request's.
        let parent = crate::telemetry::on().then(tracing::Span::current);
        let mut work = std::pin::pin!(web::block(move || {
            let _span = parent.map(|p| {
                tracing::info_span!(target: "fhir_server::store", parent: &p, "store").entered()
            });
            budget.run(f)
        }));
        let mut watching = peer.is_some();
        let result = loop {
            match actix_web::rt::time::timeout(PEER_CHECK, &mut work).await {
                Ok(done) => break done?,
                // The work goes on (to stop at its next check) and is awaited.
                Err(_) if watching && peer.as_ref().is_some_and(|p| p.gone()) => {
                    tracing::info!("client disconnected: its request is cancelled");
                    guard.0.cancel();
                    watching = false;
                }
                Err(_) => {}
            }
        };
        drop(guard);
        result.map_err(Into::into)
    }

    /// Makes every logged AuditEvent searchable before a request that may read them.
    pub async fn sync_audit(&self, needed: bool) -> Result<(), ApiError> {
        if self.audit.is_none() || !needed {
            return Ok(());
        }
        self.blocking(|s| s.project_audit_all()).await
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
        let ctx = crate::audit::context(self.audit_on(), req);
        self.budgeted(move || fhir_store::audit::with_context(ctx, || f(&store)))
            .await
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

    /// Runs blocking import work off the async executor.
    pub async fn import<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&crate::bulk_import::Importer) -> Result<T, crate::bulk_import::ImportError>
            + Send
            + 'static,
        T: Send + 'static,
    {
        let importer = self.importer.clone();
        Ok(web::block(move || f(&importer)).await??)
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

/// How the console signs in with the OpenID Connect provider, when it may.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ConsoleConfig {
    pub oidc: Option<ConsoleOidc>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ConsoleOidc {
    /// The provider the API trusts (`--oidc-issuer`).
    pub issuer: String,
    /// The console's client id at the provider (`--console-client-id`).
    pub client_id: String,
    /// The scopes it asks for (`--console-scope`).
    pub scope: String,
}
