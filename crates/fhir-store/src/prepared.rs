//! A [`Sql`] statement as a diesel query that its connection may keep prepared. Diesel
//! never caches `sql_query` statements (their text could be anything); this query type
//! hands diesel the text and the binds separately, so its statement cache (keyed by the
//! text) prepares each fixed statement once per connection. Only statements marked with
//! [`Sql::prepared`] take this path. Written here because diesel offers no cacheable
//! raw-SQL query.

use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Bool, Double, Nullable, Text, Untyped};
use diesel::QueryResult;
use diesel::RunQueryDsl;

use crate::backend::AnyConnection;
use crate::sql::{for_backend, Backend, Bind, Sql};

/// The statement's text cut at its placeholders, and the value of each.
pub(crate) struct Prepared {
    /// `pieces.len() == binds.len() + 1`: a placeholder goes between two pieces.
    pieces: Vec<String>,
    binds: Vec<Bind>,
}

impl Prepared {
    /// Splits `sql` at its placeholders `$1…$n`, which [`Sql::bind`] writes in order;
    /// diesel writes each backend's own placeholder in their place.
    pub(crate) fn of(sql: &Sql, conn: &AnyConnection) -> Prepared {
        let (text, binds) = sql.parts();
        let text = for_backend(text, matches!(conn, AnyConnection::Postgresql(_)));
        Prepared {
            pieces: split(&text, binds.len()),
            binds: binds.to_vec(),
        }
    }
}

/// `text` cut at `$1` … `$n`, in that order.
fn split(text: &str, n: usize) -> Vec<String> {
    let mut pieces = Vec::with_capacity(n + 1);
    let mut rest = text;
    for next in 1..=n {
        let mark = format!("${next}");
        // `$1` must not match the start of `$10`.
        let found = rest
            .match_indices(&mark)
            .find(|(i, _)| !rest[i + mark.len()..].starts_with(|c: char| c.is_ascii_digit()));
        let Some((at, _)) = found else { break };
        pieces.push(rest[..at].to_string());
        rest = &rest[at + mark.len()..];
    }
    pieces.push(rest.to_string());
    debug_assert_eq!(pieces.len(), n + 1, "placeholders out of order in {text}");
    pieces
}

impl QueryFragment<Backend> for Prepared {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Backend>) -> QueryResult<()> {
        for (i, piece) in self.pieces.iter().enumerate() {
            out.push_sql(piece);
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

impl QueryId for Prepared {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Prepared {
    type SqlType = Untyped;
}

impl RunQueryDsl<AnyConnection> for Prepared {}

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
        let pieces = split(text, binds.len());
        assert_eq!(pieces.len(), 12);
        assert_eq!(pieces[0], "SELECT a FROM t WHERE x = ");
        assert!(pieces[1..11].iter().all(|p| p == " AND y = "));
        assert_eq!(pieces[11], " AND y = 1");
    }
}
