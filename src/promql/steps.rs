//! Step-by-step processing of batches: cursors over the input and a
//! builder for output produced one step at a time.

use std::collections::HashMap;

use super::value::{Batch, SeriesMeta, SAME_LABELSET};
use super::{PromqlError, Result};

/// Output of a node computed step by step (aggregations, binary operators):
/// points arrive step-major and are transposed into a [`Batch`] at the end.
pub(crate) struct StepOut {
    metas: Vec<SeriesMeta>,
    by_key: HashMap<u64, u32>,
    last_t: Vec<i64>,
    entries: Vec<(u32, i64, f64)>,
}

impl StepOut {
    pub fn new() -> StepOut {
        StepOut {
            metas: Vec::new(),
            by_key: HashMap::new(),
            last_t: Vec::new(),
            entries: Vec::new(),
        }
    }

    /// Registers an output series that is known to be unique.
    pub fn add(&mut self, meta: SeriesMeta) -> u32 {
        self.metas.push(meta);
        self.last_t.push(i64::MIN);
        (self.metas.len() - 1) as u32
    }

    /// The output series with this label-set key, created on first use, so
    /// that equal label sets produced at different steps form one series.
    pub fn get_or_add(&mut self, key: u64, meta: impl FnOnce() -> SeriesMeta) -> u32 {
        if let Some(&i) = self.by_key.get(&key) {
            return i;
        }
        let i = self.add(meta());
        self.by_key.insert(key, i);
        i
    }

    pub fn push(&mut self, s: u32, t: i64, v: f64) -> Result<()> {
        let last = &mut self.last_t[s as usize];
        if *last == t {
            return Err(PromqlError::Eval(SAME_LABELSET.into()));
        }
        *last = t;
        self.entries.push((s, t, v));
        Ok(())
    }

    pub fn finish(self) -> Batch {
        let n = self.metas.len();
        let mut counts = vec![0usize; n];
        for e in &self.entries {
            counts[e.0 as usize] += 1;
        }
        // New index of every series that has points, and where its points go.
        let mut new_index = vec![u32::MAX; n];
        let mut starts = vec![0usize; n];
        let mut out = Batch::with_capacity(n, self.entries.len());
        let mut pos = 0;
        for (i, meta) in self.metas.into_iter().enumerate() {
            if counts[i] > 0 {
                new_index[i] = out.series.len() as u32;
                starts[i] = pos;
                pos += counts[i];
                out.series.push(meta);
                out.offsets.push(pos);
            }
        }
        out.ts.resize(pos, 0);
        out.vals.resize(pos, 0.0);
        for (s, t, v) in self.entries {
            let p = &mut starts[s as usize];
            out.ts[*p] = t;
            out.vals[*p] = v;
            *p += 1;
        }
        out
    }
}

/// Per-series cursors for walking a batch step by step.
pub(crate) struct Cursors {
    pos: Vec<usize>,
}

impl Cursors {
    pub fn new(b: &Batch) -> Cursors {
        Cursors {
            pos: b.offsets[..b.len()].to_vec(),
        }
    }

    /// The value of series `i` at time `t`, advancing its cursor. Steps must
    /// be visited in increasing order.
    #[inline]
    pub fn at(&mut self, b: &Batch, i: usize, t: i64) -> Option<f64> {
        let p = self.pos[i];
        if p < b.offsets[i + 1] && b.ts[p] == t {
            self.pos[i] = p + 1;
            Some(b.vals[p])
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    fn meta(pairs: &[(&str, &str)]) -> SeriesMeta {
        SeriesMeta::owned(Labels::from_pairs(pairs))
    }

    #[test]
    fn step_out_transposes_and_rejects_duplicates() {
        let mut o = StepOut::new();
        let a = o.add(meta(&[("a", "1")]));
        let b = o.get_or_add(7, || meta(&[("b", "1")]));
        let _empty = o.add(meta(&[("c", "1")]));
        o.push(a, 0, 1.0).unwrap();
        o.push(b, 0, 2.0).unwrap();
        o.push(a, 10, 3.0).unwrap();
        assert!(o.push(a, 10, 4.0).is_err());
        assert_eq!(o.get_or_add(7, || unreachable!()), b);
        let out = o.finish();
        assert_eq!(out.len(), 2);
        assert_eq!(out.ts(0), &[0, 10]);
        assert_eq!(out.vals(1), &[2.0]);
    }
}
