//! ValueSets as the terminology holds them: the compose (includes, excludes, filters),
//! a shipped expansion, the status fields an operation reports on, the supplements it
//! needs, and its definition as written (what `$expand` repeats).

use std::sync::Arc;

use serde::Deserialize;

use super::{lenient, standards_status};

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ValueSetFilter {
    pub property: String,
    pub op: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConceptReference {
    pub code: String,
    #[serde(default)]
    pub display: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValueSetInclude {
    #[serde(default)]
    pub system: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub concept: Vec<ConceptReference>,
    #[serde(default)]
    pub filter: Vec<ValueSetFilter>,
    #[serde(default)]
    pub value_set: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ValueSetCompose {
    #[serde(default)]
    pub include: Vec<ValueSetInclude>,
    #[serde(default)]
    pub exclude: Vec<ValueSetInclude>,
    /// `false`: inactive codes are left out of the value set.
    #[serde(default, deserialize_with = "lenient")]
    pub inactive: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ExpansionContains {
    #[serde(default)]
    pub system: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub display: Option<String>,
    #[serde(default)]
    pub contains: Vec<ExpansionContains>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ValueSetExpansion {
    #[serde(default)]
    pub contains: Vec<ExpansionContains>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ValueSetDef {
    pub url: String,
    pub version: Option<String>,
    pub name: Option<String>,
    pub compose: Option<ValueSetCompose>,
    pub expansion: Option<ValueSetExpansion>,
    pub status: Option<String>,
    pub experimental: Option<bool>,
    /// The `structuredefinition-standards-status` extension (`deprecated`, …).
    pub standards_status: Option<String>,
    /// The supplements the value set needs (`valueset-supplement` extensions).
    pub required_supplements: Vec<String>,
    /// The resource as written, less `id`, `meta`, `text` and `expansion`, as compact
    /// JSON: what an expansion of it repeats (`$expand` answers with the value set and
    /// its expansion). Text, not a parsed tree: the packages' 1,300 value sets held as
    /// trees cost 25 MiB.
    pub definition: Arc<str>,
}

impl ValueSetDef {
    /// [`ValueSetDef::definition`] as a JSON object.
    /// (Text nested deeper than the JSON reader takes gives the value set's URL and
    /// version alone.)
    pub fn definition_json(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(&self.definition).unwrap_or_else(|_| {
            let mut m = serde_json::Map::new();
            m.insert("resourceType".into(), "ValueSet".into());
            m.insert("url".into(), self.url.clone().into());
            if let Some(v) = &self.version {
                m.insert("version".into(), v.clone().into());
            }
            m.insert(
                "status".into(),
                self.status.clone().unwrap_or("unknown".into()).into(),
            );
            m
        })
    }
}

/// The parts of a ValueSet read into [`ValueSetDef`]'s fields.
#[derive(Deserialize)]
struct ValueSetFields {
    url: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    compose: Option<ValueSetCompose>,
    #[serde(default)]
    expansion: Option<ValueSetExpansion>,
    #[serde(default, deserialize_with = "lenient")]
    status: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    experimental: Option<bool>,
    #[serde(default, rename = "extension", deserialize_with = "standards_status")]
    standards_status: Option<String>,
}

/// The extension by which a value set names a supplement it needs.
const VALUESET_SUPPLEMENT: &str = "http://hl7.org/fhir/StructureDefinition/valueset-supplement";

fn required_supplements(vs: &serde_json::Map<String, serde_json::Value>) -> Vec<String> {
    vs.get("extension")
        .and_then(|e| e.as_array())
        .into_iter()
        .flatten()
        .filter(|e| e["url"] == VALUESET_SUPPLEMENT)
        .filter_map(|e| e["valueCanonical"].as_str())
        .map(str::to_string)
        .collect()
}

impl<'de> Deserialize<'de> for ValueSetDef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut definition = serde_json::Map::deserialize(d)?;
        let f: ValueSetFields =
            serde_json::from_value(serde_json::Value::Object(definition.clone()))
                .map_err(serde::de::Error::custom)?;
        for k in ["id", "meta", "text", "expansion"] {
            definition.remove(k);
        }
        let text = serde_json::to_string(&definition).map_err(serde::de::Error::custom)?;
        Ok(ValueSetDef {
            url: f.url,
            version: f.version,
            name: f.name,
            compose: f.compose,
            expansion: f.expansion,
            status: f.status,
            experimental: f.experimental,
            standards_status: f.standards_status,
            required_supplements: required_supplements(&definition),
            definition: text.into(),
        })
    }
}
