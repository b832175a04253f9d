//! Values of a FHIRPath collection: nodes of the input JSON (borrowed, typed by the
//! definitions) and System values (Boolean, String, Integer, Decimal, Date, DateTime,
//! Time, Quantity), and how they are turned back into JSON.

use std::borrow::Cow;
use std::str::FromStr;

use fhir_model::{Definitions, ElementCursor};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use crate::datetime::{Date, DateTime, Time};
use crate::quantity::Quantity;

/// A node of the input JSON, with what the definitions say about it.
#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    /// The JSON value; `None` for a primitive that only has an id or extensions.
    pub value: Option<&'a Value>,
    /// For primitives: the `_name` sibling holding `id` and `extension`.
    pub ext: Option<&'a Value>,
    /// The FHIR type (`HumanName`, `string`, `Patient`…), when known.
    pub type_name: Option<&'a str>,
    /// The JSON property the node was reached by (`valueQuantity`); empty for roots.
    pub key: &'a str,
    /// Where the children of this node are defined.
    pub(crate) cursor: Option<ElementCursor<'a>>,
}

/// One item of a collection.
#[derive(Debug, Clone)]
pub enum Item<'a> {
    Node(Node<'a>),
    Boolean(bool),
    Integer(i64),
    Decimal(Decimal),
    String(Cow<'a, str>),
    Date(Date),
    DateTime(DateTime),
    Time(Time),
    Quantity(Quantity),
    /// A type, as returned by `type()`: has `namespace` and `name`.
    Type {
        namespace: &'static str,
        name: Cow<'a, str>,
    },
}

/// The primitive kinds FHIR primitives map to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prim {
    Boolean,
    Integer,
    Decimal,
    String,
    Date,
    DateTime,
    Time,
}

pub(crate) fn prim_kind(type_code: &str) -> Option<Prim> {
    Some(match type_code {
        "boolean" => Prim::Boolean,
        "integer" | "positiveInt" | "unsignedInt" | "integer64" => Prim::Integer,
        "decimal" => Prim::Decimal,
        "date" => Prim::Date,
        "dateTime" | "instant" => Prim::DateTime,
        "time" => Prim::Time,
        "string" | "code" | "id" | "uri" | "url" | "canonical" | "oid" | "uuid" | "markdown"
        | "base64Binary" | "xhtml" => Prim::String,
        _ => return None,
    })
}

pub(crate) fn is_quantity_type(type_code: &str) -> bool {
    matches!(
        type_code,
        "Quantity" | "Age" | "Duration" | "Count" | "Distance" | "SimpleQuantity" | "MoneyQuantity"
    )
}

pub(crate) fn parse_decimal(text: &str) -> Option<Decimal> {
    Decimal::from_str(text)
        .ok()
        .or_else(|| Decimal::from_scientific(text).ok())
}

impl<'a> Node<'a> {
    /// A root node: a resource (typed by its `resourceType`) or any JSON value.
    pub fn root(defs: &'a Definitions, value: &'a Value) -> Node<'a> {
        let rt = value.get("resourceType").and_then(Value::as_str);
        let cursor = rt.and_then(|t| defs.root(t));
        Node {
            value: Some(value),
            ext: None,
            type_name: rt.filter(|_| cursor.is_some()),
            key: "",
            cursor,
        }
    }

    /// A node for `value` known to be an instance of `type_name` (a validator walking a
    /// resource knows each element's type). `element` is where its children are defined
    /// when they are inline (backbone elements); otherwise the type's own root is used.
    pub fn typed(
        defs: &'a Definitions,
        value: &'a Value,
        type_name: &'a str,
        element: Option<ElementCursor<'a>>,
    ) -> Node<'a> {
        Node {
            value: Some(value),
            ext: None,
            type_name: Some(type_name),
            key: "",
            cursor: element.or_else(|| defs.root(type_name)),
        }
    }

    pub(crate) fn is_primitive(&self) -> bool {
        match self.type_name {
            Some(t) => prim_kind(t).is_some() || t.starts_with(|c: char| c.is_ascii_lowercase()),
            None => !matches!(self.value, Some(Value::Object(_)) | Some(Value::Array(_))),
        }
    }

    /// The System value of a primitive or Quantity node.
    pub(crate) fn system(&self) -> Option<Item<'a>> {
        let v = self.value?;
        match self.type_name {
            Some(t) if is_quantity_type(t) => {
                let value = match v.get("value")? {
                    Value::Number(n) => parse_decimal(&n.to_string())?,
                    _ => return None,
                };
                let ucum = v
                    .get("system")
                    .and_then(Value::as_str)
                    .is_none_or(|s| s == "http://unitsofmeasure.org");
                let code = v.get("code").and_then(Value::as_str).filter(|_| ucum);
                let unit = code
                    .or_else(|| v.get("unit").and_then(Value::as_str))
                    .unwrap_or("1");
                Some(Item::Quantity(Quantity::new(value, unit)))
            }
            Some(t) => match prim_kind(t)? {
                Prim::Boolean => v.as_bool().map(Item::Boolean),
                Prim::Integer => match v {
                    Value::Number(n) => n.to_string().parse().ok().map(Item::Integer),
                    _ => None,
                },
                Prim::Decimal => match v {
                    Value::Number(n) => parse_decimal(&n.to_string()).map(Item::Decimal),
                    _ => None,
                },
                Prim::String => v.as_str().map(|s| Item::String(Cow::Borrowed(s))),
                Prim::Date => v.as_str().and_then(Date::parse).map(Item::Date),
                Prim::DateTime => v.as_str().and_then(DateTime::parse).map(Item::DateTime),
                Prim::Time => v.as_str().and_then(Time::parse).map(Item::Time),
            },
            None => match v {
                Value::Bool(b) => Some(Item::Boolean(*b)),
                Value::String(s) => Some(Item::String(Cow::Borrowed(s))),
                Value::Number(n) => {
                    let text = n.to_string();
                    match text.parse::<i64>() {
                        Ok(i) => Some(Item::Integer(i)),
                        Err(_) => parse_decimal(&text).map(Item::Decimal),
                    }
                }
                _ => None,
            },
        }
    }
}

