//! Terminology written through the API as the terminology operations, search and
//! validation use it: what a canonical URL reaches, gathered from the store
//! (fhir-terminology `gather`) through the server's cache (fhir-terminology `cache`),
//! valid while the stored CodeSystems, ValueSets and ConceptMaps do not change. A
//! request that names the codes it is about reads large code systems kept as rows only
//! around those codes (`rows.rs`; such a gathering is not kept). All of it blocks on
//! the database: call it on a blocking thread.

mod rows;

pub(crate) use rows::{hierarchy, page as row_page, Expansion, Focus};

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use fhir_model::terminology::Terminology;
use fhir_store::{Store, StoreError};
use fhir_terminology::cache::{Cache, Fingerprint};
use fhir_terminology::gather::{gather, needs_gathering, Kind, Stored};
use fhir_terminology::TxError;
use serde_json::Value;

/// The stored resource types terminology is gathered from.
const STORED_TYPES: [&str; 3] = ["CodeSystem", "ValueSet", "ConceptMap"];

/// Stored terminology resources found by `url` search (`url|version`: with `version`
/// too; of several versions, the one written last: `terminology load` keeps each); the
/// first store error is kept (gathering stops at it) so that it is answered as what it
/// is.
struct FromStore<'a> {
    store: &'a Store,
    failed: std::cell::RefCell<Option<StoreError>>,
    /// The stored supplements, read once per gathering.
    supplements: std::cell::OnceCell<Vec<Value>>,
    /// The codes the request is about: code systems kept as rows are read around
    /// them. None: read whole.
    focus: Option<std::cell::RefCell<Focus>>,
    /// The code systems read partly, from rows: plain URL and rid.
    partly: std::cell::RefCell<Vec<(String, i64)>>,
}

