//! Lossless FHIR JSON.
//!
//! `serde_json` is built for the whole workspace with `preserve_order` (members keep their
//! order) and `arbitrary_precision` (numbers keep their text: `1.50` stays `1.50`), so a
//! [`Value`] read and written back is the same JSON. Primitive extensions (`_given`),
//! null slots in arrays, contained resources and extensions are ordinary members and
//! survive as they are. The one textual normalisation is serde_json's: an exponent is
//! written `1e+2` (for `1e2` or `1E2`), the same decimal with the same digits.
//! [`Definitions::structure_issues`] reports members that the
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

/// Parses JSON text losslessly and refuses what FHIR JSON does not allow but JSON
/// parsers accept: a member name repeated in one object (serde_json keeps the last,
/// silently) and control characters other than tab, CR and LF in strings (FHIR strings
/// may not hold them, and PostgreSQL cannot store NUL). For request bodies.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, JsonSyntaxError> {
    let value = parse(bytes)?;
    strict::check(bytes).map_err(|e| JsonSyntaxError {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    Ok(value)
}

/// Parses JSON with `//` and `/* */` comments (as the HL7 validator reads files with
/// its `allow-comments` setting); comments become spaces, so positions in errors stay
/// those of the text as written.
pub fn parse_with_comments(bytes: &[u8]) -> Result<Value, JsonSyntaxError> {
    use std::io::Read;
    let mut plain = Vec::with_capacity(bytes.len());
    json_comments::StripComments::new(bytes)
        .read_to_end(&mut plain)
        .map_err(|e| JsonSyntaxError {
            line: 1,
            column: 1,
            message: format!("unterminated comment: {e}"),
        })?;
    parse(&plain)
}

/// The second pass of [`parse_strict`]: walks the text again without building values
/// (serde_json's `Value` cannot report duplicate members; a visitor sees each one).
mod strict {
    use serde::de::{DeserializeSeed, Deserializer, Error, MapAccess, SeqAccess, Visitor};
    use std::collections::HashSet;
    use std::fmt;

    pub fn check(bytes: &[u8]) -> Result<(), serde_json::Error> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        Check.deserialize(&mut de)
    }

    fn text<E: Error>(s: &str) -> Result<(), E> {
        match s
            .chars()
            .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
        {
            Some(c) => Err(E::custom(format_args!(
                "a string holds the control character U+{:04X}, which FHIR strings may not contain",
                c as u32
            ))),
            None => Ok(()),
        }
    }

    #[derive(Clone, Copy)]
    struct Check;

    impl<'de> DeserializeSeed<'de> for Check {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Check {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E: Error>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E: Error>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E: Error>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E: Error>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E: Error>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E: Error>(self, s: &str) -> Result<(), E> {
            text(s)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Check)?.is_some() {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            // With `arbitrary_precision` a number arrives as a one-member map; it has no
            // duplicates and its digits no control characters.
            let mut seen: HashSet<String> = HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                text(&key)?;
                if !seen.insert(key.clone()) {
                    return Err(A::Error::custom(format_args!(
                        "the member '{key}' appears twice in one object"
                    )));
                }
                map.next_value_seed(Check)?;
            }
            Ok(())
        }
    }
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
    /// A primitive value of the wrong JSON type or format (the message says which).
    InvalidValue(String),
    /// A repeating element given as a single value.
    ArrayExpected,
    /// A single-valued element given as an array.
    ArrayNotAllowed,
    /// `{}` or `[]`: FHIR JSON has no empty objects or arrays.
    Empty,
    /// `null` outside an array.
    Null,
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
            ElementIssueKind::InvalidValue(ref m) => write!(f, "{}: {m}", self.path),
            ElementIssueKind::ArrayExpected => {
                write!(f, "'{}' repeats: it must be a JSON array", self.path)
            }
            ElementIssueKind::ArrayNotAllowed => {
                write!(
                    f,
                    "'{}' does not repeat: it must not be an array",
                    self.path
                )
            }
            ElementIssueKind::Empty => {
                write!(f, "'{}' is empty: leave the element out instead", self.path)
            }
            ElementIssueKind::Null => {
                write!(f, "'{}' is null: leave the element out instead", self.path)
            }
        }
    }
}

impl Definitions {
    /// Every structural problem of `resource` (contained and nested resources
    /// included): members its definition does not know, primitive values of the wrong
    /// JSON type or format (the definitions' regexes), arrays where an element does not
    /// repeat and the reverse, nulls and empty objects. Empty: the JSON fits.
    pub fn structure_issues(&self, resource: &Value) -> Vec<ElementIssue> {
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
        let many = step.element().max.is_many();
        match v {
            Value::Array(items) => {
                if !many {
                    self.issue(path.to_string(), ElementIssueKind::ArrayNotAllowed);
                }
                if items.is_empty() {
                    self.issue(path.to_string(), ElementIssueKind::Empty);
                }
                for (i, item) in items.iter().enumerate() {
                    // A null slot is allowed where `_name` carries that item's extensions.
                    if !item.is_null() {
                        self.item(step, item, &format!("{path}[{i}]"));
                    }
                }
            }
            Value::Null => self.issue(path.to_string(), ElementIssueKind::Null),
            _ => {
                if many {
                    self.issue(path.to_string(), ElementIssueKind::ArrayExpected);
                }
                self.item(step, v, path)
            }
        }
    }

    fn item(&mut self, step: ChildStep<'d>, v: &Value, path: &str) {
        let code = step.type_code;
        if let Some(c) = code.filter(|c| self.defs.is_primitive(c)) {
            return self.primitive(c, v, path);
        }
        if code.is_some_and(|c| {
            c == "Resource" || c == "DomainResource" || self.defs.is_resource_type(c)
        }) {
            return self.resource(v, path);
        }
        let Some(obj) = v.as_object() else {
            return self.issue(path.to_string(), ElementIssueKind::NotAnObject);
        };
        if obj.is_empty() {
            return self.issue(path.to_string(), ElementIssueKind::Empty);
        }
        if let Some(next) = self.defs.descend(step) {
            self.object(next, obj, path, false);
        }
    }

    /// The JSON type and the format (the definitions' regex) of a primitive value.
    fn primitive(&mut self, code: &str, v: &Value, path: &str) {
        let (kind_ok, expected) = match code {
            "boolean" => (v.is_boolean(), "true or false"),
            "integer" | "positiveInt" | "unsignedInt" | "decimal" | "integer64" => {
                (v.is_number(), "a JSON number")
            }
            _ => (v.is_string(), "a JSON string"),
        };
        if !kind_ok {
            let m = format!("a {code} must be {expected}");
            return self.issue(path.to_string(), ElementIssueKind::InvalidValue(m));
        }
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return,
        };
        if self
            .defs
            .primitive_regex(code)
            .is_some_and(|re| !re.is_match(&text))
        {
            let shown: String = text.chars().take(60).collect();
            let m = format!("'{shown}' is not a valid {code}");
            self.issue(path.to_string(), ElementIssueKind::InvalidValue(m));
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
