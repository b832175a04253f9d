//! Command line and environment configuration.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub use crate::commands::*;
use crate::export::ExportConfig;
use crate::logging::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "fhir-server",
    version,
    about = "FHIR R4 server",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Settings file (TOML: any long flag without its dashes); default:
    /// `fhir-server.toml` in the working directory, if there is one. Flags and
    /// environment variables win over it.
    #[arg(long, global = true, env = "FHIR_CONFIG", value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the FHIR API (the default).
    Serve(Box<ServeArgs>),
    /// Evaluate a FHIRPath expression over a JSON resource and print the result.
    Fhirpath(FhirpathArgs),
    /// Recompute the search index of stored resources (after search parameters change).
    Reindex(ReindexArgs),
    /// Load Bundles, resources and NDJSON files (gzip accepted) through the FHIR API.
    Import(ImportArgs),
    /// Export a running server's data (Bulk Data $export) into NDJSON files.
    Export(ExportClientArgs),
    /// The audit trail: `verify` recomputes its hash chain.
    Audit(AuditArgs),
    /// Registered clients (SMART Backend Services, mutual TLS): add, list, remove.
    Clients(ClientsArgs),
    /// Tenants (partner organisations, `--tenancy url|claim`): add, list, disable, enable.
    Tenants(TenantsArgs),
    /// Validate resource files against the definitions and profiles; prints the issues
    /// like a compiler and exits non-zero on errors.
    Validate(ValidateArgs),
    /// Terminology: `load` code systems, value sets and concept maps.
    Terminology(TerminologyArgs),
    /// Check how far a FHIR server (any) conforms to its CapabilityStatement; prints a
    /// report per capability and exits 0 when nothing claimed fails, 1 otherwise.
    Check(CheckArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "FHIR_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// sqlite://PATH or postgres://USER@HOST:PORT/DB
    #[arg(
        long,
        env = "FHIR_DATABASE_URL",
        default_value = "sqlite://./data/fhir.db"
    )]
    pub database_url: String,
    /// Public FHIR base URL for links (default: from the request's Host, plus /fhir).
    #[arg(long, env = "FHIR_BASE_URL")]
    pub base_url: Option<String>,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "FHIR_MAX_BODY_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Database connections in the pool.
    #[arg(long, env = "FHIR_DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: u32,
    /// SQLite page cache of the whole connection pool, in MiB (shared out among the
    /// connections; the operating system caches the file too).
    #[arg(long, env = "FHIR_DB_CACHE_MB", default_value_t = 64)]
    pub db_cache_mb: u32,
    /// How much of the SQLite database file is read through memory mapping, in MiB
    /// (0: none): pages are read where the operating system caches them, shared by
    /// every connection, without a system call each.
    #[arg(long, env = "FHIR_DB_MMAP_MB", default_value_t = fhir_store::SQLITE_MMAP_MIB)]
    pub db_mmap_mb: u64,
    /// Memory for current versions of recently read resources, in MiB (0: off). Reads
    /// it holds skip the database while this node is alone on it; with several nodes
    /// each read checks the version first (docs/scaling.md).
    #[arg(long, env = "FHIR_READ_CACHE_MB", default_value_t = 32)]
    pub read_cache_mb: u64,
    /// Seconds a request may work (FHIRPath, validation, database statements) before
    /// it is stopped and answered 503; 0: no limit.
    #[arg(long, env = "FHIR_REQUEST_TIMEOUT", default_value_t = 30.0)]
    pub request_timeout: f64,
    /// Searches count their matches exactly up to this many (without `_total`, or with
    /// `_total=estimate`); above it the total is PostgreSQL's estimate, or left out on
    /// SQLite. `_total=accurate` always counts exactly. History counts versions up to
    /// this many and leaves its total out past it.
    #[arg(long, env = "FHIR_TOTAL_THRESHOLD", default_value_t = 1000)]
    pub total_threshold: u64,
    /// Matches above which a page sorted by one date walks the date index in order
    /// instead of ordering every match (tests set 0 or a large value to compare plans).
    #[arg(long, hide = true, default_value_t = fhir_store::search::SORT_WALK_ABOVE)]
    pub sort_walk_above: u64,
    /// Stored code systems of at least this many concepts are read from their rows
    /// (only the concepts a request needs; expansions paged by the database) instead of
    /// whole into memory; rows are kept for code systems of 1,000 concepts or more.
    #[arg(long, env = "FHIR_TERMINOLOGY_ROWS_FROM", default_value_t = TERMINOLOGY_ROWS_FROM)]
    pub terminology_rows_from: u64,
    /// Index entries above which a sort's first-key range is not ordered on its own
    /// (tests set 0 to take the plans that walk the second key).
    #[arg(long, hide = true, default_value_t = fhir_store::search::SORT_RANGE_AT_MOST)]
    pub sort_range_at_most: i64,
    /// Searches (and histories) whose database work runs at once; more wait their turn,
    /// first come, first served, within the request timeout. Default: on SQLite, whose
    /// searches run on this machine's cores, two per core (at most `--db-pool-size`);
    /// on PostgreSQL, `--db-pool-size`.
    #[arg(long, env = "FHIR_SEARCH_CONCURRENCY", value_parser = clap::value_parser!(u32).range(1..))]
    pub search_concurrency: Option<u32>,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "FHIR_WORKERS")]
    pub workers: Option<usize>,
    #[arg(long, env = "FHIR_LOG_FORMAT", value_enum, default_value = "human")]
    pub log_format: LogFormat,
    /// Log filter (tracing-subscriber EnvFilter syntax), e.g. `info` or `warn,access=off`.
    #[arg(long, env = "FHIR_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Exit when standard input closes (lets a test harness own the process).
    #[arg(long, hide = true)]
    pub exit_on_stdin_close: bool,
    /// Write the port listened on to this file once bound (with `--listen` port 0, a
    /// test harness learns it without racing other processes for a free port).
    #[arg(long, hide = true)]
    pub port_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub export: ExportArgs,
    #[command(flatten)]
    pub bulk_import: BulkImportArgs,
    #[command(flatten)]
    pub subscriptions: SubscriptionArgs,
    /// Validate creates, updates and Bundle entries (422 when invalid): `on` or `off`.
    #[arg(long, env = "FHIR_VALIDATION", value_enum, default_value = "on")]
    pub validation: OnOff,
    /// Warnings reject writes too (a request may still say `Prefer: handling=lenient`).
    #[arg(long, env = "FHIR_REJECT_WARNINGS")]
    pub reject_warnings: bool,
    /// Index the text of resources for `_text` and `_content`: `on` or `off` (a bulk
    /// load may turn it off and run `fhir-server reindex` afterwards).
    #[arg(long, env = "FHIR_FULL_TEXT", value_enum, default_value = "on")]
    pub full_text: OnOff,
    /// Allow `$expunge` (hard deletion of previous versions and deleted resources, for
    /// administrators): `on` or `off`.
    #[arg(long, env = "FHIR_EXPUNGE", value_enum, default_value = "off")]
    pub expunge: OnOff,
    /// A folder of IG packages (`.tgz`) whose profiles, extensions and value sets
    /// validation knows.
    #[arg(long, env = "FHIR_PACKAGES")]
    pub packages: Option<std::path::PathBuf>,
    /// Prometheus metrics at `/metrics`: `on` or `off`.
    #[arg(long, env = "FHIR_METRICS", value_enum, default_value = "on")]
    pub metrics: OnOff,
    /// Also serve `/metrics`, without a token, on this address (an internal network
    /// or a loopback port for the Prometheus scraper); on the API's own address it
    /// needs an operator's token when authentication is on.
    #[arg(long, env = "FHIR_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Export OpenTelemetry traces (a span per request, child spans per database call)
    /// to this OTLP/HTTP collector, e.g. `http://127.0.0.1:4318` (none: no traces).
    #[arg(long, env = "FHIR_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// The OTLP encoding: `http/protobuf` or `http/json`.
    #[arg(
        long,
        env = "FHIR_OTLP_PROTOCOL",
        value_enum,
        default_value = "http/protobuf"
    )]
    pub otlp_protocol: crate::telemetry::OtlpProtocol,
    #[command(flatten)]
    pub security: SecurityArgs,
    /// Partner organisations as tenants, each with its own records: `off` (one
    /// organisation), `url` (`/fhir/{tenant}/…`) or `claim` (the token's `tenant`
    /// claim). Tenants are added with `fhir-server tenants add`.
    #[arg(long, env = "FHIR_TENANCY", value_enum, default_value = "off")]
    pub tenancy: Tenancy,
    /// Requests per second allowed per tenant, all its clients together; 0: no limit.
    #[arg(long, env = "FHIR_TENANT_RATE_LIMIT", default_value_t = 0)]
    pub tenant_rate_limit: u32,
}

