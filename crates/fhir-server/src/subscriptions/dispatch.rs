//! The dispatcher: one thread per node that takes committed changes out of the store's
//! change feed and records, in the same transaction, an event for each change that
//! matches an active subscription. Matching runs the subscription's own criteria with
//! `_id` set to the changed resources, through the search engine, inside that
//! transaction: the result is what a search would return at that moment. Only the
//! candidates are searched: subscriptions are indexed by resource type and by the
//! anchor of their criteria ([`super::anchor`]), so a change is matched against the
//! subscriptions whose anchor its values carry (and those without one); a subscription
//! whose criteria is one token criterion is matched by its key alone, and subscriptions
//! with the same criteria share one search per batch. The active
//! subscriptions are read again whenever a Subscription resource was written (on any
//! node: the highest `seq` of the type changes).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use fhir_search::SearchRegistry;
use fhir_store::changes::Change;
use fhir_store::{ExportQuery, Population, SearchRequest, Store, StoreResult, Total, TxOps};

use super::anchor::{anchor, keys_of, Key};
use super::{parse, Active};

/// How often the feed is read when it was empty.
const POLL: Duration = Duration::from_millis(200);
/// Changes taken per transaction.
const BATCH: usize = 500;
/// Resource ids per matching search.
const IDS_PER_SEARCH: usize = 100;

/// The active subscriptions of one resource type, indexed by anchor.
#[derive(Debug, Default)]
struct OfType {
    subs: Vec<Active>,
    /// Anchor key → the subscriptions (indexes into `subs`) anchored on it.
    anchored: HashMap<Key, Vec<usize>>,
    /// Subscriptions without an anchor: candidates for every change.
    always: Vec<usize>,
    /// Subscriptions whose criteria is their anchor: a candidate is a match.
    exact: HashSet<usize>,
}

impl OfType {
    fn add(&mut self, registry: &SearchRegistry, active: Active) {
        let i = self.subs.len();
        let keys =
            fhir_search::parse_query_string(registry, Some(&active.res_type), &active.query, false)
                .ok()
                .and_then(|q| anchor(&q));
        match keys {
            Some(a) => {
                if a.exact {
                    self.exact.insert(i);
                }
                a.keys
                    .into_iter()
                    .for_each(|k| self.anchored.entry(k).or_default().push(i));
            }
            None => self.always.push(i),
        }
        self.subs.push(active);
    }
}

/// The active subscriptions, by the resource type of their criteria.
#[derive(Debug, Default)]
pub struct Registry {
    /// The highest `seq` of a Subscription version when it was read.
    seq: i64,
    by_type: HashMap<String, OfType>,
    by_id: HashMap<String, Active>,
}

impl Registry {
    pub fn get(&self, id: &str) -> Option<&Active> {
        self.by_id.get(id)
    }
}

pub struct Dispatcher {
    store: Arc<Store>,
    registry: &'static SearchRegistry,
    active: RwLock<Arc<Registry>>,
}

impl Dispatcher {
    pub fn new(store: Arc<Store>, registry: &'static SearchRegistry) -> Dispatcher {
        Dispatcher {
            store,
            registry,
            active: RwLock::new(Arc::new(Registry {
                seq: -1,
                ..Default::default()
            })),
        }
    }

    /// The active subscriptions as last read.
    pub fn active(&self) -> Arc<Registry> {
        self.active
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Runs forever on the calling thread.
    pub fn run(&self) {
        loop {
            match self.dispatch_once() {
                Ok(n) if n >= BATCH => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "subscription dispatch failed; retrying"),
            }
            std::thread::sleep(POLL);
        }
    }

    /// Reads the active subscriptions again if a Subscription was written since.
    pub fn refresh(&self) -> StoreResult<()> {
        let seq = self.store.latest_seq_of("Subscription")?;
        if seq == self.active().seq {
            return Ok(());
        }
        let mut registry = Registry {
            seq,
            ..Default::default()
        };
        let query = ExportQuery {
            types: vec!["Subscription".into()],
            since: None,
            population: Population::All,
            filters: Vec::new(),
            until: None,
            at: None,
        };
        let mut after = 0;
        loop {
            let page = self.store.export_page(&query, after, 500)?;
            let Some((last, _)) = page.last() else { break };
            after = *last;
            for (_, stored) in &page {
                let Ok(value) = fhir_model::json::parse(stored.content.as_bytes()) else {
                    continue;
                };
                if value.get("status").and_then(serde_json::Value::as_str) != Some("active") {
                    continue;
                }
                // The endpoint was checked when the subscription was written and is
                // checked again before each delivery.
                if let Ok(active) = parse(self.registry, &value, true) {
                    registry.by_id.insert(active.id.clone(), active.clone());
                    registry
                        .by_type
                        .entry(active.res_type.clone())
                        .or_default()
                        .add(self.registry, active);
                }
            }
        }
        *self.active.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(registry);
        Ok(())
    }

