//! FHIR R4 validation: this crate's one job is to tell whether a resource conforms to
//! its StructureDefinition and to the profiles asked for, and to say what is wrong and
//! where.
//!
//! # API
//!
//! - [`Validator::r4`] builds a validator over the R4 core definitions;
//!   [`Validator::add_package_file`] / [`Validator::add_package_bytes`] load an IG
//!   package (`.tgz`, npm layout) and [`Validator::add_resources`] loose
//!   StructureDefinitions, ValueSets and CodeSystems. StructureDefinitions published
//!   without a snapshot get one generated from their base.
//! - [`Validator::validate`] checks a resource (a Bundle: every entry; contained
//!   resources too) against its type, its `meta.profile`s and
//!   [`ValidationOptions::profiles`], and returns a [`ValidationReport`]:
//!   [`Issue`]s with a [`Severity`], an issue type, a message naming the rule, and a
//!   FHIRPath location (`Patient.name[0].given[1]`). [`ValidationReport::has_errors`]
//!   is the verdict; [`ValidationReport::to_operation_outcome`] the OperationOutcome.
//! - The validator is `Send + Sync`: share one `Arc<Validator>` between threads.
//!
//! ```
//! use fhir_validation::{ValidationOptions, Validator};
//! let validator = Validator::r4();
//! let patient = serde_json::json!({"resourceType": "Patient", "gender": "fish"});
//! let report = validator.validate(&patient, &ValidationOptions::default());
//! assert!(report.has_errors());
//! assert_eq!(report.errors().next().unwrap().expression, "Patient.gender");
//! ```
//!
//! What is checked: unknown elements, JSON types and primitive formats (the model's
//! structure check), resource ids (contained ones too), cardinality, choice types,
//! integer ranges, fixed and pattern values, bindings (required: error;
//! extensible/preferred: warning; value sets that cannot be expanded locally: warning),
//! codes and displays of known complete code systems, invariants (FHIRPath, compiled
//! once), reference targets (and their target profiles when the target is in the
//! input), contained references, extensions against their definitions and contexts,
//! slicing, Bundle `fullUrl`s, HTML in markdown, and the consistency of
//! StructureDefinitions, SearchParameters, CapabilityStatements and OperationDefinitions
//! (against their input and output profiles) being validated. See `docs/validation.md`.

mod bundle;
mod bundle_refs;
mod children;
mod coding;
mod conformance;
mod context;
mod element_ids;
mod fasthash;
mod invariants;
mod issue;
mod limits;
mod links;
mod location;
mod measure;
mod operation_def;
mod questionnaire;
mod references;
mod rules;
mod slicing;
mod snapshot;
mod terminology;
mod tree;
mod validator;
mod values;
mod walk;
mod xhtml;

pub use issue::{Issue, Severity, ValidationReport};
pub use terminology::TerminologySource;
pub use validator::{ValidationOptions, Validator};

/// Errors while loading definitions into a validator.
#[derive(Debug, thiserror::Error)]
pub enum ValidationError {
    #[error("cannot read {0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error(transparent)]
    Model(#[from] fhir_model::ModelError),
    #[error("internal error: {0}")]
    Internal(&'static str),
}
