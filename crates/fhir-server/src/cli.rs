//! Sub-commands other than `serve`.

use std::process::ExitCode;

use std::sync::Arc;

use crate::config::{ExportClientArgs, FhirpathArgs, ImportArgs, ReindexArgs};

/// `fhir-server import PATH…`: see [`crate::import`].
pub fn import(args: &ImportArgs) -> ExitCode {
    let started = std::time::Instant::now();
    match crate::import::run(args) {
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

/// `fhir-server export --url BASE --out DIR`: see [`crate::export::client`].
pub fn export(args: &ExportClientArgs) -> ExitCode {
    let started = std::time::Instant::now();
    match crate::export::client::run(args) {
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
