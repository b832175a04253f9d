//! Building SQL with positional binds for both backends. Placeholders are `$1…`, which
//! PostgreSQL and SQLite both read; binds are typed values applied in order.

use diesel::query_builder::BoxedSqlQuery;
use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use diesel::{Connection, QueryableByName, RunQueryDsl};

use crate::backend::AnyConnection;
use crate::error::StoreResult;

pub type Backend = <AnyConnection as Connection>::Backend;

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(String),
    OptText(Option<String>),
    BigInt(i64),
    Bool(bool),
}

/// SQL text with its binds, built piece by piece.
#[derive(Debug, Default, Clone)]
pub struct Sql {
    text: String,
    binds: Vec<Bind>,
}

impl Sql {
    pub fn new(text: &str) -> Self {
        Sql {
            text: text.to_string(),
            binds: Vec::new(),
        }
    }

    /// Appends SQL text.
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder for `value`.
    pub fn bind(&mut self, value: Bind) -> &mut Self {
        self.binds.push(value);
        self.text.push('$');
        self.text.push_str(&self.binds.len().to_string());
        self
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    fn query(&self) -> BoxedSqlQuery<'_, Backend, diesel::query_builder::SqlQuery> {
        let mut q = diesel::sql_query(self.text.clone()).into_boxed::<Backend>();
        for b in &self.binds {
            q = match b {
                Bind::Text(v) => q.bind::<Text, _>(v.clone()),
                Bind::OptText(v) => q.bind::<Nullable<Text>, _>(v.clone()),
                Bind::BigInt(v) => q.bind::<BigInt, _>(*v),
                Bind::Bool(v) => q.bind::<Bool, _>(*v),
            };
        }
        q
    }

    /// Runs a query returning rows.
    pub fn load<T: QueryableByName<Backend> + 'static>(
        &self,
        conn: &mut AnyConnection,
    ) -> StoreResult<Vec<T>> {
        Ok(self.query().load(conn)?)
    }

    /// Runs a statement; returns the number of rows it changed.
    pub fn execute(&self, conn: &mut AnyConnection) -> StoreResult<usize> {
        Ok(self.query().execute(conn)?)
    }
}

/// `COUNT(*)` and similar single numbers.
#[derive(QueryableByName)]
pub struct CountRow {
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}
