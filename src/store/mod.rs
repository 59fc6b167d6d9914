//! The in-memory time-series store: one hour (configurable) of every series.
//!
//! The store does no I/O and never reads the clock: every time is a parameter.
//!
//! Layout (see each file for details):
//! * `chunk` (with `intseq`, `xor`, `bits`) — the codec, column by column:
//!   frame-of-reference bit packing of differences, decimal values as
//!   scaled integers, Gorilla XOR as the fallback.
//! * `tscol` — timestamp columns, shared by the series scraped together.
//! * `series` — one series: a 16-sample raw head folded into the open
//!   chunk, sealed chunks of `DEFAULT_CHUNK_SAMPLES`, value columns back to
//!   back in one buffer.
//! * `index` — postings and label order; matchers resolve on bitsets.
//! * here — the API. Series live in `SHARDS` stripes, each behind its own
//!   lock, so appends through a `SeriesRef` contend only within a stripe;
//!   the index lock is taken for creating, listing and dropping series.
//!
//! On 10 000 node_exporter-like series at 1 s for an hour (`benches/store.rs`)
//! this holds about 1.2 bytes per sample all-in, appends several million
//! samples a second on one core, and reads 5 minutes of all series in about
//! 10 ms through `select_each` (`select` itself costs more: its result is
//! 16 bytes a sample of fresh memory).
//!
//! Lock order: the index before any shard. A query may hold several
//! shards' read locks, taken in ascending shard order; every writer holds
//! one shard at a time. The interner's mutex is taken last, under a shard
//! lock, and nothing is waited for while holding it.

mod bits;
pub mod chunk;
mod index;
mod intseq;
mod mem;
mod series;
mod tscol;
mod xor;

use std::ops::Range;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock, RwLockReadGuard};

use crate::model::{Labels, Matcher};
use index::{slot_of, Index, MAX_SLOTS};
use series::{Cut, ReadCtx, Series, WriteCtx};
use tscol::Interner;

/// Samples per sealed chunk unless set with `Store::with_chunk_samples`.
/// A 5-minute query window of 1 s data touches 2–3 sealed chunks plus the
/// open one; smaller chunks compress worse, larger ones decode more
/// samples outside the window (see `benches/store.rs`).
pub const DEFAULT_CHUNK_SAMPLES: usize = 128;

/// Stripes of series; a power of two.
const SHARDS: usize = 32;

/// Settings of a store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// How long samples are kept, in milliseconds.
    pub retention_ms: i64,
    /// Most series held at once; new series beyond it are refused.
    pub max_series: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            retention_ms: 3_600_000,
            max_series: 100_000,
        }
    }
}

/// A handle to one series, cheap to keep and to append through. Stays valid
/// for as long as the series is in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeriesRef(pub u32);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    #[error("series limit of {0} reached; new series refused")]
    SeriesLimit(usize),
    /// Not newer than the series' last sample, or older than what
    /// retention already dropped.
    #[error("sample is out of order")]
    OutOfOrder,
    /// The reference was never issued, or its series was dropped since.
    #[error("unknown series reference")]
    UnknownSeries,
}

/// Samples of the selected series, in one columnar buffer so that a select
/// over many series makes a handful of allocations, not one per series.
#[derive(Debug, Default, Clone)]
pub struct SeriesSet {
    pub series: Vec<SelectedSeries>,
    /// Timestamps (ms) of all series, back to back; `series[i].range` indexes it.
    pub ts: Vec<i64>,
    /// Values, parallel to `ts`. Staleness markers are included as stored.
    pub vals: Vec<f64>,
}

#[derive(Debug, Clone)]
pub struct SelectedSeries {
    pub labels: Arc<Labels>,
    pub range: std::ops::Range<usize>,
}

impl SeriesSet {
    pub fn timestamps(&self, i: usize) -> &[i64] {
        &self.ts[self.series[i].range.clone()]
    }
    pub fn values(&self, i: usize) -> &[f64] {
        &self.vals[self.series[i].range.clone()]
    }
}

