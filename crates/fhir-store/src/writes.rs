//! Writing versions: the one path every create, update, patch and delete goes through.

use diesel::sql_types::{BigInt, Bool};
use diesel::QueryableByName;
use serde_json::{Map, Value};

use crate::backend::Tx;
use crate::error::{StoreError, StoreResult};
use crate::model::{IndexValues, StoredResource};
use crate::sql::{Bind, Sql};
use crate::time::{fhir_instant, now_millis};

/// The current state of a logical resource, locked for this transaction.
#[derive(Debug, Clone, QueryableByName)]
pub(crate) struct Current {
    #[diesel(sql_type = BigInt)]
    pub rid: i64,
    /// 0 when the resource did not exist before this transaction.
    #[diesel(sql_type = BigInt)]
    pub version: i64,
    #[diesel(sql_type = Bool)]
    pub deleted: bool,
}

impl Current {
    pub fn exists(&self) -> bool {
        self.version > 0 && !self.deleted
    }
}

/// Claims the row of `type/id` (creating a placeholder if new) and locks it until the
/// transaction ends, so that concurrent writers of one resource take turns.
pub(crate) fn lock_current(tx: &mut Tx<'_>, res_type: &str, id: &str) -> StoreResult<Current> {
    crate::write_many::lock_many(tx, res_type, &[id])?
        .remove(id)
        .ok_or_else(|| StoreError::Corrupt(format!("{res_type}/{id} was not claimed")))
}

/// Removes the placeholder row of a resource that turned out not to be written.
pub(crate) fn drop_placeholder(tx: &mut Tx<'_>, rid: i64) -> StoreResult<()> {
    let mut q = Sql::new("DELETE FROM resources WHERE version = 0 AND rid = ");
    q.bind(Bind::BigInt(rid));
    q.execute(tx.conn)?;
    Ok(())
}

/// Sets `id`, `meta.versionId` and `meta.lastUpdated`, placing `id` and `meta` right
/// after `resourceType` and keeping every other member where it was.
pub(crate) fn stamp(resource: Value, id: &str, version: i64, last_updated: i64) -> Value {
    let Value::Object(old) = resource else {
        return resource;
    };
    let mut out = Map::with_capacity(old.len() + 2);
    let mut rest = old;
    if let Some(rt) = rest.shift_remove("resourceType") {
        out.insert("resourceType".into(), rt);
    }
    rest.shift_remove("id");
    out.insert("id".into(), Value::String(id.into()));
    let mut meta = match rest.shift_remove("meta") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    meta.insert("versionId".into(), Value::String(version.to_string()));
    meta.insert(
        "lastUpdated".into(),
        Value::String(fhir_instant(last_updated)),
    );
    out.insert("meta".into(), Value::Object(meta));
    out.extend(rest);
    Value::Object(out)
}

/// A version ready to be written: stamped, serialised and indexed. Preparing touches no
/// database, so a batch prepares its versions on several threads ([`prepare_each`]).
pub(crate) struct PreparedVersion {
    pub version: i64,
    pub last_updated: i64,
    pub deleted: bool,
    pub content: String,
    pub rows: IndexValues,
}

/// Stamps the next version of `type/id` after `current` (`resource: None` prepares a
/// deletion) and computes its JSON text and index values.
pub(crate) fn prepare_version(
    id: &str,
    current: &Current,
    resource: Option<Value>,
    last_updated: i64,
    index: &(dyn Fn(&Value) -> IndexValues + Sync),
) -> PreparedVersion {
    let version = current.version + 1;
    let deleted = resource.is_none();
    let (content, rows) = match resource {
        Some(r) => {
            let r = stamp(r, id, version, last_updated);
            let rows = index(&r);
            (fhir_model::json::to_string(&r), rows)
        }
        None => (String::new(), IndexValues::default()),
    };
    PreparedVersion {
        version,
        last_updated,
        deleted,
        content,
        rows,
    }
}

