//! Building SQL with positional binds for both backends. Placeholders are `$1…`, which
//! PostgreSQL and SQLite both read; binds are typed values applied in order.

use diesel::query_builder::BoxedSqlQuery;
use diesel::sql_types::{BigInt, Bool, Double, Nullable, Text};
use diesel::{Connection, QueryableByName, RunQueryDsl};

use crate::backend::AnyConnection;
use crate::error::StoreResult;

pub type Backend = <AnyConnection as Connection>::Backend;

/// Markers around per-backend text ([`Sql::push_per_backend`]): control characters no
/// SQL text of ours holds.
const VARIANT_START: char = '\u{2}';
const VARIANT_SPLIT: char = '\u{3}';
const VARIANT_END: char = '\u{4}';

/// `text` with each per-backend fragment resolved.
pub(crate) fn for_backend(text: &str, postgres: bool) -> std::borrow::Cow<'_, str> {
    if !text.contains(VARIANT_START) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(VARIANT_START) {
        out.push_str(&rest[..start]);
        let after = &rest[start + VARIANT_START.len_utf8()..];
        let split = after.find(VARIANT_SPLIT).unwrap_or(after.len());
        let end = after.find(VARIANT_END).unwrap_or(after.len());
        let (sqlite, postgres_text) = (
            &after[..split.min(end)],
            after.get(split + 1..end).unwrap_or(""),
        );
        out.push_str(if postgres { postgres_text } else { sqlite });
        rest = after.get(end + VARIANT_END.len_utf8()..).unwrap_or("");
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(String),
    OptText(Option<String>),
    BigInt(i64),
    OptBigInt(Option<i64>),
    Bool(bool),
    Double(f64),
    OptDouble(Option<f64>),
}

/// SQL text with its binds, built piece by piece.
#[derive(Debug, Default, Clone)]
pub struct Sql {
    text: String,
    binds: Vec<Bind>,
    /// Keep the statement prepared on its connection ([`Sql::prepared`]).
    prepared: bool,
}

impl Sql {
    pub fn new(text: &str) -> Self {
        Sql {
            text: text.to_string(),
            binds: Vec::new(),
            prepared: false,
        }
    }

    /// Appends SQL text.
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder for `value`.
    pub fn bind(&mut self, value: Bind) -> &mut Self {
        use std::fmt::Write;
        self.binds.push(value);
        // Writing to a String cannot fail.
        let _ = write!(self.text, "${}", self.binds.len());
        self
    }

    /// Appends a placeholder for a text `value` that SQLite's planner does not look at
    /// (`CAST($n AS TEXT)`; the same comparison on PostgreSQL). Built with
    /// `SQLITE_ENABLE_STAT4`, SQLite reads the value bound to an indexed column's
    /// `=` or `IN` to estimate rows from its samples, and then prepares the statement
    /// again whenever that value changes: for a lookup by key (a resource by type and
    /// id, a version) that compile costs more than the lookup. Once the leading column
    /// of an index is compared to an expression, SQLite estimates from its averages
    /// for every column of that index, and keeps the statement.
    pub fn bind_unprobed(&mut self, value: String) -> &mut Self {
        self.push("CAST(").bind(Bind::Text(value)).push(" AS TEXT)")
    }

