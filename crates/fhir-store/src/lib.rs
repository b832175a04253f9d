//! Versioned storage of FHIR resources on SQLite (embedded default) or PostgreSQL
//! (production), through diesel and an r2d2 pool.
//!
//! Every version of every resource is kept in `resource_versions` with the JSON exactly
//! as the server wrote it; `resources` points each logical resource at its current
//! version; index tables (`idx_*`) hold the search values of current versions and are
//! written in the same transaction as the version. All operations are blocking: call
//! them off the async executor. Writes are all-or-nothing ([`backend::Database::write`]).

pub mod audit;
pub mod backend;
pub mod cache;
mod cancel;
pub mod changes;
mod checkpoint;
pub mod concepts;
mod deadline;
pub mod error;
pub mod export;
mod expunge;
pub mod idempotency;
mod jobs;
mod meta;
pub mod model;
pub mod nodes;
pub mod observe;
mod pool;
mod prepared;
mod put_many;
mod reads;
pub mod recent;
mod schema;
pub mod search;
pub mod sql;
mod stats;
pub mod tenants;
pub mod time;
mod write_many;
mod writes;

use std::sync::Arc;

use fhir_search::Clause;
use serde_json::Value;

pub use export::{ExportQuery, Population};
pub use expunge::Expunge;
pub use jobs::{ExportJob, Job, JobKind, JobUpdate};
pub use meta::MetaSummary;
pub use put_many::NewResource;
pub use search::{Compartment, KeyValue, SearchCursor, SearchPage, SearchRequest, Total};

pub use audit::{AuditContext, AuditExpander, AuditHook, AuditReport, WriteRecord};
pub use backend::{BackendKind, PoolOptions};
pub use error::{StoreError, StoreResult};
pub use model::{
    Created, Deleted, HistoryPage, HistoryQuery, HistoryScope, IndexValues, Indexer, NoIndex,
    PageCursor, SearchIndexer, StoredResource, Updated,
};
pub use pool::SQLITE_MMAP_MIB;

use backend::{Database, Tx};
use writes::{flush_index, lock_current, write_version, Current, PendingIndex};

/// Preconditions of an update, from `If-Match` / `If-None-Match`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Precondition {
    /// The version the client last saw; the write fails unless it is current.
    pub if_match: Option<i64>,
    /// `If-None-Match: *`: only create, never overwrite.
    pub if_none_match_any: bool,
}

/// The store: a database and the indexer that computes search values on write.
pub struct Store {
    db: Arc<Database>,
    indexer: Arc<dyn Indexer>,
    /// Builds the AuditEvents of audited writes (see [`audit`]); none: no audit.
    audit: Option<Arc<AuditHook>>,
    audit_expander: Option<Arc<AuditExpander>>,
    /// Every write is also recorded in the change feed ([`changes`]).
    change_feed: bool,
}

impl Store {
    /// Opens (and migrates) `sqlite://PATH` or `postgres://…`.
    pub fn open(url: &str, options: &PoolOptions, indexer: Arc<dyn Indexer>) -> StoreResult<Store> {
        Ok(Store {
            db: Arc::new(Database::open(url, options)?),
            indexer,
            audit: None,
            audit_expander: None,
            change_feed: false,
        })
    }

    /// Records every write in the change feed that subscriptions read ([`changes`]).
    pub fn set_change_feed(&mut self, on: bool) {
        self.change_feed = on;
    }

    /// Sets how logged events become AuditEvent resources when projected (by default
    /// the logged JSON is the resource).
    pub fn set_audit_expander(&mut self, expander: Arc<AuditExpander>) {
        self.audit_expander = Some(expander);
    }

    /// Records every write made under an [`audit::with_context`] as AuditEvents built
    /// by `hook`, in the writing transaction.
    pub fn set_audit_hook(&mut self, hook: Arc<AuditHook>) {
        self.audit = Some(hook);
    }

    pub fn kind(&self) -> BackendKind {
        self.db.kind()
    }

    /// The request recorded under an idempotency key, if any ([`idempotency`]).
    pub fn idempotent(&self, key: &str) -> StoreResult<Option<idempotency::Recorded>> {
        self.db.read(|tx| idempotency::lookup(tx, key))
    }

