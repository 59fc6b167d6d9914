//! One series' samples: a small raw head and compressed chunks.
//!
//! Samples arrive in the head, a fixed array of `HEAD` raw samples. When it
//! fills, it is folded into the open chunk (the last one, still growing),
//! which is decoded and re-encoded with the new samples; once a chunk holds
//! `chunk_samples` samples it is sealed and never changes again. So the
//! memory held raw is bounded by `HEAD` samples per series while the open
//! chunk is as compact as a sealed one, and readers see one chunk format.
//!
//! All chunks of a series live back to back in one byte buffer, with a
//! 16-byte entry per chunk, rather than one allocation per chunk.

use std::sync::Arc;

use super::chunk::Codec;
use super::mem;
use crate::model::Labels;

/// Samples kept raw before they are folded into the open chunk.
pub(crate) const HEAD: usize = 16;

/// Where a chunk lives in the series' buffer and what time it covers.
#[derive(Debug, Clone, Copy)]
struct ChunkMeta {
    /// First timestamp; it is not stored in the chunk bytes.
    mint: i64,
    /// `maxt - mint`; chunks are cut before this would overflow.
    span: u32,
    /// End offset of the chunk in `Series::data`; it starts where the
    /// previous one ends.
    end: u32,
}

impl ChunkMeta {
    fn maxt(&self) -> i64 {
        self.mint + i64::from(self.span)
    }
}

/// Decoding state reused across the chunks one query reads.
#[derive(Default)]
pub(crate) struct ReadCtx {
    pub(crate) codec: Codec,
}

/// Buffers reused by appends (one set per shard, used under its lock).
#[derive(Default)]
pub(crate) struct WriteCtx {
    codec: Codec,
    ts: Vec<i64>,
    vals: Vec<f64>,
    bytes: Vec<u8>,
}

/// How chunks are cut.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cut {
    pub(crate) chunk_samples: usize,
    /// Longest time a chunk may span, so that retention can drop old data
    /// of slowly scraped series in reasonable steps.
    pub(crate) max_span: i64,
}

pub(crate) struct Series {
    pub(crate) labels: Arc<Labels>,
    chunks: Vec<ChunkMeta>,
    data: Vec<u8>,
    /// Samples in the last chunk while it is open; 0 when it is sealed or
    /// there is none.
    open_n: u16,
    head_len: u8,
    /// Set by a prune that found the series without samples; the next such
    /// prune drops it. A series just created gets one prune of grace.
    pub(crate) empty_seen: bool,
    last_t: i64,
    head_t: [i64; HEAD],
    head_v: [f64; HEAD],
}

