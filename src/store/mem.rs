//! Memory accounting: what an allocation really costs, so that
//! `StoreStats::bytes` is honest, and growth policies that keep slack small.

/// Bytes the allocator uses for a request of `n` bytes: glibc's malloc adds
/// an 8-byte header and rounds to 16, with a 32-byte minimum.
pub(crate) fn alloc_size(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        ((n + 8 + 15) & !15).max(32)
    }
}

/// Heap bytes of a vector's buffer.
pub(crate) fn vec_bytes<T>(v: &Vec<T>) -> usize {
    alloc_size(v.capacity() * std::mem::size_of::<T>())
}

/// Makes room for `add` more bytes, growing by an eighth rather than
/// doubling: a series' buffer grows slowly and steadily, so a small step
/// wastes little and reallocates rarely enough.
pub(crate) fn reserve_some(v: &mut Vec<u8>, add: usize) {
    if v.capacity() - v.len() < add {
        v.reserve_exact(add.max(v.len() / 8).max(32));
    }
}

/// Gives back capacity when more than a quarter of it is unused.
pub(crate) fn shrink_loose<T>(v: &mut Vec<T>) {
    if v.capacity() > v.len() + v.len() / 4 + 4 {
        v.shrink_to(v.len() + v.len() / 8);
    }
}

/// Approximate bytes of a hash table with `capacity` entries of `entry`
/// bytes (hashbrown: buckets a power of two at most 7/8 full, one control
/// byte each).
pub(crate) fn table_bytes(capacity: usize, entry: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = (capacity * 8 / 7).next_power_of_two();
    alloc_size(buckets * (entry + 1) + 16)
}

/// Gives back a hash table's capacity when less than a quarter is used.
pub(crate) fn shrink_loose_map<K: Eq + std::hash::Hash, V, S: std::hash::BuildHasher>(
    m: &mut std::collections::HashMap<K, V, S>,
) {
    if m.capacity() > 64 && m.len() < m.capacity() / 4 {
        m.shrink_to(m.len() * 2);
    }
}
