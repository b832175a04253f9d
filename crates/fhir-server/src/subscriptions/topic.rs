//! Subscription topics as the Subscriptions Backport IG represents them in R4: a
//! `Basic` resource with code `http://hl7.org/fhir/fhir-types|SubscriptionTopic` whose
//! cross-version extensions (`…/StructureDefinition/extension-SubscriptionTopic.url`,
//! `.resourceTrigger`, `.canFilterBy`…, under the R5 `5.0` or R4B `4.3` prefix) carry
//! the R5 SubscriptionTopic's elements. This module reads a topic ([`Topic::parse`],
//! with errors naming the extension) and decides whether a change fires one of its
//! resource triggers ([`Trigger::fires`]): the interaction, `queryCriteria`
//! (`previous` on the version before the change, `current` on the changed version,
//! `resultForCreate`/`resultForDelete`, `requireBoth`), both matched in memory by the
//! search engine's matcher, and `fhirPathCriteria` with `%previous` and `%current`.

use fhir_search::{SearchQuery, SearchRegistry};
use serde_json::Value;

use super::{invalid, Invalid};

/// The coding that marks a `Basic` resource as a subscription topic.
pub const TOPIC_SYSTEM: &str = "http://hl7.org/fhir/fhir-types";
pub const TOPIC_CODE: &str = "SubscriptionTopic";

/// A subscription topic.
#[derive(Debug, Clone)]
pub struct Topic {
    /// Its canonical URL (what `Subscription.criteria` names).
    pub url: String,
    pub version: Option<String>,
    pub title: Option<String>,
    /// `draft`, `active`, `retired` or `unknown`.
    pub status: String,
    pub triggers: Vec<Trigger>,
    /// `canFilterBy`: (resource type, filter parameter).
    pub can_filter_by: Vec<(String, String)>,
}

/// What a change did to a resource, as a topic's `supportedInteraction` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interaction {
    Create,
    Update,
    Delete,
}

impl Interaction {
    fn parse(code: &str) -> Option<Interaction> {
        match code {
            "create" => Some(Interaction::Create),
            "update" => Some(Interaction::Update),
            "delete" => Some(Interaction::Delete),
            _ => None,
        }
    }
}

/// One `resourceTrigger`.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// The resource type it watches.
    pub resource: String,
    /// `supportedInteraction` (empty: all three).
    pub interactions: Vec<Interaction>,
    pub previous: Option<SearchQuery>,
    pub current: Option<SearchQuery>,
    /// `resultForCreate` is `test-passes` (the default is `test-fails`).
    pub create_passes: bool,
    /// `resultForDelete` is `test-passes`.
    pub delete_passes: bool,
    pub require_both: bool,
    pub fhirpath: Option<fhirpath::Expression>,
}

/// A change as a trigger sees it: the interaction and the versions before and after
/// (`None` before a create and after a delete).
pub struct Change<'a> {
    pub interaction: Interaction,
    pub previous: Option<&'a Loaded>,
    pub current: Option<&'a Loaded>,
}

/// A version with its index values, extracted once for every topic and filter. Its
/// JSON is parsed only if a FHIRPath criterion needs it, when the index values came
/// with it (from the write that made it: fhir-store `recent`).
pub struct Loaded {
    pub id: String,
    content: Option<std::sync::Arc<str>>,
    resource: std::cell::OnceCell<Value>,
    pub index: fhir_search::IndexValues,
}

impl Loaded {
    /// A version kept in memory: with the index rows its write kept when they cover
    /// `codes`, else parsed and extracted as [`Loaded::with_params`] (`None`: its JSON
    /// does not parse).
    pub fn kept(
        registry: &SearchRegistry,
        res_type: &str,
        id: &str,
        kept: &fhir_store::recent::RecentVersion,
        codes: &std::collections::HashSet<String>,
    ) -> Option<Loaded> {
        let Some(index) = kept.index_of(codes) else {
            let value = fhir_model::json::parse(kept.content.as_bytes()).ok()?;
            return Some(Loaded::with_params(registry, res_type, value, codes));
        };
        Some(Loaded {
            id: id.to_string(),
            content: Some(kept.content.clone()),
            resource: std::cell::OnceCell::new(),
            index: index.clone(),
        })
    }

    /// The version's JSON (`null` if it does not parse).
    pub fn resource(&self) -> &Value {
        self.resource.get_or_init(|| {
            let content = self.content.as_deref().unwrap_or("null");
            fhir_model::json::parse(content.as_bytes()).unwrap_or(Value::Null)
        })
    }