    /// Appends a placeholder for an integer `value` that SQLite's planner does not look
    /// at (`CAST($n AS BIGINT)`): as [`Sql::bind_unprobed`], for a bound compared with an
    /// indexed column (a time a row is due by) that changes on every call.
    pub fn bind_int_unprobed(&mut self, value: i64) -> &mut Self {
        self.push("CAST(")
            .bind(Bind::BigInt(value))
            .push(" AS BIGINT)")
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Appends text that differs by backend (no placeholders in it), chosen when the
    /// query runs: full-text search is FTS5 `MATCH` on SQLite, `@@` on PostgreSQL.
    pub fn push_per_backend(&mut self, sqlite: &str, postgres: &str) -> &mut Self {
        self.text.push(VARIANT_START);
        self.text.push_str(sqlite);
        self.text.push(VARIANT_SPLIT);
        self.text.push_str(postgres);
        self.text.push(VARIANT_END);
        self
    }

    /// Appends another piece with its binds (placeholders renumbered).
    pub fn append(&mut self, other: &Sql) -> &mut Self {
        let offset = self.binds.len();
        let mut rest = other.text.as_str();
        while let Some(pos) = rest.find('$') {
            self.text.push_str(&rest[..pos]);
            let digits: String = rest[pos + 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            match digits.parse::<usize>() {
                Ok(n) => {
                    self.text.push('$');
                    self.text.push_str(&(n + offset).to_string());
                }
                Err(_) => self.text.push('$'),
            }
            rest = &rest[pos + 1 + digits.len()..];
        }
        self.text.push_str(rest);
        self.binds.extend(other.binds.iter().cloned());
        self
    }

    /// The same SQL with column references `from.` renamed to `to.`.
    pub fn with_alias(&self, from: &str, to: &str) -> Sql {
        let mut text = String::with_capacity(self.text.len());
        let pattern = format!("{from}.");
        let mut rest = self.text.as_str();
        while let Some(pos) = rest.find(&pattern) {
            let boundary =
                pos == 0 || !rest[..pos].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
            text.push_str(&rest[..pos]);
            text.push_str(if boundary { to } else { from });
            text.push('.');
            rest = &rest[pos + pattern.len()..];
        }
        text.push_str(rest);
        Sql {
            text,
            binds: self.binds.clone(),
            prepared: self.prepared,
        }
    }

    /// Appends one row of a multi-row `VALUES` list, `(…)` with a placeholder per
    /// value, after a comma unless it is the `first`.
    pub fn values_row(&mut self, first: bool, values: impl IntoIterator<Item = Bind>) -> &mut Self {
        self.push(if first { "(" } else { ", (" });
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(value);
        }
        self.push(")")
    }

    /// `IN (…)` over text values (`IN (NULL)` when empty, which matches nothing).
    pub fn in_list(&mut self, values: &[String]) -> &mut Self {
        self.push(" IN (");
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(Bind::Text(v.clone()));
        }
        if values.is_empty() {
            self.push("NULL");
        }
        self.push(")")
    }

    /// `IN (…)` over text values that SQLite's planner does not look at (see
    /// [`Sql::bind_unprobed`]; `IN (NULL)` when empty).
    pub fn in_list_unprobed(&mut self, values: &[String]) -> &mut Self {
        self.push(" IN (");
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind_unprobed(v.clone());
        }
        if values.is_empty() {
            self.push("NULL");
        }
        self.push(")")
    }

    /// `IN (…)` over integers (`IN (NULL)` when empty, which matches nothing).
    pub fn in_ints(&mut self, values: &[i64]) -> &mut Self {
        self.push(" IN (");
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(Bind::BigInt(*v));
        }
        if values.is_empty() {
            self.push("NULL");
        }
        self.push(")")
    }

    fn query(
        &self,
        conn: &AnyConnection,
    ) -> BoxedSqlQuery<'_, Backend, diesel::query_builder::SqlQuery> {
        // SQLite reads `$N` as a *named* parameter and looks each name up among the
        // earlier ones (quadratic in the number of binds); `?N` is its numbered form.
        let text = match conn {
            AnyConnection::Sqlite(_) => for_backend(&self.text, false).replace('$', "?"),
            AnyConnection::Postgresql(_) => for_backend(&self.text, true).into_owned(),
        };
        let mut q = diesel::sql_query(text).into_boxed::<Backend>();
        for b in &self.binds {
            q = match b {
                Bind::Text(v) => q.bind::<Text, _>(v.clone()),
                Bind::OptText(v) => q.bind::<Nullable<Text>, _>(v.clone()),
                Bind::BigInt(v) => q.bind::<BigInt, _>(*v),
                Bind::Bool(v) => q.bind::<Bool, _>(*v),
                Bind::Double(v) => q.bind::<Double, _>(*v),
                Bind::OptBigInt(v) => q.bind::<Nullable<BigInt>, _>(*v),
                Bind::OptDouble(v) => q.bind::<Nullable<Double>, _>(*v),
            };
        }
        q
    }

    /// Marks a statement whose text is one of a few fixed ones (no lists of varying
    /// length): its connection keeps it prepared and runs it again without parsing it.
    /// The per-resource statements of every write and read are (SQLite spent a tenth
    /// of a bulk load parsing them); statements of varying text are not, as diesel's
    /// cache of prepared statements has no bound.
    pub fn prepared(&mut self) -> &mut Self {
        self.prepared = true;
        self
    }

    /// Runs a query returning rows.
    pub fn load<T: QueryableByName<Backend> + 'static>(
        &self,
        conn: &mut AnyConnection,
    ) -> StoreResult<Vec<T>> {
        let started = std::time::Instant::now();
        let rows = if self.prepared {
            crate::prepared::Prepared::of(self, conn).load(conn)?
        } else {
            self.query(conn).load(conn)?
        };
        tracing::trace!(
            us = started.elapsed().as_micros() as u64,
            rows = rows.len(),
            sql = %self.text,
            "query"
        );
        Ok(rows)
    }

    /// Runs a statement; returns the number of rows it changed.
    pub fn execute(&self, conn: &mut AnyConnection) -> StoreResult<usize> {
        if self.prepared {
            return Ok(crate::prepared::Prepared::of(self, conn).execute(conn)?);
        }
        Ok(self.query(conn).execute(conn)?)
    }

    pub(crate) fn parts(&self) -> (&str, &[Bind]) {
        (&self.text, &self.binds)
    }
}

