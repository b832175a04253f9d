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