impl ServeArgs {
    /// A server for the `import` and `terminology load` commands, started in their
    /// process on loopback `port` over `database_url`: no authentication, no time
    /// limit, large bodies, validation on.
    pub fn embedded(database_url: &str, port: u16, full_text: OnOff) -> ServeArgs {
        ServeArgs {
            listen: ([127, 0, 0, 1], port).into(),
            database_url: database_url.to_string(),
            base_url: None,
            max_body_bytes: 512 * 1024 * 1024,
            db_pool_size: 4,
            db_cache_mb: 64,
            db_mmap_mb: fhir_store::SQLITE_MMAP_MIB,
            read_cache_mb: 0,
            // A file may be one very large transaction: no time limit in-process.
            request_timeout: 0.0,
            total_threshold: 1000,
            sort_walk_above: fhir_store::search::SORT_WALK_ABOVE,
            terminology_rows_from: TERMINOLOGY_ROWS_FROM,
            sort_range_at_most: fhir_store::search::SORT_RANGE_AT_MOST,
            search_concurrency: None,
            workers: Some(2),
            log_format: crate::logging::LogFormat::Human,
            log_level: "warn".into(),
            exit_on_stdin_close: false,
            port_file: None,
            validation: crate::config::OnOff::On,
            reject_warnings: false,
            full_text,
            expunge: crate::config::OnOff::Off,
            packages: None,
            metrics: crate::config::OnOff::Off,
            metrics_listen: None,
            otlp_endpoint: None,
            otlp_protocol: Default::default(),
            security: Default::default(),
            export: crate::config::ExportArgs::default(),
            bulk_import: crate::config::BulkImportArgs::default(),
            subscriptions: crate::config::SubscriptionArgs::default(),
            tenancy: crate::tenancy::Tenancy::Off,
            tenant_rate_limit: 0,
        }
    }
}

