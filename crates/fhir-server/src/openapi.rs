//! The OpenAPI 3.0 document of the FHIR API (`GET /fhir/openapi.json`), generated from
//! the CapabilityStatement: a path per resource type for search, create and the
//! conditional interactions, per instance for read, update, patch and delete, the
//! history paths, each type's declared search parameters as query parameters, and a
//! path per declared operation at the levels this server answers it.
//!
//! Bodies are described by resource type only (`resourceType` fixed, everything else
//! open): the definitions, not a JSON schema, say what a resource may hold, and
//! `$validate` applies them.

use serde_json::{json, Map, Value};

/// Where an operation is answered: `S` system (`/$op`), `T` type (`/Type/$op`), `I`
/// instance (`/Type/{id}/$op`); the operations of every type are under `/{type}/…`.
fn levels(resource_type: Option<&str>, op: &str) -> &'static str {
    match (resource_type, op) {
        (None, "export") => "S",
        (None, "validate") => "TI",
        (None, "meta") => "STI",
        (None, "meta-add" | "meta-delete") => "I",
        (Some("Patient"), "export") => "T",
        (Some("Group"), "export") => "I",
        (Some(_), "lookup") => "T",
        (Some(_), "document" | "events") => "I",
        (Some(_), _) => "TI",
        (None, _) => "S",
    }
}

/// Operations that change nothing: answered to `GET` too.
fn readable(op: &str) -> bool {
    !matches!(op, "meta-add" | "meta-delete" | "expunge")
}

/// Operations answered to `POST` (`$everything` takes its parameters in the URL only).
fn postable(op: &str) -> bool {
    op != "everything"
}

fn param_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/parameters/{name}")})
}

