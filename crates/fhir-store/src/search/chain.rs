//! Chains at scale (`subject:Patient.name=…`): counted from the reference index, and
//! driving or checked as their referrers are few or many.
//!
//! A chain drives by collecting every resource that refers to a matching target, then
//! ordering them for the page: 36,650 referrers of 50 Patients sharing a family name
//! cost 50 ms for a page of 50, twice over with its total. Counting them stops early
//! when the count is a query of its own (the targets, then their referrers, along
//! `idx_reference_target`), so a search of the referring type asks first how many
//! there are, up to [`DRIVE_BELOW`]:
//! - fewer: the chain drives, as before;
//! - as many or more: the candidates are walked in `rid` order and the chain is checked
//!   per candidate (three or four index probes), stopping after the page. A page then
//!   costs `_count` ÷ (share of the type's resources that match) candidates.
//!
//! Whichever way the chain would drive, a page in the default order of a search whose
//! only criterion is a chain that reaches few targets through its first link (at most
//! [`PER_TARGET_AT_MOST`]: the Patients sharing a family name) is merged from each
//! target's first referrers ([`per_target_page`]): the reference index lists a
//! target's referrers in `rid` order, so each gives at most a page, and the page is the
//! first of their union. At 1 M resources driving collected the 4,000 referrers of
//! five Patients to order them (9.7 ms for a page on PostgreSQL; 1.3 ms merged).
//!
//! A count of matches that stops at the total threshold is twenty pages deep: it lets
//! the chain drive ([`plan::counting`]). A search whose only criterion is a chain
//! counts its distinct referrers, stopping there, not every referrer; one whose
//! leading criterion is a chain streams the referrers and checks the other criteria per
//! referrer ([`streamed_count_query`]), stopping there too.

use super::*;

/// Referrers of a leading chain below which it drives (see the module doc). Driving
/// costs the referrers `R`; walking costs `_count · N / R` candidates of a type with
/// `N` resources, so the two meet at `R² = _count · N`: 7,000 for a page of 50 among a
/// million. Below the bound driving costs at most this many rows; above it a walk
/// among ten million costs at most 100,000 probes, and the rows are gone through
/// once more only to count them.
pub(super) const DRIVE_BELOW: i64 = 5000;

/// The chained criterion of a search that has no other, and no compartment: its
/// total is the count of its distinct referrers.
pub(super) fn lone(req: &SearchRequest) -> Option<&ParamClause> {
    match req.query.clauses.as_slice() {
        [Clause::Param(p)] if !p.chain.is_empty() && req.compartment.is_none() => Some(p),
        _ => None,
    }
}

/// The chain that leads the search in checking order, if one does.
pub(super) fn leading(req: &SearchRequest) -> Option<&ParamClause> {
    leading_clause(req).map(|(_, p)| p)
}

/// The leading chain as a clause of the search, and its parameter.
pub(super) fn leading_clause(req: &SearchRequest) -> Option<(&Clause, &ParamClause)> {
    match ordered_clauses(req).first().copied() {
        Some(c @ Clause::Param(p)) if !p.chain.is_empty() => Some((c, p)),
        _ => None,
    }
}

/// Whether the leading chain has at least [`DRIVE_BELOW`] referrers of the searched
/// types (counted no further): then it is checked per candidate instead of driving.
pub(super) fn checked(tx: &mut Tx<'_>, req: &SearchRequest) -> StoreResult<bool> {
    let Some(p) = leading(req) else {
        return Ok(false);
    };
    let mut q = Sql::new("SELECT COUNT(*) AS n FROM (");
    chain_referrers(
        &mut q,
        p,
        0,
        0,
        Some(&req.query.resource_types),
        req.linked_within.as_ref(),
    )?;
    q.push(" LIMIT ")
        .bind(Bind::BigInt(DRIVE_BELOW))
        .push(") c");
    Ok(q.load::<crate::sql::CountRow>(tx.conn)?
        .first()
        .is_some_and(|c| c.n >= DRIVE_BELOW))
}

/// The count of a [`lone`] chain's matches: its distinct referrers of the searched
/// types (index rows exist only for current versions of live resources), at most
/// `limit`.
pub(super) fn count_query(
    req: &SearchRequest,
    p: &ParamClause,
    limit: Option<i64>,
) -> StoreResult<Sql> {
    let mut q = Sql::new("SELECT COUNT(*) AS n FROM (SELECT DISTINCT rid FROM (");
    chain_referrers(
        &mut q,
        p,
        0,
        0,
        Some(&req.query.resource_types),
        req.linked_within.as_ref(),
    )?;
    q.push(") refs");
    if let Some(n) = limit {
        q.push(" LIMIT ").bind(Bind::BigInt(n));
    }
    q.push(") c");
    Ok(q)
}

