//! The CapabilityStatement, generated from the same definitions that route requests.

use fhir_model::resources::{
    CapabilityImplementation, CapabilityOperation, CapabilityResource, CapabilityRest,
    CapabilitySearchParam, CapabilitySoftware, Code,
};
use fhir_model::SearchParamType;
use fhir_model::{CapabilityStatement, Definitions};
use fhir_search::SearchRegistry;

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
    "search-type",
];

/// The search parameters of a type that the store can answer (special parameters such
/// as `near` are not offered yet).
fn search_params(registry: &SearchRegistry, resource_type: &str) -> Vec<CapabilitySearchParam> {
    registry
        .params_for(resource_type)
        .into_iter()
        .filter(|p| p.kind() != SearchParamType::Special)
        .map(|p| CapabilitySearchParam {
            name: p.code().to_string(),
            definition: Some(p.url().to_string()),
            type_: p.kind().as_str().to_string(),
            documentation: None,
        })
        .collect()
}

fn includes(registry: &SearchRegistry, resource_type: &str) -> Vec<String> {
    let mut out = vec!["*".to_string()];
    out.extend(
        registry
            .params_for(resource_type)
            .into_iter()
            .filter(|p| p.kind() == SearchParamType::Reference)
            .map(|p| format!("{resource_type}:{}", p.code())),
    );
    out
}

/// Every `_revinclude` of each type: `Source:param` for each reference parameter of any
/// type that may point to it (one pass over all parameters; parameters without declared
/// targets point anywhere).
fn rev_includes(
    registry: &SearchRegistry,
    types: &[String],
) -> std::collections::HashMap<String, Vec<String>> {
    let mut out: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    for source in types {
        for p in registry.params_for(source) {
            if p.kind() != SearchParamType::Reference {
                continue;
            }
            let value = format!("{source}:{}", p.code());
            let targets: Vec<&String> = if p.targets().is_empty() {
                types.iter().collect()
            } else {
                p.targets().iter().collect()
            };
            for t in targets {
                out.entry(t.clone()).or_default().push(value.clone());
            }
        }
    }
    out
}

const BULK_DATA: &str = "http://hl7.org/fhir/uv/bulkdata";

fn operation(name: &str, definition: &str) -> CapabilityOperation {
    CapabilityOperation {
        name: name.into(),
        definition: definition.into(),
    }
}

