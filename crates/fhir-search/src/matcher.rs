//! A search matched against one resource in memory: its index values (from
//! [`crate::extract`]) compared with the query's criteria exactly as a store compares
//! its index rows, so that "this resource matches" means what a search would say —
//! without a database. Subscriptions use it on every write (HAPI's in-memory matcher
//! plays the same part), and for a topic's `previous` criteria, which concern a version
//! no longer in the index.
//!
//! What cannot be decided from one resource's own values is [`Undecided`]: chains,
//! `_has`, `_list`, `_text`/`_content`, `_filter`, `near`, composites, and value sets
//! without a local expansion. A caller then asks the store.

use crate::index::{IndexValues, ReferenceRow, TokenRow};
use crate::query::{
    Clause, Modifier, ParamClause, Prefix, ReferenceValue, SearchQuery, SearchValue, StringValue,
    TokenSystem, TokenValue,
};
use crate::{Decimal, NumberRange, SearchParamType};

/// A criterion this matcher cannot decide from the resource alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecided {
    /// The query parameter, as written.
    pub param: String,
}

/// Whether the resource `res_type/id` with index `values` matches every criterion of
/// `query` (its result parameters are ignored).
pub fn matches(
    query: &SearchQuery,
    res_type: &str,
    id: &str,
    values: &IndexValues,
) -> Result<bool, Undecided> {
    if !query.resource_types.is_empty() && !query.resource_types.iter().any(|t| t == res_type) {
        return Ok(false);
    }
    let mut all = true;
    for clause in &query.clauses {
        // Every clause is checked even after one fails: an undecided one makes the
        // whole answer undecided, whatever the order of the clauses.
        all &= clause_matches(clause, id, values)?;
    }
    Ok(all)
}

/// Whether every criterion of `query` can be decided in memory.
pub fn decidable(query: &SearchQuery) -> bool {
    let empty = IndexValues::default();
    query
        .clauses
        .iter()
        .all(|c| clause_matches(c, "", &empty).is_ok())
}

/// The parameter codes whose index values the query's own criteria compare (what
/// [`crate::extract_only`] must extract for [`matches`]).
pub fn params_of(query: &SearchQuery) -> impl Iterator<Item = &str> {
    query.clauses.iter().filter_map(|c| match c {
        Clause::Param(p) if p.chain.is_empty() && p.param.code != "_id" => {
            Some(p.param.code.as_str())
        }
        _ => None,
    })
}

fn undecided(name: &str) -> Undecided {
    Undecided {
        param: name.to_string(),
    }
}

fn clause_matches(clause: &Clause, id: &str, values: &IndexValues) -> Result<bool, Undecided> {
    match clause {
        Clause::Param(p) if p.chain.is_empty() => param_matches(p, id, values),
        other => Err(undecided(other.name())),
    }
}

fn param_matches(p: &ParamClause, id: &str, values: &IndexValues) -> Result<bool, Undecided> {
    if p.param.code == "_id" {
        return id_matches(p, id);
    }
    if let [SearchValue::Missing(missing)] = p.values.as_slice() {
        return Ok(has_rows(p, values)? != *missing);
    }
    let negated = matches!(p.modifier, Some(Modifier::Not | Modifier::NotIn));
    let mut any = false;
    for v in &p.values {
        any |= value_matches(p, v, values)?;
    }
    Ok(any != negated)
}

fn id_matches(p: &ParamClause, id: &str) -> Result<bool, Undecided> {
    let mut any = false;
    for v in &p.values {
        match v {
            SearchValue::Token(TokenValue { code: Some(c), .. }) => any |= c == id,
            SearchValue::Missing(missing) => return Ok(!missing),
            _ => return Err(undecided(&p.name)),
        }
    }
    Ok(any != matches!(p.modifier, Some(Modifier::Not)))
}

/// Whether the resource has any index row of the parameter (`:missing`).
fn has_rows(p: &ParamClause, v: &IndexValues) -> Result<bool, Undecided> {
    let code = p.param.code.as_str();
    Ok(match p.param.kind {
        SearchParamType::String => v.strings.iter().any(|r| r.param == code),
        SearchParamType::Token => v.tokens.iter().any(|r| r.param == code),
        SearchParamType::Date => v.dates.iter().any(|r| r.param == code),
        SearchParamType::Number => v.numbers.iter().any(|r| r.param == code),
        SearchParamType::Quantity => v
            .quantities
            .iter()
            .any(|r| r.param == code && r.value.is_some()),
        SearchParamType::Reference => v.references.iter().any(|r| r.param == code && !r.contained),
        SearchParamType::Uri => v.uris.iter().any(|r| r.param == code),
        SearchParamType::Composite | SearchParamType::Special => return Err(undecided(&p.name)),
    })
}

