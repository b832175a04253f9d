//! Parsing of one search value (one OR-part of a parameter) for a parameter type and
//! modifier.

use fhir_model::SearchParamType;

use crate::date;
use crate::error::SearchError;
use crate::escape::{split_once_unescaped, split_unescaped, unescape};
use crate::normalize::normalize;
use crate::number::NumberRange;
use crate::query::{
    ComponentValue, Modifier, Prefix, QuantityValue, ReferenceValue, SearchValue, StringValue,
    TokenSystem, TokenValue,
};
use crate::registry::{Component, SearchRegistry};

/// What a value is parsed against.
pub(crate) struct ValueTarget<'a> {
    /// The query parameter name as written (for errors).
    pub name: &'a str,
    pub kind: SearchParamType,
    /// Possible target types of a reference parameter.
    pub targets: &'a [String],
    /// Components of a composite parameter.
    pub components: &'a [Component],
}

/// Parses one (still escaped) value.
pub(crate) fn parse_value(
    reg: &SearchRegistry,
    t: &ValueTarget<'_>,
    modifier: Option<&Modifier>,
    raw: &str,
) -> Result<SearchValue, SearchError> {
    let name = t.name;
    match modifier {
        Some(Modifier::Missing) => {
            return match raw {
                "true" => Ok(SearchValue::Missing(true)),
                "false" => Ok(SearchValue::Missing(false)),
                _ => Err(SearchError::value(
                    name,
                    format!("':missing' takes true or false, not '{raw}'"),
                )),
            }
        }
        Some(Modifier::Text) => return Ok(SearchValue::String(string_value(raw))),
        Some(Modifier::In | Modifier::NotIn) => {
            let url = unescape(raw);
            let expansion = reg
                .definitions()
                .terminology()
                .expand(&url)
                .ok()
                .map(|codes| codes.into_iter().map(|c| (c.system, c.code)).collect());
            return Ok(SearchValue::ValueSet { url, expansion });
        }
        Some(m @ (Modifier::Above | Modifier::Below)) if t.kind == SearchParamType::Token => {
            return subsumption(reg, name, raw, *m == Modifier::Below);
        }
        Some(Modifier::OfType) => {
            let parts = split_unescaped(raw, '|');
            return match parts.as_slice() {
                [s, c, v] if !s.is_empty() && !c.is_empty() && !v.is_empty() => {
                    Ok(SearchValue::OfType {
                        type_system: unescape(s),
                        type_code: unescape(c),
                        value: unescape(v),
                    })
                }
                _ => Err(SearchError::value(
                    name,
                    format!("':of-type' takes type-system|type-code|value, not '{raw}'"),
                )),
            };
        }
        Some(Modifier::Identifier) => {
            return token(name, raw).map(|v| SearchValue::Reference(ReferenceValue::Identifier(v)))
        }
        _ => {}
    }
    match t.kind {
        SearchParamType::Number => {
            let (prefix, rest) = prefix(name, raw)?;
            Ok(SearchValue::Number {
                prefix,
                number: number(name, rest)?,
            })
        }
        SearchParamType::Date => {
            let (prefix, rest) = prefix(name, raw)?;
            let (range, precision) = date::parse_with_precision(rest).ok_or_else(|| {
                SearchError::value(
                    name,
                    format!(
                        "'{rest}' is not a valid date (expected YYYY, YYYY-MM, YYYY-MM-DD or \
                         YYYY-MM-DDThh:mm[:ss[.sss]][Z|(+|-)hh:mm])"
                    ),
                )
            })?;
            Ok(SearchValue::Date {
                prefix,
                range,
                precision,
                text: rest.to_string(),
            })
        }
        SearchParamType::String => Ok(SearchValue::String(string_value(raw))),
        SearchParamType::Token => token(name, raw).map(SearchValue::Token),
        SearchParamType::Reference => {
            let ty = match modifier {
                Some(Modifier::Type(ty)) => Some(ty.as_str()),
                _ => None,
            };
            reference(reg, t, ty, raw).map(SearchValue::Reference)
        }
        SearchParamType::Quantity => quantity(name, raw).map(SearchValue::Quantity),
        SearchParamType::Uri => Ok(SearchValue::Uri(unescape(raw))),
        SearchParamType::Composite => composite(reg, t, raw),
        SearchParamType::Special => Err(SearchError::Unsupported {
            param: name.to_string(),
            message: "special search parameters are not supported".into(),
        }),
    }
}