    /// Checks the database answers.
    pub fn ping(&self) -> StoreResult<()> {
        self.db.read(|tx| {
            sql::Sql::new("SELECT CAST(1 AS BIGINT) AS n").load::<sql::CountRow>(tx.conn)?;
            Ok(())
        })
    }

    /// The current version of `type/id`, deleted or not; `None` if it never existed.
    pub fn read(&self, res_type: &str, id: &str) -> StoreResult<Option<StoredResource>> {
        Ok(self.read_shared(res_type, id)?.map(Arc::unwrap_or_clone))
    }

    /// [`Store::read`] through the read cache ([`cache`]): from memory when this node
    /// is alone on its database, else checked against the current version number.
    pub fn read_shared(
        &self,
        res_type: &str,
        id: &str,
    ) -> StoreResult<Option<Arc<StoredResource>>> {
        let cache = &self.db.cache;
        if let Some(hit) = cache.get_trusted(res_type, id) {
            cache_counted("hit");
            return Ok(Some(hit));
        }
        self.db.read(|tx| {
            if let Some(hit) = cache.get(res_type, id) {
                if reads::current_version(tx, res_type, id)? == Some(hit.version) {
                    cache_counted("checked");
                    return Ok(Some(hit));
                }
            }
            if cache.enabled() {
                cache_counted("miss");
            }
            let ticket = cache.ticket(res_type, id);
            let found = reads::current(tx, res_type, id)?.map(Arc::new);
            if let Some(f) = &found {
                cache.offer(ticket, f.clone());
            }
            Ok(found)
        })
    }

    /// The profiles, tags and security labels the current resources of `types` use.
    pub fn meta_summary(&self, types: &[&str]) -> StoreResult<MetaSummary> {
        self.db.read(|tx| meta::summary(tx, types))
    }

    /// See [`cache::ReadCache::terminology_generation`].
    pub fn terminology_generation(&self) -> Option<u64> {
        self.db.cache.terminology_generation()
    }

    /// The current version of `type/id` when the read cache may answer without the
    /// database (call on any thread: it never blocks on the database).
    pub fn cached(&self, res_type: &str, id: &str) -> Option<Arc<StoredResource>> {
        let hit = self.db.cache.get_trusted(res_type, id);
        if hit.is_some() {
            cache_counted("hit");
        }
        hit
    }

    /// One version of `type/id`.
    pub fn vread(
        &self,
        res_type: &str,
        id: &str,
        version: i64,
    ) -> StoreResult<Option<StoredResource>> {
        Ok(self
            .vread_shared(res_type, id, version)?
            .map(Arc::unwrap_or_clone))
    }

    /// [`Store::vread`], from the read cache when it holds that version (versions
    /// never change, so no check is needed).
    pub fn vread_shared(
        &self,
        res_type: &str,
        id: &str,
        version: i64,
    ) -> StoreResult<Option<Arc<StoredResource>>> {
        if let Some(hit) = self.db.cache.get(res_type, id) {
            if hit.version == version {
                return Ok(Some(hit));
            }
        }
        Ok(self
            .db
            .read(|tx| reads::version(tx, res_type, id, version))?
            .map(Arc::new))
    }

    /// Registers this process as a server node on its database ([`nodes`]): needed
    /// for the read cache to answer from memory. Returns once the node may write.
    pub fn join_nodes(&self, host: &str) -> StoreResult<nodes::NodeHandle> {
        nodes::join(&self.db, host)
    }

    /// The secret `name` shared by every node on this database ([`nodes::shared_secret`]).
    pub fn shared_secret(&self, name: &str) -> StoreResult<String> {
        nodes::shared_secret(&self.db, name)
    }

    /// This process's id among the server nodes, once it has joined them.
    pub fn node_id(&self) -> Option<String> {
        self.db.membership.id()
    }

    /// A page of history.
    pub fn history(&self, query: &HistoryQuery) -> StoreResult<HistoryPage> {
        self.db.read(|tx| reads::history(tx, query))
    }

    /// Runs a search (see [`search`]).
    pub fn search(&self, request: &SearchRequest) -> StoreResult<SearchPage> {
        self.db.read(|tx| search::search(tx, request))
    }

