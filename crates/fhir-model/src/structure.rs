//! StructureDefinitions as tables: one [`TypeDef`] per type or profile, its elements in
//! snapshot order, and for each element a map from JSON property name to child element.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// The `kind` of a StructureDefinition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TypeKind {
    PrimitiveType,
    ComplexType,
    Resource,
    Logical,
}

/// Upper bound of a cardinality; `None` is `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Max(pub Option<u32>);

impl Max {
    pub fn is_many(self) -> bool {
        self.0.is_none_or(|m| m > 1)
    }
}

/// One allowed type of an element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeRef {
    /// The FHIR type code (`string`, `Quantity`, `Reference`…). System types of the
    /// FHIRPath namespace are mapped to the FHIR type the definitions name for them.
    pub code: String,
    pub profiles: Vec<String>,
    pub target_profiles: Vec<String>,
}

/// Binding strength of a coded element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BindingStrength {
    Required,
    Extensible,
    Preferred,
    Example,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub strength: BindingStrength,
    pub value_set: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConstraintSeverity {
    Error,
    Warning,
}

/// An invariant: a FHIRPath expression that must hold for the element.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Constraint {
    pub key: String,
    pub severity: ConstraintSeverity,
    pub human: String,
    #[serde(default)]
    pub expression: Option<String>,
}

/// Slicing rules declared on an element (used by profiles).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Slicing {
    #[serde(default)]
    pub discriminator: Vec<Discriminator>,
    #[serde(default)]
    pub ordered: Option<bool>,
    pub rules: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Discriminator {
    #[serde(rename = "type")]
    pub kind: String,
    pub path: String,
}

/// One element of a StructureDefinition snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct ElementDef {
    /// Element id (`Observation.component:systolic.code`).
    pub id: String,
    /// Element path (`Observation.component.code`).
    pub path: String,
    /// Last path segment without `[x]` (`value` for `Observation.value[x]`).
    pub name: String,
    pub is_choice: bool,
    pub min: u32,
    pub max: Max,
    pub types: Vec<TypeRef>,
    /// `contentReference` resolved to the index of the referenced element.
    pub content_reference: Option<usize>,
    pub binding: Option<Binding>,
    pub constraints: Vec<Constraint>,
    pub is_summary: bool,
    pub is_modifier: bool,
    pub slice_name: Option<String>,
    pub slicing: Option<Slicing>,
    /// `fixed[x]`: the type suffix and the value.
    pub fixed: Option<(String, Value)>,
    /// `pattern[x]`: the type suffix and the value.
    pub pattern: Option<(String, Value)>,
    /// `minValue[x]` and `maxValue[x]`: the type suffix and the value.
    pub min_value: Option<(String, Value)>,
    pub max_value: Option<(String, Value)>,
    /// `maxLength`: the most characters a string value may have.
    pub max_length: Option<u64>,
}

/// Where a JSON property leads from an element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildRef {
    /// Index of the child element in the same [`TypeDef`].
    pub element: usize,
    /// For a choice element, the index in `types` that the property name selects.
    pub choice: Option<usize>,
}

/// A type (resource, data type, primitive) or a profile, from one StructureDefinition.
#[derive(Debug, Clone)]
pub struct TypeDef {
    pub url: String,
    pub version: Option<String>,
    /// StructureDefinition.name (`Patient`, `vitalsigns`…).
    pub name: String,
    /// The type it defines or constrains (`Patient`, `Observation`…).
    pub type_name: String,
    pub kind: TypeKind,
    pub is_abstract: bool,
    /// `specialization` or `constraint` (profiles); `None` for the roots.
    pub derivation: Option<String>,
    pub base_definition: Option<String>,
    /// Snapshot elements; index 0 is the root element.
    pub elements: Vec<ElementDef>,
    /// Differential elements as published (profiles shipped without a snapshot).
    pub differential: Vec<ElementDef>,
    /// For primitive types, the regex their value must match (from the definitions).
    pub value_regex: Option<String>,
    children: Vec<crate::FastMap<Box<str>, ChildRef>>,
}

impl TypeDef {
    /// The child reached from element `parent` through JSON property `key`
    /// (`valueQuantity` finds `value[x]` with its Quantity type).
    pub fn child(&self, parent: usize, key: &str) -> Option<ChildRef> {
        self.children.get(parent)?.get(key).copied()
    }

    /// True when the element has children defined inline (BackboneElement and the like).
    pub fn has_inline_children(&self, element: usize) -> bool {
        self.children.get(element).is_some_and(|c| !c.is_empty())
    }

    /// The JSON property names allowed below an element.
    pub fn child_names(&self, parent: usize) -> impl Iterator<Item = (&str, ChildRef)> {
        self.children
            .get(parent)
            .into_iter()
            .flat_map(|m| m.iter().map(|(k, v)| (&**k, *v)))
    }

    /// The index of the element with this path (first match; slices have the same path).
    pub fn element_index(&self, path: &str) -> Option<usize> {
        self.elements.iter().position(|e| e.path == path)
    }

