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
use crate::{codings, not_found, param, parameters, Coding, Params, TxError};

/// The `tx-issue-type` code system of HL7's terminology tooling.
const TX_ISSUE_TYPE: &str = "http://hl7.org/fhir/tools/CodeSystem/tx-issue-type";

mod value_set;

pub use value_set::{value_set, value_set_with};

/// What is wrong (or worth saying) about one coding.
struct Issue {
    severity: &'static str,
    /// The OperationOutcome issue type.
    code: &'static str,
    /// The `tx-issue-type` code.
    tx: &'static str,
    text: String,
    /// The element it is about, within the coding (`code`, `display`, `system`; empty
    /// for the coding itself); `None` for an issue about the request as a whole.
    element: Option<&'static str>,
}

impl Issue {
    fn error(code: &'static str, tx: &'static str, text: String, element: &'static str) -> Issue {
        Issue {
            severity: "error",
            code,
            tx,
            text,
            element: Some(element),
        }
    }
}

/// The outcome for one coding: valid, what was checked, the display to report, and
/// the issues found.
#[derive(Default)]
struct Checked {
    valid: bool,
    /// The code is the code system's (or the value set's), whatever its display.
    member: bool,
    code: Option<String>,
    system: Option<String>,
    version: Option<String>,
    display: Option<String>,
    /// The code as its (case-insensitive) code system writes it, when it differs.
    normalized: Option<String>,
    inactive: bool,
    /// A code system (`url` or `url|version`) this server does not have.
    unknown_system: Option<String>,
    issues: Vec<Issue>,
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
        self.issues.push(issue);
        self
    }
}

/// Where a coding's `element` is, as the request gave the coding (`from`: `code`,
/// `coding` or `codeableConcept`, the `n`th coding).
fn location(from: &str, n: usize, element: &str) -> String {
    let within = |base: String| match element {
        "" => base,
        e => format!("{base}.{e}"),
    };
    match from {
        "coding" => within("Coding".into()),
        "codeableConcept" => within(format!("CodeableConcept.coding[{n}]")),
        _ => element.to_string(),
    }
}

fn outcome_issue(i: &Issue, at: Option<String>) -> Value {
    let mut v = json!({"severity": i.severity, "code": i.code,
        "details": {"coding": [{"system": TX_ISSUE_TYPE, "code": i.tx}], "text": i.text}});
    if let Some(at) = at {
        v["location"] = json!([at]);
        v["expression"] = json!([at]);
    }
    v
}

/// `message`: what the issues say, in the order of their texts (as HL7's terminology
/// servers write it); only when there is something wrong — of a valid code, only a
/// wrong display (a warning under lenient display validation).
fn message(issues: &[&Issue], valid: bool) -> Option<String> {
    let mut texts: Vec<&str> = issues
        .iter()
        .filter(|i| matches!(i.severity, "error" | "warning") && i.tx != "code-rule")
        .filter(|i| !valid || i.tx == "invalid-display")
        .map(|i| i.text.as_str())
        .collect();
    texts.sort_unstable();
    texts.dedup();
    (!texts.is_empty()).then(|| texts.join("; "))
}

