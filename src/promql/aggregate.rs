//! Aggregation operators (`sum`, `avg`, ..., `topk`, `quantile`,
//! `count_values`) with `by`/`without`.
//!
//! The group of every input series is computed once; then each step walks
//! the series and feeds its value into its group's accumulator.

use std::collections::HashMap;

use promql_parser::parser::token::TokenId;
use promql_parser::parser::token::{
    T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_GROUP, T_MAX, T_MIN, T_QUANTILE, T_STDDEV,
    T_STDVAR, T_SUM, T_TOPK,
};
use promql_parser::parser::{AggregateExpr, LabelModifier};

use super::eval::Evaluator;
use super::grouping::Grouping;
use super::stats::{format_go_float, kahan_inc, quantile};
use super::steps::{Cursors, StepOut};
use super::value::{Batch, SeriesMeta, Steps, Val};
use super::{PromqlError, Result};
use crate::model::{Label, Labels};

pub(crate) fn check_supported(a: &AggregateExpr) -> Result<()> {
    match a.op.id() {
        T_SUM | T_AVG | T_COUNT | T_MIN | T_MAX | T_GROUP | T_STDDEV | T_STDVAR | T_TOPK
        | T_BOTTOMK | T_QUANTILE | T_COUNT_VALUES => Ok(()),
        _ => Err(PromqlError::Unsupported(format!(
            "unsupported aggregation {}",
            a.op
        ))),
    }
}

pub(crate) fn eval(ev: &mut Evaluator, a: &AggregateExpr, steps: Steps) -> Result<Val> {
    check_supported(a)?;
    let op = a.op.id();
    let grouping = match &a.modifier {
        None => Grouping::new(true, &[]),
        Some(LabelModifier::Include(ls)) => Grouping::new(true, &ls.labels),
        Some(LabelModifier::Exclude(ls)) => Grouping::new(false, &ls.labels),
    };
    let param = || {
        a.param
            .as_deref()
            .ok_or_else(|| PromqlError::Eval(format!("{} needs a parameter", a.op)))
    };
    let out = match op {
        T_COUNT_VALUES => {
            let label = ev.eval_string(param()?, steps)?;
            if label.is_empty() {
                return Err(PromqlError::Eval("invalid label name \"\"".into()));
            }
            let input = ev.eval_vector(&a.expr, steps)?;
            count_values(&input, &grouping, &label, steps)?
        }
        T_TOPK | T_BOTTOMK => {
            let k = ev.eval_scalar(param()?, steps)?;
            let input = ev.eval_vector(&a.expr, steps)?;
            top_k(&input, &grouping, &k, op == T_TOPK, steps)?
        }
        _ => {
            let q = if op == T_QUANTILE {
                ev.eval_scalar(param()?, steps)?
            } else {
                Vec::new()
            };
            let input = ev.eval_vector(&a.expr, steps)?;
            aggregate(&input, &grouping, op, &q, steps)?
        }
    };
    Ok(Val::Vector(out))
}

/// Maps every series to a group; returns the group of each series and the
/// first series of each group.
fn assign_groups(input: &Batch, grouping: &Grouping) -> (Vec<u32>, Vec<usize>) {
    let mut by_key: HashMap<u64, u32> = HashMap::new();
    let mut first = Vec::new();
    let group_of = input
        .series
        .iter()
        .enumerate()
        .map(|(i, m)| {
            *by_key.entry(grouping.key(m)).or_insert_with(|| {
                first.push(i);
                (first.len() - 1) as u32
            })
        })
        .collect();
    (group_of, first)
}

#[derive(Clone, Copy, Default)]
struct Acc {
    seen: bool,
    value: f64,
    mean: f64,
    c: f64,
    count: f64,
    incremental: bool,
}

impl Acc {
    fn start(op: TokenId, f: f64) -> Acc {
        let value = match op {
            T_STDDEV | T_STDVAR if f.is_nan() || f.is_infinite() => f64::NAN,
            T_STDDEV | T_STDVAR => 0.0,
            T_GROUP => 1.0,
            _ => f,
        };
        Acc {
            seen: true,
            value,
            mean: f,
            c: 0.0,
            count: 1.0,
            incremental: false,
        }
    }

