//! Parsing of search query parameters into a [`SearchQuery`].

use fhir_model::SearchParamType;

use crate::error::{Issue, SearchError};
use crate::escape::split_unescaped;
use crate::index::MAX_INDEX_TEXT;
use crate::query::{
    ChainLink, Clause, HasClause, Modifier, ParamClause, ParamRef, ReferenceValue, ResultParams,
    SearchQuery, SearchValue, TokenSystem, TokenValue,
};
use crate::registry::{SearchParam, SearchRegistry};
use crate::result_params;
use crate::value::{parse_value, ValueTarget};

/// Parameters that only shape the HTTP response, ignored silently.
const RESPONSE_ONLY: &[&str] = &["_format", "_pretty"];

/// Parameters this crate knows but does not support.
const UNSUPPORTED: &[&str] = &["_query"];

/// Parses decoded query parameters (`name`, `value` pairs in query order).
///
/// `resource_type` is the type of a type-level search (`GET [base]/Patient?…`), `None`
/// for a system-level search (`GET [base]?…`, types from `_type`). With `strict`
/// (`Prefer: handling=strict`), unknown and unsupported parameters are errors;
/// otherwise they are skipped and listed in [`SearchQuery::ignored`]. Invalid values,
/// modifiers and chains are errors either way.
pub fn parse(
    registry: &SearchRegistry,
    resource_type: Option<&str>,
    pairs: &[(String, String)],
    strict: bool,
) -> Result<SearchQuery, SearchError> {
    let mut query = SearchQuery::default();
    match resource_type {
        Some(rt) => {
            if !registry.is_resource_type(rt) {
                return Err(SearchError::UnknownResourceType(rt.to_string()));
            }
            query.resource_types.push(rt.to_string());
        }
        None => {
            for (name, value) in pairs.iter().filter(|(n, _)| n == "_type") {
                for t in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    if !registry.is_resource_type(t) {
                        return Err(SearchError::value(
                            name,
                            format!("unknown resource type '{t}'"),
                        ));
                    }
                    if !query.resource_types.iter().any(|x| x == t) {
                        query.resource_types.push(t.to_string());
                    }
                }
            }
        }
    }
    let ignore = |query: &mut SearchQuery, err: SearchError| -> Result<(), SearchError> {
        if strict {
            return Err(err);
        }
        let (param, message) = match &err {
            SearchError::Unsupported { param, message } => (param.clone(), message.clone()),
            other => (
                other.param().unwrap_or_default().to_string(),
                other.to_string(),
            ),
        };
        query.ignored.push(Issue { param, message });
        Ok(())
    };
    let types = query.resource_types.clone();
    let mut result = ResultParams::default();
    for (name, value) in pairs {
        let base = name.split([':', '.']).next().unwrap_or_default();
        if RESPONSE_ONLY.contains(&base) {
            continue;
        }
        if base == "_type" {
            if resource_type.is_some() {
                ignore(
                    &mut query,
                    SearchError::Unsupported {
                        param: name.clone(),
                        message: "_type applies to system-level searches only".into(),
                    },
                )?;
            }
            continue;
        }
        if result_params::apply(registry, &types, &mut result, name, value)? {
            continue;
        }
        if value.trim().is_empty() {
            query.ignored.push(Issue {
                param: name.clone(),
                message: "empty value: parameter ignored".into(),
            });
            continue;
        }
        if UNSUPPORTED.contains(&base) {
            ignore(
                &mut query,
                SearchError::Unsupported {
                    param: name.clone(),
                    message: format!("the {base} parameter is not supported"),
                },
            )?;
            continue;
        }
        check_text(name, value)?;
        if base == "near" && !types.is_empty() && types.iter().all(|t| t == "Location") {
            query.clauses.push(crate::near::near_clause(name, value)?);
            continue;
        }
        if base == "_filter" {
            if name != "_filter" {
                return Err(SearchError::modifier(name, "_filter takes no modifier"));
            }
            let expr = crate::filter::parse_filter(registry, &types, name, value)?;
            query
                .clauses
                .push(Clause::Filter(crate::query::FilterClause {
                    name: name.clone(),
                    expr,
                }));
            continue;
        }
        if base == "_text" || base == "_content" {
            query.clauses.push(text_clause(name, base, value)?);
            continue;
        }
        if base == "_list" {
            query
                .clauses
                .extend(list_clauses(registry, &types, name, value)?);
            continue;
        }
        match parse_clause(registry, &types, name, name, value, true) {
            Ok(clause) => query.clauses.push(clause),
            Err(e @ (SearchError::UnknownParameter { .. } | SearchError::Unsupported { .. })) => {
                ignore(&mut query, e)?
            }
            Err(e) => return Err(e),
        }
    }
    if matches!(
        result.contained,
        Some(crate::query::ContainedMode::True | crate::query::ContainedMode::Both)
    ) {
        // Contained resources are not indexed as resources of their own: say so rather
        // than answer as if `_contained=false`.
        ignore(
            &mut query,
            SearchError::Unsupported {
                param: "_contained".into(),
                message: "searching contained resources (_contained=true|both) is not supported"
                    .into(),
            },
        )?;
        result.contained = None;
    }
    query.result = result;
    Ok(query)
}

