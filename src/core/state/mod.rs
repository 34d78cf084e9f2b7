//! The map type that holds dpopkit's process-wide state ([`BoundedLru`]) and its eviction
//! rules, and the table of every bound on that state ([`limits`]). The state itself lives
//! with the module that uses it (the list: ARCHITECTURE.md, "Process state"); one function
//! clears all of it: `crate::core::clear_process_state`.
//!
//! Access tokens ([`super::oauth::token`]), DPoP nonces ([`super::dpop::nonce`]), servers' clocks
//! ([`super::http::clock`]), authorization server metadata ([`super::oauth::discovery`]) and the
//! credentials of earlier calls that later calls mask (`super::redact::remember_for_later`)
//! are shared by every Http object of the process, so a new object (as a SQL Server procedure makes on
//! every call) reuses what an earlier one learned. Each lives in a [`BoundedLru`]:
//!
//! * at most `max_entries` entries and `max_bytes` bytes (as the map's weigh function
//!   counts them);
//! * past a bound, the least recently used entry goes first;
//! * an entry *in use* (as the map's in-use function says, e.g. a token slot that a fetch
//!   or a waiting caller holds) is never evicted: it is skipped. If every entry is in use,
//!   the map holds more than `max_entries` until they are released (they are bounded by the
//!   number of calls in flight) and the next insertion trims it;
//! * an entry heavier than `max_bytes` on its own is not stored at all;
//! * `clear` forgets everything (`dpopkit_token_cache_clear`); holders of an evicted or
//!   cleared value keep their `Arc` until they are done.
//!
//! Per-thread call state (the `last_*` getters of the C ABI) is not process-wide: it lives
//! with the object and the thread (src/ffi/calls.rs) and dies with either.

pub mod limits;

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

struct Entry<V> {
    value: V,
    /// Tick of the last use; updated under the read lock, so lookups never serialize.
    used: AtomicU64,
    weight: usize,
}

struct Inner<K, V> {
    map: HashMap<K, Entry<V>>,
    bytes: usize,
}

/// A bounded map with least-recently-used eviction that never evicts an entry in use.
pub struct BoundedLru<K, V> {
    inner: RwLock<Inner<K, V>>,
    tick: AtomicU64,
    max_entries: usize,
    max_bytes: usize,
    weigh: fn(&K, &V) -> usize,
    in_use: fn(&V) -> bool,
}

/// SHA-256 of `parts` (each length-prefixed) under a random per-process salt: a cache key
/// for values that hold secrets (a key file and its password, an AuthToken with its client
/// secret) that keeps neither the secret nor a plain hash of it in memory.
pub fn salted_hash(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    static SALT: std::sync::LazyLock<[u8; 32]> = std::sync::LazyLock::new(|| {
        let mut salt = [0u8; 32];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt);
        salt
    });
    let mut h = Sha256::new();
    h.update(*SALT);
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// Weighs nothing: a map bounded by its number of entries only.
pub fn weightless<K, V>(_: &K, _: &V) -> usize {
    0
}

/// Never in use: any entry may be evicted.
pub fn never_in_use<V>(_: &V) -> bool {
    false
}

/// In use while someone besides the map holds the `Arc`.
pub fn shared_arc<T>(v: &std::sync::Arc<T>) -> bool {
    std::sync::Arc::strong_count(v) > 1
}