/// Counters describing the store, for the agent's own /metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreStats {
    pub series: usize,
    pub chunks: usize,
    /// Bytes held: chunks, head buffers, index and labels.
    pub bytes: usize,
    pub samples_appended: u64,
    pub series_refused: u64,
    pub out_of_order: u64,
    pub samples_pruned: u64,
    /// Samples held now.
    pub samples: u64,
    /// Of `bytes`: compressed chunk data (value columns, and timestamp
    /// columns that series scraped together share).
    pub chunk_bytes: usize,
    /// Of `bytes`: the index (postings, label sets, lookup tables).
    pub index_bytes: usize,
}

#[derive(Default)]
struct Shard {
    /// Slot `i` of this shard is global slot `i * SHARDS + shard`.
    slots: Vec<Option<Series>>,
    write: WriteCtx,
    appended: u64,
    out_of_order: u64,
    pruned: u64,
}

impl Shard {
    fn series(&self, id: u32) -> Option<&Series> {
        let s = self.slots.get(slot_of(id) / SHARDS)?.as_ref()?;
        (s.id == id).then_some(s)
    }

    fn series_mut(&mut self, id: u32) -> Option<&mut Series> {
        let s = self.slots.get_mut(slot_of(id) / SHARDS)?.as_mut()?;
        (s.id == id).then_some(s)
    }
}

/// The store. All methods take `&self`; it is shared between the scrape
/// tasks that append and the queries that read.
pub struct Store {
    cfg: StoreConfig,
    cut: Cut,
    index: RwLock<Index>,
    shards: Box<[RwLock<Shard>]>,
    /// Samples older than this were pruned (or may be, chunk by chunk); no
    /// query returns them and appends older than it are refused.
    min_valid: AtomicI64,
    series_refused: AtomicU64,
    /// Timestamp columns shared between series; taken under a shard lock
    /// when a head is folded into a chunk (every 16 samples of a series).
    interner: Mutex<Interner>,
}

impl Store {
    pub fn new(cfg: StoreConfig) -> Store {
        Store::with_chunk_samples(cfg, DEFAULT_CHUNK_SAMPLES)
    }

    /// A store whose sealed chunks hold `chunk_samples` samples (clamped to
    /// 16..=4096); for tuning and tests. `new` uses `DEFAULT_CHUNK_SAMPLES`.
    pub fn with_chunk_samples(cfg: StoreConfig, chunk_samples: usize) -> Store {
        let chunk_samples = chunk_samples.clamp(series::HEAD, chunk::MAX_CHUNK_SAMPLES);
        // A chunk spans at most a quarter of the retention, so that slowly
        // scraped series give back memory in steps too.
        let max_span = (cfg.retention_ms / 4).clamp(1, i64::from(u32::MAX));
        Store {
            cut: Cut {
                chunk_samples,
                max_span,
            },
            cfg,
            index: RwLock::new(Index::default()),
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            min_valid: AtomicI64::new(i64::MIN),
            series_refused: AtomicU64::new(0),
            interner: Mutex::new(Interner::default()),
        }
    }

    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    fn shard(&self, id: u32) -> &RwLock<Shard> {
        &self.shards[slot_of(id) % SHARDS]
    }