/// `_text` / `_content`: no modifier, and some words to look for.
fn text_clause(name: &str, base: &str, value: &str) -> Result<Clause, SearchError> {
    if name != base {
        return Err(SearchError::modifier(
            name,
            format!("{base} takes no modifier"),
        ));
    }
    let query = crate::fulltext::text_query(value).ok_or_else(|| {
        SearchError::value(name, format!("'{value}' holds no word to search for"))
    })?;
    Ok(Clause::Text(crate::query::TextClause {
        name: name.to_string(),
        content: base == "_content",
        query,
    }))
}

/// A functional list: its name, a type it lists, and the criteria (parameter, value).
type FunctionalList = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// The criteria of the functional lists (list.html#current): per list and type, the
/// search that selects its entries (the patient comes from the compartment searched).
const FUNCTIONAL_LISTS: &[FunctionalList] = &[
    (
        "$current-allergies",
        "AllergyIntolerance",
        &[("clinical-status", "active")],
    ),
    (
        "$current-problems",
        "Condition",
        &[
            ("clinical-status", "active"),
            ("category", "problem-list-item"),
        ],
    ),
    (
        "$current-medications",
        "MedicationStatement",
        &[("status", "active")],
    ),
    (
        "$current-medications",
        "MedicationRequest",
        &[("status", "active")],
    ),
    (
        "$current-drugs",
        "MedicationStatement",
        &[("status", "active")],
    ),
    (
        "$current-drugs",
        "MedicationRequest",
        &[("status", "active")],
    ),
];

/// `_list`: a List by id, or a functional list (`$current-allergies`) as its criteria.
fn list_clauses(
    reg: &SearchRegistry,
    types: &[String],
    name: &str,
    value: &str,
) -> Result<Vec<Clause>, SearchError> {
    if name != "_list" {
        return Err(SearchError::modifier(name, "_list takes no modifier"));
    }
    let Some(functional) = value.strip_prefix('$').map(|_| value) else {
        let valid_id = (1..=64).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !valid_id {
            return Err(SearchError::value(
                name,
                format!("'{value}' is not the id of a List"),
            ));
        }
        return Ok(vec![Clause::List(crate::query::ListClause {
            name: name.to_string(),
            list_id: value.to_string(),
        })]);
    };
    let known: Vec<&str> = FUNCTIONAL_LISTS
        .iter()
        .filter(|(l, _, _)| *l == functional)
        .map(|(_, t, _)| *t)
        .collect();
    if known.is_empty() {
        return Err(SearchError::value(
            name,
            format!("'{functional}' is not a list this server knows ($current-allergies, $current-problems, $current-medications, $current-drugs)"),
        ));
    }
    let [rt] = types else {
        return Err(SearchError::value(
            name,
            format!(
                "{functional} lists {} resources: search one of these types",
                known.join(", ")
            ),
        ));
    };
    let Some((_, _, criteria)) = FUNCTIONAL_LISTS
        .iter()
        .find(|(l, t, _)| *l == functional && t == rt)
    else {
        return Err(SearchError::value(
            name,
            format!(
                "{functional} lists {} resources, not {rt}",
                known.join(", ")
            ),
        ));
    };
    criteria
        .iter()
        .map(|(p, v)| parse_clause(reg, types, p, p, v, true))
        .collect()
}

