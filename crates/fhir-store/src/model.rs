//! What the store takes and gives: stored versions, index rows, conditions.

use diesel::sql_types::{BigInt, Bool, Text};
use diesel::{Queryable, QueryableByName, Selectable};

/// One stored version of a resource.
#[derive(Debug, Clone, PartialEq, QueryableByName, Queryable, Selectable)]
#[diesel(table_name = crate::schema::resource_versions)]
pub struct StoredResource {
    #[diesel(sql_type = BigInt)]
    pub seq: i64,
    #[diesel(sql_type = Text)]
    pub res_type: String,
    #[diesel(sql_type = Text)]
    pub res_id: String,
    #[diesel(sql_type = BigInt)]
    pub version: i64,
    /// Milliseconds since the epoch.
    #[diesel(sql_type = BigInt)]
    pub last_updated: i64,
    #[diesel(sql_type = Bool)]
    pub deleted: bool,
    /// `POST`, `PUT`, `PATCH` or `DELETE`.
    #[diesel(sql_type = Text)]
    pub method: String,
    /// The resource JSON as written (empty for a deletion).
    #[diesel(sql_type = Text)]
    pub content: String,
}

impl StoredResource {
    /// The weak ETag of this version: `W/"3"`.
    pub fn etag(&self) -> String {
        format!("W/\"{}\"", self.version)
    }
    /// `Patient/123/_history/3`
    pub fn versioned_path(&self) -> String {
        format!(
            "{}/{}/_history/{}",
            self.res_type, self.res_id, self.version
        )
    }
}

pub(crate) const VERSION_COLUMNS: &str =
    "v.seq, v.res_type, v.res_id, v.version, v.last_updated, v.deleted, v.method, v.content";

pub use fhir_search::IndexValues;

/// Computes the search index values of a resource about to be stored.
pub trait Indexer: Send + Sync {
    fn index(&self, resource_type: &str, resource: &serde_json::Value) -> IndexValues;
}

/// An indexer that indexes nothing.
pub struct NoIndex;

impl Indexer for NoIndex {
    fn index(&self, _: &str, _: &serde_json::Value) -> IndexValues {
        IndexValues::default()
    }
}

/// Indexes every search parameter of the registry (FHIRPath extraction), with
/// `full_text` the texts `_text` and `_content` search, and a large CodeSystem's
/// concepts as rows (`concepts.rs`).
pub struct SearchIndexer {
    pub registry: &'static fhir_search::SearchRegistry,
    pub full_text: bool,
}

impl Indexer for SearchIndexer {
    fn index(&self, resource_type: &str, resource: &serde_json::Value) -> IndexValues {
        let mut values = fhir_search::extract(self.registry, resource_type, resource);
        if self.full_text {
            values.text = Some(fhir_search::fulltext::full_text(resource));
        }
        if resource_type == "CodeSystem" {
            values.concepts = fhir_model::terminology::rows::concept_rows(resource).map(Box::new);
        }
        values
    }
}

/// The outcome of a create.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    New(StoredResource),
    /// A conditional create found this resource: nothing was written.
    Existing(StoredResource),
}

/// The outcome of an update or patch.
#[derive(Debug, Clone, PartialEq)]
pub struct Updated {
    pub stored: StoredResource,
    /// True if the resource did not exist (or was deleted) before.
    pub created: bool,
}

/// The outcome of a delete.
#[derive(Debug, Clone, PartialEq)]
pub enum Deleted {
    /// A deletion version was written.
    Now(StoredResource),
    /// Already deleted: nothing was written.
    Already(StoredResource),
    /// Never existed (or no conditional match): nothing was written.
    NotFound,
}

/// Which versions a history covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryScope {
    System,
    Type(String),
    Instance(String, String),
}

/// Where a history page starts: versions older than, or newer than, a `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageCursor {
    Before(i64),
    After(i64),
}

/// A history request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    pub scope: HistoryScope,
    /// Versions written at or after this instant (ms).
    pub since: Option<i64>,
    /// Versions current at this instant (ms).
    pub at: Option<i64>,
    pub count: usize,
    pub cursor: Option<PageCursor>,
    /// Versions counted at most for the total (`--total-threshold`): past it the total
    /// is left out, so a page never costs in proportion to the whole history.
    pub total_up_to: usize,
}

/// A page of history, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    pub entries: Vec<StoredResource>,
    /// How many versions match: exact up to [`HistoryQuery::total_up_to`], else `None`.
    pub total: Option<i64>,
    /// More versions are older than the last entry.
    pub has_older: bool,
    /// More versions are newer than the first entry.
    pub has_newer: bool,
}
