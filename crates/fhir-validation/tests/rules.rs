//! One small hand-made resource per rule, valid and invalid, asserting severity and
//! location.

use std::sync::OnceLock;

use fhir_validation::{Issue, Severity, ValidationOptions, ValidationReport, Validator};
use serde_json::{json, Value};

fn r4() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(Validator::r4)
}

fn check(resource: &Value) -> ValidationReport {
    r4().validate(resource, &ValidationOptions::default())
}

fn errors(report: &ValidationReport) -> Vec<&Issue> {
    report.errors().collect()
}

/// The issue at `at` whose message contains `text`.
fn find<'a>(report: &'a ValidationReport, at: &str, text: &str) -> &'a Issue {
    report
        .issues
        .iter()
        .find(|i| i.expression == at && i.message.contains(text))
        .unwrap_or_else(|| {
            panic!(
                "no issue at {at} containing {text:?} in {:#?}",
                report.issues
            )
        })
}

fn narrative() -> Value {
    json!({"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"})
}

#[test]
fn a_valid_patient_has_no_errors() {
    let p = json!({"resourceType": "Patient", "id": "p1", "text": narrative(),
        "name": [{"family": "Chalmers", "given": ["Peter", "James"]}],
        "gender": "male", "birthDate": "1974-12-25", "active": true});
    let r = check(&p);
    assert!(r.issues.is_empty(), "{:#?}", r.issues);
    assert_eq!(
        r.to_operation_outcome().issue[0].severity,
        fhir_model::IssueSeverity::Information
    );
}

#[test]
fn unknown_elements_are_errors() {
    let r = check(&json!({"resourceType": "Patient", "name": [{"family": "x", "nickname": "y"}]}));
    let i = find(&r, "Patient.name[0].nickname", "Unrecognized property");
    assert_eq!(i.severity, Severity::Error);
}

#[test]
fn minimum_cardinality_names_the_element() {
    let r = check(&json!({"resourceType": "Observation", "text": narrative(), "status": "final"}));
    let i = find(
        &r,
        "Observation.code",
        "Observation.code: minimum required = 1, but only found 0",
    );
    assert_eq!(i.severity, Severity::Error);
    assert_eq!(errors(&r).len(), 1);
}

#[test]
fn nested_minimum_cardinality() {
    // Observation.component.code is 1..1 inside a 0..* backbone element.
    let obs = json!({"resourceType": "Observation", "status": "final", "code": {"text": "bp"},
        "component": [{"code": {"text": "sys"}}, {"valueString": "no code"}]});
    let r = check(&obs);
    find(
        &r,
        "Observation.component[1].code",
        "Observation.component.code: minimum required = 1",
    );
    assert_eq!(errors(&r).len(), 1, "{:#?}", r.issues);
}

#[test]
fn choice_types_and_primitive_formats() {
    let obs = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
        "valueBogus": 1, "effectiveDateTime": "2020-13-45"});
    let r = check(&obs);
    find(&r, "Observation.valueBogus", "Unrecognized property");
    let i = find(
        &r,
        "Observation.effective.ofType(dateTime)",
        "not a valid dateTime",
    );
    assert_eq!(i.severity, Severity::Error);
    let ok = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
        "valueQuantity": {"value": 1.50, "unit": "mg"}, "effectiveDateTime": "2020-12-31T10:00:00+01:00"});
    assert!(!check(&ok).has_errors());
}

