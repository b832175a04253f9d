//! Command line and environment configuration.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{middleware, web, App, HttpServer};
use clap::{Args, Parser, Subcommand};
use fhir_model::Definitions;
use fhir_store::{PoolOptions, Store};

use crate::export::{ExportConfig, Exporter};
use crate::logging::{self, LogFormat};
use crate::state::AppState;

#[derive(Debug, Parser)]
#[command(
    name = "fhir-server",
    version,
    about = "FHIR R4 server",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the FHIR API (the default).
    Serve(ServeArgs),
    /// Evaluate a FHIRPath expression over a JSON resource and print the result.
    Fhirpath(FhirpathArgs),
    /// Recompute the search index of stored resources (after search parameters change).
    Reindex(ReindexArgs),
    /// Load Bundles, resources and NDJSON files (gzip accepted) through the FHIR API.
    Import(ImportArgs),
    /// Export a running server's data (Bulk Data $export) into NDJSON files.
    Export(ExportClientArgs),
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
    /// Files or folders (.json, .ndjson, optionally .gz).
    #[arg(required = true)]
    pub paths: Vec<std::path::PathBuf>,
    /// FHIR base URL of a running server; without it the import runs a server in-process
    /// on --database-url.
    #[arg(long)]
    pub url: Option<String>,
    #[arg(
        long,
        env = "FHIR_DATABASE_URL",
        default_value = "sqlite://./data/fhir.db"
    )]
    pub database_url: String,
    /// Resources per Bundle when loading NDJSON.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Where finished files are recorded (a re-run skips them).
    #[arg(long, default_value = ".fhir-import-state")]
    pub state: std::path::PathBuf,
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
    #[command(flatten)]
    pub export: ExportArgs,
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
    #[arg(long, env = "FHIR_EXPORT_BATCH", default_value_t = 1000)]
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
            export_batch: 1000,
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

/// Opens the store and serves until stopped.
pub async fn serve(args: ServeArgs) -> std::io::Result<()> {
    logging::init(args.log_format, &args.log_level);
    if args.exit_on_stdin_close {
        std::thread::spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            std::process::exit(0);
        });
    }
    let started = std::time::Instant::now();
    let defs = Definitions::r4();
    tracing::info!(
        ms = started.elapsed().as_millis() as u64,
        types = defs.resource_types().len(),
        "definitions loaded"
    );
    let registry = fhir_search::SearchRegistry::r4();
    let indexer = Arc::new(fhir_store::SearchIndexer { registry });
    let options = PoolOptions {
        max_connections: args.db_pool_size,
        ..Default::default()
    };
    let url = args.database_url.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&url, &options, indexer))
        .await
        .map_err(std::io::Error::other)?
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    tracing::info!(backend = ?store.kind(), "database ready");
    let date = fhir_store::time::fhir_instant(fhir_store::time::now_millis());
    let capability = crate::capability::build(defs, args.base_url.as_deref(), &date[..10]);
    let store = Arc::new(store);
    let export_config = args.export.config(&args.database_url);
    let exporter = Exporter::start(store.clone(), defs, export_config)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let state = web::Data::new(AppState {
        store,
        exporter,
        defs,
        base_url: args.base_url.clone(),
        max_body_bytes: args.max_body_bytes,
        capability: fhir_model::json::to_string(&capability.to_value()),
    });
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(middleware::NormalizePath::trim())
            .wrap(middleware::from_fn(logging::access_log))
            .configure(crate::routes::configure)
    });
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    // Database work runs on each worker's blocking threads: about one per pooled
    // connection is enough, and more threads only contend for the pool.
    let blocking = (args.db_pool_size as usize).div_ceil(workers).max(2);
    server = server
        .workers(workers)
        .worker_max_blocking_threads(blocking);
    let server = server.bind(args.listen)?;
    tracing::info!(listen = %args.listen, "serving FHIR R4 at http://{}/fhir", args.listen);
    server.run().await
}