    /// Recomputes the index rows of every current resource (of `types`, or all), in
    /// batches of `batch` resources per transaction, calling `progress(done)` after
    /// each batch. Used when the set of search parameters changes.
    pub fn reindex(
        &self,
        types: &[String],
        batch: usize,
        mut progress: impl FnMut(u64),
    ) -> StoreResult<u64> {
        let mut after = 0i64;
        let mut done = 0u64;
        loop {
            let page = self
                .db
                .read(|tx| search::current_after(tx, types, after, batch.max(1)))?;
            let Some(last) = page.last().map(|(rid, _)| *rid) else {
                return Ok(done);
            };
            self.db.write(|tx| {
                for (rid, v) in &page {
                    let values = if v.deleted {
                        IndexValues::default()
                    } else {
                        let resource =
                            fhir_model::json::parse(v.content.as_bytes()).map_err(|e| {
                                StoreError::Corrupt(format!("{}/{}: {e}", v.res_type, v.res_id))
                            })?;
                        self.indexer.index(&v.res_type, &resource)
                    };
                    writes::replace_index(tx, *rid, &v.res_type, values)?;
                }
                Ok(())
            })?;
            done += page.len() as u64;
            after = last;
            progress(done);
        }
    }

    /// Ids of up to three live resources matching all conditions (enough to tell
    /// none, one and several apart).
    pub fn find(&self, res_type: &str, conditions: &[Clause]) -> StoreResult<Vec<String>> {
        self.db
            .read(|tx| search::matching_ids(tx, res_type, conditions))
    }

    /// Creates a resource with a new server-assigned id. With `if_none_exist`, the
    /// conditions are checked in the same transaction: one match returns it unchanged,
    /// several fail with [`StoreError::PreconditionFailed`].
    pub fn create(
        &self,
        res_type: &str,
        resource: Value,
        if_none_exist: Option<&[Clause]>,
    ) -> StoreResult<Created> {
        self.transaction(|ops| ops.create(res_type, resource, if_none_exist, None))
    }

    /// Updates (or creates, with the client's id) `type/id`.
    pub fn update(
        &self,
        res_type: &str,
        id: &str,
        resource: Value,
        pre: Precondition,
    ) -> StoreResult<Updated> {
        self.transaction(|ops| ops.update(res_type, id, resource, pre))
    }

    /// Conditional update: no match creates (with `body_id` if the body had one), one
    /// match updates it, several fail.
    pub fn conditional_update(
        &self,
        res_type: &str,
        conditions: &[Clause],
        resource: Value,
        body_id: Option<&str>,
        pre: Precondition,
    ) -> StoreResult<Updated> {
        self.transaction(|ops| ops.conditional_update(res_type, conditions, resource, body_id, pre))
    }

    /// Patches `type/id`: `apply` gets the current resource and returns the new one,
    /// inside the transaction that holds the resource's lock.
    pub fn patch(
        &self,
        res_type: &str,
        id: &str,
        pre: Precondition,
        apply: impl FnOnce(Value) -> StoreResult<Value>,
    ) -> StoreResult<Updated> {
        self.transaction(|ops| ops.patch(res_type, id, pre, apply))
    }

    /// Conditional patch: exactly one match is patched; none is 404, several fail.
    pub fn conditional_patch(
        &self,
        res_type: &str,
        conditions: &[Clause],
        pre: Precondition,
        apply: impl FnOnce(Value) -> StoreResult<Value>,
    ) -> StoreResult<Updated> {
        self.transaction(|ops| ops.conditional_patch(res_type, conditions, pre, apply))
    }

    /// Deletes `type/id` (a deletion version; history keeps the rest).
    pub fn delete(&self, res_type: &str, id: &str, pre: Precondition) -> StoreResult<Deleted> {
        self.transaction(|ops| ops.delete(res_type, id, pre))
    }

    /// Conditional delete: one match is deleted, none is [`Deleted::NotFound`],
    /// several fail with [`StoreError::PreconditionFailed`].
    pub fn conditional_delete(
        &self,
        res_type: &str,
        conditions: &[Clause],
        pre: Precondition,
    ) -> StoreResult<Deleted> {
        self.transaction(|ops| ops.conditional_delete(res_type, conditions, pre))
    }

