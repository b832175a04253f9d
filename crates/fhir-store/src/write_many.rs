//! The write path for many resources at once (bulk import, a transaction's creates):
//! their rows are claimed with one statement per type and chunk, and their versions
//! written and their current rows updated with one statement per group, of any types,
//! instead of three statements per resource; new resources' rows are not claimed but
//! inserted once, after their versions ([`persist_new`]).
//! On PostgreSQL each statement is a round trip that waits for the server: a bulk load
//! was bound by those (1,500 resources/s). The versions, index rows and audit records
//! are those of one at a time; single writes are groups of one
//! ([`crate::writes::persist_version`], [`crate::writes::lock_current`]).

use std::collections::HashMap;

use diesel::sql_types::{BigInt, Bool, Text};
use diesel::QueryableByName;

use crate::backend::Tx;
use crate::error::{StoreError, StoreResult};
use crate::model::StoredResource;
use crate::sql::{Bind, Sql};
use crate::writes::{chunks, insert_into, Current, PendingIndex, PreparedVersion};

/// A claimed or found row of `resources`.
#[derive(QueryableByName)]
struct Claimed {
    #[diesel(sql_type = BigInt)]
    rid: i64,
    #[diesel(sql_type = Text)]
    res_id: String,
    #[diesel(sql_type = BigInt)]
    version: i64,
    #[diesel(sql_type = Bool)]
    deleted: bool,
}

/// A written version's `seq`, by its type, id and version.
#[derive(QueryableByName)]
struct Written {
    #[diesel(sql_type = Text)]
    res_type: String,
    #[diesel(sql_type = Text)]
    res_id: String,
    #[diesel(sql_type = BigInt)]
    version: i64,
    #[diesel(sql_type = BigInt)]
    seq: i64,
}

/// Claims the rows of `ids` of `res_type` (placeholders for new ones) and locks them
/// until the transaction ends, like [`crate::writes::lock_current`] for each; returns
/// the state of each distinct id. The ids are claimed in sorted order, so that writers
/// of overlapping batches lock their rows in one order.
pub(crate) fn lock_many(
    tx: &mut Tx<'_>,
    res_type: &str,
    ids: &[&str],
) -> StoreResult<HashMap<String, Current>> {
    let mut unique = ids.to_vec();
    unique.sort_unstable();
    unique.dedup();
    let mut out = HashMap::with_capacity(unique.len());
    for chunk in chunks(&unique) {
        for row in claim(tx, res_type, chunk)? {
            out.insert(row.res_id, current(row.rid, 0, false));
        }
        let existing: Vec<String> = chunk
            .iter()
            .filter(|id| !out.contains_key(**id))
            .map(|id| id.to_string())
            .collect();
        if existing.is_empty() {
            continue;
        }
        let mut select =
            Sql::new("SELECT rid, res_id, version, deleted FROM resources WHERE res_type = ");
        // Prepared: a chunk has at most 64 ids, so at most 64 shapes.
        select
            .prepared()
            .bind_unprobed(res_type.into())
            .push(" AND res_id")
            .in_list(&existing)
            .push(tx.for_update());
        for row in select.load::<Claimed>(tx.conn)? {
            out.insert(row.res_id, current(row.rid, row.version, row.deleted));
        }
        if let Some(lost) = existing.iter().find(|id| !out.contains_key(*id)) {
            return Err(StoreError::Corrupt(format!(
                "{res_type}/{lost} vanished while locked"
            )));
        }
    }
    Ok(out)
}

fn current(rid: i64, version: i64, deleted: bool) -> Current {
    Current {
        rid,
        version,
        deleted,
    }
}

