//! The CapabilityStatement, generated from the same definitions that route requests.

use fhir_model::resources::{
    CapabilityImplementation, CapabilityResource, CapabilityRest, CapabilitySoftware, Code,
};
use fhir_model::{CapabilityStatement, Definitions};

/// Interactions every resource type supports.
const TYPE_INTERACTIONS: &[&str] = &[
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
];

pub fn build(defs: &Definitions, base_url: Option<&str>, date: &str) -> CapabilityStatement {
    let mut cs = CapabilityStatement::server(date);
    cs.software = Some(CapabilitySoftware {
        name: "fhir-server".into(),
        version: Some(env!("CARGO_PKG_VERSION").into()),
    });
    cs.implementation = Some(CapabilityImplementation {
        description: "FHIR R4 server (Rust)".into(),
        url: base_url.map(str::to_string),
    });
    cs.format = vec!["application/fhir+json".into(), "json".into()];
    cs.patch_format = vec!["application/json-patch+json".into()];
    let resource = defs
        .resource_types()
        .iter()
        .map(|t| CapabilityResource {
            type_: t.clone(),
            profile: Some(format!("http://hl7.org/fhir/StructureDefinition/{t}")),
            interaction: TYPE_INTERACTIONS.iter().map(|c| Code::new(c)).collect(),
            versioning: Some("versioned-update".into()),
            read_history: true,
            update_create: true,
            conditional_create: true,
            conditional_update: true,
            conditional_delete: Some("single".into()),
            ..Default::default()
        })
        .collect();
    cs.rest = vec![CapabilityRest {
        mode: "server".into(),
        documentation: Some(
            "Conditional create, update, patch and delete match on _id and identifier.".into(),
        ),
        resource,
        interaction: vec![Code::new("history-system")],
        ..Default::default()
    }];
    cs
}
