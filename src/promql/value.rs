//! The evaluator's internal values.
//!
//! Every node is evaluated over all steps at once. An instant vector over
//! steps is a [`Batch`]: series metadata plus all points of all series in two
//! flat columns, so that a node over thousands of series makes a handful of
//! allocations. A range vector ([`RangeData`]) is a batch of raw samples plus
//! the window each step looks at.
//!
//! Dropping the metric name is lazy: a series carries `drop_name` and every
//! reader of its labels sees them without `__name__`. This spares copying the
//! label sets of every series that goes through `rate()` on its way into an
//! aggregation.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use super::grouping::hash_labels;
use super::{PromqlError, Result};
use crate::model::{is_stale_nan, Label, Labels, METRIC_NAME};
use crate::store::SeriesSet;

pub(crate) const SAME_LABELSET: &str = "vector cannot contain metrics with the same labelset";

/// The evaluation timestamps of a node: `start, start + step, ..., <= end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Steps {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

impl Steps {
    pub fn len(&self) -> usize {
        if self.end < self.start {
            0
        } else {
            ((self.end - self.start) / self.step + 1) as usize
        }
    }

    pub fn t(&self, k: usize) -> i64 {
        self.start + k as i64 * self.step
    }

    pub fn index(&self, t: i64) -> usize {
        ((t - self.start) / self.step) as usize
    }
}

/// The labels of one series, with the metric name possibly dropped lazily.
#[derive(Debug, Clone)]
pub(crate) struct SeriesMeta {
    pub labels: Arc<Labels>,
    pub drop_name: bool,
}

impl SeriesMeta {
    pub fn new(labels: Arc<Labels>) -> SeriesMeta {
        SeriesMeta {
            labels,
            drop_name: false,
        }
    }

    pub fn owned(labels: Labels) -> SeriesMeta {
        SeriesMeta::new(Arc::new(labels))
    }

    /// The effective labels, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Label> {
        let drop = self.drop_name;
        self.labels
            .iter()
            .filter(move |l| !(drop && l.name == METRIC_NAME))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        if self.drop_name && name == METRIC_NAME {
            None
        } else {
            self.labels.get(name)
        }
    }

    pub fn name(&self) -> &str {
        self.get(METRIC_NAME).unwrap_or("")
    }

    /// The effective label set as a value.
    pub fn materialize(&self) -> Labels {
        if self.drop_name && self.labels.get(METRIC_NAME).is_some() {
            self.labels.without_metric_name()
        } else {
            (*self.labels).clone()
        }
    }

    /// Hash of the effective label set (equal to `Labels::fingerprint` of
    /// `materialize()`).
    pub fn fingerprint(&self) -> u64 {
        hash_labels(self.iter())
    }
}

/// Points of many series over steps (or raw samples), in flat columns.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    pub series: Vec<SeriesMeta>,
    /// `offsets[i]..offsets[i + 1]` are the points of `series[i]`.
    pub offsets: Vec<usize>,
    pub ts: Vec<i64>,
    pub vals: Vec<f64>,
    /// Known to have one metric name for all series (a selector with an
    /// exact name, or names already dropped), which spares checking every
    /// series when the names are dropped.
    pub uniform_names: bool,
}

impl Default for Batch {
    fn default() -> Self {
        Batch::new()
    }
}

impl Batch {
    pub fn new() -> Batch {
        Batch {
            series: Vec::new(),
            offsets: vec![0],
            ts: Vec::new(),
            vals: Vec::new(),
            uniform_names: false,
        }
    }

    pub fn with_capacity(series: usize, points: usize) -> Batch {
        let mut offsets = Vec::with_capacity(series + 1);
        offsets.push(0);
        Batch {
            series: Vec::with_capacity(series),
            offsets,
            ts: Vec::with_capacity(points),
            vals: Vec::with_capacity(points),
            uniform_names: false,
        }
    }