#[test]
fn primitive_json_types_ids_and_integer_ranges() {
    let p = json!({"resourceType": "Patient", "id": "bad_id!", "active": "yes",
        "multipleBirthInteger": 2147483648u64});
    let r = check(&p);
    find(&r, "Patient.id", "Invalid Resource id");
    find(&r, "Patient.active", "boolean");
    find(
        &r,
        "Patient.multipleBirth.ofType(integer)",
        "outside the range of integer",
    );
    let study = json!({"resourceType": "ImagingStudy", "status": "available",
        "subject": {"reference": "Patient/1"}, "numberOfSeries": -1,
        "series": [{"uid": "1.2", "modality": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"}, "number": 0}]});
    let r = check(&study);
    find(&r, "ImagingStudy.numberOfSeries", "unsignedInt");
    assert!(!r.issues.iter().any(|i| i.expression.ends_with(".number")));
    let big = json!({"resourceType": "Patient", "id": "a".repeat(65)});
    find(&check(&big), "Patient.id", "Invalid Resource id");
}

#[test]
fn required_bindings_are_errors() {
    let r = check(&json!({"resourceType": "Patient", "gender": "fish"}));
    let i = find(
        &r,
        "Patient.gender",
        "not in the value set 'http://hl7.org/fhir/ValueSet/administrative-gender'",
    );
    assert_eq!(i.severity, Severity::Error);
    assert_eq!(i.code, fhir_model::IssueType::CodeInvalid);
    // A CodeableConcept with a required binding: one coding in the value set suffices.
    let a = json!({"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/1"},
        "clinicalStatus": {"coding": [
            {"system": "http://example.org/x", "code": "y"},
            {"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]}});
    assert!(!check(&a).has_errors(), "{:#?}", check(&a).issues);
    let bad = json!({"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/1"},
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "nope"}]}});
    let r = check(&bad);
    find(
        &r,
        "AllergyIntolerance.clinicalStatus",
        "not in the value set",
    );
    // The code system is known in full: the unknown code is reported on the Coding too.
    find(
        &r,
        "AllergyIntolerance.clinicalStatus.coding[0]",
        "Unknown code 'nope'",
    );
}

#[test]
fn extensible_bindings_and_unexpandable_value_sets_are_warnings() {
    // Observation.interpretation: extensible; Condition.code: example (not checked).
    let obs = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
        "interpretation": [{"coding": [{"system": "http://example.org/i", "code": "odd"}]}]});
    let r = check(&obs);
    assert!(!r.has_errors(), "{:#?}", r.issues);
    let i = find(&r, "Observation.interpretation[0]", "");
    assert_eq!(i.severity, Severity::Warning);
    // Observation.code is bound to LOINC codes (example strength): nothing reported.
    assert!(!r.issues.iter().any(|i| i.expression == "Observation.code"));
}

#[test]
fn invariants_report_their_key_with_the_constraint_severity() {
    let obs = json!({"resourceType": "Observation", "text": narrative(), "status": "final", "code": {"text": "x"},
        "effectivePeriod": {"start": "2020-02-01", "end": "2020-01-01"}});
    let r = check(&obs);
    let i = find(&r, "Observation.effective.ofType(Period)", "per-1");
    assert_eq!(i.severity, Severity::Error);
    assert_eq!(i.code, fhir_model::IssueType::Invariant);
    // dom-6 (no narrative) is a warning constraint.
    let r = check(&json!({"resourceType": "Patient"}));
    let i = find(&r, "Patient", "dom-6");
    assert_eq!(i.severity, Severity::Warning);
    assert!(!r.has_errors());
}

#[test]
fn reference_targets_follow_target_profiles() {
    let obs = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
        "subject": {"reference": "Medication/1"}});
    let r = check(&obs);
    let i = find(&r, "Observation.subject.reference", "'Medication'");
    assert_eq!(i.severity, Severity::Error);
    let ok = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
        "subject": {"reference": "http://example.org/fhir/Patient/1/_history/2"}});
    assert!(!check(&ok).has_errors());
}

#[test]
fn contained_resources_follow_the_dom_rules() {
    let unreferenced = json!({"resourceType": "Patient", "text": narrative(),
        "contained": [{"resourceType": "Organization", "id": "o1", "name": "x"}]});
    let r = check(&unreferenced);
    let i = find(&r, "Patient", "dom-3");
    assert_eq!(i.severity, Severity::Error);
    let referenced = json!({"resourceType": "Patient", "text": narrative(),
        "contained": [{"resourceType": "Organization", "id": "o1", "name": "x"}],
        "managingOrganization": {"reference": "#o1"}});
    assert!(
        !check(&referenced).has_errors(),
        "{:#?}",
        check(&referenced).issues
    );
    let dangling =
        json!({"resourceType": "Patient", "managingOrganization": {"reference": "#nope"}});
    find(
        &check(&dangling),
        "Patient.managingOrganization.reference",
        "contained",
    );
    // Errors inside a contained resource are located there.
    let bad = json!({"resourceType": "Patient", "text": narrative(),
        "contained": [{"resourceType": "Patient", "id": "c", "gender": "fish"}],
        "link": [{"other": {"reference": "#c"}, "type": "seealso"}]});
    find(
        &check(&bad),
        "Patient.contained[0].gender",
        "not in the value set",
    );
}

