//! The `fhir-server` binary: `serve` (default) and the other sub-commands.

use clap::Parser;
use fhir_server::config::{serve, Cli, Command};

/// mimalloc instead of the system allocator: the server allocates and frees many small
/// JSON nodes across threads, where glibc's malloc spent a quarter of the import's CPU
/// and kept freed memory in per-thread arenas.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Serve(args)) => run_server(*args),
        Some(Command::Fhirpath(args)) => return fhir_server::cli::fhirpath(&args),
        Some(Command::Reindex(args)) => return fhir_server::cli::reindex(&args),
        Some(Command::Import(args)) => return fhir_server::cli::import(&args),
        Some(Command::Audit(args)) => return fhir_server::cli::audit(&args),
        Some(Command::Clients(args)) => return fhir_server::cli::clients(&args),
        Some(Command::Validate(args)) => return fhir_server::cli::validate(&args),
        Some(Command::Export(args)) => return fhir_server::cli::export(&args),
        None => run_server(cli.serve),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fhir-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_server(args: fhir_server::config::ServeArgs) -> std::io::Result<()> {
    actix_web::rt::System::new().block_on(serve(args))
}