    pub fn is_specialization(&self) -> bool {
        self.derivation.as_deref() != Some("constraint")
    }
}

// ---------------------------------------------------------------------------------------
// Deserialization of StructureDefinition JSON into these tables.

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawStructureDefinition {
    url: String,
    #[serde(default)]
    version: Option<String>,
    /// Required by the spec (sdf-0), but test profiles and drafts leave it out: the
    /// last segment of the URL stands in.
    #[serde(default)]
    name: Option<String>,
    #[serde(rename = "type")]
    type_name: String,
    kind: TypeKind,
    #[serde(rename = "abstract", default)]
    is_abstract: bool,
    #[serde(default)]
    derivation: Option<String>,
    #[serde(default)]
    base_definition: Option<String>,
    #[serde(default)]
    snapshot: Option<RawElements>,
    #[serde(default)]
    differential: Option<RawElements>,
}

#[derive(Deserialize)]
struct RawElements {
    #[serde(default)]
    element: Vec<RawElement>,
}

#[derive(Default)]
struct RawElement {
    id: Option<String>,
    path: String,
    min: Option<u32>,
    max: Option<String>,
    types: Vec<RawType>,
    content_reference: Option<String>,
    binding: Option<RawBinding>,
    constraints: Vec<Constraint>,
    is_summary: bool,
    is_modifier: bool,
    slice_name: Option<String>,
    slicing: Option<Slicing>,
    fixed: Option<(String, Value)>,
    pattern: Option<(String, Value)>,
    min_value: Option<(String, Value)>,
    max_value: Option<(String, Value)>,
    max_length: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawType {
    code: String,
    #[serde(default)]
    profile: Vec<String>,
    #[serde(default)]
    target_profile: Vec<String>,
    #[serde(default)]
    extension: Vec<RawTypeExtension>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTypeExtension {
    url: String,
    #[serde(default)]
    value_url: Option<String>,
    #[serde(default)]
    value_string: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBinding {
    strength: BindingStrength,
    #[serde(default)]
    value_set: Option<String>,
}

/// Hand-written so that only the members we use are built, and `fixed[x]`/`pattern[x]`
/// (open-ended names) are captured without `#[serde(flatten)]`, which would lose the
/// exact text of decimals under `arbitrary_precision`.
impl<'de> Deserialize<'de> for RawElement {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawElement;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an ElementDefinition")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawElement, A::Error> {
                let mut e = RawElement::default();
                let mut have_path = false;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "id" => e.id = Some(map.next_value()?),
                        "path" => {
                            e.path = map.next_value()?;
                            have_path = true;
                        }
                        "min" => e.min = Some(map.next_value()?),
                        // A number (`0` for `"0"`) is read as its text, as HL7's
                        // Java reader does for profiles written by hand.
                        "max" => {
                            e.max = match map.next_value::<Value>()? {
                                Value::String(s) => Some(s),
                                Value::Number(n) => Some(n.to_string()),
                                _ => return Err(serde::de::Error::custom("max is not a string")),
                            }
                        }
                        "type" => e.types = map.next_value()?,
                        "contentReference" => e.content_reference = Some(map.next_value()?),
                        "binding" => e.binding = Some(map.next_value()?),
                        "constraint" => e.constraints = map.next_value()?,
                        "isSummary" => e.is_summary = map.next_value()?,
                        "isModifier" => e.is_modifier = map.next_value()?,
                        "sliceName" => e.slice_name = Some(map.next_value()?),
                        "slicing" => e.slicing = Some(map.next_value()?),
                        k if k.starts_with("fixed") => {
                            e.fixed = Some((k["fixed".len()..].to_string(), map.next_value()?))
                        }
                        "maxLength" => e.max_length = Some(map.next_value()?),
                        k if k.starts_with("minValue") => {
                            e.min_value = Some((k["minValue".len()..].into(), map.next_value()?))
                        }
                        k if k.starts_with("maxValue") => {
                            e.max_value = Some((k["maxValue".len()..].into(), map.next_value()?))
                        }
                        k if k.starts_with("pattern") => {
                            e.pattern = Some((k["pattern".len()..].to_string(), map.next_value()?))
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                if !have_path {
                    return Err(de::Error::missing_field("path"));
                }
                Ok(e)
            }
        }
        d.deserialize_map(V)
    }
}

const REGEX_EXT: &str = "http://hl7.org/fhir/StructureDefinition/regex";
const FHIR_TYPE_EXT: &str = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type";

/// `http://hl7.org/fhirpath/System.String` (with the fhir-type extension) → `string`, `id`, `uri`…
fn fhir_type_code(t: &RawType) -> String {
    if let Some(sys) = t.code.strip_prefix("http://hl7.org/fhirpath/System.") {
        let named = t
            .extension
            .iter()
            .find(|x| x.url == FHIR_TYPE_EXT)
            .and_then(|x| x.value_url.clone());
        return named.unwrap_or_else(|| match sys {
            "Boolean" => "boolean".into(),
            "Integer" => "integer".into(),
            "Decimal" => "decimal".into(),
            "Date" => "date".into(),
            "DateTime" => "dateTime".into(),
            "Time" => "time".into(),
            _ => "string".into(),
        });
    }
    t.code.clone()
}

fn convert_element(raw: RawElement) -> ElementDef {
    let last = raw.path.rsplit('.').next().unwrap_or(&raw.path);
    let is_choice = last.ends_with("[x]");
    let name = last.trim_end_matches("[x]").to_string();
    let max = match raw.max.as_deref() {
        Some("*") | None => Max(None),
        Some(n) => Max(n.parse().ok()),
    };
    ElementDef {
        id: raw.id.unwrap_or_else(|| raw.path.clone()),
        name,
        is_choice,
        min: raw.min.unwrap_or(0),
        max,
        types: raw
            .types
            .iter()
            .map(|t| TypeRef {
                code: fhir_type_code(t),
                profiles: t.profile.clone(),
                target_profiles: t.target_profile.clone(),
            })
            .collect(),
        content_reference: None,
        binding: raw.binding.map(|b| Binding {
            strength: b.strength,
            value_set: b.value_set,
        }),
        constraints: raw.constraints,
        is_summary: raw.is_summary,
        is_modifier: raw.is_modifier,
        slice_name: raw.slice_name,
        slicing: raw.slicing,
        fixed: raw.fixed,
        pattern: raw.pattern,
        min_value: raw.min_value,
        max_value: raw.max_value,
        max_length: raw.max_length,
        path: raw.path,
    }
}

/// Upper-cases the first letter: the suffix a choice type adds to a property name.
pub fn type_suffix(code: &str) -> String {
    let mut c = code.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

impl RawStructureDefinition {
    pub(crate) fn into_type_def(self) -> TypeDef {
        let mut content_refs = Vec::new();
        let raw_elements = self.snapshot.map(|s| s.element).unwrap_or_default();
        let value_path = format!("{}.value", self.type_name);
        let value_regex = (self.kind == TypeKind::PrimitiveType)
            .then(|| {
                raw_elements
                    .iter()
                    .filter(|e| e.path == value_path)
                    .flat_map(|e| e.types.iter())
                    .flat_map(|t| t.extension.iter())
                    .find(|x| x.url == REGEX_EXT)
                    .and_then(|x| x.value_string.clone())
            })
            .flatten();
        let elements: Vec<ElementDef> = raw_elements
            .into_iter()
            .map(|raw| {
                content_refs.push(raw.content_reference.clone());
                convert_element(raw)
            })
            .collect();
        let differential = self
            .differential
            .map(|s| s.element.into_iter().map(convert_element).collect())
            .unwrap_or_default();
        let name = self
            .name
            .unwrap_or_else(|| self.url.rsplit('/').next().unwrap_or_default().to_string());
        let mut def = TypeDef {
            url: self.url,
            version: self.version,
            name,
            type_name: self.type_name,
            kind: self.kind,
            is_abstract: self.is_abstract,
            derivation: self.derivation,
            base_definition: self.base_definition,
            elements,
            differential,
            value_regex,
            children: Vec::new(),
        };
        resolve_content_references(&mut def, &content_refs);
        def.children = build_children(&def.elements);
        def
    }
}

/// `#Questionnaire.item` (R4 form) or `http://…#Questionnaire.item` → element index.
fn resolve_content_references(def: &mut TypeDef, refs: &[Option<String>]) {
    for (i, r) in refs.iter().enumerate() {
        let Some(r) = r else { continue };
        let target = r.rsplit('#').next().unwrap_or(r);
        let idx = def
            .elements
            .iter()
            .position(|e| e.id == target || e.path == target);
        def.elements[i].content_reference = idx;
    }
}

/// For each element, the JSON property names of its direct children (slices excluded).
fn build_children(elements: &[ElementDef]) -> Vec<crate::FastMap<Box<str>, ChildRef>> {
    let mut children: Vec<crate::FastMap<Box<str>, ChildRef>> =
        vec![crate::FastMap::default(); elements.len()];
    let by_path: HashMap<&str, usize> = elements
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, e)| e.slice_name.is_none() && !e.id.contains(':'))
        .map(|(i, e)| (e.path.as_str(), i))
        .collect();
    for (i, e) in elements.iter().enumerate() {
        if e.slice_name.is_some() || e.id.contains(':') {
            continue;
        }
        let Some((parent_path, _)) = e.path.rsplit_once('.') else {
            continue;
        };
        let Some(&parent) = by_path.get(parent_path) else {
            continue;
        };
        let map = &mut children[parent];
        if e.is_choice {
            for (t, ty) in e.types.iter().enumerate() {
                let key = format!("{}{}", e.name, type_suffix(&ty.code));
                map.insert(
                    key.into(),
                    ChildRef {
                        element: i,
                        choice: Some(t),
                    },
                );
            }
        } else {
            map.insert(
                e.name.as_str().into(),
                ChildRef {
                    element: i,
                    choice: None,
                },
            );
        }
    }
    children
}