/// A count of the matches of a search led by a chain, at most `limit`: the chain's
/// referrers are streamed (not collected), each checked against the other criteria,
/// until `limit` distinct matches are seen. Driving as `r.rid IN (…)`, the chain would
/// collect all its referrers before the first match is counted (17,200 referrers of
/// the Patients sharing a family name: 24 ms on SQLite for a count that stops at
/// 1,001, which this makes 2 ms). SQLite only (see [`total::capped`]).
pub(super) fn streamed_count_query(
    req: &SearchRequest,
    (chain, p): (&Clause, &ParamClause),
    limit: i64,
) -> StoreResult<Sql> {
    let mut q = Sql::new("SELECT COUNT(*) AS n FROM (SELECT DISTINCT r.rid FROM (");
    chain_referrers(
        &mut q,
        p,
        0,
        0,
        Some(&req.query.resource_types),
        req.linked_within.as_ref(),
    )?;
    // `CROSS JOIN` keeps the referrers the outer loop on SQLite; `+refs.rid` keeps
    // the other criteria from driving through `r.rid`.
    q.push(") refs CROSS JOIN resources r WHERE r.rid = +refs.rid AND ");
    conditions(&mut q, req, Some(chain))?;
    q.push(" LIMIT ").bind(Bind::BigInt(limit)).push(") c");
    Ok(q)
}

/// First-link targets of a leading chain up to which a page is merged from each
/// target's referrers ([`per_target_page`]).
const PER_TARGET_AT_MOST: usize = 32;

#[derive(QueryableByName)]
struct TargetRow {
    #[diesel(sql_type = Text)]
    res_type: String,
    #[diesel(sql_type = Text)]
    res_id: String,
}

/// The `rid`s of a page (and one more) of a search in the default order whose only
/// criterion is a chain whose first link reaches at most [`PER_TARGET_AT_MOST`]
/// targets, in page order (descending before a `BeforeRid` cursor); `None` when the
/// plan does not apply. Each target's referrers of the searched types are read in
/// `rid` order, past the cursor, checked against the search's conditions (live, type,
/// compartment), at most a page of them (distinct: a referrer may name its target
/// twice); the page is the first of their union.
pub(super) fn per_target_page(
    tx: &mut Tx<'_>,
    req: &SearchRequest,
    backwards: bool,
) -> StoreResult<Option<Vec<i64>>> {
    // With further criteria, each target would be read until it gives a page of
    // matches: when they are rare among its first referrers (`date=ge2015` on records
    // in date order), every target's early referrers are read where the ordered
    // referrers of all targets stop after the first target's (SQLite: 37 → 72 ms for
    // the page of a family name shared by five Patients).
    let (clause, p) = match (leading_clause(req), req.query.clauses.len()) {
        (Some(led), 1) => led,
        _ => return Ok(None),
    };
    let past = match req.cursor {
        None => None,
        Some(SearchCursor::AfterRid(rid)) => Some((">", rid)),
        Some(SearchCursor::BeforeRid(rid)) => Some(("<", rid)),
        Some(_) => return Ok(None),
    };
    if req.query.resource_types.is_empty() || beyond::near_of(&req.query.clauses).is_some() {
        return Ok(None);
    }
    let Some(targets) = first_targets(tx, req, p)? else {
        return Ok(None);
    };
    if targets.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let order = if backwards { "DESC" } else { "ASC" };
    let n = Bind::BigInt(req.count as i64 + 1);
    let mut q = Sql::new("SELECT rid FROM (");
    for (i, t) in targets.into_iter().enumerate() {
        if i > 0 {
            q.push(" UNION ");
        }
        q.push(
            "SELECT rid FROM (SELECT DISTINCT x.rid AS rid FROM idx_reference x \
                CROSS JOIN resources r WHERE r.rid = +x.rid AND x.res_type",
        )
        .in_list(&req.query.resource_types);
        q.push(" AND x.param = ")
            .bind(Bind::Text(p.chain[0].code.clone()));
        q.push(" AND x.target_type = ")
            .bind(Bind::Text(t.res_type))
            .push(" AND x.target_id = ")
            .bind(Bind::Text(t.res_id));
        if let Some((op, rid)) = past {
            q.push(&format!(" AND x.rid {op} ")).bind(Bind::BigInt(rid));
        }
        q.push(" AND ");
        plan::walking_few(|| conditions(&mut q, req, Some(clause)))?;
        q.push(&format!(" ORDER BY x.rid {order} LIMIT "))
            .bind(n.clone())
            .push(&format!(") p{i}"));
    }
    q.push(&format!(") u ORDER BY rid {order} LIMIT ")).bind(n);
    let rows = q.load::<RidRow>(tx.conn)?;
    Ok(Some(rows.into_iter().map(|r| r.rid).collect()))
}

/// The live targets of the chain's first link that match the rest of it, if there
/// are at most [`PER_TARGET_AT_MOST`].
fn first_targets(
    tx: &mut Tx<'_>,
    req: &SearchRequest,
    p: &ParamClause,
) -> StoreResult<Option<Vec<TargetRow>>> {
    let mut q = Sql::new("SELECT t0_0.res_type, t0_0.res_id FROM resources t0_0 WHERE ");
    chain_target_conditions(&mut q, p, 0, 0, true, req.linked_within.as_ref())?;
    q.push(" LIMIT ")
        .bind(Bind::BigInt(PER_TARGET_AT_MOST as i64 + 1));
    let targets = q.load::<TargetRow>(tx.conn)?;
    Ok((targets.len() <= PER_TARGET_AT_MOST).then_some(targets))
}