fn string_value(raw: &str) -> StringValue {
    let raw = unescape(raw);
    StringValue {
        normalized: normalize(&raw),
        raw,
    }
}

/// Splits a comparison prefix; two leading letters that are no prefix are an error.
fn prefix<'v>(name: &str, raw: &'v str) -> Result<(Prefix, &'v str), SearchError> {
    let (p, rest) = Prefix::split(raw);
    if rest.len() == raw.len() {
        if let Some(two) = raw
            .get(..2)
            .filter(|s| s.bytes().all(|b| b.is_ascii_alphabetic()))
        {
            return Err(SearchError::value(
                name,
                format!(
                    "unknown prefix '{two}' in '{raw}' (expected eq, ne, gt, lt, ge, le, sa, eb or ap)"
                ),
            ));
        }
    }
    Ok((p, rest))
}

fn number(name: &str, text: &str) -> Result<NumberRange, SearchError> {
    NumberRange::parse(text)
        .ok_or_else(|| SearchError::value(name, format!("'{text}' is not a valid number")))
}

/// A token `:below` (`:above`) value: the code with the codes it subsumes (that
/// subsume it), when the definitions hold the code system's hierarchy; matched as a
/// value set of those codes.
fn subsumption(
    reg: &SearchRegistry,
    name: &str,
    raw: &str,
    below: bool,
) -> Result<SearchValue, SearchError> {
    let tv = token(name, raw)?;
    let (TokenSystem::Is(system), Some(code)) = (&tv.system, &tv.code) else {
        let m = if below { "below" } else { "above" };
        return Err(SearchError::value(
            name,
            format!("':{m}' takes system|code, not '{raw}'"),
        ));
    };
    let expansion = reg
        .definitions()
        .terminology()
        .code_system(system)
        .filter(|cs| cs.find(code).is_some())
        .map(|cs| {
            let codes: Vec<&str> = if below {
                cs.descendants_and_self(code)
                    .into_iter()
                    .map(|(c, _)| c)
                    .collect()
            } else {
                cs.ancestors_and_self(code)
            };
            codes
                .into_iter()
                .map(|c| (system.clone(), c.to_string()))
                .collect()
        });
    Ok(SearchValue::ValueSet {
        url: raw.to_string(),
        expansion,
    })
}

pub(crate) fn token(name: &str, raw: &str) -> Result<TokenValue, SearchError> {
    match split_once_unescaped(raw, '|') {
        None => Ok(TokenValue {
            system: TokenSystem::Any,
            code: Some(unescape(raw)),
        }),
        Some(("", "")) => Err(SearchError::value(name, "'|' alone is not a token")),
        Some(("", code)) => Ok(TokenValue {
            system: TokenSystem::None,
            code: Some(unescape(code)),
        }),
        Some((system, code)) => Ok(TokenValue {
            system: TokenSystem::Is(unescape(system)),
            code: (!code.is_empty()).then(|| unescape(code)),
        }),
    }
}

fn quantity(name: &str, raw: &str) -> Result<QuantityValue, SearchError> {
    let (prefix, rest) = prefix(name, raw)?;
    let parts = split_unescaped(rest, '|');
    let (num, system, code) = match parts.as_slice() {
        [n] => (*n, None, None),
        [n, s, c] => (
            *n,
            (!s.is_empty()).then(|| unescape(s)),
            (!c.is_empty()).then(|| unescape(c)),
        ),
        _ => {
            return Err(SearchError::value(
                name,
                format!(
                "'{raw}' is not a quantity (expected number, number|system|code or number||code)"
            ),
            ))
        }
    };
    Ok(QuantityValue {
        prefix,
        number: number(name, num)?,
        system,
        code,
    })
}

