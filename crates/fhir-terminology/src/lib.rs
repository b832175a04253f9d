//! FHIR R4 terminology operations over the code systems, value sets and concept maps
//! the server knows: those of the definitions packages (`fhir_model::Terminology`) and
//! those written through the API ([`gather`]). This
//! crate's one job is the operations' logic, with their parameters in and out exactly
//! as the core OperationDefinitions name them; it has no HTTP and no database:
//!
//! - [`lookup()`] — `CodeSystem/$lookup` (code + system, or coding): name, version,
//!   display, and properties (`parent`, `child`, the concept's own);
//! - [`validate::code_system`] — `CodeSystem/$validate-code`, and
//!   [`validate::value_set`] — `ValueSet/$validate-code` (code + system, coding or
//!   codeableConcept; display checked): result, message, display;
//! - [`subsumes()`] — `CodeSystem/$subsumes` (codeA/codeB + system, or codingA/codingB):
//!   outcome;
//! - [`expand()`] — `ValueSet/$expand` (url; filter, offset, count): a ValueSet with
//!   its expansion;
//! - [`translate()`] — `ConceptMap/$translate` (url, or source/target; code + system,
//!   coding, codeableConcept; reverse; targetsystem): result, message, matches.
//!
//! Stored terminology gathered for a request is kept between requests ([`cache`]), and
//! expansions are computed once per terminology (`Terminology::expand_shared`).
//!
//! Parameters arrive as (name, value) pairs ([`Params`]): text for primitives (from a
//! query string or a Parameters body), JSON for Codings, CodeableConcepts and
//! resources. Answers are `Parameters` (or `ValueSet`) resources as JSON; errors are
//! [`TxError`]s naming the parameter, which the server maps to an OperationOutcome.

pub mod cache;
pub mod expand;
pub mod gather;
pub mod lookup;
mod status;
pub mod subsumes;
pub mod translate;
pub mod validate;

pub use expand::{expand, Stamp};
pub use lookup::lookup;
pub use subsumes::subsumes;
pub use translate::translate;

use serde_json::{json, Value};

/// Why an operation cannot answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// A code system, value set or code that is not known (HTTP 404).
    #[error("{message}")]
    NotFound { message: String, param: String },
    /// Parameters missing, contradictory or malformed (HTTP 400).
    #[error("{message}")]
    Invalid { message: String, param: String },
    /// Known, but this server cannot do it (HTTP 422).
    #[error("{message}")]
    NotSupported { message: String, param: String },
    /// The answer would be too large; page it (HTTP 422, issue code `too-costly`).
    #[error("{message}")]
    TooCostly { message: String, param: String },
}

impl TxError {
    /// The parameter the error is about.
    pub fn param(&self) -> &str {
        match self {
            TxError::NotFound { param, .. }
            | TxError::Invalid { param, .. }
            | TxError::NotSupported { param, .. }
            | TxError::TooCostly { param, .. } => param,
        }
    }
}

pub(crate) fn invalid(message: impl Into<String>, param: &str) -> TxError {
    TxError::Invalid {
        message: message.into(),
        param: param.into(),
    }
}

pub(crate) fn not_found(message: impl Into<String>, param: &str) -> TxError {
    TxError::NotFound {
        message: message.into(),
        param: param.into(),
    }
}

/// An operation's input parameters: (name, value), where a primitive's value is a
/// JSON string and a Coding, CodeableConcept or resource is its JSON.
#[derive(Debug, Clone, Default)]
pub struct Params(pub Vec<(String, Value)>);

