//! Counting a search's matches (`Bundle.total`): exactly when asked, else exactly up to
//! a bound and estimated above it, so that a search on a frequent value does not pay
//! for counting every match on every page.

use diesel::sql_types::Text;

use super::*;
use crate::backend::BackendKind;
use crate::sql::CountRow;

/// What a plan decision counted of a search's matches before its page was found.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Seen {
    /// Matches known to exist (0: nothing known).
    pub n: i64,
    /// `n` is every match: the count did not stop at its bound.
    pub exact: bool,
}

impl Seen {
    /// `n` matches of a count that stopped past `cap`: all of them if `n <= cap`.
    pub fn counted(n: i64, cap: i64) -> Seen {
        Seen { n, exact: n <= cap }
    }
}

/// The total of a search as [`SearchRequest::total`] asks for it. `seen`: what was
/// counted already, which spares a count that could only confirm it.
pub(super) fn count(tx: &mut Tx<'_>, req: &SearchRequest, seen: Seen) -> StoreResult<Option<i64>> {
    if seen.exact && req.total != Total::None {
        return Ok(Some(seen.n));
    }
    plan::counting(|| count_planned(tx, req, seen.n))
}

fn count_planned(tx: &mut Tx<'_>, req: &SearchRequest, at_least: i64) -> StoreResult<Option<i64>> {
    match req.total {
        Total::None => Ok(None),
        Total::Accurate => exact(tx, req).map(Some),
        Total::Bounded(limit) => {
            let limit = limit.min(i64::MAX as u64 - 1) as i64;
            let n = if at_least > limit {
                at_least
            } else {
                capped(tx, req, limit)?
            };
            if n <= limit {
                return Ok(Some(n));
            }
            // More than `limit`: an estimate is never below what was seen.
            Ok(estimate(tx, req)?.map(|e| e.max(n)))
        }
    }
}

fn exact(tx: &mut Tx<'_>, req: &SearchRequest) -> StoreResult<i64> {
    // A lone chain: on SQLite the generic query's `IN` collects the distinct referrers
    // faster (6 ms for 17,200) than `DISTINCT` (15 ms); PostgreSQL instead looks every
    // referrer up in `resources` for the generic query (73 ms), not for `DISTINCT` (7 ms).
    let lone = chain::lone(req).filter(|_| tx.kind == BackendKind::Postgres);
    let q = match (walk::walkable(req), lone) {
        (Some(driver), _) => walk::count_query(req, driver, None)?,
        (None, Some(p)) => chain::count_query(req, p, None)?,
        (None, None) => match frequent::exact_count_query(req)? {
            Some(q) => q,
            None => {
                let mut q = Sql::new("SELECT COUNT(*) AS n FROM resources r");
                filter(&mut q, req)?;
                q
            }
        },
    };
    Ok(q.load::<CountRow>(tx.conn)?.first().map_or(0, |c| c.n))
}

/// The number of matches, counting no further than `limit + 1`: along the walked
/// token's entries when there is one (see [`walk`]), which stops there, where the
/// generic query would collect all the entries of its driving criterion first; from
/// the reference index for a search that is one chain ([`chain::count_query`]) or led
/// by one ([`chain::streamed_count_query`]); from the index entries of a search's one
/// criterion ([`frequent::capped_count_query`]).
pub(super) fn capped(tx: &mut Tx<'_>, req: &SearchRequest, limit: i64) -> StoreResult<i64> {
    let q = capped_query(tx.kind, req, limit)?;
    Ok(q.load::<CountRow>(tx.conn)?.first().map_or(0, |c| c.n))
}

/// The statement of [`capped`].
pub(super) fn capped_query(kind: BackendKind, req: &SearchRequest, limit: i64) -> StoreResult<Sql> {
    // PostgreSQL sorts the streamed referrers for their `DISTINCT` before the first
    // row is counted (68 ms where its generic query takes 18 ms): SQLite only.
    let led = chain::leading_clause(req).filter(|_| kind == BackendKind::Sqlite);
    let q = match (walk::walkable(req), chain::lone(req), led) {
        (Some(driver), _, _) => walk::count_query(req, driver, Some(limit + 1))?,
        (None, Some(p), _) => chain::count_query(req, p, Some(limit + 1))?,
        (None, None, Some(chain)) => chain::streamed_count_query(req, chain, limit + 1)?,
        (None, None, None) => match frequent::capped_count_query(req, limit)? {
            Some(q) => q,
            None => {
                let mut q = Sql::new("SELECT COUNT(*) AS n FROM (SELECT 1 AS one FROM resources r");
                filter(&mut q, req)?;
                q.push(" LIMIT ").bind(Bind::BigInt(limit + 1)).push(") c");
                q
            }
        },
    };
    Ok(q)
}

#[derive(QueryableByName)]
struct PlanRow {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    plan: String,
}

/// PostgreSQL's planner estimate of the matches (its row estimate for the query, from
/// the table statistics), kept a while ([`super::estimates`]); SQLite keeps no
/// statistics that could tell (its `sqlite_stat1` holds averages per index prefix), so
/// there is none.
pub(super) fn estimate(tx: &mut Tx<'_>, req: &SearchRequest) -> StoreResult<Option<i64>> {
    if tx.kind != BackendKind::Postgres {
        return Ok(None);
    }
    let mut q = Sql::new("EXPLAIN (FORMAT JSON) SELECT 1 FROM resources r");
    filter(&mut q, req)?;
    let (text, binds) = q.parts();
    let key = format!("{text}\u{0}{binds:?}");
    let estimates = tx.estimates;
    estimates.get_or(key, || planned_rows(tx, &q))
}

/// The planner's row estimate for `q`, an `EXPLAIN (FORMAT JSON)`.
pub(super) fn planned_rows(tx: &mut Tx<'_>, q: &Sql) -> StoreResult<Option<i64>> {
    let rows = q.load::<PlanRow>(tx.conn)?;
    let plan: Option<serde_json::Value> = rows
        .first()
        .and_then(|r| serde_json::from_str(&r.plan).ok());
    Ok(plan
        .as_ref()
        .and_then(|p| p.pointer("/0/Plan/Plan Rows"))
        .and_then(serde_json::Value::as_f64)
        .map(|n| n.round() as i64))
}
