//! `_sort`: the sort columns of each parameter type, `ORDER BY`, and keyset paging on
//! the sort values of the boundary row.

use super::*;

/// The last column of most orders, which a cursor takes as it is.
const RID: &str = "r.rid";

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum KeyKind {
    Int,
    Real,
    Text,
}

/// One column of a search's order: an SQL expression over `r` and its direction.
#[derive(Debug, Clone)]
pub(super) struct SortColumn {
    expr: Sql,
    descending: bool,
    kind: KeyKind,
    /// On the column that tells whether a resource has no value for a key: that value
    /// itself, NULL when there is none (the next column holds it with NULL replaced).
    guarded: Option<Sql>,
}

impl SortColumn {
    pub(super) fn new(expr: &str, descending: bool, kind: KeyKind) -> SortColumn {
        SortColumn::of(Sql::new(expr), descending, kind)
    }

    /// A column whose expression has binds.
    pub(super) fn of(expr: Sql, descending: bool, kind: KeyKind) -> SortColumn {
        SortColumn {
            expr,
            descending,
            kind,
            guarded: None,
        }
    }
}

/// The columns that order a search: per sort key its value (resources without one
/// last, in both directions, on both backends), then `rid` so that the order is total.
pub(super) fn sort_columns(sort: &[SortKey]) -> StoreResult<Vec<SortColumn>> {
    let mut out = Vec::new();
    for key in sort {
        let desc = key.descending;
        match key.code.as_str() {
            // Versions written in the same millisecond keep their write order (reversed
            // for `-_lastUpdated`), so that `(res_type, last_updated, seq)` serves both.
            "_lastUpdated" => {
                out.push(SortColumn::new("r.last_updated", desc, KeyKind::Int));
                out.push(SortColumn::new("r.seq", desc, KeyKind::Int));
            }
            "_id" => out.push(SortColumn::new("r.res_id", desc, KeyKind::Text)),
            _ => {
                let (table, col, kind) = match key.kind {
                    SearchParamType::String => ("idx_string", "norm", KeyKind::Text),
                    SearchParamType::Token => ("idx_token", "code", KeyKind::Text),
                    SearchParamType::Date if desc => ("idx_date", "end_ms", KeyKind::Int),
                    SearchParamType::Date => ("idx_date", "start_ms", KeyKind::Int),
                    SearchParamType::Number => ("idx_number", "value", KeyKind::Real),
                    SearchParamType::Quantity => ("idx_quantity", "value", KeyKind::Real),
                    SearchParamType::Reference => ("idx_reference", "target_id", KeyKind::Text),
                    SearchParamType::Uri => ("idx_uri", "uri", KeyKind::Text),
                    _ => {
                        return Err(unsupported_at(
                            "_sort",
                            format!("cannot sort by '{}'", key.code),
                        ))
                    }
                };
                let agg = if desc { "MAX" } else { "MIN" };
                let mut sub = Sql::new(&format!("(SELECT {agg}(o.{col}"));
                // Strings sort by their bytes on PostgreSQL as on SQLite, whatever the
                // database's collation: the order its string index walks (`sort_prefix`).
                if table == "idx_string" {
                    sub.push_per_backend("", " COLLATE \"C\"");
                }
                sub.push(&format!(
                    ") FROM {table} o WHERE o.rid = r.rid AND o.param = "
                ));
                sub.bind(Bind::Text(key.code.clone())).push(")");
                let mut missing = Sql::new("CAST(CASE WHEN ");
                missing
                    .append(&sub)
                    .push(" IS NULL THEN 1 ELSE 0 END AS BIGINT)");
                let mut value = Sql::new("COALESCE(");
                value.append(&sub).push(&format!(", {})", none_of(kind).0));
                out.push(SortColumn {
                    expr: missing,
                    descending: false,
                    kind: KeyKind::Int,
                    guarded: Some(sub),
                });
                out.push(SortColumn::of(value, desc, kind));
            }
        }
    }
    // `seq` (the current version's) is unique: after it, `rid` orders nothing.
    if sort.last().is_none_or(|k| k.code != "_lastUpdated") {
        out.push(SortColumn::new(RID, false, KeyKind::Int));
    }
    Ok(out)
}

/// What stands for a missing value of a key of `kind`, in SQL and as a key value.
fn none_of(kind: KeyKind) -> (&'static str, KeyValue) {
    match kind {
        KeyKind::Text => ("''", KeyValue::Text(String::new())),
        KeyKind::Real => ("0.0", KeyValue::Real(0.0)),
        KeyKind::Int => ("0", KeyValue::Int(0)),
    }
}

