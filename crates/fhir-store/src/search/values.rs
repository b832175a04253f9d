//! The SQL of each value type of a criterion on its index row `i`: strings with their
//! modifiers, tokens, dates over `[start, end)` ranges with their prefixes, numbers and
//! quantities with their implicit precision, references, uris, composites and the codes
//! of a value set.

use super::*;

/// `LIKE` pattern text with `\\`, `%` and `_` escaped.
pub(crate) fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

pub(super) fn check_modifier(p: &ParamClause, allowed: &[&str]) -> StoreResult<()> {
    match &p.modifier {
        None => Ok(()),
        Some(m) if allowed.contains(&m.as_str()) => Ok(()),
        Some(Modifier::Type(_)) if allowed.contains(&"[type]") => Ok(()),
        Some(m) => Err(unsupported_at(
            &p.name,
            format!(
                "the :{} modifier is not supported yet on '{}'",
                m.as_str(),
                p.param.code
            ),
        )),
    }
}

pub(super) fn value_sql(q: &mut Sql, p: &ParamClause, v: &SearchValue) -> StoreResult<()> {
    match v {
        SearchValue::String(s) if p.param.kind == SearchParamType::Token => {
            check_modifier(p, &["text"])?;
            q.push("i.text_norm LIKE ")
                .bind(Bind::Text(format!("{}%", like_escape(&s.normalized))));
            q.push(" ESCAPE '\\'");
        }
        SearchValue::String(s) => {
            check_modifier(p, &["exact", "contains", "equals", "ends-with"])?;
            match p.modifier {
                Some(Modifier::Exact) => {
                    q.push("i.exact = ").bind(Bind::Text(s.raw.clone()));
                }
                Some(Modifier::Equals) => {
                    q.push("i.norm = ").bind(Bind::Text(s.normalized.clone()));
                }
                Some(Modifier::Contains) => {
                    q.push("i.norm LIKE ")
                        .bind(Bind::Text(format!("%{}%", like_escape(&s.normalized))));
                    q.push(" ESCAPE '\\'");
                }
                Some(Modifier::EndsWith) => {
                    q.push("i.norm LIKE ")
                        .bind(Bind::Text(format!("%{}", like_escape(&s.normalized))));
                    q.push(" ESCAPE '\\'");
                }
                _ => {
                    q.push("i.norm LIKE ")
                        .bind(Bind::Text(format!("{}%", like_escape(&s.normalized))));
                    q.push(" ESCAPE '\\'");
                }
            }
        }
        SearchValue::Token(t) => {
            check_modifier(p, &["not"])?;
            token_sql(q, "i.system", "i.code", t);
        }
        SearchValue::Date { prefix, range, .. } => {
            check_modifier(p, &[])?;
            date_sql(q, *prefix, range.start, range.end);
        }
        SearchValue::Number { prefix, number } => {
            check_modifier(p, &[])?;
            number_sql(q, *prefix, number)?;
        }
        SearchValue::Quantity(qv) => {
            check_modifier(p, &[])?;
            number_sql(q, qv.prefix, &qv.number)?;
            match (&qv.system, &qv.code) {
                (Some(s), Some(c)) => {
                    q.push(" AND i.system = ").bind(Bind::Text(s.clone()));
                    q.push(" AND i.code = ").bind(Bind::Text(c.clone()));
                }
                (None, Some(c)) => {
                    q.push(" AND (i.code = ").bind(Bind::Text(c.clone()));
                    q.push(" OR i.unit = ")
                        .bind(Bind::Text(c.clone()))
                        .push(")");
                }
                (Some(s), None) => {
                    q.push(" AND i.system = ").bind(Bind::Text(s.clone()));
                }
                (None, None) => {}
            }
        }
        SearchValue::Reference(rv) => {
            check_modifier(p, &["identifier", "[type]"])?;
            reference_sql(q, p, rv);
        }
        SearchValue::Uri(u) => {
            check_modifier(p, &["below", "above"])?;
            match p.modifier {
                Some(Modifier::Below) => {
                    q.push("i.uri LIKE ")
                        .bind(Bind::Text(format!("{}%", like_escape(u))));
                    q.push(" ESCAPE '\\'");
                }
                Some(Modifier::Above) => {
                    q.bind(Bind::Text(u.clone())).push(" LIKE i.uri || '%'");
                }
                _ => {
                    q.push("i.uri = ").bind(Bind::Text(u.clone()));
                }
            }
        }
        SearchValue::Missing(_) => {
            return Err(unsupported_at(
                &p.name,
                ":missing cannot be combined with other values".into(),
            ))
        }
        SearchValue::Composite(parts) => {
            check_modifier(p, &[])?;
            composite_sql(q, p, parts)?;
        }
        SearchValue::ValueSet { url, expansion } => {
            check_modifier(p, &["in", "not-in", "below", "above"])?;
            let codes = expansion.as_ref().ok_or_else(|| {
                let message = match p.modifier {
                    Some(Modifier::Below | Modifier::Above) => format!(
                        "'{url}': the hierarchy of this code system is not known to this server"
                    ),
                    _ => format!("value set '{url}' cannot be expanded by this server"),
                };
                unsupported_at(&p.name, message)
            })?;
            if codes.len() > MAX_VALUE_SET_CODES {
                return Err(unsupported_at(
                    &p.name,
                    format!("value set '{url}' has {} codes; at most {MAX_VALUE_SET_CODES} are supported", codes.len()),
                ));
            }
            q.push("1 = 0");
            // Elements of type `code` are indexed without a system: theirs is implied
            // by the binding, so a code without a system matches the value set's code.
            // One `IN` list per system: 1,000 codes as 1,000 `OR` terms took SQLite
            // longer to plan than to run.
            let mut by_system: std::collections::BTreeMap<&str, Vec<String>> =
                std::collections::BTreeMap::new();
            for (system, code) in codes {
                by_system.entry(system).or_default().push(code.clone());
            }
            for (system, codes) in by_system {
                q.push(" OR ((i.system = ")
                    .bind(Bind::Text(system.to_string()));
                q.push(" OR i.system IS NULL) AND i.code");
                q.in_list(&codes).push(")");
            }
        }
        SearchValue::OfType {
            type_system,
            type_code,
            value,
        } => {
            check_modifier(p, &["of-type"])?;
            q.push("i.type_system = ")
                .bind(Bind::Text(type_system.clone()));
            q.push(" AND i.type_code = ")
                .bind(Bind::Text(type_code.clone()));
            q.push(" AND i.code = ").bind(Bind::Text(value.clone()));
        }
    }
    Ok(())
}

