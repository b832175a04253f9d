//! Extensions HL7 defines elsewhere, strings that look like HTML, and references to
//! targets whose profile is not loaded.

use fhir_validation::{Severity, ValidationOptions, Validator};
use serde_json::json;

fn narrative() -> serde_json::Value {
    json!({"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"})
}

fn strict() -> ValidationOptions {
    ValidationOptions {
        unknown_extensions_are_errors: true,
        ..Default::default()
    }
}

#[test]
fn hl7_extensions_not_loaded_here_are_no_fault() {
    let v = Validator::r4();
    let org = |url: &str| {
        json!({"resourceType": "Organization", "text": narrative(), "name": "x",
            "extension": [{"url": url, "valueString": "x"}]})
    };
    for url in [
        "http://hl7.org/fhir/StructureDefinition/organization-brand",
        "http://hl7.org/fhir/5.0/StructureDefinition/extension-Organization.qualification",
    ] {
        let r = v.validate(&org(url), &strict());
        assert!(!r.has_errors(), "{url}: {:#?}", r.issues);
        assert!(r
            .issues
            .iter()
            .any(|i| i.message.contains("not loaded here")));
    }
    let r = v.validate(&org("http://acme.org/StructureDefinition/brand"), &strict());
    assert!(
        r.has_errors(),
        "an unknown extension elsewhere is an error: {:#?}",
        r.issues
    );
}

#[test]
fn strings_with_html_tags_are_flagged() {
    let v = Validator::r4();
    let p = json!({"resourceType": "Patient", "text": narrative(),
        "name": [{"text": "Standard <script>somescript</script>"}]});
    let r = v.validate(&p, &ValidationOptions::default());
    let i = r
        .issues
        .iter()
        .find(|i| i.expression == "Patient.name[0].text")
        .expect("flagged");
    assert_eq!(i.severity, Severity::Information, "{i:?}");
    let secure = ValidationOptions {
        security_checks: true,
        ..Default::default()
    };
    let r = v.validate(&p, &secure);
    assert!(
        r.errors()
            .any(|i| i.message.contains("not allowed for security reasons")),
        "{:#?}",
        r.issues
    );
}

#[test]
fn a_found_target_needs_its_profile() {
    let mut v = Validator::r4();
    let profile = json!({"resourceType": "StructureDefinition", "url": "http://example.org/StructureDefinition/org",
        "name": "Org", "status": "active", "kind": "resource", "abstract": false, "type": "Organization",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Organization", "derivation": "constraint",
        "differential": {"element": [
            {"id": "Organization", "path": "Organization"},
            {"id": "Organization.endpoint", "path": "Organization.endpoint",
             "type": [{"code": "Reference", "targetProfile": ["http://example.org/StructureDefinition/missing"]}]}]}});
    v.add_resources(&[profile]).expect("loads");
    let opts = ValidationOptions {
        profiles: vec!["http://example.org/StructureDefinition/org".into()],
        ..Default::default()
    };
    let org = |reference: &str| {
        json!({"resourceType": "Organization", "text": narrative(), "name": "x",
            "contained": [{"resourceType": "Endpoint", "id": "e", "status": "active",
                "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-rest"},
                "payloadType": [{"text": "x"}], "address": "http://x.org"}],
            "endpoint": [{"reference": reference}]})
    };
    let r = v.validate(&org("#e"), &opts);
    assert!(
        r.errors().any(|i| i.message.contains("Unable to resolve the profile reference 'http://example.org/StructureDefinition/missing'")),
        "{:#?}",
        r.issues
    );
    // A target that cannot be found here is not judged (but #e is then unreferenced).
    let r = v.validate(&org("Endpoint/elsewhere"), &opts);
    assert!(
        !r.errors().any(|i| i.message.contains("Unable to resolve")),
        "{:#?}",
        r.issues
    );
}

#[test]
fn measure_reports_follow_their_measure() {
    let mut v = Validator::r4();
    let measure = json!({"resourceType": "Measure", "url": "http://example.org/Measure/m", "status": "active",
        "scoring": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/measure-scoring", "code": "cohort"}]},
        "group": [{"population": [{"code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/measure-population", "code": "initial-population"}]},
            "criteria": {"language": "text/cql", "expression": "x"}}],
            "stratifier": [{"id": "s1", "code": {"text": "age"}, "criteria": {"language": "text/cql", "expression": "y"}}]}]});
    v.add_resources(&[measure]).expect("loads");
    let report = |score: bool, stratifier: &str| {
        let mut r = json!({"resourceType": "MeasureReport", "text": narrative(), "status": "complete",
            "type": "summary", "measure": "http://example.org/Measure/m", "period": {"start": "2020-01-01"},
            "group": [{"stratifier": [{"code": [{"text": stratifier}]}]}]});
        if score {
            r["group"][0]["measureScore"] = json!({"value": 1});
        }
        r
    };
    let r = v.validate(&report(false, "age"), &ValidationOptions::default());
    assert!(!r.has_errors(), "{:#?}", r.issues);
    let r = v.validate(&report(true, "sex"), &ValidationOptions::default());
    let at = |p: &str| r.errors().filter(|i| i.expression == p).count();
    assert_eq!(
        at("MeasureReport.group[0].measureScore"),
        1,
        "{:#?}",
        r.issues
    );
    assert_eq!(
        at("MeasureReport.group[0].stratifier[0]"),
        1,
        "{:#?}",
        r.issues
    );
    assert!(
        r.errors().any(|i| i.message.contains("(id = 's1')")),
        "{:#?}",
        r.issues
    );
}