/// Whether some index row of the parameter matches the value `v`.
fn value_matches(
    p: &ParamClause,
    v: &SearchValue,
    values: &IndexValues,
) -> Result<bool, Undecided> {
    let code = p.param.code.as_str();
    let tokens = || values.tokens.iter().filter(move |r| r.param == code);
    Ok(match v {
        SearchValue::String(s) if p.param.kind == SearchParamType::Token => tokens().any(|r| {
            r.text
                .as_deref()
                .is_some_and(|t| t.starts_with(&s.normalized))
        }),
        SearchValue::String(s) => values
            .strings
            .iter()
            .filter(|r| r.param == code)
            .any(|r| string_matches(p.modifier.as_ref(), s, &r.normalized, &r.value)),
        SearchValue::Token(t) => tokens().any(|r| token_matches(t, &r.system, &r.code)),
        SearchValue::Date { prefix, range, .. } => values
            .dates
            .iter()
            .filter(|r| r.param == code)
            .any(|r| date_matches(*prefix, range.start, range.end, r.start, r.end)),
        SearchValue::Number { prefix, number } => values
            .numbers
            .iter()
            .filter(|r| r.param == code)
            .any(|r| number_matches(*prefix, number, f64_of(&r.number.value))),
        SearchValue::Quantity(q) => values
            .quantities
            .iter()
            .filter(|r| r.param == code)
            .any(|r| {
                let Some(value) = &r.value else { return false };
                number_matches(q.prefix, &q.number, f64_of(value))
                    && match (&q.system, &q.code) {
                        (Some(s), Some(c)) => {
                            r.system.as_ref() == Some(s) && r.code.as_ref() == Some(c)
                        }
                        (None, Some(c)) => r.code.as_ref() == Some(c) || r.unit.as_ref() == Some(c),
                        (Some(s), None) => r.system.as_ref() == Some(s),
                        (None, None) => true,
                    }
            }),
        SearchValue::Reference(rv) => values
            .references
            .iter()
            .filter(|r| r.param == code && !r.contained)
            .any(|r| reference_matches(p.modifier.as_ref(), rv, r)),
        SearchValue::Uri(u) => {
            values
                .uris
                .iter()
                .filter(|r| r.param == code)
                .any(|r| match p.modifier {
                    Some(Modifier::Below) => r.uri.starts_with(u.as_str()),
                    Some(Modifier::Above) => u.starts_with(r.uri.as_str()),
                    _ => &r.uri == u,
                })
        }
        SearchValue::ValueSet {
            expansion: Some(codes),
            ..
        } => tokens().any(|r| in_expansion(codes, r)),
        SearchValue::OfType {
            type_system,
            type_code,
            value,
        } => tokens().any(|r| {
            r.type_system.as_ref() == Some(type_system)
                && r.type_code.as_ref() == Some(type_code)
                && r.code.as_ref() == Some(value)
        }),
        SearchValue::ValueSet {
            expansion: None, ..
        }
        | SearchValue::Composite(_)
        | SearchValue::Missing(_) => return Err(undecided(&p.name)),
    })
}

fn string_matches(modifier: Option<&Modifier>, s: &StringValue, norm: &str, exact: &str) -> bool {
    match modifier {
        Some(Modifier::Exact) => exact == s.raw,
        Some(Modifier::Equals) => norm == s.normalized,
        Some(Modifier::Contains) => norm.contains(&s.normalized),
        Some(Modifier::EndsWith) => norm.ends_with(&s.normalized),
        _ => norm.starts_with(&s.normalized),
    }
}

fn token_matches(t: &TokenValue, system: &Option<String>, code: &Option<String>) -> bool {
    if t.code.as_ref().is_some_and(|c| code.as_ref() != Some(c)) {
        return false;
    }
    match &t.system {
        TokenSystem::Any => true,
        TokenSystem::None => system.is_none(),
        TokenSystem::Is(s) => system.as_ref() == Some(s),
    }
}

/// A code without a system matches the value set's code: its system is implied by the
/// binding (as the store compares them).
fn in_expansion(codes: &[(String, String)], r: &TokenRow) -> bool {
    codes.iter().any(|(system, code)| {
        r.code.as_ref() == Some(code) && r.system.as_ref().is_none_or(|s| s == system)
    })
}

fn reference_matches(modifier: Option<&Modifier>, rv: &ReferenceValue, r: &ReferenceRow) -> bool {
    match rv {
        ReferenceValue::Local {
            resource_type, id, ..
        } => {
            let wanted_type = resource_type.as_ref().or(match modifier {
                Some(Modifier::Type(t)) => Some(t),
                _ => None,
            });
            r.id.as_ref() == Some(id)
                && wanted_type.is_none_or(|t| r.target_type.as_ref() == Some(t))
        }
        ReferenceValue::Url { url, .. } => r.url.as_ref() == Some(url),
        ReferenceValue::Identifier(t) => {
            token_matches(t, &r.identifier_system, &r.identifier_value)
        }
    }
}