impl<'a> FromStore<'a> {
    fn new(store: &'a Store, focus: Option<Focus>) -> FromStore<'a> {
        FromStore {
            store,
            failed: std::cell::RefCell::new(None),
            supplements: std::cell::OnceCell::new(),
            focus: focus.map(std::cell::RefCell::new),
            partly: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// A code system kept as rows, read around the focus.
    fn partly(&self, url: &str) -> Result<Option<Value>, StoreError> {
        let Some(focus) = &self.focus else {
            return Ok(None);
        };
        let from = focus.borrow().rows_from;
        let Some(system) = rows::row_system(self.store, url, from)? else {
            return Ok(None);
        };
        let found = rows::partial_code_system(self.store, &system, &focus.borrow())?;
        if found.is_some() {
            let plain = fhir_model::terminology::canonical_url(url).to_string();
            self.partly.borrow_mut().push((plain, system.rid));
        }
        Ok(found)
    }
}

/// A page of stored `res_type` resources matching `pairs`, without a total; an empty
/// page when the pairs do not make a search (a URL no search can name).
fn stored(
    store: &Store,
    res_type: &str,
    pairs: &[(String, String)],
    count: usize,
) -> Result<fhir_store::SearchPage, StoreError> {
    let registry = fhir_search::SearchRegistry::r4();
    let Ok(query) = fhir_search::parse(registry, Some(res_type), pairs, false) else {
        return Ok(fhir_store::SearchPage::default());
    };
    store.search(&fhir_store::SearchRequest {
        query,
        count,
        total: fhir_store::Total::None,
        ..Default::default()
    })
}

/// Search pairs from string slices.
fn pairs(of: &[(&str, &str)]) -> Vec<(String, String)> {
    of.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Most stored supplements read.
const MAX_SUPPLEMENTS: usize = 200;

/// The stored CodeSystems with `content: supplement` (at most `limit`).
fn stored_supplements(store: &Store, limit: usize) -> Result<Vec<Value>, StoreError> {
    let pairs = pairs(&[("content-mode", "supplement"), ("_sort", "-_lastUpdated")]);
    Ok(stored(store, "CodeSystem", &pairs, limit)?
        .matches
        .iter()
        .filter_map(|m| fhir_model::json::parse(m.content.as_bytes()).ok())
        .collect())
}

/// Whether any supplement is stored: then the packages' terminology is gathered too,
/// so that the supplements apply to the packages' code systems.
pub(crate) fn supplements_stored(store: &Store) -> Result<bool, StoreError> {
    Ok(!stored_supplements(store, 1)?.is_empty())
}

impl Stored for FromStore<'_> {
    fn supplements(&self, url: &str) -> std::result::Result<Vec<Value>, TxError> {
        if self.supplements.get().is_none() {
            match stored_supplements(self.store, MAX_SUPPLEMENTS) {
                Ok(all) => {
                    let _ = self.supplements.set(all);
                }
                Err(e) => return Err(self.fail(e)),
            }
        }
        let of = |v: &&Value| {
            v["supplements"]
                .as_str()
                .is_some_and(|s| fhir_model::terminology::canonical_url(s) == url)
        };
        // Of several versions of one supplement, the latest written (the first).
        let mut seen = std::collections::HashSet::new();
        Ok(self
            .supplements
            .get()
            .map(|all| {
                all.iter()
                    .filter(of)
                    .filter(|v| seen.insert(v["url"].as_str().unwrap_or("").to_string()))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    fn find(&self, kind: Kind, url: &str) -> std::result::Result<Option<Value>, TxError> {
        if kind == Kind::CodeSystem {
            match self.partly(url) {
                Ok(Some(cs)) => return Ok(Some(cs)),
                Ok(None) => {}
                Err(e) => return Err(self.fail(e)),
            }
        }
        let mut pairs = vec![("_sort".to_string(), "-_lastUpdated".to_string())];
        match url.split_once('|') {
            Some((url, version)) => {
                pairs.push(("url".to_string(), url.to_string()));
                // A token value: its separators escaped.
                let escaped = version
                    .replace('\\', "\\\\")
                    .replace(',', "\\,")
                    .replace('$', "\\$")
                    .replace('|', "\\|");
                pairs.push(("version".to_string(), escaped));
            }
            None => pairs.push(("url".to_string(), url.to_string())),
        }
        let found = match stored(self.store, kind.res_type(), &pairs, 1) {
            Ok(page) => page
                .matches
                .first()
                .and_then(|m| fhir_model::json::parse(m.content.as_bytes()).ok()),
            Err(e) => return Err(self.fail(e)),
        };
        if let (Kind::ValueSet, Some(focus), Some(vs)) = (kind, &self.focus, &found) {
            focus.borrow_mut().add_filter_values(vs);
        }
        Ok(found)
    }
}

impl FromStore<'_> {
    /// Keeps the store's error (gathering stops at it; it is answered as what it is).
    fn fail(&self, e: StoreError) -> TxError {
        *self.failed.borrow_mut() = Some(e);
        TxError::NotSupported {
            message: "the store cannot be read".into(),
            param: "url".into(),
        }
    }
}

/// The fingerprint of the stored terminology now (count and latest write of its types):
/// as read before, while no terminology was written since on this node alone with its
/// database (the store's terminology generation), else from the database.
fn fingerprint(store: &Store, cache: &Cache) -> Result<Fingerprint, StoreError> {
    // Read before the database is asked: a write meanwhile changes it.
    let generation = store.terminology_generation();
    if let Some(kept) = cache.fingerprint(generation) {
        return Ok(kept);
    }
    let read = store.fingerprint_of(&STORED_TYPES.map(str::to_string))?;
    cache.keep_fingerprint(generation, read);
    Ok(read)
}

/// What `kind`/`url` reaches, from the cache or gathered now; a store failure is the
/// outer error, a terminology one (unknown, unreadable) the inner.
pub(crate) fn gathered(
    store: &Store,
    cache: &Cache,
    core: &'static Terminology,
    kind: Kind,
    url: &str,
) -> Result<Result<Arc<Terminology>, TxError>, StoreError> {
    let fingerprint = fingerprint(store, cache)?;
    let gathered = gathered_about_at(store, cache, core, fingerprint, kind, url, None)?;
    Ok(gathered.map(|g| g.t))
}

/// What a gathering for an operation holds.
pub(crate) struct Gathered {
    pub t: Arc<Terminology>,
    /// The code systems in it read partly, from rows (plain URL and rid).
    pub partly: Vec<(String, i64)>,
}

/// What `kind`/`url` reaches for an operation about `focus`: from the cache, or
/// gathered now (and kept unless a code system was read partly).
pub(crate) fn gathered_about(
    store: &Store,
    cache: &Cache,
    core: &'static Terminology,
    kind: Kind,
    url: &str,
    focus: Focus,
) -> Result<Result<Gathered, TxError>, StoreError> {
    let fingerprint = fingerprint(store, cache)?;
    gathered_about_at(store, cache, core, fingerprint, kind, url, Some(focus))
}

fn gathered_about_at(
    store: &Store,
    cache: &Cache,
    core: &'static Terminology,
    fingerprint: Fingerprint,
    kind: Kind,
    url: &str,
    focus: Option<Focus>,
) -> Result<Result<Gathered, TxError>, StoreError> {
    let source = FromStore::new(store, focus);
    let t = cache.get_or_gather_partly(fingerprint, kind, url, || {
        let t = gather(core, &source, kind, url)?;
        Ok((t, source.partly.borrow().is_empty()))
    });
    let partly = source.partly.take();
    match source.failed.into_inner() {
        Some(e) => Err(e),
        None => Ok(t.map(|t| Gathered { t, partly })),
    }
}

/// What `kind`/`url` reaches when the request gives resources of its own
/// (`tx-resource`): those first, then the stored ones, code systems kept as rows read
/// around `focus` when there is one; gathered for this request alone (not kept).
pub(crate) fn gathered_given(
    store: &Store,
    core: &'static Terminology,
    kind: Kind,
    url: &str,
    given: &[Value],
    mut focus: Option<Focus>,
) -> Result<Result<Gathered, TxError>, StoreError> {
    for vs in given.iter().filter(|v| v["resourceType"] == "ValueSet") {
        if let Some(focus) = &mut focus {
            focus.add_filter_values(vs);
        }
    }
    let source = FromStore::new(store, focus);
    let overlay = fhir_terminology::gather::Given {
        resources: given,
        stored: &source,
    };
    let t = gather(core, &overlay, kind, url).map(Arc::new);
    let partly = source.partly.take();
    match source.failed.into_inner() {
        Some(e) => Err(e),
        None => Ok(t.map(|t| Gathered { t, partly })),
    }
}

/// Most stored ConceptMaps a `$translate` without `url` chooses from.
const MAX_STORED_MAPS: usize = 500;

/// The concept maps a `$translate` without `url` chooses from by its `source` and
/// `target` value sets: the packages' and the stored ones (of each URL the version
/// written last) whose source and target match. Like [`gathered`], kept while the
/// stored terminology does not change.
pub(crate) fn maps_between(
    store: &Store,
    cache: &Cache,
    core: &'static Terminology,
    source: Option<&str>,
    target: Option<&str>,
) -> Result<Result<Arc<Terminology>, TxError>, StoreError> {
    let fingerprint = fingerprint(store, cache)?;
    let failed = std::cell::RefCell::new(None);
    let t = cache.get_or_choose_maps(fingerprint, source, target, || {
        let matches = |m: &fhir_model::terminology::ConceptMapDef| {
            source.is_none_or(|s| m.source() == Some(s))
                && target.is_none_or(|t| m.target() == Some(t))
        };
        let mut t = Terminology::default();
        for (url, map) in core.concept_maps.iter().filter(|(_, m)| matches(m)) {
            t.concept_maps.insert(url.clone(), map.clone());
        }
        let stored = stored_maps(store).map_err(|e| {
            *failed.borrow_mut() = Some(e);
            TxError::NotSupported {
                message: "the store cannot be read".into(),
                param: "source".into(),
            }
        })??;
        for map in stored.iter().filter(|m| matches(m)) {
            // The packages' maps win; of a stored URL, the first is the latest.
            if !t.concept_maps.contains_key(&map.url) {
                t.concept_maps.insert(map.url.clone(), map.clone());
            }
        }
        // The maps an `unmapped` of mode `other-map` names come along.
        let others: Vec<String> = t
            .concept_maps
            .values()
            .flat_map(|m| m.group.iter())
            .filter_map(|g| g.unmapped.as_ref()?.url.clone())
            .map(|u| fhir_model::terminology::canonical_url(&u).to_string())
            .filter(|u| !t.concept_maps.contains_key(u))
            .collect();
        for url in others {
            let found = core
                .concept_map(&url)
                .cloned()
                .or_else(|| stored.iter().find(|m| m.url == url).cloned());
            if let Some(map) = found {
                t.concept_maps.insert(url, map);
            }
        }
        Ok(t)
    });
    match failed.into_inner() {
        Some(e) => Err(e),
        None => Ok(t),
    }
}

/// The stored ConceptMaps, the latest written first; too many is refused (name the
/// map with `url` then).
fn stored_maps(
    store: &Store,
) -> Result<Result<Vec<fhir_model::terminology::ConceptMapDef>, TxError>, StoreError> {
    let page = stored(
        store,
        "ConceptMap",
        &pairs(&[("_sort", "-_lastUpdated")]),
        MAX_STORED_MAPS + 1,
    )?;
    if page.matches.len() > MAX_STORED_MAPS {
        return Ok(Err(TxError::TooCostly {
            message: format!(
                "more than {MAX_STORED_MAPS} ConceptMaps are stored: name the map to use with url"
            ),
            param: "source".into(),
        }));
    }
    Ok(Ok(page
        .matches
        .iter()
        .filter_map(|m| serde_json::from_str(&m.content).ok())
        .collect()))
}

/// Stored terminology for one validation request ([`fhir_validation::TerminologySource`]):
/// the fingerprint is read once, and each URL is looked up once, so that a transaction
/// of two thousand resources coded in SNOMED CT costs one query, not one per coding —
/// unless it draws on a code system kept as rows (`--terminology-rows-from`), which is
/// read around the codes checked, once per URL and codes.
pub struct ForValidation {
    store: Arc<Store>,
    cache: Arc<Cache>,
    core: &'static Terminology,
    rows_from: u64,
    fingerprint: OnceLock<Option<Fingerprint>>,
    seen: Mutex<HashMap<(Kind, String), Found>>,
    /// Gathered around codes, by URL and codes (at most [`MAX_PARTLY`]).
    partly: Mutex<HashMap<Around, Found>>,
}

/// A URL of a kind and the codes a gathering was made around.
type Around = (Kind, String, Vec<String>);

/// What one URL gave: the terminology that holds it, or nothing.
type Found = Option<Arc<Terminology>>;

/// Most gatherings around codes one validation keeps.
const MAX_PARTLY: usize = 1_000;

impl ForValidation {
    pub fn new(
        store: Arc<Store>,
        cache: Arc<Cache>,
        core: &'static Terminology,
        rows_from: u64,
    ) -> ForValidation {
        ForValidation {
            store,
            cache,
            core,
            rows_from,
            fingerprint: OnceLock::new(),
            seen: Mutex::new(HashMap::new()),
            partly: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, kind: Kind, url: &str, codes: &[&str]) -> Option<Arc<Terminology>> {
        if !needs_gathering(self.core, kind, url) {
            return None;
        }
        let key = (kind, url.to_string());
        if let Some(t) = self.seen.lock().ok()?.get(&key) {
            return t.clone();
        }
        let codes: Vec<String> = codes.iter().map(|c| c.to_string()).collect();
        let around = (kind, url.to_string(), codes.clone());
        if let Some(t) = self.partly.lock().ok()?.get(&around) {
            return t.clone();
        }
        let fingerprint = (*self
            .fingerprint
            .get_or_init(|| fingerprint(&self.store, &self.cache).ok()))?;
        let focus = Focus {
            codes,
            around: true,
            rows_from: self.rows_from,
        };
        // A store or terminology failure leaves the code unchecked, as for any code
        // system this server does not have.
        let (store, cache, core) = (&self.store, &self.cache, self.core);
        let gathered = gathered_about_at(store, cache, core, fingerprint, kind, url, Some(focus))
            .ok()
            .and_then(Result::ok);
        match gathered {
            Some(g) if !g.partly.is_empty() => {
                if let Ok(mut partly) = self.partly.lock() {
                    if partly.len() < MAX_PARTLY {
                        partly.insert(around, Some(g.t.clone()));
                    }
                }
                Some(g.t)
            }
            g => {
                let t = g.map(|g| g.t);
                if let Ok(mut seen) = self.seen.lock() {
                    seen.insert(key, t.clone());
                }
                t
            }
        }
    }
}

impl fhir_validation::TerminologySource for ForValidation {
    fn code_system(&self, url: &str, code: &str) -> Option<Arc<Terminology>> {
        self.get(Kind::CodeSystem, url, &[code])
            .filter(|t| t.code_system(url).is_some())
    }

    fn value_set(&self, url: &str, codes: &[&str]) -> Option<Arc<Terminology>> {
        self.get(Kind::ValueSet, url, codes)
            .filter(|t| t.value_set(url).is_some())
    }
}