    fn add(&mut self, op: TokenId, f: f64) {
        match op {
            T_SUM => (self.value, self.c) = kahan_inc(f, self.value, self.c),
            T_AVG => {
                self.count += 1.0;
                if !self.incremental {
                    let (v, c) = kahan_inc(f, self.value, self.c);
                    if !v.is_infinite() {
                        (self.value, self.c) = (v, c);
                        return;
                    }
                    // The sum would overflow: continue with the incremental mean.
                    self.incremental = true;
                    self.mean = self.value / (self.count - 1.0);
                    self.c /= self.count - 1.0;
                }
                let q = (self.count - 1.0) / self.count;
                (self.mean, self.c) = kahan_inc(f / self.count, q * self.mean, q * self.c);
            }
            T_MAX if self.value < f || self.value.is_nan() => self.value = f,
            T_MIN if self.value > f || self.value.is_nan() => self.value = f,
            T_COUNT => self.count += 1.0,
            T_STDDEV | T_STDVAR => {
                self.count += 1.0;
                let delta = f - self.mean;
                self.mean += delta / self.count;
                self.value += delta * (f - self.mean);
            }
            _ => {}
        }
    }

    fn result(&self, op: TokenId) -> f64 {
        match op {
            T_SUM => self.value + self.c,
            T_AVG if self.incremental => self.mean + self.c,
            T_AVG => self.value / self.count + self.c / self.count,
            T_COUNT => self.count,
            T_STDVAR => self.value / self.count,
            T_STDDEV => (self.value / self.count).sqrt(),
            _ => self.value,
        }
    }
}

fn aggregate(
    input: &Batch,
    grouping: &Grouping,
    op: TokenId,
    q: &[f64],
    steps: Steps,
) -> Result<Batch> {
    let (group_of, first) = assign_groups(input, grouping);
    let mut out = StepOut::new();
    for &i in &first {
        out.add(SeriesMeta::owned(grouping.labels(&input.series[i])));
    }
    let mut accs = vec![Acc::default(); first.len()];
    let mut values: Vec<Vec<f64>> =
        vec![Vec::new(); if op == T_QUANTILE { first.len() } else { 0 }];
    let mut cur = Cursors::new(input);
    for k in 0..steps.len() {
        let t = steps.t(k);
        accs.iter_mut().for_each(|a| a.seen = false);
        for (i, &g) in group_of.iter().enumerate() {
            let Some(f) = cur.at(input, i, t) else {
                continue;
            };
            let acc = &mut accs[g as usize];
            if op == T_QUANTILE {
                if !acc.seen {
                    values[g as usize].clear();
                }
                values[g as usize].push(f);
            }
            if acc.seen {
                acc.add(op, f);
            } else {
                *acc = Acc::start(op, f);
            }
        }
        for (g, acc) in accs.iter().enumerate() {
            if acc.seen {
                let v = if op == T_QUANTILE {
                    quantile(q.get(k).copied().unwrap_or(f64::NAN), &mut values[g])
                } else {
                    acc.result(op)
                };
                out.push(g as u32, t, v)?;
            }
        }
    }
    Ok(out.finish())
}

/// `less` of Prometheus' value heaps: NaN is the smallest for topk's min-heap
/// and the largest-kept for bottomk's max-heap.
fn heap_less(top: bool, a: f64, b: f64) -> bool {
    a.is_nan() || if top { a < b } else { a > b }
}

fn heap_up(h: &mut [(f64, u32)], top: bool, mut j: usize) {
    while j > 0 {
        let i = (j - 1) / 2;
        if !heap_less(top, h[j].0, h[i].0) {
            break;
        }
        h.swap(i, j);
        j = i;
    }
}

fn heap_down(h: &mut [(f64, u32)], top: bool, i0: usize) -> bool {
    let n = h.len();
    let mut i = i0;
    loop {
        let j1 = 2 * i + 1;
        if j1 >= n {
            break;
        }
        let mut j = j1;
        if j1 + 1 < n && heap_less(top, h[j1 + 1].0, h[j1].0) {
            j = j1 + 1;
        }
        if !heap_less(top, h[j].0, h[i].0) {
            break;
        }
        h.swap(i, j);
        i = j;
    }
    i > i0
}

/// Sorts the kept elements best first as Go's `sort.Sort(sort.Reverse(heap))`
/// does: insertion sort for the small heaps of typical k, which keeps ties
/// in heap order.
fn sort_heap(h: &mut [(f64, u32)], top: bool) {
    let less = |a: &(f64, u32), b: &(f64, u32)| heap_less(top, b.0, a.0);
    if h.len() <= 12 {
        for i in 1..h.len() {
            let mut j = i;
            while j > 0 && less(&h[j], &h[j - 1]) {
                h.swap(j, j - 1);
                j -= 1;
            }
        }
    } else {
        h.sort_by(|a, b| {
            if less(a, b) {
                std::cmp::Ordering::Less
            } else if less(b, a) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        });
    }
}

