//! The `WHERE` conditions of a search: each criterion as an `EXISTS` sub-query on its
//! index table, chains and `_has` through `idx_reference` (confined to a compartment
//! where the caller's scopes say so); the SQL of each value type is in [`super::values`].

use super::*;

pub(super) fn unsupported_at(param: &str, what: String) -> StoreError {
    StoreError::BadRequest {
        message: what,
        expression: Some(param.to_string()),
    }
}

/// The `WHERE` conditions of a search on alias `r` (resources).
pub(super) fn filter(q: &mut Sql, req: &SearchRequest) -> StoreResult<()> {
    q.push(" WHERE ");
    conditions(q, req, None)
}

/// The search's criteria in the order they are best checked: the most selective kind
/// first (see [`selectivity_rank`]).
pub(super) fn ordered_clauses(req: &SearchRequest) -> Vec<&Clause> {
    let mut clauses: Vec<&Clause> = req.query.clauses.iter().collect();
    clauses.sort_by_key(|c| selectivity_rank(c));
    clauses
}

/// The conditions on the resource `r` (after ` WHERE `): live, of the searched types,
/// matching every criterion but `walked` (which the query walks already), within the
/// compartment.
pub(super) fn conditions(
    q: &mut Sql,
    req: &SearchRequest,
    walked: Option<&Clause>,
) -> StoreResult<()> {
    if req.query.clauses.len() > MAX_CLAUSES {
        return Err(unsupported_at(
            "_query",
            format!("a search may have at most {MAX_CLAUSES} criteria"),
        ));
    }
    q.push("r.version > 0 AND r.deleted = ")
        .bind(Bind::Bool(false));
    if !req.query.resource_types.is_empty() && !plan::current().rows_typed {
        q.push(" AND r.res_type").in_list(&req.query.resource_types);
    }
    // Without a walked criterion, the most selective one drives the search (an
    // uncorrelated IN on the index); the others are checked per candidate (correlated
    // EXISTS).
    let scope = req.linked_within.as_ref();
    let rest = ordered_clauses(req)
        .into_iter()
        .filter(|c| !walked.is_some_and(|w| std::ptr::eq(*c, w)));
    let plan = plan::current();
    for (n, clause) in rest.enumerate() {
        q.push(" AND ");
        let drive = n == 0 && walked.is_none() && plan.drives(clause);
        match clause {
            // A driving chain names the searched types on its reference rows: the index
            // then yields only referrers of those types, and no other referrer is looked
            // up in `resources` (1,675 of the 4,618 referrers of the five Patients
            // sharing a family name are not Observations).
            Clause::Param(p)
                if drive && !p.chain.is_empty() && !req.query.resource_types.is_empty() =>
            {
                q.push("r.rid IN (");
                chain_referrers(q, p, 0, 0, Some(&req.query.resource_types), scope)?;
                q.push(plan.fence).push(")");
            }
            _ => clause_sql(q, "r", clause, 0, drive, scope)?,
        }
    }
    if let Some(c) = &req.compartment {
        q.push(" AND ");
        compartment_sql(q, "r", c);
    }
    Ok(())
}

