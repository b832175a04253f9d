//! Reading: current versions, specific versions, history pages, conditional matches.

use crate::backend::Tx;
use crate::error::StoreResult;
use crate::model::{
    HistoryPage, HistoryQuery, HistoryScope, PageCursor, StoredResource, VERSION_COLUMNS,
};
use crate::sql::{Bind, CountRow, Sql};

/// The current version (possibly a deletion) of `type/id`.
pub(crate) fn current(
    tx: &mut Tx<'_>,
    res_type: &str,
    id: &str,
) -> StoreResult<Option<StoredResource>> {
    let mut q = Sql::new(&format!(
        "SELECT {VERSION_COLUMNS} FROM resources r JOIN resource_versions v ON v.seq = r.seq \
         WHERE r.res_type = "
    ));
    q.prepared()
        .bind_unprobed(res_type.into())
        .push(" AND r.res_id = ")
        .bind(Bind::Text(id.into()))
        .push(" AND r.version > 0");
    Ok(q.load(tx.conn)?.into_iter().next())
}

/// The current version number of `type/id` (an index-only lookup).
pub(crate) fn current_version(
    tx: &mut Tx<'_>,
    res_type: &str,
    id: &str,
) -> StoreResult<Option<i64>> {
    let mut q = Sql::new("SELECT version AS n FROM resources WHERE res_type = ");
    q.prepared()
        .bind_unprobed(res_type.into())
        .push(" AND res_id = ")
        .bind(Bind::Text(id.into()))
        .push(" AND version > 0");
    Ok(q.load::<CountRow>(tx.conn)?.first().map(|r| r.n))
}

/// One version of `type/id` (possibly a deletion).
pub(crate) fn version(
    tx: &mut Tx<'_>,
    res_type: &str,
    id: &str,
    version: i64,
) -> StoreResult<Option<StoredResource>> {
    let mut q = Sql::new(&format!(
        "SELECT {VERSION_COLUMNS} FROM resource_versions v WHERE v.res_type = "
    ));
    q.prepared()
        .bind_unprobed(res_type.into())
        .push(" AND v.res_id = ")
        .bind(Bind::Text(id.into()))
        .push(" AND v.version = ")
        .bind(Bind::BigInt(version));
    Ok(q.load(tx.conn)?.into_iter().next())
}

fn history_filter(q: &mut Sql, query: &HistoryQuery) {
    q.push(" WHERE 1 = 1");
    match &query.scope {
        HistoryScope::System => {}
        HistoryScope::Type(t) => {
            q.push(" AND v.res_type = ").bind(Bind::Text(t.clone()));
        }
        HistoryScope::Instance(t, id) => {
            q.push(" AND v.res_type = ").bind(Bind::Text(t.clone()));
            q.push(" AND v.res_id = ").bind(Bind::Text(id.clone()));
        }
    }
    if let Some(since) = query.since {
        q.push(" AND v.last_updated >= ").bind(Bind::BigInt(since));
    }
    if let Some(at) = query.at {
        // The version current at `at`: written by then, and not yet replaced by then.
        q.push(" AND v.last_updated <= ").bind(Bind::BigInt(at));
        q.push(
            " AND NOT EXISTS (SELECT 1 FROM resource_versions w WHERE w.res_type = v.res_type \
             AND w.res_id = v.res_id AND w.version > v.version AND w.last_updated <= ",
        )
        .bind(Bind::BigInt(at))
        .push(")");
    }
}

/// A page of history, newest first, with the count of matching versions (see
/// [`history_total`]).
pub(crate) fn history(tx: &mut Tx<'_>, query: &HistoryQuery) -> StoreResult<HistoryPage> {
    let limit = query.count as i64 + 1;
    let mut q = Sql::new(&format!(
        "SELECT {VERSION_COLUMNS} FROM resource_versions v"
    ));
    history_filter(&mut q, query);
    let ascending = matches!(query.cursor, Some(PageCursor::After(_)));
    match query.cursor {
        Some(PageCursor::Before(seq)) => {
            q.push(" AND v.seq < ").bind(Bind::BigInt(seq));
        }
        Some(PageCursor::After(seq)) => {
            q.push(" AND v.seq > ").bind(Bind::BigInt(seq));
        }
        None => {}
    }
    q.push(if ascending {
        " ORDER BY v.seq ASC LIMIT "
    } else {
        " ORDER BY v.seq DESC LIMIT "
    });
    q.bind(Bind::BigInt(limit));
    let mut entries: Vec<StoredResource> = q.load(tx.conn)?;
    let more = entries.len() > query.count;
    entries.truncate(query.count);
    if ascending {
        entries.reverse();
    }
    let (has_older, has_newer) = match query.cursor {
        None => (more, false),
        Some(PageCursor::Before(_)) => (more, true),
        Some(PageCursor::After(_)) => (true, more),
    };
    let total = match (&query.cursor, more) {
        // The page holds every matching version.
        (None, false) => Some(entries.len() as i64),
        _ => history_total(tx, query)?,
    };
    Ok(HistoryPage {
        entries,
        total,
        has_older,
        has_newer,
    })
}

/// The number of matching versions if at most `query.total_up_to`: the count stops one
/// past it (as a search's default total does), else `None`.
fn history_total(tx: &mut Tx<'_>, query: &HistoryQuery) -> StoreResult<Option<i64>> {
    let mut count = Sql::new("SELECT COUNT(*) AS n FROM (SELECT 1 FROM resource_versions v");
    history_filter(&mut count, query);
    // As a search's bound: at most `i64::MAX - 1`, so that one past it is a number.
    let bound = i64::try_from(query.total_up_to).map_or(i64::MAX - 1, |b| b.min(i64::MAX - 1));
    count
        .push(" LIMIT ")
        .bind(Bind::BigInt(bound + 1))
        .push(") c");
    let n = count.load::<CountRow>(tx.conn)?.first().map_or(0, |r| r.n);
    Ok((n <= bound).then_some(n))
}