    /// Runs several operations in one database transaction: all of them commit, or
    /// (when `f` returns an error) none does.
    pub fn transaction<T>(
        &self,
        f: impl FnOnce(&mut TxOps<'_, '_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let (result, fresh, recorded) = self.db.write(|tx| {
            let context = audit::current_context();
            let mut ops = TxOps {
                store: self,
                tx,
                pending: Vec::new(),
                source: context.as_ref().and_then(|c| c.source.clone()),
                writes: Vec::new(),
                fresh: Vec::new(),
            };
            let result = f(&mut ops)?;
            let recorded = self.change_feed && !ops.writes.is_empty();
            if recorded {
                changes::record(ops.tx, &ops.writes, time::now_millis())?;
            }
            if let (Some(hook), Some(ctx)) = (&self.audit, &context) {
                let writes = std::mem::take(&mut ops.writes);
                if !writes.is_empty() {
                    ops.append_audit(&hook(ctx, &writes))?;
                }
            }
            flush_index(ops.tx, &mut ops.pending)?;
            Ok((result, std::mem::take(&mut ops.fresh), recorded))
        })?;
        // Committed: the versions the dispatcher will match are kept for it, and it is
        // woken.
        for (res_type, id, version, entry) in fresh {
            self.db.recent.keep(&res_type, &id, version, entry);
        }
        if recorded {
            self.db.committed.signal();
        }
        Ok(result)
    }

    /// Versions just written or read, kept for the subscription machinery
    /// ([`recent`]).
    pub fn recent(&self) -> &recent::Recent {
        &self.db.recent
    }
}

/// Counts a read through the read cache: `hit` (used as it was), `checked` (used after
/// asking the database for the current version number) or `miss`.
fn cache_counted(result: &'static str) {
    metrics::counter!("fhir_read_cache_requests_total", "result" => result).increment(1);
}

/// A new server-assigned resource id: a UUIDv7, ordered by time, so that the rows of
/// new resources land at the end of the id indexes rather than on random pages (a
/// large load stays fast as the tables grow).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Resources whose index rows a transaction collects before writing them.
const FLUSH_EVERY: usize = 500;

/// The operations available inside [`Store::transaction`].
pub struct TxOps<'a, 'c> {
    store: &'a Store,
    tx: &'a mut Tx<'c>,
    /// Index rows of this transaction's writes, written together before any search and
    /// before commit.
    pending: Vec<PendingIndex>,
    /// `meta.source` for every version written (who is writing).
    source: Option<String>,
    /// The versions written, for the audit trail.
    writes: Vec<WriteRecord>,
    /// Versions of watched types, kept once the transaction commits ([`recent`]).
    fresh: Vec<(String, String, i64, recent::RecentVersion)>,
}

impl TxOps<'_, '_> {
    fn write(
        &mut self,
        res_type: &str,
        id: &str,
        current: &Current,
        resource: Option<Value>,
        method: &str,
    ) -> StoreResult<StoredResource> {
        let store = self.store;
        let mut resource = resource;
        if let (Some(r), Some(source)) = (resource.as_mut(), &self.source) {
            audit::set_source(r, source)?;
        }
        let index = move |r: &Value| store.indexer.index(res_type, r);
        let (stored, pending) =
            write_version(self.tx, res_type, id, current, resource, method, &index)?;
        self.written(stored, pending)
    }

    /// Bookkeeping after a version is written: its index rows to flush, its record for
    /// the audit trail.
    fn written(
        &mut self,
        stored: StoredResource,
        pending: PendingIndex,
    ) -> StoreResult<StoredResource> {
        let res_type = stored.res_type.as_str();
        let id = stored.res_id.as_str();
        let method = stored.method.as_str();
        if let Some(params) = self
            .store
            .db
            .recent
            .watched(res_type)
            .filter(|_| !stored.deleted)
        {
            let index = pending.values.only(&params);
            let entry = recent::RecentVersion {
                content: Arc::from(stored.content.as_str()),
                index: Some((params, index)),
            };
            self.fresh
                .push((res_type.to_string(), id.to_string(), stored.version, entry));
        }
        self.pending.push(pending);
        if self.pending.len() >= FLUSH_EVERY {
            // A large transaction keeps the index rows of a bounded number of
            // resources in memory, not of all it writes.
            flush_index(self.tx, &mut self.pending)?;
        }
        if res_type != "AuditEvent" {
            self.writes.push(WriteRecord {
                res_type: res_type.to_string(),
                id: id.to_string(),
                version: stored.version,
                method: method.to_string(),
            });
        }
        Ok(stored)
    }

