//! Reads for Bulk Data export (`$export`) and Patient `$everything`: keyset pages (by
//! `rid`) over current resources restricted by type, `_since`, compartment membership
//! and `_typeFilter` searches, so an export reads the database batch by batch and never
//! holds more than one page. The jobs themselves are rows of [`crate::jobs`].

use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;
use fhir_search::Clause;

use crate::backend::{BackendKind, Tx};
use crate::error::StoreResult;
use crate::model::{StoredResource, VERSION_COLUMNS};
use crate::search::{clause_sql, MatchRow};
use crate::sql::{Bind, Sql};
use crate::Store;

/// Who is exported: everything, or the members of a compartment (e.g. Patient).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Population {
    All,
    Compartment {
        /// The compartment's resource type (`Patient`).
        resource_type: String,
        /// Only these compartment owners; `None`: all of them.
        ids: Option<Vec<String>>,
        /// Per member type, the reference parameters linking it to its owner.
        params: Vec<(String, Vec<String>)>,
    },
}

/// What one export (or `$everything`) reads.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportQuery {
    /// Resource types to read; empty: all.
    pub types: Vec<String>,
    /// Only resources changed after this instant (ms).
    pub since: Option<i64>,
    pub population: Population,
    /// `_typeFilter`: per type, alternative searches (any may match), each a list of
    /// criteria (all must match). Types without an entry are not filtered.
    pub filters: Vec<(String, Vec<Vec<Clause>>)>,
    /// Only resources whose state (as of `at`) last changed at or before this (ms).
    pub until: Option<i64>,
    /// The export's transaction time (ms): resources are read as they were then — a
    /// resource changed later is read in its version of that instant, one created
    /// later not at all. `None`: as they are now.
    pub at: Option<i64>,
}

impl Store {
    /// Up to `limit` current resources matching `query` with `rid > after`, in `rid`
    /// order, with their `rid` (the cursor of the next page).
    pub fn export_page(
        &self,
        query: &ExportQuery,
        after: i64,
        limit: usize,
    ) -> StoreResult<Vec<(i64, StoredResource)>> {
        self.db.read(|tx| {
            let q = export_sql(query, after, limit, tx.kind)?;
            without_jit(tx, |tx| load_rows(tx, &q))
        })
    }

    /// Up to `limit` resources deleted after `query.since` (and, with `query.at`, at or
    /// before it), with `rid > after`, in `rid` order: `(rid, type, id)`. For a
    /// compartment population only its owners (deleted members no longer say whose
    /// they were: their index rows are gone).
    pub fn export_deleted(
        &self,
        query: &ExportQuery,
        after: i64,
        limit: usize,
    ) -> StoreResult<Vec<(i64, String, String)>> {
        let Some(since) = query.since else {
            return Ok(Vec::new());
        };
        let mut q = Sql::new(
            "SELECT r.rid AS rid, r.res_type AS t, r.res_id AS i FROM resources r \
             JOIN resource_versions v ON v.seq = r.seq WHERE v.deleted = ",
        );
        q.bind(Bind::Bool(true))
            .push(" AND r.rid > ")
            .bind(Bind::BigInt(after));
        q.push(" AND v.last_updated > ").bind(Bind::BigInt(since));
        if let Some(at) = query.at {
            q.push(" AND v.last_updated <= ").bind(Bind::BigInt(at));
        }
        if !query.types.is_empty() {
            q.push(" AND r.res_type").in_list(&query.types);
        }
        if let Population::Compartment {
            resource_type, ids, ..
        } = &query.population
        {
            q.push(" AND r.res_type = ")
                .bind(Bind::Text(resource_type.clone()));
            if let Some(ids) = ids {
                q.push(" AND r.res_id").in_list(ids);
            }
        }
        q.push(" ORDER BY r.rid LIMIT ")
            .bind(Bind::BigInt(limit.max(1) as i64));
        let rows: Vec<DeletedRow> = self.db.read(|tx| q.load(tx.conn))?;
        Ok(rows.into_iter().map(|r| (r.rid, r.t, r.i)).collect())
    }

