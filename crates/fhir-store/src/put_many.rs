//! Writing many resources in one step: a bulk import's resources of one type
//! ([`TxOps::put_many`]) and a transaction's creates of any types
//! ([`TxOps::create_many`]). The versions, index rows and audit records are those of
//! [`crate::TxOps::update`] and [`crate::TxOps::create`] one by one; the work that needs
//! no database — stamping, serialising, extracting every search parameter's values, the
//! full text — is done on several threads while the rows of those already prepared are
//! written, in order, a group at a time ([`crate::write_many`]).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use serde_json::Value;

use crate::audit;
use crate::error::{StoreError, StoreResult};
use crate::model::StoredResource;
use crate::write_many::{already_exists, lock_many, persist_many, persist_new, Pending};
use crate::writes::{prepare_each, prepare_version, Current};
use crate::TxOps;

/// Versions written with one statement each for their rows and for their resources'
/// current rows (as many rows as an index insert takes).
const GROUP: usize = 64;

/// A resource to create with [`TxOps::create_many`].
#[derive(Debug)]
pub struct NewResource {
    pub res_type: String,
    /// The id a transaction assigned up front; a new one when `None`.
    pub id: Option<String>,
    pub resource: Value,
}

/// How a group of prepared versions is written ([`persist_many`], [`persist_new`]).
type Persist =
    for<'t, 'c, 'p> fn(
        &'t mut crate::backend::Tx<'c>,
        Vec<Pending<'p>>,
    ) -> StoreResult<Vec<(StoredResource, crate::writes::PendingIndex)>>;

/// What one version of a batch writes: its resource's row as locked (as none, for a
/// create), and the method.
struct Key<'a> {
    res_type: &'a str,
    id: &'a str,
    current: Current,
    method: &'a str,
}

impl TxOps<'_, '_> {
    /// Writes each resource as a new version of `res_type/id` (an update, or a create
    /// when it is new), or as a new resource when it has no id; returns the versions
    /// written, in order. An id given twice is written twice (two versions).
    pub fn put_many(
        &mut self,
        res_type: &str,
        resources: &[Value],
        threads: usize,
    ) -> StoreResult<Vec<StoredResource>> {
        let mut ids = Vec::with_capacity(resources.len());
        for resource in resources {
            if !resource.is_object() {
                return Err(StoreError::Invalid {
                    message: "a resource must be a JSON object".into(),
                    expression: None,
                });
            }
            let given = resource.get("id").and_then(Value::as_str);
            ids.push(match given {
                Some(id) => (id.to_string(), "PUT"),
                None => (crate::new_id(), "POST"),
            });
        }
        let names: Vec<&str> = ids.iter().map(|(id, _)| id.as_str()).collect();
        let locked = lock_many(self.tx, res_type, &names)?;
        let mut keys = Vec::with_capacity(ids.len());
        // Earlier versions of this batch, for an id that appears again in it.
        let mut seen: HashMap<&str, i64> = HashMap::new();
        for (id, method) in &ids {
            let mut current = locked
                .get(id)
                .cloned()
                .ok_or_else(|| StoreError::Corrupt(format!("{res_type}/{id} was not claimed")))?;
            if let Some(v) = seen.get(id.as_str()) {
                current.version = *v;
                current.deleted = false;
            }
            seen.insert(id, current.version + 1);
            if *method == "POST" && current.version > 0 {
                return Err(already_exists(res_type, id));
            }
            keys.push(Key {
                res_type,
                id: id.as_str(),
                current,
                method,
            });
        }
        self.write_all(&keys, &|i| Ok(resources[i].clone()), threads, persist_many)
    }

