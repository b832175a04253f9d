//! The FHIR R4 model: everything the server knows about FHIR, read from the official
//! definitions package rather than written by hand.
//!
//! - [`Definitions`] holds the tables built at start-up from one or more npm-style
//!   package `.tgz` files (the R4 core package is embedded, see [`Definitions::r4`]):
//!   - types and profiles ([`TypeDef`]): each StructureDefinition's snapshot elements
//!     ([`ElementDef`]: path, types, cardinality, binding, constraints, summary/modifier
//!     flags) and, per element, a hash map from JSON property name to child element, with
//!     choice types expanded (`valueQuantity` → `value[x]` as Quantity). Walking a
//!     resource is one hash look-up per member ([`Definitions::child`]).
//!   - search parameters by resource type and code, and by URL;
//!   - compartment definitions by code; value sets and code systems by URL.
//! - [`json`]: lossless JSON (order and decimal text preserved) and the detector of
//!   unknown elements ([`Definitions::structure_issues`]).
//! - [`resources`] and [`datatypes`]: Rust types, with builders, for what the server
//!   builds or reads itself (Bundle, OperationOutcome, CapabilityStatement, Parameters,
//!   Meta, Coding, Reference…). All other resources stay JSON.

/// A hash map with a fast non-cryptographic hasher (foldhash), for the look-ups on the
/// hot paths of every request (a type's children by JSON name, types by name): their
/// keys come from the definitions, so SipHash's protection against chosen keys buys
/// nothing there, and it was a tenth of reading FHIR XML.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

pub mod budget;
pub mod datatypes;
pub mod definitions;
pub mod json;
pub mod package;
pub mod resources;
pub mod search_param;
pub mod structure;
pub mod subset;
pub mod terminology;
pub mod xml;

pub use datatypes::{
    CodeableConcept, Coding, Decimal, Identifier, Meta, Period, Quantity, Reference,
};
pub use definitions::{ChildStep, Definitions, ElementCursor};
pub use json::{ElementIssue, ElementIssueKind, JsonSyntaxError};
pub use package::{Package, PackageManifest};
pub use resources::{
    Bundle, BundleEntry, BundleLink, BundleType, CapabilityStatement, EntryRequest, EntryResponse,
    EntrySearch, Issue, IssueSeverity, IssueType, OperationOutcome, Parameter, Parameters,
    SearchEntryMode,
};
pub use search_param::{CompartmentDef, SearchParamDef, SearchParamType};
pub use structure::{ElementDef, TypeDef, TypeKind, TypeRef};
pub use subset::{Subset, Summary};
pub use terminology::Terminology;

/// Errors while loading definitions packages.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read {0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("cannot read package archive: {0}")]
    Archive(#[source] std::io::Error),
    #[error("package has no package/package.json")]
    NoManifest,
    #[error("invalid JSON in package file {0}: {1}")]
    Json(String, #[source] serde_json::Error),
    #[error("invalid FHIR XML in package file {0}: {1}")]
    Xml(String, #[source] xml::XmlError),
    #[error("a definitions loader thread panicked")]
    WorkerPanicked,
}
