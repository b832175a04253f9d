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
use crate::sql::{Bind, Sql};

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

mod beyond;
mod chain;
mod criteria;
mod cursor;
pub(crate) mod estimates;
mod frequent;
mod include;
mod plan;
mod sort;
mod sort_prefix;
mod sort_walk;
mod total;
pub use sort_prefix::RANGE_ENTRIES_AT_MOST as SORT_RANGE_AT_MOST;
pub use sort_walk::WALK_ABOVE as SORT_WALK_ABOVE;
mod values;
mod walk;

pub(crate) use criteria::clause_sql;
use criteria::*;
pub use cursor::{KeyValue, SearchCursor};
use include::*;
use sort::*;
pub(crate) use values::like_escape;
use values::*;

/// What a search needs besides the query.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub query: SearchQuery,
    pub count: usize,
    pub cursor: Option<SearchCursor>,
    /// How the matches are counted ([`Total`]).
    pub total: Total,
    /// Compartment search: matches must refer to `(type, id)` through one of `params`.
    pub compartment: Option<Compartment>,
    /// Confines the resources that chains and `_has` pass through: those of a type
    /// listed in `params` must be in this compartment (one of the compartment's own
    /// type, listed with no parameters, must be that resource); other types are not
    /// confined. Without it, a patient-scoped token could learn values of resources it
    /// may not read by comparing the results of chained criteria.
    pub linked_within: Option<Compartment>,
    /// Matches above which a page sorted by one date walks the sort index instead of
    /// ordering every match ([`sort_walk`]; default [`sort_walk::WALK_ABOVE`]).
    pub sort_walk_above: u64,
    /// Index entries a sort's first-key range may hold for only that range to be
    /// ordered ([`sort_prefix`]; default [`sort_prefix::RANGE_ENTRIES_AT_MOST`]).
    pub sort_range_at_most: i64,
}

impl Default for SearchRequest {
    fn default() -> Self {
        SearchRequest {
            query: SearchQuery::default(),
            count: 0,
            cursor: None,
            total: Total::default(),
            compartment: None,
            linked_within: None,
            sort_walk_above: sort_walk::WALK_ABOVE,
            sort_range_at_most: sort_prefix::RANGE_ENTRIES_AT_MOST,
        }
    }
}

/// How a search counts its matches (`Bundle.total`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Total {
    /// Not at all (`_total=none`).
    #[default]
    None,
    /// Exactly, whatever it costs (`_total=accurate`, `_summary=count`).
    Accurate,
    /// Exactly up to this many matches; above, the database's estimate where it has
    /// one (PostgreSQL's planner), else none. The count stops at the limit, so its cost
    /// does not grow with the matches.
    Bounded(u64),
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

/// Runs a search: one page of matches, the total if asked, and the included resources.
pub(crate) fn search(tx: &mut Tx<'_>, req: &SearchRequest) -> StoreResult<SearchPage> {
    plan::with_plan(tx, req, |tx| search_planned(tx, req))
}