    /// Takes one batch of changes and records the events they make; returns how many
    /// changes it took.
    pub fn dispatch_once(&self) -> StoreResult<usize> {
        if !self.store.has_changes()? {
            return Ok(0);
        }
        self.store.transaction(|ops| {
            let changes = ops.take_changes(BATCH)?;
            if changes.is_empty() {
                return Ok(0);
            }
            // Read after the changes were taken: a subscription committed before any
            // of them is known.
            self.refresh()?;
            let registry = self.active();
            let now = fhir_store::time::now_millis();
            for (res_type, of_type) in &registry.by_type {
                let changed: Vec<&Change> = changes
                    .iter()
                    .filter(|c| &c.res_type == res_type && c.method != "DELETE")
                    .collect();
                if changed.is_empty() {
                    continue;
                }
                let candidates = self.candidates(ops, res_type, of_type, &changed)?;
                self.record(ops, of_type, &changed, candidates, now)?;
            }
            Ok(changes.len())
        })
    }

    /// For each subscription (index) that may match, the ids of the changed resources
    /// it may match.
    fn candidates(
        &self,
        ops: &mut TxOps<'_, '_>,
        res_type: &str,
        of_type: &OfType,
        changed: &[&Change],
    ) -> StoreResult<HashMap<usize, HashSet<String>>> {
        let mut out: HashMap<usize, HashSet<String>> = HashMap::new();
        for c in changed {
            for &i in &of_type.always {
                out.entry(i).or_default().insert(c.res_id.clone());
            }
        }
        if of_type.anchored.is_empty() {
            return Ok(out);
        }
        let mut seen = HashSet::new();
        for c in changed.iter().filter(|c| seen.insert(c.res_id.as_str())) {
            let Some(stored) = ops.read(res_type, &c.res_id)? else {
                continue;
            };
            let Ok(value) = fhir_model::json::parse(stored.content.as_bytes()) else {
                continue;
            };
            let keys = keys_of(&fhir_search::extract(self.registry, res_type, &value));
            for k in &keys {
                for &i in of_type.anchored.get(k).into_iter().flatten() {
                    out.entry(i).or_default().insert(c.res_id.clone());
                }
            }
        }
        Ok(out)
    }

    /// Searches once per distinct criteria among the candidates and records an event,
    /// in change order, for each subscription a change matches.
    fn record(
        &self,
        ops: &mut TxOps<'_, '_>,
        of_type: &OfType,
        changed: &[&Change],
        candidates: HashMap<usize, HashSet<String>>,
        now: i64,
    ) -> StoreResult<()> {
        let mut by_criteria: HashMap<&str, (Vec<usize>, HashSet<String>)> = HashMap::new();
        for (i, ids) in candidates {
            if of_type.exact.contains(&i) {
                // Its one token criterion is the key the resource carries: a match.
                for c in changed.iter().filter(|c| ids.contains(&c.res_id)) {
                    ops.add_event(&of_type.subs[i].id, c, now)?;
                }
                continue;
            }
            let entry = by_criteria
                .entry(of_type.subs[i].query.as_str())
                .or_default();
            entry.0.push(i);
            entry.1.extend(ids);
        }
        for (subs, ids) in by_criteria.into_values() {
            let these: Vec<&Change> = changed
                .iter()
                .copied()
                .filter(|c| ids.contains(&c.res_id))
                .collect();
            let matched = self.matching(ops, &of_type.subs[subs[0]], &these)?;
            for c in these.iter().filter(|c| matched.contains(&c.res_id)) {
                for &i in &subs {
                    ops.add_event(&of_type.subs[i].id, c, now)?;
                }
            }
        }
        Ok(())
    }

    /// The ids among `changes` that the subscription's criteria match now.
    fn matching(
        &self,
        ops: &mut TxOps<'_, '_>,
        sub: &Active,
        changes: &[&Change],
    ) -> StoreResult<HashSet<String>> {
        let ids: Vec<&str> = {
            let mut seen = HashSet::new();
            changes
                .iter()
                .map(|c| c.res_id.as_str())
                .filter(|i| seen.insert(*i))
                .collect()
        };
        let mut out = HashSet::new();
        for chunk in ids.chunks(IDS_PER_SEARCH) {
            let mut pairs: Vec<(String, String)> = form_urlencoded::parse(sub.query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            pairs.push(("_id".into(), chunk.join(",")));
            let Ok(mut query) =
                fhir_search::parse(self.registry, Some(&sub.res_type), &pairs, false)
            else {
                continue;
            };
            // Only the criteria: no paging, sorting or includes.
            query.result = Default::default();
            let request = SearchRequest {
                query,
                count: chunk.len(),
                total: Total::None,
                ..Default::default()
            };
            let page = ops.search(&request)?;
            out.extend(page.matches.into_iter().map(|m| m.res_id));
        }
        Ok(out)
    }
}