#[test]
fn extensions_are_checked_against_their_definitions() {
    let p = json!({"resourceType": "Patient", "birthDate": "2000-01-01", "_birthDate": {"extension": [
        {"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueString": "noon"}]}});
    let r = check(&p);
    assert!(r.has_errors(), "{:#?}", r.issues);
    assert!(r
        .errors()
        .any(|i| i.expression.starts_with("Patient.birthDate.extension[0]")));
    let unknown = json!({"resourceType": "Patient", "extension": [{"url": "http://example.org/x", "valueString": "y"}]});
    let r = check(&unknown);
    let i = find(&r, "Patient.extension[0]", "http://example.org/x");
    assert_eq!(i.severity, Severity::Warning);
    assert!(!r.has_errors());
    let both = json!({"resourceType": "Patient", "extension": [{"url": "http://example.org/x"}]});
    find(&check(&both), "Patient.extension[0]", "ext-1");
    let opts = ValidationOptions {
        unknown_extensions_are_errors: true,
        ..Default::default()
    };
    assert!(r4().validate(&unknown, &opts).has_errors());
}

#[test]
fn bundle_entries_are_located_by_index() {
    let b = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "text": narrative()}},
        {"fullUrl": "urn:uuid:2", "resource": {"resourceType": "Patient", "gender": "fish", "text": narrative()}},
        {"fullUrl": "urn:uuid:3", "resource": {"resourceType": "Observation", "status": "final",
            "text": narrative(), "code": {"text": "x"}, "subject": {"reference": "urn:uuid:1"}}},
        {"fullUrl": "urn:uuid:4", "resource": {"resourceType": "Observation", "status": "final",
            "text": narrative(), "code": {"text": "x"}, "subject": {"reference": "urn:uuid:3"}}}]});
    let r = check(&b);
    find(
        &r,
        "Bundle.entry[1].resource.gender",
        "not in the value set",
    );
    find(
        &r,
        "Bundle.entry[3].resource.subject.reference",
        "'Observation'",
    );
    assert_eq!(errors(&r).len(), 2, "{:#?}", r.issues);
}

