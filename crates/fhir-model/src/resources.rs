//! Resources the server builds or reads itself: OperationOutcome, Bundle,
//! CapabilityStatement and Parameters, with builders. Every other resource type is
//! handled as JSON through the definition tables.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::datatypes::{CodeableConcept, Coding, Meta};

fn is_false(b: &bool) -> bool {
    !*b
}

// ------------------------------------------------------------------ OperationOutcome

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IssueSeverity {
    Fatal,
    Error,
    Warning,
    Information,
}

/// `OperationOutcome.issue.code` (the IssueType value set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IssueType {
    Invalid,
    Structure,
    Required,
    Value,
    Invariant,
    Security,
    Login,
    Unknown,
    Expired,
    Forbidden,
    Suppressed,
    Processing,
    NotSupported,
    Duplicate,
    MultipleMatches,
    NotFound,
    Deleted,
    TooLong,
    CodeInvalid,
    Extension,
    TooCostly,
    BusinessRule,
    Conflict,
    Transient,
    LockError,
    NoStore,
    Exception,
    Timeout,
    Incomplete,
    Throttled,
    Informational,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Issue {
    pub severity: IssueSeverity,
    pub code: IssueType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<CodeableConcept>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expression: Vec<String>,
}

impl Issue {
    pub fn new(severity: IssueSeverity, code: IssueType, text: impl Into<String>) -> Self {
        Issue {
            severity,
            code,
            details: Some(CodeableConcept::text(text)),
            diagnostics: None,
            expression: Vec::new(),
        }
    }
    pub fn error(code: IssueType, text: impl Into<String>) -> Self {
        Issue::new(IssueSeverity::Error, code, text)
    }
    pub fn warning(code: IssueType, text: impl Into<String>) -> Self {
        Issue::new(IssueSeverity::Warning, code, text)
    }
    pub fn information(code: IssueType, text: impl Into<String>) -> Self {
        Issue::new(IssueSeverity::Information, code, text)
    }
    /// Adds the FHIRPath location of the problem (`Patient.name[0].given`).
    pub fn at(mut self, expression: impl Into<String>) -> Self {
        self.expression.push(expression.into());
        self
    }
    pub fn diagnostics(mut self, text: impl Into<String>) -> Self {
        self.diagnostics = Some(text.into());
        self
    }
    /// The human text of the issue.
    pub fn text(&self) -> &str {
        self.details
            .as_ref()
            .and_then(|d| d.text.as_deref())
            .or(self.diagnostics.as_deref())
            .unwrap_or("")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationOutcome {
    pub resource_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub issue: Vec<Issue>,
}

impl Default for OperationOutcome {
    fn default() -> Self {
        OperationOutcome {
            resource_type: "OperationOutcome".into(),
            id: None,
            issue: Vec::new(),
        }
    }
}

impl OperationOutcome {
    pub fn new() -> Self {
        Self::default()
    }
    /// An outcome with one issue.
    pub fn of(issue: Issue) -> Self {
        OperationOutcome {
            issue: vec![issue],
            ..Default::default()
        }
    }
    pub fn with(mut self, issue: Issue) -> Self {
        self.issue.push(issue);
        self
    }
    pub fn has_errors(&self) -> bool {
        self.issue
            .iter()
            .any(|i| matches!(i.severity, IssueSeverity::Error | IssueSeverity::Fatal))
    }
    pub fn to_value(&self) -> Value {
        crate::datatypes::to_value(self)
    }
}

// ------------------------------------------------------------------------ Bundle

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BundleType {
    Document,
    Message,
    Transaction,
    TransactionResponse,
    Batch,
    BatchResponse,
    History,
    Searchset,
    Collection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleLink {
    pub relation: String,
    pub url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchEntryMode {
    Match,
    Include,
    Outcome,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntrySearch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<SearchEntryMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<crate::datatypes::Decimal>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryRequest {
    pub method: String,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub if_none_match: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub if_modified_since: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub if_match: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub if_none_exist: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryResponse {
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleEntry {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub link: Vec<BundleLink>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<EntrySearch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<EntryRequest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<EntryResponse>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    pub resource_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    #[serde(rename = "type")]
    pub type_: BundleType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub link: Vec<BundleLink>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entry: Vec<BundleEntry>,
}

impl Bundle {
    pub fn new(type_: BundleType) -> Self {
        Bundle {
            resource_type: "Bundle".into(),
            id: None,
            meta: None,
            type_,
            timestamp: None,
            total: None,
            link: Vec::new(),
            entry: Vec::new(),
        }
    }
    pub fn link(mut self, relation: &str, url: impl Into<String>) -> Self {
        self.link.push(BundleLink {
            relation: relation.into(),
            url: url.into(),
        });
        self
    }
    pub fn total(mut self, total: u64) -> Self {
        self.total = Some(total);
        self
    }
    pub fn entry(mut self, entry: BundleEntry) -> Self {
        self.entry.push(entry);
        self
    }
    pub fn to_value(&self) -> Value {
        crate::datatypes::to_value(self)
    }
}

// ------------------------------------------------------------ CapabilityStatement

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Code {
    pub code: String,
}

impl Code {
    pub fn new(code: &str) -> Self {
        Code { code: code.into() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CapabilitySearchParam {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub definition: Option<String>,
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documentation: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CapabilityOperation {
    pub name: String,
    pub definition: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CapabilityResource {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interaction: Vec<Code>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub versioning: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_history: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub update_create: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub conditional_create: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditional_read: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub conditional_update: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditional_delete: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reference_policy: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search_include: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search_rev_include: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search_param: Vec<CapabilitySearchParam>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operation: Vec<CapabilityOperation>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CapabilityRest {
    pub mode: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documentation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource: Vec<CapabilityResource>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interaction: Vec<Code>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search_param: Vec<CapabilitySearchParam>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operation: Vec<CapabilityOperation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CapabilitySoftware {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CapabilityImplementation {
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CapabilityStatement {
    pub resource_type: String,
    pub status: String,
    pub date: String,
    pub kind: String,
    /// Canonical URLs of CapabilityStatements this server also conforms to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instantiates: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software: Option<CapabilitySoftware>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub implementation: Option<CapabilityImplementation>,
    pub fhir_version: String,
    pub format: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patch_format: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rest: Vec<CapabilityRest>,
}

impl CapabilityStatement {
    /// A server CapabilityStatement (`kind` = instance) for FHIR 4.0.1.
    pub fn server(date: impl Into<String>) -> Self {
        CapabilityStatement {
            resource_type: "CapabilityStatement".into(),
            status: "active".into(),
            date: date.into(),
            kind: "instance".into(),
            instantiates: Vec::new(),
            software: None,
            implementation: None,
            fhir_version: "4.0.1".into(),
            format: Vec::new(),
            patch_format: Vec::new(),
            rest: Vec::new(),
        }
    }
    pub fn to_value(&self) -> Value {
        crate::datatypes::to_value(self)
    }
}

// -------------------------------------------------------------------- Parameters

/// One `Parameters.parameter`; `value` is the `value[x]` type suffix and its value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parameter {
    pub name: String,
    pub value: Option<(String, Value)>,
    pub resource: Option<Value>,
    pub part: Vec<Parameter>,
}

impl Parameter {
    pub fn value(name: impl Into<String>, type_suffix: &str, value: Value) -> Self {
        Parameter {
            name: name.into(),
            value: Some((type_suffix.into(), value)),
            ..Default::default()
        }
    }
    pub fn resource(name: impl Into<String>, resource: Value) -> Self {
        Parameter {
            name: name.into(),
            resource: Some(resource),
            ..Default::default()
        }
    }
    pub fn coding(name: impl Into<String>, coding: &Coding) -> Self {
        Parameter::value(name, "Coding", crate::datatypes::to_value(coding))
    }
    /// The value if it is a JSON string (`valueString`, `valueCode`, `valueUri`…).
    pub fn value_str(&self) -> Option<&str> {
        self.value.as_ref().and_then(|(_, v)| v.as_str())
    }

    fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), Value::String(self.name.clone()));
        if let Some((suffix, v)) = &self.value {
            m.insert(format!("value{suffix}"), v.clone());
        }
        if let Some(r) = &self.resource {
            m.insert("resource".into(), r.clone());
        }
        if !self.part.is_empty() {
            m.insert(
                "part".into(),
                Value::Array(self.part.iter().map(Parameter::to_value).collect()),
            );
        }
        Value::Object(m)
    }

    fn from_value(v: &Value, path: &str) -> Result<Parameter, String> {
        let obj = v
            .as_object()
            .ok_or_else(|| format!("{path} must be an object"))?;
        let mut p = Parameter::default();
        for (k, val) in obj {
            match k.as_str() {
                "name" => {
                    p.name = val
                        .as_str()
                        .ok_or_else(|| format!("{path}.name must be a string"))?
                        .into()
                }
                "resource" => p.resource = Some(val.clone()),
                "part" => {
                    let parts = val
                        .as_array()
                        .ok_or_else(|| format!("{path}.part must be an array"))?;
                    for (i, part) in parts.iter().enumerate() {
                        p.part
                            .push(Parameter::from_value(part, &format!("{path}.part[{i}]"))?);
                    }
                }
                k if k.starts_with("value") && k.len() > 5 => {
                    p.value = Some((k[5..].to_string(), val.clone()))
                }
                "id" | "extension" | "modifierExtension" => {}
                other => return Err(format!("{path}.{other} is not a known element")),
            }
        }
        if p.name.is_empty() {
            return Err(format!("{path}.name is required"));
        }
        Ok(p)
    }
}

/// A Parameters resource.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parameters {
    pub parameter: Vec<Parameter>,
}

impl Parameters {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with(mut self, p: Parameter) -> Self {
        self.parameter.push(p);
        self
    }
    /// The first parameter with this name.
    pub fn get(&self, name: &str) -> Option<&Parameter> {
        self.parameter.iter().find(|p| p.name == name)
    }
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("resourceType".into(), Value::String("Parameters".into()));
        if !self.parameter.is_empty() {
            m.insert(
                "parameter".into(),
                Value::Array(self.parameter.iter().map(Parameter::to_value).collect()),
            );
        }
        Value::Object(m)
    }
    /// Reads a Parameters resource; the error names the offending element.
    pub fn from_value(v: &Value) -> Result<Parameters, String> {
        if v.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
            return Err("resourceType must be 'Parameters'".into());
        }
        let mut out = Parameters::new();
        if let Some(ps) = v.get("parameter") {
            let ps = ps
                .as_array()
                .ok_or("Parameters.parameter must be an array")?;
            for (i, p) in ps.iter().enumerate() {
                out.parameter.push(Parameter::from_value(
                    p,
                    &format!("Parameters.parameter[{i}]"),
                )?);
            }
        }
        Ok(out)
    }
}
