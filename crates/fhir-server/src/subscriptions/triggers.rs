//! Topic-based matching, inside the dispatcher's transaction: for each change of a type
//! some topic watches, the version before and the version after are read once
//! ([`Versions`]), each of the topic's resource triggers is tried on them
//! ([`super::topic::Trigger::fires`]), and when one fires every subscription to the
//! topic whose filters the resource passes gets a numbered event — due for delivery
//! when the subscription is active, kept unsent (but counted, for `$status` and
//! `$events`) when it is in error (errors.md: the server SHALL go on counting).

use fhir_store::changes::Change;
use fhir_store::{StoreResult, TxOps};

use super::batch::{Events, Versions};
use super::registry::Registry;
use super::topic::{self, Interaction};

/// Records the events that `changes` make for topic-based subscriptions.
pub fn dispatch<'a>(
    ops: &mut TxOps<'_, '_>,
    subs: &'a Registry,
    changes: &'a [Change],
    out: &mut Events<'a>,
    versions: &mut Versions<'_>,
) -> StoreResult<()> {
    for c in changes {
        let Some(urls) = subs.topics_of_type.get(&c.res_type) else {
            continue;
        };
        if !urls.iter().any(|u| subs.by_topic.contains_key(u)) {
            continue;
        }
        let deleted = c.method == "DELETE";
        let current = match deleted {
            true => None,
            false => versions.get(ops, &c.res_type, &c.res_id, c.version)?,
        };
        let previous = match c.version > 1 {
            true => versions.get(ops, &c.res_type, &c.res_id, c.version - 1)?,
            false => None,
        };
        let interaction = match (deleted, &previous) {
            (true, None) => continue,
            (true, Some(_)) => Interaction::Delete,
            (false, None) => Interaction::Create,
            (false, Some(_)) => Interaction::Update,
        };
        let change = topic::Change {
            interaction,
            previous: previous.as_deref(),
            current: current.as_deref(),
        };
        let Some(focus) = change.current.or(change.previous) else {
            continue;
        };
        for url in urls {
            let (Some(topic), Some(list)) = (subs.topics.get(url), subs.by_topic.get(url)) else {
                continue;
            };
            let fired = topic
                .triggers
                .iter()
                .filter(|t| t.resource == c.res_type)
                .any(|t| t.fires(versions.registry(), &change));
            if !fired {
                continue;
            }
            for sub in list {
                let passes = sub
                    .topic
                    .as_ref()
                    .is_some_and(|t| t.passes(&c.res_type, focus));
                if passes {
                    let due = (sub.status == "active").then_some(out.now);
                    out.add(&sub.id, c, due);
                }
            }
        }
    }
    Ok(())
}