    /// A version with the index values of every parameter.
    pub fn new(registry: &SearchRegistry, res_type: &str, resource: Value) -> Loaded {
        let index = fhir_search::extract(registry, res_type, &resource);
        Loaded::of(resource, index)
    }

    /// A version with the index values of the parameters `codes` only: matching must
    /// not compare others.
    pub fn with_params(
        registry: &SearchRegistry,
        res_type: &str,
        resource: Value,
        codes: &std::collections::HashSet<String>,
    ) -> Loaded {
        let index = fhir_search::extract_only(registry, res_type, &resource, codes);
        Loaded::of(resource, index)
    }

    fn of(resource: Value, index: fhir_search::IndexValues) -> Loaded {
        let id = resource
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        Loaded {
            id,
            content: None,
            resource: std::cell::OnceCell::from(resource),
            index,
        }
    }

    /// Whether this version matches `query` (decidable in memory: checked when read).
    pub fn matches(&self, res_type: &str, query: &SearchQuery) -> bool {
        fhir_search::matcher::matches(query, res_type, &self.id, &self.index).unwrap_or(false)
    }
}

/// Whether `resource` is a `Basic` that represents a subscription topic.
pub fn is_topic(resource: &Value) -> bool {
    resource
        .pointer("/code/coding")
        .and_then(Value::as_array)
        .is_some_and(|codings| {
            codings.iter().any(|c| {
                c.get("system").and_then(Value::as_str) == Some(TOPIC_SYSTEM)
                    && c.get("code").and_then(Value::as_str) == Some(TOPIC_CODE)
            })
        })
}

/// The element name of a SubscriptionTopic cross-version extension URL.
fn element_of(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("http://hl7.org/fhir/")?;
    let (_version, rest) = rest.split_once('/')?;
    rest.strip_prefix("StructureDefinition/extension-SubscriptionTopic.")
}

/// The extensions of `node` (`extension` or `modifierExtension`) with their index.
fn extensions<'a>(node: &'a Value, key: &str) -> impl Iterator<Item = (usize, &'a Value)> {
    node.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
}

/// The `value[x]` of an extension as text (uri, string, code, markdown, canonical).
fn text_value(ext: &Value) -> Option<&str> {
    [
        "valueUri",
        "valueString",
        "valueCode",
        "valueMarkdown",
        "valueCanonical",
        "valueUrl",
    ]
    .iter()
    .find_map(|k| ext.get(*k).and_then(Value::as_str))
}

/// The sub-extensions of a complex extension named `name`.
fn parts<'a>(ext: &'a Value, name: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    extensions(ext, "extension")
        .map(|(_, e)| e)
        .filter(move |e| e.get("url").and_then(Value::as_str) == Some(name))
}

fn part_text<'a>(ext: &'a Value, name: &'a str) -> Option<&'a str> {
    parts(ext, name).find_map(text_value)
}

impl Topic {
    /// Reads a topic from its `Basic` form; `Err` says what is wrong and where.
    pub fn parse(registry: &SearchRegistry, basic: &Value) -> Result<Topic, Invalid> {
        let mut topic = Topic {
            url: String::new(),
            version: None,
            title: None,
            status: "unknown".into(),
            triggers: Vec::new(),
            can_filter_by: Vec::new(),
        };
        for (i, ext) in extensions(basic, "modifierExtension") {
            let url = ext.get("url").and_then(Value::as_str).unwrap_or("");
            if element_of(url) == Some("status") {
                topic.status = text_value(ext).unwrap_or("unknown").to_string();
            } else {
                return Err(invalid(
                    format!("modifier extension '{url}' is not understood"),
                    &format!("Basic.modifierExtension[{i}]"),
                ));
            }
        }
        for (i, ext) in extensions(basic, "extension") {
            let at = format!("Basic.extension[{i}]");
            let url = ext.get("url").and_then(Value::as_str).unwrap_or("");
            let text = text_value(ext).map(str::to_string);
            match element_of(url) {
                Some("url") => topic.url = text.unwrap_or_default(),
                Some("version") => topic.version = text,
                Some("title") => topic.title = text,
                Some("resourceTrigger") => topic.triggers.push(Trigger::parse(registry, ext, &at)?),
                Some("canFilterBy") => {
                    let resource = part_text(ext, "resource").map(type_of).unwrap_or("");
                    let param = part_text(ext, "filterParameter").unwrap_or("");
                    topic
                        .can_filter_by
                        .push((resource.to_string(), param.to_string()));
                }
                _ => {}
            }
        }
        if topic.url.is_empty() {
            return Err(invalid(
                "a subscription topic needs a canonical URL (extension-SubscriptionTopic.url)",
                "Basic.extension",
            ));
        }
        if topic.triggers.is_empty() {
            return Err(invalid(
                "a subscription topic needs a resourceTrigger (this server does not support eventTrigger)",
                "Basic.extension",
            ));
        }
        Ok(topic)
    }