fn response(description: &str, schema: &str) -> Value {
    json!({"description": description, "content": {"application/fhir+json": {
        "schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn responses(ok: &str, schema: &str) -> Value {
    json!({
        ok: response("Success", schema),
        "default": response("An OperationOutcome saying what went wrong", "OperationOutcome"),
    })
}

fn body(schema: &str) -> Value {
    json!({"required": true, "content": {
        "application/fhir+json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}},
        "application/fhir+xml": {"schema": {"type": "string"}}}})
}

fn op(
    summary: String,
    tag: &str,
    params: Vec<Value>,
    body_of: Option<&str>,
    ok: (&str, &str),
) -> Value {
    let mut o = json!({
        "summary": summary,
        "tags": [tag],
        "parameters": params,
        "responses": responses(ok.0, ok.1),
    });
    if let Some(schema) = body_of {
        o["requestBody"] = body(schema);
    }
    o
}

/// The search parameters of a type (and the common ones) as query parameters.
fn search_parameters(resource: &Value, common: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = common.to_vec();
    for p in resource["searchParam"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or_default();
        out.push(json!({
            "name": name,
            "in": "query",
            "required": false,
            "description": format!("{} search parameter ({})", p["type"].as_str().unwrap_or("?"),
                p["definition"].as_str().unwrap_or_default()),
            "schema": {"type": "string"},
        }));
    }
    out
}

/// A JSON Patch or a FHIRPath Patch Parameters.
fn patch_body() -> Value {
    json!({"required": true, "content": {
        "application/json-patch+json": {"schema": {"type": "array", "items": {"type": "object"}}},
        "application/fhir+json": {"schema": {"$ref": "#/components/schemas/Parameters"}}}})
}

/// `[type]`: search, create, and the conditional update, patch and delete.
fn collection(t: &str, resource: &Value, common: &[Value], has: &dyn Fn(&str) -> bool) -> Value {
    let mut item = Map::new();
    if has("search-type") {
        let params = search_parameters(resource, common);
        item.insert(
            "get".into(),
            op(format!("Search {t}"), t, params, None, ("200", "Bundle")),
        );
    }
    if has("create") {
        item.insert(
            "post".into(),
            op(format!("Create a {t}"), t, vec![], Some(t), ("201", t)),
        );
    }
    let conditional = |what: &str| format!("{what} the {t} a search finds (conditional)");
    if has("update") {
        item.insert(
            "put".into(),
            op(conditional("Update"), t, vec![], Some(t), ("200", t)),
        );
    }
    if has("patch") {
        let mut patch = op(conditional("Patch"), t, vec![], None, ("200", t));
        patch["requestBody"] = patch_body();
        item.insert("patch".into(), patch);
    }
    if has("delete") {
        let ok = ("204", "OperationOutcome");
        item.insert(
            "delete".into(),
            op(conditional("Delete"), t, vec![], None, ok),
        );
    }
    Value::Object(item)
}

/// `[type]/[id]`: read, update, patch, delete.
fn instance(t: &str, has: &dyn Fn(&str) -> bool) -> Value {
    let id = || vec![param_ref("id")];
    let mut item = Map::new();
    if has("read") {
        item.insert(
            "get".into(),
            op(format!("Read a {t}"), t, id(), None, ("200", t)),
        );
    }
    if has("update") {
        let summary = format!("Update (or create) a {t}");
        item.insert("put".into(), op(summary, t, id(), Some(t), ("200", t)));
    }
    if has("patch") {
        let mut patch = op(format!("Patch a {t}"), t, id(), None, ("200", t));
        patch["requestBody"] = patch_body();
        item.insert("patch".into(), patch);
    }
    if has("delete") {
        let ok = ("204", "OperationOutcome");
        item.insert(
            "delete".into(),
            op(format!("Delete a {t}"), t, id(), None, ok),
        );
    }
    Value::Object(item)
}

/// The interactions and operations of one resource type.
fn type_paths(paths: &mut Map<String, Value>, resource: &Value, common: &[Value]) {
    let t = resource["type"].as_str().unwrap_or_default();
    let codes: Vec<&str> = resource["interaction"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["code"].as_str())
        .collect();
    let has = |code: &str| codes.contains(&code);
    paths.insert(format!("/{t}"), collection(t, resource, common, &has));
    paths.insert(format!("/{t}/{{id}}"), instance(t, &has));
    if has("search-type") {
        paths.insert(
            format!("/{t}/_search"),
            form_search(&format!("Search {t}"), t),
        );
    }
    let get = |summary: String, params: Vec<Value>, ok: &str| json!({"get": op(summary, t, params, None, ("200", ok))});
    if has("history-instance") {
        paths.insert(
            format!("/{t}/{{id}}/_history"),
            get(format!("History of a {t}"), vec![param_ref("id")], "Bundle"),
        );
    }
    if has("vread") {
        let params = vec![param_ref("id"), param_ref("vid")];
        paths.insert(
            format!("/{t}/{{id}}/_history/{{vid}}"),
            get(format!("A version of a {t}"), params, t),
        );
    }
    if has("history-type") {
        paths.insert(
            format!("/{t}/_history"),
            get(format!("History of every {t}"), vec![], "Bundle"),
        );
    }
    for o in resource["operation"].as_array().into_iter().flatten() {
        operation_paths(paths, Some(t), o);
    }
}

/// `POST …/_search` with the parameters as a form.
fn form_search(summary: &str, tag: &str) -> Value {
    json!({"post": {
        "summary": format!("{summary} with form parameters"), "tags": [tag],
        "requestBody": {"required": true, "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object", "additionalProperties": {"type": "string"}}}}},
        "responses": responses("200", "Bundle")}})
}

/// The Bulk Data status and file URLs a kick-off answers with.
fn bulk_paths(paths: &mut Map<String, Value>) {
    let job = json!({"name": "job", "in": "path", "required": true, "schema": {"type": "string"}});
    let file =
        json!({"name": "file", "in": "path", "required": true, "schema": {"type": "string"}});
    let status = op(
        "Export status: 202 while running, 200 with the manifest".into(),
        "System",
        vec![job.clone()],
        None,
        ("200", "Resource"),
    );
    let cancel = op(
        "Cancel an export and remove its files".into(),
        "System",
        vec![job.clone()],
        None,
        ("202", "OperationOutcome"),
    );
    paths.insert(
        "/$export-status/{job}".into(),
        json!({"get": status, "delete": cancel}),
    );
    let mut download = op(
        "An export file (NDJSON)".into(),
        "System",
        vec![job, file],
        None,
        ("200", "Resource"),
    );
    download["responses"]["200"]["content"] =
        json!({"application/fhir+ndjson": {"schema": {"type": "string"}}});
    paths.insert(
        "/$export-file/{job}/{file}".into(),
        json!({"get": download}),
    );
}

/// The paths of one declared operation.
fn operation_paths(paths: &mut Map<String, Value>, resource_type: Option<&str>, o: &Value) {
    let name = o["name"].as_str().unwrap_or_default();
    let definition = o["definition"].as_str().unwrap_or_default();
    let tag = resource_type.unwrap_or("System");
    for level in levels(resource_type, name).chars() {
        let (path, params) = match (level, resource_type) {
            ('S', _) => (format!("/${name}"), vec![]),
            ('T', Some(t)) => (format!("/{t}/${name}"), vec![]),
            ('I', Some(t)) => (format!("/{t}/{{id}}/${name}"), vec![param_ref("id")]),
            ('T', None) => (format!("/{{type}}/${name}"), vec![param_ref("type")]),
            (_, None) => (
                format!("/{{type}}/{{id}}/${name}"),
                vec![param_ref("type"), param_ref("id")],
            ),
            _ => continue,
        };
        let summary = format!("${name} ({definition})");
        let mut item = Map::new();
        if readable(name) {
            let mut get = op(
                summary.clone(),
                tag,
                params.clone(),
                None,
                ("200", "Resource"),
            );
            if let Some(p) = get["parameters"].as_array_mut() {
                p.push(json!({"name": "parameters", "in": "query", "required": false, "style": "form", "explode": true,
                    "schema": {"type": "object", "additionalProperties": {"type": "string"}},
                    "description": "The operation's parameters of simple types"}));
            }
            item.insert("get".into(), get);
        }
        if postable(name) {
            item.insert(
                "post".into(),
                op(
                    summary,
                    tag,
                    params,
                    Some("Parameters"),
                    ("200", "Resource"),
                ),
            );
        }
        paths.insert(path, Value::Object(item));
    }
}

fn schemas(types: &[&str]) -> Value {
    let mut s = Map::new();
    let open = |name: &str| {
        json!({"type": "object", "required": ["resourceType"], "additionalProperties": true,
        "properties": {"resourceType": {"type": "string", "enum": [name]}, "id": {"type": "string"}}})
    };
    s.insert(
        "Resource".into(),
        json!({"type": "object", "required": ["resourceType"], "additionalProperties": true,
        "properties": {"resourceType": {"type": "string"}, "id": {"type": "string"}}}),
    );
    for t in types
        .iter()
        .copied()
        .chain(["Bundle", "OperationOutcome", "Parameters"])
    {
        s.insert(t.to_string(), open(t));
    }
    Value::Object(s)
}

fn components(types: &[&str], security: bool, token_url: Option<&str>) -> Value {
    let text = |name: &str, description: &str| json!({"name": name, "in": "query", "required": false, "description": description, "schema": {"type": "string"}});
    let mut c = json!({
        "schemas": schemas(types),
        "parameters": {
            "id": {"name": "id", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9\\-\\.]{1,64}$"}},
            "vid": {"name": "vid", "in": "path", "required": true, "schema": {"type": "string"}},
            "type": {"name": "type", "in": "path", "required": true, "schema": {"type": "string", "enum": types}},
            "_count": {"name": "_count", "in": "query", "required": false, "description": "Page size", "schema": {"type": "integer", "minimum": 0}},
            "_sort": text("_sort", "Sort keys, comma-separated, `-` for descending"),
            "_include": text("_include", "Resources the matches refer to (Type:param[:target])"),
            "_revinclude": text("_revinclude", "Resources that refer to the matches (Type:param[:target])"),
            "_summary": {"name": "_summary", "in": "query", "required": false, "schema": {"type": "string", "enum": ["true", "text", "data", "count", "false"]}},
            "_elements": text("_elements", "Elements to return, comma-separated"),
            "_total": {"name": "_total", "in": "query", "required": false, "schema": {"type": "string", "enum": ["none", "estimate", "accurate"]}},
            "_format": text("_format", "json or xml (instead of Accept)"),
        },
    });
    if security {
        let mut flows = json!({"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
            "description": "SMART on FHIR access token (Backend Services, the OpenID Connect provider's), or a registered client certificate (mutual TLS)"}});
        if let Some(url) = token_url {
            flows["smart-backend"] = json!({"type": "oauth2", "description": "SMART Backend Services: client_credentials with a private_key_jwt client assertion",
                "flows": {"clientCredentials": {"tokenUrl": url, "scopes": {"system/*.rs": "read and search everything", "system/*.cruds": "everything"}}}});
        }
        c["securitySchemes"] = flows;
    }
    c
}

