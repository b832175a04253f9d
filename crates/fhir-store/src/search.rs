//! Compiling a search AST (`fhir_search::SearchQuery`) to SQL over the index tables,
//! identically for SQLite and PostgreSQL, and running it: matches, total, paging,
//! sorting, `_include` and `_revinclude`.
//!
//! Every criterion becomes an `EXISTS` sub-query on one index table keyed by the
//! resource's `rid`, so cost follows the index, not the table. Chains join through
//! `idx_reference` to the target's `resources` row; `_has` does the reverse.

use std::collections::HashSet;

use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;
use fhir_search::{
    Clause, HasClause, Include, Modifier, ParamClause, Prefix, ReferenceValue, SearchParamType,
    SearchQuery, SearchValue, SortKey, TokenSystem, TokenValue,
};

use crate::backend::Tx;
use crate::error::{StoreError, StoreResult};
use crate::model::{StoredResource, VERSION_COLUMNS};
use crate::sql::{Bind, CountRow, Sql};

/// Nesting limit for chains and `_has` (each level is one more sub-query).
const MAX_DEPTH: usize = 8;

/// Most values one parameter may list (`code=a,b,…`), and most criteria in one search:
/// beyond them a query outgrows what the databases accept (bound parameters, expression
/// depth), so it is refused with 400 rather than failing.
const MAX_VALUES: usize = 200;
const MAX_CLAUSES: usize = 100;

/// The largest value set `:in` / `:not-in` expand into SQL.
const MAX_VALUE_SET_CODES: usize = 2000;

/// Rounds of `_include:iterate` / `_revinclude:iterate` before giving up on more.
const MAX_ITERATE: usize = 20;

/// Where a page starts. Pages follow a key, not a position, so that links stay correct
/// while data changes: unsorted searches page by `rid`, sorted ones by the sort values
/// of the boundary row (then `rid`).
#[derive(Debug, Clone, PartialEq)]
pub enum SearchCursor {
    AfterRid(i64),
    BeforeRid(i64),
    AfterKey(Vec<KeyValue>),
    BeforeKey(Vec<KeyValue>),
    /// A position (links of earlier versions; still understood).
    Offset(u64),
}

/// One sort value of a boundary row.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyValue {
    Int(i64),
    Real(f64),
    Text(String),
}

impl KeyValue {
    /// `i5`, `r1.5` (shortest text that reads back exactly), `tsmith`.
    fn encode(&self) -> String {
        match self {
            KeyValue::Int(n) => format!("i{n}"),
            KeyValue::Real(x) => format!("r{x}"),
            KeyValue::Text(t) => format!("t{t}"),
        }
    }

    fn decode(s: &str) -> Option<KeyValue> {
        let (kind, rest) = s.split_at_checked(1)?;
        match kind {
            "i" => rest.parse().ok().map(KeyValue::Int),
            "r" => rest.parse().ok().map(KeyValue::Real),
            "t" => Some(KeyValue::Text(rest.to_string())),
            _ => None,
        }
    }
}

/// Key values as a JSON array of strings (numbers as text, so they read back exactly).
fn encode_key(key: &[KeyValue]) -> String {
    let parts: Vec<String> = key.iter().map(KeyValue::encode).collect();
    serde_json::to_string(&parts).unwrap_or_default()
}

fn decode_key(text: &str) -> Option<Vec<KeyValue>> {
    let parts: Vec<String> = serde_json::from_str(text).ok()?;
    parts.iter().map(|p| KeyValue::decode(p)).collect()
}

impl SearchCursor {
    /// The cursor as the value of a `_page` parameter.
    pub fn token(&self) -> String {
        let keys = |k: &Vec<KeyValue>| encode_key(k);
        match self {
            SearchCursor::AfterRid(n) => format!("a{n}"),
            SearchCursor::BeforeRid(n) => format!("b{n}"),
            SearchCursor::AfterKey(k) => format!("k{}", keys(k)),
            SearchCursor::BeforeKey(k) => format!("j{}", keys(k)),
            SearchCursor::Offset(n) => format!("o{n}"),
        }
    }

    /// Reads a `_page` value; `None` when it is not one of ours.
    pub fn parse(token: &str) -> Option<SearchCursor> {
        let (kind, rest) = token.split_at_checked(1)?;
        match kind {
            "a" => rest.parse().ok().map(SearchCursor::AfterRid),
            "b" => rest.parse().ok().map(SearchCursor::BeforeRid),
            "k" => decode_key(rest).map(SearchCursor::AfterKey),
            "j" => decode_key(rest).map(SearchCursor::BeforeKey),
            "o" => rest.parse().ok().map(SearchCursor::Offset),
            _ => None,
        }
    }
}