    /// The resource types its triggers watch.
    pub fn resource_types(&self) -> impl Iterator<Item = &str> {
        self.triggers.iter().map(|t| t.resource.as_str())
    }
}

/// `http://hl7.org/fhir/StructureDefinition/Encounter` or `Encounter` → `Encounter`.
fn type_of(uri: &str) -> &str {
    uri.strip_prefix("http://hl7.org/fhir/StructureDefinition/")
        .unwrap_or(uri)
}

impl Trigger {
    fn parse(registry: &SearchRegistry, ext: &Value, at: &str) -> Result<Trigger, Invalid> {
        let resource = type_of(part_text(ext, "resource").unwrap_or("")).to_string();
        if !registry.definitions().is_resource_type(&resource) {
            return Err(invalid(
                format!("resourceTrigger.resource '{resource}' is not an R4 resource type"),
                at,
            ));
        }
        let mut interactions = Vec::new();
        for code in parts(ext, "supportedInteraction").filter_map(text_value) {
            let i = Interaction::parse(code).ok_or_else(|| {
                invalid(
                    format!("supportedInteraction '{code}' is not create, update or delete"),
                    at,
                )
            })?;
            interactions.push(i);
        }
        let criteria = parts(ext, "queryCriteria").next();
        let query = |name: &str| -> Result<Option<SearchQuery>, Invalid> {
            let Some(text) = criteria.and_then(|c| part_text(c, name)) else {
                return Ok(None);
            };
            parse_criteria(registry, &resource, text)
                .map(Some)
                .map_err(|m| invalid(format!("queryCriteria.{name}: {m}"), at))
        };
        let result = |name: &str| criteria.and_then(|c| part_text(c, name)) == Some("test-passes");
        let require_both = criteria
            .and_then(|c| parts(c, "requireBoth").find_map(|e| e.get("valueBoolean")))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let fhirpath = match part_text(ext, "fhirPathCriteria") {
            Some(source) => Some(
                fhirpath::compile(source)
                    .map_err(|e| invalid(format!("fhirPathCriteria '{source}': {e}"), at))?,
            ),
            None => None,
        };
        Ok(Trigger {
            previous: query("previous")?,
            current: query("current")?,
            create_passes: result("resultForCreate"),
            delete_passes: result("resultForDelete"),
            require_both,
            fhirpath,
            resource,
            interactions,
        })
    }

    /// Whether the change fires this trigger.
    pub fn fires(&self, registry: &SearchRegistry, change: &Change<'_>) -> bool {
        if !self.interactions.is_empty() && !self.interactions.contains(&change.interaction) {
            return false;
        }
        self.query_passes(change) && self.fhirpath_passes(registry, change)
    }

    fn query_passes(&self, change: &Change<'_>) -> bool {
        let test = |query: &SearchQuery, version: Option<&Loaded>, otherwise: bool| match version {
            Some(v) => v.matches(&self.resource, query),
            None => otherwise,
        };
        let previous = self
            .previous
            .as_ref()
            .map(|q| test(q, change.previous, self.create_passes));
        let current = self
            .current
            .as_ref()
            .map(|q| test(q, change.current, self.delete_passes));
        match (previous, current) {
            (Some(p), Some(c)) if self.require_both => p && c,
            (Some(p), Some(c)) => p || c,
            (Some(one), None) | (None, Some(one)) => one,
            (None, None) => true,
        }
    }

    fn fhirpath_passes(&self, registry: &SearchRegistry, change: &Change<'_>) -> bool {
        let Some(expr) = &self.fhirpath else {
            return true;
        };
        let defs = registry.definitions();
        let mut ctx = fhirpath::EvalContext::with_definitions(defs);
        ctx.set_lenient(true);
        let empty = fhirpath::Collection::new();
        match change.previous {
            Some(p) => ctx.set_json_variable("previous", p.resource()),
            None => ctx.set_variable("previous", empty.clone()),
        };
        match change.current {
            Some(c) => ctx.set_json_variable("current", c.resource()),
            None => ctx.set_variable("current", empty),
        };
        let Some(focus) = change.current.or(change.previous) else {
            return false;
        };
        ctx.set_resource(focus.resource());
        match expr.evaluate(&ctx, focus.resource()) {
            Ok(result) => result.to_json() == serde_json::json!([true]),
            Err(e) => {
                tracing::debug!(error = %e, expression = expr.source(), "fhirPathCriteria failed");
                false
            }
        }
    }
}

