//! The dispatcher: one thread per node that takes committed changes out of the store's
//! change feed and records, in the same transaction, an event for each change that
//! matches an active subscription. Matching uses the search engine's own semantics:
//! in memory on the version that made the change (fhir-search `matcher`) when every
//! criterion can be decided from the resource alone, else by running the criteria with
//! `_id` set to the changed resources inside that transaction (what a search would
//! return at that moment). Topic-based subscriptions are matched in
//! [`super::triggers`]. Only the candidates are matched: subscriptions are indexed by resource type and by the
//! anchor of their criteria ([`super::anchor`]), so a change is matched against the
//! subscriptions whose anchor its values carry (and those without one); a subscription
//! whose criteria is one token criterion is matched by its key alone, and subscriptions
//! with the same criteria share one search per batch. The subscriptions and topics are
//! read again whenever a Subscription or Basic resource was written (on any node: the
//! highest `seq` of the type changes).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use fhir_search::SearchRegistry;
use fhir_store::changes::{Change, NewEvent};
use fhir_store::{ExportQuery, Population, SearchRequest, Store, StoreResult, Total, TxOps};

use super::anchor::{anchor, keys_of, Key};
use super::topic::Topic;
use super::triggers::Versions;
use super::{parse, Active};

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

/// A changed version: (resource id, version).
type Version = (String, i64);

/// Every current resource of one type.
fn all_of(res_type: &str) -> ExportQuery {
    ExportQuery {
        types: vec![res_type.into()],
        since: None,
        population: Population::All,
        filters: Vec::new(),
        until: None,
        at: None,
    }
}

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

/// The subscriptions and topics, as last read.
#[derive(Debug, Default)]
pub struct Registry {
    /// The highest `seq` of a Subscription and of a Basic version when they were read.
    seq: (i64, i64),
    /// Active criteria-based subscriptions, by the resource type of their criteria.
    by_type: HashMap<String, OfType>,
    /// Active subscriptions of both kinds, by id.
    by_id: HashMap<String, Active>,
    /// The subscription topics (Basic resources), by canonical URL.
    pub topics: HashMap<String, Topic>,
    /// Topic-based subscriptions that count events: active, or in error (their events
    /// are kept for `$events`, never sent), by topic URL.
    pub by_topic: HashMap<String, Vec<Active>>,
    /// Topic URLs by the resource types their triggers watch.
    pub topics_of_type: HashMap<String, Vec<String>>,
    /// Topic-based subscriptions waiting for their handshake.
    pub requested: Vec<Active>,
    /// The server's CapabilityStatement with these topics, made once.
    capability: std::sync::OnceLock<String>,
    /// By resource type, the parameters some subscription or topic compares: only
    /// these are extracted from a changed version.
    pub needed: HashMap<String, HashSet<String>>,
}

impl Registry {
    /// The CapabilityStatement `base` (JSON) with the Backport IG's declarations and
    /// these topics.
    pub fn capability(&self, base: &str) -> &str {
        self.capability
            .get_or_init(|| crate::capability::with_subscriptions(base, self.topics.keys()))
    }

    /// An active subscription.
    pub fn get(&self, id: &str) -> Option<&Active> {
        self.by_id.get(id)
    }

    /// Notes the parameters `query` compares on `res_type`.
    fn need(&mut self, res_type: &str, query: &fhir_search::SearchQuery) {
        let codes = self.needed.entry(res_type.to_string()).or_default();
        codes.extend(fhir_search::matcher::params_of(query).map(str::to_string));
    }

    fn add(&mut self, registry: &SearchRegistry, sub: Active) {
        if let Some(t) = &sub.topic {
            for (res_type, q) in &t.filters {
                self.need(res_type, q);
            }
        } else if let Ok(q) =
            fhir_search::parse_query_string(registry, Some(&sub.res_type), &sub.query, false)
        {
            self.need(&sub.res_type, &q);
        }
        match (sub.status.as_str(), &sub.topic) {
            ("active", None) => {
                self.by_id.insert(sub.id.clone(), sub.clone());
                self.by_type
                    .entry(sub.res_type.clone())
                    .or_default()
                    .add(registry, sub);
            }
            ("requested", Some(_)) => self.requested.push(sub),
            ("active" | "error", Some(t)) => {
                if sub.status == "active" {
                    self.by_id.insert(sub.id.clone(), sub.clone());
                }
                self.by_topic.entry(t.url.clone()).or_default().push(sub);
            }
            _ => {}
        }
    }

