//! A [`Sql`] statement as a diesel query that its connection may keep prepared. Diesel
//! never caches `sql_query` statements (their text could be anything); this query type
//! hands diesel the text and the binds separately, so its statement cache (keyed by the
//! text) prepares each fixed statement once per connection. Only statements marked with
//! [`Sql::prepared`] take this path. Written here because diesel offers no cacheable
//! raw-SQL query.

use std::borrow::Cow;

use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Bool, Double, Nullable, Text, Untyped};
use diesel::QueryResult;
use diesel::RunQueryDsl;

use crate::backend::AnyConnection;
use crate::sql::{for_backend, Backend, Bind, Sql};

/// The statement's text cut at its placeholders, and the value of each; borrowed from
/// the [`Sql`] it runs (a bulk load's index inserts carry hundreds of values each).
pub(crate) struct Prepared<'a> {
    text: Cow<'a, str>,
    /// Where each piece of `text` ends: a placeholder goes between two pieces, so
    /// `cuts.len() == binds.len() + 1`, each a byte range of `text`.
    cuts: Vec<(usize, usize)>,
    binds: &'a [Bind],
}

impl<'a> Prepared<'a> {
    /// Splits `sql` at its placeholders `$1…$n`, which [`Sql::bind`] writes in order;
    /// diesel writes each backend's own placeholder in their place.
    pub(crate) fn of(sql: &'a Sql, conn: &AnyConnection) -> Prepared<'a> {
        let (text, binds) = sql.parts();
        let text = for_backend(text, matches!(conn, AnyConnection::Postgresql(_)));
        Prepared {
            cuts: split(&text, binds.len()),
            text,
            binds,
        }
    }
}

/// The byte ranges of `text` between `$1` … `$n`, found in that order in one pass.
fn split(text: &str, n: usize) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut cuts = Vec::with_capacity(n + 1);
    let (mut start, mut at) = (0, 0);
    while cuts.len() < n {
        let Some(dollar) = text[at..].find('$').map(|i| at + i) else {
            break;
        };
        let digits = bytes[dollar + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let end = dollar + 1 + digits;
        // `$1` must not match the start of `$10`: the number must be the next one.
        if text[dollar + 1..end].parse::<usize>().ok() == Some(cuts.len() + 1) {
            cuts.push((start, dollar));
            start = end;
        }
        at = end.max(dollar + 1);
    }
    cuts.push((start, text.len()));
    debug_assert_eq!(cuts.len(), n + 1, "placeholders out of order in {text}");
    cuts
}

impl QueryFragment<Backend> for Prepared<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Backend>) -> QueryResult<()> {
        for (i, &(from, to)) in self.cuts.iter().enumerate() {
            out.push_sql(&self.text[from..to]);
            let Some(bind) = self.binds.get(i) else {
                continue;
            };
            match bind {
                Bind::Text(v) => out.push_bind_param::<Text, _>(v)?,
                Bind::OptText(v) => out.push_bind_param::<Nullable<Text>, _>(v)?,
                Bind::BigInt(v) => out.push_bind_param::<BigInt, _>(v)?,
                Bind::Bool(v) => out.push_bind_param::<Bool, _>(v)?,
                Bind::Double(v) => out.push_bind_param::<Double, _>(v)?,
                Bind::OptBigInt(v) => out.push_bind_param::<Nullable<BigInt>, _>(v)?,
                Bind::OptDouble(v) => out.push_bind_param::<Nullable<Double>, _>(v)?,
            }
        }
        Ok(())
    }
}

impl QueryId for Prepared<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Prepared<'_> {
    type SqlType = Untyped;
}

impl RunQueryDsl<AnyConnection> for Prepared<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_placeholders_in_order() {
        let mut q = Sql::new("SELECT a FROM t WHERE x = ");
        for i in 0..11 {
            q.bind(Bind::BigInt(i)).push(" AND y = ");
        }
        q.push("1");
        let (text, binds) = q.parts();
        let pieces: Vec<&str> = split(text, binds.len())
            .into_iter()
            .map(|(from, to)| &text[from..to])
            .collect();
        assert_eq!(pieces.len(), 12);
        assert_eq!(pieces[0], "SELECT a FROM t WHERE x = ");
        assert!(pieces[1..11].iter().all(|p| *p == " AND y = "));
        assert_eq!(pieces[11], " AND y = 1");
    }

    #[test]
    fn dollars_that_are_not_the_next_placeholder_stay_text() {
        let mut q = Sql::new("SELECT '$everything', '$2' AS x WHERE a = ");
        q.bind(Bind::BigInt(1))
            .push(" AND b = ")
            .bind(Bind::BigInt(2));
        let (text, binds) = q.parts();
        let pieces: Vec<&str> = split(text, binds.len())
            .into_iter()
            .map(|(from, to)| &text[from..to])
            .collect();
        assert_eq!(
            pieces,
            [
                "SELECT '$everything', '$2' AS x WHERE a = ",
                " AND b = ",
                ""
            ]
        );
    }
}
