//! Sets of items under FHIRPath equality (`=`), in linear time: `union`, `distinct`,
//! `intersect`, `exclude`, `subsetOf` and `supersetOf` compare an item only with the
//! items of its hash bucket, not with every other item (which made a resource with
//! 40,000 names cost seconds of CPU).
//!
//! The hash is a *key* that equal items always share: numbers by their normalised
//! decimal value (`1 = 1.0`), date-times by their fields in UTC, quantities by their
//! value in canonical units, elements by their JSON with members in any order. Items with
//! the same key are still compared with [`ops::equals`], so a coarse key costs time,
//! never a wrong answer.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use rust_decimal::Decimal;
use serde_json::Value;

use crate::datetime::DateTime;
use crate::item::Item;
use crate::ops;

/// Below this many items a set compares pairwise (cheaper than hashing for the
/// one-to-three-item unions of most search parameters); from it on, it hashes.
const LINEAR_UP_TO: usize = 16;

/// Items without duplicates, in first-seen order.
#[derive(Default)]
pub(crate) struct ItemSet<'a> {
    items: Vec<Item<'a>>,
    /// Item positions by key; built once the set outgrows [`LINEAR_UP_TO`].
    buckets: Option<HashMap<u64, Vec<usize>>>,
}

impl<'a> ItemSet<'a> {
    pub fn with_capacity(n: usize) -> Self {
        ItemSet {
            items: Vec::with_capacity(n),
            buckets: None,
        }
    }

    fn equal_at(&self, i: usize, item: &Item) -> bool {
        ops::equals(&self.items[i], item) == Some(true)
    }

    /// All of `items`, duplicates dropped.
    pub fn of(items: impl IntoIterator<Item = Item<'a>>) -> Self {
        let iter = items.into_iter();
        let mut set = ItemSet::with_capacity(iter.size_hint().0);
        for i in iter {
            set.insert(i);
        }
        set
    }

    /// Adds `item` unless an equal one is there; true when added.
    pub fn insert(&mut self, item: Item<'a>) -> bool {
        if self.buckets.is_none() && self.items.len() < LINEAR_UP_TO {
            if (0..self.items.len()).any(|i| self.equal_at(i, &item)) {
                return false;
            }
            self.items.push(item);
            return true;
        }
        let buckets = self.buckets.get_or_insert_with(|| {
            let mut b: HashMap<u64, Vec<usize>> = HashMap::new();
            for (i, x) in self.items.iter().enumerate() {
                b.entry(key_of(x)).or_default().push(i);
            }
            b
        });
        let bucket = buckets.entry(key_of(&item)).or_default();
        if bucket
            .iter()
            .any(|&i| ops::equals(&self.items[i], &item) == Some(true))
        {
            return false;
        }
        bucket.push(self.items.len());
        self.items.push(item);
        true
    }

    /// Whether an item equal to `item` is in the set.
    pub fn contains(&self, item: &Item) -> bool {
        match &self.buckets {
            None => (0..self.items.len()).any(|i| self.equal_at(i, item)),
            Some(b) => b
                .get(&key_of(item))
                .is_some_and(|bucket| bucket.iter().any(|&i| self.equal_at(i, item))),
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn into_vec(self) -> Vec<Item<'a>> {
        self.items
    }
}

/// The key of an item: equal items (`ops::equals` true) have equal keys.
fn key_of(item: &Item) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match item.system() {
        Some(x) => system_key(&x, &mut h),
        None => {
            // Elements without a System value compare by their JSON (or, for a
            // primitive with only extensions, by those).
            9u8.hash(&mut h);
            if let Item::Node(n) = item {
                match n.value {
                    Some(v) => json_hash(v, &mut h),
                    None => n.ext.inspect(|e| json_hash(e, &mut h)).map_or((), |_| ()),
                }
            }
        }
    }
    h.finish()
}