/// Parses a raw query string (`a=1&b=2`, percent- and `+`-decoded as
/// `application/x-www-form-urlencoded`) and then [`parse`]s it.
pub fn parse_query_string(
    registry: &SearchRegistry,
    resource_type: Option<&str>,
    query: &str,
    strict: bool,
) -> Result<SearchQuery, SearchError> {
    let pairs: Vec<(String, String)> =
        form_urlencoded::parse(query.trim_start_matches('?').as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    parse(registry, resource_type, &pairs, strict)
}

/// Most references one criterion may follow: forward chain links and `_has` levels
/// together. Each is one more nested sub-query, and their cost multiplies.
pub const MAX_LINKS: usize = 4;

/// The links a parameter name follows: chain dots and `_has:` prefixes.
fn links(name: &str) -> usize {
    name.matches('.').count() + name.matches("_has:").count()
}

/// Control characters (other than tab, CR, LF) are not FHIR string content: a value
/// holding one is refused rather than sent to a database (PostgreSQL rejects NUL).
fn check_text(name: &str, value: &str) -> Result<(), SearchError> {
    match value
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        Some(c) => Err(SearchError::value(
            name,
            format!("the value holds the control character U+{:04X}", c as u32),
        )),
        None => Ok(()),
    }
}

/// Whether a text of the value is longer than index rows keep ([`MAX_INDEX_TEXT`]).
fn too_long(v: &SearchValue) -> bool {
    let long = |s: &str| s.len() > MAX_INDEX_TEXT;
    let token = |t: &TokenValue| {
        matches!(&t.system, TokenSystem::Is(s) if long(s)) || t.code.as_deref().is_some_and(long)
    };
    match v {
        SearchValue::String(s) => long(&s.raw) || long(&s.normalized),
        SearchValue::Token(t) => token(t),
        SearchValue::Uri(u) => long(u),
        SearchValue::ValueSet { url, .. } => long(url),
        SearchValue::OfType {
            type_system,
            type_code,
            value,
        } => long(type_system) || long(type_code) || long(value),
        SearchValue::Reference(ReferenceValue::Local { id, .. }) => long(id),
        SearchValue::Reference(ReferenceValue::Url { url, .. }) => long(url),
        SearchValue::Reference(ReferenceValue::Identifier(t)) => token(t),
        SearchValue::Quantity(q) => {
            q.system.as_deref().is_some_and(long) || q.code.as_deref().is_some_and(long)
        }
        SearchValue::Composite(parts) => parts.iter().any(|p| too_long(&p.value)),
        SearchValue::Missing(_) | SearchValue::Number { .. } | SearchValue::Date { .. } => false,
    }
}

