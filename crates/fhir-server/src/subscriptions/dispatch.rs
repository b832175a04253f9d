//! The dispatcher: one thread per node that takes committed changes out of the store's
//! change feed and records, in the same transaction, an event for each change that
//! matches a subscription: criteria-based ones in [`super::criteria`], topic-based
//! ones in [`super::triggers`], the events of a batch written together at its end.
//! It also keeps the [`Registry`] of subscriptions and topics, read again whenever a
//! Subscription or Basic resource was written (on any node: the highest `seq` of the
//! type changes).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use fhir_search::SearchRegistry;
use fhir_store::changes::Change;
use fhir_store::{ExportQuery, Population, SearchRequest, Store, StoreResult, Total};

use super::batch::{Events, Versions};
use super::handoff::Handoff;
use super::parse;
use super::registry::Registry;
use super::topic::Topic;

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

/// How often the feed is read when this node committed no change.
const POLL: Duration = Duration::from_millis(200);
/// The shortest time between the starts of two batches (each batch's statements cost
/// the same however few changes it takes).
const BATCH_EVERY: Duration = Duration::from_millis(100);
/// Changes taken per transaction.
const BATCH: usize = 500;

pub struct Dispatcher {
    store: Arc<Store>,
    registry: &'static SearchRegistry,
    active: RwLock<Arc<Registry>>,
    /// The events recorded claimed by this node, for its deliverer.
    pub handoff: Handoff,
}

impl Dispatcher {
    pub fn new(
        store: Arc<Store>,
        registry: &'static SearchRegistry,
        handoff: Handoff,
    ) -> Dispatcher {
        Dispatcher {
            store,
            registry,
            active: RwLock::new(Arc::new(Registry {
                seq: (-1, -1),
                ..Default::default()
            })),
            handoff,
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
        // When the last batch that took changes began.
        let now = std::time::Instant::now;
        let mut last = now().checked_sub(BATCH_EVERY).unwrap_or_else(now);
        // Whether this node committed changes since the last batch (else: a poll).
        let mut woken = false;
        loop {
            let started = now();
            match self.dispatch_once(!woken) {
                Ok(0) => {}
                Ok(n) => {
                    last = started;
                    if n >= BATCH {
                        continue;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "subscription dispatch failed; retrying"),
            }
            // This node's next committed change wakes it (other nodes' are found by
            // the poll): at once if the last batch began long enough ago, so that a
            // quiet server notifies within milliseconds; under a steady load, batches
            // begin at most every BATCH_EVERY, each with the changes since the last.
            woken = self.store.wait_for_changes(POLL);
            if woken {
                std::thread::sleep(BATCH_EVERY.saturating_sub(last.elapsed()));
            }
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
        // Writes of the types subscribed to keep their versions in memory for the
        // next batch, with the index rows the criteria compare.
        let watched = registry
            .needed
            .iter()
            .map(|(t, codes)| (t.clone(), Arc::new(codes.clone())))
            .collect::<fhir_store::recent::Watched>();
        let watched = (!watched.is_empty()).then_some(watched);
        self.store.recent().watch(watched);
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
    /// changes it took. Events that may go out at once are recorded claimed by this
    /// node and, once committed, handed to its deliverer ([`Handoff`]). With
    /// `ask_first` (a poll, not a wake-up by this node's commit), a read says first
    /// whether there is anything to take, so that an idle poll opens no write
    /// transaction (on SQLite, that would hold up writers).
    pub fn dispatch_once(&self, ask_first: bool) -> StoreResult<usize> {
        if ask_first && !self.store.has_changes()? {
            return Ok(0);
        }
        let now = fhir_store::time::now_millis();
        let claim = self.handoff.claim(now);
        let (taken, claimed) = self.store.transaction(|ops| {
            let changes = ops.take_changes(BATCH)?;
            if changes.is_empty() {
                return Ok((0, Vec::new()));
            }
            // Read after the changes were taken: a subscription committed before any
            // of them is known.
            self.refresh()?;
            let registry = self.active();
            let mut out = Events {
                now,
                events: Vec::new(),
            };
            let recent = self.store.recent();
            let mut versions = Versions::new(self.registry, &registry.needed, recent);
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
            let claimed = ops.add_events(&out.events, Some(&claim))?;
            Ok((changes.len(), claimed))
        })?;
        self.handoff.hand(claimed, claim.until);
        Ok(taken)
    }
}
