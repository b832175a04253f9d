//! First pages that cost the page, not the matches: when a search's most selective
//! criterion is one token value (`code`, `system|code`, `|code`) and the order is the
//! default one (`rid`), the page walks that code's index entries in `rid` order — the
//! token index is keyed `(res_type, param, code, rid, system)`, the system checked in
//! the index — checks the other criteria per entry, and stops one row past `_count`.
//! The generic plan instead collects every entry of the value before it can order them.
//!
//! A resource with the value twice (two codings alike) has two entries next to each
//! other in the walk: SQLite groups by `rid`, PostgreSQL takes `DISTINCT ON (rid)`;
//! both keep the walk's order and stop at the limit.

use super::*;
use crate::backend::BackendKind;

/// The criterion a page can walk: the first in checking order, if it is a single
/// token value with a code (no modifier, no chain).
pub(super) fn walkable(req: &SearchRequest) -> Option<Driver<'_>> {
    let first = *ordered_clauses(req).first()?;
    let Clause::Param(p) = first else { return None };
    let plain = p.chain.is_empty()
        && p.modifier.is_none()
        && p.param.kind == SearchParamType::Token
        && p.param.code != "_id";
    match p.values.as_slice() {
        [SearchValue::Token(t)] if plain && t.code.is_some() => Some((first, p, t)),
        _ => None,
    }
}

/// The criterion a page walks: the clause, its parameter and its one token value.
pub(super) type Driver<'a> = (&'a Clause, &'a ParamClause, &'a TokenValue);

/// The walked value's entries, `d` (after ` WHERE `).
fn driver_sql(q: &mut Sql, req: &SearchRequest, (_, p, token): Driver<'_>) {
    let types = walked_types(req, p);
    // A system-wide search on a parameter of every type: all types.
    if !types.is_empty() {
        q.push("d.res_type").in_list(types).push(" AND ");
    }
    q.push("d.param = ")
        .bind(Bind::Text(p.param.code.clone()))
        .push(" AND ");
    token_sql(q, "d.system", "d.code", token);
}

/// The types whose entries of the driver are walked: the searched ones, else every type
/// the parameter is defined on.
fn walked_types<'a>(req: &'a SearchRequest, p: &'a ParamClause) -> &'a [String] {
    if req.query.resource_types.is_empty() {
        &p.param.resource_types
    } else {
        &req.query.resource_types
    }
}

/// The page query (before `LIMIT`) walking the driver's entries from the keyset
/// cursor on; `backwards` reads the page before the cursor.
pub(super) fn page_query(
    kind: BackendKind,
    req: &SearchRequest,
    driver: Driver<'_>,
    backwards: bool,
) -> StoreResult<Sql> {
    let distinct = match kind {
        BackendKind::Postgres => "DISTINCT ON (d.rid) ",
        BackendKind::Sqlite => "",
    };
    let mut q = Sql::new(&format!(
        "SELECT {distinct}d.rid AS rid, {VERSION_COLUMNS} FROM idx_token d \
         JOIN resources r ON r.rid = d.rid JOIN resource_versions v ON v.seq = r.seq WHERE "
    ));
    driver_sql(&mut q, req, driver);
    q.push(" AND ");
    conditions(&mut q, req, Some(driver.0))?;
    match &req.cursor {
        Some(SearchCursor::AfterRid(rid)) => {
            q.push(" AND d.rid > ").bind(Bind::BigInt(*rid));
        }
        Some(SearchCursor::BeforeRid(rid)) => {
            q.push(" AND d.rid < ").bind(Bind::BigInt(*rid));
        }
        _ => {}
    }
    if kind == BackendKind::Sqlite {
        q.push(" GROUP BY d.rid");
    }
    if kept_prepared(req, driver) {
        q.prepared();
    }
    q.push(if backwards {
        " ORDER BY d.rid DESC"
    } else {
        " ORDER BY d.rid ASC"
    });
    Ok(q)
}

/// Counts the matches along the driver's entries, at most `limit`. A search with no
/// other criterion is counted from the index alone: index rows exist only for the
/// current versions of live resources.
pub(super) fn count_query(
    req: &SearchRequest,
    driver: Driver<'_>,
    limit: Option<i64>,
) -> StoreResult<Sql> {
    let prepared = kept_prepared(req, driver);
    let alone = req.query.clauses.len() == 1 && req.compartment.is_none();
    // A resource's entries are grouped: SQLite's `DISTINCT` counts 36,650 entries in
    // 5 ms where `GROUP BY` takes 8 (it keeps an aggregate per group); PostgreSQL groups
    // the index-ordered rids either way.
    let mut q = Sql::new("SELECT COUNT(*) AS n FROM (");
    q.push_per_backend("SELECT DISTINCT d.rid", "SELECT d.rid")
        .push(" FROM idx_token d");
    if !alone {
        q.push(" JOIN resources r ON r.rid = d.rid");
    }
    q.push(" WHERE ");
    driver_sql(&mut q, req, driver);
    if !alone {
        q.push(" AND ");
        conditions(&mut q, req, Some(driver.0))?;
    }
    q.push_per_backend("", " GROUP BY d.rid");
    if let Some(n) = limit {
        q.push(" LIMIT ").bind(Bind::BigInt(n));
    }
    q.push(") c");
    if prepared {
        q.prepared();
    }
    Ok(q)
}

/// Whether the walked token is the search's one criterion, of one type, outside a
/// compartment: the page's and the count's statements then take one of a few texts
/// (how the value names its system, the cursor), which their connection keeps
/// prepared. PostgreSQL planned the page in 1.0 ms and ran it in 0.6 (a frequent code,
/// 1 million resources); prepared, after five runs it keeps one generic plan — the walk
/// along the code's entries that this module writes, which it chooses for every value
/// since the `LIMIT` bounds it: 0.3–0.6 ms for a frequent, a rare and an absent code
/// alike. Not for several types: their entries are not in `rid` order in the index,
/// and the generic plan joined every match's version before ordering them (265 ms for
/// a frequent code, where planning for the value found a walk along `rid`: 2 ms).
fn kept_prepared(req: &SearchRequest, (_, p, _): Driver<'_>) -> bool {
    let one_type = walked_types(req, p).len() == 1;
    req.query.clauses.len() == 1 && req.compartment.is_none() && one_type
}
