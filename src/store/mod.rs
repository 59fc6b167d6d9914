//! The in-memory time-series store: one hour (configurable) of every series.
//!
//! PLACEHOLDER IMPLEMENTATION: samples are kept uncompressed. The public API
//! below is the contract the evaluator, the scrape loop and the HTTP API use;
//! the internals (compressed chunks, postings index) replace this.
//!
//! The store does no I/O and never reads the clock: every time is a parameter.

mod bits;
pub mod chunk;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::model::{matches_all, Labels, Matcher};

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
    #[error("sample is out of order")]
    OutOfOrder,
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
}

struct Series {
    labels: Arc<Labels>,
    samples: Vec<(i64, f64)>,
}

#[derive(Default)]
struct Inner {
    series: Vec<Option<Series>>,
    by_labels: HashMap<Arc<Labels>, u32>,
    stats: StoreStats,
}

/// The store. All methods take `&self`; it is shared between the scrape
/// tasks that append and the queries that read.
pub struct Store {
    cfg: StoreConfig,
    inner: RwLock<Inner>,
}

impl Store {
    pub fn new(cfg: StoreConfig) -> Store {
        Store {
            cfg,
            inner: RwLock::new(Inner::default()),
        }
    }

    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// The reference of the series with these labels, creating it if needed.
    pub fn get_or_create(&self, labels: &Labels) -> Result<SeriesRef, AppendError> {
        if let Some(&r) = self.inner.read().by_labels.get(labels) {
            return Ok(SeriesRef(r));
        }
        let mut inner = self.inner.write();
        if let Some(&r) = inner.by_labels.get(labels) {
            return Ok(SeriesRef(r));
        }
        if inner.by_labels.len() >= self.cfg.max_series {
            inner.stats.series_refused += 1;
            return Err(AppendError::SeriesLimit(self.cfg.max_series));
        }
        let labels = Arc::new(labels.clone());
        let r = inner.series.len() as u32;
        inner.series.push(Some(Series {
            labels: labels.clone(),
            samples: Vec::new(),
        }));
        inner.by_labels.insert(labels, r);
        Ok(SeriesRef(r))
    }

    /// Appends one sample. Timestamps must increase per series; an equal or
    /// older timestamp is refused as out of order.
    pub fn append(&self, r: SeriesRef, t: i64, v: f64) -> Result<(), AppendError> {
        let mut inner = self.inner.write();
        let s = inner
            .series
            .get_mut(r.0 as usize)
            .and_then(|s| s.as_mut())
            .ok_or(AppendError::UnknownSeries)?;
        if let Some(&(last, _)) = s.samples.last() {
            if t <= last {
                inner.stats.out_of_order += 1;
                return Err(AppendError::OutOfOrder);
            }
        }
        s.samples.push((t, v));
        inner.stats.samples_appended += 1;
        Ok(())
    }

    /// `get_or_create` then `append`.
    pub fn append_labels(&self, labels: &Labels, t: i64, v: f64) -> Result<SeriesRef, AppendError> {
        let r = self.get_or_create(labels)?;
        self.append(r, t, v)?;
        Ok(r)
    }

    /// Samples with `mint <= t <= maxt` of every series matching all matchers,
    /// series ordered by labels. Series with no sample in the range are left out.
    pub fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> SeriesSet {
        let inner = self.inner.read();
        let mut out = SeriesSet::default();
        let mut hits: Vec<&Series> = inner
            .series
            .iter()
            .flatten()
            .filter(|s| matches_all(&s.labels, matchers))
            .collect();
        hits.sort_by(|a, b| a.labels.cmp(&b.labels));
        for s in hits {
            let start = out.ts.len();
            for &(t, v) in s.samples.iter().filter(|(t, _)| *t >= mint && *t <= maxt) {
                out.ts.push(t);
                out.vals.push(v);
            }
            if out.ts.len() > start {
                out.series.push(SelectedSeries {
                    labels: s.labels.clone(),
                    range: start..out.ts.len(),
                });
            }
        }
        out
    }

    /// Label sets of series matching all matchers that have a sample in
    /// `[mint, maxt]`, sorted.
    pub fn series(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<Arc<Labels>> {
        let inner = self.inner.read();
        let mut v: Vec<Arc<Labels>> = inner
            .series
            .iter()
            .flatten()
            .filter(|s| matches_all(&s.labels, matchers))
            .filter(|s| s.samples.iter().any(|(t, _)| *t >= mint && *t <= maxt))
            .map(|s| s.labels.clone())
            .collect();
        v.sort();
        v
    }

    /// Sorted label names of series matching the matchers (all series when
    /// empty) in `[mint, maxt]`.
    pub fn label_names(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<String> {
        let mut names: Vec<String> = self
            .series(matchers, mint, maxt)
            .iter()
            .flat_map(|l| l.iter().map(|l| l.name.clone()).collect::<Vec<_>>())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Sorted values of one label over series matching the matchers in `[mint, maxt]`.
    pub fn label_values(&self, name: &str, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<String> {
        let mut vals: Vec<String> = self
            .series(matchers, mint, maxt)
            .iter()
            .filter_map(|l| l.get(name).map(str::to_owned))
            .collect();
        vals.sort();
        vals.dedup();
        vals
    }

    /// Drops samples older than `now - retention` and series left empty.
    pub fn prune(&self, now_ms: i64) {
        let cutoff = now_ms - self.cfg.retention_ms;
        let mut inner = self.inner.write();
        let mut pruned = 0u64;
        let mut dead = Vec::new();
        for (i, slot) in inner.series.iter_mut().enumerate() {
            if let Some(s) = slot {
                let before = s.samples.len();
                s.samples.retain(|(t, _)| *t >= cutoff);
                pruned += (before - s.samples.len()) as u64;
                if s.samples.is_empty() {
                    dead.push((i, s.labels.clone()));
                    *slot = None;
                }
            }
        }
        for (_, l) in dead {
            inner.by_labels.remove(&l);
        }
        inner.stats.samples_pruned += pruned;
    }

    pub fn stats(&self) -> StoreStats {
        let inner = self.inner.read();
        let mut st = inner.stats.clone();
        st.series = inner.by_labels.len();
        st.bytes = inner
            .series
            .iter()
            .flatten()
            .map(|s| s.samples.capacity() * 16 + s.labels.heap_bytes())
            .sum();
        st
    }
}
