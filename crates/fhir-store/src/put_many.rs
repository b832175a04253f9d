//! Writing many resources of one type in one step (bulk import): the same versions,
//! index rows and audit records as [`crate::TxOps::update`] and
//! [`crate::TxOps::create`] one by one, with the work that needs no database — stamping,
//! serialising, extracting every search parameter's values, the full text — done on
//! several threads while the rows of those already prepared are written, in order.

use serde_json::Value;

use crate::audit;
use crate::error::{StoreError, StoreResult};
use crate::model::StoredResource;
use crate::writes::{lock_current, persist_version, prepare_each, prepare_version};
use crate::TxOps;

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
        let mut keys = Vec::with_capacity(resources.len());
        // Earlier versions of this batch, for an id that appears again in it.
        let mut seen: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
        for resource in resources {
            if !resource.is_object() {
                return Err(StoreError::Invalid {
                    message: "a resource must be a JSON object".into(),
                    expression: None,
                });
            }
            let given = resource
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_string);
            let id = given.clone().unwrap_or_else(crate::new_id);
            let mut current = lock_current(self.tx, res_type, &id)?;
            if let Some(v) = seen.get(&id) {
                current.version = *v;
                current.deleted = false;
            }
            seen.insert(id.clone(), current.version + 1);
            if given.is_none() && current.version > 0 {
                return Err(StoreError::Conflict(format!(
                    "{res_type}/{id} already exists"
                )));
            }
            keys.push((id, current, if given.is_some() { "PUT" } else { "POST" }));
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
        prepare_each(keys.len(), threads, &prepare, |i, version| {
            let (id, current, method) = &keys[i];
            let (stored, pending) =
                persist_version(self.tx, res_type, id, current, version, method)?;
            out.push(self.written(stored, pending)?);
            Ok(())
        })?;
        Ok(out)
    }
}