#[test]
fn paging_links_belong_to_searches() {
    let v = Validator::r4();
    let bundle = |kind: &str| {
        json!({"resourceType": "Bundle", "type": kind, "link": [{"relation": "next", "url": "http://x.org/fhir/Patient?page=2"}],
            "entry": [{"fullUrl": "http://x.org/fhir/Patient/1", "resource": {"resourceType": "Patient", "id": "1", "text": narrative()}}]})
    };
    let r = v.validate(&bundle("collection"), &ValidationOptions::default());
    assert!(
        r.errors()
            .any(|i| i.expression == "Bundle.link[0].relation"),
        "{:#?}",
        r.issues
    );
    let r = v.validate(&bundle("searchset"), &ValidationOptions::default());
    assert!(!r.has_errors(), "{:#?}", r.issues);
    let warned = |text: &str| {
        r.issues
            .iter()
            .any(|i| i.severity == Severity::Warning && i.message.contains(text))
    };
    assert!(
        warned("should have a self link") && warned("search modes"),
        "{:#?}",
        r.issues
    );
}

#[test]
fn capability_statements_and_huge_strings() {
    let v = Validator::r4();
    let cs = json!({"resourceType": "CapabilityStatement", "text": narrative(), "status": "active",
        "date": "2020-01-01", "kind": "instance", "fhirVersion": "4.0.1", "format": ["json"],
        "implementation": {"description": "x"},
        "rest": [{"mode": "server", "resource": [{"type": "Patient", "searchParam": [
            {"name": "family", "definition": "http://hl7.org/fhir/SearchParameter/individual-family", "type": "string"},
            {"name": "gender", "definition": "http://hl7.org/fhir/SearchParameter/individual-gender", "type": "string"}]}]}]});
    let r = v.validate(&cs, &ValidationOptions::default());
    let mismatches: Vec<_> = r
        .errors()
        .filter(|i| i.message.starts_with("Type mismatch"))
        .collect();
    assert_eq!(mismatches.len(), 1, "{:#?}", r.issues);
    assert_eq!(
        mismatches[0].expression,
        "CapabilityStatement.rest[0].resource[0].searchParam[1]"
    );
    let huge = json!({"resourceType": "Patient", "text": narrative(), "name": [{"text": "x".repeat(1024 * 1024 + 1)}]});
    let r = v.validate(&huge, &ValidationOptions::default());
    assert!(
        r.errors().any(|i| i.message.contains("1 MB")),
        "{:?}",
        r.errors().next()
    );
}

/// References between the resources of a Parameters resolve by type and id: a target
/// found there is checked against the element's target profile.
#[test]
fn parameters_resolve_references_among_their_resources() {
    let mut v = Validator::r4();
    let profile = json!({"resourceType": "StructureDefinition", "url": "http://example.org/StructureDefinition/named-org",
        "name": "NamedOrg", "status": "active", "kind": "resource", "abstract": false, "type": "Organization",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Organization", "derivation": "constraint",
        "differential": {"element": [{"id": "Organization", "path": "Organization"},
            {"id": "Organization.name", "path": "Organization.name", "min": 1}]}});
    let patient_profile = json!({"resourceType": "StructureDefinition", "url": "http://example.org/StructureDefinition/p",
        "name": "P", "status": "active", "kind": "resource", "abstract": false, "type": "Patient",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient", "derivation": "constraint",
        "differential": {"element": [{"id": "Patient", "path": "Patient"},
            {"id": "Patient.managingOrganization", "path": "Patient.managingOrganization",
             "type": [{"code": "Reference", "targetProfile": ["http://example.org/StructureDefinition/named-org"]}]}]}});
    v.add_resources(&[profile, patient_profile]).expect("loads");
    let params = |org: serde_json::Value| {
        json!({"resourceType": "Parameters", "parameter": [
            {"name": "patient", "resource": {"resourceType": "Patient", "id": "p1", "text": narrative(),
                "meta": {"profile": ["http://example.org/StructureDefinition/p"]},
                "managingOrganization": {"reference": "Organization/o1"}}},
            {"name": "org", "resource": org}]})
    };
    let named =
        json!({"resourceType": "Organization", "id": "o1", "text": narrative(), "name": "x"});
    let r = v.validate(&params(named), &ValidationOptions::default());
    assert!(!r.has_errors(), "{:#?}", r.issues);
    let unnamed =
        json!({"resourceType": "Organization", "id": "o1", "text": narrative(), "active": true});
    let r = v.validate(&params(unnamed), &ValidationOptions::default());
    assert!(
        r.errors()
            .any(|i| i.message.contains("does not conform to the target profile")),
        "{:#?}",
        r.issues
    );
}