    /// Creates the resources, in order, as [`TxOps::create`] would one by one (with the
    /// ids given, or new ones; 409 for an id that exists): a transaction's creates.
    pub fn create_many(
        &mut self,
        resources: Vec<NewResource>,
        threads: usize,
    ) -> StoreResult<Vec<StoredResource>> {
        // Each resource is handed to the thread that prepares it once, without a copy.
        let mut types = Vec::with_capacity(resources.len());
        let mut ids = Vec::with_capacity(resources.len());
        let mut owned = Vec::with_capacity(resources.len());
        for r in resources {
            types.push(r.res_type);
            ids.push(r.id.unwrap_or_else(crate::new_id));
            owned.push(Mutex::new(Some(r.resource)));
        }
        // Nothing is claimed: each resource's row is inserted once, with its first
        // version ([`persist_new`]); one that exists makes it a 409.
        let mut seen = HashSet::with_capacity(ids.len());
        let mut keys = Vec::with_capacity(ids.len());
        for (res_type, id) in types.iter().zip(&ids) {
            let res_type = res_type.as_str();
            if !seen.insert((res_type, id.as_str())) {
                return Err(already_exists(res_type, id));
            }
            keys.push(Key {
                res_type,
                id,
                current: Current {
                    rid: 0,
                    version: 0,
                    deleted: false,
                },
                method: "POST",
            });
        }
        let take = |i: usize| {
            owned[i]
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .ok_or_else(|| StoreError::Corrupt("a resource was prepared twice".into()))
        };
        self.write_all(&keys, &take, threads, persist_new)
    }

    /// Prepares the version of each key from `resource(i)` on up to `threads` threads
    /// and writes them a group at a time, in order, with `persist`.
    fn write_all(
        &mut self,
        keys: &[Key<'_>],
        resource: &(dyn Fn(usize) -> StoreResult<Value> + Sync),
        threads: usize,
        persist: Persist,
    ) -> StoreResult<Vec<StoredResource>> {
        let (store, source, now) = (self.store, self.source.clone(), crate::time::now_millis());
        let prepare = |i: usize| {
            let mut resource = resource(i)?;
            if let Some(source) = &source {
                audit::set_source(&mut resource, source)?;
            }
            let key = &keys[i];
            let res_type = key.res_type;
            let index = move |r: &Value| store.indexer.index(res_type, r);
            Ok(prepare_version(
                key.id,
                &key.current,
                Some(resource),
                now,
                &index,
            ))
        };
        let mut out = Vec::with_capacity(keys.len());
        let mut group = Vec::with_capacity(GROUP);
        prepare_each(keys.len(), threads, &prepare, |i, version| {
            let key = &keys[i];
            group.push(Pending {
                res_type: key.res_type,
                id: key.id,
                current: key.current.clone(),
                method: key.method,
                version,
            });
            if group.len() == GROUP {
                self.persist(persist, std::mem::take(&mut group), &mut out)?;
            }
            Ok(())
        })?;
        self.persist(persist, group, &mut out)?;
        Ok(out)
    }

    /// Writes a group of prepared versions and records each as written.
    fn persist(
        &mut self,
        persist: Persist,
        group: Vec<Pending<'_>>,
        out: &mut Vec<StoredResource>,
    ) -> StoreResult<()> {
        if group.is_empty() {
            return Ok(());
        }
        for (stored, pending) in persist(self.tx, group)? {
            out.push(self.written(stored, pending)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::{NoIndex, PoolOptions, Store};

    fn new(res_type: &str, id: &str) -> NewResource {
        NewResource {
            res_type: res_type.into(),
            id: Some(id.into()),
            resource: json!({"resourceType": res_type, "active": true}),
        }
    }

    #[test]
    fn creates_of_several_types_are_first_versions_and_an_existing_id_is_a_conflict() {
        let dir = std::env::temp_dir().join(format!("fhir-store-many-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let url = format!("sqlite://{}/db", dir.display());
        let store = Store::open(&url, &PoolOptions::default(), Arc::new(NoIndex)).expect("open");
        let written = store
            .transaction(|ops| {
                ops.create_many(
                    vec![new("Patient", "a"), new("Group", "a"), new("Patient", "b")],
                    2,
                )
            })
            .expect("create");
        let names: Vec<String> = written.iter().map(|s| s.versioned_path()).collect();
        assert_eq!(
            names,
            [
                "Patient/a/_history/1",
                "Group/a/_history/1",
                "Patient/b/_history/1"
            ]
        );
        assert!(written.windows(2).all(|w| w[0].seq < w[1].seq), "in order");
        let read = store.read("Group", "a").expect("read").expect("stored");
        assert_eq!((read.version, read.method.as_str()), (1, "POST"));
        // One that exists, or one given twice: 409, and nothing of that step stays.
        for batch in [
            vec![new("Patient", "c"), new("Patient", "a")],
            vec![new("Patient", "c"), new("Patient", "c")],
        ] {
            let err = store
                .transaction(|ops| ops.create_many(batch, 1))
                .expect_err("conflict");
            assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
            assert!(store.read("Patient", "c").expect("read").is_none());
        }
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
