//! Type specifiers: resolving `Patient`, `FHIR.string`, `System.Integer`, and testing
//! items against them (`is`, `as`, `ofType`), and `type()`.

use std::borrow::Cow;

use fhir_model::Definitions;

use crate::ast::TypeSpec;
use crate::error::{EvalError, EvalResult};
use crate::item::Item;

pub const SYSTEM_TYPES: &[&str] = &[
    "Any", "Boolean", "String", "Integer", "Decimal", "Date", "DateTime", "Time", "Quantity",
];

/// A type specifier resolved against the model.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'s> {
    pub name: &'s str,
    /// Names a FHIR type.
    pub fhir: bool,
    /// Names a System type.
    pub system: bool,
}

pub fn resolve<'s>(defs: &Definitions, spec: &'s TypeSpec) -> EvalResult<Resolved<'s>> {
    let name = spec.name.as_str();
    let is_system = SYSTEM_TYPES.contains(&name);
    let is_fhir = defs.type_def(name).is_some();
    match spec.namespace.as_deref() {
        Some("System") => Ok(Resolved {
            name,
            fhir: false,
            system: is_system,
        }),
        Some("FHIR") if is_fhir => Ok(Resolved {
            name,
            fhir: true,
            system: false,
        }),
        None if is_fhir || is_system => Ok(Resolved {
            name,
            fhir: is_fhir,
            system: is_system,
        }),
        _ => Err(EvalError::UnknownType(spec.to_string())),
    }
}

fn system_name(item: &Item) -> Option<&'static str> {
    Some(match item {
        Item::Boolean(_) => "Boolean",
        Item::Integer(_) => "Integer",
        Item::Decimal(_) => "Decimal",
        Item::String(_) => "String",
        Item::Date(_) => "Date",
        Item::DateTime(_) => "DateTime",
        Item::Time(_) => "Time",
        Item::Quantity(_) => "Quantity",
        _ => return None,
    })
}

/// Whether `item` is of type `t`. With `exact`, FHIR primitives must match by name
/// (`code` is not `as(string)`), complex types and resources by inheritance.
pub fn item_is(defs: &Definitions, item: &Item, t: &Resolved, exact: bool) -> bool {
    match item {
        Item::Node(n) => match n.type_name {
            Some(tn) => {
                if !t.fhir {
                    return false;
                }
                if tn == t.name {
                    return true;
                }
                let primitive = tn.starts_with(|c: char| c.is_ascii_lowercase());
                !(exact && primitive) && defs.is_subtype(tn, t.name)
            }
            None => t.system && n.system().as_ref().and_then(system_name) == Some(t.name),
        },
        Item::Type { .. } => false,
        other => t.system && (t.name == "Any" || system_name(other) == Some(t.name)),
    }
}

/// The result of `type()` for an item.
pub fn type_of<'a>(item: &Item<'a>) -> Item<'a> {
    match item {
        Item::Node(n) => Item::Type {
            namespace: "FHIR",
            name: Cow::Borrowed(n.type_name.unwrap_or("Element")),
        },
        Item::Type { .. } => Item::Type {
            namespace: "System",
            name: Cow::Borrowed("Any"),
        },
        other => Item::Type {
            namespace: "System",
            name: Cow::Borrowed(system_name(other).unwrap_or("Any")),
        },
    }
}
