//! The `fhir-server` binary: `serve` (default) and the other sub-commands.

use fhir_server::config::Command;
use fhir_server::serve::serve;

/// mimalloc instead of the system allocator: the server allocates and frees many small
/// JSON nodes across threads, where glibc's malloc spent a quarter of the import's CPU
/// and kept freed memory in per-thread arenas.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's options, by their number in `mimalloc.h` (`mi_option_e`, the same in its
/// v2 and v3; the sys crate names only some of them).
const MI_OPTION_ARENA_EAGER_COMMIT: i32 = 4;
const MI_OPTION_PURGE_DELAY: i32 = 15;

/// Hands freed memory back to the system soon instead of keeping it committed: the
/// definitions and the validator are built from much larger passing structures, and
/// with mimalloc's defaults (arenas committed eagerly) the server idled at 158 MiB
/// instead of 80, and stayed ~60 MiB higher under load (docs/benchmarks.md, "Memory").
/// Freed pages are purged after 10 ms, not at once: purging at once cost a search
/// page's worth of page faults, `madvise` calls and TLB shootdowns per request (a
/// quarter of the server's CPU serving pages of 50 Patients; pages of 50
/// Observations 40 % faster on SQLite with the delay) for 4–13 MiB less under load.
/// mimalloc's own environment variables (`MIMALLOC_ARENA_EAGER_COMMIT`,
/// `MIMALLOC_PURGE_DELAY`) still win when set.
extern "C" fn return_freed_memory() {
    for (option, env, value) in [
        (
            MI_OPTION_ARENA_EAGER_COMMIT,
            c"MIMALLOC_ARENA_EAGER_COMMIT",
            0,
        ),
        (MI_OPTION_PURGE_DELAY, c"MIMALLOC_PURGE_DELAY", 10),
    ] {
        // SAFETY: getenv reads the environment without allocating (nothing may allocate
        // before the options are set); mi_option_set stores an integer in mimalloc's
        // option table.
        unsafe {
            if libc::getenv(env.as_ptr()).is_null() {
                libmimalloc_sys::mi_option_set(option, value);
            }
        }
    }
}

/// The options must be set before the first allocation, which creates the first arena
/// (the Rust runtime allocates before `main`): an ELF constructor runs earlier.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static SET_ALLOCATOR_OPTIONS: extern "C" fn() = return_freed_memory;

fn main() -> std::process::ExitCode {
    #[cfg(not(target_os = "linux"))]
    return_freed_memory();
    let cli = match fhir_server::config_file::parse_from(std::env::args().collect()) {
        Ok(cli) => cli,
        Err(fhir_server::config_file::ConfigError::Cli(e)) => e.exit(),
        Err(e) => {
            eprintln!("fhir-server: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Some(Command::Serve(args)) => run_server(*args),
        Some(Command::Fhirpath(args)) => return fhir_server::cli::fhirpath(&args),
        Some(Command::Reindex(args)) => return fhir_server::cli::reindex(&args),
        Some(Command::Import(args)) => return fhir_server::cli::import(&args),
        Some(Command::Audit(args)) => return fhir_server::cli::audit(&args),
        Some(Command::Clients(args)) => return fhir_server::cli::clients(&args),
        Some(Command::Tenants(args)) => return fhir_server::cli::tenants(&args),
        Some(Command::Validate(args)) => return fhir_server::cli::validate(&args),
        Some(Command::Export(args)) => return fhir_server::cli::export(&args),
        Some(Command::Terminology(args)) => return fhir_server::cli::terminology(&args),
        Some(Command::Check(args)) => return fhir_server::cli::check(&args),
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