    /// The reference of the series with these labels, creating it if needed.
    pub fn get_or_create(&self, labels: &Labels) -> Result<SeriesRef, AppendError> {
        if let Some(id) = self.index.read().get(labels) {
            return Ok(SeriesRef(id));
        }
        let mut index = self.index.write();
        if let Some(id) = index.get(labels) {
            return Ok(SeriesRef(id));
        }
        let limit = self.cfg.max_series.min(MAX_SLOTS);
        if index.len() >= limit {
            self.series_refused.fetch_add(1, Ordering::Relaxed);
            return Err(AppendError::SeriesLimit(self.cfg.max_series));
        }
        let Some(id) = index.insert(Arc::new(labels.clone())) else {
            self.series_refused.fetch_add(1, Ordering::Relaxed);
            return Err(AppendError::SeriesLimit(self.cfg.max_series));
        };
        let mut shard = self.shard(id).write();
        let local = slot_of(id) / SHARDS;
        if shard.slots.len() <= local {
            // Slots are 320 bytes inline: grow by an eighth, not double.
            let want = local + 1;
            if want > shard.slots.capacity() {
                let extra = (want + want / 8 + 8).saturating_sub(shard.slots.len());
                shard.slots.reserve_exact(extra);
            }
            shard.slots.resize_with(want, || None);
        }
        shard.slots[local] = Some(Series::new(id));
        Ok(SeriesRef(id))
    }

    /// Appends one sample. Timestamps must increase per series; an equal or
    /// older timestamp is refused as out of order, and so is one older than
    /// the last `prune` cutoff.
    pub fn append(&self, r: SeriesRef, t: i64, v: f64) -> Result<(), AppendError> {
        let min_valid = self.min_valid.load(Ordering::Relaxed);
        let mut guard = self.shard(r.0).write();
        let shard = &mut *guard;
        let series = match shard.slots.get_mut(slot_of(r.0) / SHARDS) {
            Some(Some(s)) if s.id == r.0 => s,
            _ => return Err(AppendError::UnknownSeries),
        };
        if t < min_valid || series.last_t().is_some_and(|last| t <= last) {
            shard.out_of_order += 1;
            return Err(AppendError::OutOfOrder);
        }
        series.append(t, v, &mut shard.write, self.cut, &self.interner);
        shard.appended += 1;
        Ok(())
    }

    /// `get_or_create` then `append`.
    pub fn append_labels(&self, labels: &Labels, t: i64, v: f64) -> Result<SeriesRef, AppendError> {
        let r = self.get_or_create(labels)?;
        self.append(r, t, v)?;
        Ok(r)
    }

    /// The series matching all matchers, in label order.
    fn matching(&self, matchers: &[Matcher]) -> Vec<(Arc<Labels>, u32)> {
        let index = self.index.read();
        let set = index.matching(matchers);
        index.in_order(&set)
    }

    /// The query range clamped to what retention keeps, or None if empty.
    fn clamp(&self, mint: i64, maxt: i64) -> Option<(i64, i64)> {
        let mint = mint.max(self.min_valid.load(Ordering::Relaxed));
        (mint <= maxt).then_some((mint, maxt))
    }

    /// Samples with `mint <= t <= maxt` of every series matching all matchers,
    /// series ordered by labels. Series with no sample in the range are left out.
    pub fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> SeriesSet {
        let mut out = SeriesSet::default();
        self.select_into(matchers, mint, maxt, &mut out);
        out
    }

    /// `select` into a set whose buffers are reused: it is cleared first and
    /// keeps its capacity. A query engine evaluating repeatedly saves the
    /// allocation, which for millions of samples is mostly page faults.
    pub fn select_into(&self, matchers: &[Matcher], mint: i64, maxt: i64, out: &mut SeriesSet) {
        out.series.clear();
        out.ts.clear();
        out.vals.clear();
        let Some((mint, maxt)) = self.clamp(mint, maxt) else {
            return;
        };
        let (labels, ids): (Vec<Arc<Labels>>, Vec<u32>) =
            self.matching(matchers).into_iter().unzip();
        let mut ranges = Vec::with_capacity(ids.len());
        let mut ctx = ReadCtx::default();
        self.read_batched(&ids, mint, maxt, out, true, |out, i, s, chunks| {
            let start = out.ts.len();
            s.read_chunks(chunks, mint, maxt, &mut ctx, &mut out.ts, &mut out.vals);
            if out.ts.len() > start {
                ranges.push((i, start..out.ts.len()));
            }
        });
        // The label sets were referenced once for this query already: move
        // them, as another reference count update per series is another
        // cache miss per series.
        out.series.reserve_exact(ranges.len());
        let mut ranges = ranges.into_iter().peekable();
        for (i, labels) in labels.into_iter().enumerate() {
            if let Some((_, range)) = ranges.next_if(|r| r.0 == i) {
                out.series.push(SelectedSeries { labels, range });
            }
        }
    }

