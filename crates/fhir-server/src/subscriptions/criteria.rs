//! Criteria-based matching, inside the dispatcher's transaction. The active
//! subscriptions of a type ([`OfType`]) are indexed by the anchor of their criteria
//! ([`super::anchor`]) and their criteria parsed once. For each change, in order, the
//! version it made is read once (only the parameters some criteria compares are
//! extracted), its anchor keys give the candidates (with the subscriptions that have no
//! anchor), and each candidate is decided: by its key alone when its criteria is one
//! token criterion; in memory by the search engine's matcher (fhir-search `matcher`)
//! when every criterion can be decided from the resource, once per distinct criteria;
//! otherwise (chains, `_has`, `_text`…) by a search with `_id` set to the candidates,
//! once per distinct criteria and batch, as the data stands in the transaction.

use std::collections::{HashMap, HashSet};

use fhir_search::{SearchQuery, SearchRegistry};
use fhir_store::changes::Change;
use fhir_store::{SearchRequest, StoreResult, Total, TxOps};

use super::anchor::{anchor, keys_of, Key};
use super::batch::{Events, Versions};
use super::Active;

/// Resource ids per matching search.
const IDS_PER_SEARCH: usize = 100;

/// The active criteria-based subscriptions of one resource type, indexed by anchor.
#[derive(Debug, Default)]
pub struct OfType {
    subs: Vec<Active>,
    /// Each subscription's criteria, parsed, when it can be decided in memory.
    decidable: Vec<Option<SearchQuery>>,
    /// Anchor key → the subscriptions (indexes into `subs`) anchored on it.
    anchored: HashMap<Key, Vec<usize>>,
    /// Subscriptions without an anchor: candidates for every change.
    always: Vec<usize>,
    /// Subscriptions whose criteria is their anchor: a candidate is a match.
    exact: HashSet<usize>,
}

impl OfType {
    /// Adds an active subscription with its criteria, parsed (`None`: they could not
    /// be, and a search will say why).
    pub fn add(&mut self, parsed: Option<SearchQuery>, active: Active) {
        let i = self.subs.len();
        match parsed.as_ref().and_then(anchor) {
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
        self.decidable
            .push(parsed.filter(fhir_search::matcher::decidable));
        self.subs.push(active);
    }

    /// The subscriptions that may match a version with these index values, each once.
    fn candidates(&self, index: &fhir_search::IndexValues) -> Vec<usize> {
        let mut out = self.always.clone();
        if !self.anchored.is_empty() {
            for k in keys_of(index) {
                out.extend(self.anchored.get(&k).into_iter().flatten());
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Criteria left to a search: the subscriptions that share it and the changes, in
/// order, it may match.
type Searched<'a> = HashMap<&'a str, (Vec<usize>, Vec<&'a Change>)>;

/// Records, in change order, an event for each subscription of `of_type` a change
/// matches.
pub fn record<'a>(
    ops: &mut TxOps<'_, '_>,
    of_type: &'a OfType,
    changed: &[&'a Change],
    out: &mut Events<'a>,
    versions: &mut Versions<'_>,
) -> StoreResult<()> {
    let mut searched: Searched<'a> = HashMap::new();
    for &c in changed {
        let Some(version) = versions.get(ops, &c.res_type, &c.res_id, c.version)? else {
            continue;
        };
        // One decision per distinct criteria for this version.
        let mut decided: HashMap<&str, bool> = HashMap::new();
        for i in of_type.candidates(&version.index) {
            let sub = &of_type.subs[i];
            if of_type.exact.contains(&i) {
                // Its one token criterion is a key the version carries: a match.
                out.due(&sub.id, c);
                continue;
            }
            let Some(query) = &of_type.decidable[i] else {
                let (subs, changes) = searched.entry(sub.query.as_str()).or_default();
                if !subs.contains(&i) {
                    subs.push(i);
                }
                if !changes.last().is_some_and(|l| std::ptr::eq(*l, c)) {
                    changes.push(c);
                }
                continue;
            };
            let matched = *decided
                .entry(sub.query.as_str())
                .or_insert_with(|| version.matches(&sub.res_type, query));
            if matched {
                out.due(&sub.id, c);
            }
        }
    }
    for (subs, changes) in searched.into_values() {
        let found = searched_ids(ops, versions.registry(), &of_type.subs[subs[0]], &changes)?;
        for c in changes.iter().filter(|c| found.contains(&c.res_id)) {
            for &i in &subs {
                out.due(&of_type.subs[i].id, c);
            }
        }
    }
    Ok(())
}

/// The ids among `changes` that `sub`'s criteria match as the data stands, by a
/// search with `_id` (no paging, sorting or includes).
fn searched_ids(
    ops: &mut TxOps<'_, '_>,
    registry: &SearchRegistry,
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
    let mut found = HashSet::new();
    for chunk in ids.chunks(IDS_PER_SEARCH) {
        let mut pairs: Vec<(String, String)> = form_urlencoded::parse(sub.query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        pairs.push(("_id".into(), chunk.join(",")));
        let Ok(mut query) = fhir_search::parse(registry, Some(&sub.res_type), &pairs, false) else {
            continue;
        };
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
    Ok(found)
}
