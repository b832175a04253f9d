//! Codes without a terminology server: UCUM units are checked for syntax, and code
//! systems that are not available here are named once, as information.

use fhir_validation::{Severity, ValidationOptions, Validator};
use serde_json::json;

fn observation(value: serde_json::Value) -> serde_json::Value {
    json!({"resourceType": "Observation", "status": "final",
        "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"},
                            {"system": "http://loinc.org", "code": "3141-9"}]},
        "valueQuantity": value})
}

#[test]
fn ucum_units_are_checked_for_syntax() {
    let v = Validator::r4();
    let ok = observation(json!({"value": 70, "system": "http://unitsofmeasure.org", "code": "kg"}));
    let r = v.validate(&ok, &ValidationOptions::default());
    assert!(!r.has_errors(), "{:#?}", r.issues);
    let bad =
        observation(json!({"value": 70, "system": "http://unitsofmeasure.org", "code": "mcg"}));
    let r = v.validate(&bad, &ValidationOptions::default());
    let e = r.errors().next().expect("an error");
    assert!(e.message.contains("Error processing unit 'mcg'"), "{e:?}");
    assert_eq!(e.expression, "Observation.value.ofType(Quantity)");
}

#[test]
fn unavailable_code_systems_are_named_once() {
    let v = Validator::r4();
    let ok = observation(json!({"value": 70, "system": "http://unitsofmeasure.org", "code": "kg"}));
    let r = v.validate(&ok, &ValidationOptions::default());
    let notes: Vec<_> = r
        .issues
        .iter()
        .filter(|i| i.message.contains("http://loinc.org is not available here"))
        .collect();
    assert_eq!(notes.len(), 1, "{:#?}", r.issues);
    assert_eq!(notes[0].severity, Severity::Information);
    assert_eq!(notes[0].expression, "Observation.code.coding[0]");
}
