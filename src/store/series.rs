//! One series' samples: a small raw head and compressed chunks.
//!
//! Samples arrive in the head, a fixed array of `HEAD` raw samples. When it
//! fills, it is folded into the open chunk (the last one, still growing),
//! which is decoded and re-encoded with the new samples; once a chunk holds
//! `chunk_samples` samples it is sealed and never changes again. So the
//! memory held raw is bounded by `HEAD` samples per series while the open
//! chunk is as compact as a sealed one, and readers see one chunk format.
//!
//! A chunk is a value column in the series' byte buffer (all chunks back
//! to back, not one allocation each) and a timestamp column shared with
//! the other series scraped at the same times (see `tscol`).

use std::sync::Arc;

use parking_lot::Mutex;

use super::chunk::Codec;
use super::mem;
use super::tscol::{Interner, TsCache, TsCol};

/// Samples kept raw before they are folded into the open chunk.
pub(crate) const HEAD: usize = 16;

const APPENDED: u8 = 1;
const EMPTY_SEEN: u8 = 2;

/// A chunk: its timestamps, and where its values end in `Series::data`
/// (they start where the previous chunk's end).
#[derive(Debug, Clone)]
struct ChunkMeta {
    ts: Arc<TsCol>,
    end: u32,
}

impl ChunkMeta {
    fn mint(&self) -> i64 {
        self.ts.mint
    }
    fn maxt(&self) -> i64 {
        self.ts.maxt
    }
    fn n(&self) -> usize {
        self.ts.n as usize
    }
}

/// Decoding state reused across the chunks one query reads.
#[derive(Default)]
pub(crate) struct ReadCtx {
    codec: Codec,
    ts: TsCache,
}

/// Buffers reused by appends (one set per shard, used under its lock).
#[derive(Default)]
pub(crate) struct WriteCtx {
    codec: Codec,
    ts: Vec<i64>,
    vals: Vec<f64>,
    bytes: Vec<u8>,
}

impl WriteCtx {
    pub(crate) fn heap_bytes(&self) -> usize {
        self.codec.heap_bytes()
            + mem::vec_bytes(&self.ts)
            + mem::vec_bytes(&self.vals)
            + mem::vec_bytes(&self.bytes)
    }
}

/// How chunks are cut.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cut {
    pub(crate) chunk_samples: usize,
    /// Longest time a chunk may span, so that retention can drop old data
    /// of slowly scraped series in reasonable steps.
    pub(crate) max_span: i64,
}

/// The fields a query reads first share one cache line: with thousands of
/// series per query, cache misses cost as much as decoding.
#[repr(C, align(64))]
pub(crate) struct Series {
    chunks: Vec<ChunkMeta>,
    data: Vec<u8>,
    last_t: i64,
    /// Id of the series (slot and generation), checked by every access
    /// through a `SeriesRef`.
    pub(crate) id: u32,
    /// Samples in the last chunk while it is open; 0 when it is sealed or
    /// there is none.
    open_n: u16,
    head_len: u8,
    /// `APPENDED` once a sample came in; `EMPTY_SEEN` when a prune found a
    /// series that never had one (the next such prune drops it: a series
    /// just created gets one prune of grace).
    flags: u8,
    /// Raw samples, a timestamp next to its value so that an append
    /// touches one cache line.
    head: [(i64, f64); HEAD],
}

impl Series {
    pub(crate) fn new(id: u32) -> Series {
        Series {
            chunks: Vec::new(),
            data: Vec::new(),
            last_t: i64::MIN,
            id,
            open_n: 0,
            head_len: 0,
            flags: 0,
            head: [(0, 0.0); HEAD],
        }
    }

    /// Timestamp of the newest sample ever appended, even if retention
    /// dropped it since: later samples must still be newer.
    pub(crate) fn last_t(&self) -> Option<i64> {
        (self.flags & APPENDED != 0).then_some(self.last_t)
    }

    /// Whether `prune` with this cutoff should drop the series: all its
    /// samples are older, or it never had one and a previous prune saw
    /// that already. Marks the latter case for the next call.
    pub(crate) fn expired(&mut self, cutoff: i64) -> bool {
        match self.last_t() {
            Some(t) => t < cutoff,
            None => {
                let seen = self.flags & EMPTY_SEEN != 0;
                self.flags |= EMPTY_SEEN;
                seen
            }
        }
    }

