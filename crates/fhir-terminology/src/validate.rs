//! `CodeSystem/$validate-code` and `ValueSet/$validate-code`: whether a code (with its
//! system), a coding or a codeableConcept (any of its codings) is in the code system or
//! value set, and whether the display given is the concept's. `result` is false, with
//! a `message`, for an unknown code, a code outside the value set, or a wrong display;
//! `display` is the concept's display when the code is known.
//!
//! Beside the R4 outputs (`result`, `message`, `display`), the answer carries what
//! HL7's terminology servers give (the terminology ecosystem's test cases): `code`,
//! `system`, `version` of the coding checked, and `issues`, an OperationOutcome whose
//! issue says what is wrong, where (`code`, `Coding.code`,
//! `CodeableConcept.coding[n].code`) and its `tx-issue-type` (`invalid-code`,
//! `invalid-display`, `not-in-vs`). An unknown code of a `fragment` is a warning there,
//! with no `message`, and `result` stays true.

use fhir_model::terminology::{CodeSystemDef, ExpandedCode, Terminology};
use serde_json::{json, Value};

use crate::lookup::{self, concept};
use crate::{codings, invalid, not_found, param, parameters, Coding, Params, TxError};

/// The `tx-issue-type` code system of HL7's terminology tooling.
const TX_ISSUE_TYPE: &str = "http://hl7.org/fhir/tools/CodeSystem/tx-issue-type";

/// What is wrong (or worth saying) about one coding.
struct Issue {
    severity: &'static str,
    /// The OperationOutcome issue type.
    code: &'static str,
    /// The `tx-issue-type` code.
    tx: &'static str,
    text: String,
    /// The element it is about, within the coding (`code`, `display`).
    element: &'static str,
}

/// The outcome for one coding: valid, what was checked, the display to report, and
/// the issue found.
#[derive(Default)]
struct Checked {
    valid: bool,
    code: Option<String>,
    system: Option<String>,
    version: Option<String>,
    display: Option<String>,
    issue: Option<Issue>,
}

impl Checked {
    fn of(coding: &Coding) -> Checked {
        Checked {
            code: coding.code.clone(),
            system: coding.system.clone(),
            ..Default::default()
        }
    }

    fn failed(mut self, issue: Issue) -> Checked {
        self.valid = false;
        self.issue = Some(issue);
        self
    }
}

/// Where a coding's `element` is, as the request gave the coding (`from`: `code`,
/// `coding` or `codeableConcept`, the `n`th coding).
fn location(from: &str, n: usize, element: &str) -> String {
    match from {
        "coding" => format!("Coding.{element}"),
        "codeableConcept" => format!("CodeableConcept.coding[{n}].{element}"),
        _ => element.to_string(),
    }
}

fn answer(checked: Vec<Checked>, from: &str) -> Value {
    // A codeableConcept is valid when one of its codings is.
    let best = checked.iter().position(|c| c.valid).unwrap_or(0);
    let c = &checked[best];
    let mut out = Vec::new();
    if let Some(code) = &c.code {
        out.push(param("code", "Code", code.clone()));
    }
    if let Some(d) = &c.display {
        out.push(param("display", "String", d.clone()));
    }
    let issues: Vec<Value> = checked
        .iter()
        .enumerate()
        .filter(|(n, _)| !c.valid || *n == best)
        .filter_map(|(n, k)| k.issue.as_ref().map(|i| (n, i)))
        .map(|(n, i)| {
            let at = location(from, n, i.element);
            json!({"severity": i.severity, "code": i.code,
                "details": {"coding": [{"system": TX_ISSUE_TYPE, "code": i.tx}], "text": i.text},
                "location": [at], "expression": [at]})
        })
        .collect();
    if !issues.is_empty() {
        out.push(json!({"name": "issues", "resource":
            {"resourceType": "OperationOutcome", "issue": issues}}));
    }
    if !c.valid {
        let texts: Vec<&str> = checked
            .iter()
            .filter_map(|k| k.issue.as_ref())
            .filter(|i| i.severity == "error")
            .map(|i| i.text.as_str())
            .collect();
        if !texts.is_empty() {
            out.push(param("message", "String", texts.join("; ")));
        }
    }
    out.push(param("result", "Boolean", c.valid));
    if let Some(s) = &c.system {
        out.push(param("system", "Uri", s.clone()));
    }
    if let (true, Some(v)) = (c.valid, &c.version) {
        out.push(param("version", "String", v.clone()));
    }
    parameters(out)
}

