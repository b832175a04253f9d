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

/// The first sort key, if its index can be walked in its order (the same table and
/// column as [`sort::sort_columns`] sorts by). Quantities are left out: their index
/// puts the unit's code before the value.
fn walkable(req: &SearchRequest) -> Option<FirstKey<'_>> {
    let key = req.query.result.sort.first()?;
    if key.code.starts_with('_')
        || req.query.resource_types.is_empty()
        || beyond::near_of(&req.query.clauses).is_some()
        || sort_walk::walkable(req).is_some()
    {
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
pub(super) fn candidates(tx: &mut Tx<'_>, req: &SearchRequest) -> StoreResult<Option<(Sql, i64)>> {
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
    let seen = total::capped(tx, req, above)?;
    if seen <= above {
        return Ok(None);
    }
    let Some(to) = boundary(tx, req, &first, from.clone())? else {
        return Ok(None);
    };
    let entries = range_entries(tx.kind, req, &first, from, to);
    if !narrow(tx, &entries)? {
        return Ok(None);
    }
    let mut within = Sql::new("r.rid IN (SELECT o.rid FROM ");
    within.append(&entries).push(")");
    Ok(Some((within, seen)))
}

/// Index entries in a range above which the generic plan is kept: a first key that
/// ties over the page (`_sort=status,…` where every Observation is `final`) puts every
/// entry in the range, and checking each against the criteria (584,000 of them: 1 s)
/// costs more than ordering the matches of the criteria (36,650: 0.35 s).
const RANGE_ENTRIES_AT_MOST: i64 = 10_000;

/// Whether the range holds at most [`RANGE_ENTRIES_AT_MOST`] entries (a count from the
/// index that stops past it).
fn narrow(tx: &mut Tx<'_>, entries: &Sql) -> StoreResult<bool> {
    let mut q = Sql::new("SELECT COUNT(*) AS n FROM (SELECT 1 AS one FROM ");
    q.append(entries)
        .push(" LIMIT ")
        .bind(Bind::BigInt(RANGE_ENTRIES_AT_MOST + 1))
        .push(") c");
    let n = q.load::<CountRow>(tx.conn)?.first().map_or(0, |c| c.n);
    Ok(n <= RANGE_ENTRIES_AT_MOST)
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

/// The first key of the `_count + 1`-th match past `from` in walk order (the page
/// and one more, which tells whether there is a next page), if there are that many.
fn boundary(
    tx: &mut Tx<'_>,
    req: &SearchRequest,
    first: &FirstKey<'_>,
    from: Option<Bind>,
) -> StoreResult<Option<Bind>> {
    let FirstKey {
        table, col, kind, ..
    } = *first;
    let o = ops(tx.kind, first);
    let row = match tx.kind {
        BackendKind::Postgres => "ctid",
        BackendKind::Sqlite => "rowid",
    };
    let alias = match kind {
        KeyKind::Int => "n",
        KeyKind::Real => "v",
        KeyKind::Text => "s",
    };
    // The walk is the outer loop (see `sort_walk::valued_query`).
    let mut q = Sql::new(&format!(
        "SELECT d.{col} AS {alias} FROM {table} d CROSS JOIN resources r \
         WHERE r.rid = +d.rid AND d.res_type"
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
    plan::walking(|| conditions(&mut q, req, None))?;
    q.push(&format!(" ORDER BY d.{col} {} LIMIT 1 OFFSET ", o.order))
        .bind(Bind::BigInt(req.count as i64));
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
