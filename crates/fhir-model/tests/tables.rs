//! The look-up tables built from the R4 core package.

use std::time::Instant;

use fhir_model::structure::BindingStrength;
use fhir_model::{Definitions, SearchParamType, TypeKind};

#[test]
fn has_every_r4_resource_type() {
    let defs = Definitions::r4();
    // The package defines 146 concrete resource types (Bundle, Binary and Parameters included).
    assert_eq!(defs.resource_types().len(), 146);
    for t in [
        "Patient",
        "Observation",
        "Bundle",
        "Parameters",
        "Binary",
        "MedicinalProductUndesirableEffect",
    ] {
        assert!(defs.is_resource_type(t), "{t}");
    }
    assert!(!defs.is_resource_type("DomainResource"));
    assert!(!defs.is_resource_type("HumanName"));
}

#[test]
fn elements_carry_types_cardinality_bindings_constraints_and_flags() {
    let defs = Definitions::r4();
    let obs = defs.type_def("Observation").unwrap();
    assert_eq!(obs.kind, TypeKind::Resource);
    let status = &obs.elements[obs.element_index("Observation.status").unwrap()];
    assert_eq!((status.min, status.max.0), (1, Some(1)));
    assert!(status.is_summary && status.is_modifier);
    let binding = status.binding.as_ref().unwrap();
    assert_eq!(binding.strength, BindingStrength::Required);
    assert_eq!(
        binding.value_set.as_deref(),
        Some("http://hl7.org/fhir/ValueSet/observation-status|4.0.1")
    );
    let value = &obs.elements[obs.element_index("Observation.value[x]").unwrap()];
    assert!(value.is_choice);
    assert_eq!(value.types.len(), 11);
    let root = &obs.elements[0];
    assert!(root
        .constraints
        .iter()
        .any(|c| c.key == "obs-6" && c.expression.is_some()));
    let id = &obs.elements[obs.element_index("Observation.id").unwrap()];
    assert_eq!(
        id.types[0].code, "string",
        "System.String ids map to the FHIR type"
    );
    let subject = &obs.elements[obs.element_index("Observation.subject").unwrap()];
    assert!(subject.types[0]
        .target_profiles
        .iter()
        .any(|p| p.ends_with("/Patient")));
}

#[test]
fn choice_properties_resolve_to_their_type() {
    let defs = Definitions::r4();
    let root = defs.root("Observation").unwrap();
    let step = defs.child(root, "valueQuantity").unwrap();
    assert_eq!(step.type_code, Some("Quantity"));
    assert_eq!(step.element().path, "Observation.value[x]");
    assert!(
        defs.child(root, "valueAge").is_none(),
        "Age is not one of value[x]'s types"
    );
    let q = defs.descend(step).unwrap();
    assert_eq!(defs.child(q, "unit").unwrap().type_code, Some("string"));
}

#[test]
fn search_parameters_by_type_and_code() {
    let defs = Definitions::r4();
    let code = defs.search_param("Observation", "code").unwrap();
    assert_eq!(code.kind, SearchParamType::Token);
    assert!(code
        .expression
        .as_deref()
        .unwrap()
        .contains("Observation.code"));
    let cvq = defs
        .search_param("Observation", "code-value-quantity")
        .unwrap();
    assert_eq!(cvq.component.len(), 2);
    let id = defs.search_param("Patient", "_id").unwrap();
    assert_eq!(id.kind, SearchParamType::Token);
    assert!(defs.search_param("Patient", "_lastUpdated").is_some());
    assert!(defs.search_param("Patient", "_text").is_some());
    let subject = defs.search_param("Observation", "subject").unwrap();
    assert!(subject.target.iter().any(|t| t == "Patient"));
    assert!(defs.search_params_for("Patient").len() > 25);
}

#[test]
fn compartments_and_terminology() {
    let defs = Definitions::r4();
    let patient = defs.compartment("Patient").unwrap();
    assert_eq!(patient.params_for("Observation"), ["subject", "performer"]);
    assert!(patient.params_for("Organization").is_empty());
    let genders = defs
        .terminology()
        .expand("http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1")
        .unwrap();
    let codes: Vec<&str> = genders.iter().map(|c| c.code.as_str()).collect();
    assert_eq!(codes, ["male", "female", "other", "unknown"]);
    assert!(defs
        .code_system("http://hl7.org/fhir/observation-status")
        .is_some());
}

#[test]
fn loads_well_under_a_second() {
    let start = Instant::now();
    let defs = Definitions::from_packages(&[fhir_model::definitions::R4_CORE_PACKAGE]).unwrap();
    let took = start.elapsed();
    println!(
        "definitions load: {took:?}, {} structures",
        defs.structures().count()
    );
    assert!(defs.structures().count() > 600);
}
