//! What one dispatch batch gathers: the events it records, written together at its
//! end, and the versions it reads (each once, with only the search values some
//! subscription or topic compares).

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use fhir_search::SearchRegistry;
use fhir_store::changes::{Change, NewEvent};
use fhir_store::recent::{Recent, RecentVersion};
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
/// subscription or topic compares are extracted. A version its write kept in memory
/// (fhir-store `recent`) is taken from there, with its index rows; one read from the
/// database is kept there, for the senders.
pub struct Versions<'r> {
    registry: &'static SearchRegistry,
    needed: &'r HashMap<String, HashSet<String>>,
    recent: &'r Recent,
    cache: HashMap<(String, String, i64), Option<Rc<Loaded>>>,
}

impl<'r> Versions<'r> {
    pub fn new(
        registry: &'static SearchRegistry,
        needed: &'r HashMap<String, HashSet<String>>,
        recent: &'r Recent,
    ) -> Versions<'r> {
        Versions {
            registry,
            needed,
            recent,
            cache: HashMap::new(),
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
        let kept = match self.recent.get(res_type, id, version) {
            Some(kept) => Some(kept),
            None => match ops.vread(res_type, id, version)? {
                Some(stored) if !stored.deleted => {
                    let entry = Arc::new(RecentVersion {
                        content: Arc::from(stored.content),
                        index: None,
                    });
                    // Not kept if too large: the senders then read it again.
                    self.recent.keep(res_type, id, version, entry.clone());
                    Some(entry)
                }
                _ => None,
            },
        };
        let loaded = kept
            .and_then(|k| Loaded::kept(self.registry, res_type, id, &k, codes))
            .map(Rc::new);
        self.cache.insert(key, loaded.clone());
        Ok(loaded)
    }
}
