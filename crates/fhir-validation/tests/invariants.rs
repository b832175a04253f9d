//! Invariants evaluated as the HL7 Java validator evaluates them: an expression whose
//! result is empty fails, while type and string tests of an empty input are false.

use fhir_validation::{ValidationOptions, Validator};
use serde_json::json;

fn narrative() -> serde_json::Value {
    json!({"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"})
}

#[test]
fn an_empty_result_fails_the_invariant() {
    let v = Validator::r4();
    // per-1: start <= end is empty when the precisions differ and agree as far as both go.
    let encounter = |start: &str, end: &str| {
        json!({"resourceType": "Encounter", "text": narrative(), "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "period": {"start": start, "end": end}})
    };
    let r = v.validate(
        &encounter("2023-06-21", "2023-06-21T06:20:00Z"),
        &ValidationOptions::default(),
    );
    assert!(
        r.errors()
            .any(|i| i.message.contains("per-1") && i.expression == "Encounter.period"),
        "{:#?}",
        r.issues
    );
    let r = v.validate(
        &encounter("2023-06-20", "2023-06-21T06:20:00Z"),
        &ValidationOptions::default(),
    );
    assert!(!r.has_errors(), "{:#?}", r.issues);
}

#[test]
fn tests_of_absent_values_are_false() {
    let v = Validator::r4();
    // ref-1 on a Reference with only an identifier; ras-2 on a prediction without a
    // probability.
    let risk = json!({"resourceType": "RiskAssessment", "text": narrative(), "status": "final",
        "subject": {"identifier": {"value": "1"}}, "prediction": [{"outcome": {"text": "x"}}]});
    let r = v.validate(&risk, &ValidationOptions::default());
    assert!(!r.has_errors(), "{:#?}", r.issues);
}