    /// The current resources of `types` that the resources `rids` refer to (for
    /// `$everything`: what compartment members point at).
    pub fn referenced(
        &self,
        rids: &[i64],
        types: &[String],
    ) -> StoreResult<Vec<(i64, StoredResource)>> {
        if rids.is_empty() || types.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = Sql::new(&format!(
            "SELECT r.rid, {VERSION_COLUMNS} FROM resources r JOIN resource_versions v ON v.seq = r.seq \
             WHERE r.version > 0 AND r.deleted = "
        ));
        q.bind(Bind::Bool(false))
            .push(" AND r.res_type")
            .in_list(types);
        q.push(
            " AND r.rid IN (SELECT t.rid FROM idx_reference x JOIN resources t \
                ON t.res_type = x.target_type AND t.res_id = x.target_id WHERE x.rid",
        )
        .in_ints(rids)
        .push(") ORDER BY r.rid");
        self.db.read(|tx| load_rows(tx, &q))
    }
}

#[derive(QueryableByName)]
struct DeletedRow {
    #[diesel(sql_type = BigInt)]
    rid: i64,
    #[diesel(sql_type = Text)]
    t: String,
    #[diesel(sql_type = Text)]
    i: String,
}

/// Runs `f` with PostgreSQL's JIT compilation off, for statements whose population
/// test has an alternative per compartment member type: their estimated cost passes
/// `jit_above_cost`, and compiling the expression tree took 1.8 s of a 2 s page of one
/// patient's `$everything` (a page of a bulk export paid the same). Searches keep
/// JIT, which helps those that sort or filter many rows.
fn without_jit<T>(
    tx: &mut Tx<'_>,
    f: impl FnOnce(&mut Tx<'_>) -> StoreResult<T>,
) -> StoreResult<T> {
    use diesel::connection::SimpleConnection;
    if tx.kind != BackendKind::Postgres {
        return f(tx);
    }
    tx.conn.batch_execute("SET jit = off")?;
    let out = f(tx);
    // Back to the session's setting before the connection serves another request.
    tx.conn.batch_execute("RESET jit")?;
    out
}

fn load_rows(tx: &mut Tx<'_>, q: &Sql) -> StoreResult<Vec<(i64, StoredResource)>> {
    Ok(q.load::<MatchRow>(tx.conn)?
        .into_iter()
        .map(|r| (r.rid, r.version))
        .collect())
}

fn export_sql(
    query: &ExportQuery,
    after: i64,
    limit: usize,
    kind: BackendKind,
) -> StoreResult<Sql> {
    let mut q = Sql::new(&format!(
        "SELECT r.rid, {VERSION_COLUMNS} FROM resources r "
    ));
    match query.at {
        Some(at) => {
            // The version current at `at`: the current one unless changed since. The
            // criteria below read the current index (exact for all the rows not changed
            // during the export).
            q.push("JOIN resource_versions v ON v.seq = CASE WHEN r.last_updated <= ")
                .bind(Bind::BigInt(at));
            q.push(
                " THEN r.seq ELSE (SELECT MAX(o.seq) FROM resource_versions o \
                 WHERE o.res_type = r.res_type AND o.res_id = r.res_id AND o.last_updated <= ",
            )
            .bind(Bind::BigInt(at))
            .push(") END WHERE v.deleted = ")
            .bind(Bind::Bool(false));
        }
        None => {
            q.push("JOIN resource_versions v ON v.seq = r.seq WHERE r.deleted = ")
                .bind(Bind::Bool(false));
        }
    }
    q.push(" AND r.rid > ").bind(Bind::BigInt(after));
    q.push(" AND r.version > 0");
    if !query.types.is_empty() {
        q.push(" AND r.res_type").in_list(&query.types);
    }
    if let Some(since) = query.since {
        q.push(" AND v.last_updated > ").bind(Bind::BigInt(since));
    }
    if let Some(until) = query.until {
        q.push(" AND v.last_updated <= ").bind(Bind::BigInt(until));
    }
    if let Population::Compartment {
        resource_type,
        ids,
        params,
    } = &query.population
    {
        // Every owner's members (type-level `$everything`, a Patient-level export):
        // on PostgreSQL each membership test ends with `OFFSET 0`, so that it is
        // checked per row through the reference index as the walk in `rid` order
        // meets it. Otherwise PostgreSQL hashes, for each member type the page meets,
        // every reference row of that type's parameters (a scan of the whole reference
        // table each): 40 ms for a page of 50 over 10 Synthea patients, 1.4 ms
        // fenced. With owners named, the hashed lists are theirs alone, and small.
        let fence = match (kind, ids) {
            (BackendKind::Postgres, None) => " OFFSET 0",
            _ => "",
        };
        q.push(" AND (");
        population_sql(&mut q, resource_type, ids.as_deref(), params, fence);
        q.push(")");
    }
    for (res_type, alternatives) in &query.filters {
        q.push(" AND (r.res_type <> ")
            .bind(Bind::Text(res_type.clone()));
        for clauses in alternatives {
            q.push(" OR (1 = 1");
            for c in clauses {
                q.push(" AND ");
                clause_sql(&mut q, "r", c, 0, false, None)?;
            }
            q.push(")");
        }
        q.push(")");
    }
    q.push(" ORDER BY r.rid LIMIT ")
        .bind(Bind::BigInt(limit.max(1) as i64));
    // The members of every owner or of one (`Patient/$everything`,
    // `Patient/[id]/$everything`), of every type, unfiltered: one of a few texts (with
    // or without `_since`), kept prepared. Planning its alternative per member type
    // took 4.5–9 ms of each page on PostgreSQL.
    if let Population::Compartment { ids, .. } = &query.population {
        let few = ids.as_ref().is_none_or(|ids| ids.len() == 1);
        if few && query.types.is_empty() && query.filters.is_empty() {
            q.prepared();
        }
    }
    Ok(q)
}

/// The compartment owners themselves, or a member linked to one through its parameters;
/// for the Patient compartment also the Provenance whose `target` is one of them (the
/// Bulk Data IG's export SHALL include it).
fn population_sql(
    q: &mut Sql,
    owner_type: &str,
    ids: Option<&[String]>,
    params: &[(String, Vec<String>)],
    fence: &str,
) {
    member_sql(q, "r", "c", owner_type, ids, params, fence);
    if owner_type == "Patient" {
        q.push(
            " OR (r.res_type = 'Provenance' AND EXISTS (SELECT 1 FROM idx_reference pv \
             JOIN resources pt ON pt.res_type = pv.target_type AND pt.res_id = pv.target_id \
             WHERE pv.rid = r.rid AND pv.param = 'target' AND (",
        );
        // The target is a patient, or refers to one through a compartment parameter
        // (of any member type: the ids are bound once, not once per type).
        q.push("(pt.res_type = 'Patient'");
        if let Some(ids) = ids {
            q.push(" AND pt.res_id").in_list(ids);
        }
        let mut links: Vec<String> = params.iter().flat_map(|(_, l)| l.iter().cloned()).collect();
        links.sort();
        links.dedup();
        q.push(") OR EXISTS (SELECT 1 FROM idx_reference pc WHERE pc.rid = pt.rid AND pc.target_type = 'Patient' AND pc.param")
            .in_list(&links);
        if let Some(ids) = ids {
            q.push(" AND pc.target_id").in_list(ids);
        }
        // The fences end the `pc` and then the `pv` sub-query.
        q.push(fence).push("))").push(fence).push("))");
    }
}

/// The resource at alias `r` is a compartment owner, or a member linked to one (its
/// reference rows under alias `c`); `fence` ends each sub-query (`export_sql`).
fn member_sql(
    q: &mut Sql,
    r: &str,
    c: &str,
    owner_type: &str,
    ids: Option<&[String]>,
    params: &[(String, Vec<String>)],
    fence: &str,
) {
    q.push(&format!("({r}.res_type = "))
        .bind(Bind::Text(owner_type.into()));
    if let Some(ids) = ids {
        q.push(&format!(" AND {r}.res_id")).in_list(ids);
    }
    q.push(")");
    for (res_type, links) in params.iter().filter(|(_, l)| !l.is_empty()) {
        q.push(&format!(" OR ({r}.res_type = "))
            .bind(Bind::Text(res_type.clone()));
        q.push(&format!(
            " AND EXISTS (SELECT 1 FROM idx_reference {c} WHERE {c}.rid = {r}.rid AND {c}.param"
        ));
        q.in_list(links);
        q.push(&format!(" AND {c}.target_type = "))
            .bind(Bind::Text(owner_type.into()));
        if let Some(ids) = ids {
            q.push(&format!(" AND {c}.target_id")).in_list(ids);
        }
        q.push(fence).push("))");
    }
}