/// What a search needs besides the query.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    pub query: SearchQuery,
    pub count: usize,
    pub cursor: Option<SearchCursor>,
    /// Count all matches (`_total` other than `none`).
    pub with_total: bool,
    /// Compartment search: matches must refer to `(type, id)` through one of `params`.
    pub compartment: Option<Compartment>,
    /// Confines the resources that chains and `_has` pass through: those of a type
    /// listed in `params` must be in this compartment (one of the compartment's own
    /// type, listed with no parameters, must be that resource); other types are not
    /// confined. Without it, a patient-scoped token could learn values of resources it
    /// may not read by comparing the results of chained criteria.
    pub linked_within: Option<Compartment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compartment {
    pub resource_type: String,
    pub id: String,
    /// Per searched type, the reference parameters linking it to the compartment.
    pub params: Vec<(String, Vec<String>)>,
}

/// One page of results.
#[derive(Debug, Clone, Default)]
pub struct SearchPage {
    pub matches: Vec<StoredResource>,
    pub included: Vec<StoredResource>,
    pub total: Option<i64>,
    /// Where the next and the previous page start, if there are such pages.
    pub next: Option<SearchCursor>,
    pub previous: Option<SearchCursor>,
    /// `:iterate` stopped after its last round with more left to include.
    pub includes_incomplete: bool,
}

#[derive(QueryableByName)]
pub(crate) struct MatchRow {
    #[diesel(sql_type = BigInt)]
    pub(crate) rid: i64,
    #[diesel(embed)]
    pub(crate) version: StoredResource,
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = Text)]
    res_id: String,
}

fn unsupported_at(param: &str, what: String) -> StoreError {
    StoreError::BadRequest {
        message: what,
        expression: Some(param.to_string()),
    }
}

/// The `WHERE` conditions of a search on alias `r` (resources).
fn filter(q: &mut Sql, req: &SearchRequest) -> StoreResult<()> {
    if req.query.clauses.len() > MAX_CLAUSES {
        return Err(unsupported_at(
            "_query",
            format!("a search may have at most {MAX_CLAUSES} criteria"),
        ));
    }
    q.push(" WHERE r.version > 0 AND r.deleted = ")
        .bind(Bind::Bool(false));
    if !req.query.resource_types.is_empty() {
        q.push(" AND r.res_type").in_list(&req.query.resource_types);
    }
    // The most selective kind of criterion drives the search (an uncorrelated IN on the
    // index); the others are checked per candidate (correlated EXISTS).
    let mut clauses: Vec<&Clause> = req.query.clauses.iter().collect();
    clauses.sort_by_key(|c| selectivity_rank(c));
    let scope = req.linked_within.as_ref();
    for (n, clause) in clauses.into_iter().enumerate() {
        q.push(" AND ");
        clause_sql(q, "r", clause, 0, n == 0, scope)?;
    }
    if let Some(c) = &req.compartment {
        q.push(" AND ");
        compartment_sql(q, "r", c);
    }
    Ok(())
}

/// The resource at alias `r`, reached through a chain or `_has`, may be used: its type
/// is not confined, or it is in the compartment (see [`SearchRequest::linked_within`]).
fn scope_sql(q: &mut Sql, r: &str, scope: &Compartment) {
    let confined: Vec<String> = scope.params.iter().map(|(t, _)| t.clone()).collect();
    q.push(&format!("({r}.res_type NOT")).in_list(&confined);
    q.push(&format!(" OR ({r}.res_type = "))
        .bind(Bind::Text(scope.resource_type.clone()));
    q.push(&format!(" AND {r}.res_id = "))
        .bind(Bind::Text(scope.id.clone()))
        .push(") OR ");
    compartment_sql(q, r, scope);
    q.push(")");
}

fn compartment_sql(q: &mut Sql, r: &str, c: &Compartment) {
    let x = format!("c_{r}");
    q.push("(");
    let mut any = false;
    for (rt, params) in &c.params {
        if params.is_empty() {
            continue;
        }
        if any {
            q.push(" OR ");
        }
        any = true;
        q.push(&format!("({r}.res_type = "))
            .bind(Bind::Text(rt.clone()));
        q.push(&format!(
            " AND EXISTS (SELECT 1 FROM idx_reference {x} WHERE {x}.rid = {r}.rid AND {x}.param"
        ));
        q.in_list(params);
        q.push(&format!(" AND {x}.target_type = "))
            .bind(Bind::Text(c.resource_type.clone()));
        q.push(&format!(" AND {x}.target_id = "))
            .bind(Bind::Text(c.id.clone()))
            .push("))");
    }
    if !any {
        q.push("1 = 0");
    }
    q.push(")");
}

