//! Errors and warnings of query parsing and registry updates.

use thiserror::Error;

/// Why a search query was rejected. Every variant but [`SearchError::UnknownResourceType`]
/// names the offending query parameter as written (e.g. `subject:Patient.name`), which
/// the server reports as `OperationOutcome.issue.expression` with status 400.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SearchError {
    /// The resource type of the search (or one named by `_type`) does not exist.
    #[error("unknown resource type '{0}'")]
    UnknownResourceType(String),
    /// A parameter that no searched type defines (strict handling only).
    #[error("{param}: unknown search parameter{}", for_types(.resource_types))]
    UnknownParameter {
        param: String,
        resource_types: Vec<String>,
    },
    /// A parameter this crate does not support (strict handling only).
    #[error("{param}: {message}")]
    Unsupported { param: String, message: String },
    /// A modifier that is unknown or does not apply to the parameter's type.
    #[error("{param}: {message}")]
    InvalidModifier { param: String, message: String },
    /// A chain or `_has` that cannot be followed.
    #[error("{param}: {message}")]
    InvalidChain { param: String, message: String },
    /// A value that does not parse for the parameter's type.
    #[error("{param}: {message}")]
    InvalidValue { param: String, message: String },
}

fn for_types(types: &[String]) -> String {
    if types.is_empty() {
        String::new()
    } else {
        format!(" for {}", types.join(", "))
    }
}

impl SearchError {
    /// The query parameter the error is about (`None` for an unknown resource type).
    pub fn param(&self) -> Option<&str> {
        match self {
            SearchError::UnknownResourceType(_) => None,
            SearchError::UnknownParameter { param, .. }
            | SearchError::Unsupported { param, .. }
            | SearchError::InvalidModifier { param, .. }
            | SearchError::InvalidChain { param, .. }
            | SearchError::InvalidValue { param, .. } => Some(param),
        }
    }

    pub(crate) fn value(param: &str, message: impl Into<String>) -> SearchError {
        SearchError::InvalidValue {
            param: param.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn modifier(param: &str, message: impl Into<String>) -> SearchError {
        SearchError::InvalidModifier {
            param: param.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn chain(param: &str, message: impl Into<String>) -> SearchError {
        SearchError::InvalidChain {
            param: param.to_string(),
            message: message.into(),
        }
    }
}

/// A parameter ignored under lenient handling (unknown, unsupported or empty), to be
/// reported as a warning (e.g. an OperationOutcome in the search Bundle).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// The query parameter name as written.
    pub param: String,
    /// A human-readable reason.
    pub message: String,
}

/// Why a SearchParameter could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RegistryError {
    /// Its FHIRPath expression (or a component's) does not compile.
    #[error("search parameter {url}: expression '{expression}' does not compile: {message}")]
    Expression {
        url: String,
        expression: String,
        message: String,
    },
    /// A composite component names a SearchParameter the registry does not know.
    #[error("search parameter {url}: unknown component definition {component}")]
    UnknownComponent { url: String, component: String },
    /// The definition has no code or no base.
    #[error("search parameter {url}: {message}")]
    Invalid { url: String, message: String },
}
