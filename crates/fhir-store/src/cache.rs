//! A bounded in-memory cache of current resource versions, so that reads of hot
//! resources skip the database.
//!
//! Three rules keep it from ever answering with a version the database has replaced:
//! - A write removes the resources it wrote after its transaction commits (never
//!   before: a reader could put the old version back; never for a rolled-back write).
//! - A reader that loaded a version from the database puts it in only if no write of
//!   the same stripe of keys was applied since the reader began ([`Ticket`]): a slow
//!   reader cannot put back a version older than a committed write, even one evicted
//!   since. Writers and late readers meet under a small per-stripe lock.
//! - Other processes may write the same database (several nodes, an import beside
//!   a server). An entry is used without asking the database only while this node
//!   knows it is the only live one ([`ReadCache::trusted`], kept by
//!   [`crate::nodes`]); otherwise a read asks the database for the current version
//!   number and uses the entry only if it is that version.
//!
//! Versions are immutable, so a cached entry answers a `vread` of its own version
//! whatever the trust.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use quick_cache::sync::Cache;
use quick_cache::Weighter;

use crate::model::StoredResource;

/// Stripes of keys that writers and late readers lock (a power of two).
const STRIPES: usize = 64;
/// Bytes counted per entry besides its JSON (key, struct, the cache's own slot).
const ENTRY_OVERHEAD: u64 = 160;
/// The size of an average entry, to size the cache's tables.
const TYPICAL_ENTRY: u64 = 2048;

#[derive(Clone)]
struct ByBytes;

impl Weighter<String, Arc<StoredResource>> for ByBytes {
    fn weight(&self, key: &String, val: &Arc<StoredResource>) -> u64 {
        key.len() as u64 + val.content.len() as u64 + ENTRY_OVERHEAD
    }
}

/// The cache of current versions, keyed `Type/id`.
pub struct ReadCache {
    entries: Option<Cache<String, Arc<StoredResource>, ByBytes>>,
    /// Per stripe: writes applied so far.
    stripes: Box<[Mutex<u64>]>,
    hasher: std::collections::hash_map::RandomState,
    /// Until when (ms after `epoch`) entries may be used without asking the database.
    trusted_until: AtomicU64,
    epoch: Instant,
    /// Committed writes of terminology resources (and trust regained), for
    /// [`ReadCache::terminology_generation`].
    terminology_writes: AtomicU64,
}

/// Where a reader stood before it read the database: see [`ReadCache::offer`].
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    stripe: usize,
    writes: u64,
}

fn key(res_type: &str, id: &str) -> String {
    let mut k = String::with_capacity(res_type.len() + id.len() + 1);
    k.push_str(res_type);
    k.push('/');
    k.push_str(id);
    k
}

impl ReadCache {
    /// A cache holding up to `bytes` of resources (0: none, every read asks the database).
    pub fn new(bytes: u64) -> ReadCache {
        let entries = (bytes > 0).then(|| {
            let items = (bytes / TYPICAL_ENTRY).max(16) as usize;
            Cache::with_weighter(items, bytes, ByBytes)
        });
        ReadCache {
            entries,
            stripes: (0..STRIPES).map(|_| Mutex::new(0)).collect(),
            hasher: Default::default(),
            trusted_until: AtomicU64::new(0),
            epoch: Instant::now(),
            terminology_writes: AtomicU64::new(0),
        }
    }

    pub fn enabled(&self) -> bool {
        self.entries.is_some()
    }

    fn stripe(&self, key: &str) -> usize {
        self.hasher.hash_one(key) as usize & (STRIPES - 1)
    }

    fn lock(&self, stripe: usize) -> std::sync::MutexGuard<'_, u64> {
        self.stripes[stripe]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Whether entries may be used without asking the database now.
    pub fn trusted(&self) -> bool {
        (self.epoch.elapsed().as_millis() as u64) < self.trusted_until.load(Ordering::Acquire)
    }

    /// Entries may be used without asking the database until `until` (a moment
    /// measured before the check that found this node alone). After a time without
    /// trust, entries written meanwhile by other nodes may be stale: they are dropped.
    pub fn trust_until(&self, until: Instant) {
        if !self.trusted() {
            self.clear();
        }
        let ms = until.saturating_duration_since(self.epoch).as_millis() as u64;
        self.trusted_until.store(ms, Ordering::Release);
    }

    /// Entries must be checked against the database from now on.
    pub fn distrust(&self) {
        self.trusted_until.store(0, Ordering::Release);
    }

    /// The entry for `type/id`, if any (trusted or not: see [`ReadCache::trusted`]).
    pub fn get(&self, res_type: &str, id: &str) -> Option<Arc<StoredResource>> {
        let entries = self.entries.as_ref()?;
        entries.get(key(res_type, id).as_str())
    }

    /// The entry for `type/id` when it may be used without asking the database.
    pub fn get_trusted(&self, res_type: &str, id: &str) -> Option<Arc<StoredResource>> {
        if self.trusted() {
            self.get(res_type, id)
        } else {
            None
        }
    }