/// Parses one criterion `spec=value` on `types`. `full` is the whole parameter name for
/// errors; `top` tells whether an unknown first parameter is "unknown" (ignorable) or a
/// broken chain/_has.
pub(crate) fn parse_clause(
    reg: &SearchRegistry,
    types: &[String],
    full: &str,
    spec: &str,
    value: &str,
    top: bool,
) -> Result<Clause, SearchError> {
    if let Some(rest) = spec.strip_prefix("_has:") {
        return parse_has(reg, types, full, rest, value);
    }
    if spec == "_has" {
        return Err(SearchError::chain(
            full,
            "_has needs the form _has:Type:reference:parameter",
        ));
    }
    let segments: Vec<&str> = spec.split('.').collect();
    if segments.len() > MAX_LINKS + 1 || links(full) > MAX_LINKS {
        return Err(SearchError::chain(
            full,
            format!("a criterion may follow at most {MAX_LINKS} references (chain links and _has levels together)"),
        ));
    }
    let mut chain = Vec::new();
    let mut current: Vec<String> = types.to_vec();
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        let (code, modifier) = match segment.split_once(':') {
            Some((c, m)) => (c, Some(m)),
            None => (*segment, None),
        };
        if code.is_empty() {
            return Err(SearchError::chain(full, "empty parameter name"));
        }
        let resolved = match resolve(reg, &current, code) {
            Ok(r) => r,
            Err(msg) if !msg.is_empty() => return Err(SearchError::chain(full, msg)),
            Err(_) if i == 0 && top => {
                return Err(SearchError::UnknownParameter {
                    param: full.to_string(),
                    resource_types: current,
                })
            }
            Err(_) => {
                return Err(SearchError::chain(
                    full,
                    format!("unknown parameter '{code}' for {}", display_types(&current)),
                ))
            }
        };
        if i < last {
            // A chain link: must be a reference, modifier only a target type.
            if resolved.kind != SearchParamType::Reference {
                return Err(SearchError::chain(
                    full,
                    format!(
                        "'{code}' is a {} parameter; only reference parameters can be chained",
                        resolved.kind.as_str()
                    ),
                ));
            }
            let mut targets = match modifier {
                Some(m) if resolved.targets.iter().any(|t| t == m) => vec![m.to_string()],
                Some(m) => {
                    return Err(SearchError::chain(
                        full,
                        format!("'{m}' is not a target type of '{code}'"),
                    ))
                }
                None => resolved.targets.clone(),
            };
            let next = segments[i + 1].split(':').next().unwrap_or_default();
            if next != "_has" {
                targets.retain(|t| reg.param(t, next).is_some());
            }
            if targets.is_empty() {
                return Err(SearchError::chain(
                    full,
                    format!("no target type of '{code}' has a parameter '{next}'"),
                ));
            }
            chain.push(ChainLink {
                code: code.to_string(),
                source_types: current,
                target_types: targets.clone(),
            });
            current = targets;
            continue;
        }
        let param = resolved.param;
        let modifier = modifier
            .map(|m| parse_modifier(reg, full, resolved.kind, &resolved.targets, m))
            .transpose()?;
        if resolved.kind == SearchParamType::Special && modifier != Some(Modifier::Missing) {
            return Err(SearchError::Unsupported {
                param: full.to_string(),
                message: format!("special parameter '{code}' is not supported"),
            });
        }
        if resolved.kind == SearchParamType::Composite && param.components.is_empty() {
            return Err(SearchError::Unsupported {
                param: full.to_string(),
                message: format!("composite parameter '{code}' has no usable components"),
            });
        }
        let target = ValueTarget {
            name: full,
            kind: resolved.kind,
            targets: &resolved.targets,
            components: &param.components,
        };
        let values = split_unescaped(value, ',')
            .into_iter()
            .filter(|v| !v.is_empty())
            .map(|v| parse_value(reg, &target, modifier.as_ref(), v))
            .collect::<Result<Vec<_>, _>>()?;
        if values.iter().any(too_long) {
            return Err(SearchError::value(
                full,
                format!("search values longer than {MAX_INDEX_TEXT} bytes are not supported"),
            ));
        }
        if values.is_empty() {
            return Err(SearchError::value(full, "no value"));
        }
        return Ok(Clause::Param(ParamClause {
            name: full.to_string(),
            chain,
            param: ParamRef {
                code: code.to_string(),
                kind: resolved.kind,
                resource_types: current,
            },
            modifier,
            values,
        }));
    }
    Err(SearchError::chain(full, "empty parameter name"))
}

/// `_has:Type:reference:rest` (`rest` may be another `_has:…`, a chain, a modifier).
fn parse_has(
    reg: &SearchRegistry,
    types: &[String],
    full: &str,
    rest: &str,
    value: &str,
) -> Result<Clause, SearchError> {
    if links(full) > MAX_LINKS {
        return Err(SearchError::chain(
            full,
            format!("a criterion may follow at most {MAX_LINKS} references (chain links and _has levels together)"),
        ));
    }
    let mut parts = rest.splitn(3, ':');
    let (Some(source), Some(reference), Some(inner)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(SearchError::chain(
            full,
            "_has needs the form _has:Type:reference:parameter",
        ));
    };
    if !reg.is_resource_type(source) {
        return Err(SearchError::chain(
            full,
            format!("'{source}' is not a resource type"),
        ));
    }
    let Some(rp) = reg.param(source, reference) else {
        return Err(SearchError::chain(
            full,
            format!("{source} has no search parameter '{reference}'"),
        ));
    };
    if rp.kind() != SearchParamType::Reference {
        return Err(SearchError::chain(
            full,
            format!("{source}.{reference} is not a reference parameter"),
        ));
    }
    if !types.is_empty() && !types.iter().any(|t| rp.targets().contains(t)) {
        return Err(SearchError::chain(
            full,
            format!(
                "{source}.{reference} cannot refer to {}",
                display_types(types)
            ),
        ));
    }
    let inner = parse_clause(reg, &[source.to_string()], full, inner, value, false)?;
    Ok(Clause::Has(HasClause {
        name: full.to_string(),
        source_type: source.to_string(),
        reference_param: reference.to_string(),
        inner: Box::new(inner),
    }))
}

