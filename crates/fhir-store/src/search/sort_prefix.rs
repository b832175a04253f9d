//! Sorted pages that cost the page for any first sort key an index orders — strings,
//! tokens, dates, numbers, uris, references — with or without further keys
//! (`_sort=family,given`, `_sort=-date,_id`, `_sort=status`): the page lies among the
//! matches whose first key is between the cursor's and the first key of the
//! `_count`-th match past it, found by walking the first key's index in order; only
//! those candidates are ordered by the whole key. The generic plan computes every key
//! of every match first (two sub-queries per key and match).
//!
//! Why the candidates hold the page: the walk keeps, per resource, the index entry
//! that holds its first key (the least value ascending, the greatest descending, as
//! [`sort::sort_columns`] orders), so the `_count`-th entry past the cursor's value
//! belongs to the `_count`-th resource past it; every match between the cursor and that
//! resource in the full order has a first key in the range, hence an entry there.
//! Resources without a first key come last in the full order: when the walk finds
//! fewer than a page past the cursor, the generic plan serves the page.
//!
//! Walking pays when matches are dense among the index's entries: a search with a
//! criterion walks when it has more than `sort_walk_above` matches (the count
//! [`sort_walk`] uses), one without a criterion (every resource of the type matches)
//! when it has more than a tenth of that; and only when the range holds at most
//! [`RANGE_ENTRIES_AT_MOST`] index entries (a first key shared by most resources
//! leaves the candidates as many as the matches).
//!
//! A first key shared by the whole page (`_sort=status,-date`: every Observation is
//! `final`) leaves the range as wide as the matches; then, when the sort has a second
//! key with an index, the page is found one level down: among the resources whose
//! first key is that value, between the cursor's second key and that of the
//! `_count + 1`-th of them, found by walking the second key's index with the first
//! key checked per entry ([`within_one_value`]).
//!
//! A single date key is walked by [`sort_walk`], which reads the page off the walk.

use super::*;
use crate::backend::BackendKind;
use crate::sql::{CountRow, TextRow};

/// The first sort key's index: table, column and the kind of its values.
struct FirstKey<'a> {
    key: &'a SortKey,
    table: &'static str,
    col: &'static str,
    kind: KeyKind,
}

/// The first sort key, if its index can be walked in its order.
fn walkable(req: &SearchRequest) -> Option<FirstKey<'_>> {
    let key = req.query.result.sort.first()?;
    if req.query.resource_types.is_empty()
        || beyond::near_of(&req.query.clauses).is_some()
        || sort_walk::walkable(req).is_some()
    {
        return None;
    }
    index_of(key)
}

/// A sort key's index, if it can be walked in the key's order (the same table and
/// column as [`sort::sort_columns`] sorts by). Quantities are left out: their index
/// puts the unit's code before the value.
fn index_of(key: &SortKey) -> Option<FirstKey<'_>> {
    if key.code.starts_with('_') {
        return None;
    }
    let (table, col, kind) = match key.kind {
        SearchParamType::String => ("idx_string", "norm", KeyKind::Text),
        SearchParamType::Token => ("idx_token", "code", KeyKind::Text),
        SearchParamType::Date if key.descending => ("idx_date", "end_ms", KeyKind::Int),
        SearchParamType::Date => ("idx_date", "start_ms", KeyKind::Int),
        SearchParamType::Number => ("idx_number", "value", KeyKind::Real),
        SearchParamType::Uri => ("idx_uri", "uri", KeyKind::Text),
        SearchParamType::Reference => ("idx_reference", "target_id", KeyKind::Text),
        _ => return None,
    };
    Some(FirstKey {
        key,
        table,
        col,
        kind,
    })
}

