//! The kick-off request of an import: the NDJSON inputs (resource type and URL each),
//! read from a `Parameters` body (HAPI FHIR's `$import`: `inputFormat`, `inputSource`,
//! `storageDetail`, repeated `input` with parts `type` and `url`) or from the Bulk Data
//! Import draft's JSON manifest (`{"inputFormat", "inputSource", "input": [{"type",
//! "url"}]}`). Stored with the job as JSON, so a resumed job reads the same inputs.

use fhir_model::Definitions;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{bad, ImportError};
use crate::validation::Strictness;

/// The most inputs one kick-off may name.
pub const MAX_INPUTS: usize = 1000;

/// The NDJSON media types accepted as `inputFormat`.
const NDJSON: [&str; 3] = ["application/fhir+ndjson", "application/ndjson", "ndjson"];

/// One NDJSON file to load: every line a resource of `res_type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportInput {
    #[serde(rename = "type")]
    pub res_type: String,
    pub url: String,
}

/// A checked kick-off request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRequest {
    pub inputs: Vec<ImportInput>,
    /// `inputSource`, reported back in the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_source: Option<String>,
    /// The client that asked (when authentication is on): only it may see the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// How lines are validated: as the kick-off's `Prefer: handling` asks, like any
    /// write (`lenient`: not validated, only their structure checked).
    #[serde(default)]
    pub strictness: Strictness,
}

impl ImportRequest {
    /// Reads a kick-off body: a `Parameters` resource or the draft's JSON manifest.
    pub fn from_body(defs: &Definitions, body: &Value) -> Result<ImportRequest, ImportError> {
        let request = match body.get("resourceType").and_then(Value::as_str) {
            Some("Parameters") => from_parameters(body)?,
            Some(other) => {
                return Err(bad(
                    format!("$import takes a Parameters resource, not a {other}"),
                    "resourceType",
                ))
            }
            None if body.is_object() => from_manifest(body)?,
            None => return Err(bad("the body must be a JSON object", "")),
        };
        request.check(defs)?;
        Ok(request)
    }

    fn check(&self, defs: &Definitions) -> Result<(), ImportError> {
        if self.inputs.is_empty() {
            return Err(bad(
                "$import needs at least one input (type and url)",
                "input",
            ));
        }
        if self.inputs.len() > MAX_INPUTS {
            return Err(bad(
                format!("$import takes at most {MAX_INPUTS} inputs per request"),
                "input",
            ));
        }
        for (i, input) in self.inputs.iter().enumerate() {
            if !defs.is_resource_type(&input.res_type) {
                return Err(bad(
                    format!("input type '{}' is not a resource type", input.res_type),
                    format!("input[{i}].type"),
                ));
            }
            if input.url.is_empty() {
                return Err(bad("input url is empty", format!("input[{i}].url")));
            }
        }
        Ok(())
    }
}

fn check_format(format: Option<&str>, at: &str) -> Result<(), ImportError> {
    match format {
        None => Ok(()),
        Some(f) if NDJSON.contains(&f.split(';').next().unwrap_or("").trim()) => Ok(()),
        Some(f) => Err(bad(
            format!("inputFormat '{f}' is not supported; use application/fhir+ndjson"),
            at,
        )),
    }
}

/// The value of a `Parameters.parameter` (or part) of a primitive type.
fn primitive(p: &Value) -> Option<&str> {
    p.as_object()?
        .iter()
        .find(|(k, _)| k.starts_with("value"))
        .and_then(|(_, v)| v.as_str())
}

fn from_parameters(body: &Value) -> Result<ImportRequest, ImportError> {
    let mut request = ImportRequest::default();
    let params = body.get("parameter").and_then(Value::as_array);
    for (i, p) in params.into_iter().flatten().enumerate() {
        let at = format!("Parameters.parameter[{i}]");
        match p.get("name").and_then(Value::as_str) {
            Some("inputFormat") => check_format(primitive(p), &at)?,
            Some("inputSource") => request.input_source = primitive(p).map(str::to_string),
            Some("storageDetail") => storage_detail(parts(p), &at)?,
            Some("input") => request.inputs.push(input_of_parts(parts(p), &at)?),
            Some(other) => {
                return Err(bad(
                    format!("$import has no parameter '{other}'"),
                    format!("{at}.name"),
                ))
            }
            None => return Err(bad("a parameter has no name", at)),
        }
    }
    Ok(request)
}

