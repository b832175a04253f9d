//! `fhir-check`: how far a FHIR R4 server — any server, not only this project's —
//! conforms to what its CapabilityStatement claims. It reads the statement, then tries
//! what it claims: read, vread, history and search per resource type (each declared
//! search parameter with a value taken from a resource the server returned, so the
//! resource must come back), paging links, `_include`, content negotiation, error
//! handling, SMART discovery, the Bulk Data kick-off, TLS; with `write`, also create,
//! update, conditional create and update, delete and transactions, on scratch
//! resources it tags and deletes afterwards. Read-only otherwise.
//!
//! Every request is paced and counted ([`client`]): the checker never floods a
//! partner. The result is a [`report::Report`] (text, JSON, HTML); it conforms when no
//! check failed.

pub mod checks;
pub mod client;
pub mod report;

use std::time::Duration;

pub use report::{Check, Outcome, Report};

/// What to check and how gently (its `Debug` leaves the token out).
#[derive(Clone)]
pub struct Options {
    /// The FHIR base URL.
    pub base: String,
    /// A bearer token for every request.
    pub token: Option<String>,
    /// Create, change and delete scratch resources (tagged, deleted afterwards).
    pub write: bool,
    /// Resource types to try (empty: a few common claimed types).
    pub types: Vec<String>,
    /// Requests per second, at most.
    pub rate: f64,
    /// Requests in the run, at most.
    pub budget: usize,
    /// Time one request may take.
    pub timeout: Duration,
    /// CA certificates (PEM) trusted besides the public web PKI.
    pub ca_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "(not shown)"))
            .field("write", &self.write)
            .field("types", &self.types)
            .finish_non_exhaustive()
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            base: String::new(),
            token: None,
            write: false,
            types: Vec::new(),
            rate: 10.0,
            budget: 600,
            timeout: Duration::from_secs(30),
            ca_file: None,
        }
    }
}

/// Checks the server at `options.base`; fails only when the CA file cannot be read.
pub fn run(options: &Options) -> Result<Report, String> {
    checks::run(options)
}