/// The condition (after ` AND `) that confines a forward page of `req` to its
/// candidates, when walking pays; with it, the matches the decision counted.
pub(super) fn candidates(
    tx: &mut Tx<'_>,
    req: &SearchRequest,
) -> StoreResult<Option<(Sql, total::Seen)>> {
    let Some(first) = walkable(req) else {
        return Ok(None);
    };
    let from = match &req.cursor {
        None => None,
        // The cursor's first key: its missing flag, then its value.
        Some(SearchCursor::AfterKey(k)) => match k.as_slice() {
            [KeyValue::Int(0), v, ..] => Some(key_bind(v, first.kind)?),
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    let plain = req.query.clauses.is_empty() && req.compartment.is_none();
    let above = match plain {
        true => req.sort_walk_above / 10,
        false => req.sort_walk_above,
    }
    .min(i64::MAX as u64 - 1) as i64;
    // Counted as far as the default total would count, so that it need not count again
    // (every Patient: 200 to decide, then 500 for the total).
    let cap = match req.total {
        Total::Bounded(limit) => above.max(limit.min(i64::MAX as u64 - 1) as i64),
        _ => above,
    };
    let n = total::capped(tx, req, cap)?;
    if n <= above {
        return Ok(None);
    }
    let seen = total::Seen::counted(n, cap);
    let to = boundary(tx, req, &first, from.clone(), req.count)?;
    if let Some(to) = &to {
        let entries = range_entries(tx.kind, req, &first, from.clone(), to.clone());
        if let Some(within) = confined_to(tx, &entries, req.sort_range_at_most)? {
            return Ok(Some((within, seen)));
        }
    }
    // The range is as wide as the matches, or the page may go on among the cursor's
    // ties: is the page inside one first-key value?
    Ok(within_one_value(tx, req, &first, (from.as_ref(), to.as_ref()))?.map(|w| (w, seen)))
}

/// Index entries in a range above which it is not ordered on its own: a first key that
/// ties over the page (`_sort=status,…` where every Observation is `final`) puts every
/// entry in the range, and checking each against the criteria (584,000 of them: 1 s)
/// costs more than ordering the matches of the criteria (36,650: 0.35 s). Such a page
/// is looked for one level down ([`within_one_value`]), else the generic plan orders
/// every match.
pub const RANGE_ENTRIES_AT_MOST: i64 = 10_000;

/// Index entries of its second key a page walks inside one first-key value, at most.
const GROUP_WALK_AT_MOST: i64 = 10_000;

/// The condition (on `r`) that confines a page to the resources of a range of index
/// entries (`{table} o WHERE …`), when the range holds at most `at_most` entries (by
/// default [`RANGE_ENTRIES_AT_MOST`]; counted from the index no further than past it,
/// then listed for PostgreSQL, see [`range_rids`]).
fn confined_to(tx: &mut Tx<'_>, entries: &Sql, at_most: i64) -> StoreResult<Option<Sql>> {
    let mut q = Sql::new("SELECT COUNT(*) AS n FROM (SELECT 1 AS one FROM ");
    q.append(entries)
        .push(" LIMIT ")
        .bind(Bind::BigInt(at_most.saturating_add(1)))
        .push(") c");
    let n = q.load::<CountRow>(tx.conn)?.first().map_or(0, |c| c.n);
    if n > at_most {
        return Ok(None);
    }
    Ok(Some(match tx.kind {
        BackendKind::Postgres => {
            range_rids(tx, entries, at_most)?.map_or_else(|| in_range(entries), |rids| among(&rids))
        }
        BackendKind::Sqlite => in_range(entries),
    }))
}

/// `r` has an entry in the range (SQLite: it runs the sub-query as written, the range
/// first).
fn in_range(entries: &Sql) -> Sql {
    let mut within = Sql::new("r.rid IN (SELECT o.rid FROM ");
    within.append(entries).push(")");
    within
}

/// `r` is one of `rids`.
fn among(rids: &[i64]) -> Sql {
    let mut within = Sql::new("r.rid");
    within.in_ints(rids);
    within
}

/// The resources of a range of index entries, if it holds at most `at_most` entries.
/// PostgreSQL is given them as a list: asked for `r.rid IN (SELECT … range …)`, it
/// judges a range at the end of the dates from its histogram of every date parameter
/// (178,000 entries estimated for 1,140 at 1 M resources), starts from the search's
/// token (31,600 matches) instead and checks the range per match: 245 ms for a page.
fn range_rids(tx: &mut Tx<'_>, entries: &Sql, at_most: i64) -> StoreResult<Option<Vec<i64>>> {
    let mut q = Sql::new("SELECT o.rid FROM ");
    q.append(entries)
        .push(" LIMIT ")
        .bind(Bind::BigInt(at_most.saturating_add(1)));
    let mut rids: Vec<i64> = q
        .load::<RidRow>(tx.conn)?
        .into_iter()
        .map(|r| r.rid)
        .collect();
    if rids.len() as i64 > at_most {
        return Ok(None);
    }
    rids.sort_unstable();
    rids.dedup();
    Ok(Some(rids))
}

/// Comparison operators and order of a walk on `first` (ascending or descending).
struct Ops {
    /// Strictly past a value in walk order, and at or before it.
    past: &'static str,
    upto: &'static str,
    /// At or past it.
    from: &'static str,
    /// An entry of the same resource that holds its key instead (beyond it).
    beyond: &'static str,
    order: &'static str,
}

/// Text keys compare by their bytes on both backends: PostgreSQL's string index has
/// pattern operators (`~<~`: byte order), and sorting compares `COLLATE "C"` there.
fn ops(kind: BackendKind, first: &FirstKey<'_>) -> Ops {
    let bytes = kind == BackendKind::Postgres && first.table == "idx_string";
    match (first.key.descending, bytes) {
        (false, false) => Ops {
            past: ">",
            upto: "<=",
            from: ">=",
            beyond: "<",
            order: "ASC",
        },
        (true, false) => Ops {
            past: "<",
            upto: ">=",
            from: "<=",
            beyond: ">",
            order: "DESC",
        },
        (false, true) => Ops {
            past: "~>~",
            upto: "~<=~",
            from: "~>=~",
            beyond: "~<~",
            order: "USING ~<~",
        },
        (true, true) => Ops {
            past: "~<~",
            upto: "~>=~",
            from: "~<=~",
            beyond: "~>~",
            order: "USING ~>~",
        },
    }
}

/// The first key of the `offset + 1`-th match past `from` in walk order (with
/// `_count` as offset: the page and one more, which tells whether there is a next page),
/// if there are that many.
fn boundary(
    tx: &mut Tx<'_>,
    req: &SearchRequest,
    first: &FirstKey<'_>,
    from: Option<Bind>,
    offset: usize,
) -> StoreResult<Option<Bind>> {
    let FirstKey {
        table, col, kind, ..
    } = *first;
    let o = ops(tx.kind, first);
    let row = row_column(tx.kind);
    // The walk is the outer loop (see `sort_walk::valued_query`).
    let mut q = Sql::new(&format!(
        "SELECT d.{col} AS {} FROM {table} d CROSS JOIN resources r \
         WHERE r.rid = +d.rid AND d.res_type",
        alias(kind)
    ));
    q.in_list(&req.query.resource_types);
    q.push(" AND d.param = ")
        .bind(Bind::Text(first.key.code.clone()));
    // Entries without a value (a token with a system only, a reference by identifier)
    // hold no key: a resource with only such entries sorts with the missing ones.
    q.push(&format!(" AND d.{col} IS NOT NULL"));
    q.push(&format!(
        " AND NOT EXISTS (SELECT 1 FROM {table} y WHERE y.rid = d.rid AND y.param = d.param \
         AND (y.{col} {} d.{col} OR (y.{col} = d.{col} AND y.{row} < d.{row})))",
        o.beyond
    ));
    if let Some(from) = from {
        q.push(&format!(" AND d.{col} {} ", o.past)).bind(from);
    }
    q.push(" AND ");
    // Only the `LIMIT` of the statement bounds this walk: checks unfenced (see
    // `plan::walking_few`). The walked entries are of the searched types.
    plan::typed_rows(|| plan::walking(|| conditions(&mut q, req, None)))?;
    q.push(&format!(" ORDER BY d.{col} {} LIMIT 1 OFFSET ", o.order))
        .bind(Bind::BigInt(offset as i64));
    load_key(tx, &q, kind)
}

/// The column that tells two entries of an index table apart.
fn row_column(kind: BackendKind) -> &'static str {
    match kind {
        BackendKind::Postgres => "ctid",
        BackendKind::Sqlite => "rowid",
    }
}

/// The name a key's value is selected as, by its kind (the row types' fields).
fn alias(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Int => "n",
        KeyKind::Real => "v",
        KeyKind::Text => "s",
    }
}

