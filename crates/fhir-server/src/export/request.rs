//! The kick-off request of an export: its level (system, Patient, Group) and its
//! parameters, read from a GET query string or a POST `Parameters` body. Stored with the
//! job as JSON, so a job restarted after a server restart plans again from the same input.

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
        .filter(|id| crate::state::valid_id(id))
        .ok_or_else(|| {
            ExportError::Patient(format!("'{reference}' is not a reference to a Patient"))
        })?;
    Ok(id.to_string())
}

impl ExportRequest {
    /// Reads the parameters of a GET kick-off (unknown parameters are ignored).
    pub fn from_pairs(
        level: ExportLevel,
        pairs: &[(String, String)],
    ) -> Result<ExportRequest, ExportError> {
        let mut r = ExportRequest {
            level,
            ..Default::default()
        };
        for (k, v) in pairs {
            r.add(k, v)?;
        }
        Ok(r)
    }

    /// Reads the parameters of a POST kick-off (a `Parameters` resource).
    pub fn from_parameters(level: ExportLevel, body: &Value) -> Result<ExportRequest, ExportError> {
        let params = Parameters::from_value(body).map_err(ExportError::Parameters)?;
        let mut r = ExportRequest {
            level,
            ..Default::default()
        };
        for (i, p) in params.parameter.iter().enumerate() {
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
            r.add(&p.name, text)?;
        }
        Ok(r)
    }

    fn add(&mut self, name: &str, value: &str) -> Result<(), ExportError> {
        match name {
            "_outputFormat" => self.output_format = Some(value.to_string()),
            "_since" => self.since = Some(value.to_string()),
            "_type" => self.types.extend(comma_list(value)),
            "_typeFilter" => self.type_filters.extend(type_filters(value)),
            "_elements" => self.elements.extend(comma_list(value)),
            "patient" => {
                for p in comma_list(value) {
                    self.patients.push(patient_id(&p)?);
                }
            }
            _ => {}
        }
        Ok(())
    }
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