/// Prepares versions `0..n` (`prepare(i)`) on up to `threads` threads — index extraction
/// (FHIRPath over every search parameter, the full text) is most of a write's own work —
/// and hands each to `write` in order, as soon as it and those before it are ready:
/// writing the first ones overlaps preparing the rest. The threads take the items in
/// turn, so the first are ready first. The error of the first item (in order) that fails
/// to prepare or to write ends it, as it would one by one.
pub(crate) fn prepare_each(
    n: usize,
    threads: usize,
    prepare: &(dyn Fn(usize) -> StoreResult<PreparedVersion> + Sync),
    mut write: impl FnMut(usize, PreparedVersion) -> StoreResult<()>,
) -> StoreResult<()> {
    let threads = threads.clamp(1, n.max(1));
    if threads == 1 {
        for i in 0..n {
            write(i, prepare(i)?)?;
        }
        return Ok(());
    }
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel();
        for lane in 0..threads {
            let tx = tx.clone();
            scope.spawn(move || {
                for i in (lane..n).step_by(threads) {
                    if tx.send((i, prepare(i))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let mut ready = std::collections::BTreeMap::new();
        let mut next = 0;
        for (i, prepared) in rx {
            ready.insert(i, prepared);
            while let Some(prepared) = ready.remove(&next) {
                write(next, prepared?)?;
                next += 1;
            }
        }
        Ok(())
    })
}

/// Writes the next version of a locked resource (`resource: None` writes a deletion)
/// and replaces its index rows.
pub(crate) fn write_version(
    tx: &mut Tx<'_>,
    res_type: &str,
    id: &str,
    current: &Current,
    resource: Option<Value>,
    method: &str,
    index: &(dyn Fn(&Value) -> IndexValues + Sync),
) -> StoreResult<(StoredResource, PendingIndex)> {
    let prepared = prepare_version(id, current, resource, now_millis(), index);
    persist_version(tx, res_type, id, current, prepared, method)
}

/// Writes a prepared version of a locked resource: its row, the resource's new current
/// version, and the index rows to flush (a group of one for
/// [`crate::write_many::persist_many`]).
pub(crate) fn persist_version(
    tx: &mut Tx<'_>,
    res_type: &str,
    id: &str,
    current: &Current,
    prepared: PreparedVersion,
    method: &str,
) -> StoreResult<(StoredResource, PendingIndex)> {
    let one = crate::write_many::Pending {
        res_type,
        id,
        current: current.clone(),
        method,
        version: prepared,
    };
    crate::write_many::persist_many(tx, vec![one])?
        .pop()
        .ok_or_else(|| StoreError::Corrupt("a version was not written".into()))
}

/// Rows of one index table: column names and, per row, the values after `rid,
/// res_type, param`.
struct TableRows {
    table: &'static str,
    columns: &'static [&'static str],
    rows: Vec<(String, Vec<Bind>)>,
}

fn opt(v: &Option<String>) -> Bind {
    Bind::OptText(v.clone())
}

fn decimal(d: &fhir_search::Decimal) -> f64 {
    d.to_string().parse().unwrap_or(0.0)
}

fn table_rows(v: &IndexValues) -> Vec<TableRows> {
    vec![
        TableRows {
            table: "idx_string",
            columns: &["norm", "exact"],
            rows: v
                .strings
                .iter()
                .map(|r| {
                    (
                        r.param.clone(),
                        vec![
                            Bind::Text(r.normalized.clone()),
                            Bind::Text(r.value.clone()),
                        ],
                    )
                })
                .collect(),
        },
        TableRows {
            table: "idx_token",
            columns: &["system", "code", "text_norm", "type_system", "type_code"],
            rows: v
                .tokens
                .iter()
                .map(|r| {
                    (
                        r.param.clone(),
                        vec![
                            opt(&r.system),
                            opt(&r.code),
                            opt(&r.text),
                            opt(&r.type_system),
                            opt(&r.type_code),
                        ],
                    )
                })
                .collect(),
        },
        TableRows {
            table: "idx_date",
            columns: &["start_ms", "end_ms"],
            rows: v
                .dates
                .iter()
                .map(|r| {
                    (
                        r.param.clone(),
                        vec![Bind::BigInt(r.start), Bind::BigInt(r.end)],
                    )
                })
                .collect(),
        },
        TableRows {
            table: "idx_number",
            columns: &["value"],
            rows: v
                .numbers
                .iter()
                .map(|r| {
                    (
                        r.param.clone(),
                        vec![Bind::Double(decimal(&r.number.value))],
                    )
                })
                .collect(),
        },
        TableRows {
            table: "idx_quantity",
            columns: &["system", "code", "unit", "value"],
            rows: v
                .quantities
                .iter()
                .filter_map(|r| {
                    let value = r.value.as_ref()?;
                    Some((
                        r.param.clone(),
                        vec![
                            opt(&r.system),
                            opt(&r.code),
                            opt(&r.unit),
                            Bind::Double(decimal(value)),
                        ],
                    ))
                })
                .collect(),
        },
        TableRows {
            table: "idx_reference",
            columns: &[
                "target_type",
                "target_id",
                "url",
                "ident_system",
                "ident_value",
            ],
            rows: v
                .references
                .iter()
                .filter(|r| !r.contained)
                .map(|r| {
                    (
                        r.param.clone(),
                        vec![
                            opt(&r.target_type),
                            opt(&r.id),
                            opt(&r.url),
                            opt(&r.identifier_system),
                            opt(&r.identifier_value),
                        ],
                    )
                })
                .collect(),
        },
        TableRows {
            table: "idx_uri",
            columns: &["uri"],
            rows: v
                .uris
                .iter()
                .map(|r| (r.param.clone(), vec![Bind::Text(r.uri.clone())]))
                .collect(),
        },
    ]
}

const COMPOSITE_COLUMNS: &[&str] = &[
    "grp",
    "pos",
    "system",
    "code",
    "text_norm",
    "norm",
    "exact",
    "start_ms",
    "end_ms",
    "value",
    "unit",
    "target_type",
    "target_id",
    "url",
    "ident_system",
    "ident_value",
    "uri",
];

/// The values of one component in `idx_composite` column order (after grp, pos).
fn component_binds(v: &fhir_search::IndexValue) -> Vec<Bind> {
    use fhir_search::IndexValue as V;
    // Typed NULLs: PostgreSQL will not put a text NULL in a number column.
    let mut b: Vec<Bind> = (0..15)
        .map(|i| match i {
            5 | 6 => Bind::OptBigInt(None),
            7 => Bind::OptDouble(None),
            _ => Bind::OptText(None),
        })
        .collect();
    match v {
        V::Token(t) => {
            b[0] = opt(&t.system);
            b[1] = opt(&t.code);
            b[2] = opt(&t.text);
        }
        V::String(s) => {
            b[3] = Bind::Text(s.normalized.clone());
            b[4] = Bind::Text(s.value.clone());
        }
        V::Date(d) => {
            b[5] = Bind::BigInt(d.start);
            b[6] = Bind::BigInt(d.end);
        }
        V::Number(n) => b[7] = Bind::Double(decimal(&n.number.value)),
        V::Quantity(q) => {
            if let Some(value) = &q.value {
                b[7] = Bind::Double(decimal(value));
            }
            b[0] = opt(&q.system);
            b[1] = opt(&q.code);
            b[8] = opt(&q.unit);
        }
        V::Reference(r) => {
            b[9] = opt(&r.target_type);
            b[10] = opt(&r.id);
            b[11] = opt(&r.url);
            b[12] = opt(&r.identifier_system);
            b[13] = opt(&r.identifier_value);
        }
        V::Uri(u) => b[14] = Bind::Text(u.uri.clone()),
    }
    b
}

fn composite_rows(v: &IndexValues) -> TableRows {
    let mut rows = Vec::new();
    for (grp, c) in v.composites.iter().enumerate() {
        for (pos, comp) in c.components.iter().enumerate() {
            let mut binds = vec![Bind::BigInt(grp as i64), Bind::BigInt(pos as i64)];
            binds.extend(component_binds(comp));
            rows.push((c.param.clone(), binds));
        }
    }
    TableRows {
        table: "idx_composite",
        columns: COMPOSITE_COLUMNS,
        rows,
    }
}

/// Index rows of a version written in this transaction, not yet in the index tables.
pub(crate) struct PendingIndex {
    pub rid: i64,
    pub res_type: String,
    pub values: IndexValues,
    /// The resource had index rows before (to delete first).
    pub replace: bool,
}

const INDEX_TABLES: &[&str] = &[
    "idx_string",
    "idx_token",
    "idx_date",
    "idx_number",
    "idx_quantity",
    "idx_reference",
    "idx_uri",
    "idx_composite",
];

/// One table's rows across the resources of a flush: (rid, type, param, values).
type TableBatch<'a> = (
    &'static str,
    &'static [&'static str],
    Vec<(i64, &'a str, String, Vec<Bind>)>,
);

/// Binds per statement: under SQLite's limit (32,766) and PostgreSQL's (65,535).
const MAX_BINDS: usize = 16_000;

/// Replaces the index rows of one resource now (re-indexing).
pub(crate) fn replace_index(
    tx: &mut Tx<'_>,
    rid: i64,
    res_type: &str,
    values: IndexValues,
) -> StoreResult<()> {
    let mut pending = vec![PendingIndex {
        rid,
        res_type: res_type.to_string(),
        values,
        replace: true,
    }];
    flush_index(tx, &mut pending)
}

/// Writes the pending index rows of a transaction with as few statements as possible:
/// one `DELETE … WHERE rid IN (…)` per table for replaced resources, then multi-row
/// inserts per table across all resources.
pub(crate) fn flush_index(tx: &mut Tx<'_>, pending: &mut Vec<PendingIndex>) -> StoreResult<()> {
    if pending.is_empty() {
        return Ok(());
    }
    // A resource written twice keeps its last rows.
    let mut seen = std::collections::HashSet::new();
    let mut batch: Vec<PendingIndex> = std::mem::take(pending)
        .into_iter()
        .rev()
        .filter(|p| seen.insert(p.rid))
        .collect();
    batch.reverse();
    let replaced: Vec<i64> = batch.iter().filter(|p| p.replace).map(|p| p.rid).collect();
    for table in INDEX_TABLES {
        for chunk in replaced.chunks(MAX_BINDS) {
            Sql::new(&format!("DELETE FROM {table} WHERE rid"))
                .in_ints(chunk)
                .execute(tx.conn)?;
        }
    }
    let mut per_table: Vec<TableBatch<'_>> = Vec::new();
    for p in &batch {
        let mut tables = table_rows(&p.values);
        tables.push(composite_rows(&p.values));
        for t in tables {
            let slot = match per_table.iter().position(|(name, _, _)| *name == t.table) {
                Some(i) => i,
                None => {
                    per_table.push((t.table, t.columns, Vec::new()));
                    per_table.len() - 1
                }
            };
            per_table[slot].2.extend(
                t.rows
                    .into_iter()
                    .map(|(param, binds)| (p.rid, p.res_type.as_str(), param, binds)),
            );
        }
    }
    for (table, columns, rows) in per_table {
        for chunk in owned_chunks(rows) {
            let mut insert = insert_into();
            insert.push(&format!(
                "{table} (rid, res_type, param, {}) VALUES ",
                columns.join(", ")
            ));
            insert.prepared();
            for (i, (rid, res_type, param, binds)) in chunk.into_iter().enumerate() {
                if i > 0 {
                    insert.push(", ");
                }
                insert
                    .push("(")
                    .bind(Bind::BigInt(rid))
                    .push(", ")
                    .bind(Bind::Text(res_type.to_string()));
                insert.push(", ").bind(Bind::Text(param));
                for b in binds {
                    insert.push(", ").bind(b);
                }
                insert.push(")");
            }
            insert.execute(tx.conn)?;
        }
    }
    crate::concepts::write(tx, &batch)?;
    write_fulltext(tx, &replaced, batch)
}

/// `INSERT INTO ` for the write path's inserts (multi-row, or with `RETURNING`). On
/// SQLite `OR FAIL`: such a statement inside a transaction otherwise copies every page
/// it changes into a statement journal, to undo itself alone if a constraint failed
/// halfway (in a bulk load's profile, 3 % of the writer); on any failure the store
/// rolls the whole transaction back anyway. An `ON CONFLICT` clause still decides the
/// conflicts it names.
pub(crate) fn insert_into() -> Sql {
    let mut insert = Sql::new("");
    insert.push_per_backend("INSERT OR FAIL INTO ", "INSERT INTO ");
    insert
}

/// The most index rows one `INSERT` writes (a composite row has two dozen values: 64
/// rows stay far below SQLite's and PostgreSQL's limits on binds).
const ROWS_PER_INSERT: usize = 64;

/// `rows` cut as [`rows_per_insert`] says, a statement's rows at a time.
pub(crate) fn chunks<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rows.is_empty() {
            return None;
        }
        let (chunk, rest) = rows.split_at(rows_per_insert(rows.len()));
        rows = rest;
        Some(chunk)
    })
}