    /// Calls `f(labels, timestamps, values)` for every series matching all
    /// matchers that has samples with `mint <= t <= maxt`, in label order:
    /// what `select` returns, one series at a time. The slices live in a
    /// small buffer reused from series to series, so that a query that
    /// reduces each series as it comes (`rate`, `max_over_time`, …) never
    /// holds all samples at once. No lock of the store is held while `f`
    /// runs.
    pub fn select_each(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        mut f: impl FnMut(&Arc<Labels>, &[i64], &[f64]),
    ) {
        let Some((mint, maxt)) = self.clamp(mint, maxt) else {
            return;
        };
        let (labels, ids): (Vec<Arc<Labels>>, Vec<u32>) =
            self.matching(matchers).into_iter().unzip();
        let mut ctx = ReadCtx::default();
        let mut buf = SeriesSet::default();
        let mut ranges = Vec::new();
        // Groups small enough for their buffer to stay in the cache (and
        // below the allocator's threshold for mapping fresh pages).
        const GROUP: usize = 32;
        for (g, group) in ids.chunks(GROUP).enumerate() {
            buf.ts.clear();
            buf.vals.clear();
            ranges.clear();
            self.read_batched(group, mint, maxt, &mut buf, true, |out, i, s, chunks| {
                let start = out.ts.len();
                s.read_chunks(chunks, mint, maxt, &mut ctx, &mut out.ts, &mut out.vals);
                if out.ts.len() > start {
                    ranges.push((g * GROUP + i, start..out.ts.len()));
                }
            });
            for (i, r) in ranges.drain(..) {
                f(&labels[i], &buf.ts[r.clone()], &buf.vals[r]);
            }
        }
    }

    /// Calls `f(labels, t, v)` with the newest sample in `[mint, maxt]` of
    /// every series matching all matchers that has one, in label order. An
    /// instant selector needs nothing else, and this decodes one chunk per
    /// series where `select_each` over the lookback window decodes all of
    /// them.
    pub fn select_latest(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        mut f: impl FnMut(&Arc<Labels>, i64, f64),
    ) {
        let Some((mint, maxt)) = self.clamp(mint, maxt) else {
            return;
        };
        let (labels, ids): (Vec<Arc<Labels>>, Vec<u32>) =
            self.matching(matchers).into_iter().unzip();
        let mut ctx = ReadCtx::default();
        let mut found = Vec::with_capacity(32);
        let mut unused = SeriesSet::default();
        const GROUP: usize = 32;
        for (g, group) in ids.chunks(GROUP).enumerate() {
            found.clear();
            self.read_batched(group, mint, maxt, &mut unused, false, |_, i, s, chunks| {
                if let Some((t, v)) = s.latest(chunks, mint, maxt, &mut ctx) {
                    found.push((g * GROUP + i, t, v));
                }
            });
            // `f` runs with no lock held.
            for &(i, t, v) in &found {
                f(&labels[i], t, v);
            }
        }
    }