fn reference(
    reg: &SearchRegistry,
    t: &ValueTarget<'_>,
    modifier_type: Option<&str>,
    raw: &str,
) -> Result<ReferenceValue, SearchError> {
    let name = t.name;
    let text = unescape(raw);
    let check_type = |ty: &str| -> Result<(), SearchError> {
        if !reg.is_resource_type(ty) {
            return Err(SearchError::value(
                name,
                format!("'{ty}' in reference '{text}' is not a resource type"),
            ));
        }
        if !t.targets.is_empty() && !t.targets.iter().any(|x| x == ty) {
            return Err(SearchError::value(
                name,
                format!(
                    "{ty} is not a target of this parameter ({})",
                    t.targets.join(", ")
                ),
            ));
        }
        if modifier_type.is_some_and(|m| m != ty) {
            return Err(SearchError::value(
                name,
                format!("reference '{text}' contradicts the type modifier"),
            ));
        }
        Ok(())
    };
    if text.contains("://") || text.starts_with("urn:") {
        let (resource_type, id, version) = url_tail(reg.definitions(), &text);
        return Ok(ReferenceValue::Url {
            url: text,
            resource_type,
            id,
            version,
        });
    }
    let parts: Vec<&str> = text.split('/').collect();
    let (ty, id, version) = match parts.as_slice() {
        [id] => (None, *id, None),
        [ty, id] => (Some(*ty), *id, None),
        [ty, id, "_history", v] if !v.is_empty() => (Some(*ty), *id, Some(v.to_string())),
        _ => {
            return Err(SearchError::value(
                name,
                format!("'{text}' is not a reference (expected id, Type/id or an absolute URL)"),
            ))
        }
    };
    if !is_id(id) {
        return Err(SearchError::value(
            name,
            format!("'{id}' is not a valid resource id"),
        ));
    }
    if let Some(ty) = ty {
        check_type(ty)?;
    }
    let resource_type = ty
        .or(modifier_type)
        .map(str::to_string)
        .or_else(|| match t.targets {
            [only] => Some(only.clone()),
            _ => None,
        });
    Ok(ReferenceValue::Local {
        resource_type,
        id: id.to_string(),
        version,
    })
}

/// The `Type/id(/_history/vid)` at the end of an absolute URL, if any.
pub(crate) fn url_tail(
    defs: &fhir_model::Definitions,
    url: &str,
) -> (Option<String>, Option<String>, Option<String>) {
    let (path, version) = match url.rsplit_once("/_history/") {
        Some((p, v)) if !v.contains('/') && !v.is_empty() => (p, Some(v.to_string())),
        _ => (url, None),
    };
    let mut segments = path.rsplit('/');
    match (segments.next(), segments.next()) {
        (Some(id), Some(ty)) if defs.is_resource_type(ty) && is_id(id) => {
            (Some(ty.to_string()), Some(id.to_string()), version)
        }
        _ => (None, None, None),
    }
}

/// FHIR id syntax: `[A-Za-z0-9\-\.]{1,64}`.
pub(crate) fn is_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn composite(
    reg: &SearchRegistry,
    t: &ValueTarget<'_>,
    raw: &str,
) -> Result<SearchValue, SearchError> {
    let parts = split_unescaped(raw, '$');
    if t.components.is_empty() || parts.len() != t.components.len() {
        return Err(SearchError::value(
            t.name,
            format!(
                "'{raw}' needs {} components separated by '$'",
                t.components.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(parts.len());
    for (part, comp) in parts.iter().zip(t.components) {
        let target = ValueTarget {
            name: t.name,
            kind: comp.kind,
            targets: &[],
            components: &[],
        };
        out.push(ComponentValue {
            code: comp.code.clone(),
            kind: comp.kind,
            value: parse_value(reg, &target, None, part)?,
        });
    }
    Ok(SearchValue::Composite(out))
}