    /// Records an idempotency key with its request's fingerprint and response, in
    /// this transaction; 409 when a concurrent request recorded it first.
    pub fn record_idempotency(
        &mut self,
        key: &str,
        fingerprint: &str,
        response: &str,
    ) -> StoreResult<()> {
        idempotency::record(self.tx, key, fingerprint, response)
    }

    /// Appends AuditEvents to the audit log (see [`audit`]).
    pub fn append_audit(&mut self, events: &[String]) -> StoreResult<()> {
        audit::chain(self.tx, events)
    }

    /// The current version of `type/id` (deleted or not), as this transaction sees it.
    pub fn read(&mut self, res_type: &str, id: &str) -> StoreResult<Option<StoredResource>> {
        reads::current(self.tx, res_type, id)
    }

    /// One version of `type/id`.
    pub fn vread(
        &mut self,
        res_type: &str,
        id: &str,
        version: i64,
    ) -> StoreResult<Option<StoredResource>> {
        reads::version(self.tx, res_type, id, version)
    }

    /// Runs a search as this transaction sees the data, its own writes included.
    pub fn search(&mut self, request: &SearchRequest) -> StoreResult<SearchPage> {
        flush_index(self.tx, &mut self.pending)?;
        search::search(self.tx, request)
    }

    /// Takes the conditional-write locks of `types` ([`Tx::lock_type`]) in one order
    /// (by name), so that two transactions that each need several never wait on each
    /// other in a cycle.
    pub fn lock_types<'t>(&mut self, types: impl IntoIterator<Item = &'t str>) -> StoreResult<()> {
        let sorted: std::collections::BTreeSet<&str> = types.into_iter().collect();
        for t in sorted {
            self.tx.lock_type(t)?;
        }
        Ok(())
    }

    /// `None` for no match, the id for one match, [`StoreError::PreconditionFailed`]
    /// for several. Serialises conditional writes on the type.
    pub fn single_match(
        &mut self,
        res_type: &str,
        conditions: &[Clause],
    ) -> StoreResult<Option<String>> {
        flush_index(self.tx, &mut self.pending)?;
        self.tx.lock_type(res_type)?;
        single_match(self.tx, res_type, conditions)
    }