/// Concepts from which a stored code system is read from its rows
/// (`--terminology-rows-from`).
pub const TERMINOLOGY_ROWS_FROM: u64 = 20_000;

/// TLS, authentication and audit settings.
#[derive(Debug, Clone, Default, Args)]
pub struct SecurityArgs {
    /// Server certificate chain (PEM); with --tls-key, serve HTTPS (HTTP/1.1 and HTTP/2).
    #[arg(long, env = "FHIR_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// Server private key (PEM).
    #[arg(long, env = "FHIR_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// CA certificates (PEM) of partner client certificates (mutual TLS).
    #[arg(long, env = "FHIR_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<std::path::PathBuf>,
    /// Registered clients (JSON; see `fhir-server clients`). Turns authentication on.
    #[arg(long, env = "FHIR_AUTH_CLIENTS")]
    pub auth_clients: Option<std::path::PathBuf>,
    /// Secret (32+ characters) signing this server's access tokens; share it between
    /// nodes. Default: a random key per process.
    #[arg(long, env = "FHIR_AUTH_TOKEN_SECRET", hide_env_values = true)]
    pub auth_token_secret: Option<String>,
    /// Lifetime of issued access tokens, in seconds.
    #[arg(long, env = "FHIR_TOKEN_LIFETIME", default_value_t = 300)]
    pub token_lifetime: u64,
    /// Accept bearer tokens of this OpenID Connect issuer (turns authentication on).
    #[arg(long, env = "FHIR_OIDC_ISSUER", requires_all = ["oidc_audience", "oidc_jwks"])]
    pub oidc_issuer: Option<String>,
    /// The audience (`aud`) those tokens must carry.
    #[arg(long, env = "FHIR_OIDC_AUDIENCE")]
    pub oidc_audience: Option<String>,
    /// The issuer's keys: a JWKS file or URL.
    #[arg(long, env = "FHIR_OIDC_JWKS")]
    pub oidc_jwks: Option<String>,
    /// The web console's client id at the OpenID Connect provider (a public client whose
    /// redirect URI is this server's `/`): the console then signs users in there.
    #[arg(long, env = "FHIR_CONSOLE_CLIENT_ID", requires = "oidc_issuer")]
    pub console_client_id: Option<String>,
    /// The scopes the console asks the provider for.
    #[arg(
        long,
        env = "FHIR_CONSOLE_SCOPE",
        default_value = "openid user/*.cruds"
    )]
    pub console_scope: String,
    /// Serve a non-loopback address without authentication (never in production).
    #[arg(long, env = "FHIR_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// Audit trail: `auto` (on when authentication is on), `on`, `off`.
    #[arg(long, env = "FHIR_AUDIT", value_enum, default_value = "auto")]
    pub audit: AuditMode,
    /// Requests per second allowed per client (or address when unauthenticated); 0: no limit.
    #[arg(long, env = "FHIR_RATE_LIMIT", default_value_t = 0)]
    pub rate_limit: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditMode {
    #[default]
    Auto,
    On,
    Off,
}

