//! Lossless FHIR JSON.
//!
//! `serde_json` is built for the whole workspace with `preserve_order` (members keep their
//! order) and `arbitrary_precision` (numbers keep their text: `1.50` stays `1.50`), so a
//! [`Value`] read and written back is the same JSON. Primitive extensions (`_given`),
//! null slots in arrays, contained resources and extensions are ordinary members and
//! survive as they are. The one textual normalisation is serde_json's: an exponent is
//! written `1e+2` (for `1e2` or `1E2`), the same decimal with the same digits.
//! [`Definitions::unknown_elements`] reports members that the
//! definitions do not know, with their FHIRPath location.

use serde_json::{Map, Value};

use crate::definitions::{ChildStep, Definitions, ElementCursor};

/// A JSON syntax error with its position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON at line {line}, column {column}: {message}")]
pub struct JsonSyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parses JSON text losslessly.
pub fn parse(bytes: &[u8]) -> Result<Value, JsonSyntaxError> {
    serde_json::from_slice(bytes).map_err(|e| JsonSyntaxError {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

/// Compact JSON text (the form the server stores and serves).
pub fn to_string(v: &Value) -> String {
    // Serializing a Value into a String cannot fail: keys are strings, numbers are valid.
    serde_json::to_string(v).unwrap_or_default()
}

/// Indented JSON text (`_pretty=true`).
pub fn to_string_pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// What is wrong with an element that the definitions do not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElementIssueKind {
    /// A member that no element of the type defines.
    Unknown,
    /// `resourceType` missing or not a known resource type.
    UnknownResourceType,
    /// A JSON object was expected.
    NotAnObject,
    /// `_name` on an element that is not primitive.
    NotPrimitive,
}

/// An element issue with its location as FHIRPath (`Patient.name[0].foo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementIssue {
    pub path: String,
    pub kind: ElementIssueKind,
}

impl std::fmt::Display for ElementIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            ElementIssueKind::Unknown => write!(f, "unknown element '{}'", self.path),
            ElementIssueKind::UnknownResourceType => {
                write!(f, "unknown resource type at '{}'", self.path)
            }
            ElementIssueKind::NotAnObject => write!(f, "'{}' must be a JSON object", self.path),
            ElementIssueKind::NotPrimitive => {
                write!(
                    f,
                    "'{}' is not a primitive element and cannot have '_' extensions",
                    self.path
                )
            }
        }
    }
}

impl Definitions {
    /// Every member of `resource` (contained and nested resources included) that its
    /// definition does not know. An empty list means every element was recognised.
    pub fn unknown_elements(&self, resource: &Value) -> Vec<ElementIssue> {
        let mut out = Vec::new();
        Walker {
            defs: self,
            out: &mut out,
        }
        .resource(resource, "");
        out
    }
}

/// `Observation.valueQuantity` is `Observation.value.ofType(Quantity)` in FHIRPath.
fn fhirpath_step(path: &str, step: ChildStep<'_>) -> String {
    let element = step.element();
    match (element.is_choice, step.type_code) {
        (true, Some(t)) => format!("{path}.{}.ofType({t})", element.name),
        _ => format!("{path}.{}", element.name),
    }
}

struct Walker<'d, 'o> {
    defs: &'d Definitions,
    out: &'o mut Vec<ElementIssue>,
}

impl<'d> Walker<'d, '_> {
    fn issue(&mut self, path: String, kind: ElementIssueKind) {
        self.out.push(ElementIssue { path, kind });
    }

    fn resource(&mut self, v: &Value, at: &str) {
        let Some(obj) = v.as_object() else {
            let path = if at.is_empty() {
                "$".to_string()
            } else {
                at.to_string()
            };
            return self.issue(path, ElementIssueKind::NotAnObject);
        };
        let rt = obj
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("");
        let Some(root) = self
            .defs
            .root(rt)
            .filter(|_| self.defs.is_resource_type(rt))
        else {
            let path = if at.is_empty() {
                "resourceType".to_string()
            } else {
                format!("{at}.resourceType")
            };
            return self.issue(path, ElementIssueKind::UnknownResourceType);
        };
        let path = if at.is_empty() {
            rt.to_string()
        } else {
            at.to_string()
        };
        self.object(root, obj, &path, true);
    }

    fn object(
        &mut self,
        at: ElementCursor<'d>,
        obj: &Map<String, Value>,
        path: &str,
        is_resource: bool,
    ) {
        for (key, value) in obj {
            if is_resource && key == "resourceType" {
                continue;
            }
            let (name, underscore) = match key.strip_prefix('_') {
                Some(n) => (n, true),
                None => (key.as_str(), false),
            };
            let Some(step) = self.defs.child(at, name) else {
                self.issue(format!("{path}.{key}"), ElementIssueKind::Unknown);
                continue;
            };
            let child_path = fhirpath_step(path, step);
            if underscore {
                self.primitive_extension(step, value, &child_path);
            } else {
                self.value(step, value, &child_path);
            }
        }
    }

    fn value(&mut self, step: ChildStep<'d>, v: &Value, path: &str) {
        match v {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.item(step, item, &format!("{path}[{i}]"));
                }
            }
            _ => self.item(step, v, path),
        }
    }

    fn item(&mut self, step: ChildStep<'d>, v: &Value, path: &str) {
        let code = step.type_code;
        if code.is_some_and(|c| self.defs.is_primitive(c)) {
            return; // value syntax is the validator's business
        }
        if code.is_some_and(|c| {
            c == "Resource" || c == "DomainResource" || self.defs.is_resource_type(c)
        }) {
            return self.resource(v, path);
        }
        let Some(obj) = v.as_object() else {
            if !v.is_null() {
                self.issue(path.to_string(), ElementIssueKind::NotAnObject);
            }
            return;
        };
        if let Some(next) = self.defs.descend(step) {
            self.object(next, obj, path, false);
        }
    }

    /// `_given: [null, {"extension": …}]`: the `id`/`extension` of primitive values.
    fn primitive_extension(&mut self, step: ChildStep<'d>, v: &Value, path: &str) {
        if !step.type_code.is_some_and(|c| self.defs.is_primitive(c)) {
            return self.issue(path.to_string(), ElementIssueKind::NotPrimitive);
        }
        let Some(element_root) = self.defs.root("Element") else {
            return;
        };
        let one = |w: &mut Self, item: &Value, p: String| match item {
            Value::Null => {}
            Value::Object(obj) => w.object(element_root, obj, &p, false),
            _ => w.issue(p, ElementIssueKind::NotAnObject),
        };
        match v {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    one(self, item, format!("{path}[{i}]"));
                }
            }
            _ => one(self, v, path.to_string()),
        }
    }
}