    /// Calls `f(out, i, series)` for each of `hits` still in the store, a
    /// batch at a time. For each batch the shards it needs are read-locked
    /// once (in shard order, so never against another reader's order), and
    /// the series' chunk tables, then their chunk data, are touched before
    /// any is read: the cache misses of a batch overlap instead of
    /// stalling one after the other, which at thousands of series costs as
    /// much as decoding.
    ///
    /// Output space is reserved a batch at a time from the chunk tables'
    /// upper bound, so that `out` grows in few steps without a separate
    /// pass over all series.
    fn read_batched(
        &self,
        hits: &[u32],
        mint: i64,
        maxt: i64,
        out: &mut SeriesSet,
        reserve: bool,
        mut f: impl FnMut(&mut SeriesSet, usize, &Series, Range<usize>),
    ) {
        const BATCH: usize = 32;
        for (b, batch) in hits.chunks(BATCH).enumerate() {
            let mut need = [false; SHARDS];
            for id in batch {
                need[slot_of(*id) % SHARDS] = true;
            }
            let guards: [Option<RwLockReadGuard<'_, Shard>>; SHARDS] =
                std::array::from_fn(|i| need[i].then(|| self.shards[i].read()));
            let series: [Option<&Series>; BATCH] = std::array::from_fn(|j| {
                let id = *batch.get(j)?;
                guards[slot_of(id) % SHARDS].as_ref()?.series(id)
            });
            let ranges: [_; BATCH] =
                std::array::from_fn(|j| series[j].map(|s| s.chunk_range(mint, maxt)));
            let mut sum = 0u64;
            let mut bound = 0;
            for (s, r) in series.iter().zip(&ranges) {
                if let (Some(s), Some(r)) = (s, r) {
                    sum = sum.wrapping_add(s.touch(r.clone()));
                    bound += s.count_upper_bound(r.clone());
                }
            }
            std::hint::black_box(sum);
            if reserve && out.ts.capacity() - out.ts.len() < bound {
                // Grow geometrically, but at least to what the rest of the
                // query probably needs, judged by the series so far.
                let done = (b * BATCH).max(1);
                let guess = out.ts.len() / done * (hits.len() - done) + bound;
                out.ts.reserve(guess);
                out.vals.reserve(guess);
            }
            for (j, (s, r)) in series.iter().zip(ranges).enumerate() {
                if let (Some(s), Some(r)) = (s, r) {
                    f(out, b * BATCH + j, s, r);
                }
            }
        }
    }

    /// Series of `hits` with a sample in the range.
    fn with_samples_in(
        &self,
        hits: Vec<(Arc<Labels>, u32)>,
        mint: i64,
        maxt: i64,
    ) -> Vec<Arc<Labels>> {
        let mut ctx = ReadCtx::default();
        hits.into_iter()
            .filter(|(_, id)| self.has_sample_in(*id, mint, maxt, &mut ctx))
            .map(|(l, _)| l)
            .collect()
    }

    fn has_sample_in(&self, id: u32, mint: i64, maxt: i64, ctx: &mut ReadCtx) -> bool {
        let shard = self.shard(id).read();
        shard
            .series(id)
            .is_some_and(|s| s.has_sample_in(mint, maxt, ctx))
    }

    /// Label sets of series matching all matchers that have a sample in
    /// `[mint, maxt]`, sorted.
    pub fn series(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<Arc<Labels>> {
        let Some((mint, maxt)) = self.clamp(mint, maxt) else {
            return Vec::new();
        };
        self.with_samples_in(self.matching(matchers), mint, maxt)
    }

    /// Sorted label names of series matching the matchers (all series when
    /// empty) in `[mint, maxt]`.
    pub fn label_names(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<String> {
        let Some((mint, maxt)) = self.clamp(mint, maxt) else {
            return Vec::new();
        };
        // Per name, look for one series in the set with a sample in range:
        // usually the first one tried.
        let mut ctx = ReadCtx::default();
        let candidates: Vec<(String, Vec<u32>)> = {
            let index = self.index.read();
            let set = index.matching(matchers);
            index
                .postings()
                .map(|(name, values)| {
                    let ids = values
                        .values()
                        .flatten()
                        .filter(|&&s| set.contains(s as usize))
                        .filter_map(|&s| index.id_of(s as usize))
                        .collect();
                    (name.to_owned(), ids)
                })
                .collect()
        };
        let mut names: Vec<String> = candidates
            .into_iter()
            .filter(|(_, ids)| {
                ids.iter()
                    .any(|&id| self.has_sample_in(id, mint, maxt, &mut ctx))
            })
            .map(|(n, _)| n)
            .collect();
        names.sort();
        names
    }

    /// Sorted values of one label over series matching the matchers in `[mint, maxt]`.
    pub fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Vec<String> {
        let Some((mint, maxt)) = self.clamp(mint, maxt) else {
            return Vec::new();
        };
        let candidates: Vec<(String, Vec<u32>)> = {
            let index = self.index.read();
            let set = index.matching(matchers);
            let Some(values) = index.values_of(name) else {
                return Vec::new();
            };
            values
                .iter()
                .map(|(v, slots)| {
                    let ids = slots
                        .iter()
                        .filter(|&&s| set.contains(s as usize))
                        .filter_map(|&s| index.id_of(s as usize))
                        .collect();
                    (v.to_string(), ids)
                })
                .collect()
        };
        let mut ctx = ReadCtx::default();
        let mut vals: Vec<String> = candidates
            .into_iter()
            .filter(|(_, ids)| {
                ids.iter()
                    .any(|&id| self.has_sample_in(id, mint, maxt, &mut ctx))
            })
            .map(|(v, _)| v)
            .collect();
        vals.sort();
        vals
    }

    /// Drops samples older than `now - retention` and series left empty.
    ///
    /// Whole chunks go; a chunk straddling the cutoff stays until it is
    /// entirely old, but no query returns its old samples. A series that
    /// was created and never got a sample is dropped at the second prune
    /// that finds it so.
    pub fn prune(&self, now_ms: i64) {
        let cutoff = now_ms.saturating_sub(self.cfg.retention_ms);
        self.min_valid.fetch_max(cutoff, Ordering::Relaxed);
        let mut dead = Vec::new();
        for shard in self.shards.iter() {
            let mut shard = shard.write();
            let mut pruned = 0;
            for s in shard.slots.iter_mut().flatten() {
                pruned += s.prune(cutoff);
                if s.expired(cutoff) {
                    dead.push(s.id);
                }
            }
            shard.pruned += pruned;
        }
        if !dead.is_empty() {
            self.drop_series(dead, cutoff);
        }
        self.interner.lock().sweep();
    }

    /// Removes series that the first pass of `prune` found expired, unless
    /// a sample arrived since.
    fn drop_series(&self, dead: Vec<u32>, cutoff: i64) {
        let mut index = self.index.write();
        for id in dead {
            let mut shard = self.shard(id).write();
            // An append may have come in since the first pass.
            let still = shard.series_mut(id).is_some_and(|s| s.expired(cutoff));
            if !still {
                continue;
            }
            if let Some(s) = shard.slots[slot_of(id) / SHARDS].take() {
                shard.pruned += s.samples() as u64;
            }
            index.remove(id);
        }
    }

    pub fn stats(&self) -> StoreStats {
        let mut st = StoreStats {
            series_refused: self.series_refused.load(Ordering::Relaxed),
            ..StoreStats::default()
        };
        {
            let index = self.index.read();
            st.series = index.len();
            st.index_bytes = index.heap_bytes();
        }
        let ts_bytes = self.interner.lock().heap_bytes();
        st.bytes = st.index_bytes
            + ts_bytes
            + std::mem::size_of::<Store>()
            + mem::alloc_size(SHARDS * std::mem::size_of::<RwLock<Shard>>());
        st.chunk_bytes = ts_bytes;
        for shard in self.shards.iter() {
            let shard = shard.read();
            st.samples_appended += shard.appended;
            st.out_of_order += shard.out_of_order;
            st.samples_pruned += shard.pruned;
            st.bytes += mem::vec_bytes(&shard.slots) + shard.write.heap_bytes();
            for s in shard.slots.iter().flatten() {
                st.chunks += s.chunk_count();
                st.samples += s.samples() as u64;
                st.chunk_bytes += s.value_bytes();
                st.bytes += s.heap_bytes();
            }
        }
        st
    }
}

#[cfg(test)]
mod tests;