/// A composite value: the first component on the row at alias `i`, each further one
/// on a row of the same combination (same `rid`, `param`, `grp`).
pub(super) fn composite_sql(
    q: &mut Sql,
    p: &ParamClause,
    parts: &[fhir_search::ComponentValue],
) -> StoreResult<()> {
    q.push("i.pos = 0");
    for (pos, part) in parts.iter().enumerate() {
        let component = ParamClause {
            name: p.name.clone(),
            chain: Vec::new(),
            param: fhir_search::ParamRef {
                code: part.code.clone(),
                kind: part.kind,
                resource_types: Vec::new(),
            },
            modifier: None,
            values: vec![part.value.clone()],
        };
        let mut cond = Sql::new("");
        value_sql(&mut cond, &component, &part.value)?;
        if pos == 0 {
            q.push(" AND (").append(&cond).push(")");
        } else {
            let alias = format!("k{pos}");
            q.push(&format!(
                " AND EXISTS (SELECT 1 FROM idx_composite {alias} WHERE {alias}.rid = i.rid \
                 AND {alias}.param = i.param AND {alias}.grp = i.grp AND {alias}.pos = "
            ));
            q.bind(Bind::BigInt(pos as i64))
                .push(" AND (")
                .append(&cond.with_alias("i", &alias))
                .push("))");
        }
    }
    Ok(())
}

pub(super) fn token_sql(q: &mut Sql, system_col: &str, code_col: &str, t: &TokenValue) {
    q.push("1 = 1");
    if let Some(code) = &t.code {
        q.push(&format!(" AND {code_col} = "))
            .bind(Bind::Text(code.clone()));
    }
    match &t.system {
        TokenSystem::Any => {}
        TokenSystem::None => {
            q.push(&format!(" AND {system_col} IS NULL"));
        }
        TokenSystem::Is(s) => {
            q.push(&format!(" AND {system_col} = "))
                .bind(Bind::Text(s.clone()));
        }
    }
}

