//! Starting the server: opens the store, joins the nodes sharing its database, builds
//! the shared state, binds the API's listener (and the metrics listener) and serves
//! until stopped.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{middleware, web, App, HttpServer};
use fhir_model::Definitions;
use fhir_store::Store;

use crate::config::{AuditMode, OnOff, SecurityArgs, ServeArgs};
use crate::logging;
use crate::state::AppState;
use crate::tenancy::open::Opener;
use crate::tenancy::{Tenancy, Tenants};

/// Opens the store and serves until stopped.
pub async fn serve(args: ServeArgs) -> std::io::Result<()> {
    let telemetry = observe(&args)?;
    let started = std::time::Instant::now();
    let defs = Definitions::r4();
    tracing::info!(
        ms = started.elapsed().as_millis() as u64,
        types = defs.resource_types().len(),
        "definitions loaded"
    );
    let full_text = args.full_text == OnOff::On;
    let request_timeout = (args.request_timeout > 0.0)
        .then(|| std::time::Duration::try_from_secs_f64(args.request_timeout).ok())
        .flatten();
    let store = open_store(&args, full_text, request_timeout).await?;
    tracing::info!(backend = ?store.kind(), "database ready");
    let auth = load_auth(&args, &store)?;
    check_exposure(&args, auth.is_some())?;
    check_tenancy(&args, auth.is_some())?;
    let audit_on = match args.security.audit {
        AuditMode::Auto => auth.is_some(),
        AuditMode::On => true,
        AuditMode::Off => false,
    };
    let tls_on = args.security.tls_cert.is_some();
    // Bound before the server is built, so that the address (port 0: one the system
    // chose) is known to what needs it, and a taken port fails here.
    let listener = std::net::TcpListener::bind(args.listen)?;
    let listen = listener.local_addr()?;
    if let Some(path) = &args.port_file {
        std::fs::write(path, listen.port().to_string())?;
    }
    let public_base = args.base_url.clone().unwrap_or_else(|| {
        let scheme = if tls_on { "https" } else { "http" };
        format!("{scheme}://{listen}/fhir")
    });
    let validation = crate::validation::Validation::start(
        args.packages.clone(),
        args.validation == OnOff::On,
        args.reject_warnings,
    );
    let opener = Arc::new(Opener {
        args: args.clone(),
        defs,
        full_text,
        request_timeout,
        audit_on,
        listen,
        public_base: public_base.trim_end_matches('/').to_string(),
        validation: validation.clone(),
    });
    let parts = {
        let opener = opener.clone();
        tokio::task::spawn_blocking(move || opener.start(store, None))
            .await
            .map_err(std::io::Error::other)??
    };
    let capability = capability_of(defs, args.base_url.as_deref(), auth.is_some());
    let tls = tls_config(&args.security)?;
    let capability_json = fhir_model::json::to_string(&capability.to_value());
    let openapi = openapi_of(
        &capability_json,
        args.base_url.as_deref(),
        parts.subscriptions.is_some(),
    );
    let node = parts.node;
    let kind = parts.store.kind();
    let state = web::Data::new(AppState {
        store: parts.store,
        exporter: parts.exporter,
        importer: parts.importer,
        subscriptions: parts.subscriptions,
        audit: parts.audit,
        terminology: parts.terminology,
        tenant: (args.tenancy != Tenancy::Off).then(|| fhir_store::tenants::DEFAULT.to_string()),
        url_tenant: None,
        defs,
        base_url: args.base_url.clone(),
        max_body_bytes: args.max_body_bytes,
        request_timeout,
        total_threshold: args.total_threshold,
        sort_walk_above: args.sort_walk_above,
        terminology_rows_from: args.terminology_rows_from,
        sort_range_at_most: args.sort_range_at_most,
        full_text,
        expunge: args.expunge == OnOff::On,
        openapi,
        console: console_config(&args.security),
        capability: capability_json,
        auth,
        validation,
        search_slots: search_slots(&args, kind),
    });
    let tenants = web::Data::new(Tenants::new(
        args.tenancy,
        state.clone(),
        opener,
        args.tenant_rate_limit,
    ));
    {
        let tenants = tenants.clone().into_inner();
        tokio::task::spawn_blocking(move || tenants.open_all());
    }
    let metrics_server = match args.metrics_listen {
        Some(addr) if args.metrics == OnOff::On => Some(metrics_server(addr, state.clone())?),
        _ => None,
    };
    let (server, scheme) = http_server(&args, (state, tenants), tls, listener)?;
    tracing::info!(listen = %listen, "serving FHIR R4 at {scheme}://{listen}/fhir");
    let result = match metrics_server {
        Some(metrics) => {
            let handle = metrics.handle();
            actix_web::rt::spawn(metrics);
            let result = server.await;
            handle.stop(true).await;
            result
        }
        None => server.await,
    };
    // Leaves the database's list of nodes (the others may trust their caches again).
    tokio::task::spawn_blocking(move || drop(node)).await.ok();
    if let Some(t) = telemetry {
        tokio::task::spawn_blocking(move || t.shutdown()).await.ok();
    }
    result
}