/// The same as [`chunks`], handing the rows over.
fn owned_chunks<T>(rows: Vec<T>) -> impl Iterator<Item = Vec<T>> {
    let mut left = rows.len();
    let mut rows = rows.into_iter();
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let n = rows_per_insert(left);
        left -= n;
        Some(rows.by_ref().take(n).collect())
    })
}

/// How many of `left` rows the next `INSERT` writes: [`ROWS_PER_INSERT`], else the
/// largest power of two. Statements of so few shapes stay prepared on their connection
/// (SQLite spent a tenth of a bulk load's writer parsing statements of every length).
fn rows_per_insert(left: usize) -> usize {
    if left >= ROWS_PER_INSERT {
        ROWS_PER_INSERT
    } else {
        1 << left.ilog2()
    }
}

/// Replaces the full-text rows of the batch: the replaced resources' rows go, then one
/// row per resource with text (SQLite: the FTS5 table keyed by `rowid`; PostgreSQL:
/// `tsvector`s built by `to_tsvector('english', …)`).
fn write_fulltext(tx: &mut Tx<'_>, replaced: &[i64], batch: Vec<PendingIndex>) -> StoreResult<()> {
    let postgres = tx.kind == crate::backend::BackendKind::Postgres;
    let key = if postgres { "rid" } else { "rowid" };
    for chunk in replaced.chunks(MAX_BINDS) {
        Sql::new(&format!("DELETE FROM idx_fulltext WHERE {key}"))
            .in_ints(chunk)
            .execute(tx.conn)?;
    }
    let rows: Vec<(i64, fhir_search::fulltext::FullText)> = batch
        .into_iter()
        .filter_map(|p| p.values.text.map(|t| (p.rid, t)))
        .filter(|(_, t)| !t.content.is_empty())
        .collect();
    let (open, close) = if postgres {
        ("to_tsvector('english', ", ")")
    } else {
        ("", "")
    };
    for chunk in owned_chunks(rows) {
        let mut insert = insert_into();
        insert.push(&format!("idx_fulltext ({key}, narrative, content) VALUES "));
        insert.prepared();
        for (i, (rid, text)) in chunk.into_iter().enumerate() {
            insert.push(if i > 0 { ", (" } else { "(" });
            insert.bind(Bind::BigInt(rid)).push(", ").push(open);
            insert.bind(Bind::Text(text.narrative)).push(close);
            insert.push(", ").push(open);
            insert.bind(Bind::Text(text.content)).push(close).push(")");
        }
        insert.execute(tx.conn)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(i: usize) -> StoreResult<PreparedVersion> {
        if i == 7 {
            return Err(StoreError::Conflict("seven".into()));
        }
        Ok(PreparedVersion {
            version: i as i64,
            last_updated: 0,
            deleted: false,
            content: String::new(),
            rows: IndexValues::default(),
        })
    }

    #[test]
    fn prepare_each_writes_in_order_and_stops_at_the_first_error() {
        for threads in [1, 2, 3, 8] {
            let mut written = Vec::new();
            prepare_each(7, threads, &version, |i, v| {
                assert_eq!(v.version, i as i64, "each index gets its own version");
                written.push(i);
                Ok(())
            })
            .unwrap();
            assert_eq!(written, (0..7).collect::<Vec<_>>(), "{threads} threads");

            let mut written = Vec::new();
            let r = prepare_each(20, threads, &version, |i, _| {
                written.push(i);
                Ok(())
            });
            assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
            assert_eq!(
                written,
                (0..7).collect::<Vec<_>>(),
                "nothing after a failed prepare"
            );

            let mut written = Vec::new();
            let r = prepare_each(6, threads, &version, |i, _| {
                written.push(i);
                if i == 3 {
                    Err(StoreError::Timeout)
                } else {
                    Ok(())
                }
            });
            assert!(matches!(r, Err(StoreError::Timeout)), "{r:?}");
            assert_eq!(written, [0, 1, 2, 3], "nothing after a failed write");
        }
    }

    #[test]
    fn inserts_take_few_shapes() {
        let mut left = 1000;
        let mut sizes = Vec::new();
        while left > 0 {
            let n = rows_per_insert(left);
            sizes.push(n);
            left -= n;
        }
        assert_eq!(sizes.iter().sum::<usize>(), 1000);
        assert!(sizes[..15].iter().all(|&n| n == ROWS_PER_INSERT));
        assert_eq!(sizes[15..], [32, 8], "1000 = 15 × 64 + 32 + 8");
        assert_eq!(rows_per_insert(1), 1);
        assert_eq!(rows_per_insert(63), 32);
    }

    #[test]
    fn stamp_puts_id_and_meta_first_and_keeps_the_rest() {
        let r = fhir_model::json::parse(
            br#"{"resourceType":"Patient","active":true,"meta":{"tag":[{"code":"a"}],"versionId":"9"},"id":"old","x":1.50}"#,
        )
        .unwrap();
        let out = fhir_model::json::to_string(&stamp(r, "p1", 2, 0));
        assert_eq!(
            out,
            r#"{"resourceType":"Patient","id":"p1","meta":{"tag":[{"code":"a"}],"versionId":"2","lastUpdated":"1970-01-01T00:00:00.000Z"},"active":true,"x":1.50}"#
        );
    }
}
