//! The lossless JSON cases, on hand-made inputs, and the unknown-element detector.

use fhir_model::{json, Definitions, ElementIssueKind};
use serde_json::Value;

fn round_trip(text: &str) -> String {
    json::to_string(&json::parse(text.as_bytes()).expect("valid JSON"))
}

#[test]
fn decimals_keep_their_precision() {
    let text = r#"{"resourceType":"Observation","valueQuantity":{"value":1.50,"unit":"mg"},"component":[{"valueQuantity":{"value":0.000001}},{"valueQuantity":{"value":-1.0e-7}},{"valueInteger":12345678901234567890}]}"#;
    assert_eq!(round_trip(text), text);
    // serde_json writes exponents in one form: same digits, same precision.
    assert_eq!(round_trip(r#"{"value":1E2}"#), r#"{"value":1e+2}"#);
}

#[test]
fn member_order_is_kept() {
    let text = r#"{"resourceType":"Patient","name":[{"given":["a"],"family":"z"}],"active":true,"id":"p1"}"#;
    assert_eq!(round_trip(text), text);
}

#[test]
fn primitive_extensions_and_null_slots_survive() {
    let text = r#"{"resourceType":"Patient","name":[{"given":["Jim",null,"Bo"],"_given":[null,{"id":"g2","extension":[{"url":"http://e.org/x","valueString":"no name"}]},null]}],"birthDate":"1970-03-30","_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthTime","valueDateTime":"1970-03-30T14:30:00+01:00"}]}}"#;
    assert_eq!(round_trip(text), text);
    assert!(Definitions::r4()
        .structure_issues(&json::parse(text.as_bytes()).unwrap())
        .is_empty());
}

#[test]
fn contained_resources_and_extensions_are_kept() {
    let text = r##"{"resourceType":"Observation","contained":[{"resourceType":"Patient","id":"p","name":[{"family":"X"}]}],"extension":[{"url":"http://e.org/a","extension":[{"url":"b","valueDecimal":3.10}]}],"modifierExtension":[{"url":"http://e.org/m","valueBoolean":false}],"status":"final","code":{"text":"t"},"subject":{"reference":"#p"}}"##;
    assert_eq!(round_trip(text), text);
    assert!(Definitions::r4()
        .structure_issues(&json::parse(text.as_bytes()).unwrap())
        .is_empty());
}

#[test]
fn unicode_and_escapes_survive() {
    let text = r#"{"resourceType":"Patient","name":[{"family":"Müller \"Mü\" \u0001 😀"}]}"#;
    let v = json::parse(text.as_bytes()).unwrap();
    assert_eq!(json::parse(json::to_string(&v).as_bytes()).unwrap(), v);
}

fn issues(text: &str) -> Vec<(String, ElementIssueKind)> {
    let v: Value = json::parse(text.as_bytes()).unwrap();
    Definitions::r4()
        .structure_issues(&v)
        .into_iter()
        .map(|i| (i.path, i.kind))
        .collect()
}

#[test]
fn unknown_elements_are_reported_with_their_path() {
    let found =
        issues(r#"{"resourceType":"Patient","name":[{"family":"x"},{"famly":"y"}],"foo":1}"#);
    assert_eq!(
        found,
        vec![
            (
                "Patient.name[1].famly".to_string(),
                ElementIssueKind::Unknown
            ),
            ("Patient.foo".to_string(), ElementIssueKind::Unknown),
        ]
    );
}

#[test]
fn unknown_elements_in_nested_types_backbones_and_contained() {
    let found = issues(
        r#"{"resourceType":"Observation","valueQuantity":{"value":1,"bogus":2},"component":[{"code":{"text":"c"},"valueFoo":1}],"contained":[{"resourceType":"Patient","nme":"x"}],"valueString":"a"}"#,
    );
    let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "Observation.value.ofType(Quantity).bogus",
            "Observation.component[0].valueFoo",
            "Observation.contained[0].nme"
        ]
    );
}

#[test]
fn wrong_choice_type_and_unknown_resource_type_are_reported() {
    // Patient.deceased[x] is boolean|dateTime: a string is not one of its types.
    assert_eq!(
        issues(r#"{"resourceType":"Patient","deceasedString":"x"}"#)[0].0,
        "Patient.deceasedString"
    );
    assert_eq!(
        issues(r#"{"resourceType":"Patientx"}"#)[0].1,
        ElementIssueKind::UnknownResourceType
    );
    assert_eq!(
        issues(r#"{"id":"x"}"#)[0].1,
        ElementIssueKind::UnknownResourceType
    );
}

#[test]
fn recursive_content_references_are_followed() {
    let ok = issues(
        r#"{"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"group","item":[{"linkId":"1.1","type":"string","item":[{"linkId":"x","type":"display","oops":true}]}]}]}"#,
    );
    assert_eq!(ok[0].0, "Questionnaire.item[0].item[0].item[0].oops");
}

#[test]
fn underscore_on_a_complex_element_is_reported() {
    assert_eq!(
        issues(r#"{"resourceType":"Patient","_name":[{"id":"x"}]}"#)[0].1,
        ElementIssueKind::NotPrimitive
    );
}

#[test]
fn bundle_entries_are_checked_as_their_own_resource_types() {
    let found = issues(
        r#"{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","x":1}}]}"#,
    );
    assert_eq!(found[0].0, "Bundle.entry[0].resource.x");
}

#[test]
fn primitive_types_and_formats_come_from_the_definitions() {
    let found = issues(
        r#"{"resourceType":"Patient","active":"yes","gender":"","birthDate":"1974-13-01","multipleBirthInteger":1.5,"name":[{"family":"ok","given":["A"]}]}"#,
    );
    let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "Patient.active",
            "Patient.gender",
            "Patient.birthDate",
            "Patient.multipleBirth.ofType(integer)"
        ]
    );
    assert!(
        matches!(&found[2].1, ElementIssueKind::InvalidValue(m) if m.contains("not a valid date"))
    );
    // A no-break space is not whitespace in the definitions' (Java) regexes.
    assert!(
        issues("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"A\u{a0}\"}]}").is_empty()
    );
    assert!(issues(r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1e+2},"effectiveInstant":"2026-01-01T00:00:00.5+14:00"}"#).is_empty());
}

#[test]
fn arrays_nulls_and_empty_values_are_checked() {
    let found = issues(
        r#"{"resourceType":"Patient","name":{"family":"x"},"gender":["male"],"birthDate":null,"telecom":[],"address":[{}]}"#,
    );
    let kinds: Vec<ElementIssueKind> = found.into_iter().map(|(_, k)| k).collect();
    assert_eq!(
        kinds,
        vec![
            ElementIssueKind::ArrayExpected,
            ElementIssueKind::ArrayNotAllowed,
            ElementIssueKind::Null,
            ElementIssueKind::Empty,
            ElementIssueKind::Empty,
        ]
    );
}