/// Date prefixes over half-open `[start, end)` ranges, as the store's SQL compares them
/// (search.html#prefix): `vs..ve` is the searched value, `s..e` the resource's.
fn date_matches(prefix: Prefix, vs: i64, ve: i64, s: i64, e: i64) -> bool {
    let within = s >= vs && e <= ve;
    match prefix {
        Prefix::Eq => within,
        Prefix::Ne => !within,
        Prefix::Gt => e > ve,
        Prefix::Lt => s < vs,
        Prefix::Ge => e > ve || within,
        Prefix::Le => s < vs || within,
        Prefix::Sa => s >= ve,
        Prefix::Eb => e <= vs,
        Prefix::Ap => {
            let width =
                ((ve as i128 - vs as i128) / 10).clamp(86_400_000, i64::MAX as i128 / 4) as i64;
            s < ve.saturating_add(width) && e > vs.saturating_sub(width)
        }
    }
}

/// Numbers compare as the store's `REAL`/`double precision` columns do.
fn f64_of(d: &Decimal) -> f64 {
    d.to_string().parse().unwrap_or(0.0)
}

fn number_matches(prefix: Prefix, n: &NumberRange, x: f64) -> bool {
    let (low, high, value) = (f64_of(&n.low), f64_of(&n.high), f64_of(&n.value));
    match prefix {
        Prefix::Eq => x >= low && x < high,
        Prefix::Ne => !(x >= low && x < high),
        Prefix::Gt | Prefix::Sa => x > value,
        Prefix::Lt | Prefix::Eb => x < value,
        Prefix::Ge => x >= value,
        Prefix::Le => x <= value,
        Prefix::Ap => {
            let d = (value * 0.1).abs();
            x >= value - d && x <= value + d
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{extract, parse_query_string, SearchRegistry};
    use serde_json::json;

    fn check(res_type: &str, query: &str, resource: &serde_json::Value) -> Result<bool, Undecided> {
        let reg = SearchRegistry::r4();
        let q = parse_query_string(reg, Some(res_type), query, true).unwrap();
        let id = resource["id"].as_str().unwrap_or("");
        matches(&q, res_type, id, &extract(reg, res_type, resource))
    }

    fn obs() -> serde_json::Value {
        json!({"resourceType": "Observation", "id": "o1", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2339-0", "display": "Glucose"}]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2024-03-05T10:00:00Z",
            "valueQuantity": {"value": 95.0, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}})
    }

    #[test]
    fn tokens_references_and_ids() {
        let o = obs();
        assert_eq!(
            check("Observation", "code=http://loinc.org|2339-0", &o),
            Ok(true)
        );
        assert_eq!(check("Observation", "code=2339-0,1234-5", &o), Ok(true));
        assert_eq!(check("Observation", "code=|2339-0", &o), Ok(false));
        assert_eq!(check("Observation", "code:not=2339-0", &o), Ok(false));
        assert_eq!(check("Observation", "code:text=gluc", &o), Ok(true));
        assert_eq!(check("Observation", "subject=Patient/p1", &o), Ok(true));
        assert_eq!(check("Observation", "patient=p2", &o), Ok(false));
        assert_eq!(check("Observation", "_id=o1&status=final", &o), Ok(true));
        assert_eq!(check("Observation", "_id:not=o1", &o), Ok(false));
        assert_eq!(check("Observation", "category:missing=true", &o), Ok(true));
    }

    #[test]
    fn dates_quantities_and_strings() {
        let o = obs();
        assert_eq!(check("Observation", "date=2024-03", &o), Ok(true));
        assert_eq!(check("Observation", "date=gt2024-03-05", &o), Ok(false));
        assert_eq!(check("Observation", "date=lt2024-03-06", &o), Ok(true));
        assert_eq!(
            check("Observation", "value-quantity=gt90||mg/dL", &o),
            Ok(true)
        );
        assert_eq!(
            check(
                "Observation",
                "value-quantity=95|http://unitsofmeasure.org|mg/dL",
                &o
            ),
            Ok(true)
        );
        assert_eq!(check("Observation", "value-quantity=le90", &o), Ok(false));
        let p = json!({"resourceType": "Patient", "id": "p", "name": [{"family": "Müller"}]});
        assert_eq!(check("Patient", "family=mul", &p), Ok(true));
        assert_eq!(check("Patient", "family:exact=Muller", &p), Ok(false));
        assert_eq!(check("Patient", "family:contains=ll", &p), Ok(true));
    }

    #[test]
    fn what_needs_other_resources_is_undecided() {
        let o = obs();
        let chained = check("Observation", "subject:Patient.name=x&code=nope", &o);
        assert_eq!(
            chained.map_err(|u| u.param),
            Err("subject:Patient.name".to_string())
        );
        assert!(check(
            "Observation",
            "_has:Observation:has-member:status=final",
            &o
        )
        .is_err());
        let reg = SearchRegistry::r4();
        let q = parse_query_string(reg, Some("Observation"), "code=1&date=ge2020", true).unwrap();
        assert!(decidable(&q));
    }
}