/// Tenants chosen by the token's claim need tokens.
fn check_tenancy(args: &ServeArgs, auth_on: bool) -> std::io::Result<()> {
    if args.tenancy == Tenancy::Claim && !auth_on {
        return Err(std::io::Error::other(
            "--tenancy claim takes the tenant from access tokens: configure --auth-clients or --oidc-issuer",
        ));
    }
    Ok(())
}

/// Logs, traces and metrics (and the test harness's stdin watch).
fn observe(args: &ServeArgs) -> std::io::Result<Option<crate::telemetry::Telemetry>> {
    let otlp = args
        .otlp_endpoint
        .as_deref()
        .map(|e| (e, args.otlp_protocol));
    let telemetry =
        logging::init(args.log_format, &args.log_level, otlp).map_err(std::io::Error::other)?;
    if args.metrics == OnOff::On && crate::metrics::install().is_none() {
        tracing::warn!("metrics are off: another metrics recorder was installed first");
    }
    if args.exit_on_stdin_close {
        std::thread::spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            std::process::exit(0);
        });
    }
    Ok(telemetry)
}

/// Opens (and migrates) the database, off the async executor.
async fn open_store(
    args: &ServeArgs,
    full_text: bool,
    request_timeout: Option<std::time::Duration>,
) -> std::io::Result<Store> {
    let args = args.clone();
    tokio::task::spawn_blocking(move || {
        let url = &args.database_url;
        crate::tenancy::open::open_store(&args, full_text, request_timeout, url, None)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// The CapabilityStatement, with how to authenticate when authentication is on.
fn capability_of(
    defs: &'static Definitions,
    base_url: Option<&str>,
    auth_on: bool,
) -> fhir_model::CapabilityStatement {
    let date = fhir_store::time::fhir_instant(fhir_store::time::now_millis());
    let mut capability = crate::capability::build(defs, base_url, &date[..10]);
    if auth_on {
        let token_url = base_url.map(|b| {
            format!(
                "{}/auth/token",
                b.trim_end_matches('/').trim_end_matches("/fhir")
            )
        });
        crate::capability::add_security(&mut capability, token_url);
    }
    capability
}

/// The API's HTTP server on `listener`: the middleware stack around the routes.
fn http_server(
    args: &ServeArgs,
    (state, tenants): (web::Data<AppState>, web::Data<Tenants>),
    tls: Option<rustls::ServerConfig>,
    listener: std::net::TcpListener,
) -> std::io::Result<(actix_web::dev::Server, &'static str)> {
    let limiter = crate::http::ratelimit::RateLimiter::new(args.security.rate_limit);
    let tenancy_on = args.tenancy != Tenancy::Off;
    let https = tls.is_some();
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(tenants.clone())
            .app_data(web::Data::new(limiter.clone()))
            .wrap(middleware::from_fn(crate::http::ratelimit::limit))
            .wrap(middleware::from_fn(crate::guard::authenticate))
            .wrap(middleware::from_fn(crate::recorder::record))
            // Without tenants, not even a pass-through layer (a `from_fn` layer costs
            // a boxed call per request).
            .wrap(middleware::Condition::new(
                tenancy_on,
                middleware::from_fn(crate::tenancy::route),
            ))
            .wrap(crate::http::security::headers(https))
            .wrap(middleware::NormalizePath::trim())
            .wrap(middleware::from_fn(crate::http::limits::uri_length))
            .wrap(middleware::from_fn(crate::http::respond::errors_in_format))
            .wrap(middleware::from_fn(logging::access_log))
            .wrap(middleware::from_fn(crate::metrics::track))
            .wrap(middleware::from_fn(crate::http::peer::track))
            .configure(crate::routes::configure)
    })
    .on_connect(crate::tls::on_connect);
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
    let (server, scheme) = match tls {
        Some(config) => (server.listen_rustls_0_23(listener, config)?, "https"),
        None => (server.listen(listener)?, "http"),
    };
    Ok((server.run(), scheme))
}

/// The search slots (`--search-concurrency`): on SQLite two per core, so that a core has
/// a search to run while the next one is handed to its thread, and searches do not
/// share out the cores among many; on PostgreSQL the pool, whose size says what the
/// database (on this machine or another) serves.
fn search_slots(args: &ServeArgs, kind: fhir_store::BackendKind) -> Arc<tokio::sync::Semaphore> {
    let pool = args.db_pool_size.max(1) as usize;
    let slots = match (args.search_concurrency, kind) {
        (Some(n), _) => n as usize,
        (None, fhir_store::BackendKind::Sqlite) => {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            (2 * cores).min(pool)
        }
        (None, fhir_store::BackendKind::Postgres) => pool,
    };
    Arc::new(tokio::sync::Semaphore::new(slots))
}

/// How the console signs in: with the OpenID Connect provider when it has a client id.
fn console_config(s: &SecurityArgs) -> crate::console::ConsoleConfig {
    let oidc = s
        .oidc_issuer
        .clone()
        .zip(s.console_client_id.clone())
        .map(|(issuer, client_id)| crate::console::ConsoleOidc {
            issuer,
            client_id,
            scope: s.console_scope.clone(),
        });
    crate::console::ConsoleConfig { oidc }
}

/// The OpenAPI document of the CapabilityStatement `capability` (JSON), with the
/// Subscription operations when subscriptions are on.
fn openapi_of(capability: &str, base_url: Option<&str>, subscriptions: bool) -> String {
    let capability = if subscriptions {
        crate::capability::with_subscriptions(capability, std::iter::empty())
    } else {
        capability.to_string()
    };
    let value = fhir_model::json::parse(capability.as_bytes()).unwrap_or_default();
    let base = base_url.map_or("/fhir", |b| b.trim_end_matches('/'));
    serde_json::to_string(&crate::openapi::from_capability(&value, base)).unwrap_or_default()
}

/// The listener of `--metrics-listen`: `/metrics` alone, without a token, on one
/// worker.
fn metrics_server(
    addr: SocketAddr,
    state: web::Data<AppState>,
) -> std::io::Result<actix_web::dev::Server> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/metrics", web::get().to(crate::metrics::scrape_open))
    })
    .workers(1)
    .disable_signals()
    .bind(addr)?;
    if !addr.ip().is_loopback() {
        tracing::warn!(listen = %addr, "/metrics is served without a token beyond loopback: keep this address on the operators' network");
    }
    for a in server.addrs() {
        tracing::info!(listen = %a, "serving metrics at http://{a}/metrics");
    }
    Ok(server.run())
}

