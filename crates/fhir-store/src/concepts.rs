//! Large CodeSystems as rows (fhir-model `terminology::rows`): written with a
//! CodeSystem's other index rows in the same transaction (and removed with them), and
//! read by the terminology operations — a system's header, the concepts named by code,
//! their parents and children, and pages of its concepts in document order narrowed by
//! a `filter` and `activeOnly` — so that a code system of hundreds of thousands of
//! concepts is never read whole to answer one of them.

use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::QueryableByName;
use fhir_model::terminology::rows::ConceptRows;

use crate::backend::Tx;
use crate::error::StoreResult;
use crate::sql::{Bind, CountRow, Sql};
use crate::writes::{chunks, insert_into, PendingIndex};
use crate::Store;

const TABLES: [&str; 3] = ["tx_code_system", "tx_concept", "tx_concept_parent"];

/// Replaces the concept rows of the CodeSystems of a flush.
pub(crate) fn write(tx: &mut Tx<'_>, batch: &[PendingIndex]) -> StoreResult<()> {
    let systems = batch.iter().filter(|p| p.res_type == "CodeSystem");
    let replaced: Vec<i64> = systems
        .clone()
        .filter(|p| p.replace)
        .map(|p| p.rid)
        .collect();
    if !replaced.is_empty() {
        for table in TABLES {
            Sql::new(&format!("DELETE FROM {table} WHERE rid"))
                .in_ints(&replaced)
                .execute(tx.conn)?;
        }
    }
    for p in systems {
        if let Some(rows) = &p.values.concepts {
            insert(tx, p.rid, rows)?;
        }
    }
    Ok(())
}

fn insert(tx: &mut Tx<'_>, rid: i64, rows: &ConceptRows) -> StoreResult<()> {
    let mut q = insert_into();
    q.push("tx_code_system (rid, url, version, concepts, header) VALUES (")
        .bind(Bind::BigInt(rid))
        .push(", ")
        .bind(Bind::Text(rows.url.clone()))
        .push(", ")
        .bind(Bind::OptText(rows.version.clone()))
        .push(", ")
        .bind(Bind::BigInt(rows.concepts.len() as i64))
        .push(", ")
        .bind(Bind::Text(rows.header.clone()))
        .push(")");
    q.execute(tx.conn)?;
    let numbered: Vec<_> = rows.concepts.iter().enumerate().collect();
    for chunk in chunks(&numbered) {
        let mut q = insert_into();
        q.push("tx_concept (rid, ord, code, code_key, display, words, inactive, not_selectable, concept) VALUES ");
        q.prepared();
        for (i, (ord, c)) in chunk.iter().enumerate() {
            q.push(if i > 0 { ", (" } else { "(" });
            for (j, b) in [
                Bind::BigInt(rid),
                Bind::BigInt(*ord as i64),
                Bind::Text(c.code.clone()),
                Bind::Text(c.code.to_lowercase()),
                Bind::OptText(c.display.clone()),
                Bind::Text(c.words.clone()),
                Bind::Bool(c.inactive),
                Bind::Bool(c.not_selectable),
                Bind::Text(c.json.clone()),
            ]
            .into_iter()
            .enumerate()
            {
                q.push(if j > 0 { ", " } else { "" }).bind(b);
            }
            q.push(")");
        }
        q.execute(tx.conn)?;
    }
    for chunk in chunks(&rows.links) {
        let mut q = insert_into();
        q.push("tx_concept_parent (rid, code, parent) VALUES ");
        q.prepared();
        for (i, (code, parent)) in chunk.iter().enumerate() {
            q.push(if i > 0 { ", (" } else { "(" })
                .bind(Bind::BigInt(rid))
                .push(", ")
                .bind(Bind::Text(code.clone()))
                .push(", ")
                .bind(Bind::Text(parent.clone()))
                .push(")");
        }
        q.execute(tx.conn)?;
    }
    Ok(())
}

/// A current CodeSystem kept as rows.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct RowSystem {
    #[diesel(sql_type = BigInt)]
    pub rid: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub version: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub concepts: i64,
    /// The CodeSystem's JSON without its concepts.
    #[diesel(sql_type = Text)]
    pub header: String,
}

/// One concept of a [`RowSystem`].
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct RowConcept {
    #[diesel(sql_type = Text)]
    pub code: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub display: Option<String>,
    /// The concept's JSON without its nested concepts and hierarchy properties.
    #[diesel(sql_type = Text)]
    pub concept: String,
}

/// A [`RowConcept`] with the number of concepts its query keeps in all.
#[derive(QueryableByName)]
struct CountedConcept {
    #[diesel(sql_type = Text)]
    code: String,
    #[diesel(sql_type = Nullable<Text>)]
    display: Option<String>,
    #[diesel(sql_type = Text)]
    concept: String,
    #[diesel(sql_type = BigInt)]
    total: i64,
}