/// Lower is more selective, as a rule: identifiers, codes and references first, ranges last.
fn selectivity_rank(clause: &Clause) -> u8 {
    let Clause::Param(p) = clause else { return 6 };
    if !p.chain.is_empty() {
        return 5;
    }
    if matches!(
        p.modifier,
        Some(Modifier::Not | Modifier::NotIn | Modifier::Missing)
    ) {
        return 9;
    }
    match p.param.kind {
        _ if p.param.code == "_id" => 0,
        SearchParamType::Token | SearchParamType::Reference => 1,
        SearchParamType::String | SearchParamType::Uri => 2,
        SearchParamType::Composite => 3,
        SearchParamType::Quantity | SearchParamType::Number => 4,
        _ => 7,
    }
}

/// A boolean SQL expression: the resource at alias `r` satisfies `clause`. `drive`:
/// written so the database can start from the index (only for the first criterion).
pub(crate) fn clause_sql(
    q: &mut Sql,
    r: &str,
    clause: &Clause,
    depth: usize,
    drive: bool,
    scope: Option<&Compartment>,
) -> StoreResult<()> {
    if depth > MAX_DEPTH {
        return Err(unsupported_at(
            clause.name(),
            "chains and _has nest too deeply".into(),
        ));
    }
    match clause {
        Clause::Param(p) if p.chain.is_empty() => param_sql(q, r, p, drive),
        Clause::Param(p) => chain_sql(q, r, p, 0, depth, drive, scope),
        Clause::Has(h) => has_sql(q, r, h, depth, scope),
    }
}

fn chain_sql(
    q: &mut Sql,
    r: &str,
    p: &ParamClause,
    link: usize,
    depth: usize,
    drive: bool,
    scope: Option<&Compartment>,
) -> StoreResult<()> {
    let Some(l) = p.chain.get(link) else {
        let last = ParamClause {
            chain: Vec::new(),
            ..p.clone()
        };
        return param_sql(q, r, &last, drive);
    };
    let (x, t) = (format!("x{depth}_{link}"), format!("t{depth}_{link}"));
    if drive {
        // From the end of the chain backwards: the targets that match, then who refers
        // to them (idx_reference_target), all through indexes.
        q.push(&format!(
            "{r}.rid IN (SELECT {x}.rid FROM idx_reference {x} JOIN resources {t} ON {t}.res_type = {x}.target_type \
             AND {t}.res_id = {x}.target_id WHERE {x}.param = "
        ));
    } else {
        q.push(&format!(
            "EXISTS (SELECT 1 FROM idx_reference {x} JOIN resources {t} ON {t}.res_type = {x}.target_type \
             AND {t}.res_id = {x}.target_id WHERE {x}.rid = {r}.rid AND {x}.param = "
        ));
    }
    q.bind(Bind::Text(l.code.clone()));
    q.push(&format!(" AND {t}.version > 0 AND {t}.deleted = "))
        .bind(Bind::Bool(false));
    q.push(&format!(" AND {t}.res_type"))
        .in_list(&l.target_types);
    if let Some(scope) = scope {
        q.push(" AND ");
        scope_sql(q, &t, scope);
    }
    q.push(" AND ");
    chain_sql(q, &t, p, link + 1, depth, drive, scope)?;
    q.push(")");
    Ok(())
}

fn has_sql(
    q: &mut Sql,
    r: &str,
    h: &HasClause,
    depth: usize,
    scope: Option<&Compartment>,
) -> StoreResult<()> {
    let (x, s) = (format!("h{depth}"), format!("s{depth}"));
    q.push(&format!(
        "EXISTS (SELECT 1 FROM idx_reference {x} JOIN resources {s} ON {s}.rid = {x}.rid \
         WHERE {x}.param = "
    ));
    q.bind(Bind::Text(h.reference_param.clone()));
    q.push(&format!(" AND {s}.res_type = "))
        .bind(Bind::Text(h.source_type.clone()));
    q.push(&format!(" AND {s}.version > 0 AND {s}.deleted = "))
        .bind(Bind::Bool(false));
    q.push(&format!(
        " AND {x}.target_type = {r}.res_type AND {x}.target_id = {r}.res_id AND "
    ));
    if let Some(scope) = scope {
        scope_sql(q, &s, scope);
        q.push(" AND ");
    }
    clause_sql(q, &s, &h.inner, depth + 1, false, scope)?;
    q.push(")");
    Ok(())
}

