//! `_include` and `_revinclude` (with `:iterate` and `*`) for a page of matches.

use super::*;

/// `_include` and `_revinclude` (with `:iterate`), excluding what is already a match.
pub(super) fn includes(
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
pub(super) fn fetch_included(
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
            // The referrer's type on the reference row too: the index keyed
            // `(res_type, param, target_id, target_type, rid)` then yields only such
            // referrers (a Patient's 54 Encounters, where its 1,103 referrers of every
            // type were each looked up in `resources`: 2.2 → 0.4 ms on PostgreSQL).
            q.push("t.res_type = ")
                .bind(Bind::Text(inc.source_type.clone()))
                .push(" AND i.res_type = ")
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
        q.push("JOIN resource_versions v ON v.seq = t.seq WHERE i.rid")
            .in_ints(&rids);
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
