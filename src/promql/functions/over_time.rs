//! Aggregations over time: `*_over_time`.

use promql_parser::parser::Expr;

use super::{apply_windows, PerWindow, Window};
use crate::promql::eval::Evaluator;
use crate::promql::stats::{kahan_inc, quantile};
use crate::promql::value::{Batch, Steps};
use crate::promql::Result;

pub(super) fn eval(
    ev: &mut Evaluator,
    name: &str,
    args: &[&Expr],
    steps: Steps,
) -> Result<Option<Batch>> {
    if name == "quantile_over_time" {
        let q = ev.eval_scalar(args[0], steps)?;
        let mut buf = Vec::new();
        let mut f = PerWindow(|w: &Window| {
            buf.clear();
            buf.extend_from_slice(w.vals);
            Some(quantile(q[w.k], &mut buf))
        });
        return apply_windows(ev, args[1], steps, &mut f, true).map(Some);
    }
    if name == "mad_over_time" {
        let mut buf = Vec::new();
        let mut f = PerWindow(|w: &Window| {
            buf.clear();
            buf.extend_from_slice(w.vals);
            let median = quantile(0.5, &mut buf);
            buf.clear();
            buf.extend(w.vals.iter().map(|v| (v - median).abs()));
            Some(quantile(0.5, &mut buf))
        });
        return apply_windows(ev, args[0], steps, &mut f, true).map(Some);
    }
    let f: fn(&Window) -> f64 = match name {
        "avg_over_time" => avg,
        "sum_over_time" => sum,
        "count_over_time" => |w| w.vals.len() as f64,
        "min_over_time" => |w| compare(w, |cur, m| cur < m || m.is_nan()).0,
        "max_over_time" => |w| compare(w, |cur, m| cur > m || m.is_nan()).0,
        "ts_of_min_over_time" => |w| compare(w, |cur, m| cur <= m || m.is_nan()).1,
        "ts_of_max_over_time" => |w| compare(w, |cur, m| cur >= m || m.is_nan()).1,
        "stddev_over_time" => |w| variance(w.vals).sqrt(),
        "stdvar_over_time" => |w| variance(w.vals),
        "last_over_time" => |w| w.vals[w.vals.len() - 1],
        "first_over_time" => |w| w.vals[0],
        "ts_of_last_over_time" => |w| w.ts[w.ts.len() - 1] as f64 / 1000.0,
        "ts_of_first_over_time" => |w| w.ts[0] as f64 / 1000.0,
        "present_over_time" => |_| 1.0,
        _ => return Ok(None),
    };
    // last_over_time and first_over_time act like an offset and keep the
    // metric name.
    let drop_name = !matches!(name, "last_over_time" | "first_over_time");
    apply_windows(
        ev,
        args[0],
        steps,
        &mut PerWindow(|w: &Window| Some(f(w))),
        drop_name,
    )
    .map(Some)
}

/// The mean, summing directly (with compensation) until the sum would
/// overflow and incrementally from then on, as Prometheus does.
fn avg(w: &Window) -> f64 {
    let vals = w.vals;
    let (mut sum, mut count) = (vals[0], 1.0);
    let (mut mean, mut c) = (0.0, 0.0);
    let mut incremental = false;
    for (i, &f) in vals[1..].iter().enumerate() {
        count = (i + 2) as f64;
        if !incremental {
            let (s, nc) = kahan_inc(f, sum, c);
            if !s.is_infinite() {
                (sum, c) = (s, nc);
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        (mean, c) = kahan_inc(f / count, q * mean, q * c);
    }
    if incremental {
        mean + c
    } else {
        sum / count + c / count
    }
}

fn sum(w: &Window) -> f64 {
    let (mut s, mut c) = (0.0, 0.0);
    for &f in w.vals {
        (s, c) = kahan_inc(f, s, c);
    }
    if s.is_infinite() {
        s
    } else {
        s + c
    }
}

/// The extreme value by `better` and its timestamp in seconds.
fn compare(w: &Window, better: fn(f64, f64) -> bool) -> (f64, f64) {
    let mut m = w.vals[0];
    let mut t = w.ts[0];
    for (&ts, &v) in w.ts.iter().zip(w.vals) {
        if better(v, m) {
            m = v;
            t = ts;
        }
    }
    (m, t as f64 / 1000.0)
}

/// Population variance by Welford's method with compensated sums.
fn variance(vals: &[f64]) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &f in vals {
        count += 1.0;
        let delta = f - (mean + c_mean);
        (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_inc(delta * (f - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}