    /// Takes over the columns of a store select. The store lays series out
    /// back to back; if a future store does not, the samples are copied.
    pub fn from_series_set(set: SeriesSet) -> Batch {
        let contiguous = set
            .series
            .iter()
            .scan(0usize, |end, s| {
                let ok = s.range.start == *end;
                *end = s.range.end;
                Some(ok)
            })
            .all(|ok| ok)
            && set
                .series
                .last()
                .map_or(set.ts.is_empty(), |s| s.range.end == set.ts.len());
        if contiguous {
            let mut offsets = Vec::with_capacity(set.series.len() + 1);
            offsets.push(0);
            offsets.extend(set.series.iter().map(|s| s.range.end));
            let series = set
                .series
                .into_iter()
                .map(|s| SeriesMeta::new(s.labels))
                .collect();
            let mut b = Batch {
                series,
                offsets,
                ts: set.ts,
                vals: set.vals,
                uniform_names: false,
            };
            b.drop_empty();
            b
        } else {
            let mut b = Batch::with_capacity(set.series.len(), set.ts.len());
            for s in &set.series {
                b.ts.extend_from_slice(&set.ts[s.range.clone()]);
                b.vals.extend_from_slice(&set.vals[s.range.clone()]);
                b.finish_series(SeriesMeta::new(s.labels.clone()));
            }
            b
        }
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn range(&self, i: usize) -> Range<usize> {
        self.offsets[i]..self.offsets[i + 1]
    }

    pub fn ts(&self, i: usize) -> &[i64] {
        &self.ts[self.range(i)]
    }

    pub fn vals(&self, i: usize) -> &[f64] {
        &self.vals[self.range(i)]
    }

    pub fn push(&mut self, t: i64, v: f64) {
        self.ts.push(t);
        self.vals.push(v);
    }

    /// Closes the series whose points were pushed since the last call; a
    /// series without points is left out.
    pub fn finish_series(&mut self, meta: SeriesMeta) {
        let start = *self.offsets.last().unwrap();
        if self.ts.len() > start {
            self.series.push(meta);
            self.offsets.push(self.ts.len());
        }
    }

    pub fn sample_count(&self) -> usize {
        self.ts.len()
    }

    /// True when all series have the same effective metric name, so that
    /// dropping it cannot make two label sets equal.
    pub fn names_uniform(&self) -> bool {
        if self.uniform_names {
            return true;
        }
        let first = self.series.first().map_or("", |m| m.name());
        self.series.iter().all(|m| m.name() == first)
    }

    fn drop_empty(&mut self) {
        if (0..self.len()).all(|i| self.offsets[i] < self.offsets[i + 1]) {
            return;
        }
        let mut w = 0;
        for i in 0..self.len() {
            if self.offsets[i] < self.offsets[i + 1] {
                self.series.swap(w, i);
                self.offsets[w + 1] = self.offsets[i + 1];
                w += 1;
            }
        }
        self.series.truncate(w);
        self.offsets.truncate(w + 1);
    }

    /// Keeps the points for which `f(series, t, &mut v)` is true, in place;
    /// series left without points are removed.
    pub fn retain_points(&mut self, mut f: impl FnMut(usize, i64, &mut f64) -> bool) {
        let mut w = 0;
        let mut ws = 0;
        for i in 0..self.series.len() {
            let r = self.range(i);
            let start_w = w;
            for j in r {
                let t = self.ts[j];
                let mut v = self.vals[j];
                if f(i, t, &mut v) {
                    self.ts[w] = t;
                    self.vals[w] = v;
                    w += 1;
                }
            }
            if w > start_w {
                self.series.swap(ws, i);
                self.offsets[ws] = start_w;
                ws += 1;
            }
        }
        self.series.truncate(ws);
        self.offsets.truncate(ws + 1);
        self.offsets[ws] = w;
        self.ts.truncate(w);
        self.vals.truncate(w);
    }

    /// Removes staleness markers (range vectors never contain them).
    pub fn remove_stale(&mut self) {
        if self.vals.iter().any(|v| is_stale_nan(*v)) {
            self.retain_points(|_, _, v| !is_stale_nan(*v));
        }
    }

    /// Sets `drop_name` on every series and resolves label sets that became
    /// equal: merged when their points do not collide (`merge`), an error
    /// otherwise.
    pub fn drop_names(mut self, merge: bool) -> Result<Batch> {
        let uniform = self.names_uniform();
        for m in &mut self.series {
            m.drop_name = true;
        }
        let mut b = if uniform {
            self
        } else {
            self.resolve_duplicates(merge)?
        };
        b.uniform_names = true;
        Ok(b)
    }

    /// Handles series with equal effective label sets, which a relabeling
    /// can create: they become one series if their timestamps do not
    /// overlap and `merge` is set; otherwise the query fails like Prometheus.
    pub fn resolve_duplicates(self, merge: bool) -> Result<Batch> {
        let fps: Vec<u64> = self.series.iter().map(SeriesMeta::fingerprint).collect();
        let mut first: HashMap<u64, usize> = HashMap::with_capacity(fps.len());
        let mut dup = false;
        for (i, fp) in fps.iter().enumerate() {
            if first.insert(*fp, i).is_some() {
                dup = true;
            }
        }
        if !dup {
            return Ok(self);
        }
        if !merge {
            return Err(PromqlError::Eval(SAME_LABELSET.into()));
        }
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut group_of: HashMap<u64, usize> = HashMap::new();
        for (i, fp) in fps.iter().enumerate() {
            let g = *group_of.entry(*fp).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[g].push(i);
        }
        let mut out = Batch::with_capacity(groups.len(), self.ts.len());
        let mut pts: Vec<(i64, f64)> = Vec::new();
        for g in groups {
            pts.clear();
            for &i in &g {
                pts.extend(self.ts(i).iter().copied().zip(self.vals(i).iter().copied()));
            }
            pts.sort_by_key(|p| p.0);
            if pts.windows(2).any(|w| w[0].0 == w[1].0) {
                return Err(PromqlError::Eval(SAME_LABELSET.into()));
            }
            for &(t, v) in &pts {
                out.push(t, v);
            }
            out.finish_series(self.series[g[0]].clone());
        }
        Ok(out)
    }
}

/// A range vector: raw samples and the window each step sees, which is
/// `(end - range, end]` with `end = (@ time or step time) - offset`.
#[derive(Debug, Clone)]
pub(crate) struct RangeData {
    pub batch: Batch,
    pub range: i64,
    pub at: Option<i64>,
    pub offset: i64,
    /// The batch comes straight from the store and may hold staleness
    /// markers, which windows skip. They are filtered per series when the
    /// series is used, while its samples are in cache, rather than in a
    /// separate pass over all samples.
    pub may_have_stale: bool,
}

impl RangeData {
    pub fn window_end(&self, steps: &Steps, k: usize) -> i64 {
        self.at.unwrap_or_else(|| steps.t(k)) - self.offset
    }
}

/// The value of a node over all steps.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    /// One value per step.
    Scalar(Vec<f64>),
    String(String),
    Vector(Batch),
    Matrix(RangeData),
}