    /// Appends a sample newer than every sample held; the caller checked
    /// the order.
    pub(crate) fn append(
        &mut self,
        t: i64,
        v: f64,
        w: &mut WriteCtx,
        cut: Cut,
        interner: &Mutex<Interner>,
    ) {
        debug_assert!(self.last_t().is_none_or(|last| t > last));
        let i = self.head_len as usize;
        self.head[i] = (t, v);
        self.head_len += 1;
        self.last_t = t;
        self.flags = APPENDED;
        if self.head_len as usize == HEAD {
            self.flush(w, cut, interner);
        }
    }

    /// Folds the head into the open chunk, opening new chunks as the size
    /// and span limits require.
    fn flush(&mut self, w: &mut WriteCtx, cut: Cut, interner: &Mutex<Interner>) {
        let WriteCtx {
            codec,
            ts,
            vals,
            bytes,
        } = w;
        ts.clear();
        vals.clear();
        if self.open_n > 0 {
            let open = self.chunks.pop().expect("an open chunk");
            let start = self.chunks.last().map_or(0, |c| c.end as usize);
            let col = &open.ts;
            ts.extend_from_slice(
                codec
                    .decode_ts(&col.bytes, col.mint, open.n())
                    .expect("the store's own column decodes"),
            );
            vals.extend_from_slice(
                codec
                    .decode_values(&self.data[start..open.end as usize], open.n())
                    .expect("the store's own chunk decodes"),
            );
            self.data.truncate(start);
        }
        let head = self.head_len as usize;
        ts.extend(self.head[..head].iter().map(|s| s.0));
        vals.extend(self.head[..head].iter().map(|s| s.1));
        self.head_len = 0;
        self.open_n = 0;
        let mut from = 0;
        while from < ts.len() {
            let mut to = from + 1;
            while to < ts.len()
                && to - from < cut.chunk_samples
                && ts[to]
                    .checked_sub(ts[from])
                    .is_some_and(|d| d <= cut.max_span)
            {
                to += 1;
            }
            let before = self.data.len();
            bytes.clear();
            codec.encode_values(&vals[from..to], bytes);
            mem::reserve_some(&mut self.data, bytes.len());
            self.data.extend_from_slice(bytes);
            debug_assert!(self.data.len() > before);
            bytes.clear();
            codec.encode_ts(&ts[from..to], bytes);
            let col = interner
                .lock()
                .intern(ts[from], ts[to - 1], to - from, bytes);
            if self.chunks.len() == self.chunks.capacity() {
                // Grow by a quarter: a series accumulates about 30 chunks
                // over an hour and doubling would waste a third of that.
                let extra = (self.chunks.len() / 4).max(4);
                self.chunks.reserve_exact(extra);
            }
            self.chunks.push(ChunkMeta {
                ts: col,
                end: u32::try_from(self.data.len()).expect("series data under 4 GiB"),
            });
            self.open_n = if to - from < cut.chunk_samples {
                (to - from) as u16
            } else {
                0
            };
            from = to;
        }
    }

    fn values_of(&self, i: usize) -> &[u8] {
        let start = if i == 0 {
            0
        } else {
            self.chunks[i - 1].end as usize
        };
        &self.data[start..self.chunks[i].end as usize]
    }

    /// Index of the first chunk that may hold samples at or after `mint`.
    /// Queries mostly look at the last minutes: walking back from the
    /// newest chunk touches one cache line where a binary search would
    /// miss the cache several times over.
    fn first_chunk(&self, mint: i64) -> usize {
        let mut i = self.chunks.len();
        for _ in 0..8 {
            if i == 0 || self.chunks[i - 1].maxt() < mint {
                return i;
            }
            i -= 1;
        }
        self.chunks[..i].partition_point(|c| c.maxt() < mint)
    }

    /// Chunks that may hold samples in `[mint, maxt]`.
    pub(crate) fn chunk_range(&self, mint: i64, maxt: i64) -> std::ops::Range<usize> {
        let first = self.first_chunk(mint);
        first..first + self.chunks[first..].partition_point(|c| c.mint() <= maxt)
    }

    /// An upper bound of the samples `read` returns for this range, from
    /// the chunk table alone.
    pub(crate) fn count_upper_bound(&self, chunks: std::ops::Range<usize>) -> usize {
        let n: usize = self.chunks[chunks].iter().map(ChunkMeta::n).sum();
        n + self.head_len as usize
    }

    /// Appends the samples with `mint <= t <= maxt` to `ts` and `vals`.
    #[cfg(test)]
    pub(crate) fn read(
        &self,
        mint: i64,
        maxt: i64,
        ctx: &mut ReadCtx,
        ts: &mut Vec<i64>,
        vals: &mut Vec<f64>,
    ) {
        self.read_chunks(self.chunk_range(mint, maxt), mint, maxt, ctx, ts, vals);
    }

