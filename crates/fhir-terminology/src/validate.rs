//! `CodeSystem/$validate-code` and `ValueSet/$validate-code`: whether a code (with its
//! system), a coding or a codeableConcept (any of its codings) is in the code system or
//! value set, and whether the display given is the concept's. `result` is false, with
//! a `message`, for an unknown code, a code outside the value set, or a wrong display;
//! `display` is the concept's display when the code is known.

use fhir_model::terminology::{CodeSystemDef, ExpandedCode, Terminology};
use serde_json::Value;

use crate::lookup::{self, concept};
use crate::{codings, invalid, not_found, param, parameters, Coding, Params, TxError};

/// The outcome for one coding: valid, the display to report, and a message.
struct Checked {
    valid: bool,
    display: Option<String>,
    message: Option<String>,
}

fn answer(checked: Vec<Checked>) -> Value {
    // A codeableConcept is valid when one of its codings is.
    let best = checked.iter().position(|c| c.valid).unwrap_or(0);
    let c = &checked[best];
    let mut out = vec![param("result", "Boolean", c.valid)];
    if let Some(m) = &c.message {
        out.push(param("message", "String", m.clone()));
    }
    if let Some(d) = &c.display {
        out.push(param("display", "String", d.clone()));
    }
    parameters(out)
}

fn check_display(coding: &Coding, display: Option<&str>, code: &str) -> Checked {
    let shown = display.unwrap_or(code);
    match coding.display.as_deref() {
        Some(given) if given != shown => Checked {
            valid: false,
            display: Some(shown.to_string()),
            message: Some(format!(
                "Wrong Display Name '{given}' for {}. Valid display is '{shown}'",
                coding.label()
            )),
        },
        _ => Checked {
            valid: true,
            display: Some(shown.to_string()),
            message: None,
        },
    }
}

/// `CodeSystem/$validate-code`; `instance_url` is the code system of an instance-level
/// call (else `url`, or the coding's system).
pub fn code_system(
    t: &Terminology,
    p: &Params,
    instance_url: Option<&str>,
) -> Result<Value, TxError> {
    let (found, _) = codings(p, "url")?;
    let url = instance_url
        .or(p.text("url"))
        .or(found[0].system.as_deref());
    let cs = lookup::code_system(t, url, "url")?;
    let checked = found
        .iter()
        .map(|coding| {
            if coding.system.as_deref().is_some_and(|s| s != cs.url) {
                return Checked {
                    valid: false,
                    display: None,
                    message: Some(format!(
                        "The system {} is not the code system {}",
                        coding.label(),
                        cs.url
                    )),
                };
            }
            let code = coding.code.as_deref().unwrap_or("");
            match concept(cs, code) {
                Some(c) => check_display(coding, c.display.as_deref(), &c.code),
                None => unknown(cs, code),
            }
        })
        .collect();
    Ok(answer(checked))
}

/// A code the code system does not have. A `fragment` holds only some of its
/// system's codes: the code may be valid in another fragment, so it is not refused
/// (as HL7's terminology servers answer: result true, with the message).
fn unknown(cs: &CodeSystemDef, code: &str) -> Checked {
    let version = cs
        .version
        .as_deref()
        .map(|v| format!(" version '{v}'"))
        .unwrap_or_default();
    if cs.content == "fragment" {
        return Checked {
            valid: true,
            display: None,
            message: Some(format!(
                "Unknown Code '{code}' in the CodeSystem '{}'{version} - note that the code system is labeled as a fragment, so the code may be valid in some other fragment",
                cs.url
            )),
        };
    }
    Checked {
        valid: false,
        display: None,
        message: Some(format!(
            "Unknown code '{code}' in the CodeSystem '{}'{version}",
            cs.url
        )),
    }
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
    let (found, _) = codings(p, "system")?;
    let codes = expansion(t, url, "url")?;
    let checked = found
        .iter()
        .map(|coding| {
            let code = coding.code.as_deref().unwrap_or("");
            let hit = codes
                .iter()
                .find(|c| c.code == code && coding.system.as_deref().is_none_or(|s| s == c.system));
            match hit {
                Some(c) => {
                    // The code system's display wins over the value set's.
                    let display = t
                        .code_system(&c.system)
                        .and_then(|cs| concept(cs, code))
                        .and_then(|k| k.display.clone())
                        .or_else(|| c.display.clone());
                    check_display(coding, display.as_deref(), code)
                }
                None => Checked {
                    valid: false,
                    display: None,
                    message: Some(format!(
                        "The provided code '{}' is not in the value set '{url}'",
                        coding.label()
                    )),
                },
            }
        })
        .collect();
    Ok(answer(checked))
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
        let (valid, message) = result(&other);
        assert!(valid);
        assert_eq!(
            message.unwrap(),
            format!("Unknown Code 'b' in the CodeSystem '{url}' version '1' - note that the code system is labeled as a fragment, so the code may be valid in some other fragment")
        );
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