    /// Creates a resource, with `id` if given (a transaction assigns ids up front),
    /// or returns the match of `if_none_exist`.
    pub fn create(
        &mut self,
        res_type: &str,
        resource: Value,
        if_none_exist: Option<&[Clause]>,
        id: Option<&str>,
    ) -> StoreResult<Created> {
        if let Some(conditions) = if_none_exist {
            if let Some(found) = self.single_match(res_type, conditions)? {
                let existing = reads::current(self.tx, res_type, &found)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("{res_type}/{found} matched but unreadable"))
                })?;
                return Ok(Created::Existing(existing));
            }
        }
        let id = id.map(str::to_string).unwrap_or_else(new_id);
        let current = lock_current(self.tx, res_type, &id)?;
        if current.version > 0 {
            return Err(write_many::already_exists(res_type, &id));
        }
        let stored = self.write(res_type, &id, &current, Some(resource), "POST")?;
        Ok(Created::New(stored))
    }

    /// Updates (or creates, with the client's id) `type/id`.
    pub fn update(
        &mut self,
        res_type: &str,
        id: &str,
        resource: Value,
        pre: Precondition,
    ) -> StoreResult<Updated> {
        let current = lock_current(self.tx, res_type, id)?;
        check_precondition(&current, pre)?;
        let stored = self.write(res_type, id, &current, Some(resource), "PUT")?;
        Ok(Updated {
            stored,
            created: !current.exists(),
        })
    }

    /// The id a conditional update writes: the match, the body's id, or a new one.
    pub fn conditional_update_target(
        &mut self,
        res_type: &str,
        conditions: &[Clause],
        body_id: Option<&str>,
    ) -> StoreResult<String> {
        Ok(match self.single_match(res_type, conditions)? {
            Some(found) => {
                if let Some(b) = body_id.filter(|b| *b != found) {
                    return Err(StoreError::BadRequest {
                        message: format!(
                            "the resource id '{b}' differs from the id of the resource the condition matched ('{found}')"
                        ),
                        expression: Some(format!("{res_type}.id")),
                    });
                }
                found
            }
            None => match body_id {
                Some(b) => {
                    if reads::current(self.tx, res_type, b)?.is_some_and(|c| !c.deleted) {
                        return Err(StoreError::Conflict(format!(
                            "{res_type}/{b} exists but does not match the condition; it is not overwritten"
                        )));
                    }
                    b.to_string()
                }
                None => new_id(),
            },
        })
    }

    /// Conditional update: no match creates, one match updates it, several fail.
    pub fn conditional_update(
        &mut self,
        res_type: &str,
        conditions: &[Clause],
        resource: Value,
        body_id: Option<&str>,
        pre: Precondition,
    ) -> StoreResult<Updated> {
        let id = self.conditional_update_target(res_type, conditions, body_id)?;
        self.update(res_type, &id, resource, pre)
    }

    /// Patches `type/id` with `apply` (current resource in, new resource out).
    pub fn patch(
        &mut self,
        res_type: &str,
        id: &str,
        pre: Precondition,
        apply: impl FnOnce(Value) -> StoreResult<Value>,
    ) -> StoreResult<Updated> {
        let current = lock_current(self.tx, res_type, id)?;
        let Some(stored) = reads::current(self.tx, res_type, id)? else {
            return Err(StoreError::NotFound {
                resource_type: res_type.into(),
                id: id.into(),
            });
        };
        if stored.deleted {
            return Err(StoreError::Gone {
                resource_type: res_type.into(),
                id: id.into(),
                version: stored.version,
            });
        }
        check_precondition(&current, pre)?;
        let before = fhir_model::json::parse(stored.content.as_bytes())
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let after = apply(before)?;
        let stored = self.write(res_type, id, &current, Some(after), "PATCH")?;
        Ok(Updated {
            stored,
            created: false,
        })
    }

    /// Conditional patch: exactly one match is patched; none is 404, several fail.
    pub fn conditional_patch(
        &mut self,
        res_type: &str,
        conditions: &[Clause],
        pre: Precondition,
        apply: impl FnOnce(Value) -> StoreResult<Value>,
    ) -> StoreResult<Updated> {
        let Some(id) = self.single_match(res_type, conditions)? else {
            return Err(StoreError::NotFound {
                resource_type: res_type.into(),
                id: "?".into(),
            });
        };
        self.patch(res_type, &id, pre, apply)
    }

    /// Deletes `type/id`; deleting what does not exist changes nothing.
    pub fn delete(&mut self, res_type: &str, id: &str, pre: Precondition) -> StoreResult<Deleted> {
        let current = lock_current(self.tx, res_type, id)?;
        if current.version == 0 {
            writes::drop_placeholder(self.tx, current.rid)?;
            return Ok(Deleted::NotFound);
        }
        check_precondition(&current, pre)?;
        if current.deleted {
            let stored = reads::current(self.tx, res_type, id)?.ok_or_else(|| {
                StoreError::Corrupt(format!("{res_type}/{id} has no current version"))
            })?;
            return Ok(Deleted::Already(stored));
        }
        let stored = self.write(res_type, id, &current, None, "DELETE")?;
        Ok(Deleted::Now(stored))
    }

    /// Conditional delete: one match is deleted, none changes nothing, several fail.
    pub fn conditional_delete(
        &mut self,
        res_type: &str,
        conditions: &[Clause],
        pre: Precondition,
    ) -> StoreResult<Deleted> {
        match self.single_match(res_type, conditions)? {
            Some(id) => self.delete(res_type, &id, pre),
            None => Ok(Deleted::NotFound),
        }
    }
}

/// `None` for no match, the id for one match, an error for several.
fn single_match(
    tx: &mut Tx<'_>,
    res_type: &str,
    conditions: &[Clause],
) -> StoreResult<Option<String>> {
    let ids = search::matching_ids(tx, res_type, conditions)?;
    match ids.len() {
        0 => Ok(None),
        1 => Ok(ids.into_iter().next()),
        _ => Err(StoreError::PreconditionFailed(format!(
            "the condition matches more than one {res_type} resource"
        ))),
    }
}

fn check_precondition(current: &Current, pre: Precondition) -> StoreResult<()> {
    if pre.if_none_match_any && current.exists() {
        return Err(StoreError::PreconditionFailed(
            "the resource exists and If-None-Match is '*'".into(),
        ));
    }
    if let Some(expected) = pre.if_match {
        let now = if current.exists() { current.version } else { 0 };
        if expected != now {
            return Err(StoreError::VersionConflict {
                expected,
                current: now,
            });
        }
    }
    Ok(())
}