impl Val {
    pub fn sample_count(&self) -> usize {
        match self {
            Val::Scalar(v) => v.len(),
            Val::String(_) => 0,
            Val::Vector(b) => b.sample_count(),
            Val::Matrix(r) => r.batch.sample_count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::grouping::Grouping;

    fn meta(pairs: &[(&str, &str)]) -> SeriesMeta {
        SeriesMeta::owned(Labels::from_pairs(pairs))
    }

    #[test]
    fn retain_points_compacts_and_drops_empty_series() {
        let mut b = Batch::new();
        for (i, n) in [2, 3, 1].iter().enumerate() {
            for j in 0..*n {
                b.push(j as i64, (i * 10 + j) as f64);
            }
            b.finish_series(meta(&[("i", &i.to_string())]));
        }
        b.retain_points(|i, _, v| {
            *v += 1.0;
            i != 1
        });
        assert_eq!(b.len(), 2);
        assert_eq!(b.vals(0), &[1.0, 2.0]);
        assert_eq!(b.vals(1), &[21.0]);
        assert_eq!(b.offsets, vec![0, 2, 3]);
    }

    #[test]
    fn lazily_dropped_names_are_invisible() {
        let mut m = meta(&[("__name__", "x"), ("job", "a")]);
        m.drop_name = true;
        assert_eq!(m.get("__name__"), None);
        assert_eq!(m.materialize(), Labels::from_pairs(&[("job", "a")]));
        assert_eq!(
            m.fingerprint(),
            Labels::from_pairs(&[("job", "a")]).fingerprint()
        );
        let g = Grouping::new(false, &[]);
        assert_eq!(g.labels(&m), Labels::from_pairs(&[("job", "a")]));
    }

    #[test]
    fn dropping_names_merges_or_rejects_collisions() {
        let mut b = Batch::new();
        b.push(0, 1.0);
        b.finish_series(meta(&[("__name__", "a"), ("j", "1")]));
        b.push(10, 2.0);
        b.finish_series(meta(&[("__name__", "b"), ("j", "1")]));
        let merged = b.clone().drop_names(true).unwrap();
        assert_eq!(merged.len(), 1);
        assert_eq!(merged.ts(0), &[0, 10]);
        assert!(b.drop_names(false).is_err());
    }
}