    /// `read`, given `chunk_range(mint, maxt)`.
    pub(crate) fn read_chunks(
        &self,
        chunks: std::ops::Range<usize>,
        mint: i64,
        maxt: i64,
        ctx: &mut ReadCtx,
        ts: &mut Vec<i64>,
        vals: &mut Vec<f64>,
    ) {
        for i in chunks {
            let meta = &self.chunks[i];
            let t = ctx.ts.get(&meta.ts, &mut ctx.codec);
            let a = if meta.mint() >= mint {
                0
            } else {
                t.partition_point(|&x| x < mint)
            };
            let b = if meta.maxt() <= maxt {
                t.len()
            } else {
                t.partition_point(|&x| x <= maxt)
            };
            if a == b {
                continue;
            }
            ts.extend_from_slice(&t[a..b]);
            let v = ctx
                .codec
                .decode_values_range(self.values_of(i), meta.n(), a..b)
                .expect("the store's own chunk decodes");
            vals.extend_from_slice(v);
        }
        for &(t, v) in &self.head[..self.head_len as usize] {
            if t >= mint && t <= maxt {
                ts.push(t);
                vals.push(v);
            }
        }
    }

    /// The newest sample with `mint <= t <= maxt`, given
    /// `chunk_range(mint, maxt)`: what an instant selector needs. Only the
    /// head or the last chunk of the range is decoded, since every sample
    /// of a later chunk is newer than every sample of an earlier one.
    pub(crate) fn latest(
        &self,
        chunks: std::ops::Range<usize>,
        mint: i64,
        maxt: i64,
        ctx: &mut ReadCtx,
    ) -> Option<(i64, f64)> {
        let head = &self.head[..self.head_len as usize];
        if let Some(&(t, v)) = head.iter().rev().find(|&&(t, _)| t <= maxt) {
            return (t >= mint).then_some((t, v));
        }
        let i = chunks.end.checked_sub(1).filter(|i| *i >= chunks.start)?;
        let meta = &self.chunks[i];
        let t = ctx.ts.get(&meta.ts, &mut ctx.codec);
        let b = t.partition_point(|&x| x <= maxt);
        let last_t = *t.get(b.checked_sub(1)?)?;
        if last_t < mint {
            return None;
        }
        let v = ctx
            .codec
            .decode_values_range(self.values_of(i), meta.n(), b - 1..b)
            .expect("the store's own chunk decodes");
        v.first().map(|&v| (last_t, v))
    }

    /// Loads what `read` of these chunks will touch into the cache and
    /// returns a meaningless sum. Called for a batch of series before
    /// reading them, so that their cache misses overlap instead of
    /// stalling one after the other.
    pub(crate) fn touch(&self, r: std::ops::Range<usize>) -> u64 {
        let mut sum = u64::from(self.head_len);
        if self.head_len > 0 {
            let last = self.head_len as usize - 1;
            sum = sum.wrapping_add(self.head[last].0 as u64 ^ self.head[0].1.to_bits());
        }
        if !r.is_empty() {
            let from = if r.start == 0 {
                0
            } else {
                self.chunks[r.start - 1].end as usize
            };
            let data = &self.data[from..self.chunks[r.end - 1].end as usize];
            for b in data.iter().step_by(64) {
                sum = sum.wrapping_add(u64::from(*b));
            }
            sum = sum.wrapping_add(u64::from(*data.last().unwrap_or(&0)));
        }
        sum
    }

    /// True when a sample lies in `[mint, maxt]`.
    pub(crate) fn has_sample_in(&self, mint: i64, maxt: i64, ctx: &mut ReadCtx) -> bool {
        if self.head[..self.head_len as usize]
            .iter()
            .any(|&(t, _)| t >= mint && t <= maxt)
        {
            return true;
        }
        self.chunks[self.chunk_range(mint, maxt)].iter().any(|c| {
            // Both ends of a chunk are samples; only a chunk that straddles
            // the whole range needs decoding.
            if c.mint() >= mint || c.maxt() <= maxt {
                return true;
            }
            let t = ctx.ts.get(&c.ts, &mut ctx.codec);
            let a = t.partition_point(|&x| x < mint);
            a < t.len() && t[a] <= maxt
        })
    }

