//! Writing many resources of one type in one step (bulk import): the same versions,
//! index rows and audit records as [`crate::TxOps::update`] and
//! [`crate::TxOps::create`] one by one, with the work that needs no database — stamping,
//! serialising, extracting every search parameter's values, the full text — done on
//! several threads while the rows of those already prepared are written, in order, a
//! group at a time ([`crate::write_many`]).

use serde_json::Value;

use crate::audit;
use crate::error::{StoreError, StoreResult};
use crate::model::StoredResource;
use crate::write_many::{lock_many, persist_many, Pending};
use crate::writes::{prepare_each, prepare_version};
use crate::TxOps;

/// Versions written with one statement each for their rows and for their resources'
/// current rows (as many rows as an index insert takes).
const GROUP: usize = 64;

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
        let mut seen: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
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
                return Err(StoreError::Conflict(format!(
                    "{res_type}/{id} already exists"
                )));
            }
            keys.push((id.as_str(), current, *method));
        }
        // Copying, stamping and indexing each resource happen on the preparing threads.
        let (store, source, now) = (self.store, self.source.clone(), crate::time::now_millis());
        let index = move |r: &Value| store.indexer.index(res_type, r);
        let prepare = |i: usize| {
            let mut resource = resources[i].clone();
            if let Some(source) = &source {
                audit::set_source(&mut resource, source)?;
            }
            let (id, current, _) = &keys[i];
            Ok(prepare_version(id, current, Some(resource), now, &index))
        };
        let mut out = Vec::with_capacity(keys.len());
        let mut group = Vec::with_capacity(GROUP);
        prepare_each(keys.len(), threads, &prepare, |i, version| {
            let (id, current, method) = &keys[i];
            group.push(Pending {
                id,
                current: current.clone(),
                method,
                version,
            });
            if group.len() == GROUP {
                self.persist(res_type, std::mem::take(&mut group), &mut out)?;
            }
            Ok(())
        })?;
        self.persist(res_type, group, &mut out)?;
        Ok(out)
    }

    /// Writes a group of prepared versions and records each as written.
    fn persist(
        &mut self,
        res_type: &str,
        group: Vec<Pending<'_>>,
        out: &mut Vec<StoredResource>,
    ) -> StoreResult<()> {
        if group.is_empty() {
            return Ok(());
        }
        for (stored, pending) in persist_many(self.tx, res_type, group)? {
            out.push(self.written(stored, pending)?);
        }
        Ok(())
    }
}