impl Series {
    pub(crate) fn new(labels: Arc<Labels>) -> Series {
        Series {
            labels,
            chunks: Vec::new(),
            data: Vec::new(),
            open_n: 0,
            head_len: 0,
            empty_seen: false,
            last_t: i64::MIN,
            head_t: [0; HEAD],
            head_v: [0.0; HEAD],
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.head_len == 0
    }

    /// Timestamp of the newest sample, if any.
    pub(crate) fn last_t(&self) -> Option<i64> {
        (!self.is_empty()).then_some(self.last_t)
    }

    /// Appends a sample newer than every sample held; the caller checked
    /// the order.
    pub(crate) fn append(&mut self, t: i64, v: f64, w: &mut WriteCtx, cut: Cut) {
        debug_assert!(self.is_empty() || t > self.last_t);
        let i = self.head_len as usize;
        self.head_t[i] = t;
        self.head_v[i] = v;
        self.head_len += 1;
        self.last_t = t;
        self.empty_seen = false;
        if self.head_len as usize == HEAD {
            self.flush(w, cut);
        }
    }

    /// Folds the head into the open chunk, opening new chunks as the size
    /// and span limits require.
    fn flush(&mut self, w: &mut WriteCtx, cut: Cut) {
        let head = self.head_len as usize;
        let WriteCtx {
            codec,
            ts,
            vals,
            bytes,
        } = w;
        ts.clear();
        vals.clear();
        if self.open_n > 0 {
            let meta = *self.chunks.last().expect("an open chunk");
            let start = self.chunk_start(self.chunks.len() - 1);
            let (t, v) = codec
                .decode(&self.data[start..meta.end as usize], meta.mint)
                .expect("the store's own chunk decodes");
            ts.extend_from_slice(t);
            vals.extend_from_slice(v);
            self.chunks.pop();
            self.data.truncate(start);
        }
        ts.extend_from_slice(&self.head_t[..head]);
        vals.extend_from_slice(&self.head_v[..head]);
        self.head_len = 0;
        self.open_n = 0;
        // Cut the samples into chunks: at most `chunk_samples` each, and
        // spanning at most `max_span`.
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
            bytes.clear();
            codec.encode(&ts[from..to], &vals[from..to], bytes);
            mem::reserve_some(&mut self.data, bytes.len());
            self.data.extend_from_slice(bytes);
            if self.chunks.len() == self.chunks.capacity() {
                // Grow by a quarter: a series accumulates about 30 chunks
                // over an hour and doubling would waste a third of that.
                let extra = (self.chunks.len() / 4).max(4);
                self.chunks.reserve_exact(extra);
            }
            self.chunks.push(ChunkMeta {
                mint: ts[from],
                span: (ts[to - 1] - ts[from]) as u32,
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

    fn chunk_start(&self, i: usize) -> usize {
        if i == 0 {
            0
        } else {
            self.chunks[i - 1].end as usize
        }
    }

    fn chunk_bytes(&self, i: usize) -> &[u8] {
        &self.data[self.chunk_start(i)..self.chunks[i].end as usize]
    }

    /// Index of the first chunk that may hold samples at or after `mint`.
    fn first_chunk(&self, mint: i64) -> usize {
        self.chunks.partition_point(|c| c.maxt() < mint)
    }

    /// An upper bound of the samples `read` returns for this range, cheap to
    /// compute, for sizing buffers.
    pub(crate) fn count_upper_bound(&self, mint: i64, maxt: i64) -> usize {
        let mut n = 0;
        for i in self.first_chunk(mint)..self.chunks.len() {
            if self.chunks[i].mint > maxt {
                break;
            }
            n += super::chunk::sample_count(self.chunk_bytes(i));
        }
        n + self.head_len as usize
    }

    /// Appends the samples with `mint <= t <= maxt` to `ts` and `vals`.
    pub(crate) fn read(
        &self,
        mint: i64,
        maxt: i64,
        ctx: &mut ReadCtx,
        ts: &mut Vec<i64>,
        vals: &mut Vec<f64>,
    ) {
        for i in self.first_chunk(mint)..self.chunks.len() {
            let meta = self.chunks[i];
            if meta.mint > maxt {
                return;
            }
            let (t, v) = ctx
                .codec
                .decode(self.chunk_bytes(i), meta.mint)
                .expect("the store's own chunk decodes");
            let a = if meta.mint >= mint {
                0
            } else {
                t.partition_point(|&x| x < mint)
            };
            let b = if meta.maxt() <= maxt {
                t.len()
            } else {
                t.partition_point(|&x| x <= maxt)
            };
            ts.extend_from_slice(&t[a..b]);
            vals.extend_from_slice(&v[a..b]);
        }
        let n = self.head_len as usize;
        for i in 0..n {
            let t = self.head_t[i];
            if t > maxt {
                break;
            }
            if t >= mint {
                ts.push(t);
                vals.push(self.head_v[i]);
            }
        }
    }

    /// True when a sample lies in `[mint, maxt]`.
    pub(crate) fn has_sample_in(&self, mint: i64, maxt: i64, ctx: &mut ReadCtx) -> bool {
        if self.head_t[..self.head_len as usize]
            .iter()
            .any(|&t| t >= mint && t <= maxt)
        {
            return true;
        }
        for i in self.first_chunk(mint)..self.chunks.len() {
            let meta = self.chunks[i];
            if meta.mint > maxt {
                return false;
            }
            // Both ends of a chunk are samples; only a chunk that straddles
            // the whole range needs decoding.
            if meta.mint >= mint || meta.maxt() <= maxt {
                return true;
            }
            let t = ctx
                .codec
                .decode_ts(self.chunk_bytes(i), meta.mint)
                .expect("the store's own chunk decodes");
            let a = t.partition_point(|&x| x < mint);
            return a < t.len() && t[a] <= maxt;
        }
        false
    }

    /// Drops whole chunks whose samples are all older than `cutoff` and
    /// returns how many samples went. A chunk straddling the cutoff stays.
    pub(crate) fn prune(&mut self, cutoff: i64) -> u64 {
        let k = self.chunks.partition_point(|c| c.maxt() < cutoff);
        if k == 0 {
            return 0;
        }
        let samples: usize = (0..k)
            .map(|i| super::chunk::sample_count(self.chunk_bytes(i)))
            .sum();
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
        (0..self.chunks.len())
            .map(|i| super::chunk::sample_count(self.chunk_bytes(i)))
            .sum::<usize>()
            + self.head_len as usize
    }

    pub(crate) fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Heap bytes owned by this series, beyond its inline size. The labels
    /// are shared with the index, which counts them.
    pub(crate) fn heap_bytes(&self) -> usize {
        mem::vec_bytes(&self.data) + mem::vec_bytes(&self.chunks)
    }

    /// Bytes of compressed chunk data (without slack), for statistics.
    pub(crate) fn chunk_data_bytes(&self) -> usize {
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
    fn chunks_are_cut_by_count_and_span() {
        let mut s = Series::new(Arc::new(Labels::empty()));
        let mut w = WriteCtx::default();
        let cut = Cut {
            chunk_samples: 32,
            max_span: 100_000,
        };
        for i in 0..200 {
            s.append(i * 1000, i as f64, &mut w, cut);
        }
        // 192 samples flushed into 6 full chunks of 32, 8 in the head.
        assert_eq!(s.chunk_count(), 6);
        assert_eq!(s.samples(), 200);
        let all = collect(&s, i64::MIN, i64::MAX);
        assert_eq!(all.len(), 200);
        assert_eq!(collect(&s, 31_500, 33_000), vec![(32_000, 32f64.to_bits()), (33_000, 33f64.to_bits())]);

        let mut s = Series::new(Arc::new(Labels::empty()));
        for i in 0..64 {
            s.append(i * 10_000, 1.0, &mut w, cut);
        }
        // At most 11 samples fit in 100 s.
        assert_eq!(s.chunk_count(), 6);
        assert_eq!(collect(&s, i64::MIN, i64::MAX).len(), 64);
    }

    #[test]
    fn prune_drops_only_whole_old_chunks() {
        let mut s = Series::new(Arc::new(Labels::empty()));
        let mut w = WriteCtx::default();
        let cut = Cut {
            chunk_samples: 32,
            max_span: u32::MAX as i64,
        };
        for i in 0..100 {
            s.append(i, i as f64, &mut w, cut);
        }
        assert_eq!(s.prune(40), 32);
        assert_eq!(collect(&s, i64::MIN, i64::MAX).first(), Some(&(32, 32f64.to_bits())));
        assert_eq!(s.prune(1000), 64);
        assert_eq!(collect(&s, i64::MIN, i64::MAX).len(), 4);
    }
}