/// topk/bottomk: the k largest (smallest) elements per group, keeping their
/// labels; ties go to the series seen first, as with Prometheus' heap.
fn top_k(input: &Batch, grouping: &Grouping, ks: &[f64], top: bool, steps: Steps) -> Result<Batch> {
    let max = ks.iter().fold(f64::NEG_INFINITY, |m, &k| {
        if m.is_nan() || k.is_nan() {
            f64::NAN
        } else {
            m.max(k)
        }
    });
    let min = ks.iter().fold(f64::INFINITY, |m, &k| {
        if m.is_nan() || k.is_nan() {
            f64::NAN
        } else {
            m.min(k)
        }
    });
    if max < 1.0 {
        return Ok(Batch::new());
    }
    if ks.iter().any(|k| k.is_nan()) {
        return Err(PromqlError::Eval("Parameter value is NaN".into()));
    }
    if min <= -9_223_372_036_854_775_808.0 {
        return Err(PromqlError::Eval(format!(
            "Scalar value {min} underflows int64"
        )));
    }
    if max >= 9_223_372_036_854_774_784.0 {
        return Err(PromqlError::Eval(format!(
            "Scalar value {max} overflows int64"
        )));
    }
    let (group_of, first) = assign_groups(input, grouping);
    let mut heaps: Vec<Vec<(f64, u32)>> = vec![Vec::new(); first.len()];
    let mut out = StepOut::new();
    let mut out_of = vec![u32::MAX; input.len()];
    let mut cur = Cursors::new(input);
    for (k, &kf) in ks.iter().enumerate().take(steps.len()) {
        let t = steps.t(k);
        let kk = (kf as i64).min(input.len() as i64);
        heaps.iter_mut().for_each(Vec::clear);
        for (i, &g) in group_of.iter().enumerate() {
            let Some(f) = cur.at(input, i, t) else {
                continue;
            };
            if kk < 1 {
                continue;
            }
            let h = &mut heaps[g as usize];
            if (h.len() as i64) < kk {
                h.push((f, i as u32));
                let last = h.len() - 1;
                heap_up(h, top, last);
            } else {
                let better = if top { h[0].0 < f } else { h[0].0 > f };
                if better || (h[0].0.is_nan() && !f.is_nan()) {
                    h[0] = (f, i as u32);
                    if kk > 1 && !heap_down(h, top, 0) {
                        heap_up(h, top, 0);
                    }
                }
            }
        }
        for h in heaps.iter_mut().filter(|h| !h.is_empty()) {
            if h.len() > 1 {
                sort_heap(h, top);
            }
            for &(f, i) in h.iter() {
                let i = i as usize;
                if out_of[i] == u32::MAX {
                    out_of[i] = out.add(input.series[i].clone());
                }
                out.push(out_of[i], t, f)?;
            }
        }
    }
    Ok(out.finish())
}

/// count_values: counts the elements per distinct value, which becomes the
/// `label` of the output series.
fn count_values(input: &Batch, grouping: &Grouping, label: &str, steps: Steps) -> Result<Batch> {
    let mut grouping = grouping.clone();
    if grouping.keep && !grouping.names.iter().any(|n| n == label) {
        grouping.names.push(label.to_owned());
        grouping.names.sort();
    }
    let mut out = StepOut::new();
    let mut counts: Vec<(u32, f64)> = Vec::new();
    let mut slot: HashMap<u32, usize> = HashMap::new();
    let mut cur = Cursors::new(input);
    for k in 0..steps.len() {
        let t = steps.t(k);
        counts.clear();
        slot.clear();
        for i in 0..input.len() {
            let Some(f) = cur.at(input, i, t) else {
                continue;
            };
            let mut ls: Vec<Label> = input.series[i].iter().cloned().collect();
            let value = format_go_float(f);
            match ls.binary_search_by(|l| l.name.as_str().cmp(label)) {
                Ok(p) => ls[p].value = value,
                Err(p) => ls.insert(
                    p,
                    Label {
                        name: label.to_owned(),
                        value,
                    },
                ),
            }
            let meta = SeriesMeta::owned(Labels::from_sorted(ls));
            let g = grouping.labels(&meta);
            let o = out.get_or_add(g.fingerprint(), || SeriesMeta::owned(g));
            match slot.get(&o) {
                Some(&p) => counts[p].1 += 1.0,
                None => {
                    slot.insert(o, counts.len());
                    counts.push((o, 1.0));
                }
            }
        }
        for &(o, c) in &counts {
            out.push(o, t, c)?;
        }
    }
    Ok(out.finish())
}