/// The key value `q` selects (as [`alias`]), if it gives a row.
fn load_key(tx: &mut Tx<'_>, q: &Sql, kind: KeyKind) -> StoreResult<Option<Bind>> {
    Ok(match kind {
        KeyKind::Int => q
            .load::<CountRow>(tx.conn)?
            .first()
            .map(|r| Bind::BigInt(r.n)),
        KeyKind::Real => q
            .load::<RealRow>(tx.conn)?
            .first()
            .map(|r| Bind::Double(r.v)),
        KeyKind::Text => q
            .load::<TextRow>(tx.conn)?
            .into_iter()
            .next()
            .map(|r| Bind::Text(r.s)),
    })
}

/// The index entries (`{table} o WHERE …`) between `from` and `to`.
fn range_entries(
    kind: BackendKind,
    req: &SearchRequest,
    first: &FirstKey<'_>,
    from: Option<Bind>,
    to: Bind,
) -> Sql {
    let (table, col) = (first.table, first.col);
    let o = ops(kind, first);
    let mut q = Sql::new(&format!("{table} o WHERE o.res_type"));
    q.in_list(&req.query.resource_types);
    q.push(" AND o.param = ")
        .bind(Bind::Text(first.key.code.clone()));
    if let Some(from) = from {
        q.push(&format!(" AND o.{col} {} ", o.from)).bind(from);
    }
    q.push(&format!(" AND o.{col} {} ", o.upto)).bind(to);
    q
}

