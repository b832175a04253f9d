//! What one dispatch batch gathers: the events it records, written together at its
//! end, and the versions it reads (each once, with only the search values some
//! subscription or topic compares).

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use fhir_search::SearchRegistry;
use fhir_store::changes::{Change, NewEvent};
use fhir_store::{StoreResult, TxOps};

use super::topic::Loaded;

/// The events a dispatch batch records, written together at its end.
pub struct Events<'a> {
    pub now: i64,
    pub events: Vec<NewEvent<'a>>,
}

impl<'a> Events<'a> {
    /// An event due now.
    pub fn due(&mut self, subscription: &'a str, change: &'a Change) {
        self.add(subscription, change, Some(self.now));
    }

    /// An event due at `due` (`None`: counted and kept, never sent).
    pub fn add(&mut self, subscription: &'a str, change: &'a Change, due: Option<i64>) {
        self.events.push(NewEvent {
            subscription,
            change,
            due,
        });
    }
}

/// Versions read and indexed during one dispatch batch: only the parameters some
/// subscription or topic compares are extracted.
pub struct Versions<'r> {
    registry: &'static SearchRegistry,
    needed: &'r HashMap<String, HashSet<String>>,
    cache: HashMap<(String, String, i64), Option<Rc<Loaded>>>,
    /// The JSON of each version read that exists (not a deletion), copied for the
    /// senders only if it makes an event ([`Versions::json`]).
    json: HashMap<(String, String, i64), String>,
}

impl<'r> Versions<'r> {
    pub fn new(
        registry: &'static SearchRegistry,
        needed: &'r HashMap<String, HashSet<String>>,
    ) -> Versions<'r> {
        Versions {
            registry,
            needed,
            cache: HashMap::new(),
            json: HashMap::new(),
        }
    }

    /// The search parameters.
    pub fn registry(&self) -> &'static SearchRegistry {
        self.registry
    }

    /// Version `version` of `res_type/id` with its index values; `None` when it is a
    /// deletion or does not exist (any more).
    pub fn get(
        &mut self,
        ops: &mut TxOps<'_, '_>,
        res_type: &str,
        id: &str,
        version: i64,
    ) -> StoreResult<Option<Rc<Loaded>>> {
        let key = (res_type.to_string(), id.to_string(), version);
        if let Some(v) = self.cache.get(&key) {
            return Ok(v.clone());
        }
        let empty = HashSet::new();
        let codes = self.needed.get(res_type).unwrap_or(&empty);
        let loaded = match ops.vread(res_type, id, version)? {
            Some(stored) if !stored.deleted => {
                let value = fhir_model::json::parse(stored.content.as_bytes()).ok();
                self.json.insert(key.clone(), stored.content);
                value.map(|v| Rc::new(Loaded::with_params(self.registry, res_type, v, codes)))
            }
            _ => None,
        };
        self.cache.insert(key, loaded.clone());
        Ok(loaded)
    }

    /// The JSON of the version a change wrote, if this batch read it.
    pub fn json(&self, change: &Change) -> Option<Arc<str>> {
        let key = (
            change.res_type.clone(),
            change.res_id.clone(),
            change.version,
        );
        self.json.get(&key).map(|s| Arc::from(s.as_str()))
    }
}
