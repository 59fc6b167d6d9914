//! PromQL functions, one family per file, and the machinery that slides
//! range-vector windows over steps.

mod histogram;
mod labels;
mod math;
mod over_time;
mod rate;
mod time;
mod vector;

use promql_parser::parser::value::ValueType;
use promql_parser::parser::{Call, Expr};

use super::eval::{has_exact_name, Evaluator};
use super::value::{Batch, RangeData, SeriesMeta, Steps, Val};
use super::{PromqlError, Result};
use crate::model::{is_stale_nan, STALE_NAN_BITS};

/// Every function this engine implements. Anything else the parser knows is
/// rejected up front rather than answered wrongly.
const SUPPORTED: &[&str] = &[
    // rate.rs
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "predict_linear",
    "resets",
    "changes",
    // over_time.rs
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "quantile_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "last_over_time",
    "first_over_time",
    "present_over_time",
    "mad_over_time",
    "ts_of_first_over_time",
    "ts_of_last_over_time",
    "ts_of_max_over_time",
    "ts_of_min_over_time",
    // vector.rs
    "absent",
    "absent_over_time",
    "scalar",
    "vector",
    "sort",
    "sort_desc",
    // math.rs
    "abs",
    "ceil",
    "floor",
    "exp",
    "ln",
    "log2",
    "log10",
    "sqrt",
    "sgn",
    "round",
    "clamp",
    "clamp_min",
    "clamp_max",
    "sin",
    "cos",
    "tan",
    "asin",
    "acos",
    "atan",
    "sinh",
    "cosh",
    "tanh",
    "asinh",
    "acosh",
    "atanh",
    "deg",
    "rad",
    "pi",
    // time.rs
    "time",
    "timestamp",
    "minute",
    "hour",
    "day_of_week",
    "day_of_month",
    "day_of_year",
    "days_in_month",
    "month",
    "year",
    // labels.rs
    "label_replace",
    "label_join",
    // histogram.rs
    "histogram_quantile",
];

pub(crate) fn check_supported(c: &Call) -> Result<()> {
    let name = c.func.name;
    if !SUPPORTED.contains(&name) {
        return Err(PromqlError::Unsupported(format!(
            "unsupported function {name}"
        )));
    }
    // The parser skips its type check for some literal arguments (`exp(NaN)`).
    let types = &c.func.arg_types;
    for (i, a) in c.args.args.iter().enumerate() {
        let Some(&want) = types.get(i.min(types.len().saturating_sub(1))) else {
            return Err(PromqlError::Parse(format!(
                "function '{name}' takes no arguments"
            )));
        };
        let got = a.value_type();
        if want != got {
            return Err(PromqlError::Parse(format!(
                "expected type {} in call to function '{name}', got {}",
                type_name(want),
                type_name(got)
            )));
        }
    }
    Ok(())
}

fn type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::Vector => "instant vector",
        ValueType::Matrix => "range vector",
        ValueType::Scalar => "scalar",
        ValueType::String => "string",
    }
}

pub(crate) fn eval_call(ev: &mut Evaluator, c: &Call, steps: Steps) -> Result<Val> {
    check_supported(c)?;
    let name = c.func.name;
    let args: Vec<&Expr> = c.args.args.iter().map(|a| unwrap_parens(a)).collect();
    if let Some(f) = math::simple(name) {
        let b = ev.eval_vector(args[0], steps)?;
        return Ok(Val::Vector(math::apply(b, f)?));
    }
    if let Some(v) = rate::eval(ev, name, &args, steps)? {
        return Ok(Val::Vector(v));
    }
    if let Some(v) = over_time::eval(ev, name, &args, steps)? {
        return Ok(Val::Vector(v));
    }
    match name {
        "time" => Ok(Val::Scalar(
            (0..steps.len())
                .map(|k| steps.t(k) as f64 / 1000.0)
                .collect(),
        )),
        "pi" => Ok(Val::Scalar(vec![std::f64::consts::PI; steps.len()])),
        "round" | "clamp" | "clamp_min" | "clamp_max" => {
            math::with_params(ev, name, &args, steps).map(Val::Vector)
        }
        "vector" => vector::vector(ev, &args, steps).map(Val::Vector),
        "scalar" => vector::scalar(ev, &args, steps).map(Val::Scalar),
        "absent" => vector::absent(ev, &args, steps).map(Val::Vector),
        "absent_over_time" => vector::absent_over_time(ev, &args, steps).map(Val::Vector),
        "sort" | "sort_desc" => {
            vector::sort(ev, name == "sort_desc", &args, steps).map(Val::Vector)
        }
        "timestamp" => time::timestamp(ev, &args, steps).map(Val::Vector),
        "label_replace" => labels::label_replace(ev, &args, steps).map(Val::Vector),
        "label_join" => labels::label_join(ev, &args, steps).map(Val::Vector),
        "histogram_quantile" => histogram::histogram_quantile(ev, &args, steps).map(Val::Vector),
        _ => match time::date_fn(name) {
            Some(f) => time::date(ev, f, &args, steps).map(Val::Vector),
            None => Err(PromqlError::Unsupported(format!(
                "unsupported function {name}"
            ))),
        },
    }
}

