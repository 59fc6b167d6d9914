//! Timestamp columns shared between series.
//!
//! A scrape gives all series of a target the same timestamp, and their
//! chunks are cut at the same sample counts, so their encoded timestamp
//! columns are identical byte for byte. Interning them stores each column
//! once per target instead of once per series (on host data timestamps are
//! about 40% of the encoded bytes: 4 bits of jitter per sample), and lets
//! a query decode each column once.
//!
//! Series that do not line up (created at another scrape, or with gaps of
//! their own) simply get columns of their own.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;
use std::sync::{Arc, Weak};

use xxhash_rust::xxh3::{xxh3_64_with_seed, Xxh3DefaultBuilder};

use super::chunk::Codec;
use super::mem;

/// An encoded timestamp column and what is known about it without
/// decoding.
#[derive(Debug)]
pub(crate) struct TsCol {
    pub(crate) mint: i64,
    pub(crate) maxt: i64,
    pub(crate) n: u32,
    pub(crate) bytes: Box<[u8]>,
}

/// The live columns by content hash. Entries are weak: a column goes when
/// its last chunk does, and its entry at the next sweep.
#[derive(Default)]
pub(crate) struct Interner {
    map: HashMap<u64, Weak<TsCol>, Xxh3DefaultBuilder>,
    sweep_at: usize,
}

impl Interner {
    /// The shared column equal to this one, or a new one.
    pub(crate) fn intern(&mut self, mint: i64, maxt: i64, n: usize, bytes: &[u8]) -> Arc<TsCol> {
        let h = xxh3_64_with_seed(bytes, mint as u64 ^ ((n as u64) << 48));
        if let Some(c) = self.map.get(&h).and_then(Weak::upgrade) {
            if c.mint == mint && c.n as usize == n && *c.bytes == *bytes {
                return c;
            }
        }
        let c = Arc::new(TsCol {
            mint,
            maxt,
            n: n as u32,
            bytes: bytes.into(),
        });
        // A live entry under the same hash (a collision, practically never)
        // is replaced: its chunks keep their column, only sharing is lost.
        self.map.insert(h, Arc::downgrade(&c));
        if self.map.len() >= self.sweep_at {
            self.sweep();
        }
        c
    }

    /// Forgets columns no chunk uses any more.
    pub(crate) fn sweep(&mut self) {
        self.map.retain(|_, w| w.strong_count() > 0);
        mem::shrink_loose_map(&mut self.map);
        self.sweep_at = (self.map.len() * 2).max(1024);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Heap bytes of the table and of every column, live or awaiting the
    /// sweep.
    pub(crate) fn heap_bytes(&self) -> usize {
        let inner =
            mem::alloc_size(2 * std::mem::size_of::<usize>() + std::mem::size_of::<TsCol>());
        let mut b = mem::table_bytes(
            self.map.capacity(),
            std::mem::size_of::<(u64, Weak<TsCol>)>(),
        );
        for w in self.map.values() {
            b += inner;
            if let Some(c) = w.upgrade() {
                b += mem::alloc_size(c.bytes.len());
            }
        }
        b
    }
}

/// Decoded timestamp columns of one query, by column identity. The cache
/// holds a reference to each column so that its address cannot be reused
/// by another column while the query runs.
#[derive(Default)]
pub(crate) struct TsCache {
    map: HashMap<usize, (Arc<TsCol>, Range<usize>), BuildHasherDefault<PtrHasher>>,
    arena: Vec<i64>,
}

impl TsCache {
    /// Timestamps kept before the cache starts over (8 MiB).
    const MAX_ARENA: usize = 1 << 20;

    /// The decoded timestamps of `col`.
    pub(crate) fn get(&mut self, col: &Arc<TsCol>, codec: &mut Codec) -> &[i64] {
        let key = Arc::as_ptr(col) as usize;
        if let Some((_, r)) = self.map.get(&key) {
            return &self.arena[r.clone()];
        }
        let ts = codec
            .decode_ts(&col.bytes, col.mint, col.n as usize)
            .expect("the store's own column decodes");
        if self.arena.len() + ts.len() > Self::MAX_ARENA {
            self.map.clear();
            self.arena.clear();
        }
        let r = self.arena.len()..self.arena.len() + ts.len();
        self.arena.extend_from_slice(ts);
        self.map.insert(key, (col.clone(), r.clone()));
        &self.arena[r]
    }
}

/// Hashes an address: one multiplication, high bits folded down (the low
/// bits of an address are alignment zeros).
#[derive(Default)]
pub(crate) struct PtrHasher(u64);

impl Hasher for PtrHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b) ^ self.0.rotate_left(8));
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn write_u64(&mut self, n: u64) {
        let h = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 29);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_columns_are_shared_until_dropped() {
        let mut i = Interner::default();
        let a = i.intern(1000, 5000, 5, &[1, 2, 3]);
        let b = i.intern(1000, 5000, 5, &[1, 2, 3]);
        assert!(Arc::ptr_eq(&a, &b));
        let c = i.intern(1001, 5001, 5, &[1, 2, 3]);
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(i.len(), 2);
        drop((a, b));
        i.sweep();
        assert_eq!(i.len(), 1);
        let d = i.intern(1000, 5000, 5, &[1, 2, 3]);
        assert!(!Arc::ptr_eq(&c, &d));
    }

    #[test]
    fn cache_decodes_each_column_once() {
        let mut codec = Codec::new();
        let ts: Vec<i64> = (0..100).map(|i| 7 + i * 1000).collect();
        let mut bytes = Vec::new();
        codec.encode_ts(&ts, &mut bytes);
        let mut i = Interner::default();
        let col = i.intern(7, ts[99], 100, &bytes);
        let mut cache = TsCache::default();
        assert_eq!(cache.get(&col, &mut codec), ts);
        assert_eq!(cache.get(&col.clone(), &mut codec), ts);
        assert_eq!(cache.arena.len(), 100);
    }
}
