//! Hard deletion for administrators (`$expunge`): previous versions of resources, and
//! resources that are deleted, removed from the database for good. AuditEvents are
//! never expunged (the audit trail stays whole). Runs as one write transaction.

use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;

use crate::error::StoreResult;
use crate::sql::{Bind, Sql};
use crate::Store;

/// What to expunge, and where.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expunge {
    /// One type (`None`: every type but AuditEvent).
    pub res_type: Option<String>,
    /// One resource of that type.
    pub id: Option<String>,
    /// The versions before each resource's current one.
    pub previous_versions: bool,
    /// Resources whose current version is a deletion: all their versions.
    pub deleted_resources: bool,
    /// The most resources touched.
    pub limit: usize,
}

#[derive(QueryableByName)]
struct Found {
    #[diesel(sql_type = BigInt)]
    rid: i64,
    #[diesel(sql_type = Text)]
    t: String,
    #[diesel(sql_type = Text)]
    i: String,
}

impl Store {
    /// Removes what `what` names; returns the number of versions removed.
    pub fn expunge(&self, what: &Expunge) -> StoreResult<u64> {
        let removed = self.db.write(|tx| {
            let mut removed = 0u64;
            if what.previous_versions {
                removed += previous_versions(tx, what)?;
            }
            if what.deleted_resources {
                removed += deleted_resources(tx, what)?;
            }
            Ok(removed)
        })?;
        // Cached versions may be gone: start the read cache afresh.
        self.db.cache.clear();
        self.db.recent.clear();
        Ok(removed)
    }
}

/// `AND x.res_type = … AND x.res_id = …` for the scope of `what` (AuditEvent never).
fn scope(q: &mut Sql, alias: &str, what: &Expunge) {
    q.push(&format!(" AND {alias}.res_type <> 'AuditEvent'"));
    if let Some(t) = &what.res_type {
        q.push(&format!(" AND {alias}.res_type = "))
            .bind(Bind::Text(t.clone()));
    }
    if let Some(i) = &what.id {
        q.push(&format!(" AND {alias}.res_id = "))
            .bind(Bind::Text(i.clone()));
    }
}

fn previous_versions(tx: &mut crate::backend::Tx<'_>, what: &Expunge) -> StoreResult<u64> {
    let mut rids = Sql::new(
        "SELECT r.rid AS rid, r.res_type AS t, r.res_id AS i FROM resources r WHERE r.version > 1",
    );
    scope(&mut rids, "r", what);
    rids.push(" ORDER BY r.rid LIMIT ")
        .bind(Bind::BigInt(what.limit.max(1) as i64));
    let found: Vec<Found> = rids.load(tx.conn)?;
    let mut removed = 0u64;
    for f in found {
        let mut q = Sql::new("DELETE FROM resource_versions WHERE res_type = ");
        q.bind(Bind::Text(f.t))
            .push(" AND res_id = ")
            .bind(Bind::Text(f.i))
            .push(" AND seq <> (SELECT seq FROM resources WHERE rid = ")
            .bind(Bind::BigInt(f.rid))
            .push(")");
        removed += q.execute(tx.conn)? as u64;
    }
    Ok(removed)
}

fn deleted_resources(tx: &mut crate::backend::Tx<'_>, what: &Expunge) -> StoreResult<u64> {
    let mut rids = Sql::new(
        "SELECT r.rid AS rid, r.res_type AS t, r.res_id AS i FROM resources r WHERE r.deleted = ",
    );
    rids.bind(Bind::Bool(true));
    scope(&mut rids, "r", what);
    rids.push(" ORDER BY r.rid LIMIT ")
        .bind(Bind::BigInt(what.limit.max(1) as i64));
    let found: Vec<Found> = rids.load(tx.conn)?;
    let mut removed = 0u64;
    for f in &found {
        let mut q = Sql::new("DELETE FROM resource_versions WHERE res_type = ");
        q.bind(Bind::Text(f.t.clone()))
            .push(" AND res_id = ")
            .bind(Bind::Text(f.i.clone()));
        removed += q.execute(tx.conn)? as u64;
    }
    let all: Vec<i64> = found.iter().map(|f| f.rid).collect();
    for chunk in all.chunks(1000) {
        Sql::new("DELETE FROM resources WHERE rid")
            .in_ints(chunk)
            .execute(tx.conn)?;
    }
    Ok(removed)
}