/// Inserts placeholder rows for the ids of `chunk` that have none; returns those.
fn claim(tx: &mut Tx<'_>, res_type: &str, chunk: &[&str]) -> StoreResult<Vec<Claimed>> {
    let mut claim = insert_into();
    claim
        .prepared()
        .push("resources (res_type, res_id, version, seq, last_updated, deleted) VALUES ");
    for (i, id) in chunk.iter().enumerate() {
        claim
            .push(if i > 0 { ", (" } else { "(" })
            .bind(Bind::Text(res_type.into()))
            .push(", ")
            .bind(Bind::Text(id.to_string()))
            .push(", 0, 0, 0, ")
            .bind(Bind::Bool(false))
            .push(")");
    }
    claim.push(
        " ON CONFLICT (res_type, res_id) DO NOTHING \
         RETURNING rid, res_id, version, deleted",
    );
    claim.load::<Claimed>(tx.conn)
}

/// A prepared version of a locked resource, waiting to be written with others.
pub(crate) struct Pending<'a> {
    pub res_type: &'a str,
    pub id: &'a str,
    pub current: Current,
    pub method: &'a str,
    pub version: PreparedVersion,
}

/// Writes a group of prepared versions (each resource's row locked): their rows in
/// `resource_versions`, then each resource's current row; returns each stored version
/// with its index rows to flush, in order.
pub(crate) fn persist_many(
    tx: &mut Tx<'_>,
    group: Vec<Pending<'_>>,
) -> StoreResult<Vec<(StoredResource, PendingIndex)>> {
    let mut seqs = HashMap::with_capacity(group.len());
    for chunk in chunks(&group) {
        for w in insert_versions(tx, chunk)? {
            seqs.insert((w.res_type, w.res_id, w.version), w.seq);
        }
    }
    let mut written = Vec::with_capacity(group.len());
    for p in group {
        let key = (p.res_type.to_string(), p.id.to_string(), p.version.version);
        let seq = seqs
            .get(&key)
            .copied()
            .ok_or_else(|| StoreError::Corrupt("insert returned no seq".into()))?;
        written.push(stored(p, seq));
    }
    update_current(tx, &written)?;
    for (s, _) in &written {
        tx.written.push((s.res_type.clone(), s.res_id.clone()));
    }
    Ok(written)
}

/// A new resource's row, as inserted with its first version.
#[derive(QueryableByName)]
struct Inserted {
    #[diesel(sql_type = BigInt)]
    rid: i64,
    #[diesel(sql_type = Text)]
    res_type: String,
    #[diesel(sql_type = Text)]
    res_id: String,
}

/// Writes a group of first versions of resources that are new (a transaction's
/// creates, with ids it assigned): the versions, then each resource's row with its
/// final values — no placeholder claimed first and updated after, which on PostgreSQL
/// wrote every row and its four index entries twice. 409 when a resource exists (or
/// another transaction is creating it) after all.
pub(crate) fn persist_new(
    tx: &mut Tx<'_>,
    group: Vec<Pending<'_>>,
) -> StoreResult<Vec<(StoredResource, PendingIndex)>> {
    let mut seqs = HashMap::with_capacity(group.len());
    for chunk in chunks(&group) {
        for w in insert_versions(tx, chunk)? {
            seqs.insert((w.res_type, w.res_id), w.seq);
        }
    }
    let mut written = Vec::with_capacity(group.len());
    for p in group {
        let key = (p.res_type.to_string(), p.id.to_string());
        let seq = seqs
            .get(&key)
            .copied()
            .ok_or_else(|| already_exists(&key.0, &key.1))?;
        written.push(stored(p, seq));
    }
    let mut rids = HashMap::with_capacity(written.len());
    for chunk in chunks(&written) {
        for row in insert_current(tx, chunk)? {
            rids.insert((row.res_type, row.res_id), row.rid);
        }
    }
    for (s, pending) in &mut written {
        let key = (s.res_type.clone(), s.res_id.clone());
        pending.rid = rids
            .get(&key)
            .copied()
            .ok_or_else(|| already_exists(&key.0, &key.1))?;
        tx.written.push(key);
    }
    Ok(written)
}

/// The 409 of a create whose resource exists.
pub(crate) fn already_exists(res_type: &str, id: &str) -> StoreError {
    StoreError::Conflict(format!("{res_type}/{id} already exists"))
}