/// The answer for the codings checked. A codeableConcept is valid when one of its
/// codings is: then that coding is reported (`code`, `system`, `version`,
/// `display`); otherwise the concept is (`vs_label`: the value set, for the issue
/// that no coding was valid).
fn answer(
    checked: Vec<Checked>,
    from: &str,
    given: Option<&Value>,
    vs_label: Option<&str>,
    notes: &[Issue],
) -> Value {
    // The coding reported: the first valid one, else the first that is at least a
    // member (its display is wrong).
    let best = checked
        .iter()
        .position(|c| c.valid)
        .or_else(|| checked.iter().position(|c| c.member));
    let mut out = Vec::new();
    let mut issues: Vec<(Option<String>, &Issue)> = Vec::new();
    let concept_failed = from == "codeableConcept" && best.is_none();
    let none_valid = vs_label.map(|vs| Issue {
        severity: "error",
        code: "code-invalid",
        tx: "not-in-vs",
        text: format!("No valid coding was found for the value set '{vs}'"),
        element: None,
    });
    // "No valid coding" when a coding was found outside the value set (not when
    // none could be checked, e.g. of an unknown code system version).
    let outside = checked
        .iter()
        .any(|c| c.issues.iter().any(|i| i.tx == "not-in-vs"));
    if concept_failed && outside {
        if let Some(i) = &none_valid {
            issues.push((None, i));
        }
    }
    for (n, k) in checked.iter().enumerate() {
        if best.is_some_and(|b| b != n) {
            continue;
        }
        for i in &k.issues {
            issues.push((i.element.map(|e| location(from, n, e)), i));
        }
    }
    issues.extend(notes.iter().map(|i| (None, i)));
    let shown = &checked[best.unwrap_or(0)];
    if !concept_failed {
        if let Some(code) = &shown.code {
            out.push(param("code", "Code", code.clone()));
        }
        if let Some(d) = &shown.display {
            out.push(param("display", "String", d.clone()));
        }
    }
    if from == "codeableConcept" {
        out.push(json!({"name": "codeableConcept",
            "valueCodeableConcept": concept_answer(given, &checked)}));
    }
    if shown.inactive && !concept_failed {
        out.push(param("inactive", "Boolean", true));
    }
    let rendered: Vec<Value> = issues
        .iter()
        .map(|(at, i)| {
            // Within a concept that failed, a coding outside the value set is only
            // information: the concept's issue says it.
            if concept_failed && i.tx == "not-in-vs" && i.element.is_some() {
                let info = Issue {
                    severity: "information",
                    code: i.code,
                    tx: "this-code-not-in-vs",
                    text: i.text.clone(),
                    element: i.element,
                };
                return outcome_issue(&info, at.clone());
            }
            outcome_issue(i, at.clone())
        })
        .collect();
    if !rendered.is_empty() {
        out.push(json!({"name": "issues", "resource":
            {"resourceType": "OperationOutcome", "issue": rendered}}));
    }
    let valid = checked.iter().any(|c| c.valid);
    let counted: Vec<&Issue> = issues
        .iter()
        .filter(|(_, i)| !(concept_failed && i.tx == "not-in-vs" && i.element.is_some()))
        .map(|(_, i)| *i)
        .collect();
    if let Some(m) = message(&counted, valid) {
        out.push(param("message", "String", m));
    }
    if let Some(n) = shown.normalized.as_ref().filter(|_| valid) {
        out.push(param("normalized-code", "Code", n.clone()));
    }
    out.push(param("result", "Boolean", valid));
    if !concept_failed {
        if let Some(s) = &shown.system {
            out.push(param("system", "Uri", s.clone()));
        }
        if let Some(v) = &shown.version {
            out.push(param("version", "String", v.clone()));
        }
    }
    let unknown = checked.iter().find_map(|c| c.unknown_system.clone());
    if let Some(u) = unknown {
        out.push(param("x-caused-by-unknown-system", "Canonical", u));
    }
    parameters(out)
}

/// The codeableConcept answered: as given, its valid codings completed with their
/// version and display.
fn concept_answer(given: Option<&Value>, checked: &[Checked]) -> Value {
    let mut cc = given.cloned().unwrap_or_else(|| json!({}));
    if let Some(codings) = cc.get_mut("coding").and_then(Value::as_array_mut) {
        for (coding, k) in codings.iter_mut().zip(checked) {
            if !k.valid {
                continue;
            }
            if let (None, Some(v)) = (coding.get("version"), &k.version) {
                coding["version"] = json!(v);
            }
            if let (None, Some(d)) = (coding.get("display"), &k.display) {
                coding["display"] = json!(d);
            }
        }
    }
    cc
}

/// How a wrong display is reported: an error, or a warning under
/// `mode=lenient-display-validation` (or `lenient-display-validation=true`).
fn display_severity(p: &Params) -> &'static str {
    let lenient = p.texts("mode").contains(&"lenient-display-validation")
        || p.text("lenient-display-validation") == Some("true");
    if lenient {
        "warning"
    } else {
        "error"
    }
}

/// Checks the display given against the concept's (its display, or in
/// `displayLanguage` its designation in that language too).
fn check_display(
    mut checked: Checked,
    coding: &Coding,
    concept: Option<&fhir_model::terminology::Concept>,
    fallback: Option<&str>,
    p: &Params,
) -> Checked {
    let code = coding.code.as_deref().unwrap_or("");
    let own = concept.and_then(|c| c.display.as_deref()).or(fallback);
    let language = p.text("displayLanguage");
    // A list of languages (as an Accept-Language header gives them): the first one
    // the concept has a designation in.
    let localized = language.and_then(|list| {
        list.split(',')
            .map(|l| l.split(';').next().unwrap_or("").trim())
            .filter(|l| !l.is_empty() && *l != "*")
            .find_map(|l| concept.and_then(|c| c.designation_in(l)))
    });
    let shown = localized.or(own).unwrap_or(code);
    checked.display = Some(shown.to_string());
    checked.valid = true;
    // Without a language asked for, any of the concept's designations is a valid
    // display (a supplement's too).
    let designated = |given: &str| {
        language.is_none()
            && concept.is_some_and(|c| c.designations.iter().any(|d| d.value == given))
    };
    match coding.display.as_deref() {
        Some(given) if Some(given) != own && Some(given) != localized && !designated(given) => {
            let severity = display_severity(p);
            checked.valid = severity != "error";
            checked.issues.push(Issue {
                severity,
                code: "invalid",
                tx: "invalid-display",
                text: format!(
                    "Wrong Display Name '{given}' for {}. Valid display is '{shown}' (for the language(s) '{}')",
                    coding.label(),
                    language.unwrap_or("--")
                ),
                element: Some("display"),
            });
            checked
        }
        _ => checked,
    }
}

