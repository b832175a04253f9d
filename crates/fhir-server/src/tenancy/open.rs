//! What each tenant has of its own — its store, its place among the server nodes, its
//! audit writer, bulk jobs, subscriptions and stored terminology — and how they are
//! started: the default tenant's at start-up, another tenant's on its first request.
//! One path for both, so a tenant is served exactly as a single-organisation install.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fhir_model::Definitions;
use fhir_store::{PoolOptions, Store};

use crate::config::{OnOff, ServeArgs};
use crate::export::Exporter;
use crate::state::AppState;

/// What starting a tenant needs, set once by `serve`.
pub struct Opener {
    pub args: ServeArgs,
    pub defs: &'static Definitions,
    pub full_text: bool,
    pub request_timeout: Option<Duration>,
    pub audit_on: bool,
    /// The API's address, naming this node among those sharing a database.
    pub listen: SocketAddr,
    /// The default tenant's public FHIR base URL, without a trailing `/`.
    pub public_base: String,
    pub validation: crate::validation::Validation,
}

/// A tenant's own running parts.
pub struct Parts {
    pub store: Arc<Store>,
    /// This process among the nodes on the tenant's database; leaves them when dropped.
    pub node: fhir_store::nodes::NodeHandle,
    pub audit: Option<crate::audit::AuditSink>,
    pub exporter: Arc<Exporter>,
    pub importer: Arc<crate::bulk_import::Importer>,
    pub subscriptions: Option<crate::subscriptions::Subscriptions>,
    pub terminology: Arc<fhir_terminology::cache::Cache>,
}

/// Opens (and migrates) the database at `url` with the pool `args` configure
/// (blocking).
pub fn open_store(
    args: &ServeArgs,
    full_text: bool,
    request_timeout: Option<Duration>,
    url: &str,
    min_idle: Option<u32>,
) -> std::io::Result<Store> {
    let indexer = Arc::new(fhir_store::SearchIndexer {
        registry: fhir_search::SearchRegistry::r4(),
        full_text,
    });
    let options = PoolOptions {
        max_connections: args.db_pool_size,
        statement_timeout: request_timeout,
        sqlite_cache_mib: args.db_cache_mb,
        sqlite_mmap_mib: args.db_mmap_mb,
        read_cache_mib: args.read_cache_mb,
        min_idle,
        ..Default::default()
    };
    Store::open(url, &options, indexer).map_err(io)
}

fn io(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl Opener {
    /// Opens tenant `name`'s database and starts its parts (blocking).
    pub fn open_tenant(&self, name: &str) -> std::io::Result<Parts> {
        let url = fhir_store::tenants::database_url(&self.args.database_url, name).map_err(io)?;
        let store = open_store(
            &self.args,
            self.full_text,
            self.request_timeout,
            &url,
            Some(1),
        )?;
        tracing::info!(tenant = name, "tenant database ready");
        self.start(store, Some(name))
    }

    /// Starts the parts of the tenant whose store is `store` (`tenant`: `None` for the
    /// default one), blocking.
    pub fn start(&self, mut store: Store, tenant: Option<&str>) -> std::io::Result<Parts> {
        let args = &self.args;
        let base = match tenant {
            Some(t) if self.args.tenancy == super::Tenancy::Url => {
                format!("{}/{t}", self.public_base)
            }
            _ => self.public_base.clone(),
        };
        let subscription_config = args.subscriptions.config(base).map_err(io)?;
        store.set_change_feed(subscription_config.is_some());
        if self.audit_on {
            store.set_audit_hook(Arc::new(crate::audit::write_hook));
            store.set_audit_expander(Arc::new(crate::audit::expand));
        }
        let store = Arc::new(store);
        let node = store.join_nodes(&self.node_name()).map_err(io)?;
        let audit = self
            .audit_on
            .then(|| crate::audit::AuditSink::start(store.clone()));
        let mut export_config = args.export.config(&args.database_url);
        if let Some(t) = tenant {
            export_config.dir = export_config.dir.join("tenants").join(t);
        }
        let mut import_config = args.bulk_import.config(&export_config);
        import_config.terminology_rows_from = args.terminology_rows_from;
        if let Some(t) = tenant {
            import_config.dir = import_config.dir.join("tenants").join(t);
        }
        let exporter = Exporter::start(store.clone(), self.defs, export_config).map_err(io)?;
        let terminology = Arc::new(fhir_terminology::cache::Cache::default());
        let importer = crate::bulk_import::Importer::start(
            (store.clone(), terminology.clone()),
            self.defs,
            self.validation.clone(),
            self.audit_on,
            import_config,
        )
        .map_err(io)?;
        let subscriptions = subscription_config
            .map(|c| crate::subscriptions::Subscriptions::start(store.clone(), c))
            .transpose()?;
        Ok(Parts {
            store,
            node,
            audit,
            exporter,
            importer,
            subscriptions,
            terminology,
        })
    }

    /// This process as its node row names it: host, process id and address.
    fn node_name(&self) -> String {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| "unknown".into());
        format!("{host} pid {} {}", std::process::id(), self.listen)
    }

    /// The state of requests to tenant `tenant`, from what every tenant shares (the
    /// default tenant's state `shared`) and the tenant's own parts; and the tenant's
    /// node membership, to keep while it is served.
    pub fn state(
        &self,
        shared: &AppState,
        tenant: &str,
        parts: Parts,
    ) -> (AppState, fhir_store::nodes::NodeHandle) {
        let url_tenant = (self.args.tenancy == super::Tenancy::Url).then_some(tenant);
        let state = AppState {
            store: parts.store,
            exporter: parts.exporter,
            importer: parts.importer,
            subscriptions: parts.subscriptions,
            audit: parts.audit,
            terminology: parts.terminology,
            tenant: Some(tenant.to_string()),
            url_tenant: url_tenant.map(str::to_string),
            defs: shared.defs,
            base_url: shared.base_url.clone(),
            max_body_bytes: shared.max_body_bytes,
            request_timeout: shared.request_timeout,
            total_threshold: shared.total_threshold,
            sort_walk_above: shared.sort_walk_above,
            terminology_rows_from: shared.terminology_rows_from,
            sort_range_at_most: shared.sort_range_at_most,
            full_text: shared.full_text,
            expunge: self.args.expunge == OnOff::On,
            capability: capability_of(&shared.capability, shared.base_url.as_deref(), url_tenant),
            openapi: shared.openapi.clone(),
            console: shared.console.clone(),
            auth: shared.auth.clone(),
            validation: shared.validation.clone(),
            search_slots: shared.search_slots.clone(),
        };
        (state, parts.node)
    }
}

/// A tenant's CapabilityStatement: the default tenant's (`shared`, JSON), whose
/// `implementation.url` names the configured base, naming the tenant's base instead
/// when the tenant is in the URL.
fn capability_of(shared: &str, base: Option<&str>, url_tenant: Option<&str>) -> String {
    let (Some(base), Some(tenant)) = (base, url_tenant) else {
        return shared.to_string();
    };
    let Ok(mut value) = fhir_model::json::parse(shared.as_bytes()) else {
        return shared.to_string();
    };
    value["implementation"]["url"] =
        serde_json::Value::String(format!("{}/{tenant}", base.trim_end_matches('/')));
    fhir_model::json::to_string(&value)
}