    /// Drops whole chunks whose samples are all older than `cutoff` and
    /// returns how many samples went. A chunk straddling the cutoff stays.
    pub(crate) fn prune(&mut self, cutoff: i64) -> u64 {
        let k = self.chunks.partition_point(|c| c.maxt() < cutoff);
        if k == 0 {
            return 0;
        }
        let samples: usize = self.chunks[..k].iter().map(ChunkMeta::n).sum();
        let cut = self.chunks[k - 1].end;
        self.data.drain(..cut as usize);
        self.chunks.drain(..k);
        for c in &mut self.chunks {
            c.end -= cut;
        }
        if self.chunks.is_empty() {
            self.open_n = 0;
        }
        mem::shrink_loose(&mut self.data);
        mem::shrink_loose(&mut self.chunks);
        samples as u64
    }

    /// Samples held.
    pub(crate) fn samples(&self) -> usize {
        self.chunks.iter().map(ChunkMeta::n).sum::<usize>() + self.head_len as usize
    }

    pub(crate) fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Heap bytes owned by this series, beyond its inline size. Timestamp
    /// columns are shared: the interner counts them.
    pub(crate) fn heap_bytes(&self) -> usize {
        mem::vec_bytes(&self.data) + mem::vec_bytes(&self.chunks)
    }

    /// Bytes of compressed value columns (without slack), for statistics.
    pub(crate) fn value_bytes(&self) -> usize {
        self.data.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(s: &Series, mint: i64, maxt: i64) -> Vec<(i64, u64)> {
        let (mut ts, mut vs) = (Vec::new(), Vec::new());
        s.read(mint, maxt, &mut ReadCtx::default(), &mut ts, &mut vs);
        ts.into_iter().zip(vs.iter().map(|v| v.to_bits())).collect()
    }

    #[test]
    fn hot_fields_fill_one_cache_line() {
        // Five lines: the fields every access reads, then the raw head.
        assert_eq!(std::mem::size_of::<Option<Series>>(), 64 + HEAD * 16);
        assert_eq!(std::mem::offset_of!(Series, head), 64);
        assert_eq!(std::mem::size_of::<ChunkMeta>(), 16);
    }

    #[test]
    fn chunks_are_cut_by_count_and_span() {
        let mut s = Series::new(0);
        let mut w = WriteCtx::default();
        let int = Mutex::new(Interner::default());
        let cut = Cut {
            chunk_samples: 32,
            max_span: 100_000,
        };
        for i in 0..200 {
            s.append(i * 1000, i as f64, &mut w, cut, &int);
        }
        // 192 samples flushed into 6 full chunks of 32, 8 in the head.
        assert_eq!(s.chunk_count(), 6);
        assert_eq!(s.samples(), 200);
        let all = collect(&s, i64::MIN, i64::MAX);
        assert_eq!(all.len(), 200);
        assert_eq!(
            collect(&s, 31_500, 33_000),
            vec![(32_000, 32f64.to_bits()), (33_000, 33f64.to_bits())]
        );
        assert_eq!(s.count_upper_bound(s.chunk_range(31_500, 33_000)), 32 + 8);

        let mut s = Series::new(0);
        for i in 0..64 {
            s.append(i * 10_000, 1.0, &mut w, cut, &int);
        }
        // At most 11 samples fit in 100 s.
        assert_eq!(s.chunk_count(), 6);
        assert_eq!(collect(&s, i64::MIN, i64::MAX).len(), 64);
    }

    #[test]
    fn series_in_step_share_timestamp_columns() {
        let int = Mutex::new(Interner::default());
        let mut w = WriteCtx::default();
        let cut = Cut {
            chunk_samples: 32,
            max_span: i64::MAX,
        };
        let (mut a, mut b) = (Series::new(0), Series::new(1));
        for i in 0..100 {
            a.append(i * 1000 + i % 3, i as f64, &mut w, cut, &int);
            b.append(i * 1000 + i % 3, 0.5, &mut w, cut, &int);
        }
        for (x, y) in a.chunks.iter().zip(&b.chunks) {
            assert!(Arc::ptr_eq(&x.ts, &y.ts));
        }
        int.lock().sweep();
        assert_eq!(int.lock().len(), a.chunk_count());
    }

    #[test]
    fn prune_drops_only_whole_old_chunks() {
        let mut s = Series::new(0);
        let mut w = WriteCtx::default();
        let int = Mutex::new(Interner::default());
        let cut = Cut {
            chunk_samples: 32,
            max_span: i64::MAX,
        };
        for i in 0..100 {
            s.append(i, i as f64, &mut w, cut, &int);
        }
        assert_eq!(s.prune(40), 32);
        assert_eq!(
            collect(&s, i64::MIN, i64::MAX).first(),
            Some(&(32, 32f64.to_bits()))
        );
        assert_eq!(s.prune(1000), 64);
        assert_eq!(collect(&s, i64::MIN, i64::MAX).len(), 4);
    }
}