impl<'a> Item<'a> {
    /// The System value this item stands for (itself for System values; the value of a
    /// FHIR primitive or Quantity node); `None` for other nodes.
    pub fn system(&self) -> Option<Item<'a>> {
        match self {
            Item::Node(n) => n.system(),
            other => Some(other.clone()),
        }
    }

    pub fn as_node(&self) -> Option<&Node<'a>> {
        match self {
            Item::Node(n) => Some(n),
            _ => None,
        }
    }

    /// The string value of a String item or a string-like FHIR primitive.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Item::String(s) => Some(s),
            Item::Node(n) => match (n.type_name.map(prim_kind), n.value) {
                (Some(Some(Prim::String)), Some(Value::String(s)))
                | (None, Some(Value::String(s))) => Some(s),
                _ => None,
            },
            _ => None,
        }
    }

    /// The item as JSON: the node itself, or the JSON form of a System value.
    pub fn to_json(&self) -> Value {
        match self {
            Item::Node(n) => match (n.value, n.ext) {
                (Some(v), _) => v.clone(),
                (None, Some(e)) => e.clone(),
                (None, None) => Value::Null,
            },
            Item::Boolean(b) => Value::Bool(*b),
            Item::Integer(i) => Value::from(*i),
            Item::Decimal(d) => decimal_json(d),
            Item::String(s) => Value::String(s.to_string()),
            Item::Date(d) => Value::String(d.to_string()),
            Item::DateTime(d) => Value::String(d.to_string()),
            Item::Time(t) => Value::String(t.to_string()),
            Item::Quantity(q) => {
                let mut m = Map::new();
                m.insert("value".into(), decimal_json(&q.value));
                match crate::quantity::calendar_unit(&q.unit) {
                    Some(_) => {
                        m.insert("unit".into(), Value::String(q.unit.clone()));
                    }
                    None => {
                        m.insert("unit".into(), Value::String(q.unit.clone()));
                        m.insert(
                            "system".into(),
                            Value::String("http://unitsofmeasure.org".into()),
                        );
                        m.insert("code".into(), Value::String(q.unit.clone()));
                    }
                }
                Value::Object(m)
            }
            Item::Type { namespace, name } => {
                let mut m = Map::new();
                m.insert("namespace".into(), Value::String((*namespace).to_string()));
                m.insert("name".into(), Value::String(name.to_string()));
                Value::Object(m)
            }
        }
    }

    /// The FHIRPath literal-like text of the item (`@2014-01-01`, `1.5 'cm'`, `true`);
    /// nodes print their System value or their JSON.
    pub fn to_literal(&self) -> String {
        match self.system() {
            Some(Item::Date(d)) => format!("@{d}"),
            Some(Item::DateTime(d)) => format!("@{d}"),
            Some(Item::Time(t)) => format!("@T{t}"),
            Some(Item::String(s)) => s.to_string(),
            Some(Item::Quantity(q)) => q.to_string(),
            Some(Item::Decimal(d)) => d.to_string(),
            Some(Item::Integer(i)) => i.to_string(),
            Some(Item::Boolean(b)) => b.to_string(),
            _ => self.to_json().to_string(),
        }
    }
}

fn decimal_json(d: &Decimal) -> Value {
    serde_json::from_str::<Value>(&d.to_string()).unwrap_or_else(|_| Value::String(d.to_string()))
}

/// The result of an evaluation: an ordered collection of items.
#[derive(Debug, Clone, Default)]
pub struct Collection<'a>(pub Vec<Item<'a>>);

impl<'a> Collection<'a> {
    pub fn new() -> Collection<'a> {
        Collection(Vec::new())
    }

    pub fn one(item: Item<'a>) -> Collection<'a> {
        Collection(vec![item])
    }

    /// A collection holding the given JSON as a root node (typed if it is a resource).
    pub fn from_json(defs: &'a Definitions, value: &'a Value) -> Collection<'a> {
        Collection::one(Item::Node(Node::root(defs, value)))
    }

    /// The collection as a JSON array.
    pub fn to_json(&self) -> Value {
        Value::Array(self.0.iter().map(Item::to_json).collect())
    }

    /// The single Boolean value, if the collection is exactly one Boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self.0.as_slice() {
            [item] => match item.system() {
                Some(Item::Boolean(b)) => Some(b),
                _ => None,
            },
            _ => None,
        }
    }

    /// The string values of the items that have one.
    pub fn strings(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(Item::as_str)
    }
}

impl<'a> std::ops::Deref for Collection<'a> {
    type Target = Vec<Item<'a>>;
    fn deref(&self) -> &Vec<Item<'a>> {
        &self.0
    }
}

impl<'a> std::ops::DerefMut for Collection<'a> {
    fn deref_mut(&mut self) -> &mut Vec<Item<'a>> {
        &mut self.0
    }
}

impl<'a> IntoIterator for Collection<'a> {
    type Item = Item<'a>;
    type IntoIter = std::vec::IntoIter<Item<'a>>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> FromIterator<Item<'a>> for Collection<'a> {
    fn from_iter<I: IntoIterator<Item = Item<'a>>>(iter: I) -> Self {
        Collection(iter.into_iter().collect())
    }
}
