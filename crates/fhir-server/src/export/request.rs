//! The kick-off request of an export: its level (system, Patient, Group) and its
//! parameters, read from a GET query string or a POST `Parameters` body. Stored with the
//! job as JSON, so a job restarted after a server restart plans again from the same input.
//!
//! Parameters the server does not support (`includeAssociatedData`, `organizeOutputBy`,
//! unknown ones) and single-valued parameters given twice are refused, unless the
//! request says `Prefer: handling=lenient`: then they are left out and listed in
//! [`ExportRequest::ignored`], which the manifest reports in its `error` array.

use fhir_model::Parameters;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ExportError;

/// Which kick-off endpoint was called.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportLevel {
    /// `[base]/$export`
    #[default]
    System,
    /// `[base]/Patient/$export`
    Patient,
    /// `[base]/Group/[id]/$export`
    Group(String),
}

/// The parameters of a kick-off request, as given (checked by [`super::export_scope`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRequest {
    pub level: ExportLevel,
    pub output_format: Option<String>,
    pub since: Option<String>,
    pub types: Vec<String>,
    pub type_filters: Vec<String>,
    pub elements: Vec<String>,
    /// `patient` references (ids of Patient resources).
    pub patients: Vec<String>,
    /// The client that asked (when authentication is on): only it may see the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// `_until`: only resources last changed at or before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// `Prefer: handling=lenient`.
    #[serde(default)]
    pub lenient: bool,
    /// What a lenient request asked that is not done, with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<Ignored>,
}

/// A parameter (or one value of it) a lenient request gave that the export leaves out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ignored {
    pub parameter: String,
    pub message: String,
}

fn comma_list(v: &str) -> impl Iterator<Item = String> + '_ {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// `_typeFilter` values may hold several queries separated by commas; a comma starts a
/// new query only where a resource type and `?` follow (`code=a,b` stays one query).
fn type_filters(v: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for piece in v.split(',') {
        let starts_query = piece
            .split_once('?')
            .is_some_and(|(t, _)| t.starts_with(|c: char| c.is_ascii_uppercase()));
        match out.last_mut() {
            Some(last) if !starts_query => {
                last.push(',');
                last.push_str(piece);
            }
            _ => out.push(piece.to_string()),
        }
    }
    out.retain(|f| !f.trim().is_empty());
    out
}

/// The id of a `patient` reference: `Patient/123` or an absolute URL ending so.
fn patient_id(reference: &str) -> Result<String, ExportError> {
    let id = reference
        .rsplit_once("Patient/")
        .map(|(_, id)| id)
        .filter(|id| crate::ids::valid_id(id))
        .ok_or_else(|| {
            ExportError::Patient(format!("'{reference}' is not a reference to a Patient"))
        })?;
    Ok(id.to_string())
}

impl ExportRequest {
    fn new(level: ExportLevel, lenient: bool) -> ExportRequest {
        ExportRequest {
            level,
            lenient,
            ..Default::default()
        }
    }

    /// Reads the parameters of a GET kick-off.
    pub fn from_pairs(
        level: ExportLevel,
        pairs: &[(String, String)],
        lenient: bool,
    ) -> Result<ExportRequest, ExportError> {
        let mut r = ExportRequest::new(level, lenient);
        for (k, v) in pairs {
            let added = r.add(k, v);
            r.tolerate(added)?;
        }
        Ok(r)
    }