/// The longest list one statement of fixed text takes ([`padded`], [`in_fixed_runs`]).
pub const LIST_MAX: usize = 256;

/// `items` cut into lists of at most [`LIST_MAX`], the last padded with copies of its
/// last item to a power of two: statements over such lists (an `IN` list, a list of
/// `OR`ed keys: where a repeated value changes nothing) take one of nine texts, so they
/// can stay prepared ([`Sql::prepared`]) where a text per length would be parsed on
/// every call. Hibernate pads its `IN` lists for the same reason
/// (`hibernate.query.in_clause_parameter_padding`).
pub fn padded<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    items
        .chunks(LIST_MAX)
        .map(|chunk| {
            let mut list = chunk.to_vec();
            if let Some(last) = chunk.last() {
                list.resize(chunk.len().next_power_of_two(), last.clone());
            }
            list
        })
        .collect()
}

/// `items` cut into runs whose lengths are powers of four up to [`LIST_MAX`], longest
/// first (203 rows: 64, 64, 64, 4, 4, 1, 1, 1): for multi-row inserts, where each row
/// goes in once, so a statement per run takes one of five texts and stays prepared.
pub fn in_fixed_runs<T>(items: &[T]) -> Vec<&[T]> {
    let mut runs = Vec::new();
    let mut rest = items;
    let mut size = LIST_MAX;
    while !rest.is_empty() {
        while size > rest.len() {
            size /= 4;
        }
        let (run, after) = rest.split_at(size);
        runs.push(run);
        rest = after;
    }
    runs
}

/// `COUNT(*)` and similar single numbers.
#[derive(QueryableByName)]
pub struct CountRow {
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}

/// A single text value.
#[derive(QueryableByName)]
pub struct TextRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub s: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_lists_take_few_lengths_and_keep_every_item() {
        let items: Vec<i64> = (0..300).collect();
        let lists = padded(&items);
        assert_eq!(lists.iter().map(Vec::len).collect::<Vec<_>>(), [256, 64]);
        assert_eq!(lists[1][43], 299, "the last item repeated");
        let flat: std::collections::BTreeSet<i64> = lists.into_iter().flatten().collect();
        assert_eq!(flat.len(), 300);
        assert_eq!(padded(&[7])[0], [7]);
        assert_eq!(padded(&[1, 2, 3])[0], [1, 2, 3, 3]);
        assert!(padded::<i64>(&[]).is_empty());
    }

    #[test]
    fn fixed_runs_cover_each_row_once_in_powers_of_four() {
        let items: Vec<i64> = (0..203).collect();
        let runs = in_fixed_runs(&items);
        let lengths: Vec<usize> = runs.iter().map(|r| r.len()).collect();
        assert_eq!(lengths, [64, 64, 64, 4, 4, 1, 1, 1]);
        assert_eq!(runs.concat(), items);
        assert_eq!(in_fixed_runs(&[0; 600]).len(), 6, "256, 256, 64, 16, 4, 4");
        assert!(in_fixed_runs::<i64>(&[]).is_empty());
    }
}