fn profile_validator() -> Validator {
    let mut v = Validator::r4();
    let profile = json!({"resourceType": "StructureDefinition",
    "url": "http://example.org/StructureDefinition/strict-patient", "name": "StrictPatient",
    "status": "active", "kind": "resource", "abstract": false, "type": "Patient",
    "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient", "derivation": "constraint",
    "differential": {"element": [
        {"id": "Patient.identifier", "path": "Patient.identifier", "min": 1,
         "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "closed"}},
        {"id": "Patient.identifier:mrn", "path": "Patient.identifier", "sliceName": "mrn", "min": 1, "max": "1"},
        {"id": "Patient.identifier:mrn.system", "path": "Patient.identifier.system", "min": 1, "fixedUri": "urn:mrn"},
        {"id": "Patient.identifier:mrn.value", "path": "Patient.identifier.value", "min": 1},
        {"id": "Patient.active", "path": "Patient.active", "fixedBoolean": true},
        {"id": "Patient.maritalStatus", "path": "Patient.maritalStatus",
         "patternCodeableConcept": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M"}]}},
        {"id": "Patient.photo", "path": "Patient.photo", "max": "0"},
        {"id": "Patient.deceased[x]", "path": "Patient.deceased[x]", "type": [{"code": "boolean"}]},
        {"id": "Patient", "path": "Patient", "constraint": [{"key": "sp-1", "severity": "error",
         "human": "a name is needed", "expression": "name.exists()"}]}
    ]}});
    v.add_resources(&[profile]).expect("profile loads");
    v
}

fn strict() -> ValidationOptions {
    ValidationOptions {
        profiles: vec!["http://example.org/StructureDefinition/strict-patient".into()],
        ..Default::default()
    }
}

#[test]
fn profiles_with_a_differential_only_get_a_snapshot() {
    let v = profile_validator();
    let good = json!({"resourceType": "Patient", "text": narrative(), "active": true, "name": [{"family": "x"}],
        "identifier": [{"system": "urn:mrn", "value": "1"}],
        "maritalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M", "display": "Married"}], "text": "m"}});
    let r = v.validate(&good, &strict());
    assert!(!r.has_errors(), "{:#?}", r.issues);
    let bad = json!({"resourceType": "Patient", "active": false, "photo": [{"title": "x"}],
        "deceasedDateTime": "2020-01-01",
        "identifier": [{"system": "urn:other", "value": "1"}],
        "maritalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "S"}]}});
    let r = v.validate(&bad, &strict());
    find(&r, "Patient.active", "fixed to 'true'");
    find(&r, "Patient.maritalStatus", "pattern");
    find(&r, "Patient.photo", "max allowed = 0, but found 1");
    find(&r, "Patient.deceasedDateTime", "not allowed");
    find(
        &r,
        "Patient.identifier[0]",
        "does not match any known slice",
    );
    find(&r, "Patient", "Slice 'Patient.identifier:mrn'");
    find(&r, "Patient", "sp-1");
}

#[test]
fn meta_profile_applies_and_unknown_profiles_are_reported() {
    let v = profile_validator();
    let p = json!({"resourceType": "Patient", "text": narrative(),
        "meta": {"profile": ["http://example.org/StructureDefinition/strict-patient"]}});
    let r = v.validate(&p, &ValidationOptions::default());
    find(
        &r,
        "Patient.identifier",
        "Patient.identifier: minimum required = 1",
    );
    let unknown = json!({"resourceType": "Patient", "text": narrative(),
        "meta": {"profile": ["http://example.org/none"]}});
    let r = v.validate(&unknown, &ValidationOptions::default());
    assert_eq!(
        find(&r, "Patient.meta.profile[0]", "unknown").severity,
        Severity::Warning
    );
    let opts = ValidationOptions {
        profiles: vec!["http://example.org/none".into()],
        ..Default::default()
    };
    let r = v.validate(&json!({"resourceType": "Patient"}), &opts);
    assert_eq!(find(&r, "Patient", "not found").severity, Severity::Error);
}

#[test]
fn reports_become_operation_outcomes() {
    let r = check(&json!({"resourceType": "Patient", "gender": "fish"}));
    let oo = r.to_operation_outcome().to_value();
    assert_eq!(oo["resourceType"], "OperationOutcome");
    let issue = oo["issue"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["severity"] == "error"))
        .expect("an error issue");
    assert_eq!(issue["code"], "code-invalid");
    assert_eq!(issue["expression"][0], "Patient.gender");
    assert!(issue["details"]["text"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
}

#[test]
fn not_json_objects_and_unknown_types_are_fatal() {
    for v in [
        json!([1]),
        json!("x"),
        json!({"resourceType": "Nope"}),
        json!({}),
    ] {
        let r = check(&v);
        assert!(
            r.issues.iter().any(|i| i.severity == Severity::Fatal),
            "{v}: {:#?}",
            r.issues
        );
    }
}

#[test]
fn the_validator_is_send_and_sync() {
    fn shared<T: Send + Sync>() {}
    shared::<Validator>();
    let v = std::sync::Arc::new(Validator::r4());
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let v = v.clone();
            std::thread::spawn(move || {
                v.validate(
                    &json!({"resourceType": "Patient", "gender": "fish"}),
                    &ValidationOptions::default(),
                )
                .has_errors()
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().expect("thread"));
    }
}

#[test]
fn narratives_refuse_active_content() {
    let p = json!({"resourceType": "Patient", "text": {"status": "generated",
        "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p onclick=\"steal()\">x</p></div>"}});
    let r = check(&p);
    assert_eq!(
        find(&r, "Patient.text.div", "txt-1").severity,
        Severity::Error
    );
}

#[test]
fn bundle_full_urls_are_absolute_and_links_unique() {
    let b = json!({"resourceType": "Bundle", "type": "searchset",
        "link": [{"relation": "self", "url": "http://x/1"}, {"relation": "self", "url": "http://x/2"}],
        "entry": [{"fullUrl": "Patient/1", "resource": {"resourceType": "Patient", "text": narrative()}}]});
    let r = check(&b);
    find(&r, "Bundle.entry[0].fullUrl", "absolute");
    find(&r, "Bundle.link[1]", "'self' can only occur once");
}

#[test]
fn questionnaire_responses_follow_their_questionnaire() {
    let mut v = Validator::r4();
    let q = json!({"resourceType": "Questionnaire", "url": "http://example.org/q", "status": "active",
        "item": [
            {"linkId": "age", "type": "integer", "required": true,
             "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/maxValue", "valueInteger": 130}]},
            {"linkId": "color", "type": "choice", "answerOption": [
                {"valueCoding": {"system": "http://example.org/c", "code": "red"}}]}]});
    v.add_resources(&[q]).expect("questionnaire loads");
    let qr = |items: Value| {
        json!({"resourceType": "QuestionnaireResponse", "status": "completed",
        "questionnaire": "http://example.org/q", "item": items})
    };
    let good = qr(json!([{"linkId": "age", "answer": [{"valueInteger": 40}]},
        {"linkId": "color", "answer": [{"valueCoding": {"system": "http://example.org/c", "code": "red"}}]}]));
    let r = v.validate(&good, &ValidationOptions::default());
    assert!(!r.has_errors(), "{:#?}", r.issues);
    let bad = qr(
        json!([{"linkId": "age", "answer": [{"valueString": "forty"}]},
        {"linkId": "color", "answer": [{"valueCoding": {"system": "http://example.org/c", "code": "blue"}}]},
        {"linkId": "nope"}]),
    );
    let r = v.validate(&bad, &ValidationOptions::default());
    find(
        &r,
        "QuestionnaireResponse.item[0].answer[0]",
        "must be of the type integer",
    );
    find(
        &r,
        "QuestionnaireResponse.item[1].answer[0]",
        "not in the set of permitted values",
    );
    find(
        &r,
        "QuestionnaireResponse.item[2]",
        "LinkId 'nope' not found",
    );
    let old = qr(json!([{"linkId": "age", "answer": [{"valueInteger": 200}]}]));
    let r = v.validate(&old, &ValidationOptions::default());
    find(
        &r,
        "QuestionnaireResponse.item[0].answer[0]",
        "greater than the allowed maximum of 130",
    );
    let missing = qr(json!([{"linkId": "color"}]));
    find(
        &v.validate(&missing, &ValidationOptions::default()),
        "QuestionnaireResponse",
        "No response answer found for required item 'age'",
    );
}