fn check_display(
    mut checked: Checked,
    coding: &Coding,
    display: Option<&str>,
    code: &str,
) -> Checked {
    let shown = display.unwrap_or(code);
    checked.display = Some(shown.to_string());
    match coding.display.as_deref() {
        Some(given) if given != shown => checked.failed(Issue {
            severity: "error",
            code: "invalid",
            tx: "invalid-display",
            text: format!(
                "Wrong Display Name '{given}' for {}. Valid display is '{shown}'",
                coding.label()
            ),
            element: "display",
        }),
        _ => {
            checked.valid = true;
            checked
        }
    }
}

/// `CodeSystem/$validate-code`; `instance_url` is the code system of an instance-level
/// call (else `url`, or the coding's system).
pub fn code_system(
    t: &Terminology,
    p: &Params,
    instance_url: Option<&str>,
) -> Result<Value, TxError> {
    let (found, from) = codings(p, "url")?;
    let url = instance_url
        .or(p.text("url"))
        .or(found[0].system.as_deref());
    let cs = lookup::code_system(t, url, "url")?;
    let checked = found
        .iter()
        .map(|coding| {
            let mut checked = Checked::of(coding);
            if coding.system.as_deref().is_some_and(|s| s != cs.url) {
                return checked.failed(Issue {
                    severity: "error",
                    code: "code-invalid",
                    tx: "invalid-code",
                    text: format!(
                        "The system {} is not the code system {}",
                        coding.label(),
                        cs.url
                    ),
                    element: "system",
                });
            }
            checked.system = Some(cs.url.clone());
            checked.version = cs.version.clone();
            let code = coding.code.as_deref().unwrap_or("");
            match concept(cs, code) {
                Some(c) => check_display(checked, coding, c.display.as_deref(), &c.code),
                None => unknown(checked, cs, code),
            }
        })
        .collect();
    Ok(answer(checked, &from))
}

/// A code the code system does not have. A `fragment` holds only some of its
/// system's codes: the code may be valid in another fragment, so it is not refused
/// (as HL7's terminology servers answer: result true, with a warning).
fn unknown(checked: Checked, cs: &CodeSystemDef, code: &str) -> Checked {
    let version = cs
        .version
        .as_deref()
        .map(|v| format!(" version '{v}'"))
        .unwrap_or_default();
    if cs.content == "fragment" {
        let mut checked = checked.failed(Issue {
            severity: "warning",
            code: "code-invalid",
            tx: "invalid-code",
            text: format!(
                "Unknown Code '{code}' in the CodeSystem '{}'{version} - note that the code system is labeled as a fragment, so the code may be valid in some other fragment",
                cs.url
            ),
            element: "code",
        });
        checked.valid = true;
        return checked;
    }
    checked.failed(Issue {
        severity: "error",
        code: "code-invalid",
        tx: "invalid-code",
        text: format!(
            "Unknown code '{code}' in the CodeSystem '{}'{version}",
            cs.url
        ),
        element: "code",
    })
}

/// The codes of a value set, or why they cannot be had here.
pub(crate) fn expansion(
    t: &Terminology,
    url: &str,
    at: &str,
) -> Result<std::sync::Arc<Vec<ExpandedCode>>, TxError> {
    use fhir_model::terminology::ExpansionError as E;
    t.expand_shared(url).map_err(|e| match e {
        E::UnknownValueSet(_) => {
            not_found(format!("ValueSet {url} is not known to this server"), at)
        }
        other => TxError::NotSupported {
            message: format!("ValueSet {url} cannot be expanded here: {other}"),
            param: at.into(),
        },
    })
}