fn table_of(kind: SearchParamType) -> Option<&'static str> {
    Some(match kind {
        SearchParamType::String => "idx_string",
        SearchParamType::Token => "idx_token",
        SearchParamType::Date => "idx_date",
        SearchParamType::Number => "idx_number",
        SearchParamType::Quantity => "idx_quantity",
        SearchParamType::Reference => "idx_reference",
        SearchParamType::Uri => "idx_uri",
        SearchParamType::Composite => "idx_composite",
        SearchParamType::Special => return None,
    })
}

/// `_id` compares the resource's own id.
fn id_sql(q: &mut Sql, r: &str, p: &ParamClause) -> StoreResult<()> {
    let mut ids = Vec::new();
    for v in &p.values {
        match v {
            SearchValue::Token(TokenValue { code: Some(c), .. }) => ids.push(c.clone()),
            SearchValue::Missing(missing) => {
                q.push(if *missing { "1 = 0" } else { "1 = 1" });
                return Ok(());
            }
            _ => return Err(unsupported_at(&p.name, "_id takes plain ids".into())),
        }
    }
    let not = matches!(p.modifier, Some(Modifier::Not));
    q.push(&format!("{}{r}.res_id", if not { "NOT " } else { "" }))
        .in_list(&ids);
    Ok(())
}

fn param_sql(q: &mut Sql, r: &str, p: &ParamClause, drive: bool) -> StoreResult<()> {
    if p.values.len() > MAX_VALUES {
        return Err(unsupported_at(
            &p.name,
            format!("'{}' lists more than {MAX_VALUES} values", p.name),
        ));
    }
    if p.param.code == "_id" {
        return id_sql(q, r, p);
    }
    let table = table_of(p.param.kind).ok_or_else(|| {
        unsupported_at(
            &p.name,
            format!(
                "{} parameters such as '{}' are not supported yet",
                p.param.kind.as_str(),
                p.param.code
            ),
        )
    })?;
    if let [SearchValue::Missing(missing)] = p.values.as_slice() {
        q.push(if *missing { "NOT EXISTS" } else { "EXISTS" });
        q.push(&format!(
            " (SELECT 1 FROM {table} i WHERE i.rid = {r}.rid AND i.param = "
        ));
        q.bind(Bind::Text(p.param.code.clone())).push(")");
        return Ok(());
    }
    let negated = matches!(p.modifier, Some(Modifier::Not | Modifier::NotIn));
    if negated || !drive {
        let not = if negated { "NOT " } else { "" };
        q.push(&format!(
            "{not}EXISTS (SELECT 1 FROM {table} i WHERE i.rid = {r}.rid AND i.param = "
        ));
    } else {
        // Uncorrelated, so the index on (res_type, param, value) drives the search and
        // its cost follows the number of matching values, not the size of the table.
        q.push(&format!("{r}.rid IN (SELECT i.rid FROM {table} i WHERE "));
        if !p.param.resource_types.is_empty() {
            q.push("i.res_type")
                .in_list(&p.param.resource_types)
                .push(" AND ");
        }
        q.push("i.param = ");
    }
    q.bind(Bind::Text(p.param.code.clone())).push(" AND (");
    for (n, v) in p.values.iter().enumerate() {
        if n > 0 {
            q.push(" OR ");
        }
        q.push("(");
        value_sql(q, p, v)?;
        q.push(")");
    }
    q.push("))");
    Ok(())
}

