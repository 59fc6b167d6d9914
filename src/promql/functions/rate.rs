//! Counter and gauge rates: rate, irate, increase, delta, idelta, deriv,
//! predict_linear, resets, changes.

use promql_parser::parser::Expr;

use super::{apply_windows, PerWindow, Window, WindowFn};
use crate::model::STALE_NAN_BITS;
use crate::promql::eval::Evaluator;
use crate::promql::stats::kahan_inc;
use crate::promql::value::{Batch, Steps};
use crate::promql::Result;

pub(super) fn eval(
    ev: &mut Evaluator,
    name: &str,
    args: &[&Expr],
    steps: Steps,
) -> Result<Option<Batch>> {
    let out = match name {
        "rate" | "increase" | "delta" => {
            let mut f = Extrapolated {
                counter: name != "delta",
                per_second: name == "rate",
                resets: Vec::new(),
                series_vals: Vec::new(),
            };
            apply_windows(ev, args[0], steps, &mut f, true)?
        }
        "irate" | "idelta" => {
            let is_rate = name == "irate";
            apply_windows(
                ev,
                args[0],
                steps,
                &mut PerWindow(|w: &Window| instant_value(w, is_rate)),
                true,
            )?
        }
        "deriv" => {
            let mut f = PerWindow(|w: &Window| {
                (w.ts.len() >= 2).then(|| linear_regression(w.ts, w.vals, w.ts[0]).0)
            });
            apply_windows(ev, args[0], steps, &mut f, true)?
        }
        "predict_linear" => {
            let d = ev.eval_scalar(args[1], steps)?;
            let mut f = PerWindow(|w: &Window| {
                (w.ts.len() >= 2).then(|| {
                    let (slope, intercept) = linear_regression(w.ts, w.vals, w.eval_t);
                    slope * d[w.k] + intercept
                })
            });
            apply_windows(ev, args[0], steps, &mut f, true)?
        }
        "resets" => {
            let mut f = PerWindow(|w: &Window| {
                Some(w.vals.windows(2).filter(|p| p[1] < p[0]).count() as f64)
            });
            apply_windows(ev, args[0], steps, &mut f, true)?
        }
        "changes" => {
            let mut f = PerWindow(|w: &Window| {
                Some(
                    w.vals
                        .windows(2)
                        .filter(|p| p[1] != p[0] && !(p[1].is_nan() && p[0].is_nan()))
                        .count() as f64,
                )
            });
            apply_windows(ev, args[0], steps, &mut f, true)?
        }
        _ => return Ok(None),
    };
    Ok(Some(out))
}

/// Prometheus' `extrapolatedRate`: the increase between the first and last
/// sample of the window, corrected for counter resets and extrapolated
/// towards the window boundaries (at most half an average interval past the
/// samples when they stop short of a boundary by more than 1.1 intervals,
/// and never below zero for counters).
struct Extrapolated {
    counter: bool,
    per_second: bool,
    /// Indices `m` of the series' samples with `v[m] < v[m - 1]`, found once
    /// per series so that overlapping windows do not rescan their samples.
    resets: Vec<usize>,
    series_vals: Vec<f64>,
}

impl Extrapolated {
    /// Finds the counter resets of `vals` (indices `m` with
    /// `vals[m] < vals[m - 1]`). With `stop_at_stale`, looks for staleness
    /// markers in the same pass and returns true at the first one, leaving
    /// the resets unfinished (a marker is NaN, so never a reset).
    fn scan(&mut self, vals: &[f64], stop_at_stale: bool) -> bool {
        self.resets.clear();
        let is_stale = |v: &f64| v.to_bits() == STALE_NAN_BITS;
        if stop_at_stale && vals.first().is_some_and(is_stale) {
            return true;
        }
        // Resets are rare: find the chunks holding one with a loop the
        // compiler vectorizes, then locate them.
        const CHUNK: usize = 32;
        let mut from = 1;
        while from < vals.len() {
            let to = (from + CHUNK).min(vals.len());
            let (reset, stale) = vals[from - 1..to]
                .windows(2)
                .fold((false, false), |(r, st), p| {
                    (r | (p[1] < p[0]), st | is_stale(&p[1]))
                });
            if stop_at_stale && stale {
                return true;
            }
            if reset {
                self.resets
                    .extend((from..to).filter(|&m| vals[m] < vals[m - 1]));
            }
            from = to;
        }
        self.series_vals.clear();
        if !self.resets.is_empty() {
            self.series_vals.extend_from_slice(vals);
        }
        false
    }
}

impl WindowFn for Extrapolated {
    fn begin_series_unless_stale(&mut self, ts: &[i64], vals: &[f64]) -> bool {
        if !self.counter {
            if super::has_stale(vals) {
                return true;
            }
            self.begin_series(ts, vals);
            return false;
        }
        self.scan(vals, true)
    }