fn parts(p: &Value) -> impl Iterator<Item = &Value> {
    p.get("part")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn input_of_parts<'a>(
    parts: impl Iterator<Item = &'a Value>,
    at: &str,
) -> Result<ImportInput, ImportError> {
    let (mut res_type, mut url) = (None, None);
    for part in parts {
        match part.get("name").and_then(Value::as_str) {
            Some("type") => res_type = primitive(part),
            Some("url") => url = primitive(part),
            // Informational parts of the draft and of HAPI that change nothing here.
            Some("inputDetails" | "etag" | "count") => {}
            other => {
                return Err(bad(
                    format!("input has no part '{}'", other.unwrap_or("")),
                    format!("{at}.part"),
                ))
            }
        }
    }
    Ok(ImportInput {
        res_type: res_type
            .ok_or_else(|| bad("input needs a part 'type' (the resource type)", at))?
            .to_string(),
        url: url
            .ok_or_else(|| bad("input needs a part 'url' (where the NDJSON file is)", at))?
            .to_string(),
    })
}

/// `storageDetail`: only plain reads (`https`, `file`) are supported; credentials for the
/// input host are not taken (they would be stored with the job), so a protected host
/// must use URLs that carry their own authorisation (pre-signed URLs).
fn storage_detail<'a>(parts: impl Iterator<Item = &'a Value>, at: &str) -> Result<(), ImportError> {
    for part in parts {
        match part.get("name").and_then(Value::as_str) {
            Some("type") => match primitive(part) {
                Some("https" | "http" | "file") | None => {}
                Some(t) => {
                    return Err(bad(
                        format!("storageDetail type '{t}' is not supported (https or file)"),
                        format!("{at}.part"),
                    ))
                }
            },
            Some("maxBatchResourceCount") => {}
            other => {
                return Err(bad(
                    format!(
                        "storageDetail '{}' is not supported: inputs are read without credentials (use pre-signed URLs)",
                        other.unwrap_or("")
                    ),
                    format!("{at}.part"),
                ))
            }
        }
    }
    Ok(())
}

fn from_manifest(body: &Value) -> Result<ImportRequest, ImportError> {
    check_format(
        body.get("inputFormat").and_then(Value::as_str),
        "inputFormat",
    )?;
    let mut request = ImportRequest {
        input_source: body
            .get("inputSource")
            .and_then(Value::as_str)
            .map(str::to_string),
        ..Default::default()
    };
    let Some(inputs) = body.get("input").and_then(Value::as_array) else {
        return Err(bad("the import manifest needs an 'input' array", "input"));
    };
    for (i, input) in inputs.iter().enumerate() {
        let field = |name: &str| {
            input
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| bad(format!("input needs '{name}'"), format!("input[{i}]")))
        };
        request.inputs.push(ImportInput {
            res_type: field("type")?,
            url: field("url")?,
        });
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn defs() -> &'static Definitions {
        Definitions::r4()
    }

    #[test]
    fn parameters_with_inputs() {
        let body = json!({"resourceType": "Parameters", "parameter": [
            {"name": "inputFormat", "valueCode": "application/fhir+ndjson"},
            {"name": "inputSource", "valueUri": "https://partner.example/"},
            {"name": "storageDetail", "part": [{"name": "type", "valueCode": "https"}]},
            {"name": "input", "part": [
                {"name": "type", "valueCode": "Patient"},
                {"name": "url", "valueUri": "https://partner.example/Patient.ndjson"}]}
        ]});
        let r = ImportRequest::from_body(defs(), &body).unwrap();
        assert_eq!(r.inputs[0].res_type, "Patient");
        assert_eq!(r.input_source.as_deref(), Some("https://partner.example/"));
    }

    #[test]
    fn manifest_form() {
        let body = json!({"inputFormat": "application/fhir+ndjson",
            "input": [{"type": "Observation", "url": "file:///data/obs.ndjson"}]});
        let r = ImportRequest::from_body(defs(), &body).unwrap();
        assert_eq!(r.inputs[0].url, "file:///data/obs.ndjson");
    }

    #[test]
    fn refusals_name_the_parameter() {
        let cases = [
            (json!({"resourceType": "Parameters"}), "input"),
            (
                json!({"resourceType": "Parameters", "parameter": [{"name": "inputFormat", "valueCode": "text/csv"}]}),
                "Parameters.parameter[0]",
            ),
            (
                json!({"resourceType": "Parameters", "parameter": [{"name": "input", "part": [{"name": "type", "valueCode": "Nope"}, {"name": "url", "valueUri": "file:///x"}]}]}),
                "input[0].type",
            ),
            (
                json!({"resourceType": "Parameters", "parameter": [{"name": "input", "part": [{"name": "url", "valueUri": "file:///x"}]}]}),
                "Parameters.parameter[0]",
            ),
            (
                json!({"resourceType": "Parameters", "parameter": [{"name": "storageDetail", "part": [{"name": "credentialHttpBasic", "valueString": "a:b"}]}]}),
                "Parameters.parameter[0].part",
            ),
        ];
        for (body, at) in cases {
            match ImportRequest::from_body(defs(), &body) {
                Err(ImportError::Parameters { at: got, .. }) => assert_eq!(got, at, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }
}