/// Prometheus strips parentheses around function arguments before
/// evaluation (it matters for `timestamp((x))` and `absent((x))`).
fn unwrap_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

/// The samples one step of a range function sees.
pub(crate) struct Window<'a> {
    /// Timestamps and values of the samples in the window (never empty).
    pub ts: &'a [i64],
    pub vals: &'a [f64],
    /// Where the window starts and ends within the series' samples.
    pub lo: usize,
    pub hi: usize,
    /// Step index and evaluation time.
    pub k: usize,
    pub eval_t: i64,
    /// The window `(range_start, range_end]`.
    pub range_start: i64,
    pub range_end: i64,
    pub range: i64,
}

/// A range-vector function.
pub(crate) trait WindowFn {
    /// Called with all samples of a series before its windows.
    fn begin_series(&mut self, _ts: &[i64], _vals: &[f64]) {}
    /// `begin_series` on samples that may hold staleness markers: returns
    /// true, without preparing anything, if they do (the caller then
    /// filters them out and calls `begin_series`). A function that scans
    /// the values anyway looks for markers in the same pass.
    fn begin_series_unless_stale(&mut self, ts: &[i64], vals: &[f64]) -> bool {
        if has_stale(vals) {
            return true;
        }
        self.begin_series(ts, vals);
        false
    }
    /// The value for one window, or nothing.
    fn eval(&mut self, w: &Window) -> Option<f64>;
}

/// A range-vector function that needs no per-series preparation.
pub(crate) struct PerWindow<F>(pub F);

impl<F: FnMut(&Window) -> Option<f64>> WindowFn for PerWindow<F> {
    fn eval(&mut self, w: &Window) -> Option<f64> {
        (self.0)(w)
    }
}

/// Slides every step's window over the selected samples of each series and
/// applies `f`; empty windows give no value. Functions other than
/// `last_over_time`/`first_over_time` drop the metric name, and then label
/// sets that became equal are an error, as in Prometheus.
///
/// A range selector argument is streamed from the store one series at a
/// time (`Store::select_each`), so that `rate(x[5m])` over thousands of
/// series never holds all their samples at once; other arguments
/// (subqueries) are evaluated whole first.
pub(crate) fn apply_windows(
    ev: &mut Evaluator,
    arg: &Expr,
    steps: Steps,
    f: &mut impl WindowFn,
    drop_name: bool,
) -> Result<Batch> {
    let mut arg = arg;
    while let Expr::Paren(p) = arg {
        arg = &p.expr;
    }
    if let Expr::MatrixSelector(ms) = arg {
        let mut w = Windower::new(steps, drop_name, has_exact_name(&ms.vs));
        ev.stream_range(ms, steps, |rd, labels, ts, vals| {
            w.series(rd, steps, f, ts, vals, SeriesMeta::new(labels.clone()));
        })?;
        return w.finish();
    }
    let rd = ev.eval_range(arg, steps)?;
    let b = &rd.batch;
    let mut w = Windower::new(steps, drop_name, b.uniform_names);
    for i in 0..b.len() {
        w.series(&rd, steps, f, b.ts(i), b.vals(i), b.series[i].clone());
    }
    w.finish()
}

/// The output of `apply_windows` as series come, and the buffers reused
/// from series to series.
struct Windower {
    out: Batch,
    drop_name: bool,
    /// Whether all input series seen so far share one metric name (known
    /// up front for a selector that names the metric), which spares the
    /// duplicate check after the names are dropped.
    uniform_names: bool,
    known_uniform: bool,
    first_name: Option<String>,
    fts: Vec<i64>,
    fvals: Vec<f64>,
}

impl Windower {
    fn new(steps: Steps, drop_name: bool, known_uniform: bool) -> Windower {
        Windower {
            out: Batch::with_capacity(64, 64 * steps.len().min(16)),
            drop_name,
            uniform_names: true,
            known_uniform,
            first_name: None,
            fts: Vec::new(),
            fvals: Vec::new(),
        }
    }