/// A link of the hierarchy: `code` is directly under `parent`.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct RowLink {
    #[diesel(sql_type = Text)]
    pub code: String,
    #[diesel(sql_type = Text)]
    pub parent: String,
}

/// Which concepts of a system a page holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConceptFilter {
    /// Concepts whose code starts with this text, or whose display has a word starting
    /// with each of its words (case-insensitive).
    pub text: Option<String>,
    /// Leave inactive concepts out.
    pub active_only: bool,
    /// Only the concepts at or under a code.
    pub below: Option<Below>,
}

/// The concepts under `code` (following every parent link), and `code` itself with
/// `include_self` (`is-a`; without it, `descendent-of`). Nothing when the system does
/// not have `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Below {
    pub code: String,
    pub include_self: bool,
}

/// Most codes one statement names.
const CODES_PER_QUERY: usize = 500;

impl Store {
    /// The current CodeSystem with `url` (and `version`) written last — as a search by
    /// `url` and `version` sorted by `-_lastUpdated` finds it — when it is kept as rows.
    pub fn row_system(&self, url: &str, version: Option<&str>) -> StoreResult<Option<RowSystem>> {
        self.db.read(|tx| {
            let mut q = Sql::new(
                "SELECT s.rid, s.version, s.concepts, s.header FROM tx_code_system s \
                 WHERE s.rid = (SELECT r.rid FROM idx_uri u JOIN resources r ON r.rid = u.rid \
                 WHERE u.res_type = 'CodeSystem' AND u.param = 'url' AND u.uri = ",
            );
            q.bind(Bind::Text(url.to_string()))
                .push(" AND r.version > 0 AND NOT r.deleted");
            if let Some(v) = version {
                q.push(
                    " AND EXISTS (SELECT 1 FROM idx_token t WHERE t.rid = r.rid \
                     AND t.res_type = 'CodeSystem' AND t.param = 'version' AND t.code = ",
                )
                .bind(Bind::Text(v.to_string()))
                .push(")");
            }
            q.push(" ORDER BY r.last_updated DESC, r.seq DESC LIMIT 1)");
            Ok(q.load(tx.conn)?.pop())
        })
    }

    /// The concepts of system `rid` whose code is one of `codes`, ignoring case (the
    /// caller tells which it takes), in document order within each
    /// [`CODES_PER_QUERY`] codes.
    pub fn concepts_by_code(&self, rid: i64, codes: &[String]) -> StoreResult<Vec<RowConcept>> {
        let keys: Vec<String> = codes.iter().map(|c| c.to_lowercase()).collect();
        self.db.read(|tx| {
            let mut out = Vec::new();
            for chunk in keys.chunks(CODES_PER_QUERY) {
                let mut q = Sql::new("SELECT code, display, concept FROM tx_concept WHERE rid = ");
                q.bind(Bind::BigInt(rid))
                    .push(" AND code_key")
                    .in_list(chunk)
                    .push(" ORDER BY ord");
                out.extend(q.load::<RowConcept>(tx.conn)?);
            }
            Ok(out)
        })
    }

    /// The links from `codes` to their parents (`up`), or from their children to them.
    pub fn concept_links(&self, rid: i64, codes: &[String], up: bool) -> StoreResult<Vec<RowLink>> {
        let column = if up { "code" } else { "parent" };
        self.db.read(|tx| {
            let mut out = Vec::new();
            for chunk in codes.chunks(CODES_PER_QUERY) {
                let mut q = Sql::new("SELECT code, parent FROM tx_concept_parent WHERE rid = ");
                q.bind(Bind::BigInt(rid))
                    .push(&format!(" AND {column}"))
                    .in_list(chunk);
                out.extend(q.load::<RowLink>(tx.conn)?);
            }
            Ok(out)
        })
    }

    /// A page of system `rid`'s concepts that `filter` keeps, in document order.
    pub fn concept_page(
        &self,
        rid: i64,
        filter: &ConceptFilter,
        offset: usize,
        limit: usize,
    ) -> StoreResult<Vec<RowConcept>> {
        self.db.read(|tx| {
            let mut q = select(rid, filter, "c.code, c.display, c.concept");
            if *filter == ConceptFilter::default() {
                // Unfiltered, `ord` numbers the concepts from 0: the page is a range of
                // the primary key, however deep.
                q.push(" AND c.ord >= ").bind(Bind::BigInt(clamped(offset)));
                q.push(" ORDER BY c.ord LIMIT ")
                    .bind(Bind::BigInt(clamped(limit)));
                return q.load(tx.conn);
            }
            q.push(" ORDER BY c.ord LIMIT ")
                .bind(Bind::BigInt(clamped(limit)))
                .push(" OFFSET ")
                .bind(Bind::BigInt(clamped(offset)));
            q.load(tx.conn)
        })
    }

