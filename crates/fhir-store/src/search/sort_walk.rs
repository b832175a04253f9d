//! Sorted first pages that cost the page: `_sort` on one date parameter walks the date
//! index in sort order — `(res_type, param, start_ms, rid)` ascending by range start,
//! `(res_type, param, end_ms DESC, rid)` descending by range end — checks the criteria
//! per entry and stops one row past `_count`, where the generic plan computes the sort
//! key of every match and orders them all.
//!
//! The order is the generic plan's exactly: by each resource's earliest start
//! (ascending) or latest end (descending), ties by `rid`, resources without a value
//! last in `rid` order. A resource has one entry per date value: the walk keeps the
//! entry that holds the resource's sort key (the first of equal ones), so each resource
//! comes once, at its place. When the walk runs out, the page goes on with the resources
//! that have no value.
//!
//! Walking pays when matches are many; when they are few, walking the whole index to
//! find them would cost more than ordering them. So a page walks only when the search
//! has more than [`WALK_ABOVE`] matches (a count that stops there).

use super::*;
use crate::backend::BackendKind;

/// Matches above which a sorted page walks the sort index, by default.
pub const WALK_ABOVE: u64 = 2000;

/// The sort key a page may walk: one date parameter, on a search of given types.
pub(super) fn walkable(req: &SearchRequest) -> Option<&SortKey> {
    match req.query.result.sort.as_slice() {
        [k] if k.kind == SearchParamType::Date
            && !k.code.starts_with('_')
            && !req.query.resource_types.is_empty() =>
        {
            Some(k)
        }
        _ => None,
    }
}

/// Where a walked page starts.
pub(super) enum WalkFrom {
    /// The first page.
    Start,
    /// After a resource with a value: its sort value and `rid`.
    Valued(i64, i64),
    /// After a resource without a value (`rid`): the walk is over.
    Unvalued(i64),
}

/// Where the page after `cursor` starts, if a walk can serve it (not backwards, not
/// by offset) and the search is dense enough to walk.
/// With the start, the number of matches the decision saw (more than the threshold).
pub(super) fn start(tx: &mut Tx<'_>, req: &SearchRequest) -> StoreResult<Option<(WalkFrom, i64)>> {
    let from = match &req.cursor {
        None => WalkFrom::Start,
        Some(SearchCursor::AfterKey(k)) => match k.as_slice() {
            [KeyValue::Int(0), KeyValue::Int(v), KeyValue::Int(rid)] => WalkFrom::Valued(*v, *rid),
            [KeyValue::Int(1), _, KeyValue::Int(rid)] => WalkFrom::Unvalued(*rid),
            _ => return Err(bad_cursor()),
        },
        _ => return Ok(None),
    };
    let above = req.sort_walk_above.min(i64::MAX as u64 - 1) as i64;
    let seen = total::capped(tx, req, above)?;
    if seen <= above {
        return Ok(None);
    }
    Ok(Some((from, seen)))
}

/// One walked page: up to `limit` rows from `from`, valued ones by the walk, then
/// unvalued ones.
pub(super) fn page(
    tx: &mut Tx<'_>,
    req: &SearchRequest,
    key: &SortKey,
    from: WalkFrom,
    limit: usize,
) -> StoreResult<Vec<MatchRow>> {
    let mut rows = Vec::new();
    let after_unvalued = match from {
        WalkFrom::Unvalued(rid) => rid,
        _ => {
            let mut q = valued_query(tx.kind, req, key, &from)?;
            q.push(" LIMIT ").bind(Bind::BigInt(limit as i64));
            rows = q.load::<MatchRow>(tx.conn)?;
            -1
        }
    };
    if rows.len() < limit {
        let mut q = unvalued_query(req, key, after_unvalued)?;
        q.push(" LIMIT ")
            .bind(Bind::BigInt((limit - rows.len()) as i64));
        rows.extend(q.load::<MatchRow>(tx.conn)?);
    }
    Ok(rows)
}

/// Resources with a value, walked in sort order from `from`.
fn valued_query(
    kind: BackendKind,
    req: &SearchRequest,
    key: &SortKey,
    from: &WalkFrom,
) -> StoreResult<Sql> {
    let (col, order, beyond, next) = if key.descending {
        ("end_ms", "DESC", ">", "<")
    } else {
        ("start_ms", "ASC", "<", ">")
    };
    let row = match kind {
        BackendKind::Postgres => "ctid",
        BackendKind::Sqlite => "rowid",
    };
    // The walk must be the outer loop: `CROSS JOIN` fixes SQLite's join order, and
    // `+d.rid` keeps it from carrying the criteria's `r.rid IN (…)` over to `d.rid`
    // (it would then start from the matches and order them all).
    let mut q = Sql::new(&format!(
        "SELECT d.rid AS rid, {VERSION_COLUMNS} FROM idx_date d \
         CROSS JOIN resources r CROSS JOIN resource_versions v \
         WHERE r.rid = +d.rid AND v.seq = r.seq AND d.res_type"
    ));
    q.in_list(&req.query.resource_types);
    q.push(" AND d.param = ").bind(Bind::Text(key.code.clone()));
    // The entry holding the resource's sort key: none of its entries is beyond it, nor
    // an equal one before it.
    q.push(&format!(
        " AND NOT EXISTS (SELECT 1 FROM idx_date y WHERE y.rid = d.rid AND y.param = d.param \
         AND (y.{col} {beyond} d.{col} OR (y.{col} = d.{col} AND y.{row} < d.{row})))"
    ));
    q.push(" AND ");
    // Every criterion is checked per walked entry: one driving as `r.rid IN (…)` would
    // collect all its matches first (36,650 rids of a frequent code: 20–40 ms on
    // SQLite, where the page's checks cost 4 ms).
    plan::walking(|| conditions(&mut q, req, None))?;
    if let WalkFrom::Valued(value, rid) = from {
        q.push(&format!(" AND (d.{col} {next} "))
            .bind(Bind::BigInt(*value))
            .push(&format!(" OR (d.{col} = "))
            .bind(Bind::BigInt(*value))
            .push(" AND d.rid > ")
            .bind(Bind::BigInt(*rid))
            .push("))");
    }
    q.push(&format!(" ORDER BY d.{col} {order}, d.rid ASC"));
    Ok(q)
}

/// Resources without a value, in `rid` order after `after`.
fn unvalued_query(req: &SearchRequest, key: &SortKey, after: i64) -> StoreResult<Sql> {
    let mut q = Sql::new(&format!(
        "SELECT r.rid, {VERSION_COLUMNS} FROM resources r JOIN resource_versions v ON v.seq = r.seq"
    ));
    filter(&mut q, req)?;
    q.push(" AND NOT EXISTS (SELECT 1 FROM idx_date m WHERE m.rid = r.rid AND m.param = ")
        .bind(Bind::Text(key.code.clone()))
        .push(") AND r.rid > ")
        .bind(Bind::BigInt(after))
        .push(" ORDER BY r.rid ASC");
    Ok(q)
}