/// Bulk Data export settings.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Folder for export files (default: `exports` beside the SQLite file, or
    /// `./data/exports` on PostgreSQL).
    #[arg(long, env = "FHIR_EXPORT_DIR")]
    pub export_dir: Option<std::path::PathBuf>,
    /// Seconds a finished export (and its files) is kept.
    #[arg(long, env = "FHIR_EXPORT_RETENTION", default_value_t = 86_400)]
    pub export_retention: u64,
    /// Resources read per database round trip while exporting.
    #[arg(long, env = "FHIR_EXPORT_BATCH", default_value_t = 5000)]
    pub export_batch: usize,
    /// Resources per export file before a new file of the same type begins.
    #[arg(long, env = "FHIR_EXPORT_FILE_RESOURCES", default_value_t = 100_000)]
    pub export_file_resources: u64,
    /// Pause after each exported batch, in ms (lets tests catch a job running).
    #[arg(long, hide = true, default_value_t = 0)]
    pub export_batch_delay_ms: u64,
}

impl Default for ExportArgs {
    fn default() -> Self {
        ExportArgs {
            export_dir: None,
            export_retention: 86_400,
            export_batch: 5000,
            export_file_resources: 100_000,
            export_batch_delay_ms: 0,
        }
    }
}

impl ExportArgs {
    /// The worker settings; the folder defaults beside the SQLite database.
    pub fn config(&self, database_url: &str) -> ExportConfig {
        let dir = self.export_dir.clone().unwrap_or_else(|| {
            database_url
                .strip_prefix("sqlite://")
                .and_then(|p| std::path::Path::new(p).parent())
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("./data"))
                .join("exports")
        });
        ExportConfig {
            dir,
            batch: self.export_batch.max(1),
            max_file_resources: self.export_file_resources.max(1),
            retention: Duration::from_secs(self.export_retention),
            batch_delay: Duration::from_millis(self.export_batch_delay_ms),
        }
    }
}

/// Bulk `$import` settings: where inputs may be read from.
#[derive(Debug, Clone, Args)]
pub struct BulkImportArgs {
    /// Folder whose files `$import` may read as `file:///…` inputs (none: file inputs
    /// are refused).
    #[arg(long, env = "FHIR_IMPORT_DIR")]
    pub import_dir: Option<std::path::PathBuf>,
    /// URL prefixes (comma-separated) under which `$import` may fetch `http(s)://`
    /// inputs, e.g. `https://partner.example/exports/` (none: URL inputs are refused).
    #[arg(long, env = "FHIR_IMPORT_ALLOWED_URLS", value_delimiter = ',')]
    pub import_allowed_urls: Vec<String>,
    /// Lines of an input written per database transaction.
    #[arg(long, env = "FHIR_IMPORT_BATCH", default_value_t = 1000)]
    pub import_batch: usize,
    /// Pause after each imported batch, in ms (lets tests catch a job running).
    #[arg(long, hide = true, default_value_t = 0)]
    pub import_batch_delay_ms: u64,
}

impl Default for BulkImportArgs {
    fn default() -> Self {
        BulkImportArgs {
            import_dir: None,
            import_allowed_urls: Vec::new(),
            import_batch: 1000,
            import_batch_delay_ms: 0,
        }
    }
}

impl BulkImportArgs {
    /// The worker settings: job folders (error files) beside the export folder.
    pub fn config(&self, export: &ExportConfig) -> crate::bulk_import::ImportConfig {
        let dir = export
            .dir
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join("imports");
        crate::bulk_import::ImportConfig {
            dir,
            batch: self.import_batch.max(1),
            retention: export.retention,
            sources: crate::bulk_import::Sources {
                dir: self.import_dir.clone(),
                allowed: self
                    .import_allowed_urls
                    .iter()
                    .map(|u| u.trim().to_string())
                    .filter(|u| !u.is_empty())
                    .collect(),
            },
            batch_delay: Duration::from_millis(self.import_batch_delay_ms),
            terminology_rows_from: TERMINOLOGY_ROWS_FROM,
        }
    }
}