fn system_key(x: &Item, h: &mut impl Hasher) {
    match x {
        Item::Boolean(b) => (1u8, b).hash(h),
        Item::Integer(n) => number_key(Decimal::from(*n), h),
        Item::Decimal(d) => number_key(*d, h),
        Item::String(s) => (3u8, s.as_ref()).hash(h),
        Item::Date(d) => datetime_key(&DateTime::from_date(*d), h),
        Item::DateTime(d) => datetime_key(d, h),
        Item::Time(t) => (5u8, t.fields()).hash(h),
        Item::Quantity(q) => {
            6u8.hash(h);
            match q.canonical_key() {
                Some((value, dims)) => (value.normalize().to_string(), dims).hash(h),
                // Units without a canonical form compare by unit: the value alone is
                // a key they share when equal.
                None => q.value.normalize().to_string().hash(h),
            }
        }
        Item::Type { namespace, name } => (7u8, namespace, name.as_ref()).hash(h),
        Item::Node(_) => 8u8.hash(h),
    }
}

fn number_key(d: Decimal, h: &mut impl Hasher) {
    2u8.hash(h);
    d.normalize().to_string().hash(h);
}

/// Date-times are equal only at the same precision and, when both have an offset, at
/// the same instant; a value with an offset never equals one without.
fn datetime_key(d: &DateTime, h: &mut impl Hasher) {
    4u8.hash(h);
    d.equality_fields().hash(h);
}

/// A hash of JSON that ignores member order (serde_json's maps compare that way).
fn json_hash(v: &Value, h: &mut impl Hasher) {
    match v {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => (1u8, b).hash(h),
        Value::Number(n) => (2u8, n.to_string()).hash(h),
        Value::String(s) => (3u8, s).hash(h),
        Value::Array(a) => {
            (4u8, a.len()).hash(h);
            for x in a {
                json_hash(x, h);
            }
        }
        Value::Object(m) => {
            let mut sum = 0u64;
            for (k, x) in m {
                let mut e = std::collections::hash_map::DefaultHasher::new();
                k.hash(&mut e);
                json_hash(x, &mut e);
                sum = sum.wrapping_add(e.finish());
            }
            (5u8, m.len(), sum).hash(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datetime::Date;
    use crate::quantity::Quantity;
    use std::borrow::Cow;

    fn s(x: &str) -> Item<'static> {
        Item::String(Cow::Owned(x.to_string()))
    }

    #[test]
    fn equal_items_share_a_key() {
        let dec = |t: &str| Item::Decimal(t.parse().unwrap());
        assert_eq!(key_of(&Item::Integer(1)), key_of(&dec("1.00")));
        let dt = |t: &str| Item::DateTime(DateTime::parse(t).unwrap());
        assert_eq!(
            key_of(&dt("2020-01-01T10:00:00+02:00")),
            key_of(&dt("2020-01-01T08:00:00Z"))
        );
        assert_eq!(
            key_of(&Item::Date(Date::parse("2020-01").unwrap())),
            key_of(&dt("2020-01"))
        );
        let q = |v: &str, u: &str| Item::Quantity(Quantity::new(v.parse().unwrap(), u));
        assert_eq!(key_of(&q("1", "g")), key_of(&q("1000", "mg")));
        assert_eq!(key_of(&q("2", "weeks")), key_of(&q("2", "wk")));
    }

    #[test]
    fn sets_keep_first_seen_order_without_duplicates() {
        let set = ItemSet::of([s("b"), s("a"), s("b"), Item::Integer(1), Item::Integer(1)]);
        assert_eq!(set.len(), 3);
        assert!(set.contains(&s("a")));
        assert!(!set.contains(&s("c")));
        let v = set.into_vec();
        assert_eq!(v[0].as_str(), Some("b"));
    }

    #[test]
    fn duplicates_are_found_on_both_sides_of_the_hashing_threshold() {
        let items = (0..40).chain(0..40).map(|i| s(&format!("v{}", i % 25)));
        let set = ItemSet::of(items);
        assert_eq!(set.len(), 25);
        assert!(set.contains(&s("v3")) && set.contains(&s("v24")));
        assert!(!set.contains(&s("v25")));
    }

    #[test]
    fn large_sets_cost_linear_time() {
        let many: Vec<Item> = (0..200_000).map(|i| s(&format!("v{i}"))).collect();
        let start = std::time::Instant::now();
        let set = ItemSet::of(many);
        assert_eq!(set.len(), 200_000);
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }
}