    /// Reads the parameters of a POST kick-off (a `Parameters` resource).
    pub fn from_parameters(
        level: ExportLevel,
        body: &Value,
        lenient: bool,
    ) -> Result<ExportRequest, ExportError> {
        let params = Parameters::from_value(body).map_err(ExportError::Parameters)?;
        let mut r = ExportRequest::new(level, lenient);
        for (i, p) in params.parameter.iter().enumerate() {
            if !KNOWN.contains(&p.name.as_str()) || unsupported(&p.name).is_some() {
                let e = unsupported(&p.name).unwrap_or_else(|| ExportError::Unsupported {
                    parameter: p.name.clone(),
                    message: "is not a parameter of $export".into(),
                });
                r.tolerate(Err(e))?;
                continue;
            }
            if p.name == "allowPartialManifests" {
                // A server MAY split its manifest: one manifest is always allowed.
                continue;
            }
            if p.name == "patient" {
                let reference = p
                    .value
                    .as_ref()
                    .filter(|(t, _)| t == "Reference")
                    .and_then(|(_, v)| v.get("reference"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        ExportError::Patient(format!(
                            "Parameters.parameter[{i}] needs a valueReference with a reference"
                        ))
                    })?;
                r.patients.push(patient_id(reference)?);
                continue;
            }
            let Some(text) = p.value_str() else {
                return Err(ExportError::Parameters(format!(
                    "Parameters.parameter[{i}] ('{}') needs a string value",
                    p.name
                )));
            };
            let added = r.add(&p.name, text);
            r.tolerate(added)?;
        }
        Ok(r)
    }

    /// A parameter the server leaves out: an error, or under lenient handling a note.
    fn tolerate(&mut self, added: Result<(), ExportError>) -> Result<(), ExportError> {
        match added {
            Err(e) if self.lenient && e.is_tolerable() => {
                self.ignore(&e.parameter().unwrap_or_default(), e.to_string());
                Ok(())
            }
            other => other,
        }
    }

    /// Notes what a lenient request asked that is left out.
    pub fn ignore(&mut self, parameter: &str, message: String) {
        self.ignored.push(Ignored {
            parameter: parameter.to_string(),
            message,
        });
    }

    fn add(&mut self, name: &str, value: &str) -> Result<(), ExportError> {
        if let Some(e) = unsupported(name) {
            return Err(e);
        }
        let once = |slot: &mut Option<String>| match slot {
            Some(_) => Err(ExportError::Repeated(name.to_string())),
            None => {
                *slot = Some(value.to_string());
                Ok(())
            }
        };
        match name {
            "_outputFormat" => once(&mut self.output_format)?,
            "_since" => once(&mut self.since)?,
            "_until" => once(&mut self.until)?,
            "_type" => self.types.extend(comma_list(value)),
            "_typeFilter" => self.type_filters.extend(type_filters(value)),
            "_elements" => self.elements.extend(comma_list(value)),
            "patient" => {
                for p in comma_list(value) {
                    self.patients.push(patient_id(&p)?);
                }
            }
            "allowPartialManifests" if matches!(value, "true" | "false") => {}
            "allowPartialManifests" => {
                return Err(ExportError::Parameters(format!(
                    "allowPartialManifests is true or false, not '{value}'"
                )))
            }
            other => {
                return Err(ExportError::Unsupported {
                    parameter: other.to_string(),
                    message: "is not a parameter of $export".into(),
                })
            }
        }
        Ok(())
    }
}

/// The kick-off parameters of the IG.
const KNOWN: &[&str] = &[
    "_outputFormat",
    "_since",
    "_until",
    "_type",
    "_typeFilter",
    "_elements",
    "patient",
    "includeAssociatedData",
    "organizeOutputBy",
    "allowPartialManifests",
];

/// The IG's parameters this server does not support.
fn unsupported(name: &str) -> Option<ExportError> {
    let message = match name {
        "includeAssociatedData" => "is not supported: no associated data is added",
        "organizeOutputBy" => "is not supported: files are organised by resource type",
        _ => return None,
    };
    Some(ExportError::Unsupported {
        parameter: name.to_string(),
        message: message.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_filters_split_on_queries_only() {
        assert_eq!(
            type_filters("Observation?code=a,b,Condition?clinical-status=active"),
            vec!["Observation?code=a,b", "Condition?clinical-status=active"]
        );
    }

    #[test]
    fn patient_references() {
        assert_eq!(patient_id("Patient/p1").ok(), Some("p1".into()));
        assert_eq!(
            patient_id("http://x/fhir/Patient/p2").ok(),
            Some("p2".into())
        );
        assert!(patient_id("Group/g").is_err());
    }
}