#[test]
fn displays_of_fully_known_code_systems_are_checked() {
    let coding = |display: &str| {
        json!({"resourceType": "Patient", "maritalStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
            "code": "M", "display": display}]}})
    };
    assert!(errors(&check(&coding("married"))).is_empty());
    let r = check(&coding("Single"));
    let i = find(
        &r,
        "Patient.maritalStatus.coding[0]",
        "Wrong Display Name 'Single'",
    );
    assert_eq!(i.severity, Severity::Warning);
    let opts = ValidationOptions {
        display_issues_are_errors: true,
        ..Default::default()
    };
    assert!(r4().validate(&coding("Single"), &opts).has_errors());
}

#[test]
fn contained_ids_and_restful_full_urls_follow_the_id_rules() {
    let org = json!({"resourceType": "Organization", "id": "org_1", "name": "x"});
    let loc = json!({"resourceType": "Location", "contained": [org],
        "managingOrganization": {"reference": "#org_1"}});
    find(
        &check(&loc),
        "Location.contained[0].id",
        "Invalid Resource id",
    );
    let bundle = |url: &str| {
        json!({"resourceType": "Bundle", "type": "collection", "entry": [{
            "fullUrl": url, "resource": {"resourceType": "Patient", "id": "a"}}]})
    };
    assert!(errors(&check(&bundle("http://x.org/fhir/Patient/a"))).is_empty());
    assert!(errors(&check(&bundle(
        "urn:uuid:1e7d4c5a-1c2b-4e3f-9a8b-7c6d5e4f3a2b"
    )))
    .is_empty());
    find(
        &check(&bundle("http://x.org/fhir/Patient/b")),
        "Bundle.entry[0]",
        "must end with the correct type and id (/Patient/a)",
    );
}