impl<K: Eq + Hash + Clone, V> BoundedLru<K, V> {
    pub fn new(max_entries: usize, max_bytes: usize, weigh: fn(&K, &V) -> usize, in_use: fn(&V) -> bool) -> Self {
        BoundedLru {
            inner: RwLock::new(Inner { map: HashMap::new(), bytes: 0 }),
            tick: AtomicU64::new(0),
            max_entries: max_entries.max(1),
            max_bytes,
            weigh,
            in_use,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner<K, V>> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner<K, V>> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn next_tick(&self) -> u64 {
        self.tick.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Calls `f` with the value of `key`, if present, and marks it used.
    pub fn with<Q, R>(&self, key: &Q, f: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let inner = self.read();
        let e = inner.map.get(key)?;
        e.used.store(self.next_tick(), Ordering::Relaxed);
        Some(f(&e.value))
    }

    /// A clone of the value of `key`, marked used.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.with(key, V::clone)
    }

    /// Stores `value` under `key` (replacing what was there), then applies the bounds.
    pub fn insert(&self, key: K, value: V) {
        let weight = (self.weigh)(&key, &value);
        let mut inner = self.write();
        if weight > self.max_bytes {
            if let Some(old) = inner.map.remove(&key) {
                inner.bytes -= old.weight;
            }
            return;
        }
        let used = AtomicU64::new(self.next_tick());
        if let Some(old) = inner.map.insert(key.clone(), Entry { value, used, weight }) {
            inner.bytes -= old.weight;
        }
        inner.bytes += weight;
        self.evict(&mut inner, &key);
    }

    /// The value of `key`, or `make()` stored under it; marked used either way.
    pub fn get_or_insert_with(&self, key: K, make: impl FnOnce() -> V) -> V
    where
        V: Clone,
    {
        if let Some(v) = self.get(&key) {
            return v;
        }
        let mut inner = self.write();
        if let Some(e) = inner.map.get(&key) {
            e.used.store(self.next_tick(), Ordering::Relaxed);
            return e.value.clone();
        }
        let value = make();
        let weight = (self.weigh)(&key, &value);
        if weight > self.max_bytes {
            return value;
        }
        let used = AtomicU64::new(self.next_tick());
        inner.map.insert(key.clone(), Entry { value: value.clone(), used, weight });
        inner.bytes += weight;
        self.evict(&mut inner, &key);
        value
    }

    /// Changes the value of `key` in place (a default one when absent), then applies the
    /// bounds.
    pub fn update<R>(&self, key: K, f: impl FnOnce(&mut V) -> R) -> R
    where
        V: Default,
    {
        let mut inner = self.write();
        let tick = self.next_tick();
        let inner = &mut *inner;
        let e = inner.map.entry(key.clone()).or_insert_with(|| Entry { value: V::default(), used: AtomicU64::new(tick), weight: 0 });
        e.used.store(tick, Ordering::Relaxed);
        let r = f(&mut e.value);
        let weight = (self.weigh)(&key, &e.value);
        inner.bytes = inner.bytes - e.weight + weight;
        e.weight = weight;
        if weight > self.max_bytes {
            inner.map.remove(&key);
            inner.bytes -= weight;
        }
        self.evict(inner, &key);
        r
    }

    /// The eviction rule, written once: while a bound is exceeded, drop the least recently
    /// used entry that is not in use and is not `keep` (the entry just stored).
    fn evict(&self, inner: &mut Inner<K, V>, keep: &K) {
        while inner.map.len() > self.max_entries || inner.bytes > self.max_bytes {
            let victim = inner
                .map
                .iter()
                .filter(|(k, e)| *k != keep && !(self.in_use)(&e.value))
                .min_by_key(|(_, e)| e.used.load(Ordering::Relaxed))
                .map(|(k, _)| k.clone());
            let Some(victim) = victim else { return };
            if let Some(e) = inner.map.remove(&victim) {
                inner.bytes -= e.weight;
            }
        }
    }

    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut inner = self.write();
        let e = inner.map.remove(key)?;
        inner.bytes -= e.weight;
        Some(e.value)
    }

    /// Forgets everything; returns the values (for callers that wipe them).
    pub fn clear(&self) -> Vec<V> {
        let mut inner = self.write();
        inner.bytes = 0;
        inner.map.drain().map(|(_, e)| e.value).collect()
    }

    pub fn len(&self) -> usize {
        self.read().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total weight of the entries.
    pub fn bytes(&self) -> usize {
        self.read().bytes
    }

    /// Clones of every value, in no particular order (not marked used).
    pub fn values(&self) -> Vec<V>
    where
        V: Clone,
    {
        self.read().map.values().map(|e| e.value.clone()).collect()
    }

    /// Drops every entry whose value `keep` says no to (an expired one), in use or not.
    pub fn retain(&self, keep: impl Fn(&V) -> bool) {
        let mut inner = self.write();
        let inner = &mut *inner;
        let before = inner.map.len();
        let mut freed = 0;
        inner.map.retain(|_, e| {
            let k = keep(&e.value);
            if !k {
                freed += e.weight;
            }
            k
        });
        if inner.map.len() != before {
            inner.bytes -= freed;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn strings(max_entries: usize, max_bytes: usize) -> BoundedLru<String, String> {
        BoundedLru::new(max_entries, max_bytes, |k, v| k.len() + v.len(), never_in_use)
    }

    #[test]
    fn least_recently_used_goes_first() {
        let m = strings(3, usize::MAX);
        for k in ["a", "b", "c"] {
            m.insert(k.into(), k.into());
        }
        assert_eq!(m.get("a").as_deref(), Some("a")); // a is now the most recent
        m.insert("d".into(), "d".into());
        assert_eq!(m.len(), 3);
        assert_eq!(m.get("b"), None, "b was the least recently used");
        for k in ["a", "c", "d"] {
            assert!(m.get(k).is_some(), "{k}");
        }
        // Replacing a key is not an insertion past the bound.
        m.insert("c".into(), "c2".into());
        assert_eq!(m.len(), 3);
        assert_eq!(m.get("c").as_deref(), Some("c2"));
    }

    #[test]
    fn the_byte_bound_holds() {
        let m = strings(100, 10);
        m.insert("a".into(), "1234".into()); // 5
        m.insert("b".into(), "1234".into()); // 10
        assert_eq!(m.bytes(), 10);
        m.insert("c".into(), "12".into()); // 13 > 10: a goes
        assert_eq!(m.get("a"), None);
        assert_eq!(m.bytes(), 8);
        m.insert("big".into(), "12345678901".into()); // heavier than the bound: not stored
        assert_eq!(m.get("big"), None);
        assert_eq!(m.len(), 2);
        m.update("b".into(), |v| v.push_str("123")); // b grows to 8: c (3) goes, 8 left
        assert_eq!(m.bytes(), 8);
        assert_eq!(m.get("c"), None);
        assert_eq!(m.remove("b").as_deref(), Some("1234123"));
        assert_eq!((m.len(), m.bytes()), (0, 0));
    }

    #[test]
    fn entries_in_use_survive() {
        let m: BoundedLru<u32, Arc<u32>> = BoundedLru::new(2, usize::MAX, weightless, shared_arc);
        let held = m.get_or_insert_with(1, || Arc::new(1)); // the oldest, but held
        m.get_or_insert_with(2, || Arc::new(2));
        m.get_or_insert_with(3, || Arc::new(3));
        assert!(m.get(&1).is_some(), "an entry in use is never evicted");
        assert!(m.get(&2).is_none(), "the least recently used entry not in use went");
        // Everything in use: the map goes past its bound rather than drop one...
        let all: Vec<_> = (10..14).map(|k| m.get_or_insert_with(k, || Arc::new(k))).collect();
        assert_eq!(m.len(), 5, "1 (held) and 10..14");
        // ...and is trimmed back by the next insertion once they are released.
        drop(all);
        drop(held);
        m.get_or_insert_with(20, || Arc::new(20));
        assert_eq!(m.len(), 2);
        assert!(m.get(&20).is_some());
        assert_eq!(m.clear().len(), 2);
        assert!(m.is_empty());
    }

    #[test]
    fn the_entry_bound_holds_under_churn() {
        let m: BoundedLru<u64, u64> = BoundedLru::new(64, usize::MAX, weightless, never_in_use);
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let m = &m;
                s.spawn(move || {
                    for i in 0..2000 {
                        m.insert(t * 10_000 + i, i);
                        assert!(m.len() <= 64);
                    }
                });
            }
        });
        assert_eq!(m.len(), 64);
    }
}
