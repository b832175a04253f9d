//! Index values computed on write. For now the `identifier` token of every resource
//! type that defines that search parameter (what conditional operations match on); the
//! search engine replaces this with every parameter's FHIRPath expression.

use fhir_model::Definitions;
use fhir_store::{IndexRows, Indexer, TokenRow};
use serde_json::Value;

pub struct IdentifierIndexer {
    pub defs: &'static Definitions,
}

impl Indexer for IdentifierIndexer {
    fn index(&self, resource_type: &str, resource: &Value) -> IndexRows {
        let mut rows = IndexRows::default();
        if self
            .defs
            .search_param(resource_type, "identifier")
            .is_none()
        {
            return rows;
        }
        let one = |v: &Value| -> Option<TokenRow> {
            let system = v.get("system").and_then(Value::as_str).map(str::to_string);
            let code = v.get("value").and_then(Value::as_str).map(str::to_string);
            (system.is_some() || code.is_some()).then(|| TokenRow {
                param: "identifier".into(),
                system,
                code,
            })
        };
        match resource.get("identifier") {
            Some(Value::Array(items)) => rows.tokens.extend(items.iter().filter_map(one)),
            Some(v @ Value::Object(_)) => rows.tokens.extend(one(v)),
            _ => {}
        }
        rows
    }
}