/// `ValueSet/$validate-code`; `instance_url` is the value set of an instance-level
/// call (else `url`).
pub fn value_set(
    t: &Terminology,
    p: &Params,
    instance_url: Option<&str>,
) -> Result<Value, TxError> {
    let url = instance_url
        .or(p.text("url"))
        .ok_or_else(|| invalid("the value set is needed (url)", "url"))?;
    let (found, from) = codings(p, "system")?;
    let codes = expansion(t, url, "url")?;
    let checked = found
        .iter()
        .map(|coding| {
            let mut checked = Checked::of(coding);
            let code = coding.code.as_deref().unwrap_or("");
            let hit = codes
                .iter()
                .find(|c| c.code == code && coding.system.as_deref().is_none_or(|s| s == c.system));
            match hit {
                Some(c) => {
                    // The code system's display wins over the value set's.
                    let cs = t.code_system(&c.system);
                    let display = cs
                        .and_then(|cs| concept(cs, code))
                        .and_then(|k| k.display.clone())
                        .or_else(|| c.display.clone());
                    checked.system = Some(c.system.clone());
                    checked.version = cs.and_then(|cs| cs.version.clone());
                    check_display(checked, coding, display.as_deref(), code)
                }
                None => checked.failed(Issue {
                    severity: "error",
                    code: "code-invalid",
                    tx: "not-in-vs",
                    text: format!(
                        "The provided code '{}' is not in the value set '{url}'",
                        coding.label()
                    ),
                    element: "code",
                }),
            }
        })
        .collect();
    Ok(answer(checked, &from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{params, r4};
    use serde_json::json;

    fn result(v: &Value) -> (bool, Option<String>) {
        let ps = v["parameter"].as_array().unwrap();
        let get = |n: &str| ps.iter().find(|p| p["name"] == n);
        (
            get("result").unwrap()["valueBoolean"].as_bool().unwrap(),
            get("message")
                .and_then(|m| m["valueString"].as_str())
                .map(str::to_string),
        )
    }

    const GENDER: &str = "http://hl7.org/fhir/administrative-gender";

    #[test]
    fn code_system_codes_and_displays() {
        let ok = code_system(
            r4(),
            &params(&[("url", GENDER), ("code", "male"), ("display", "Male")]),
            None,
        )
        .unwrap();
        assert_eq!(result(&ok), (true, None));
        let wrong = code_system(
            r4(),
            &params(&[("url", GENDER), ("code", "male"), ("display", "Man")]),
            None,
        )
        .unwrap();
        let (valid, message) = result(&wrong);
        assert!(!valid && message.unwrap().contains("Valid display is 'Male'"));
        let unknown = code_system(r4(), &params(&[("url", GENDER), ("code", "x")]), None).unwrap();
        assert!(result(&unknown).1.unwrap().contains("Unknown code 'x'"));
    }

    #[test]
    fn unknown_codes_of_a_fragment_may_be_valid_elsewhere() {
        let url = "http://example.org/cs/fragment";
        let cs =
            json!({"url": url, "version": "1", "content": "fragment", "concept": [{"code": "a"}]});
        let mut t = Terminology::default();
        t.code_systems
            .insert(url.into(), serde_json::from_value(cs).unwrap());
        let known = code_system(&t, &params(&[("url", url), ("code", "a")]), None).unwrap();
        assert_eq!(result(&known), (true, None));
        let other = code_system(&t, &params(&[("url", url), ("code", "b")]), None).unwrap();
        // Valid, with a warning and no message (as HL7's terminology servers answer).
        assert_eq!(result(&other), (true, None));
        let issue = &other["parameter"][1]["resource"]["issue"][0];
        assert_eq!(other["parameter"][1]["name"], "issues", "{other}");
        assert_eq!(issue["severity"], "warning");
        assert_eq!(issue["details"]["coding"][0]["code"], "invalid-code");
        assert_eq!(issue["expression"][0], "code");
        assert_eq!(
            issue["details"]["text"],
            format!("Unknown Code 'b' in the CodeSystem '{url}' version '1' - note that the code system is labeled as a fragment, so the code may be valid in some other fragment")
        );
        let names: Vec<&str> = other["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["code", "issues", "result", "system", "version"]);
        // SNOMED CT is in the core package by description only.
        let e = code_system(
            r4(),
            &params(&[("url", "http://snomed.info/sct"), ("code", "1")]),
            None,
        )
        .unwrap_err();
        assert!(matches!(e, TxError::NotSupported { .. }), "{e:?}");
    }

    #[test]
    fn value_set_membership_by_code_coding_and_concept() {
        let vs = "http://hl7.org/fhir/ValueSet/administrative-gender";
        let v = value_set(
            r4(),
            &params(&[("url", vs), ("system", GENDER), ("code", "other")]),
            None,
        )
        .unwrap();
        assert!(result(&v).0);
        let cc = json!({"coding": [{"system": "http://loinc.org", "code": "1"}, {"system": GENDER, "code": "female"}]});
        let p = Params(vec![
            ("url".into(), json!(vs)),
            ("codeableConcept".into(), cc),
        ]);
        assert!(result(&value_set(r4(), &p, None).unwrap()).0);
        let v = value_set(
            r4(),
            &params(&[("url", vs), ("system", GENDER), ("code", "nope")]),
            None,
        )
        .unwrap();
        assert!(result(&v).1.unwrap().contains("is not in the value set"));
        let e = value_set(
            r4(),
            &params(&[("url", "http://x/vs"), ("code", "a")]),
            None,
        )
        .unwrap_err();
        assert!(matches!(e, TxError::NotFound { .. }));
    }
}