/// The OpenAPI document for the CapabilityStatement `capability` (JSON), served at
/// `base` (the configured public base URL, or `/fhir`).
pub fn from_capability(capability: &Value, base: &str) -> Value {
    let rest = &capability["rest"][0];
    let resources: Vec<&Value> = rest["resource"].as_array().into_iter().flatten().collect();
    let types: Vec<&str> = resources
        .iter()
        .filter_map(|r| r["type"].as_str())
        .collect();
    let common: Vec<Value> = [
        "_count",
        "_sort",
        "_include",
        "_revinclude",
        "_summary",
        "_elements",
        "_total",
        "_format",
    ]
    .iter()
    .map(|n| param_ref(n))
    .collect();
    let mut paths = Map::new();
    paths.insert("/metadata".into(), json!({"get": op("The CapabilityStatement".into(), "System", vec![], None, ("200", "Resource"))}));
    let system = |code: &str| {
        rest["interaction"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|i| i["code"] == code)
    };
    let mut root = Map::new();
    if system("transaction") || system("batch") {
        root.insert(
            "post".into(),
            op(
                "A batch or transaction Bundle".into(),
                "System",
                vec![],
                Some("Bundle"),
                ("200", "Bundle"),
            ),
        );
    }
    if system("search-system") {
        root.insert(
            "get".into(),
            op(
                "Search every type".into(),
                "System",
                search_parameters(rest, &common),
                None,
                ("200", "Bundle"),
            ),
        );
    }
    paths.insert("/".into(), Value::Object(root));
    if system("search-system") {
        paths.insert(
            "/_search".into(),
            form_search("Search every type", "System"),
        );
    }
    if system("history-system") {
        paths.insert("/_history".into(), json!({"get": op("History of everything".into(), "System", vec![], None, ("200", "Bundle"))}));
    }
    for r in &resources {
        type_paths(&mut paths, r, &common);
    }
    for o in rest["operation"].as_array().into_iter().flatten() {
        operation_paths(&mut paths, None, o);
        if o["name"] == "export" {
            bulk_paths(&mut paths);
        }
    }
    let security = rest.get("security").is_some();
    let token_url = rest
        .pointer("/security/extension/0/extension/0/valueUri")
        .and_then(Value::as_str);
    let mut doc = json!({
        "openapi": "3.0.3",
        "info": {
            "title": "FHIR R4 API",
            "version": capability.pointer("/software/version").and_then(Value::as_str).unwrap_or("0"),
            "description": format!("Generated from the CapabilityStatement ({base}/metadata), which is the authority. FHIR {}.",
                capability["fhirVersion"].as_str().unwrap_or("4.0.1")),
        },
        "servers": [{"url": base}],
        "paths": paths,
        "components": components(&types, security, token_url),
    });
    if security {
        doc["security"] = json!([{"bearer": []}]);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_routes() {
        assert_eq!(levels(Some("Patient"), "everything"), "TI");
        assert_eq!(levels(Some("Group"), "export"), "I");
        assert_eq!(levels(Some("CodeSystem"), "lookup"), "T");
        assert_eq!(levels(None, "export"), "S");
        assert_eq!(levels(None, "meta"), "STI");
    }
}