fn load_auth(
    args: &ServeArgs,
    store: &Store,
) -> std::io::Result<Option<Arc<crate::auth::AuthConfig>>> {
    let s = &args.security;
    // Without a configured key, every node signs with one key kept in the database,
    // so tokens work on all nodes and across restarts.
    let stored_secret = match (&s.auth_clients, &s.auth_token_secret) {
        (Some(_), None) => Some(
            store
                .shared_secret("access-token-key")
                .map_err(|e| std::io::Error::other(e.to_string()))?,
        ),
        _ => None,
    };
    let issuer = args
        .base_url
        .clone()
        .unwrap_or_else(|| "urn:fhir-server".to_string());
    let settings = crate::auth::AuthSettings {
        clients_file: s.auth_clients.as_deref(),
        oidc_issuer: s.oidc_issuer.as_deref(),
        oidc_audience: s.oidc_audience.as_deref(),
        oidc_jwks: s.oidc_jwks.as_deref(),
        token_secret: s.auth_token_secret.as_deref(),
        stored_secret,
        issuer,
        // SMART Backend Services: expires_in SHOULD NOT exceed 300.
        token_lifetime: s.token_lifetime.clamp(30, 300),
    };
    let auth = crate::auth::AuthConfig::load(&settings).map_err(std::io::Error::other)?;
    Ok(auth.map(Arc::new))
}

/// Secure by default: without authentication, only loopback may be served unless the
/// operator insists.
fn check_exposure(args: &ServeArgs, auth_on: bool) -> std::io::Result<()> {
    if auth_on {
        return Ok(());
    }
    if !args.listen.ip().is_loopback() && !args.security.insecure_no_auth {
        return Err(std::io::Error::other(format!(
            "refusing to serve {} without authentication: configure --auth-clients or --oidc-issuer, or pass --insecure-no-auth",
            args.listen
        )));
    }
    tracing::warn!(
        "AUTHENTICATION IS OFF: every caller may read and change every record; configure --auth-clients or --oidc-issuer"
    );
    Ok(())
}

fn tls_config(s: &SecurityArgs) -> std::io::Result<Option<rustls::ServerConfig>> {
    match (&s.tls_cert, &s.tls_key) {
        (Some(cert), Some(key)) => crate::tls::server_config(cert, key, s.tls_client_ca.as_deref())
            .map(Some)
            .map_err(std::io::Error::other),
        _ => Ok(None),
    }
}
