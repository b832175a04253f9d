//! The result parameters: `_count`, `_offset`, `_sort`, `_include`, `_revinclude`,
//! `_total`, `_summary`, `_elements`, `_contained`, `_containedType`.

use fhir_model::SearchParamType;

use crate::error::SearchError;
use crate::parse::resolve;
use crate::query::{
    ContainedMode, ContainedType, Include, ResultParams, SortKey, SummaryMode, TotalMode,
};
use crate::registry::SearchRegistry;

/// Applies `name=value` to `result` if it is a result parameter (`Ok(true)`);
/// `Ok(false)` for any other parameter.
pub(crate) fn apply(
    reg: &SearchRegistry,
    types: &[String],
    result: &mut ResultParams,
    name: &str,
    value: &str,
) -> Result<bool, SearchError> {
    let (base, modifier) = match name.split_once(':') {
        Some((b, m)) => (b, Some(m)),
        None => (name, None),
    };
    let value = value.trim();
    let no_modifier = || -> Result<(), SearchError> {
        match modifier {
            Some(m) => Err(SearchError::modifier(
                name,
                format!("{base} takes no modifier ':{m}'"),
            )),
            None => Ok(()),
        }
    };
    match base {
        "_count" => {
            no_modifier()?;
            once(name, result.count.is_some())?;
            result.count = Some(non_negative(name, value)?);
        }
        "_offset" => {
            no_modifier()?;
            once(name, result.offset.is_some())?;
            result.offset = Some(non_negative(name, value)?);
        }
        "_sort" => {
            let desc_all = match modifier {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(m) => {
                    return Err(SearchError::modifier(
                        name,
                        format!("_sort takes no modifier ':{m}'"),
                    ))
                }
            };
            if modifier.is_none() && !result.sort.is_empty() {
                return Err(once_error(name));
            }
            for key in value.split(',').map(str::trim) {
                let (descending, code) = match key.strip_prefix('-') {
                    Some(c) => (true, c),
                    None => (desc_all, key),
                };
                if code.is_empty() {
                    return Err(SearchError::value(name, "empty sort key"));
                }
                let resolved = resolve(reg, types, code).map_err(|_| {
                    SearchError::value(name, format!("unknown sort parameter '{code}'"))
                })?;
                if matches!(
                    resolved.kind,
                    SearchParamType::Composite | SearchParamType::Special
                ) {
                    return Err(SearchError::value(
                        name,
                        format!(
                            "cannot sort by {} parameter '{code}'",
                            resolved.kind.as_str()
                        ),
                    ));
                }
                result.sort.push(SortKey {
                    code: code.to_string(),
                    kind: resolved.kind,
                    descending,
                });
            }
        }
        "_include" | "_revinclude" => {
            let iterate = match modifier {
                None => false,
                Some("iterate" | "recurse") => true,
                Some(m) => {
                    return Err(SearchError::modifier(
                        name,
                        format!("{base} takes ':iterate', not ':{m}'"),
                    ))
                }
            };
            let include = include(reg, name, value, iterate)?;
            if base == "_include" {
                result.include.push(include);
            } else {
                result.revinclude.push(include);
            }
        }
        "_total" => {
            no_modifier()?;
            once(name, result.total.is_some())?;
            result.total = Some(match value {
                "none" => TotalMode::None,
                "estimate" => TotalMode::Estimate,
                "accurate" => TotalMode::Accurate,
                _ => return Err(bad_choice(name, value, "none, estimate or accurate")),
            });
        }
        "_summary" => {
            no_modifier()?;
            once(name, result.summary.is_some())?;
            result.summary = Some(match value {
                "true" => SummaryMode::True,
                "text" => SummaryMode::Text,
                "data" => SummaryMode::Data,
                "count" => SummaryMode::Count,
                "false" => SummaryMode::False,
                _ => return Err(bad_choice(name, value, "true, text, data, count or false")),
            });
        }
        "_elements" => {
            no_modifier()?;
            for e in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                if !is_element_name(e) {
                    return Err(SearchError::value(
                        name,
                        format!("'{e}' is not an element name"),
                    ));
                }
                if !result.elements.iter().any(|x| x == e) {
                    result.elements.push(e.to_string());
                }
            }
        }
        "_contained" => {
            no_modifier()?;
            once(name, result.contained.is_some())?;
            result.contained = Some(match value {
                "true" => ContainedMode::True,
                "false" => ContainedMode::False,
                "both" => ContainedMode::Both,
                _ => return Err(bad_choice(name, value, "true, false or both")),
            });
        }
        "_containedType" => {
            no_modifier()?;
            once(name, result.contained_type.is_some())?;
            result.contained_type = Some(match value {
                "container" => ContainedType::Container,
                "contained" => ContainedType::Contained,
                _ => return Err(bad_choice(name, value, "container or contained")),
            });
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn once(name: &str, already: bool) -> Result<(), SearchError> {
    if already {
        Err(once_error(name))
    } else {
        Ok(())
    }
}

fn once_error(name: &str) -> SearchError {
    SearchError::value(name, format!("{name} may appear only once"))
}

fn bad_choice(name: &str, value: &str, expected: &str) -> SearchError {
    SearchError::value(
        name,
        format!("'{value}' is not valid (expected {expected})"),
    )
}

fn non_negative(name: &str, value: &str) -> Result<u32, SearchError> {
    value
        .parse::<u32>()
        .map_err(|_| SearchError::value(name, format!("'{value}' is not a non-negative integer")))
}

/// `name` or `Type.name`, FHIR element names (`[A-Za-z][A-Za-z0-9_]*`).
fn is_element_name(e: &str) -> bool {
    let ident = |s: &str| {
        s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    match e.split_once('.') {
        Some((t, n)) => ident(t) && ident(n),
        None => ident(e),
    }
}

/// `*`, `Type:*`, `Type:param` or `Type:param:Target`.
fn include(
    reg: &SearchRegistry,
    name: &str,
    value: &str,
    iterate: bool,
) -> Result<Include, SearchError> {
    if value == "*" {
        return Ok(Include {
            source_type: "*".into(),
            param: None,
            target_type: None,
            iterate,
        });
    }
    let parts: Vec<&str> = value.split(':').collect();
    let (source, param, target) = match parts.as_slice() {
        [s, p] => (*s, *p, None),
        [s, p, t] => (*s, *p, Some(*t)),
        _ => {
            return Err(SearchError::value(
                name,
                format!("'{value}' is not Type:parameter[:targetType] or *"),
            ))
        }
    };
    if !reg.is_resource_type(source) {
        return Err(SearchError::value(
            name,
            format!("'{source}' is not a resource type"),
        ));
    }
    if param == "*" {
        if target.is_some() {
            return Err(SearchError::value(name, "Type:* takes no target type"));
        }
        return Ok(Include {
            source_type: source.into(),
            param: None,
            target_type: None,
            iterate,
        });
    }
    let Some(p) = reg.param(source, param) else {
        return Err(SearchError::value(
            name,
            format!("{source} has no search parameter '{param}'"),
        ));
    };
    if p.kind() != SearchParamType::Reference {
        return Err(SearchError::value(
            name,
            format!("{source}:{param} is not a reference parameter"),
        ));
    }
    if let Some(t) = target {
        if !p.targets().iter().any(|x| x == t) {
            return Err(SearchError::value(
                name,
                format!("'{t}' is not a target type of {source}:{param}"),
            ));
        }
    }
    Ok(Include {
        source_type: source.into(),
        param: Some(param.into()),
        target_type: target.map(str::to_string),
        iterate,
    })
}
