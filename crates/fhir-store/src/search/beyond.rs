//! Criteria that are not one search parameter's values: `_list` (a List's entries),
//! `_text`/`_content` (the full-text index), `_filter` (tests combined with AND, OR,
//! NOT) and Location `near` (a radius around a point).

use super::criteria::clause_sql;
use super::Compartment;
use crate::error::StoreResult;
use crate::sql::{Bind, Sql};

/// Kilometres per degree of latitude.
const KM_PER_DEGREE: f64 = 111.32;

/// Location `near`: positions within the radius, found by the index of latitudes and
/// longitudes (`near.latitude`, `near.longitude`) inside the bounding box, then the
/// circle by the equirectangular distance (arithmetic only, which both databases have:
/// exact enough within a few hundred kilometres away from the poles; no wrap at ±180°).
pub(super) fn near_sql(q: &mut Sql, r: &str, n: &fhir_search::NearClause) {
    let dlat = n.distance_km / KM_PER_DEGREE;
    let k = n.latitude.to_radians().cos().max(1e-6);
    let dlon = (dlat / k).min(360.0);
    q.push(&format!(
        "{r}.rid IN (SELECT na.rid FROM idx_number na JOIN idx_number nb ON nb.rid = na.rid \
         AND nb.param = 'near.longitude' WHERE na.res_type = 'Location' AND na.param = 'near.latitude' AND na.value BETWEEN "
    ));
    q.bind(Bind::Double(n.latitude - dlat))
        .push(" AND ")
        .bind(Bind::Double(n.latitude + dlat));
    q.push(" AND nb.value BETWEEN ")
        .bind(Bind::Double(n.longitude - dlon))
        .push(" AND ")
        .bind(Bind::Double(n.longitude + dlon));
    q.push(" AND (na.value - ").bind(Bind::Double(n.latitude));
    q.push(") * (na.value - ").bind(Bind::Double(n.latitude));
    q.push(") + (nb.value - ").bind(Bind::Double(n.longitude));
    q.push(") * (nb.value - ").bind(Bind::Double(n.longitude));
    q.push(") * ").bind(Bind::Double(k * k));
    q.push(" <= ").bind(Bind::Double(dlat * dlat)).push(")");
}

/// The `near` criterion of a search, if it has one (at the top level).
pub(super) fn near_of(clauses: &[fhir_search::Clause]) -> Option<&fhir_search::NearClause> {
    clauses.iter().find_map(|c| match c {
        fhir_search::Clause::Near(n) => Some(n),
        _ => None,
    })
}

/// The order of a `near` search without `_sort`: by the (equirectangular) distance from
/// the point, closest first, then `rid`; keyset paging works on it as on any sort.
pub(super) fn distance_order(n: &fhir_search::NearClause) -> Vec<super::sort::SortColumn> {
    let k = n.latitude.to_radians().cos().max(1e-6);
    let mut d = Sql::new("COALESCE((SELECT MIN((na.value - ");
    d.bind(Bind::Double(n.latitude))
        .push(") * (na.value - ")
        .bind(Bind::Double(n.latitude))
        .push(") + (nb.value - ")
        .bind(Bind::Double(n.longitude))
        .push(") * (nb.value - ")
        .bind(Bind::Double(n.longitude))
        .push(") * ")
        .bind(Bind::Double(k * k));
    d.push(
        ") FROM idx_number na JOIN idx_number nb ON nb.rid = na.rid AND nb.param = 'near.longitude' \
         WHERE na.rid = r.rid AND na.param = 'near.latitude'), 0.0)",
    );
    vec![
        super::sort::SortColumn::of(d, false, super::sort::KeyKind::Real),
        super::sort::SortColumn::new("r.rid", false, super::sort::KeyKind::Int),
    ]
}

/// `_filter`: its tests, each compiled as the criterion it is and checked per
/// candidate, combined with AND, OR and NOT.
pub(super) fn filter_sql(
    q: &mut Sql,
    r: &str,
    expr: &fhir_search::filter::FilterExpr,
    depth: usize,
    scope: Option<&Compartment>,
) -> StoreResult<()> {
    use fhir_search::filter::FilterExpr as F;
    match expr {
        F::Test(c) => clause_sql(q, r, c, depth, false, scope),
        F::Not(x) => {
            q.push("NOT (");
            filter_sql(q, r, x, depth, scope)?;
            q.push(")");
            Ok(())
        }
        F::And(xs) | F::Or(xs) => {
            let joint = if matches!(expr, F::And(_)) {
                " AND "
            } else {
                " OR "
            };
            q.push("(");
            for (i, x) in xs.iter().enumerate() {
                if i > 0 {
                    q.push(joint);
                }
                filter_sql(q, r, x, depth, scope)?;
            }
            q.push(")");
            Ok(())
        }
    }
}

/// `_text` / `_content`: the resources whose narrative (or whole text) matches the
/// query, through the full-text index (FTS5 on SQLite, GIN over `tsvector`s on
/// PostgreSQL; the query syntax — words, "phrases", OR — reads the same in both).
pub(super) fn text_sql(q: &mut Sql, r: &str, t: &fhir_search::TextClause) {
    let column = if t.content { "content" } else { "narrative" };
    q.push(&format!("{r}.rid IN ("));
    q.push_per_backend(
        &format!("SELECT rowid FROM idx_fulltext WHERE {column} MATCH "),
        &format!("SELECT rid FROM idx_fulltext WHERE {column} @@ websearch_to_tsquery('english', "),
    );
    q.bind(Bind::Text(t.query.clone()));
    q.push_per_backend(")", "))");
}

/// `_list=[id]`: the current resources the List's `entry.item`s refer to.
pub(super) fn list_sql(q: &mut Sql, r: &str, list_id: &str) {
    q.push(&format!(
        "{r}.rid IN (SELECT lt.rid FROM resources l JOIN idx_reference lx ON lx.rid = l.rid \
         AND lx.param = 'item' JOIN resources lt ON lt.res_type = lx.target_type \
         AND lt.res_id = lx.target_id WHERE l.res_type = 'List' AND l.deleted = "
    ));
    q.bind(Bind::Bool(false))
        .push(" AND l.res_id = ")
        .bind(Bind::Text(list_id.to_string()))
        .push(")");
}