#[test]
fn extensions_are_used_in_their_context() {
    // humanname-mothers-family: context HumanName.family.
    let ext = json!([{"url": "http://hl7.org/fhir/StructureDefinition/humanname-mothers-family",
        "valueString": "Mother"}]);
    let on_family = json!({"resourceType": "Patient",
        "name": [{"family": "F", "_family": {"extension": ext.clone()}}]});
    assert!(
        errors(&check(&on_family)).is_empty(),
        "{:#?}",
        check(&on_family).issues
    );
    let on_name = json!({"resourceType": "Patient", "name": [{"family": "F", "extension": ext}]});
    find(
        &check(&on_name),
        "Patient.name[0].extension[0]",
        "is not allowed to be used at this point",
    );
    // patient-birthTime: context Patient.birthDate; data-absent-reason: Element.
    let birth = json!({"resourceType": "Patient", "birthDate": "2000-01-01", "_birthDate": {
        "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
            "valueDateTime": "2000-01-01T10:00:00Z"}]}});
    assert!(
        errors(&check(&birth)).is_empty(),
        "{:#?}",
        check(&birth).issues
    );
}

#[test]
fn example_extensions_and_html_in_markdown_follow_the_options() {
    let p = json!({"resourceType": "Patient", "extension": [{
        "url": "http://example.org/fhir/StructureDefinition/x", "valueBoolean": true}]});
    let mut opts = ValidationOptions {
        unknown_extensions_are_errors: true,
        ..Default::default()
    };
    assert!(r4().validate(&p, &opts).has_errors());
    opts.allow_example_extensions = true;
    assert!(!r4().validate(&p, &opts).has_errors());
    let c = json!({"resourceType": "Communication", "status": "completed",
        "note": [{"text": "see <resource type>"}]});
    let report = check(&c);
    let i = find(&report, "Communication.note[0].text", "embedded HTML tag");
    assert_eq!(i.severity, Severity::Warning);
    let strict = ValidationOptions {
        no_html_in_markdown: true,
        ..Default::default()
    };
    assert!(r4().validate(&c, &strict).has_errors());
}