    fn add_topic(&mut self, topic: Topic) {
        for t in &topic.triggers {
            for q in [&t.previous, &t.current].into_iter().flatten() {
                self.need(&t.resource, q);
            }
        }
        for t in topic.resource_types() {
            let urls = self.topics_of_type.entry(t.to_string()).or_default();
            if !urls.contains(&topic.url) {
                urls.push(topic.url.clone());
            }
        }
        self.topics.insert(topic.url.clone(), topic);
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
                seq: (-1, -1),
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

    /// Reads the topics and subscriptions again if a Subscription or a Basic was
    /// written since (on any node).
    pub fn refresh(&self) -> StoreResult<()> {
        let seq = (
            self.store.latest_seq_of("Subscription")?,
            self.store.latest_seq_of("Basic")?,
        );
        if seq == self.active().seq {
            return Ok(());
        }
        let mut registry = Registry {
            seq,
            ..Default::default()
        };
        for basic in self.topic_resources()? {
            match Topic::parse(self.registry, &basic) {
                Ok(topic) => registry.add_topic(topic),
                Err(e) => tracing::warn!(error = %e.message, "a subscription topic is not usable"),
            }
        }
        let mut after = 0;
        loop {
            let page = self
                .store
                .export_page(&all_of("Subscription"), after, 500)?;
            let Some((last, _)) = page.last() else { break };
            after = *last;
            for (_, stored) in &page {
                let Ok(value) = fhir_model::json::parse(stored.content.as_bytes()) else {
                    continue;
                };
                // The endpoint was checked when the subscription was written and is
                // checked again before each delivery.
                if let Ok(sub) = parse(self.registry, &registry.topics, &value, true) {
                    registry.add(self.registry, sub);
                }
            }
        }
        *self.active.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(registry);
        Ok(())
    }

    /// The Basic resources that represent subscription topics.
    fn topic_resources(&self) -> StoreResult<Vec<serde_json::Value>> {
        let code = format!(
            "{}|{}",
            super::topic::TOPIC_SYSTEM,
            super::topic::TOPIC_CODE
        );
        let pairs = vec![("code".to_string(), code)];
        let Ok(query) = fhir_search::parse(self.registry, Some("Basic"), &pairs, false) else {
            return Ok(Vec::new());
        };
        let request = SearchRequest {
            query,
            count: 1000,
            total: Total::None,
            ..Default::default()
        };
        let page = self.store.search(&request)?;
        Ok(page
            .matches
            .iter()
            .filter_map(|m| fhir_model::json::parse(m.content.as_bytes()).ok())
            .collect())
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
            let mut out = Events {
                now: fhir_store::time::now_millis(),
                events: Vec::new(),
            };
            let mut versions = Versions::new(self.registry, &registry.needed);
            for (res_type, of_type) in &registry.by_type {
                let changed: Vec<&Change> = changes
                    .iter()
                    .filter(|c| &c.res_type == res_type && c.method != "DELETE")
                    .collect();
                if changed.is_empty() {
                    continue;
                }
                let candidates =
                    self.candidates(ops, res_type, of_type, &changed, &mut versions)?;
                self.record(ops, of_type, &changed, candidates, &mut out, &mut versions)?;
            }
            super::triggers::dispatch(ops, &registry, &changes, &mut out, &mut versions)?;
            ops.add_events(&out.events)?;
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
        versions: &mut Versions<'_>,
    ) -> StoreResult<HashMap<usize, HashSet<Version>>> {
        let mut out: HashMap<usize, HashSet<Version>> = HashMap::new();
        for c in changed {
            for &i in &of_type.always {
                out.entry(i)
                    .or_default()
                    .insert((c.res_id.clone(), c.version));
            }
        }
        if of_type.anchored.is_empty() {
            return Ok(out);
        }
        for c in changed {
            let Some(version) = versions.get(ops, res_type, &c.res_id, c.version)? else {
                continue;
            };
            let keys = keys_of(&version.index);
            for k in &keys {
                for &i in of_type.anchored.get(k).into_iter().flatten() {
                    out.entry(i)
                        .or_default()
                        .insert((c.res_id.clone(), c.version));
                }
            }
        }
        Ok(out)
    }

    /// Searches once per distinct criteria among the candidates and records an event,
    /// in change order, for each subscription a change matches.
    fn record<'a>(
        &self,
        ops: &mut TxOps<'_, '_>,
        of_type: &'a OfType,
        changed: &[&'a Change],
        candidates: HashMap<usize, HashSet<Version>>,
        out: &mut Events<'a>,
        versions: &mut Versions<'_>,
    ) -> StoreResult<()> {
        let mut by_criteria: HashMap<&str, (Vec<usize>, HashSet<Version>)> = HashMap::new();
        for (i, ids) in candidates {
            if of_type.exact.contains(&i) {
                // Its one token criterion is the key the resource carries: a match.
                for c in changed
                    .iter()
                    .filter(|c| ids.contains(&(c.res_id.clone(), c.version)))
                {
                    out.due(&of_type.subs[i].id, c);
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
            let these: Vec<&'a Change> = changed
                .iter()
                .copied()
                .filter(|c| ids.contains(&(c.res_id.clone(), c.version)))
                .collect();
            let matched = self.matching(ops, &of_type.subs[subs[0]], &these, versions)?;
            for c in these
                .iter()
                .filter(|c| matched.contains(&(c.res_id.clone(), c.version)))
            {
                for &i in &subs {
                    out.due(&of_type.subs[i].id, c);
                }
            }
        }
        Ok(())
    }

    /// The changes (id, version) among `changes` that the subscription's criteria
    /// match: in memory on the version that made the change when every criterion can
    /// be decided from the resource alone, else by a search with `_id` as the data
    /// stands now.
    fn matching(
        &self,
        ops: &mut TxOps<'_, '_>,
        sub: &Active,
        changes: &[&Change],
        versions: &mut Versions<'_>,
    ) -> StoreResult<HashSet<Version>> {
        let parsed =
            fhir_search::parse_query_string(self.registry, Some(&sub.res_type), &sub.query, false);
        if let Some(query) = parsed.ok().filter(fhir_search::matcher::decidable) {
            let mut out = HashSet::new();
            for c in changes {
                let Some(v) = versions.get(ops, &sub.res_type, &c.res_id, c.version)? else {
                    continue;
                };
                if v.matches(&sub.res_type, &query) {
                    out.insert((c.res_id.clone(), c.version));
                }
            }
            return Ok(out);
        }
        let ids: Vec<&str> = {
            let mut seen = HashSet::new();
            changes
                .iter()
                .map(|c| c.res_id.as_str())
                .filter(|i| seen.insert(*i))
                .collect()
        };
        let mut found = HashSet::new();
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
            found.extend(page.matches.into_iter().map(|m| m.res_id));
        }
        Ok(changes
            .iter()
            .filter(|c| found.contains(&c.res_id))
            .map(|c| (c.res_id.clone(), c.version))
            .collect())
    }
}
