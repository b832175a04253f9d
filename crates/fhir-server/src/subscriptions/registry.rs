//! The subscriptions and topics the dispatcher matches changes against, as last read
//! from the store: criteria-based subscriptions by resource type, topic-based ones by
//! topic, and the search parameters each resource type needs extracted.

use std::collections::{HashMap, HashSet};

use fhir_search::SearchRegistry;

use super::criteria::OfType;
use super::topic::Topic;
use super::Active;

/// The subscriptions and topics, as last read.
#[derive(Debug, Default)]
pub struct Registry {
    /// The highest `seq` of a Subscription and of a Basic version when they were read.
    pub(super) seq: (i64, i64),
    /// Active criteria-based subscriptions, by the resource type of their criteria.
    pub(super) by_type: HashMap<String, OfType>,
    /// Active subscriptions of both kinds, by id.
    pub(super) by_id: HashMap<String, Active>,
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
    pub(super) capability: std::sync::OnceLock<String>,
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
    pub(super) fn need(&mut self, res_type: &str, query: &fhir_search::SearchQuery) {
        let codes = self.needed.entry(res_type.to_string()).or_default();
        codes.extend(fhir_search::matcher::params_of(query).map(str::to_string));
    }

    pub(super) fn add(&mut self, registry: &SearchRegistry, sub: Active) {
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

    pub(super) fn add_topic(&mut self, topic: Topic) {
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