/// Operations of one resource type: Patient `$export` and `$everything`, Group `$export`,
/// Composition `$document`, the terminology operations of CodeSystem and ValueSet.
fn type_operations(resource_type: &str) -> Vec<CapabilityOperation> {
    match resource_type {
        "Patient" => vec![
            operation(
                "export",
                &format!("{BULK_DATA}/OperationDefinition/patient-export"),
            ),
            operation(
                "everything",
                "http://hl7.org/fhir/OperationDefinition/Patient-everything",
            ),
        ],
        "Group" => vec![operation(
            "export",
            &format!("{BULK_DATA}/OperationDefinition/group-export"),
        )],
        "Composition" => vec![operation(
            "document",
            "http://hl7.org/fhir/OperationDefinition/Composition-document",
        )],
        "CodeSystem" => ["lookup", "validate-code", "subsumes"]
            .iter()
            .map(|op| {
                operation(
                    op,
                    &format!("http://hl7.org/fhir/OperationDefinition/CodeSystem-{op}"),
                )
            })
            .collect(),
        "ConceptMap" => vec![operation(
            "translate",
            "http://hl7.org/fhir/OperationDefinition/ConceptMap-translate",
        )],
        "ValueSet" => ["expand", "validate-code"]
            .iter()
            .map(|op| {
                operation(
                    op,
                    &format!("http://hl7.org/fhir/OperationDefinition/ValueSet-{op}"),
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}

pub fn build(defs: &Definitions, base_url: Option<&str>, date: &str) -> CapabilityStatement {
    let registry = SearchRegistry::r4();
    let mut cs = CapabilityStatement::server(date);
    cs.software = Some(CapabilitySoftware {
        name: "fhir-server".into(),
        version: Some(env!("CARGO_PKG_VERSION").into()),
    });
    cs.implementation = Some(CapabilityImplementation {
        description: "FHIR R4 server (Rust)".into(),
        url: base_url.map(str::to_string),
    });
    cs.format = vec![
        "application/fhir+json".into(),
        "json".into(),
        "application/fhir+xml".into(),
        "xml".into(),
    ];
    cs.patch_format = vec![
        "application/json-patch+json".into(),
        "application/fhir+json".into(),
        "application/fhir+xml".into(),
    ];
    let mut rev = rev_includes(registry, defs.resource_types());
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
            search_include: includes(registry, t),
            search_rev_include: rev.remove(t).unwrap_or_default(),
            search_param: search_params(registry, t),
            operation: type_operations(t),
            ..Default::default()
        })
        .collect();
    cs.rest = vec![CapabilityRest {
        mode: "server".into(),
        documentation: Some(
            "Search: every string, token, date, number, quantity, reference, uri and composite parameter, with chains, _has, _include/_revinclude (:iterate), _sort, _count paging, _total, _summary and _elements; Bulk Data $export (system, Patient, Group; NDJSON) and Patient $everything; token :in/:not-in (value sets this server can expand) and :of-type are offered; token :above/:below and special parameters are not yet. Conditional create, update, patch and delete accept any such search.".into(),
        ),
        resource,
        interaction: vec![
            Code::new("transaction"),
            Code::new("batch"),
            Code::new("history-system"),
            Code::new("search-system"),
        ],
        search_param: search_params(registry, "Resource"),
        operation: vec![
            operation(
                "validate",
                "http://hl7.org/fhir/OperationDefinition/Resource-validate",
            ),
            operation("export", &format!("{BULK_DATA}/OperationDefinition/export")),
            operation("meta", "http://hl7.org/fhir/OperationDefinition/Resource-meta"),
            operation(
                "meta-add",
                "http://hl7.org/fhir/OperationDefinition/Resource-meta-add",
            ),
            operation(
                "meta-delete",
                "http://hl7.org/fhir/OperationDefinition/Resource-meta-delete",
            ),
        ],
        ..Default::default()
    }];
    cs.instantiates = vec![format!("{BULK_DATA}/CapabilityStatement/bulk-data")];
    cs
}

const BACKPORT: &str = "http://hl7.org/fhir/uv/subscriptions-backport";

/// The CapabilityStatement `capability` (JSON) with what the Subscriptions Backport IG
/// asks a server to declare (CapabilityStatement-backport-subscription-server-r4, which
/// it then instantiates): the backport-subscription profile and the `$status`,
/// `$events` and `$get-ws-binding-token` operations on Subscription, and each topic's canonical URL in the
/// capabilitystatement-subscriptiontopic-canonical extension.
pub fn with_subscriptions<'a>(
    capability: &str,
    topics: impl Iterator<Item = &'a String>,
) -> String {
    let Ok(mut cs) = fhir_model::json::parse(capability.as_bytes()) else {
        return capability.to_string();
    };
    let mut urls: Vec<&String> = topics.collect();
    urls.sort();
    let resources = cs
        .pointer_mut("/rest/0/resource")
        .and_then(serde_json::Value::as_array_mut);
    if let Some(sub) = resources
        .into_iter()
        .flatten()
        .find(|r| r["type"] == "Subscription")
    {
        let extensions: Vec<serde_json::Value> = urls
            .iter()
            .map(|u| serde_json::json!({"url": format!("{BACKPORT}/StructureDefinition/capabilitystatement-subscriptiontopic-canonical"), "valueCanonical": u}))
            .collect();
        if !extensions.is_empty() {
            sub["extension"] = serde_json::Value::Array(extensions);
        }
        sub["supportedProfile"] = serde_json::json!([format!(
            "{BACKPORT}/StructureDefinition/backport-subscription"
        )]);
        let ops = sub.as_object_mut().map(|o| {
            o.entry("operation")
                .or_insert_with(|| serde_json::json!([]))
        });
        if let Some(serde_json::Value::Array(ops)) = ops {
            for (name, id) in [
                ("status", "backport-subscription-status"),
                ("events", "backport-subscription-events"),
                (
                    "get-ws-binding-token",
                    "backport-subscription-get-ws-binding-token",
                ),
            ] {
                ops.push(serde_json::json!({"name": name,
                    "definition": format!("{BACKPORT}/OperationDefinition/{id}")}));
            }
        }
    }
    if let Some(serde_json::Value::Array(i)) = cs.get_mut("instantiates") {
        i.push(serde_json::json!(format!(
            "{BACKPORT}/CapabilityStatement/backport-subscription-server-r4"
        )));
    }
    fhir_model::json::to_string(&cs)
}

/// States how clients authenticate (SMART on FHIR), when authentication is on.
pub fn add_security(cs: &mut CapabilityStatement, token_url: Option<String>) {
    let mut security = serde_json::json!({
        "cors": false,
        "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}]}],
        "description": "SMART Backend Services (client_credentials with private_key_jwt, RS384/ES384), bearer tokens of the configured OpenID Connect provider, or mutual TLS client certificates; SMART v1 and v2 scopes. Discovery: .well-known/smart-configuration."
    });
    if let Some(url) = token_url {
        security["extension"] = serde_json::json!([{
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [{"url": "token", "valueUri": url}]
        }]);
    }
    for rest in &mut cs.rest {
        rest.security = Some(security.clone());
    }
}