#[test]
fn conformance_resources_are_consistent_with_their_bases() {
    let sd = json!({"resourceType": "StructureDefinition", "url": "http://example.org/sd",
    "name": "X", "status": "draft", "kind": "resource", "abstract": false,
    "type": "Observation", "derivation": "constraint",
    "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Observation",
    "differential": {"element": [
        {"id": "Observation.valueQuantity", "path": "Observation.valueQuantity"},
        {"id": "Observation.code.coding", "path": "Observation.code.coding",
         "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "open"}},
        {"id": "Observation.component.value[x]", "path": "Observation.component.value[x]"}
    ]}});
    assert!(errors(&check(&sd)).is_empty(), "{:#?}", check(&sd).issues);
    let mut bad = sd.clone();
    bad["differential"]["element"][0]["path"] = json!("Observation.valueBla");
    bad["differential"]["element"][1]["slicing"]["discriminator"][0]["path"] = json!("sytem");
    let r = check(&bad);
    find(
        &r,
        "StructureDefinition.differential.element[0]",
        "Observation.valueBla",
    );
    find(
        &r,
        "StructureDefinition.differential.element[1].slicing.discriminator[0]",
        "The discriminator path 'sytem'",
    );
    let sp = json!({"resourceType": "SearchParameter", "url": "http://example.org/sp",
        "name": "n", "status": "draft", "description": "d", "code": "name",
        "base": ["Organization"], "type": "token", "expression": "Organization.name",
        "derivedFrom": "http://hl7.org/fhir/SearchParameter/Organization-name"});
    find(
        &check(&sp),
        "SearchParameter",
        "different to the type string",
    );
}

#[test]
fn que_12_applies_from_two_enable_whens() {
    let when = json!({"question": "a", "operator": "exists", "answerBoolean": true});
    let q = json!({"resourceType": "Questionnaire", "status": "draft", "item": [
        {"linkId": "a", "type": "boolean"},
        {"linkId": "b", "type": "boolean", "enableWhen": [when.clone(), when]}]});
    find(&check(&q), "Questionnaire.item[1]", "que-12");
}

/// `maxLength`, `minValue[x]` and `maxValue[x]` of a profile, with UCUM conversion and a
/// choice element named by its type in the differential (`Observation.valueQuantity`).
#[test]
fn profiles_limit_lengths_and_values() {
    let mut v = Validator::r4();
    let profile = json!({"resourceType": "StructureDefinition", "url": "http://example.org/StructureDefinition/limited",
    "name": "Limited", "status": "active", "kind": "resource", "abstract": false, "type": "Observation",
    "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Observation", "derivation": "constraint",
    "differential": {"element": [
        {"id": "Observation", "path": "Observation"},
        {"path": "Observation.valueQuantity",
         "maxValueQuantity": {"value": 5, "system": "http://unitsofmeasure.org", "code": "kg"}},
        {"id": "Observation.issued", "path": "Observation.issued", "minValueInstant": "2020-01-01T00:00:00Z"},
        {"id": "Observation.note.text", "path": "Observation.note.text", "maxLength": 10}
    ]}});
    v.add_resources(&[profile]).expect("profile loads");
    let opts = ValidationOptions {
        profiles: vec!["http://example.org/StructureDefinition/limited".into()],
        ..Default::default()
    };
    let obs = |grams: i64, issued: &str, note: &str| {
        json!({"resourceType": "Observation", "text": narrative(), "status": "final",
            "code": {"text": "weight"}, "issued": issued, "note": [{"text": note}],
            "valueQuantity": {"value": grams, "system": "http://unitsofmeasure.org", "code": "g"}})
    };
    let r = v.validate(&obs(4000, "2021-05-01T00:00:00Z", "short"), &opts);
    assert!(!r.has_errors(), "{:#?}", r.issues);
    let r = v.validate(&obs(6000, "2019-05-01T00:00:00Z", "far too long"), &opts);
    find(
        &r,
        "Observation.value.ofType(Quantity)",
        "after UCUM conversion",
    );
    find(&r, "Observation.issued", "less than the specified minValue");
    find(&r, "Observation.note[0].text", "maximum length of 10");
}

/// A narrative's local link names an element id or an anchor in the resource.
#[test]
fn narrative_links_must_resolve() {
    let v = Validator::r4();
    let patient = |href: &str| {
        json!({"resourceType": "Patient", "text": {"status": "generated",
            "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\"><p><a href=\"{href}\">see</a><a name=\"top\"/></p></div>")},
            "contained": [{"resourceType": "Organization", "id": "org1", "name": "x"}],
            "managingOrganization": {"reference": "#org1"}})
    };
    for good in ["#org1", "#top", "http://example.org/x"] {
        let r = v.validate(&patient(good), &ValidationOptions::default());
        assert!(!r.has_errors(), "{good}: {:#?}", r.issues);
    }
    let r = v.validate(&patient("#nowhere"), &ValidationOptions::default());
    find(
        &r,
        "Patient.text.div",
        "Hyperlink '#nowhere' at 'div/p/a' for 'see' does not resolve",
    );
}