/// When the page lies among the resources whose first key is one value `v` (every
/// Observation `final` in `_sort=status,-date`), the condition that confines it there:
/// first key `v` and second key between the cursor's and that of the `_count + 1`-th
/// such match, found by walking the second key's index (at most
/// [`GROUP_WALK_AT_MOST`] of its entries). `None` when the page may cross into
/// another first key, or the second key has no index to walk.
fn within_one_value(
    tx: &mut Tx<'_>,
    req: &SearchRequest,
    first: &FirstKey<'_>,
    (from, to): (Option<&Bind>, Option<&Bind>),
) -> StoreResult<Option<Sql>> {
    let Some(second) = req.query.result.sort.get(1).and_then(index_of) else {
        return Ok(None);
    };
    let (value, from2) = match (&req.cursor, from, to) {
        // No cursor: the first match and the `_count + 1`-th share their first key.
        (None, _, Some(to)) => match boundary(tx, req, first, None, 0)? {
            Some(least) if least == *to => (least, None),
            _ => return Ok(None),
        },
        // After a cursor whose second key has a value: the page may lie among the
        // cursor's ties on the first key.
        (Some(SearchCursor::AfterKey(k)), Some(v), _) => match k.as_slice() {
            [_, _, KeyValue::Int(0), v2, ..] => (v.clone(), Some(key_bind(v2, second.kind)?)),
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    let Some((to2, walked)) = group_walk(tx, req, (first, &value), &second, from2.clone())? else {
        return Ok(None);
    };
    let mut within = match tied_rids(tx, req, &second, (from2.as_ref(), &to2), walked)? {
        Some(rids) => among(&rids),
        None => {
            // Ties beyond the bound: the whole range, listed for PostgreSQL (see
            // `range_rids`) when it is not much wider than the walk.
            let entries = range_entries(tx.kind, req, &second, from2, to2);
            let listed = match tx.kind {
                BackendKind::Postgres => range_rids(tx, &entries, 2 * GROUP_WALK_AT_MOST)?,
                BackendKind::Sqlite => None,
            };
            listed.map_or_else(|| in_range(&entries), |rids| among(&rids))
        }
    };
    within.push(" AND ");
    holds(&mut within, tx.kind, first, &value);
    Ok(Some(within))
}

/// The candidates of a page inside one first-key value: the matches the walk found
/// (`walked`, up to the boundary `to`), and the resources with an entry tied with the
/// boundary or with the cursor's second key (`from`: the page goes on among its ties),
/// which the walk may have left out; `None` when the ties are more than
/// [`GROUP_WALK_AT_MOST`]. Only these are checked and ordered by the whole key: the
/// range between the cursor and the boundary holds every entry of the second key
/// (1,260 dates for 51 Observations with a code: 7.5 ms to check them again on
/// PostgreSQL at 1 M resources).
fn tied_rids(
    tx: &mut Tx<'_>,
    req: &SearchRequest,
    second: &FirstKey<'_>,
    (from, to): (Option<&Bind>, &Bind),
    mut rids: Vec<i64>,
) -> StoreResult<Option<Vec<i64>>> {
    for tie in from.into_iter().chain([to]) {
        let entries = range_entries(tx.kind, req, second, Some(tie.clone()), tie.clone());
        match range_rids(tx, &entries, GROUP_WALK_AT_MOST)? {
            Some(tied) => rids.extend(tied),
            None => return Ok(None),
        }
    }
    rids.sort_unstable();
    rids.dedup();
    Ok(Some(rids))
}

/// `r`'s first key is `v`: the entry that holds it (the least value ascending, the
/// greatest descending, as [`sort::sort_columns`] orders) has that value.
fn holds(q: &mut Sql, kind: BackendKind, first: &FirstKey<'_>, v: &Bind) {
    let (table, col) = (first.table, first.col);
    q.push(&format!(
        "EXISTS (SELECT 1 FROM {table} f WHERE f.rid = r.rid AND f.param = "
    ))
    .bind(Bind::Text(first.key.code.clone()))
    .push(&format!(" AND f.{col} = "))
    .bind(v.clone())
    .push(&format!(
        " AND NOT EXISTS (SELECT 1 FROM {table} y WHERE y.rid = f.rid \
         AND y.param = f.param AND y.{col} {} f.{col}))",
        ops(kind, first).beyond
    ));
}

/// Among the matches whose first key is `value`: the first `_count + 1` past `from` in
/// the second key's order, and the second key of the last of them (the boundary),
/// looking at most [`GROUP_WALK_AT_MOST`] entries of its index ahead (`None` when they
/// hold fewer).
fn group_walk(
    tx: &mut Tx<'_>,
    req: &SearchRequest,
    (first, value): (&FirstKey<'_>, &Bind),
    second: &FirstKey<'_>,
    from: Option<Bind>,
) -> StoreResult<Option<(Bind, Vec<i64>)>> {
    let (table, col, kind) = (second.table, second.col, second.kind);
    let o = ops(tx.kind, second);
    let row = row_column(tx.kind);
    let mut q = Sql::new(&format!(
        "SELECT d.rid AS rid, d.{col} AS {} FROM (SELECT e.rid, e.param, e.{col}, e.{row} AS row_key \
         FROM {table} e WHERE e.res_type",
        alias(kind)
    ));
    q.in_list(&req.query.resource_types);
    q.push(" AND e.param = ")
        .bind(Bind::Text(second.key.code.clone()));
    q.push(&format!(" AND e.{col} IS NOT NULL"));
    if let Some(from) = from {
        q.push(&format!(" AND e.{col} {} ", o.past)).bind(from);
    }
    q.push(&format!(" ORDER BY e.{col} {} LIMIT ", o.order))
        .bind(Bind::BigInt(GROUP_WALK_AT_MOST));
    q.push(") d CROSS JOIN resources r WHERE r.rid = +d.rid");
    q.push(&format!(
        " AND NOT EXISTS (SELECT 1 FROM {table} y WHERE y.rid = d.rid AND y.param = d.param \
         AND (y.{col} {} d.{col} OR (y.{col} = d.{col} AND y.{row} < d.row_key)))",
        o.beyond
    ));
    q.push(" AND ");
    holds(&mut q, tx.kind, first, value);
    q.push(" AND ");
    plan::walking_few(|| conditions(&mut q, req, None))?;
    q.push(&format!(" ORDER BY d.{col} {} LIMIT ", o.order))
        .bind(Bind::BigInt(req.count as i64 + 1));
    let rows = load_keyed(tx, &q, kind)?;
    if rows.len() <= req.count {
        return Ok(None);
    }
    let to = rows[rows.len() - 1].1.clone();
    Ok(Some((to, rows.into_iter().map(|(rid, _)| rid).collect())))
}

#[derive(QueryableByName)]
struct IntKeyed {
    #[diesel(sql_type = BigInt)]
    rid: i64,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct RealKeyed {
    #[diesel(sql_type = BigInt)]
    rid: i64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    v: f64,
}

#[derive(QueryableByName)]
struct TextKeyed {
    #[diesel(sql_type = BigInt)]
    rid: i64,
    #[diesel(sql_type = Text)]
    s: String,
}

/// The `(rid, key)` rows `q` selects (the key named as [`alias`]).
fn load_keyed(tx: &mut Tx<'_>, q: &Sql, kind: KeyKind) -> StoreResult<Vec<(i64, Bind)>> {
    Ok(match kind {
        KeyKind::Int => q
            .load::<IntKeyed>(tx.conn)?
            .into_iter()
            .map(|r| (r.rid, Bind::BigInt(r.n)))
            .collect(),
        KeyKind::Real => q
            .load::<RealKeyed>(tx.conn)?
            .into_iter()
            .map(|r| (r.rid, Bind::Double(r.v)))
            .collect(),
        KeyKind::Text => q
            .load::<TextKeyed>(tx.conn)?
            .into_iter()
            .map(|r| (r.rid, Bind::Text(r.s)))
            .collect(),
    })
}
