//! An OperationDefinition cross-checked against its input and output profiles, as the
//! HL7 Java validator checks it: names, cardinalities, types and target profiles.

use fhir_validation::{Severity, ValidationOptions, Validator};
use serde_json::{json, Value};

fn narrative() -> Value {
    json!({"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"})
}

/// A Parameters profile with one slice per `(name, min, max, resource type)`.
fn in_profile(slices: &[(&str, u32, &str, &str)]) -> Value {
    let mut elements = vec![
        json!({"id": "Parameters", "path": "Parameters"}),
        json!({"id": "Parameters.parameter", "path": "Parameters.parameter",
            "slicing": {"discriminator": [{"type": "value", "path": "name"}], "rules": "open"}}),
    ];
    for (name, min, max, rt) in slices {
        let id = format!("Parameters.parameter:{name}");
        elements.push(json!({"id": id, "path": "Parameters.parameter", "sliceName": name, "min": min, "max": max}));
        elements.push(json!({"id": format!("{id}.name"), "path": "Parameters.parameter.name", "fixedString": name}));
        elements.push(json!({"id": format!("{id}.value[x]"), "path": "Parameters.parameter.value[x]", "max": "0"}));
        elements.push(json!({"id": format!("{id}.resource"), "path": "Parameters.parameter.resource", "type": [{"code": rt}]}));
    }
    json!({"resourceType": "StructureDefinition", "url": "http://example.org/StructureDefinition/op-in",
        "version": "1.0.0", "name": "OpIn", "status": "active", "kind": "resource", "abstract": false,
        "type": "Parameters", "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Parameters",
        "derivation": "constraint", "differential": {"element": elements}})
}

fn operation(params: Value) -> Value {
    json!({"resourceType": "OperationDefinition", "text": narrative(), "url": "http://example.org/OperationDefinition/op",
        "name": "Op", "status": "active", "kind": "operation", "code": "op", "system": false,
        "type": true, "instance": false, "resource": ["Patient"],
        "inputProfile": "http://example.org/StructureDefinition/op-in", "parameter": params})
}

fn messages(v: &Validator, od: &Value, severity: Severity) -> Vec<String> {
    let r = v.validate(od, &ValidationOptions::default());
    r.issues
        .iter()
        .filter(|i| i.severity == severity && i.message.contains("profile"))
        .map(|i| format!("{}: {}", i.expression, i.message))
        .collect()
}

#[test]
fn a_profile_that_matches_its_parameters_passes() {
    let mut v = Validator::r4();
    v.add_resources(&[in_profile(&[("patient", 1, "1", "Patient")])])
        .expect("loads");
    let od = operation(json!([
        {"name": "patient", "use": "in", "min": 1, "max": "1", "type": "Patient"},
        {"name": "result", "use": "out", "min": 0, "max": "1", "type": "Bundle"}]));
    let r = v.validate(&od, &ValidationOptions::default());
    assert!(!r.has_errors(), "{:#?}", r.issues);
    assert!(messages(&v, &od, Severity::Warning).is_empty());
}

#[test]
fn differences_between_profile_and_parameters_are_reported_where_they_are() {
    let mut v = Validator::r4();
    v.add_resources(&[in_profile(&[
        ("patient", 1, "1", "Patient"),
        ("extra", 0, "1", "Patient"),
    ])])
    .expect("loads");
    let od = operation(json!([
        {"name": "patient", "use": "in", "min": 0, "max": "*", "type": "Group"},
        {"name": "missing", "use": "in", "min": 0, "max": "1", "type": "string"}]));
    let errors = messages(&v, &od, Severity::Error);
    let at0: Vec<_> = errors
        .iter()
        .filter(|m| m.starts_with("OperationDefinition.parameter[0]: "))
        .collect();
    assert_eq!(at0.len(), 4, "min, max and a type both ways: {errors:#?}");
    assert!(at0.iter().any(|m| m.contains("'min' of '1'")));
    assert!(at0.iter().any(|m| m.contains("'max' of '1'")));
    assert!(at0
        .iter()
        .any(|m| m.contains("The type 'Patient' is allowed")));
    assert!(at0
        .iter()
        .any(|m| m.contains("The type 'Group' is not allowed")));
    let warnings = messages(&v, &od, Severity::Warning);
    assert!(
        warnings.iter().any(|m| m.starts_with("OperationDefinition.inputProfile: ")
            && m.contains("http://example.org/StructureDefinition/op-in|1.0.0 defines a parameter 'extra'")),
        "{warnings:#?}"
    );
    assert!(
        warnings
            .iter()
            .any(|m| m.starts_with("OperationDefinition.parameter[1]: ")
                && m.contains("does not have a parameter 'missing'")),
        "{warnings:#?}"
    );
}

#[test]
fn a_resource_parameter_may_be_narrowed_and_have_target_profiles() {
    let mut v = Validator::r4();
    v.add_resources(&[in_profile(&[("patient", 1, "1", "Patient")])])
        .expect("loads");
    // `Resource` in the operation, `Patient` in the profile: a narrowing, not a conflict.
    let od = operation(json!([
        {"name": "patient", "use": "in", "min": 1, "max": "1", "type": "Resource"}]));
    let r = v.validate(&od, &ValidationOptions::default());
    assert!(!r.has_errors(), "{:#?}", r.issues);
    // opd-3 as corrected in R5: a target profile on a resource-typed parameter is allowed,
    // but not on a string; and a target profile the profile lacks is a difference.
    let od = operation(json!([
        {"name": "patient", "use": "in", "min": 1, "max": "1", "type": "Patient",
         "targetProfile": ["http://example.org/StructureDefinition/p"]},
        {"name": "s", "use": "out", "min": 0, "max": "1", "type": "string",
         "targetProfile": ["http://example.org/StructureDefinition/p"]}]));
    let r = v.validate(&od, &ValidationOptions::default());
    let errors: Vec<_> = r.errors().map(|i| (&i.expression, &i.message)).collect();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors
        .iter()
        .any(|(at, m)| at.as_str() == "OperationDefinition.parameter[1]" && m.contains("opd-3")));
    assert!(errors
        .iter()
        .any(|(at, m)| at.as_str() == "OperationDefinition.parameter[0]"
            && m.contains("is not allowed for the parameter 'patient'")));
}

#[test]
fn a_profile_not_loaded_or_not_for_parameters_is_not_compared() {
    let v = Validator::r4();
    let od = operation(json!([
        {"name": "patient", "use": "in", "min": 1, "max": "1", "type": "Patient"}]));
    let r = v.validate(&od, &ValidationOptions::default());
    assert!(!r.has_errors(), "{:#?}", r.issues);
    assert!(messages(&v, &od, Severity::Warning).is_empty());
}