/// Subscription settings.
#[derive(Debug, Clone, Args)]
pub struct SubscriptionArgs {
    /// Deliver notifications of Subscription resources: `on` or `off` (off: they are
    /// stored as written and nothing is sent).
    #[arg(long, env = "FHIR_SUBSCRIPTIONS", value_enum, default_value = "on")]
    pub subscriptions: OnOff,
    /// Allow subscription endpoints on loopback, private and link-local addresses
    /// (tests, internal networks); refused by default to stop SSRF.
    #[arg(long, env = "FHIR_SUBSCRIPTION_ALLOW_PRIVATE_ENDPOINTS")]
    pub subscription_allow_private_endpoints: bool,
    /// Failed deliveries of one notification before the subscription's status becomes
    /// `error`.
    #[arg(long, env = "FHIR_SUBSCRIPTION_ATTEMPTS", default_value_t = 5)]
    pub subscription_attempts: u32,
    /// Milliseconds before the first retry of a failed delivery (doubled each time).
    #[arg(long, env = "FHIR_SUBSCRIPTION_RETRY_MS", default_value_t = 2000)]
    pub subscription_retry_ms: u64,
    /// Hours events are kept after they happened, for `Subscription/[id]/$events`.
    #[arg(long, env = "FHIR_SUBSCRIPTION_RETENTION_HOURS", default_value_t = 168)]
    pub subscription_retention_hours: u64,
    /// Extra CA certificates (PEM bundle) trusted for subscription endpoints, besides
    /// the public web PKI (a partner's private CA).
    #[arg(long, env = "FHIR_SUBSCRIPTION_CA_FILE")]
    pub subscription_ca_file: Option<std::path::PathBuf>,
    /// Client certificate chain (PEM) presented to subscription endpoints that require
    /// mutual TLS.
    #[arg(
        long,
        env = "FHIR_SUBSCRIPTION_CLIENT_CERT",
        requires = "subscription_client_key"
    )]
    pub subscription_client_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of `--subscription-client-cert`.
    #[arg(
        long,
        env = "FHIR_SUBSCRIPTION_CLIENT_KEY",
        requires = "subscription_client_cert"
    )]
    pub subscription_client_key: Option<std::path::PathBuf>,
}

impl Default for SubscriptionArgs {
    fn default() -> Self {
        SubscriptionArgs {
            subscriptions: OnOff::On,
            subscription_allow_private_endpoints: false,
            subscription_attempts: 5,
            subscription_retry_ms: 2000,
            subscription_retention_hours: 168,
            subscription_ca_file: None,
            subscription_client_cert: None,
            subscription_client_key: None,
        }
    }
}

impl SubscriptionArgs {
    /// The settings, or `None` when subscriptions are off; `base` is the server's
    /// public base URL. Fails when a TLS file cannot be read.
    pub fn config(
        &self,
        base: String,
    ) -> Result<Option<crate::subscriptions::SubscriptionConfig>, crate::tls::TlsError> {
        if self.subscriptions == OnOff::Off {
            return Ok(None);
        }
        let identity = self
            .subscription_client_cert
            .as_deref()
            .zip(self.subscription_client_key.as_deref());
        let tls = match (&self.subscription_ca_file, identity) {
            (None, None) => None,
            (ca, identity) => Some(std::sync::Arc::new(crate::tls::client_config(
                ca.as_deref(),
                identity,
            )?)),
        };
        Ok(Some(crate::subscriptions::SubscriptionConfig {
            allow_private_endpoints: self.subscription_allow_private_endpoints,
            max_attempts: self.subscription_attempts.max(1),
            retry_base: Duration::from_millis(self.subscription_retry_ms),
            base,
            retention: Duration::from_secs(self.subscription_retention_hours.max(1) * 3600),
            tls,
            ..Default::default()
        }))
    }
}

/// How requests are assigned to tenants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Tenancy {
    /// One organisation: no tenants.
    #[default]
    Off,
    /// The tenant is the first path segment after `/fhir`.
    Url,
    /// The tenant is the access token's `tenant` claim.
    Claim,
}
