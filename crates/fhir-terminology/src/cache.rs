//! Gathered terminologies kept between requests. Gathering reads and parses the stored
//! resources a request reaches (a 10,000-concept code system is a megabyte of JSON);
//! a gathered [`Terminology`] also memoizes its expansions. Entries are valid for one
//! fingerprint of the stored terminology — the caller's count and latest write of the
//! stored code systems, value sets and concept maps, read from the database per request
//! so that a write on any node is seen at once — and a new fingerprint drops them all.
//! A node alone with its database knows when stored terminology changes (a number of
//! the caller's, its generation): the fingerprint itself is kept for a generation
//! ([`Cache::fingerprint`]), so that validating a code of a system the packages lack
//! does not ask the database on every write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use fhir_model::terminology::Terminology;

use crate::gather::Kind;
use crate::TxError;

/// What identifies one state of the stored terminology.
pub type Fingerprint = (i64, i64);

/// Gathered terminologies held at most; past it, the cache starts again empty.
const MAX_ENTRIES: usize = 64;

#[derive(Default)]
pub struct Cache {
    inner: Mutex<Inner>,
}

/// What a kept terminology was made for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// Gathered for a canonical URL of a kind.
    Url(Kind, String),
    /// The concept maps chosen by a `$translate`'s source and target value sets.
    Maps(Option<String>, Option<String>),
}

#[derive(Default)]
struct Inner {
    fingerprint: Option<Fingerprint>,
    entries: HashMap<Key, Arc<Terminology>>,
    /// Whether supplements are stored, as known at a generation of the caller's
    /// (a number that changes with every write of stored terminology).
    supplemented: Known<bool>,
    /// The fingerprint, as read at a generation.
    read_fingerprint: Known<Fingerprint>,
}

/// A value as known at one generation of the caller's (a number that changes with
/// every write of stored terminology; `None`: no number can be trusted, as when
/// other nodes write the same database).
struct Known<T>(Option<(u64, T)>);

impl<T> Default for Known<T> {
    fn default() -> Self {
        Known(None)
    }
}

impl<T: Copy> Known<T> {
    /// The value kept for `generation`.
    fn at(&self, generation: Option<u64>) -> Option<T> {
        match (generation, &self.0) {
            (Some(g), Some((known, value))) if g == *known => Some(*value),
            _ => None,
        }
    }

    /// Keeps `value` as found at `generation` (unless what is kept was found at a
    /// later one). The caller reads the generation before it asks the database: a
    /// write meanwhile has changed the number by the time the answer is kept.
    fn keep(&mut self, generation: Option<u64>, value: T) {
        if let Some(g) = generation {
            if self.0.as_ref().is_none_or(|(kept, _)| *kept <= g) {
                self.0 = Some((g, value));
            }
        }
    }
}

impl Cache {
    /// The terminology gathered for `kind`/`url` at `fingerprint`: kept, or made by
    /// `gather` (outside the lock: gathering reads the database) and kept.
    pub fn get_or_gather(
        &self,
        fingerprint: Fingerprint,
        kind: Kind,
        url: &str,
        gather: impl FnOnce() -> Result<Terminology, TxError>,
    ) -> Result<Arc<Terminology>, TxError> {
        let key = Key::Url(kind, url.to_string());
        self.get_or_make(fingerprint, key, || gather().map(|t| (t, true)))
    }

    /// As [`Cache::get_or_gather`], but `gather` also says whether what it made may be
    /// kept (not when it holds only some of a code system's concepts).
    pub fn get_or_gather_partly(
        &self,
        fingerprint: Fingerprint,
        kind: Kind,
        url: &str,
        gather: impl FnOnce() -> Result<(Terminology, bool), TxError>,
    ) -> Result<Arc<Terminology>, TxError> {
        self.get_or_make(fingerprint, Key::Url(kind, url.to_string()), gather)
    }

    /// The concept maps chosen for a `$translate` by its `source` and `target`: kept,
    /// or chosen by `choose` and kept, as [`Cache::get_or_gather`].
    pub fn get_or_choose_maps(
        &self,
        fingerprint: Fingerprint,
        source: Option<&str>,
        target: Option<&str>,
        choose: impl FnOnce() -> Result<Terminology, TxError>,
    ) -> Result<Arc<Terminology>, TxError> {
        let key = Key::Maps(source.map(str::to_string), target.map(str::to_string));
        self.get_or_make(fingerprint, key, || choose().map(|t| (t, true)))
    }