/// A `queryCriteria` or filter: `param=value&…`, optionally after `Type?`; every
/// criterion must be decidable from the resource alone.
pub fn parse_criteria(
    registry: &SearchRegistry,
    res_type: &str,
    text: &str,
) -> Result<SearchQuery, String> {
    let query = match text.split_once('?') {
        Some((t, q)) if t == res_type => q,
        Some((t, _)) => return Err(format!("'{text}' is about {t}, not {res_type}")),
        None => text,
    };
    let parsed = fhir_search::parse_query_string(registry, Some(res_type), query, true)
        .map_err(|e| format!("'{text}': {e}"))?;
    if let Some(c) = parsed.clauses.iter().find(|c| {
        !fhir_search::matcher::decidable(&SearchQuery {
            clauses: vec![(*c).clone()],
            ..parsed.clone()
        })
    }) {
        return Err(format!(
            "'{}' needs other resources (a chain, _has, _text, _list, _filter, near or a composite) and cannot be checked on a change",
            c.name()
        ));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The IG's R4 example topic (Basic-r4-encounter-complete), trimmed.
    pub(crate) fn encounter_complete() -> Value {
        let v5 = "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic";
        let v43 = "http://hl7.org/fhir/4.3/StructureDefinition/extension-SubscriptionTopic";
        json!({"resourceType": "Basic", "id": "r4-encounter-complete",
          "modifierExtension": [{"url": format!("{v5}.status"), "valueCode": "draft"}],
          "extension": [
            {"url": format!("{v5}.url"), "valueUri": "http://example.org/topic/encounter-complete"},
            {"url": format!("{v43}.resourceTrigger"), "extension": [
              {"url": "resource", "valueUri": "http://hl7.org/fhir/StructureDefinition/Encounter"},
              {"url": "supportedInteraction", "valueCode": "create"},
              {"url": "supportedInteraction", "valueCode": "update"},
              {"url": "queryCriteria", "extension": [
                {"url": "previous", "valueString": "status:not=finished"},
                {"url": "resultForCreate", "valueCode": "test-passes"},
                {"url": "current", "valueString": "status=finished"},
                {"url": "resultForDelete", "valueCode": "test-fails"},
                {"url": "requireBoth", "valueBoolean": true}]},
              {"url": "fhirPathCriteria", "valueString": "(%previous.id.empty() or (%previous.status != 'finished')) and (%current.status = 'finished')"}]},
            {"url": format!("{v43}.canFilterBy"), "extension": [
              {"url": "resource", "valueUri": "Encounter"},
              {"url": "filterParameter", "valueString": "subject"}]}],
          "code": {"coding": [{"system": TOPIC_SYSTEM, "code": TOPIC_CODE}]}})
    }

    fn enc(status: &str) -> Loaded {
        let r = json!({"resourceType": "Encounter", "id": "e1", "status": status,
            "class": {"code": "IMP"}});
        Loaded::new(SearchRegistry::r4(), "Encounter", r)
    }

    #[test]
    fn the_igs_encounter_complete_topic_fires_on_completion_only() {
        let reg = SearchRegistry::r4();
        let topic = Topic::parse(reg, &encounter_complete()).unwrap();
        assert_eq!(topic.url, "http://example.org/topic/encounter-complete");
        assert_eq!(
            topic.can_filter_by,
            vec![("Encounter".into(), "subject".into())]
        );
        let t = &topic.triggers[0];
        let (planned, finished) = (enc("planned"), enc("finished"));
        let fires = |interaction, previous, current| {
            t.fires(
                reg,
                &Change {
                    interaction,
                    previous,
                    current,
                },
            )
        };
        assert!(fires(Interaction::Update, Some(&planned), Some(&finished)));
        assert!(fires(Interaction::Create, None, Some(&finished)));
        assert!(!fires(
            Interaction::Update,
            Some(&finished),
            Some(&finished)
        ));
        assert!(!fires(Interaction::Update, Some(&finished), Some(&planned)));
        assert!(!fires(Interaction::Delete, Some(&finished), None));
    }

    #[test]
    fn a_bad_topic_is_refused_with_where() {
        let reg = SearchRegistry::r4();
        let mut b = encounter_complete();
        b["extension"][1]["extension"][3]["extension"][2]["valueString"] =
            json!("subject:Patient.name=x");
        let e = Topic::parse(reg, &b).unwrap_err();
        assert_eq!(e.at, "Basic.extension[1]");
        assert!(e.message.contains("queryCriteria.current"), "{}", e.message);
        b["extension"][1]["extension"][0]["valueUri"] = json!("Nothing");
        assert!(Topic::parse(reg, &b)
            .unwrap_err()
            .message
            .contains("Nothing"));
    }
}