    fn begin_series(&mut self, _ts: &[i64], vals: &[f64]) {
        self.resets.clear();
        if self.counter {
            self.scan(vals, false);
        }
    }

    fn eval(&mut self, w: &Window) -> Option<f64> {
        let n = w.ts.len();
        if n < 2 {
            return None;
        }
        let last = n - 1;
        let (first_t, last_t) = (w.ts[0], w.ts[last]);
        let mut result = w.vals[last] - w.vals[0];
        if self.counter && !self.resets.is_empty() {
            // Resets strictly inside the window, in sample order like
            // Prometheus' loop, so the float sum is the same.
            let from = self.resets.partition_point(|&m| m <= w.lo);
            for &m in self.resets[from..].iter().take_while(|&&m| m < w.hi) {
                result += self.series_vals[m - 1];
            }
        }
        let mut to_start = (first_t - w.range_start) as f64 / 1000.0;
        let mut to_end = (w.range_end - last_t) as f64 / 1000.0;
        let sampled = (last_t - first_t) as f64 / 1000.0;
        let avg_interval = sampled / last as f64;
        let threshold = avg_interval * 1.1;
        if to_start >= threshold {
            to_start = avg_interval / 2.0;
        }
        if self.counter {
            // A counter cannot go below zero: do not extrapolate past the
            // point where it would have been zero.
            let mut to_zero = to_start;
            if result > 0.0 && w.vals[0] >= 0.0 {
                to_zero = sampled * (w.vals[0] / result);
            }
            if to_zero < to_start {
                to_start = to_zero;
            }
        }
        if to_end >= threshold {
            to_end = avg_interval / 2.0;
        }
        let mut factor = (sampled + to_start + to_end) / sampled;
        if self.per_second {
            factor /= w.range as f64 / 1000.0;
        }
        Some(result * factor)
    }
}

/// irate/idelta: from the last two samples of the window.
fn instant_value(w: &Window, is_rate: bool) -> Option<f64> {
    let n = w.ts.len();
    if n < 2 {
        return None;
    }
    let (t0, v0) = (w.ts[n - 2], w.vals[n - 2]);
    let (t1, v1) = (w.ts[n - 1], w.vals[n - 1]);
    let interval = t1 - t0;
    if interval == 0 {
        return None;
    }
    // After a counter reset the last value is the increase.
    let mut result = v1;
    if !is_rate || v1 >= v0 || v1.is_nan() || v0.is_nan() {
        result = v1 - v0;
    }
    if is_rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// Least-squares fit of the samples; returns the slope (per second) and the
/// value at `intercept_t`.
pub(crate) fn linear_regression(ts: &[i64], vals: &[f64], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sum_x, mut c_x, mut sum_y, mut c_y) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut c_xy, mut sum_x2, mut c_x2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = vals[0];
    let mut const_y = true;
    for (i, (&t, &v)) in ts.iter().zip(vals).enumerate() {
        if const_y && i > 0 && v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (t - intercept_t) as f64 / 1e3;
        (sum_x, c_x) = kahan_inc(x, sum_x, c_x);
        (sum_y, c_y) = kahan_inc(v, sum_y, c_y);
        (sum_xy, c_xy) = kahan_inc(x * v, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_inc(x * x, sum_x2, c_x2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    sum_x += c_x;
    sum_y += c_y;
    sum_xy += c_xy;
    sum_x2 += c_x2;
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_counter_reset_across_chunks() {
        let mut vals: Vec<f64> = (0..200).map(f64::from).collect();
        for m in [1, 31, 32, 33, 64, 65, 199] {
            vals[m] = -1.0;
        }
        let mut f = Extrapolated {
            counter: true,
            per_second: false,
            resets: Vec::new(),
            series_vals: Vec::new(),
        };
        f.begin_series(&[], &vals);
        let naive: Vec<usize> = (1..vals.len()).filter(|&m| vals[m] < vals[m - 1]).collect();
        assert_eq!(f.resets, naive);
        // The fused scan finds the same resets when there is no marker...
        let mut g = Extrapolated {
            counter: true,
            per_second: false,
            resets: Vec::new(),
            series_vals: Vec::new(),
        };
        assert!(!g.begin_series_unless_stale(&[], &vals));
        assert_eq!(g.resets, naive);
        assert_eq!(g.series_vals, vals);
        // ...and reports a marker anywhere, the first sample included.
        for at in [0, 1, 31, 32, 199] {
            let mut v = vals.clone();
            v[at] = crate::model::stale_nan();
            assert!(g.begin_series_unless_stale(&[], &v), "marker at {at}");
        }
    }
}