    fn get_or_make(
        &self,
        fingerprint: Fingerprint,
        key: Key,
        make: impl FnOnce() -> Result<(Terminology, bool), TxError>,
    ) -> Result<Arc<Terminology>, TxError> {
        {
            let mut inner = self.lock();
            if inner.fingerprint != Some(fingerprint) {
                inner.entries.clear();
                inner.fingerprint = Some(fingerprint);
            }
            if let Some(t) = inner.entries.get(&key) {
                return Ok(t.clone());
            }
        }
        let (t, keep) = make()?;
        let t = Arc::new(t);
        let mut inner = self.lock();
        if keep && inner.fingerprint == Some(fingerprint) {
            if inner.entries.len() >= MAX_ENTRIES {
                inner.entries.clear();
            }
            inner.entries.insert(key, t.clone());
        }
        Ok(t)
    }

    /// Whether supplements are stored, as kept for `generation` (a number of the
    /// caller's that changes with every write of stored terminology; `None`: none can
    /// be trusted).
    pub fn supplemented(&self, generation: Option<u64>) -> Option<bool> {
        self.lock().supplemented.at(generation)
    }

    /// Keeps whether supplements are stored, as found at `generation` (unless what is
    /// kept was found at a later one).
    pub fn keep_supplemented(&self, generation: Option<u64>, answer: bool) {
        self.lock().supplemented.keep(generation, answer);
    }

    /// The fingerprint of the stored terminology as read at `generation` (see
    /// [`Cache::supplemented`]), if it was.
    pub fn fingerprint(&self, generation: Option<u64>) -> Option<Fingerprint> {
        self.lock().read_fingerprint.at(generation)
    }

    /// Keeps the fingerprint read at `generation` (read before the database was).
    pub fn keep_fingerprint(&self, generation: Option<u64>, fingerprint: Fingerprint) {
        self.lock().read_fingerprint.keep(generation, fingerprint);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_it_gathered_until_the_fingerprint_changes() {
        let cache = Cache::default();
        let calls = std::cell::Cell::new(0);
        let get = |fp: Fingerprint, url: &str| {
            cache
                .get_or_gather(fp, Kind::ValueSet, url, || {
                    calls.set(calls.get() + 1);
                    Ok(Terminology::default())
                })
                .unwrap()
        };
        let a = get((1, 10), "http://x/vs");
        let b = get((1, 10), "http://x/vs");
        assert!(Arc::ptr_eq(&a, &b));
        get((1, 10), "http://x/other");
        let c = get((2, 11), "http://x/vs");
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(calls.get(), 3);
        let failed = cache.get_or_gather((2, 11), Kind::CodeSystem, "http://x/cs", || {
            Err(crate::invalid("no", "url"))
        });
        assert!(failed.is_err());
    }

    #[test]
    fn whether_supplements_are_stored_is_kept_for_one_generation() {
        let cache = Cache::default();
        assert_eq!(cache.supplemented(Some(1)), None);
        cache.keep_supplemented(Some(1), true);
        assert_eq!(cache.supplemented(Some(1)), Some(true));
        assert_eq!(cache.supplemented(Some(2)), None);
        // Without a generation to trust, nothing is kept or answered.
        cache.keep_supplemented(None, false);
        assert_eq!(cache.supplemented(None), None);
        assert_eq!(cache.supplemented(Some(1)), Some(true));
    }

    #[test]
    fn a_fingerprint_is_kept_for_the_generation_it_was_read_at() {
        let cache = Cache::default();
        assert_eq!(cache.fingerprint(Some(3)), None);
        cache.keep_fingerprint(Some(3), (2, 40));
        assert_eq!(cache.fingerprint(Some(3)), Some((2, 40)));
        // A terminology write since: read again.
        assert_eq!(cache.fingerprint(Some(4)), None);
        // A slow reader's answer from before a write does not replace a later one.
        cache.keep_fingerprint(Some(5), (3, 41));
        cache.keep_fingerprint(Some(4), (2, 40));
        assert_eq!(cache.fingerprint(Some(5)), Some((3, 41)));
        // Other nodes may write: never answered from memory.
        assert_eq!(cache.fingerprint(None), None);
    }
}