/// Date prefixes over `[start, end)` ranges (search.html#prefix).
///
/// An entry's start does not follow its end: a Period's start "SHALL have a lower value
/// than end" (per-1), and one that does not (per-1 cannot compare a date-time with a
/// date of another precision; a store without validation takes any Period) is indexed
/// as the instant it starts (fhir-search `index.rs`, migration `000023_date_bounds`).
/// So `eq`, `ge` and `le` also bound the one column an index can range over. Without
/// the bound, `ge` was two ranges whose second read every earlier date (200,000 entries
/// for 2,260 Observations since June 2026: 112 ms), and `eq` read every later start.
pub(super) fn date_sql(q: &mut Sql, prefix: Prefix, vs: i64, ve: i64) {
    let (s, e) = (Bind::BigInt(vs), Bind::BigInt(ve));
    match prefix {
        Prefix::Eq => {
            q.push("i.start_ms >= ")
                .bind(s)
                .push(" AND i.start_ms <= ")
                .bind(e.clone())
                .push(" AND i.end_ms <= ")
                .bind(e);
        }
        Prefix::Ne => {
            q.push("NOT (i.start_ms >= ")
                .bind(s)
                .push(" AND i.end_ms <= ")
                .bind(e)
                .push(")");
        }
        Prefix::Gt => {
            q.push("i.end_ms > ").bind(e);
        }
        Prefix::Lt => {
            q.push("i.start_ms < ").bind(s);
        }
        Prefix::Ge => {
            // After the value's end, or within it: ends at or after its start.
            q.push("i.end_ms >= ")
                .bind(s.clone())
                .push(" AND (i.end_ms > ")
                .bind(e)
                .push(" OR i.start_ms >= ")
                .bind(s)
                .push(")");
        }
        Prefix::Le => {
            // Before the value's start, or within it: starts at or before its end.
            q.push("i.start_ms <= ")
                .bind(e.clone())
                .push(" AND (i.start_ms < ")
                .bind(s)
                .push(" OR i.end_ms <= ")
                .bind(e)
                .push(")");
        }
        Prefix::Sa => {
            q.push("i.start_ms >= ").bind(e);
        }
        Prefix::Eb => {
            q.push("i.end_ms <= ").bind(s);
        }
        Prefix::Ap => {
            // Overlap with the value's period widened by a tenth of its length (at
            // least a day) on each side.
            let width =
                ((ve as i128 - vs as i128) / 10).clamp(86_400_000, i64::MAX as i128 / 4) as i64;
            q.push("i.start_ms < ")
                .bind(Bind::BigInt(ve.saturating_add(width)));
            q.push(" AND i.end_ms > ")
                .bind(Bind::BigInt(vs.saturating_sub(width)));
        }
    }
}

pub(super) fn to_f64(d: &fhir_search::Decimal) -> f64 {
    d.to_string().parse().unwrap_or(0.0)
}

/// Number prefixes: the search value's implicit range for `eq`/`ne`, exact otherwise.
pub(super) fn number_sql(
    q: &mut Sql,
    prefix: Prefix,
    n: &fhir_search::NumberRange,
) -> StoreResult<()> {
    let (low, high, value) = (to_f64(&n.low), to_f64(&n.high), to_f64(&n.value));
    match prefix {
        Prefix::Eq => {
            q.push("i.value >= ")
                .bind(Bind::Double(low))
                .push(" AND i.value < ")
                .bind(Bind::Double(high));
        }
        Prefix::Ne => {
            q.push("NOT (i.value >= ")
                .bind(Bind::Double(low))
                .push(" AND i.value < ");
            q.bind(Bind::Double(high)).push(")");
        }
        Prefix::Gt | Prefix::Sa => {
            q.push("i.value > ").bind(Bind::Double(value));
        }
        Prefix::Lt | Prefix::Eb => {
            q.push("i.value < ").bind(Bind::Double(value));
        }
        Prefix::Ge => {
            q.push("i.value >= ").bind(Bind::Double(value));
        }
        Prefix::Le => {
            q.push("i.value <= ").bind(Bind::Double(value));
        }
        Prefix::Ap => {
            let d = (value * 0.1).abs();
            q.push("i.value >= ")
                .bind(Bind::Double(value - d))
                .push(" AND i.value <= ");
            q.bind(Bind::Double(value + d));
        }
    }
    Ok(())
}

pub(super) fn reference_sql(q: &mut Sql, p: &ParamClause, rv: &ReferenceValue) {
    let type_filter = match &p.modifier {
        Some(Modifier::Type(t)) => Some(t.clone()),
        _ => None,
    };
    match rv {
        ReferenceValue::Local {
            resource_type, id, ..
        } => {
            q.push("i.target_id = ").bind(Bind::Text(id.clone()));
            if let Some(t) = resource_type.clone().or(type_filter) {
                q.push(" AND i.target_type = ").bind(Bind::Text(t));
            }
        }
        ReferenceValue::Url { url, .. } => {
            q.push("i.url = ").bind(Bind::Text(url.clone()));
        }
        ReferenceValue::Identifier(t) => token_sql(q, "i.ident_system", "i.ident_value", t),
    }
}
