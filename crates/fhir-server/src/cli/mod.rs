//! The sub-commands other than `serve`: each parses nothing (clap did), calls the
//! library, prints, and maps the outcome to an exit code. `import` and `terminology
//! load` go through the FHIR API of a running server (or one started in-process with
//! `serve::serve`), `export` is a Bulk Data client of a running server; `reindex`,
//! `audit`, `tenants` open the store directly; `check` runs `fhir-check`.

pub mod export;
pub mod import;
pub mod terminology_load;

use std::process::ExitCode;

use std::sync::Arc;

use crate::auth::clients::{Client, ClientsFile};
use crate::config::{
    AuditArgs, AuditCommand, ClientsArgs, ClientsCommand, ExportClientArgs, FhirpathArgs,
    ImportArgs, ReindexArgs, TenantsArgs, TenantsCommand, ValidateArgs,
};

/// `fhir-server check URL`: the conformance checker of the `fhir-check` crate; exits 0
/// when the server conforms, 1 when a check failed, 2 when it could not run.
pub fn check(args: &crate::config::CheckArgs) -> ExitCode {
    let options = fhir_check::Options {
        base: args.url.clone(),
        token: args.token.clone(),
        write: args.write,
        types: args.types.clone(),
        rate: args.rate,
        budget: args.max_requests,
        timeout: std::time::Duration::from_secs(args.timeout.max(1)),
        ca_file: args.ca_file.clone(),
    };
    let report = match fhir_check::run(&options) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", report.text());
    for (path, text) in [(&args.json, report.json()), (&args.html, report.html())] {
        if let Some(path) = path {
            if let Err(e) = std::fs::write(path, text) {
                eprintln!("error: {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    if report.conforms() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `fhir-server import PATH…`: see [`import`].
pub fn import(args: &ImportArgs) -> ExitCode {
    let started = std::time::Instant::now();
    match import::run(args) {
        Ok((loaded, skipped, resources)) => {
            let secs = started.elapsed().as_secs_f64();
            println!(
                "imported {resources} resources from {loaded} files in {secs:.1} s ({:.0} resources/s); {skipped} files already loaded",
                resources as f64 / secs.max(0.001)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `fhir-server terminology load FILE…`: see [`terminology_load`].
pub fn terminology(args: &crate::config::TerminologyArgs) -> ExitCode {
    let crate::config::TerminologyCommand::Load(load) = &args.command;
    let started = std::time::Instant::now();
    match terminology_load::run(load) {
        Ok(l) => {
            println!(
                "loaded {} code systems ({} concepts), {} value sets and {} concept maps in {:.1} s",
                l.code_systems,
                l.concepts,
                l.value_sets,
                l.concept_maps,
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `fhir-server export --url BASE --out DIR`: see [`export`].
pub fn export(args: &ExportClientArgs) -> ExitCode {
    let started = std::time::Instant::now();
    match export::run(args) {
        Ok(d) => {
            let secs = started.elapsed().as_secs_f64();
            println!(
                "exported {} resources in {} files ({:.1} MB) to {} in {secs:.1} s ({:.0} resources/s)",
                d.resources,
                d.files,
                d.bytes as f64 / 1e6,
                args.out.display(),
                d.resources as f64 / secs.max(0.001)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `fhir-server reindex`: recomputes the search index rows of every stored resource.
pub fn reindex(args: &ReindexArgs) -> ExitCode {
    let defs = fhir_model::Definitions::r4();
    if let Some(bad) = args.types.iter().find(|t| !defs.is_resource_type(t)) {
        eprintln!("error: unknown resource type '{bad}'");
        return ExitCode::FAILURE;
    }
    let indexer = Arc::new(fhir_store::SearchIndexer {
        registry: fhir_search::SearchRegistry::r4(),
        full_text: true,
    });
    let options = fhir_store::PoolOptions {
        max_connections: 2,
        ..Default::default()
    };
    let store = match fhir_store::Store::open(&args.database_url, &options, indexer) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = std::time::Instant::now();
    let result = store.reindex(&args.types, args.batch, |done| {
        eprint!(
            "\rreindexed {done} resources ({:.0}/s)",
            done as f64 / started.elapsed().as_secs_f64().max(0.001)
        );
    });
    eprintln!();
    match result {
        Ok(n) => {
            println!(
                "reindexed {n} resources in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `fhir-server fhirpath EXPRESSION FILE.json`: prints the result collection as JSON;
/// errors (with the position in the expression) go to stderr with a non-zero exit.
pub fn fhirpath(args: &FhirpathArgs) -> ExitCode {
    let fail = |msg: String| {
        eprintln!("error: {msg}");
        ExitCode::FAILURE
    };
    let expr = match fhirpath::compile(&args.expression) {
        Ok(e) => e,
        Err(e) => {
            return fail(format!(
                "{e}\n  {}\n  {}^",
                args.expression,
                " ".repeat(e.column.saturating_sub(1))
            ))
        }
    };
    let bytes = match std::fs::read(&args.file) {
        Ok(b) => b,
        Err(e) => return fail(format!("{}: {e}", args.file.display())),
    };
    let input = match fhir_model::json::parse(&bytes) {
        Ok(v) => v,
        Err(e) => return fail(format!("{}: {e}", args.file.display())),
    };
    // %resource defaults to the input.
    let ctx = fhirpath::EvalContext::with_definitions(fhir_model::Definitions::r4());
    match expr.evaluate(&ctx, &input) {
        Ok(result) => {
            println!("{}", fhir_model::json::to_string_pretty(&result.to_json()));
            ExitCode::SUCCESS
        }
        Err(e) => fail(e.to_string()),
    }
}

/// `fhir-server audit verify`: walks the audit chain; exit 1 when it is broken.
pub fn audit(args: &AuditArgs) -> ExitCode {
    let AuditCommand::Verify {
        database_url,
        tenant,
    } = &args.command;
    let store = match tenant {
        Some(t) => {
            fhir_store::tenants::database_url(database_url, t).and_then(|url| open_unindexed(&url))
        }
        None => open_unindexed(database_url),
    };
    let store = match store {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match store.verify_audit() {
        Ok(report) if report.problems.is_empty() => {
            println!(
                "audit chain verified: {} events, head {}",
                report.checked,
                report.head.as_deref().unwrap_or("(empty)")
            );
            ExitCode::SUCCESS
        }
        Ok(report) => {
            for p in &report.problems {
                eprintln!("audit chain broken: {p}");
            }
            eprintln!(
                "{} problem(s) in {} events",
                report.problems.len(),
                report.checked
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A store opened for administration (no search index is written).
fn open_unindexed(url: &str) -> fhir_store::StoreResult<fhir_store::Store> {
    let options = fhir_store::PoolOptions {
        max_connections: 2,
        ..Default::default()
    };
    fhir_store::Store::open(url, &options, Arc::new(fhir_store::NoIndex))
}

/// `fhir-server tenants add|list|disable|enable`: the tenants of a database.
pub fn tenants(args: &TenantsArgs) -> ExitCode {
    match run_tenants(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_tenants(args: &TenantsArgs) -> Result<(), String> {
    let store = open_unindexed(&args.database_url).map_err(|e| e.to_string())?;
    let instant = fhir_store::time::fhir_instant;
    match &args.command {
        TenantsCommand::List => {
            for t in store.tenants().map_err(|e| e.to_string())? {
                let status = if t.active { "active" } else { "disabled" };
                println!("{}\t{status}\t{}", t.name, instant(t.created_ms));
            }
        }
        TenantsCommand::Add { name } => {
            let added = store.add_tenant(name).map_err(|e| e.to_string())?;
            // Its tables are made now, not by its first request.
            let url = fhir_store::tenants::database_url(&args.database_url, name)
                .map_err(|e| e.to_string())?;
            open_unindexed(&url).map_err(|e| format!("tenant '{name}': {e}"))?;
            match added {
                true => println!("tenant '{name}' added"),
                false => println!("tenant '{name}' exists already"),
            }
        }
        TenantsCommand::Disable { name } | TenantsCommand::Enable { name } => {
            let active = matches!(args.command, TenantsCommand::Enable { .. });
            if !store
                .set_tenant_active(name, active)
                .map_err(|e| e.to_string())?
            {
                return Err(format!("there is no tenant '{name}'"));
            }
            let status = if active { "enabled" } else { "disabled" };
            println!("tenant '{name}' {status}");
        }
    }
    Ok(())
}

/// `fhir-server clients add|list|remove`: edits the clients file.
pub fn clients(args: &ClientsArgs) -> ExitCode {
    match run_clients(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_clients(args: &ClientsArgs) -> Result<(), String> {
    let mut file = ClientsFile::load(&args.file).map_err(|e| e.to_string())?;
    match &args.command {
        ClientsCommand::List => {
            for c in &file.clients {
                println!(
                    "{}\t{}\t{}\t{}",
                    c.client_id,
                    c.scope,
                    c.certificate_subject.as_deref().unwrap_or("-"),
                    c.tenant.as_deref().unwrap_or(fhir_store::tenants::DEFAULT)
                );
            }
            return Ok(());
        }
        ClientsCommand::Add {
            id,
            scope,
            jwks,
            jwks_url,
            certificate_subject,
            tenant,
        } => {
            if let Some(t) = tenant {
                fhir_store::tenants::check_name(t)?;
            }
            let bad: Vec<&str> = scope
                .split_ascii_whitespace()
                .filter(|s| crate::access::scopes::Scope::parse(s).is_none())
                .collect();
            if !bad.is_empty() {
                return Err(format!("not SMART resource scopes: {}", bad.join(" ")));
            }
            let jwks = match jwks {
                Some(p) => {
                    let text =
                        std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
                    Some(
                        serde_json::from_str(&text)
                            .map_err(|e| format!("{}: not a JWKS: {e}", p.display()))?,
                    )
                }
                None => None,
            };
            if jwks.is_none() && jwks_url.is_none() && certificate_subject.is_none() {
                return Err(
                    "give --jwks, --jwks-url or --certificate-subject (how the client proves who it is)"
                        .into(),
                );
            }
            if let Some(u) = jwks_url.as_deref().filter(|u| !u.starts_with("https://")) {
                if !u.starts_with("http://127.0.0.1") && !u.starts_with("http://localhost") {
                    return Err(format!("--jwks-url '{u}' must be an https:// URL"));
                }
            }
            file.add(Client {
                client_id: id.clone(),
                scope: scope.clone(),
                jwks,
                jwks_file: None,
                jwks_url: jwks_url.clone(),
                certificate_subject: certificate_subject.clone(),
                tenant: tenant.clone(),
            })
            .map_err(|e| e.to_string())?;
        }
        ClientsCommand::Remove { id } => file.remove(id).map_err(|e| e.to_string())?,
    }
    if let Some(dir) = args.file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    file.save(&args.file).map_err(|e| e.to_string())?;
    println!(
        "{} updated ({} clients); restart the server to apply",
        args.file.display(),
        file.clients.len()
    );
    Ok(())
}

/// `fhir-server validate FILE…`: prints each issue as `FILE: severity: where: what`;
/// exit 1 when any file has errors (or cannot be read), 0 otherwise.
/// A resource file's JSON: FHIR XML for `.xml` files, JSON otherwise.
fn resource_file(path: &std::path::Path, bytes: &[u8]) -> Result<serde_json::Value, String> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("xml"))
    {
        return fhir_model::xml::from_xml(fhir_model::Definitions::r4(), bytes)
            .map_err(|e| e.to_string());
    }
    fhir_model::json::parse(bytes).map_err(|e| e.to_string())
}

pub fn validate(args: &ValidateArgs) -> ExitCode {
    let mut validator = fhir_validation::Validator::r4();
    for p in &args.package {
        if let Err(e) = validator.add_package_file(p) {
            eprintln!("error: {}: {e}", p.display());
            return ExitCode::FAILURE;
        }
    }
    let options = fhir_validation::ValidationOptions {
        profiles: args.profile.clone(),
        ..Default::default()
    };
    let (mut errors, mut warnings) = (0usize, 0usize);
    for file in &args.files {
        let name = file.display();
        let value = match std::fs::read(file)
            .map_err(|e| e.to_string())
            .and_then(|b| resource_file(file, &b))
        {
            Ok(v) => v,
            Err(e) => {
                println!("{name}: error: {e}");
                errors += 1;
                continue;
            }
        };
        for i in validator.validate(&value, &options).issues {
            let sev = format!("{:?}", i.severity).to_lowercase();
            if i.severity.is_error() {
                errors += 1;
            } else if matches!(i.severity, fhir_validation::Severity::Warning) {
                warnings += 1;
            }
            println!("{name}: {sev}: {}: {}", i.expression, i.message);
        }
    }
    println!(
        "{} file(s): {errors} error(s), {warnings} warning(s)",
        args.files.len()
    );
    if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