/// `ORDER BY` the columns (all reversed for a page read backwards).
pub(super) fn order_sql(q: &mut Sql, columns: &[SortColumn], reversed: bool) {
    q.push(" ORDER BY ");
    for (i, c) in columns.iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        let dir = if c.descending != reversed {
            "DESC"
        } else {
            "ASC"
        };
        q.append(&c.expr).push(&format!(" {dir}"));
    }
}

pub(super) fn key_bind(v: &KeyValue, kind: KeyKind) -> StoreResult<Bind> {
    match (v, kind) {
        (KeyValue::Int(n), KeyKind::Int) => Ok(Bind::BigInt(*n)),
        (KeyValue::Int(n), KeyKind::Real) => Ok(Bind::Double(*n as f64)),
        (KeyValue::Real(x), KeyKind::Real) => Ok(Bind::Double(*x)),
        (KeyValue::Text(t), KeyKind::Text) => Ok(Bind::Text(t.clone())),
        _ => Err(bad_cursor()),
    }
}

pub(super) fn bad_cursor() -> StoreError {
    unsupported_at(
        "_page",
        "the _page value does not belong to this search".into(),
    )
}

/// ` AND` rows after (or before) the boundary row whose column values are `key`, in
/// the order of `columns`.
pub(super) fn keyset_sql(
    q: &mut Sql,
    columns: &[SortColumn],
    key: &[KeyValue],
    after: bool,
) -> StoreResult<()> {
    if key.len() != columns.len() {
        return Err(bad_cursor());
    }
    q.push(" AND (");
    for i in 0..columns.len() {
        if i > 0 {
            q.push(" OR ");
        }
        q.push("(");
        for (c, v) in columns.iter().zip(key).take(i) {
            q.append(&c.expr)
                .push(" = ")
                .bind(key_bind(v, c.kind)?)
                .push(" AND ");
        }
        let c = &columns[i];
        let op = if c.descending == after { " < " } else { " > " };
        q.append(&c.expr)
            .push(op)
            .bind(key_bind(&key[i], c.kind)?)
            .push(")");
    }
    q.push(")");
    Ok(())
}

#[derive(QueryableByName)]
pub(super) struct RealRow {
    #[diesel(sql_type = diesel::sql_types::Double)]
    pub(super) v: f64,
}

#[derive(QueryableByName)]
struct MaybeInt {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    n: Option<i64>,
}

#[derive(QueryableByName)]
struct MaybeReal {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    v: Option<f64>,
}

#[derive(QueryableByName)]
struct MaybeText {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    s: Option<String>,
}

/// The column values of the row `rid`, for a cursor: a key's value and whether it is
/// missing in one statement, `rid` without one (PostgreSQL planned each of the five
/// statements `_sort=family,given` took in about as long as it ran them: 0.3–0.4 ms).
pub(super) fn key_of(
    tx: &mut Tx<'_>,
    columns: &[SortColumn],
    rid: i64,
) -> StoreResult<Vec<KeyValue>> {
    let vanished = || StoreError::Corrupt(format!("row {rid} vanished"));
    let mut out = Vec::with_capacity(columns.len());
    let mut rest = columns;
    while let Some((c, after)) = rest.split_first() {
        rest = after;
        match (&c.guarded, after.split_first()) {
            _ if c.expr.text() == RID => out.push(KeyValue::Int(rid)),
            (Some(sub), Some((value, later))) => {
                let v = value_of(tx, sub, value.kind, rid)?.ok_or_else(vanished)?;
                out.push(KeyValue::Int(i64::from(v.is_none())));
                out.push(v.unwrap_or_else(|| none_of(value.kind).1));
                rest = later;
            }
            _ => {
                let v = value_of(tx, &c.expr, c.kind, rid)?.flatten();
                out.push(v.ok_or_else(vanished)?);
            }
        }
    }
    Ok(out)
}

/// The value of `expr` for the row `rid` (`None`: no such row; `Some(None)`: NULL).
fn value_of(
    tx: &mut Tx<'_>,
    expr: &Sql,
    kind: KeyKind,
    rid: i64,
) -> StoreResult<Option<Option<KeyValue>>> {
    let mut q = Sql::new("SELECT ");
    q.append(expr);
    q.push(match kind {
        KeyKind::Int => " AS n",
        KeyKind::Real => " AS v",
        KeyKind::Text => " AS s",
    });
    q.push(" FROM resources r WHERE r.rid = ")
        .bind(Bind::BigInt(rid));
    Ok(match kind {
        KeyKind::Int => q
            .load::<MaybeInt>(tx.conn)?
            .first()
            .map(|r| r.n.map(KeyValue::Int)),
        KeyKind::Real => q
            .load::<MaybeReal>(tx.conn)?
            .first()
            .map(|r| r.v.map(KeyValue::Real)),
        KeyKind::Text => q
            .load::<MaybeText>(tx.conn)?
            .into_iter()
            .next()
            .map(|r| r.s.map(KeyValue::Text)),
    })
}
