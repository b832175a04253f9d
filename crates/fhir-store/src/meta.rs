//! The profiles, tags and security labels in use (the `$meta` operation at the system
//! and type levels), read from the search index (`_tag`, `_security`, `_profile`) of
//! current versions: one index range per resource type, never the resources.

use diesel::sql_types::{Nullable, Text};
use diesel::QueryableByName;

use crate::backend::Tx;
use crate::error::StoreResult;
use crate::sql::{Bind, Sql, TextRow};

/// Distinct values in use, each list sorted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MetaSummary {
    /// `(system, code)` of `meta.tag`.
    pub tags: Vec<(Option<String>, Option<String>)>,
    /// `(system, code)` of `meta.security`.
    pub security: Vec<(Option<String>, Option<String>)>,
    pub profiles: Vec<String>,
}

/// The most distinct values of each kind listed (the rest would not help a client).
const LIMIT: usize = 1000;

#[derive(QueryableByName)]
struct TokenRow {
    #[diesel(sql_type = Text)]
    p: String,
    #[diesel(sql_type = Nullable<Text>)]
    s: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    c: Option<String>,
}

/// What the current resources of `types` use.
pub(crate) fn summary(tx: &mut Tx<'_>, types: &[&str]) -> StoreResult<MetaSummary> {
    let mut out = MetaSummary::default();
    for t in types {
        let mut q = Sql::new(
            "SELECT DISTINCT param AS p, system AS s, code AS c FROM idx_token WHERE res_type = ",
        );
        q.bind(Bind::Text(t.to_string()))
            .push(" AND param IN ('_tag', '_security')");
        q.push(&format!(" LIMIT {LIMIT}"));
        for row in q.load::<TokenRow>(tx.conn)? {
            let list = if row.p == "_tag" {
                &mut out.tags
            } else {
                &mut out.security
            };
            list.push((row.s, row.c));
        }
        let mut q = Sql::new("SELECT DISTINCT uri AS s FROM idx_uri WHERE res_type = ");
        q.bind(Bind::Text(t.to_string()))
            .push(" AND param = '_profile'");
        q.push(&format!(" LIMIT {LIMIT}"));
        out.profiles
            .extend(q.load::<TextRow>(tx.conn)?.into_iter().map(|r| r.s));
    }
    for list in [&mut out.tags, &mut out.security] {
        list.sort();
        list.dedup();
        list.truncate(LIMIT);
    }
    out.profiles.sort();
    out.profiles.dedup();
    out.profiles.truncate(LIMIT);
    Ok(out)
}