fn search_planned(tx: &mut Tx<'_>, req: &SearchRequest) -> StoreResult<SearchPage> {
    let mut page = SearchPage::default();
    if req.count == 0 {
        page.total = total::count(tx, req, total::Seen::default())?;
        return Ok(page);
    }
    let near = beyond::near_of(&req.query.clauses);
    let sorted = !req.query.result.sort.is_empty() || near.is_some();
    let columns = match near {
        // Location `near` without `_sort`: closest first.
        Some(n) if req.query.result.sort.is_empty() => beyond::distance_order(n),
        _ if sorted => sort_columns(&req.query.result.sort)?,
        _ => vec![SortColumn::new("r.rid", false, KeyKind::Int)],
    };
    let backwards = matches!(
        req.cursor,
        Some(SearchCursor::BeforeRid(_) | SearchCursor::BeforeKey(_))
    );
    let (mut rows, seen) = match sorted_walk(tx, req)? {
        Some(walked) => walked,
        None => page_rows(tx, req, &columns, sorted, backwards)?,
    };
    let more = rows.len() > req.count;
    rows.truncate(req.count);
    // A first page that holds every match gives the total for free.
    page.total = match (req.total, &req.cursor, more) {
        (Total::None, _, _) => None,
        (_, None, false) => Some(rows.len() as i64),
        _ => total::count(tx, req, seen)?,
    };
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

/// A sorted page found by walking the sort index ([`sort_walk`]), when it can be.
/// With the rows, how many matches the walk knows of.
fn sorted_walk(
    tx: &mut Tx<'_>,
    req: &SearchRequest,
) -> StoreResult<Option<(Vec<MatchRow>, total::Seen)>> {
    let Some(key) = sort_walk::walkable(req) else {
        return Ok(None);
    };
    let Some((from, seen)) = sort_walk::start(tx, req)? else {
        return Ok(None);
    };
    let rows = sort_walk::page(tx, req, key, from, req.count + 1)?;
    Ok(Some((
        rows,
        total::Seen {
            n: seen,
            exact: false,
        },
    )))
}

/// The rows of a page (one past `_count`): walked along the driving token's index
/// ([`walk`]) when the order is the default one, else by the generic query (on the
/// candidates of [`sort_prefix`] when a sorted page can walk its first key; with its
/// one criterion checked per row when [`frequent`] says so). With the rows, how many
/// matches a plan decision counted.
fn page_rows(
    tx: &mut Tx<'_>,
    req: &SearchRequest,
    columns: &[SortColumn],
    sorted: bool,
    backwards: bool,
) -> StoreResult<(Vec<MatchRow>, total::Seen)> {
    let walk = match (&req.cursor, sorted) {
        (None | Some(SearchCursor::AfterRid(_) | SearchCursor::BeforeRid(_)), false) => {
            walk::walkable(req)
        }
        _ => None,
    };
    if let Some(driver) = walk {
        let mut q = walk::page_query(tx.kind, req, driver, backwards)?;
        q.push(" LIMIT ").bind(Bind::BigInt(req.count as i64 + 1));
        return Ok((q.load(tx.conn)?, total::Seen::default()));
    }
    if !sorted {
        if let Some(rids) = chain::per_target_page(tx, req, backwards)? {
            return Ok((versions_of(tx, &rids)?, total::Seen::default()));
        }
    }
    if sorted && !backwards {
        if let Some((within, seen)) = sort_prefix::candidates(tx, req)? {
            let rows = plan::walking_few(|| {
                generic_rows(tx, req, columns, false, Some(&within), req.count + 1)
            })?;
            return Ok((rows.0, seen));
        }
    }
    if let Some(lead) = plan::current().lead {
        let rows = match plan::matched() {
            Some(rids) => versions_of(tx, &frequent::page_of(&rids, &req.cursor, req.count + 1))?,
            None => generic_rows(tx, req, columns, backwards, None, req.count + 1)?.0,
        };
        return Ok((rows, lead.seen));
    }
    let reach = first_page_reach(tx, req, sorted)?;
    let (rows, found) = generic_rows(tx, req, columns, backwards, None, reach)?;
    let seen = match req.total {
        Total::Bounded(limit) if reach > req.count + 1 => {
            total::Seen::counted(found as i64, limit as i64)
        }
        _ => total::Seen::default(),
    };
    Ok((rows, seen))
}

/// The largest total threshold a first page reads its rids up to (see
/// [`first_page_reach`]); beyond, the page stops at `_count` and the total is counted
/// on its own.
const FIRST_PAGE_REACH_AT_MOST: u64 = 10_000;

/// How many rids the generic query reads for a page: one past `_count`, or, for a first
/// page in `rid` order with a bounded total, as far as the count would go, so that the
/// total is known from the same statement. The count repeated the page's work: a
/// reference with a date, 4.4 ms again for the 238 matches of 695 referrers the page
/// had just checked; on SQLite, dates and quantities on frequent values were counted
/// in 2–4 times the page's time.
///
/// Not for a sorted page: the database may walk a sort index (`_lastUpdated`) and check
/// each row, which stops sooner for the page than for a count starting from the
/// criteria. Nor for a listing without criteria, which PostgreSQL counts off the table
/// in whatever order (1,001 rows in `rid` order took longer: 630 → 530 requests/s).
/// On PostgreSQL, only when the planner expects no more matches than the threshold:
/// expecting more, it may walk `rid` order for `_count` rows and stop, where for the
/// threshold's rows it collects and orders every match (Encounters since 2010: 1 ms for
/// 51, 57 ms for 1,001 of 21,860, which it took for 1,697; the count alone, 31 ms).
fn first_page_reach(tx: &mut Tx<'_>, req: &SearchRequest, sorted: bool) -> StoreResult<usize> {
    let page = req.count + 1;
    let criteria = !req.query.clauses.is_empty() || req.compartment.is_some();
    let limit = match (req.total, &req.cursor) {
        (Total::Bounded(limit), None)
            if criteria
                && !sorted
                && limit <= FIRST_PAGE_REACH_AT_MOST
                && limit as usize >= page =>
        {
            limit as i64
        }
        _ => return Ok(page),
    };
    if tx.kind == crate::backend::BackendKind::Postgres
        && total::estimate(tx, req)?.is_none_or(|e| e > limit)
    {
        return Ok(page);
    }
    Ok(limit as usize + 1)
}

#[derive(QueryableByName)]
struct RidRow {
    #[diesel(sql_type = BigInt)]
    rid: i64,
}

/// The page of the generic query, in two steps: the page's rids in order (what the
/// database orders is then keys, not whole resources: ordering 7,330 matches with their
/// JSON took 0.5 s under load), then their versions.
/// `within`: a further condition on `r`. `reach`: how many rids to read (at least one
/// past `_count`); only the page's versions are read. With them, the rids found.
fn generic_rows(
    tx: &mut Tx<'_>,
    req: &SearchRequest,
    columns: &[SortColumn],
    backwards: bool,
    within: Option<&Sql>,
    reach: usize,
) -> StoreResult<(Vec<MatchRow>, usize)> {
    let mut q = generic_query(req, columns, backwards, within)?;
    q.push(" LIMIT ").bind(Bind::BigInt(reach as i64));
    if let Some(SearchCursor::Offset(o)) = req.cursor {
        if o > 0 {
            q.push(" OFFSET ")
                .bind(Bind::BigInt(o.min(i64::MAX as u64) as i64));
        }
    }
    let rids: Vec<i64> = q
        .load::<RidRow>(tx.conn)?
        .into_iter()
        .map(|r| r.rid)
        .collect();
    let page = &rids[..rids.len().min(req.count + 1)];
    Ok((versions_of(tx, page)?, rids.len()))
}

/// The current versions of `rids`, in that order, of those still live: each statement
/// reads its own snapshot, so a resource found by the page's first statement may have
/// been deleted before this one.
fn versions_of(tx: &mut Tx<'_>, rids: &[i64]) -> StoreResult<Vec<MatchRow>> {
    if rids.is_empty() {
        return Ok(Vec::new());
    }
    // Lists padded to one of a few lengths: the statement's texts are few, and kept
    // prepared (PostgreSQL planned it in about as long as it ran it, 0.26 ms).
    let mut by_rid = std::collections::HashMap::new();
    for list in crate::sql::padded(rids) {
        let mut fetch = Sql::new(&format!(
            "SELECT r.rid, {VERSION_COLUMNS} FROM resources r JOIN resource_versions v \
             ON v.seq = r.seq WHERE r.version > 0 AND r.deleted = "
        ));
        fetch.prepared().bind(Bind::Bool(false)).push(" AND r.rid");
        fetch.in_ints(&list);
        by_rid.extend(
            fetch
                .load::<MatchRow>(tx.conn)?
                .into_iter()
                .map(|r| (r.rid, r)),
        );
    }
    Ok(rids.iter().filter_map(|rid| by_rid.remove(rid)).collect())
}

/// The page query of any search (before `LIMIT`): every match is found, then ordered;
/// it yields the rids.
fn generic_query(
    req: &SearchRequest,
    columns: &[SortColumn],
    backwards: bool,
    within: Option<&Sql>,
) -> StoreResult<Sql> {
    let mut q = Sql::new("SELECT r.rid FROM resources r");
    filter(&mut q, req)?;
    if let Some(w) = within {
        q.push(" AND ").append(w);
    }
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
        Some(SearchCursor::AfterKey(key)) => keyset_sql(&mut q, columns, key, true)?,
        Some(SearchCursor::BeforeKey(key)) => keyset_sql(&mut q, columns, key, false)?,
        _ => {}
    }
    order_sql(&mut q, columns, backwards);
    Ok(q)
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
