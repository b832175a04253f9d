//! SearchParameter definitions.

use serde::Deserialize;

/// The `type` of a search parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchParamType {
    Number,
    Date,
    String,
    Token,
    Reference,
    Composite,
    Quantity,
    Uri,
    Special,
}

impl SearchParamType {
    pub fn as_str(self) -> &'static str {
        match self {
            SearchParamType::Number => "number",
            SearchParamType::Date => "date",
            SearchParamType::String => "string",
            SearchParamType::Token => "token",
            SearchParamType::Reference => "reference",
            SearchParamType::Composite => "composite",
            SearchParamType::Quantity => "quantity",
            SearchParamType::Uri => "uri",
            SearchParamType::Special => "special",
        }
    }
}

/// One component of a composite search parameter.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SearchParamComponent {
    /// Canonical URL of the component's own SearchParameter.
    pub definition: String,
    /// FHIRPath, relative to the composite's expression.
    pub expression: String,
}

/// A SearchParameter as the definitions publish it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchParamDef {
    pub url: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: String,
    pub code: String,
    #[serde(default)]
    pub base: Vec<String>,
    #[serde(rename = "type")]
    pub kind: SearchParamType,
    #[serde(default)]
    pub description: Option<String>,
    /// FHIRPath extracting the values; absent for a few special parameters.
    #[serde(default)]
    pub expression: Option<String>,
    #[serde(default)]
    pub xpath_usage: Option<String>,
    #[serde(default)]
    pub target: Vec<String>,
    /// Examples shipped in packages are experimental (`SearchParameter/example-reference`).
    #[serde(default)]
    pub experimental: Option<bool>,
    #[serde(default)]
    pub multiple_or: Option<bool>,
    #[serde(default)]
    pub multiple_and: Option<bool>,
    #[serde(default)]
    pub comparator: Vec<String>,
    #[serde(default)]
    pub modifier: Vec<String>,
    #[serde(default)]
    pub chain: Vec<String>,
    #[serde(default)]
    pub component: Vec<SearchParamComponent>,
}

/// A CompartmentDefinition: for each resource type, the search parameters that link
/// a resource to the compartment's owner.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CompartmentDef {
    pub url: String,
    /// `Patient`, `Encounter`, `RelatedPerson`, `Practitioner` or `Device`.
    pub code: String,
    #[serde(default)]
    pub resource: Vec<CompartmentResource>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CompartmentResource {
    pub code: String,
    #[serde(default)]
    pub param: Vec<String>,
}

impl CompartmentDef {
    /// The parameters linking `resource_type` to this compartment (empty: not a member).
    pub fn params_for(&self, resource_type: &str) -> &[String] {
        self.resource
            .iter()
            .find(|r| r.code == resource_type)
            .map(|r| r.param.as_slice())
            .unwrap_or(&[])
    }
}