/// The resource at alias `r`, reached through a chain or `_has`, may be used: its type
/// is not confined, or it is in the compartment (see [`SearchRequest::linked_within`]).
pub(super) fn scope_sql(q: &mut Sql, r: &str, scope: &Compartment) {
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

pub(super) fn compartment_sql(q: &mut Sql, r: &str, c: &Compartment) {
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
            " AND EXISTS (SELECT 1 FROM idx_reference {x} WHERE {x}.rid = {r}.rid \
             AND {x}.res_type = {r}.res_type AND {x}.param"
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
pub(super) fn selectivity_rank(clause: &Clause) -> u8 {
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
        Clause::Has(h) => has_sql(q, r, h, depth, drive, scope),
        Clause::List(l) => {
            beyond::list_sql(q, r, &l.list_id);
            Ok(())
        }
        Clause::Text(t) => {
            beyond::text_sql(q, r, t);
            Ok(())
        }
        Clause::Filter(f) => beyond::filter_sql(q, r, &f.expr, depth, scope),
        Clause::Near(n) => {
            beyond::near_sql(q, r, n);
            Ok(())
        }
    }
}

/// The chained criterion `p` from its link `link` on, on the resource at alias `r`.
/// Driving, it starts from the targets at the end of the chain that match and goes
/// back through the reference index to who refers to them ([`chain_referrers`]);
/// otherwise it is checked per candidate.
pub(super) fn chain_sql(
    q: &mut Sql,
    r: &str,
    p: &ParamClause,
    link: usize,
    depth: usize,
    drive: bool,
    scope: Option<&Compartment>,
) -> StoreResult<()> {
    if link >= p.chain.len() {
        let last = ParamClause {
            chain: Vec::new(),
            ..p.clone()
        };
        return param_sql(q, r, &last, drive);
    }
    if drive {
        q.push(&format!("{r}.rid IN ("));
        chain_referrers(q, p, link, depth, None, scope)?;
        q.push(plan::current().fence);
        q.push(")");
        return Ok(());
    }
    let (x, t) = (format!("x{depth}_{link}"), format!("t{depth}_{link}"));
    q.push(&format!(
        "EXISTS (SELECT 1 FROM idx_reference {x} JOIN resources {t} ON {t}.res_type = {x}.target_type \
         AND {t}.res_id = {x}.target_id WHERE {x}.rid = {r}.rid AND {x}.param = "
    ));
    q.bind(Bind::Text(p.chain[link].code.clone())).push(" AND ");
    chain_target_conditions(q, p, link, depth, false, scope)?;
    // Checked per candidate by the plan, the check stays one: PostgreSQL would turn it
    // into a join that starts from the chain's end and collects every referrer.
    let plan = plan::current();
    if link == 0 && depth == 0 && plan.chain_checked {
        q.push(plan.fence);
    }
    q.push(")");
    Ok(())
}

/// A query of the `rid`s that refer, through link `link` of the chain `p`, to targets
/// matching the rest of it, from the targets back through the reference index
/// (`idx_reference_target`), all through indexes. `referrer_types` confines the
/// referrers (a standalone query; inside [`chain_sql`] the outer query does). A
/// referrer with two such references is listed twice.
pub(super) fn chain_referrers(
    q: &mut Sql,
    p: &ParamClause,
    link: usize,
    depth: usize,
    referrer_types: Option<&[String]>,
    scope: Option<&Compartment>,
) -> StoreResult<()> {
    let (x, t) = (format!("x{depth}_{link}"), format!("t{depth}_{link}"));
    q.push(&format!(
        "SELECT {x}.rid FROM idx_reference {x} JOIN resources {t} ON {t}.res_type = {x}.target_type \
         AND {t}.res_id = {x}.target_id WHERE "
    ));
    if let Some(types) = referrer_types.filter(|t| !t.is_empty()) {
        q.push(&format!("{x}.res_type"))
            .in_list(types)
            .push(" AND ");
    }
    q.push(&format!("{x}.param = "));
    q.bind(Bind::Text(p.chain[link].code.clone())).push(" AND ");
    chain_target_conditions(q, p, link, depth, true, scope)
}

/// The conditions on the target `t{depth}_{link}` of a chain link (in a link's
/// sub-query, after `x.param = <the link's parameter> AND `): live, of the link's
/// types, within `scope`, matching the next links.
pub(super) fn chain_target_conditions(
    q: &mut Sql,
    p: &ParamClause,
    link: usize,
    depth: usize,
    drive: bool,
    scope: Option<&Compartment>,
) -> StoreResult<()> {
    let l = &p.chain[link];
    let t = format!("t{depth}_{link}");
    q.push(&format!("{t}.version > 0 AND {t}.deleted = "))
        .bind(Bind::Bool(false));
    q.push(&format!(" AND {t}.res_type"))
        .in_list(&l.target_types);
    if let Some(scope) = scope {
        q.push(" AND ");
        scope_sql(q, &t, scope);
    }
    q.push(" AND ");
    chain_sql(q, &t, p, link + 1, depth, drive, scope)
}

/// `_has:Type:param:criterion`: some `Type` resource matching the criterion refers to
/// `r` through `param`. Driving (the search's first criterion), it starts from the
/// referring resources that match and goes to what they refer to, through indexes (or
/// reads the list of what it matches, when the search listed it: [`plan::listed`]);
/// otherwise it is checked per candidate.
pub(super) fn has_sql(
    q: &mut Sql,
    r: &str,
    h: &HasClause,
    depth: usize,
    drive: bool,
    scope: Option<&Compartment>,
) -> StoreResult<()> {
    if let Some(rids) = plan::listed(h).filter(|_| drive) {
        q.push(&format!("{r}.rid")).in_ints(&rids);
        return Ok(());
    }
    let (x, t) = (format!("h{depth}"), format!("g{depth}"));
    // The referrer's own row is needed for its compartment or a criterion on more than
    // its index rows; else the criterion is checked on the reference row (its `rid`
    // and `res_type` are the referrer's): index rows exist only for the current
    // versions of live resources, and each referrer is one probe less.
    let by_row = scope.is_some()
        || !matches!(&*h.inner, Clause::Param(p) if p.chain.is_empty() && p.param.code != "_id");
    let s = if by_row {
        format!("s{depth}")
    } else {
        x.clone()
    };
    let join = match by_row {
        true => format!(" JOIN resources {s} ON {s}.rid = {x}.rid"),
        false => String::new(),
    };
    if drive {
        // The targets are looked up once each: 2,950 Observations with a rare code
        // name 225 Patients (7 ms of looking them up again and again on PostgreSQL).
        q.push(&format!(
            "{r}.rid IN (SELECT {t}.rid FROM resources {t} WHERE ({t}.res_type, {t}.res_id) IN \
             (SELECT {x}.target_type, {x}.target_id FROM idx_reference {x}{join} WHERE {x}.param = "
        ));
    } else {
        q.push(&format!(
            "EXISTS (SELECT 1 FROM idx_reference {x}{join} WHERE {x}.param = "
        ));
    }
    q.bind(Bind::Text(h.reference_param.clone()));
    // The referrer's type on the reference row too: then the reference index keyed
    // `(res_type, param, target_id, target_type, rid)` yields only such referrers.
    q.push(&format!(" AND {x}.res_type = "))
        .bind(Bind::Text(h.source_type.clone()));
    if by_row {
        q.push(&format!(" AND {s}.res_type = "))
            .bind(Bind::Text(h.source_type.clone()));
        q.push(&format!(" AND {s}.version > 0 AND {s}.deleted = "))
            .bind(Bind::Bool(false));
    }
    if !drive {
        q.push(&format!(
            " AND {x}.target_type = {r}.res_type AND {x}.target_id = {r}.res_id"
        ));
    }
    q.push(" AND ");
    if let Some(scope) = scope {
        scope_sql(q, &s, scope);
        q.push(" AND ");
    }
    clause_sql(q, &s, &h.inner, depth + 1, drive, scope)?;
    let plan = plan::current();
    if drive {
        q.push(plan.fence).push(")");
    }
    if drive || depth == 0 && plan.has_checked {
        q.push(plan.fence);
    }
    q.push(")");
    Ok(())
}

pub(super) fn table_of(kind: SearchParamType) -> Option<&'static str> {
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
pub(super) fn id_sql(q: &mut Sql, r: &str, p: &ParamClause) -> StoreResult<()> {
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

pub(super) fn param_sql(q: &mut Sql, r: &str, p: &ParamClause, drive: bool) -> StoreResult<()> {
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
    let checked = negated || !drive;
    if checked {
        let not = if negated { "NOT " } else { "" };
        q.push(&format!(
            "{not}EXISTS (SELECT 1 FROM {table} i WHERE i.rid = {r}.rid AND "
        ));
        if probes_by_value(p) {
            q.push(&format!("i.res_type = {r}.res_type AND "));
        }
    } else {
        // Uncorrelated, so the index on (res_type, param, value) drives the search and
        // its cost follows the number of matching values, not the size of the table.
        q.push(&format!("{r}.rid IN (SELECT i.rid FROM {table} i WHERE "));
        if !p.param.resource_types.is_empty() {
            q.push("i.res_type")
                .in_list(&p.param.resource_types)
                .push(" AND ");
        }
    }
    entries_sql(q, p)?;
    let plan = plan::current();
    if checked && plan.checks_fenced {
        q.push(plan.fence);
    }
    q.push(")");
    Ok(())
}

/// The index entries (alias `i`) of `p`'s values: `i.param = … AND (…)`.
pub(super) fn entries_sql(q: &mut Sql, p: &ParamClause) -> StoreResult<()> {
    q.push("i.param = ")
        .bind(Bind::Text(p.param.code.clone()))
        .push(" AND (");
    for (n, v) in p.values.iter().enumerate() {
        if n > 0 {
            q.push(" OR ");
        }
        q.push("(");
        value_sql(q, p, v)?;
        q.push(")");
    }
    q.push(")");
    Ok(())
}

/// Whether a per-resource check of `p` is one probe of its value index: token codes
/// (`(res_type, param, code, rid, …)`) and local references (`(res_type, param,
/// target_id, target_type, rid)`) name every column before `rid`, so the check names
/// the resource's type too, and the database seeks the entry instead of reading every
/// index row of the resource (an Observation has a dozen token rows: a walked page of
/// `_sort=-date` with a code checked 1,300 of them in 4.6 ms, by the value 3.1 ms).
fn probes_by_value(p: &ParamClause) -> bool {
    let plain = matches!(p.modifier, None | Some(Modifier::Not));
    plain
        && p.values.iter().all(|v| match (p.param.kind, v) {
            (SearchParamType::Token, SearchValue::Token(t)) => t.code.is_some(),
            // With its type: every key column before `rid` is named (without it the
            // database would read every referrer of that id to find this one).
            (SearchParamType::Reference, SearchValue::Reference(r)) => matches!(
                r,
                ReferenceValue::Local {
                    resource_type: Some(_),
                    ..
                }
            ),
            _ => false,
        })
}
