//! The arguments of the sub-commands other than `serve` (whose arguments, and the
//! server's start, are in [`crate::config`]).

use clap::{Args, Subcommand};

/// A feature switched `on` or `off`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    #[default]
    On,
    Off,
}

#[derive(Debug, Clone, Args)]
pub struct TerminologyArgs {
    #[command(subcommand)]
    pub command: TerminologyCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum TerminologyCommand {
    /// Load CodeSystem, ValueSet and ConceptMap files (JSON, Bundle, NDJSON or XML,
    /// optionally .gz); each replaces the stored one with its URL and version.
    Load(TerminologyLoadArgs),
}

/// What a load reads and where it writes (`import`, `terminology load`).
#[derive(Debug, Clone, Args)]
pub struct LoadTarget {
    /// Files or folders (.json, .ndjson, .xml, optionally .gz).
    #[arg(required = true)]
    pub paths: Vec<std::path::PathBuf>,
    /// FHIR base URL of a running server; without it the load runs a server in-process
    /// on --database-url.
    #[arg(long)]
    pub url: Option<String>,
    #[arg(
        long,
        env = "FHIR_DATABASE_URL",
        default_value = "sqlite://./data/fhir.db"
    )]
    pub database_url: String,
}

#[derive(Debug, Clone, Args)]
pub struct TerminologyLoadArgs {
    #[command(flatten)]
    pub target: LoadTarget,
    /// Resources per transaction.
    #[arg(long, default_value_t = 50)]
    pub batch: usize,
}

/// `fhir-server check URL`: see the `fhir-check` crate. (`Debug` leaves the token out.)
#[derive(Clone, Args)]
pub struct CheckArgs {
    /// The FHIR base URL of the server to check (any FHIR R4 server).
    pub url: String,
    /// Also create, change and delete scratch resources (tagged `urn:fhir-check`,
    /// deleted afterwards); read-only without it.
    #[arg(long)]
    pub write: bool,
    /// Bearer token sent with every request.
    #[arg(long, env = "FHIR_CHECK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Resource types to try, comma-separated (default: common types the server claims).
    #[arg(long, value_delimiter = ',')]
    pub types: Vec<String>,
    /// Requests per second, at most.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Requests in the whole run, at most.
    #[arg(long, default_value_t = 600)]
    pub max_requests: usize,
    /// Seconds one request may take.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// CA certificates (PEM) trusted besides the public web PKI.
    #[arg(long)]
    pub ca_file: Option<std::path::PathBuf>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Also write the report as a self-contained HTML page to this file.
    #[arg(long)]
    pub html: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for CheckArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckArgs")
            .field("url", &self.url)
            .field("write", &self.write)
            .field("token", &self.token.as_ref().map(|_| "(not shown)"))
            .field("types", &self.types)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    /// FHIR JSON or XML (.xml) files (a Bundle's entries are validated too).
    #[arg(required = true)]
    pub files: Vec<std::path::PathBuf>,
    /// Validate against this profile (canonical URL) too; repeatable.
    #[arg(long)]
    pub profile: Vec<String>,
    /// Load this IG package (.tgz); repeatable.
    #[arg(long)]
    pub package: Vec<std::path::PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum AuditCommand {
    /// Recompute every hash of the audit chain; non-zero exit when it is broken.
    Verify {
        #[arg(
            long,
            env = "FHIR_DATABASE_URL",
            default_value = "sqlite://./data/fhir.db"
        )]
        database_url: String,
        /// The tenant whose audit trail to verify (default: the default tenant's).
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct TenantsArgs {
    /// The default tenant's database, which lists the tenants.
    #[arg(
        long,
        env = "FHIR_DATABASE_URL",
        default_value = "sqlite://./data/fhir.db"
    )]
    pub database_url: String,
    #[command(subcommand)]
    pub command: TenantsCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum TenantsCommand {
    /// Add a tenant and make its database (a PostgreSQL schema or a SQLite file).
    Add {
        /// 1-40 of a-z, 0-9 and '-', starting with a letter.
        name: String,
    },
    /// List the tenants.
    List,
    /// Refuse a tenant's requests (403); its data stay.
    Disable { name: String },
    /// Serve a disabled tenant again.
    Enable { name: String },
}

#[derive(Debug, Clone, Args)]
pub struct ClientsArgs {
    /// The clients file the server reads (--auth-clients).
    #[arg(long, env = "FHIR_AUTH_CLIENTS", default_value = "./data/clients.json")]
    pub file: std::path::PathBuf,
    #[command(subcommand)]
    pub command: ClientsCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ClientsCommand {
    /// Register a client.
    Add {
        /// The client id (the `iss`/`sub` of its assertions).
        #[arg(long)]
        id: String,
        /// The most it may be granted, e.g. "system/Observation.rs system/Patient.r".
        #[arg(long)]
        scope: String,
        /// Its public keys (a JWKS file), for private_key_jwt.
        #[arg(long)]
        jwks: Option<std::path::PathBuf>,
        /// Or the URL where it publishes them (preferred by SMART: keys can rotate).
        #[arg(long)]
        jwks_url: Option<String>,
        /// Its TLS certificate subject (e.g. "CN=lab.example.org, O=Lab"), for mutual TLS.
        #[arg(long)]
        certificate_subject: Option<String>,
        /// The tenant it belongs to (`--tenancy url|claim`; default: the default tenant).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// List registered clients.
    List,
    /// Remove a client.
    Remove {
        #[arg(long)]
        id: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ExportClientArgs {
    /// FHIR base URL of the server, e.g. http://127.0.0.1:8080/fhir
    #[arg(long)]
    pub url: String,
    /// Folder the NDJSON files and manifest.json are written to.
    #[arg(long)]
    pub out: std::path::PathBuf,
    /// Only these resource types (repeatable or comma-separated).
    #[arg(long = "type", value_delimiter = ',')]
    pub types: Vec<String>,
    /// Only resources changed after this instant (e.g. 2026-11-30T10:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Seconds to wait for the export to finish.
    #[arg(long, default_value_t = 3600)]
    pub timeout: u64,
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub target: LoadTarget,
    /// Resources per Bundle when loading NDJSON.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Where finished files are recorded (a re-run skips them).
    #[arg(long, default_value = ".fhir-import-state")]
    pub state: std::path::PathBuf,
    /// Files loaded at the same time.
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// Index the text for `_text`/`_content` while loading (in-process server only).
    #[arg(long, env = "FHIR_FULL_TEXT", value_enum, default_value = "on")]
    pub full_text: OnOff,
}

#[derive(Debug, Clone, Args)]
pub struct ReindexArgs {
    /// sqlite://PATH or postgres://USER@HOST:PORT/DB
    #[arg(
        long,
        env = "FHIR_DATABASE_URL",
        default_value = "sqlite://./data/fhir.db"
    )]
    pub database_url: String,
    /// Only these resource types (repeatable; default: all).
    #[arg(long = "type")]
    pub types: Vec<String>,
    /// Resources per transaction.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
}

#[derive(Debug, Clone, Args)]
pub struct FhirpathArgs {
    /// The FHIRPath expression.
    pub expression: String,
    /// A FHIR JSON resource file.
    pub file: std::path::PathBuf,
}