    /// [`Store::concept_page`] with how many concepts `filter` keeps in all, counted by
    /// the same statement (one scan of a text filter, one walk of a branch); the count
    /// is `None` when the page is empty (past the end).
    pub fn concept_page_counted(
        &self,
        rid: i64,
        filter: &ConceptFilter,
        offset: usize,
        limit: usize,
    ) -> StoreResult<(Vec<RowConcept>, Option<usize>)> {
        self.db.read(|tx| {
            let what = "c.code, c.display, c.concept, COUNT(*) OVER () AS total";
            let mut q = select(rid, filter, what);
            q.push(" ORDER BY c.ord LIMIT ")
                .bind(Bind::BigInt(clamped(limit)))
                .push(" OFFSET ")
                .bind(Bind::BigInt(clamped(offset)));
            let rows = q.load::<CountedConcept>(tx.conn)?;
            let total = rows.first().map(|r| r.total.max(0) as usize);
            let concepts = rows
                .into_iter()
                .map(|r| RowConcept {
                    code: r.code,
                    display: r.display,
                    concept: r.concept,
                })
                .collect();
            Ok((concepts, total))
        })
    }

    /// How many of system `rid`'s concepts `filter` keeps.
    pub fn concept_count(&self, rid: i64, filter: &ConceptFilter) -> StoreResult<usize> {
        self.db.read(|tx| {
            let q = if *filter == ConceptFilter::default() {
                let mut q = Sql::new("SELECT concepts AS n FROM tx_code_system WHERE rid = ");
                q.bind(Bind::BigInt(rid));
                q
            } else {
                select(rid, filter, "COUNT(*) AS n")
            };
            let n = q.load::<CountRow>(tx.conn)?.first().map_or(0, |r| r.n);
            Ok(n.max(0) as usize)
        })
    }
}

/// `SELECT what` over system `rid`'s concepts `c` that `filter` keeps (as
/// fhir-terminology's `$expand` and fhir-model's `is-a` filter them in memory). A
/// branch is walked down its parent links from its code (`UNION`, not `ALL`: each code
/// once, so a cycle of links ends) and its concepts read by code.
fn select(rid: i64, filter: &ConceptFilter, what: &str) -> Sql {
    let mut q = Sql::new("");
    match &filter.below {
        Some(below) => {
            q.push(
                "WITH RECURSIVE below(code) AS (SELECT code FROM tx_concept \
                 WHERE rid = ",
            )
            .bind(Bind::BigInt(rid))
            .push(" AND code = ")
            .bind(Bind::Text(below.code.clone()))
            .push(
                " UNION SELECT p.code FROM tx_concept_parent p \
                 JOIN below b ON p.parent = b.code WHERE p.rid = ",
            )
            .bind(Bind::BigInt(rid))
            // `CROSS JOIN`: SQLite reads the branch's codes first and looks each up,
            // instead of walking every concept in order and checking it.
            .push(&format!(
                ") SELECT {what} FROM below b CROSS JOIN tx_concept c WHERE c.rid = "
            ))
            .bind(Bind::BigInt(rid))
            .push(" AND c.code = b.code");
            if !below.include_self {
                q.push(" AND c.code <> ")
                    .bind(Bind::Text(below.code.clone()));
            }
        }
        None => {
            q.push(&format!("SELECT {what} FROM tx_concept c WHERE c.rid = "))
                .bind(Bind::BigInt(rid));
        }
    }
    narrow(&mut q, filter);
    q
}

/// The conditions of `filter`'s `activeOnly` and text on concepts `c`.
fn narrow(q: &mut Sql, filter: &ConceptFilter) {
    if filter.active_only {
        q.push(" AND NOT c.inactive");
    }
    let Some(text) = filter.text.as_deref().filter(|t| !t.trim().is_empty()) else {
        return;
    };
    let words = fhir_model::terminology::rows::filter_words(text);
    if words.is_empty() {
        // No word to look for: every display has all of them.
        return;
    }
    q.push(" AND (c.code_key LIKE ")
        .bind(Bind::Text(format!(
            "{}%",
            crate::search::like_escape(&text.to_lowercase())
        )))
        .push(" ESCAPE '\\' OR (");
    // Words hold only letters and digits: nothing to escape.
    for (i, w) in words.iter().enumerate() {
        q.push(if i > 0 { " AND " } else { "" })
            .push("c.words LIKE ")
            .bind(Bind::Text(format!("% {w}%")));
    }
    q.push("))");
}

/// A count as a bind (one past `i64::MAX` is as good as infinite).
fn clamped(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
