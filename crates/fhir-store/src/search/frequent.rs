//! Pages of a search whose one criterion matches a large share of the searched type.
//! Driving from the criterion collects all its matches before the first page can be
//! ordered by `rid`: Observations dated since 2015, 63,000 of 213,000, took 186 ms for
//! a page on SQLite; Conditions with an onset since 2000, 7,455, took 56 ms on
//! PostgreSQL, whose planner expected far fewer. Walking the type's resources in `rid`
//! order and checking the criterion per row stops after the page: 7 ms for 1,001 rows,
//! and 0.5 ms for 51 (fenced on PostgreSQL, as `plan.rs` says, so that the check stays
//! one per row).
//!
//! Walking reads about `page × N ÷ M` rows (N resources of the type, M matches) and
//! driving reads about `M` entries, so the walk is chosen when M exceeds √(page × N).
//! M is counted along the criterion's index entries up to that bound (at least the
//! total threshold), which stops there whatever the matches; N is kept a minute
//! ([`super::estimates`]): counted on SQLite, the planner's estimate on PostgreSQL.
//! The count is exact when it read every entry, so it is also the search's total. When
//! the matches are few, the count has listed them: the page is taken from the list, and
//! the criterion's entries are read once (a name prefix, which reads every name of the
//! type, was read for the count and again for the page: 2,200 → 1,650 requests/s).
//!
//! A search's one criterion, sorted or not, is also counted from its entries alone, up
//! to a bound ([`capped_count_query`]) or exactly ([`exact_count_query`]).

use std::rc::Rc;

use super::*;
use crate::backend::BackendKind;
use crate::sql::CountRow;

/// The decision, and every match's `rid` in order when it listed them.
pub(super) type Decided = (Lead, Option<Rc<[i64]>>);

/// What was decided for a search's one criterion.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lead {
    /// The criterion is checked per candidate, walked in `rid` order.
    pub checked: bool,
    /// Its matches, counted up to the bound.
    pub seen: total::Seen,
}

/// The decision for `req`, if it is a search of given types, in `rid` order, by one
/// parameter with values (no chain, no modifier that negates, no `:missing`) that the
/// walk along a token's entries ([`walk`]) does not serve; with it, when the criterion
/// drives, every match's `rid` in order.
pub(super) fn decide(tx: &mut Tx<'_>, req: &SearchRequest) -> StoreResult<Option<Decided>> {
    let Some((p, table)) = lone_param(req) else {
        return Ok(None);
    };
    let types = &req.query.resource_types;
    let n = resources_of(tx, types)?;
    let walk_above = ((req.count as f64 + 1.0) * n as f64).sqrt().ceil() as i64;
    let bound = match req.total {
        Total::Bounded(limit) => walk_above.max(limit.min(i64::MAX as u64 - 1) as i64),
        Total::None | Total::Accurate => walk_above,
    };
    // Entries, not distinct `rid`s: PostgreSQL would hash every entry before the first
    // distinct one came out.
    let mut q = entries_query("i.rid AS rid", table, types, p)?;
    q.push(" LIMIT ").bind(Bind::BigInt(bound + 1));
    let mut rids: Vec<i64> = q
        .load::<RidRow>(tx.conn)?
        .into_iter()
        .map(|r| r.rid)
        .collect();
    let every = rids.len() as i64 <= bound;
    rids.sort_unstable();
    rids.dedup();
    let m = rids.len() as i64;
    // Every match read is a page's list, however many: walking would read them again.
    let lead = Lead {
        checked: !every && m > walk_above,
        seen: total::Seen { n: m, exact: every },
    };
    Ok(Some((lead, (every && !lead.checked).then(|| rids.into()))))
}

/// The `rid`s of a page (one past `_count`) from every match's, in the page's order:
/// after or before the cursor's `rid`, the latter read backwards.
pub(super) fn page_of(rids: &[i64], cursor: &Option<SearchCursor>, n: usize) -> Vec<i64> {
    match cursor {
        Some(SearchCursor::BeforeRid(to)) => rids
            .iter()
            .rev()
            .filter(|r| *r < to)
            .take(n)
            .copied()
            .collect(),
        Some(SearchCursor::AfterRid(from)) => {
            rids.iter().filter(|r| *r > from).take(n).copied().collect()
        }
        _ => rids.iter().take(n).copied().collect(),
    }
}