/// Inserts the rows of new resources, pointing at their first versions.
fn insert_current(
    tx: &mut Tx<'_>,
    chunk: &[(StoredResource, PendingIndex)],
) -> StoreResult<Vec<Inserted>> {
    let mut insert = insert_into();
    insert
        .prepared()
        .push("resources (res_type, res_id, version, seq, last_updated, deleted) VALUES ");
    for (i, (s, _)) in chunk.iter().enumerate() {
        insert.values_row(
            i == 0,
            [
                Bind::Text(s.res_type.clone()),
                Bind::Text(s.res_id.clone()),
                Bind::BigInt(s.version),
                Bind::BigInt(s.seq),
                Bind::BigInt(s.last_updated),
                Bind::Bool(s.deleted),
            ],
        );
    }
    insert.push(" ON CONFLICT (res_type, res_id) DO NOTHING RETURNING rid, res_type, res_id");
    insert.load::<Inserted>(tx.conn)
}

fn insert_versions(tx: &mut Tx<'_>, chunk: &[Pending<'_>]) -> StoreResult<Vec<Written>> {
    let mut insert = insert_into();
    insert.prepared().push(
        "resource_versions (res_type, res_id, version, last_updated, deleted, method, content) \
         VALUES ",
    );
    for (i, p) in chunk.iter().enumerate() {
        let v = &p.version;
        insert.values_row(
            i == 0,
            [
                Bind::Text(p.res_type.into()),
                Bind::Text(p.id.into()),
                Bind::BigInt(v.version),
                Bind::BigInt(v.last_updated),
                Bind::Bool(v.deleted),
                Bind::Text(p.method.into()),
                Bind::Text(v.content.clone()),
            ],
        );
    }
    // A version that exists is not written (and not returned): for a first version,
    // its resource exists; otherwise the resource's row, locked, rules that out.
    insert.push(
        " ON CONFLICT (res_type, res_id, version) DO NOTHING \
         RETURNING res_type, res_id, version, seq",
    );
    insert.load::<Written>(tx.conn)
}

/// The stored version and index rows of `p`, written as `seq`.
fn stored(p: Pending<'_>, seq: i64) -> (StoredResource, PendingIndex) {
    let res_type = p.res_type;
    let PreparedVersion {
        version,
        last_updated,
        deleted,
        content,
        rows,
    } = p.version;
    let pending = PendingIndex {
        rid: p.current.rid,
        res_type: res_type.to_string(),
        values: rows,
        replace: p.current.version > 0,
    };
    let stored = StoredResource {
        seq,
        res_type: res_type.into(),
        res_id: p.id.into(),
        version,
        last_updated,
        deleted,
        method: p.method.into(),
        content,
    };
    (stored, pending)
}

/// Points each resource's row at its last version written here.
fn update_current(tx: &mut Tx<'_>, written: &[(StoredResource, PendingIndex)]) -> StoreResult<()> {
    // An id written twice in the group: its last version only (an `UPDATE … FROM` row
    // must match one source row).
    let mut last: HashMap<i64, &StoredResource> = HashMap::with_capacity(written.len());
    for (s, p) in written {
        last.insert(p.rid, s);
    }
    let mut rows: Vec<(i64, &StoredResource)> = last.into_iter().collect();
    rows.sort_unstable_by_key(|(rid, _)| *rid);
    for chunk in chunks(&rows) {
        let mut update = Sql::new("WITH v (rid, version, seq, last_updated, deleted) AS (VALUES ");
        update.prepared();
        for (i, (rid, s)) in chunk.iter().enumerate() {
            update.values_row(
                i == 0,
                [
                    Bind::BigInt(*rid),
                    Bind::BigInt(s.version),
                    Bind::BigInt(s.seq),
                    Bind::BigInt(s.last_updated),
                    Bind::Bool(s.deleted),
                ],
            );
        }
        update.push(") ");
        update.push_per_backend("UPDATE OR FAIL", "UPDATE");
        update.push(
            " resources SET version = v.version, seq = v.seq, \
             last_updated = v.last_updated, deleted = v.deleted FROM v WHERE resources.rid = v.rid",
        );
        update.execute(tx.conn)?;
    }
    Ok(())
}