/// `CodeSystem/$validate-code`; `instance_url` is the code system of an instance-level
/// call (else `url`, or the coding's system).
pub fn code_system(
    t: &Terminology,
    p: &Params,
    instance_url: Option<&str>,
) -> Result<Value, TxError> {
    // The code system is `url` (R4); HL7's terminology servers take `system` too.
    let named = if p.text("url").is_some() {
        "url"
    } else {
        "system"
    };
    let (found, from) = codings(p, named)?;
    let url = instance_url
        .or(p.text(named))
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
                    element: Some("system"),
                });
            }
            checked.system = Some(cs.url.clone());
            checked.version = cs.version.clone();
            let code = coding.code.as_deref().unwrap_or("");
            match concept(cs, code) {
                Some(c) => {
                    checked.member = true;
                    checked.inactive = c.inactive();
                    check_display(checked, coding, Some(c), None, p)
                }
                None => unknown(checked, cs, code),
            }
        })
        .collect();
    Ok(answer(checked, &from, p.json("codeableConcept"), None, &[]))
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
            element: Some("code"),
        });
        checked.valid = true;
        return checked;
    }
    // No version is reported for a code the version does not have.
    let checked = Checked {
        version: None,
        ..checked
    };
    checked.failed(Issue::error(
        "code-invalid",
        "invalid-code",
        format!(
            "Unknown code '{code}' in the CodeSystem '{}'{version}",
            cs.url
        ),
        "code",
    ))
}

/// The codes of a value set, or why they cannot be had here.
pub(crate) fn expansion(
    t: &Terminology,
    url: &str,
    at: &str,
) -> Result<std::sync::Arc<Vec<ExpandedCode>>, TxError> {
    t.expand_shared(url)
        .map_err(|e| expansion_failed(url, at, e))
}

/// Why value set `url` cannot be expanded, as an operation's error.
pub(crate) fn expansion_failed(
    url: &str,
    at: &str,
    e: fhir_model::terminology::ExpansionError,
) -> TxError {
    use fhir_model::terminology::ExpansionError as E;
    match e {
        E::UnknownValueSet(_) => {
            // HL7's terminology servers' words.
            not_found(
                format!("A definition for the value Set '{url}' could not be found"),
                at,
            )
        }
        other => TxError::NotSupported {
            message: format!("ValueSet {url} cannot be expanded here: {other}"),
            param: at.into(),
        },
    }
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
    fn a_value_set_over_a_missing_code_system_cannot_say_what_it_holds() {
        let (known, vs) = ("http://example.org/known", "http://example.org/vs/mixed");
        let mut t = Terminology::default();
        let cs = json!({"url": known, "content": "complete", "concept": [{"code": "a"}]});
        t.code_systems
            .insert(known.into(), serde_json::from_value(cs).unwrap());
        let v = json!({"resourceType": "ValueSet", "url": vs, "status": "active", "compose":
            {"include": [{"system": known}, {"system": "http://example.org/missing"}]}});
        t.value_sets
            .insert(vs.into(), serde_json::from_value(v).unwrap());
        for system in [known, "http://example.org/missing"] {
            let a = value_set(
                &t,
                &params(&[("url", vs), ("system", system), ("code", "a")]),
                None,
            )
            .unwrap();
            let (valid, message) = result(&a);
            let message = message.unwrap();
            assert!(!valid, "{a}");
            assert!(
                message.contains("Unable to check whether the code is in the value set"),
                "{a}"
            );
            assert!(!message.contains("was not found in the value set"), "{a}");
            assert!(a.to_string().contains("x-caused-by-unknown-system"), "{a}");
        }
    }

    #[test]
    fn a_designation_is_a_valid_display_unless_another_language_is_asked() {
        let t = crate::expand::tests::hospital();
        let cs = "http://example.org/cs/lang";
        let check = |extra: &[(&str, &str)]| {
            let mut p = vec![("url", cs), ("code", "fever"), ("display", "Fieber")];
            p.extend_from_slice(extra);
            result(&code_system(&t, &params(&p), None).unwrap())
        };
        assert_eq!(check(&[]), (true, None));
        assert_eq!(check(&[("displayLanguage", "de")]), (true, None));
        let (valid, message) = check(&[("displayLanguage", "en")]);
        assert!(!valid && message.unwrap().contains("Valid display is 'Fever'"));
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
        assert!(result(&v)
            .1
            .unwrap()
            .contains("was not found in the value set"));
        let e = value_set(
            r4(),
            &params(&[("url", "http://x/vs"), ("code", "a")]),
            None,
        )
        .unwrap_err();
        assert!(matches!(e, TxError::NotFound { .. }));
    }
}
