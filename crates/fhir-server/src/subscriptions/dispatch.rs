//! The dispatcher: one thread per node that takes committed changes out of the store's
//! change feed and records, in the same transaction, an event for each change that
//! matches a subscription: criteria-based ones in [`super::criteria`], topic-based
//! ones in [`super::triggers`], the events of a batch written together at its end.
//! It also keeps the [`Registry`] of subscriptions and topics, read again whenever a
//! Subscription or Basic resource was written (on any node: the highest `seq` of the
//! type changes).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use fhir_search::SearchRegistry;
use fhir_store::changes::{Change, NewEvent};
use fhir_store::{ExportQuery, Population, SearchRequest, Store, StoreResult, Total};

use super::criteria::OfType;
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
        match (sub.status.as_str(), &sub.topic) {
            ("active", None) => {
                let parsed = fhir_search::parse_query_string(
                    registry,
                    Some(&sub.res_type),
                    &sub.query,
                    false,
                )
                .ok();
                if let Some(q) = &parsed {
                    self.need(&sub.res_type, q);
                }
                self.by_id.insert(sub.id.clone(), sub.clone());
                self.by_type
                    .entry(sub.res_type.clone())
                    .or_default()
                    .add(parsed, sub);
            }
            ("requested", Some(_)) => self.requested.push(sub),
            ("active" | "error", Some(t)) => {
                for (res_type, q) in &t.filters {
                    self.need(res_type, q);
                }
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
                super::criteria::record(ops, of_type, &changed, &mut out, &mut versions)?;
            }
            super::triggers::dispatch(ops, &registry, &changes, &mut out, &mut versions)?;
            ops.add_events(&out.events)?;
            Ok(changes.len())
        })
    }
}