/// `LIKE` pattern text with `\\`, `%` and `_` escaped.
fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn check_modifier(p: &ParamClause, allowed: &[&str]) -> StoreResult<()> {
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

fn value_sql(q: &mut Sql, p: &ParamClause, v: &SearchValue) -> StoreResult<()> {
    match v {
        SearchValue::String(s) if p.param.kind == SearchParamType::Token => {
            check_modifier(p, &["text"])?;
            q.push("i.text_norm LIKE ")
                .bind(Bind::Text(format!("{}%", like_escape(&s.normalized))));
            q.push(" ESCAPE '\\'");
        }
        SearchValue::String(s) => {
            check_modifier(p, &["exact", "contains"])?;
            match p.modifier {
                Some(Modifier::Exact) => {
                    q.push("i.exact = ").bind(Bind::Text(s.raw.clone()));
                }
                Some(Modifier::Contains) => {
                    q.push("i.norm LIKE ")
                        .bind(Bind::Text(format!("%{}%", like_escape(&s.normalized))));
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
            for (system, code) in codes {
                q.push(" OR ((i.system = ").bind(Bind::Text(system.clone()));
                q.push(" OR i.system IS NULL) AND i.code = ");
                q.bind(Bind::Text(code.clone())).push(")");
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
fn composite_sql(
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

fn token_sql(q: &mut Sql, system_col: &str, code_col: &str, t: &TokenValue) {
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
fn date_sql(q: &mut Sql, prefix: Prefix, vs: i64, ve: i64) {
    let (s, e) = (Bind::BigInt(vs), Bind::BigInt(ve));
    match prefix {
        Prefix::Eq => {
            q.push("i.start_ms >= ")
                .bind(s)
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
            q.push("(i.end_ms > ")
                .bind(e.clone())
                .push(" OR (i.start_ms >= ")
                .bind(s)
                .push(" AND i.end_ms <= ");
            q.bind(e).push("))");
        }
        Prefix::Le => {
            q.push("(i.start_ms < ")
                .bind(s.clone())
                .push(" OR (i.start_ms >= ")
                .bind(s)
                .push(" AND i.end_ms <= ");
            q.bind(e).push("))");
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

fn to_f64(d: &fhir_search::Decimal) -> f64 {
    d.to_string().parse().unwrap_or(0.0)
}

/// Number prefixes: the search value's implicit range for `eq`/`ne`, exact otherwise.
fn number_sql(q: &mut Sql, prefix: Prefix, n: &fhir_search::NumberRange) -> StoreResult<()> {
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

fn reference_sql(q: &mut Sql, p: &ParamClause, rv: &ReferenceValue) {
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

#[derive(Debug, Clone, Copy, PartialEq)]
enum KeyKind {
    Int,
    Real,
    Text,
}

/// One column of a search's order: an SQL expression over `r` and its direction.
#[derive(Debug, Clone)]
struct SortColumn {
    expr: Sql,
    descending: bool,
    kind: KeyKind,
}

impl SortColumn {
    fn new(expr: &str, descending: bool, kind: KeyKind) -> SortColumn {
        SortColumn {
            expr: Sql::new(expr),
            descending,
            kind,
        }
    }
}

/// The columns that order a search: per sort key its value (resources without one
/// last, in both directions, on both backends), then `rid` so that the order is total.
fn sort_columns(sort: &[SortKey]) -> StoreResult<Vec<SortColumn>> {
    let mut out = Vec::new();
    for key in sort {
        let desc = key.descending;
        match key.code.as_str() {
            // Versions written in the same millisecond keep their write order.
            "_lastUpdated" => {
                out.push(SortColumn::new("r.last_updated", desc, KeyKind::Int));
                out.push(SortColumn::new("r.seq", false, KeyKind::Int));
            }
            "_id" => out.push(SortColumn::new("r.res_id", desc, KeyKind::Text)),
            _ => {
                let (table, col, kind) = match key.kind {
                    SearchParamType::String => ("idx_string", "norm", KeyKind::Text),
                    SearchParamType::Token => ("idx_token", "code", KeyKind::Text),
                    SearchParamType::Date if desc => ("idx_date", "end_ms", KeyKind::Int),
                    SearchParamType::Date => ("idx_date", "start_ms", KeyKind::Int),
                    SearchParamType::Number => ("idx_number", "value", KeyKind::Real),
                    SearchParamType::Quantity => ("idx_quantity", "value", KeyKind::Real),
                    SearchParamType::Reference => ("idx_reference", "target_id", KeyKind::Text),
                    SearchParamType::Uri => ("idx_uri", "uri", KeyKind::Text),
                    _ => {
                        return Err(unsupported_at(
                            "_sort",
                            format!("cannot sort by '{}'", key.code),
                        ))
                    }
                };
                let agg = if desc { "MAX" } else { "MIN" };
                let mut sub = Sql::new(&format!(
                    "(SELECT {agg}(o.{col}) FROM {table} o WHERE o.rid = r.rid AND o.param = "
                ));
                sub.bind(Bind::Text(key.code.clone())).push(")");
                let mut missing = Sql::new("CAST(CASE WHEN ");
                missing
                    .append(&sub)
                    .push(" IS NULL THEN 1 ELSE 0 END AS BIGINT)");
                let none = match kind {
                    KeyKind::Text => "''",
                    KeyKind::Real => "0.0",
                    KeyKind::Int => "0",
                };
                let mut value = Sql::new("COALESCE(");
                value.append(&sub).push(&format!(", {none})"));
                out.push(SortColumn {
                    expr: missing,
                    descending: false,
                    kind: KeyKind::Int,
                });
                out.push(SortColumn {
                    expr: value,
                    descending: desc,
                    kind,
                });
            }
        }
    }
    out.push(SortColumn::new("r.rid", false, KeyKind::Int));
    Ok(out)
}

/// `ORDER BY` the columns (all reversed for a page read backwards).
fn order_sql(q: &mut Sql, columns: &[SortColumn], reversed: bool) {
    q.push(" ORDER BY ");
    for (i, c) in columns.iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        let dir = if c.descending != reversed {
            "DESC"
        } else {
            "ASC"
        };
        q.append(&c.expr).push(&format!(" {dir}"));
    }
}

fn key_bind(v: &KeyValue, kind: KeyKind) -> StoreResult<Bind> {
    match (v, kind) {
        (KeyValue::Int(n), KeyKind::Int) => Ok(Bind::BigInt(*n)),
        (KeyValue::Int(n), KeyKind::Real) => Ok(Bind::Double(*n as f64)),
        (KeyValue::Real(x), KeyKind::Real) => Ok(Bind::Double(*x)),
        (KeyValue::Text(t), KeyKind::Text) => Ok(Bind::Text(t.clone())),
        _ => Err(bad_cursor()),
    }
}

fn bad_cursor() -> StoreError {
    unsupported_at(
        "_page",
        "the _page value does not belong to this search".into(),
    )
}

/// ` AND` rows after (or before) the boundary row whose column values are `key`, in
/// the order of `columns`.
fn keyset_sql(
    q: &mut Sql,
    columns: &[SortColumn],
    key: &[KeyValue],
    after: bool,
) -> StoreResult<()> {
    if key.len() != columns.len() {
        return Err(bad_cursor());
    }
    q.push(" AND (");
    for i in 0..columns.len() {
        if i > 0 {
            q.push(" OR ");
        }
        q.push("(");
        for (c, v) in columns.iter().zip(key).take(i) {
            q.append(&c.expr)
                .push(" = ")
                .bind(key_bind(v, c.kind)?)
                .push(" AND ");
        }
        let c = &columns[i];
        let op = if c.descending == after { " < " } else { " > " };
        q.append(&c.expr)
            .push(op)
            .bind(key_bind(&key[i], c.kind)?)
            .push(")");
    }
    q.push(")");
    Ok(())
}

#[derive(QueryableByName)]
struct RealRow {
    #[diesel(sql_type = diesel::sql_types::Double)]
    v: f64,
}

#[derive(QueryableByName)]
struct TextRow {
    #[diesel(sql_type = Text)]
    v: String,
}

/// The column values of the row `rid`, for a cursor.
fn key_of(tx: &mut Tx<'_>, columns: &[SortColumn], rid: i64) -> StoreResult<Vec<KeyValue>> {
    let mut out = Vec::with_capacity(columns.len());
    for c in columns {
        let mut q = Sql::new("SELECT ");
        q.append(&c.expr);
        q.push(match c.kind {
            KeyKind::Int => " AS n",
            _ => " AS v",
        });
        q.push(" FROM resources r WHERE r.rid = ")
            .bind(Bind::BigInt(rid));
        let v = match c.kind {
            KeyKind::Int => q
                .load::<CountRow>(tx.conn)?
                .first()
                .map(|r| KeyValue::Int(r.n)),
            KeyKind::Real => q
                .load::<RealRow>(tx.conn)?
                .first()
                .map(|r| KeyValue::Real(r.v)),
            KeyKind::Text => q
                .load::<TextRow>(tx.conn)?
                .into_iter()
                .next()
                .map(|r| KeyValue::Text(r.v)),
        };
        out.push(v.ok_or_else(|| StoreError::Corrupt(format!("row {rid} vanished")))?);
    }
    Ok(out)
}

/// Runs a search: one page of matches, the total if asked, and the included resources.
pub(crate) fn search(tx: &mut Tx<'_>, req: &SearchRequest) -> StoreResult<SearchPage> {
    let mut page = SearchPage::default();
    if req.with_total {
        let mut count = Sql::new("SELECT COUNT(*) AS n FROM resources r");
        filter(&mut count, req)?;
        page.total = Some(count.load::<CountRow>(tx.conn)?.first().map_or(0, |c| c.n));
    }
    if req.count == 0 {
        return Ok(page);
    }
    let sorted = !req.query.result.sort.is_empty();
    let columns = if sorted {
        sort_columns(&req.query.result.sort)?
    } else {
        vec![SortColumn::new("r.rid", false, KeyKind::Int)]
    };
    let mut q = Sql::new(&format!(
        "SELECT r.rid, {VERSION_COLUMNS} FROM resources r JOIN resource_versions v ON v.seq = r.seq"
    ));
    filter(&mut q, req)?;
    let backwards = matches!(
        req.cursor,
        Some(SearchCursor::BeforeRid(_) | SearchCursor::BeforeKey(_))
    );
    match &req.cursor {
        Some(SearchCursor::AfterRid(rid)) => {
            keyset_sql(
                &mut q,
                &columns[columns.len() - 1..],
                &[KeyValue::Int(*rid)],
                true,
            )?;
        }
        Some(SearchCursor::BeforeRid(rid)) => {
            keyset_sql(
                &mut q,
                &columns[columns.len() - 1..],
                &[KeyValue::Int(*rid)],
                false,
            )?;
        }
        Some(SearchCursor::AfterKey(key)) => keyset_sql(&mut q, &columns, key, true)?,
        Some(SearchCursor::BeforeKey(key)) => keyset_sql(&mut q, &columns, key, false)?,
        _ => {}
    }
    order_sql(&mut q, &columns, backwards);
    q.push(" LIMIT ").bind(Bind::BigInt(req.count as i64 + 1));
    let offset = match req.cursor {
        Some(SearchCursor::Offset(o)) => o,
        _ => 0,
    };
    if offset > 0 {
        q.push(" OFFSET ")
            .bind(Bind::BigInt(offset.min(i64::MAX as u64) as i64));
    }
    let mut rows: Vec<MatchRow> = q.load(tx.conn)?;
    let more = rows.len() > req.count;
    rows.truncate(req.count);
    if backwards {
        rows.reverse();
    }
    let has_next = backwards || more;
    let has_previous = match &req.cursor {
        Some(SearchCursor::AfterRid(_) | SearchCursor::AfterKey(_)) => true,
        Some(SearchCursor::BeforeRid(_) | SearchCursor::BeforeKey(_)) => more,
        Some(SearchCursor::Offset(o)) => *o > 0,
        None => false,
    };
    let cursor_at = |tx: &mut Tx<'_>, rid: i64, after: bool| -> StoreResult<SearchCursor> {
        Ok(match (sorted, after) {
            (false, true) => SearchCursor::AfterRid(rid),
            (false, false) => SearchCursor::BeforeRid(rid),
            (true, true) => SearchCursor::AfterKey(key_of(tx, &columns, rid)?),
            (true, false) => SearchCursor::BeforeKey(key_of(tx, &columns, rid)?),
        })
    };
    let (first, last) = (rows.first().map(|r| r.rid), rows.last().map(|r| r.rid));
    if let (true, Some(rid)) = (has_next, last) {
        page.next = Some(cursor_at(tx, rid, true)?);
    }
    if let (true, Some(rid)) = (has_previous, first) {
        page.previous = Some(cursor_at(tx, rid, false)?);
    }
    let keys: Vec<(i64, String, String)> = rows
        .iter()
        .map(|r| (r.rid, r.version.res_type.clone(), r.version.res_id.clone()))
        .collect();
    page.matches = rows.into_iter().map(|r| r.version).collect();
    (page.included, page.includes_incomplete) = includes(
        tx,
        &req.query.result.include,
        &req.query.result.revinclude,
        keys,
    )?;
    Ok(page)
}

/// `_include` and `_revinclude` (with `:iterate`), excluding what is already a match.
fn includes(
    tx: &mut Tx<'_>,
    include: &[Include],
    revinclude: &[Include],
    matches: Vec<(i64, String, String)>,
) -> StoreResult<(Vec<StoredResource>, bool)> {
    if include.is_empty() && revinclude.is_empty() || matches.is_empty() {
        return Ok((Vec::new(), false));
    }
    let mut seen: HashSet<i64> = matches.iter().map(|m| m.0).collect();
    let mut out = Vec::new();
    let mut frontier = matches;
    for round in 0..=MAX_ITERATE {
        let mut next = Vec::new();
        for inc in include.iter().filter(|i| round == 0 || i.iterate) {
            next.extend(fetch_included(tx, inc, &frontier, false)?);
        }
        for inc in revinclude.iter().filter(|i| round == 0 || i.iterate) {
            next.extend(fetch_included(tx, inc, &frontier, true)?);
        }
        let mut fresh = Vec::new();
        for (rid, v) in next {
            if seen.insert(rid) {
                fresh.push((rid, v.res_type.clone(), v.res_id.clone()));
                out.push(v);
            }
        }
        if fresh.is_empty() {
            return Ok((out, false));
        }
        frontier = fresh;
    }
    Ok((out, true))
}

/// The resources one `_include` (or, `reverse`, `_revinclude`) adds for the page
/// `from`; a source type `*` is any type (`_include=*`, `_revinclude=*`).
fn fetch_included(
    tx: &mut Tx<'_>,
    inc: &Include,
    from: &[(i64, String, String)],
    reverse: bool,
) -> StoreResult<Vec<(i64, StoredResource)>> {
    let mut q = Sql::new(&format!(
        "SELECT t.rid, {VERSION_COLUMNS} FROM idx_reference i "
    ));
    if reverse {
        // Resources of `source_type` whose reference `param` points at one of `from`.
        q.push(
            "JOIN resources t ON t.rid = i.rid JOIN resource_versions v ON v.seq = t.seq WHERE ",
        );
        if inc.source_type == "*" {
            q.push("1 = 1 AND (");
        } else {
            q.push("t.res_type = ")
                .bind(Bind::Text(inc.source_type.clone()))
                .push(" AND (");
        }
        for (n, (_, rt, id)) in from.iter().enumerate() {
            if n > 0 {
                q.push(" OR ");
            }
            q.push("(i.target_type = ").bind(Bind::Text(rt.clone()));
            q.push(" AND i.target_id = ")
                .bind(Bind::Text(id.clone()))
                .push(")");
        }
        q.push(")");
    } else {
        // What the `from` resources of `source_type` refer to through `param`.
        let rids: Vec<i64> = from
            .iter()
            .filter(|f| inc.source_type == "*" || f.1 == inc.source_type)
            .map(|f| f.0)
            .collect();
        if rids.is_empty() {
            return Ok(Vec::new());
        }
        q.push("JOIN resources t ON t.res_type = i.target_type AND t.res_id = i.target_id ");
        q.push("JOIN resource_versions v ON v.seq = t.seq WHERE i.rid IN (");
        for (n, rid) in rids.iter().enumerate() {
            if n > 0 {
                q.push(", ");
            }
            q.bind(Bind::BigInt(*rid));
        }
        q.push(")");
    }
    if let Some(param) = &inc.param {
        q.push(" AND i.param = ").bind(Bind::Text(param.clone()));
    }
    if let Some(t) = &inc.target_type {
        if reverse {
            q.push(" AND i.target_type = ").bind(Bind::Text(t.clone()));
        } else {
            q.push(" AND t.res_type = ").bind(Bind::Text(t.clone()));
        }
    }
    q.push(" AND t.version > 0 AND t.deleted = ")
        .bind(Bind::Bool(false));
    let rows: Vec<MatchRow> = q.load(tx.conn)?;
    Ok(rows.into_iter().map(|r| (r.rid, r.version)).collect())
}

/// Current versions (deleted ones too) with `rid > after`, in `rid` order.
pub(crate) fn current_after(
    tx: &mut Tx<'_>,
    types: &[String],
    after: i64,
    limit: usize,
) -> StoreResult<Vec<(i64, StoredResource)>> {
    let mut q = Sql::new(&format!(
        "SELECT r.rid, {VERSION_COLUMNS} FROM resources r JOIN resource_versions v ON v.seq = r.seq \
         WHERE r.version > 0 AND r.rid > "
    ));
    q.bind(Bind::BigInt(after));
    if !types.is_empty() {
        q.push(" AND r.res_type").in_list(types);
    }
    q.push(" ORDER BY r.rid LIMIT ")
        .bind(Bind::BigInt(limit as i64));
    Ok(q.load::<MatchRow>(tx.conn)?
        .into_iter()
        .map(|r| (r.rid, r.version))
        .collect())
}

/// Ids of up to three live resources of `res_type` matching all clauses (enough to
/// tell none, one and several apart), for conditional operations.
pub(crate) fn matching_ids(
    tx: &mut Tx<'_>,
    res_type: &str,
    clauses: &[Clause],
) -> StoreResult<Vec<String>> {
    let req = SearchRequest {
        query: SearchQuery {
            resource_types: vec![res_type.to_string()],
            clauses: clauses.to_vec(),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut q = Sql::new("SELECT r.res_id FROM resources r");
    filter(&mut q, &req)?;
    q.push(" ORDER BY r.rid LIMIT 3");
    Ok(q.load::<IdRow>(tx.conn)?
        .into_iter()
        .map(|k| k.res_id)
        .collect())
}