    /// Taken before reading `type/id` from the database, to offer what was read.
    pub fn ticket(&self, res_type: &str, id: &str) -> Ticket {
        let stripe = self.stripe(&key(res_type, id));
        Ticket {
            stripe,
            writes: *self.lock(stripe),
        }
    }

    /// Keeps `stored` (read from the database after `ticket` was taken) unless a write
    /// of its stripe was applied since.
    pub fn offer(&self, ticket: Ticket, stored: Arc<StoredResource>) {
        let Some(entries) = &self.entries else { return };
        let writes = self.lock(ticket.stripe);
        if *writes == ticket.writes {
            entries.insert(key(&stored.res_type, &stored.res_id), stored);
        }
    }

    /// Forgets resources that a committed transaction wrote.
    pub fn written<'a>(&self, keys: impl IntoIterator<Item = (&'a str, &'a str)>) {
        for (res_type, id) in keys {
            if matches!(res_type, "CodeSystem" | "ValueSet" | "ConceptMap") {
                self.terminology_writes.fetch_add(1, Ordering::AcqRel);
            }
            let k = key(res_type, id);
            let mut writes = self.lock(self.stripe(&k));
            *writes += 1;
            if let Some(entries) = &self.entries {
                entries.remove(k.as_str());
            }
        }
    }

    /// Forgets everything (no reader that began before may put anything back).
    pub fn clear(&self) {
        self.terminology_writes.fetch_add(1, Ordering::AcqRel);
        for stripe in 0..STRIPES {
            *self.lock(stripe) += 1;
        }
        if let Some(entries) = &self.entries {
            entries.clear();
        }
    }

    /// A number that changes whenever a CodeSystem, ValueSet or ConceptMap is written,
    /// while this node is the only one writing (`None` otherwise: another node may
    /// have written one without this node knowing). What is derived from the stored
    /// terminology may be kept in memory as long as the number stays the same.
    pub fn terminology_generation(&self) -> Option<u64> {
        // Trust first: regaining it bumps the number before trust is set, so a number
        // read after a trust check is one of the trusted period.
        if !self.trusted() {
            return None;
        }
        Some(self.terminology_writes.load(Ordering::Acquire))
    }

    /// Entries held and their bytes, for metrics and tests.
    pub fn usage(&self) -> (usize, u64) {
        self.entries
            .as_ref()
            .map_or((0, 0), |e| (e.len(), e.weight()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn stored(id: &str, version: i64) -> Arc<StoredResource> {
        Arc::new(StoredResource {
            seq: version,
            res_type: "Patient".into(),
            res_id: id.into(),
            version,
            last_updated: 0,
            deleted: false,
            method: "PUT".into(),
            content: format!("{{\"resourceType\":\"Patient\",\"id\":\"{id}\"}}"),
        })
    }

    fn trusted() -> ReadCache {
        let c = ReadCache::new(1 << 20);
        c.trust_until(Instant::now() + Duration::from_secs(60));
        c
    }

    #[test]
    fn a_read_offered_after_a_write_of_its_key_is_not_kept() {
        let c = trusted();
        let t = c.ticket("Patient", "a");
        c.written([("Patient", "a")]);
        c.offer(t, stored("a", 1));
        assert!(c.get_trusted("Patient", "a").is_none());
        let t = c.ticket("Patient", "a");
        c.offer(t, stored("a", 2));
        assert_eq!(c.get_trusted("Patient", "a").unwrap().version, 2);
    }

    #[test]
    fn a_write_removes_the_entry() {
        let c = trusted();
        c.offer(c.ticket("Patient", "a"), stored("a", 1));
        assert!(c.get_trusted("Patient", "a").is_some());
        c.written([("Patient", "a")]);
        assert!(c.get("Patient", "a").is_none());
    }

    #[test]
    fn entries_are_used_untrusted_only_by_callers_that_check() {
        let c = ReadCache::new(1 << 20);
        c.offer(c.ticket("Patient", "a"), stored("a", 1));
        assert!(c.get_trusted("Patient", "a").is_none());
        assert!(c.get("Patient", "a").is_some());
        // Trust after a time without it drops what other nodes may have changed.
        c.trust_until(Instant::now() + Duration::from_secs(60));
        assert!(c.get("Patient", "a").is_none());
        c.distrust();
        assert!(!c.trusted());
    }

    #[test]
    fn the_cache_stays_within_its_bytes() {
        let c = ReadCache::new(64 * 1024);
        for i in 0..2000 {
            let id = format!("p{i}");
            c.offer(c.ticket("Patient", &id), stored(&id, 1));
        }
        let (_, bytes) = c.usage();
        assert!(bytes <= 64 * 1024, "{bytes}");
    }

    #[test]
    fn a_disabled_cache_holds_nothing() {
        let c = ReadCache::new(0);
        c.trust_until(Instant::now() + Duration::from_secs(60));
        c.offer(c.ticket("Patient", "a"), stored("a", 1));
        assert!(c.get("Patient", "a").is_none());
        assert!(!c.enabled());
    }
}