impl Params {
    /// The first value of `name`, as text.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_str())
    }

    /// The first value of `name`, as JSON (a Coding, CodeableConcept, resource).
    pub fn json(&self, name: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|(n, v)| n == name && v.is_object())
            .map(|(_, v)| v)
    }

    /// Every text value of `name`.
    pub fn texts(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .filter_map(|(_, v)| v.as_str())
            .collect()
    }

    /// `name` as a boolean (`true`/`false`), if given.
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, TxError> {
        match self.text(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(invalid(
                format!("{name} is true or false, not '{other}'"),
                name,
            )),
        }
    }

    /// `name` as a non-negative integer, if given.
    pub fn count(&self, name: &str) -> Result<Option<usize>, TxError> {
        match self.text(name) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                invalid(
                    format!("{name} is a whole number of at least 0, not '{v}'"),
                    name,
                )
            }),
        }
    }
}

/// A coding to check or look up: system, code, display (any may be missing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coding {
    pub system: Option<String>,
    pub version: Option<String>,
    pub code: Option<String>,
    pub display: Option<String>,
}

impl Coding {
    fn of(v: &Value) -> Coding {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Coding {
            system: s("system"),
            version: s("version"),
            code: s("code"),
            display: s("display"),
        }
    }

    /// `system#code`, for messages.
    pub fn label(&self) -> String {
        format!(
            "{}#{}",
            self.system.as_deref().unwrap_or(""),
            self.code.as_deref().unwrap_or("")
        )
    }
}

/// The most codings of one codeableConcept an operation checks.
const MAX_CODINGS: usize = 100;

/// The codings an operation is asked about: `code` (+ `system`/`version`/`display`
/// given as `system_param`…), or `coding`, or each coding of `codeableConcept`; the
/// name of the parameter they came from.
pub(crate) fn codings(p: &Params, system_param: &str) -> Result<(Vec<Coding>, String), TxError> {
    if let Some(code) = p.text("code") {
        let coding = Coding {
            system: p.text(system_param).map(str::to_string),
            version: p.text("version").map(str::to_string),
            code: Some(code.to_string()),
            display: p.text("display").map(str::to_string),
        };
        return Ok((vec![coding], "code".into()));
    }
    if let Some(c) = p.json("coding") {
        return Ok((vec![Coding::of(c)], "coding".into()));
    }
    if let Some(cc) = p.json("codeableConcept") {
        let all: Vec<Coding> = cc
            .get("coding")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(Coding::of)
            .collect();
        if all.is_empty() {
            return Err(invalid("codeableConcept has no coding", "codeableConcept"));
        }
        if all.len() > MAX_CODINGS {
            return Err(invalid(
                format!("codeableConcept has more than {MAX_CODINGS} codings"),
                "codeableConcept",
            ));
        }
        return Ok((all, "codeableConcept".into()));
    }
    Err(invalid(
        "give a code (with its system), a coding or a codeableConcept",
        "code",
    ))
}

/// The code systems the codings of a `$validate-code` request name (`url|version`
/// when they give a version), whether or not they are known.
pub fn coding_systems(p: &Params) -> Vec<String> {
    let Ok((found, _)) = codings(p, "system") else {
        return Vec::new();
    };
    let mut seen = std::collections::HashSet::new();
    found
        .into_iter()
        .filter_map(|c| {
            let s = c.system?;
            Some(match c.version {
                Some(v) => format!("{s}|{v}"),
                None => s,
            })
        })
        .filter(|s| seen.insert(s.clone()))
        .collect()
}

/// A `Parameters` resource of (name, value[x] key, value) triples and part-lists.
pub(crate) fn parameters(params: Vec<Value>) -> Value {
    json!({"resourceType": "Parameters", "parameter": params})
}

pub(crate) fn param(name: &str, kind: &str, value: impl Into<Value>) -> Value {
    let mut p = json!({ "name": name });
    p[format!("value{kind}")] = value.into();
    p
}

#[cfg(test)]
pub(crate) mod testing {
    pub fn params(pairs: &[(&str, &str)]) -> super::Params {
        super::Params(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
                .collect(),
        )
    }

    pub fn r4() -> &'static fhir_model::terminology::Terminology {
        fhir_model::Definitions::r4().terminology()
    }
}