/// A count of a search's matches that stops past `cap`, read from the index entries of
/// its one criterion ([`lone_criterion`]): distinct `rid`s. SQLite streams them and
/// stops; PostgreSQL does when it reads the entries in `rid` order (`Unique` over the
/// `rid` index), and otherwise hashes every entry first, as its generic count also
/// reads them all. The generic count collects every entry of the criterion before the
/// first is counted (`r.rid IN (…)`): on SQLite, counting 2,001 of the Observations
/// since 2015 (a `_sort=-date` deciding whether to walk) took 23–56 ms that way and
/// 0.6 ms this way; on PostgreSQL 7 ms and 2 ms.
pub(super) fn capped_count_query(req: &SearchRequest, cap: i64) -> StoreResult<Option<Sql>> {
    let Some((p, table)) = lone_criterion(req) else {
        return Ok(None);
    };
    let types = &req.query.resource_types;
    let mut q = entries_query("DISTINCT i.rid", table, types, p)?;
    q.push(" LIMIT ").bind(Bind::BigInt(cap + 1));
    let mut count = Sql::new("SELECT COUNT(*) AS n FROM (");
    count.append(&q).push(") c");
    Ok(Some(count))
}

/// The exact count of a search's matches from the index entries of its one criterion
/// ([`lone_criterion`]): the generic count looks each match up in `resources`
/// (Observations since 2015, 61,754: 79–149 ms on PostgreSQL, 30 ms on SQLite; from the
/// entries 16 and 22 ms).
pub(super) fn exact_count_query(req: &SearchRequest) -> StoreResult<Option<Sql>> {
    let Some((p, table)) = lone_criterion(req) else {
        return Ok(None);
    };
    let types = &req.query.resource_types;
    entries_query("COUNT(DISTINCT i.rid) AS n", table, types, p).map(Some)
}

/// `SELECT {columns} FROM {table} i` over the index entries of `p`'s values for
/// `types`. Entries exist only for the current versions of live resources, so they
/// need no look at `resources`.
fn entries_query(
    columns: &str,
    table: &str,
    types: &[String],
    p: &ParamClause,
) -> StoreResult<Sql> {
    let mut q = Sql::new(&format!("SELECT {columns} FROM {table} i WHERE i.res_type"));
    q.in_list(types).push(" AND ");
    entries_sql(&mut q, p)?;
    Ok(q)
}

/// The one parameter criterion of a search this module decides for, and its table.
fn lone_param(req: &SearchRequest) -> Option<(&ParamClause, &'static str)> {
    let lone = lone_criterion(req)?;
    let paged = matches!(
        req.cursor,
        None | Some(SearchCursor::AfterRid(_) | SearchCursor::BeforeRid(_))
    );
    let fits =
        req.count > 0 && paged && req.query.result.sort.is_empty() && walk::walkable(req).is_none();
    fits.then_some(lone)
}

/// A search's criterion, and its index table, when it is the search's only one: a
/// parameter with values (no chain, no modifier that negates, no `:missing`, not
/// `_id`), on given types, outside a compartment. Its index entries are its matches.
fn lone_criterion(req: &SearchRequest) -> Option<(&ParamClause, &'static str)> {
    let [Clause::Param(p)] = req.query.clauses.as_slice() else {
        return None;
    };
    let positive = !matches!(p.modifier, Some(Modifier::Not | Modifier::NotIn))
        && !p
            .values
            .iter()
            .any(|v| matches!(v, SearchValue::Missing(_)));
    let plain = p.chain.is_empty() && p.param.code != "_id" && p.values.len() <= MAX_VALUES;
    let fits = req.compartment.is_none() && !req.query.resource_types.is_empty();
    let table = table_of(p.param.kind)?;
    (fits && positive && plain && !p.values.is_empty()).then_some((p, table))
}

/// How many resources of `types` there are (deleted ones too: it only weighs plans),
/// kept a minute: counted on SQLite, the planner's estimate on PostgreSQL (one
/// planning, where a count reads every entry of the type's index).
fn resources_of(tx: &mut Tx<'_>, types: &[String]) -> StoreResult<i64> {
    let postgres = tx.kind == BackendKind::Postgres;
    let mut q = Sql::new(if postgres {
        "EXPLAIN (FORMAT JSON) SELECT 1 FROM resources r WHERE r.res_type"
    } else {
        "SELECT COUNT(*) AS n FROM resources r WHERE r.res_type"
    });
    q.in_list(types);
    let key = format!("resources of\u{0}{}", types.join("\u{0}"));
    let estimates = tx.estimates;
    let n = estimates.get_or(key, || match postgres {
        true => total::planned_rows(tx, &q),
        false => Ok(q.load::<CountRow>(tx.conn)?.first().map(|c| c.n)),
    })?;
    Ok(n.unwrap_or(0))
}