pub(crate) struct Resolved<'r> {
    pub param: &'r SearchParam,
    pub kind: SearchParamType,
    /// Union of the targets over the types.
    pub targets: Vec<String>,
}

/// Resolves `code` on every type of `types` (`Resource` when empty): it must exist on
/// all of them with one type. `Err` carries a message (empty: simply unknown).
pub(crate) fn resolve<'r>(
    reg: &'r SearchRegistry,
    types: &[String],
    code: &str,
) -> Result<Resolved<'r>, String> {
    let all = ["Resource".to_string()];
    let types = if types.is_empty() { &all[..] } else { types };
    let mut found: Option<Resolved<'r>> = None;
    for t in types {
        let p = reg.param(t, code).ok_or_else(String::new)?;
        match &mut found {
            None => {
                found = Some(Resolved {
                    param: p,
                    kind: p.kind(),
                    targets: p.targets().to_vec(),
                })
            }
            Some(f) => {
                if f.kind != p.kind() {
                    return Err(format!(
                        "'{code}' has different types across {}",
                        types.join(", ")
                    ));
                }
                for target in p.targets() {
                    if !f.targets.contains(target) {
                        f.targets.push(target.clone());
                    }
                }
            }
        }
    }
    found.ok_or_else(String::new)
}

fn parse_modifier(
    reg: &SearchRegistry,
    full: &str,
    kind: SearchParamType,
    targets: &[String],
    m: &str,
) -> Result<Modifier, SearchError> {
    use SearchParamType as T;
    let modifier = match m {
        "missing" => return Ok(Modifier::Missing),
        "exact" => Modifier::Exact,
        "contains" => Modifier::Contains,
        "text" => Modifier::Text,
        "not" => Modifier::Not,
        "above" => Modifier::Above,
        "below" => Modifier::Below,
        "in" => Modifier::In,
        "not-in" => Modifier::NotIn,
        "of-type" => Modifier::OfType,
        "identifier" => Modifier::Identifier,
        t if reg.is_resource_type(t) => {
            if kind != T::Reference {
                return Err(SearchError::modifier(
                    full,
                    format!(
                        "type modifier ':{t}' applies to reference parameters, not {}",
                        kind.as_str()
                    ),
                ));
            }
            if !targets.is_empty() && !targets.iter().any(|x| x == t) {
                return Err(SearchError::modifier(
                    full,
                    format!("'{t}' is not a target type of this parameter"),
                ));
            }
            return Ok(Modifier::Type(t.to_string()));
        }
        other => {
            return Err(SearchError::modifier(
                full,
                format!("unknown modifier ':{other}'"),
            ))
        }
    };
    let ok = match kind {
        T::String => matches!(modifier, Modifier::Exact | Modifier::Contains),
        T::Token => matches!(
            modifier,
            Modifier::Text
                | Modifier::Not
                | Modifier::Above
                | Modifier::Below
                | Modifier::In
                | Modifier::NotIn
                | Modifier::OfType
        ),
        T::Reference => matches!(
            modifier,
            Modifier::Identifier | Modifier::Above | Modifier::Below
        ),
        T::Uri => matches!(modifier, Modifier::Above | Modifier::Below),
        _ => false,
    };
    if !ok {
        return Err(SearchError::modifier(
            full,
            format!(
                "modifier ':{m}' does not apply to a {} parameter",
                kind.as_str()
            ),
        ));
    }
    Ok(modifier)
}

fn display_types(types: &[String]) -> String {
    if types.is_empty() {
        "all resource types".to_string()
    } else {
        types.join(", ")
    }
}