/// References between Bundle entries resolve by the fullUrl rules of bundle.html; a
/// document carries what it refers to, and every entry is reachable from the
/// Composition.
#[test]
fn bundle_references_resolve_by_full_url() {
    let v = Validator::r4();
    let base = "http://x.org/fhir";
    let document = json!({"resourceType": "Bundle", "type": "document",
    "identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:0c3201bd-1cbf-4d64-b04d-cd9187a4c6e0"},
    "timestamp": "2020-01-01T00:00:00Z",
    "entry": [
        {"fullUrl": format!("{base}/Composition/1"), "resource": {"resourceType": "Composition", "id": "1",
            "text": narrative(), "status": "final", "type": {"text": "note"}, "date": "2020-01-01",
            "title": "t", "author": [{"display": "a"}], "subject": {"reference": "Patient/1"}}},
        {"fullUrl": format!("{base}/Patient/1"), "resource": {"resourceType": "Patient", "id": "1", "text": narrative()}},
        {"fullUrl": "urn:uuid:3fdc72f4-a11d-4a9d-9260-a9f745779e1d", "resource": {"resourceType": "Observation",
            "text": narrative(), "status": "final", "code": {"text": "x"}, "subject": {"reference": "Patient/1"}}},
        {"fullUrl": format!("{base}/Device/9"), "resource": {"resourceType": "Device", "id": "9", "text": narrative()}}
    ]});
    let r = v.validate(&document, &ValidationOptions::default());
    let found = |text: &str| r.errors().filter(|i| i.message.contains(text)).count();
    assert_eq!(found("Can't find 'Patient/1'"), 1, "{:#?}", r.issues);
    find(&r, "Bundle.entry[2].resource.subject", "same type and id");
    find(
        &r,
        "Bundle.entry[3]",
        "Entry 'http://x.org/fhir/Device/9' isn't reachable",
    );
    // The Observation's reference did not resolve, so it is not reachable either.
    find(&r, "Bundle.entry[2]", "isn't reachable");
    assert_eq!(r.errors().count(), 3, "{:#?}", r.issues);
    // In a collection an unresolved urn: reference is a warning.
    let collection = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:3fdc72f4-a11d-4a9d-9260-a9f745779e1d", "resource": {"resourceType": "Observation",
            "text": narrative(), "status": "final", "code": {"text": "x"},
            "subject": {"reference": "urn:uuid:11111111-a11d-4a9d-9260-a9f745779e1d"}}}]});
    let r = v.validate(&collection, &ValidationOptions::default());
    assert!(!r.has_errors(), "{:#?}", r.issues);
    assert!(r
        .issues
        .iter()
        .any(|i| i.message.contains("URN reference is not locally contained")));
}

/// Element ids are unique within a resource ("Duplicate id value").
#[test]
fn element_ids_are_unique_in_a_resource() {
    let v = Validator::r4();
    let p = json!({"resourceType": "Patient", "id": "a", "text": narrative(),
        "identifier": [{"id": "a", "value": "1"}], "name": [{"id": "n", "family": "x"}, {"id": "n", "family": "y"}]});
    let r = v.validate(&p, &ValidationOptions::default());
    find(&r, "Patient.name[1]", "Duplicate id value 'n'");
    assert_eq!(
        r.errors().count(),
        1,
        "the resource id is not an element id: {:#?}",
        r.issues
    );
}

/// A Coding whose system is a value set's URL; an unknown extension with an example URL
/// where examples are not allowed.
#[test]
fn codings_name_code_systems_and_examples_stay_examples() {
    let v = Validator::r4();
    let obs = json!({"resourceType": "Observation", "text": narrative(), "status": "final",
        "code": {"coding": [{"system": "http://hl7.org/fhir/ValueSet/observation-codes", "code": "x"}]},
        "extension": [{"url": "http://example.org/fhir/StructureDefinition/something", "valueString": "x"}]});
    let r = v.validate(&obs, &ValidationOptions::default());
    find(
        &r,
        "Observation.code.coding[0]",
        "references a value set, not a code system",
    );
    assert!(
        !r.errors().any(|i| i.message.contains("Example URLs")),
        "by default only a warning, as for unknown extensions: {:#?}",
        r.issues
    );
    let strict = ValidationOptions {
        unknown_extensions_are_errors: true,
        allow_example_extensions: false,
        ..Default::default()
    };
    let r = v.validate(&obs, &strict);
    find(
        &r,
        "Observation.extension[0].url",
        "Example URLs are not allowed in this context",
    );
}