    fn series(
        &mut self,
        rd: &RangeData,
        steps: Steps,
        f: &mut impl WindowFn,
        ts: &[i64],
        vals: &[f64],
        mut meta: SeriesMeta,
    ) {
        // Taken out of `self` for the call, so that the filtered slices
        // can borrow them while `self.out` grows.
        let (mut fts, mut fvals) = (
            std::mem::take(&mut self.fts),
            std::mem::take(&mut self.fvals),
        );
        // One pass over the values both finds staleness markers and, when
        // there are none (the common case), prepares the function.
        let filter = rd.may_have_stale && f.begin_series_unless_stale(ts, vals);
        if filter {
            fts.clear();
            fvals.clear();
            for (t, v) in ts.iter().zip(vals).filter(|(_, v)| !is_stale_nan(**v)) {
                fts.push(*t);
                fvals.push(*v);
            }
        }
        let (ts, vals) = if filter {
            (&fts[..], &fvals[..])
        } else {
            (ts, vals)
        };
        if !self.known_uniform && self.uniform_names {
            match &self.first_name {
                None => self.first_name = Some(meta.name().to_string()),
                Some(first) => {
                    self.uniform_names = first == meta.name();
                }
            }
        }
        if filter || !rd.may_have_stale {
            f.begin_series(ts, vals);
        }
        let (mut lo, mut hi) = (0, 0);
        for k in 0..steps.len() {
            let end = rd.window_end(&steps, k);
            let start = end - rd.range;
            hi = advance(ts, hi, end);
            lo = advance(&ts[..hi], lo, start);
            if lo >= hi {
                continue;
            }
            let w = Window {
                ts: &ts[lo..hi],
                vals: &vals[lo..hi],
                lo,
                hi,
                k,
                eval_t: steps.t(k),
                range_start: start,
                range_end: end,
                range: rd.range,
            };
            if let Some(v) = f.eval(&w) {
                self.out.push(steps.t(k), v);
            }
        }
        meta.drop_name |= self.drop_name;
        self.out.finish_series(meta);
        (self.fts, self.fvals) = (fts, fvals);
    }

    fn finish(mut self) -> Result<Batch> {
        let uniform_names = self.known_uniform || self.uniform_names;
        if self.drop_name && !uniform_names {
            self.out = self.out.resolve_duplicates(false)?;
        }
        self.out.uniform_names = self.drop_name || uniform_names;
        Ok(self.out)
    }
}

/// The first index at or after `from` whose timestamp is after `x`.
///
/// Windows move forward step by step, so this gallops from the previous
/// position instead of bisecting the whole slice: the probes stay close to
/// memory just read, where a binary search over thousands of timestamps
/// misses the cache at every probe. The last timestamp is checked first,
/// which settles the common case of a window reaching the newest sample.
pub(crate) fn advance(ts: &[i64], from: usize, x: i64) -> usize {
    let n = ts.len();
    if from >= n || ts[from] > x {
        return from;
    }
    if ts[n - 1] <= x {
        return n;
    }
    // Invariant: ts[lo] <= x < ts[n - 1].
    let mut lo = from;
    let mut step = 1;
    loop {
        let probe = lo + step;
        if probe >= n - 1 || ts[probe] > x {
            let hi = probe.min(n - 1);
            return lo + 1 + ts[lo + 1..hi].partition_point(|&t| t <= x);
        }
        lo = probe;
        step *= 2;
    }
}

/// Whether any value is a staleness marker; written so that the compiler
/// vectorizes it, since it is the first pass over every selected sample.
pub(crate) fn has_stale(vals: &[f64]) -> bool {
    vals.chunks(32).any(|c| {
        c.iter()
            .fold(false, |acc, v| acc | (v.to_bits() == STALE_NAN_BITS))
    })
}

/// Evaluates the scalar argument of a function, or a constant default.
pub(crate) fn scalar_arg(
    ev: &mut Evaluator,
    arg: Option<&&Expr>,
    default: f64,
    steps: Steps,
) -> Result<Vec<f64>> {
    match arg {
        Some(e) => ev.eval_scalar(e, steps),
        None => Ok(vec![default; steps.len()]),
    }
}

/// The string literal argument of a function.
pub(crate) fn string_arg(arg: &Expr) -> Result<&str> {
    match arg {
        Expr::StringLiteral(s) => Ok(&s.val),
        _ => Err(PromqlError::Eval(
            "expected a string literal argument".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_matches_a_linear_scan() {
        let ts: Vec<i64> = (0..100).map(|i| i * 10 + (i % 3)).collect();
        for from in [0, 1, 5, 50, 99, 100] {
            for x in [-5, 0, 9, 10, 11, 500, 501, 989, 990, 991, 2000] {
                let mut want = from;
                while want < ts.len() && ts[want] <= x {
                    want += 1;
                }
                assert_eq!(advance(&ts, from, x), want, "from {from} x {x}");
            }
        }
        assert_eq!(advance(&[], 0, 5), 0);
        assert_eq!(advance(&[7], 0, 7), 1);
    }
}
