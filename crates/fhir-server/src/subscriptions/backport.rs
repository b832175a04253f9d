//! Topic-based Subscriptions as the Subscriptions Backport IG profiles R4's
//! Subscription (StructureDefinition-backport-subscription): `criteria` is the topic's
//! canonical URL, `_criteria`'s `backport-filter-criteria` extensions narrow it with
//! search-style filters (`Encounter?patient=Patient/123`, or `patient=…` for every
//! type the topic watches), `channel.payload`'s `backport-payload-content` extension
//! says how much each notification carries (`empty`, `id-only`, `full-resource`), and
//! `channel`'s `backport-heartbeat-period`, `backport-timeout` and
//! `backport-max-count` extensions shape delivery. This module reads them; errors name
//! the element.

use std::collections::HashMap;

use fhir_search::{SearchQuery, SearchRegistry};
use serde_json::Value;

use super::topic::{parse_criteria, Topic};
use super::{invalid, Invalid};

const IG: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/";

/// How much of the focus resources a notification carries (backport-payload-content).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    Empty,
    IdOnly,
    FullResource,
}

impl Content {
    pub fn parse(code: &str) -> Option<Content> {
        match code {
            "empty" => Some(Content::Empty),
            "id-only" => Some(Content::IdOnly),
            "full-resource" => Some(Content::FullResource),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Content::Empty => "empty",
            Content::IdOnly => "id-only",
            Content::FullResource => "full-resource",
        }
    }
}

/// A topic-based subscription's topic, filters and notification settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSubscription {
    /// The topic's canonical URL.
    pub url: String,
    /// The types the topic's triggers watch.
    pub resource_types: Vec<String>,
    /// Filters by resource type: a change of that type must match all of them.
    pub filters: Vec<(String, SearchQuery)>,
    pub content: Content,
    /// `backport-heartbeat-period` (seconds).
    pub heartbeat: Option<u64>,
    /// `backport-timeout` (seconds).
    pub timeout: Option<u64>,
    /// `backport-max-count`.
    pub max_count: Option<u64>,
}

impl TopicSubscription {
    /// Whether a version of `res_type` passes this subscription's filters.
    pub fn passes(&self, res_type: &str, version: &super::topic::Loaded) -> bool {
        self.filters
            .iter()
            .filter(|(t, _)| t == res_type)
            .all(|(t, q)| version.matches(t, q))
    }
}

/// The extensions of `node` with the IG's extension `name`.
fn ig_extensions<'a>(node: Option<&'a Value>, name: &'a str) -> impl Iterator<Item = &'a Value> {
    node.and_then(|n| n.get("extension"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(move |e| {
            e.get("url")
                .and_then(Value::as_str)
                .and_then(|u| u.strip_prefix(IG))
                == Some(name)
        })
}

fn unsigned(channel: &Value, name: &str, at: &str) -> Result<Option<u64>, Invalid> {
    match ig_extensions(Some(channel), name).next() {
        None => Ok(None),
        Some(e) => e
            .get("valueUnsignedInt")
            .or_else(|| e.get("valuePositiveInt"))
            .and_then(Value::as_u64)
            .map(Some)
            .ok_or_else(|| invalid(format!("{name} needs a whole number"), at)),
    }
}

/// Reads the topic-based parts of a Subscription whose criteria is `url`.
pub fn parse(
    registry: &SearchRegistry,
    topics: &HashMap<String, Topic>,
    resource: &Value,
    url: &str,
) -> Result<TopicSubscription, Invalid> {
    let topic = topics.get(url).ok_or_else(|| {
        invalid(
            format!("'{url}' is neither a search (Type?params) nor a subscription topic this server knows"),
            "Subscription.criteria",
        )
    })?;
    let types: Vec<String> = topic.resource_types().map(str::to_string).collect();
    let mut filters = Vec::new();
    for (i, f) in ig_extensions(resource.get("_criteria"), "backport-filter-criteria").enumerate() {
        let at = format!("Subscription.criteria.extension[{i}]");
        let text = f
            .get("valueString")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("a filter criteria needs valueString", &at))?;
        filters.extend(filter(registry, &types, text).map_err(|m| invalid(m, &at))?);
    }
    let channel = resource.get("channel").unwrap_or(&Value::Null);
    // conformance.md: a custom channel this server does not deliver over is refused.
    if let Some(custom) = ig_extensions(channel.get("_type"), "backport-channel-type").next() {
        let code = custom
            .pointer("/valueCoding/code")
            .and_then(Value::as_str)
            .unwrap_or("");
        return Err(invalid(
            format!("custom channel type '{code}' is not supported (rest-hook and websocket are)"),
            "Subscription.channel.type.extension",
        ));
    }
    let content = match ig_extensions(channel.get("_payload"), "backport-payload-content").next() {
        None => {
            return Err(invalid(
                "a topic-based Subscription says how much a notification carries: channel.payload's backport-payload-content extension (empty, id-only or full-resource)",
                "Subscription.channel.payload",
            ))
        }
        Some(e) => {
            let code = e.get("valueCode").and_then(Value::as_str).unwrap_or("");
            Content::parse(code).ok_or_else(|| {
                invalid(
                    format!("payload content '{code}' is not empty, id-only or full-resource"),
                    "Subscription.channel.payload.extension",
                )
            })?
        }
    };
    let at = "Subscription.channel.extension";
    Ok(TopicSubscription {
        url: url.to_string(),
        resource_types: types,
        filters,
        content,
        heartbeat: unsigned(channel, "backport-heartbeat-period", at)?,
        timeout: unsigned(channel, "backport-timeout", at)?,
        max_count: unsigned(channel, "backport-max-count", at)?,
    })
}

/// One filter criteria: `Type?params` for that type (one the topic watches), or
/// `params` for each watched type that has all its parameters.
fn filter(
    registry: &SearchRegistry,
    types: &[String],
    text: &str,
) -> Result<Vec<(String, SearchQuery)>, String> {
    if let Some((t, _)) = text.split_once('?') {
        if !types.iter().any(|x| x == t) {
            return Err(format!(
                "filter '{text}' is about {t}, which the topic does not watch ({})",
                types.join(", ")
            ));
        }
        return Ok(vec![(t.to_string(), parse_criteria(registry, t, text)?)]);
    }
    let mut out = Vec::new();
    let mut last_error = String::new();
    for t in types {
        match parse_criteria(registry, t, text) {
            Ok(q) => out.push((t.clone(), q)),
            Err(e) => last_error = e,
        }
    }
    if out.is_empty() {
        return Err(last_error);
    }
    Ok(out)
}
