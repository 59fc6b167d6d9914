//! The evaluator core: dispatch over the AST, selectors, subqueries, and the
//! conversion of internal values into query results.

use std::sync::Arc;
use std::time::SystemTime;

use promql_parser::parser::{
    AtModifier, Expr, MatrixSelector, Offset, SubqueryExpr, VectorSelector,
};

use super::value::{Batch, RangeData, SeriesMeta, Steps, Val};
use super::{
    aggregate, binary, functions, EngineOptions, InstantSample, PromqlError, RangeSeries, Result,
    Value,
};
use crate::model::{is_stale_nan, Labels, MatchOp, Matcher, Sample, METRIC_NAME};
use crate::store::Store;

/// State of one query evaluation.
pub(crate) struct Evaluator<'a> {
    store: &'a Store,
    lookback: i64,
    max_samples: usize,
    default_step: i64,
    /// Start and end of the whole query, for `@ start()` and `@ end()`.
    query_start: i64,
    query_end: i64,
    /// Samples currently held by live values, checked against `max_samples`.
    samples: usize,
}

impl<'a> Evaluator<'a> {
    pub fn new(
        store: &'a Store,
        opts: &EngineOptions,
        default_step: i64,
        query_start: i64,
        query_end: i64,
    ) -> Evaluator<'a> {
        Evaluator {
            store,
            lookback: opts.lookback_ms,
            max_samples: opts.max_samples,
            default_step,
            query_start,
            query_end,
            samples: 0,
        }
    }

    /// Evaluates `expr` at every step. Sample accounting: the children of a
    /// node are gone once it returns, so only its output stays charged.
    pub fn eval(&mut self, expr: &Expr, steps: Steps) -> Result<Val> {
        let before = self.samples;
        let v = self.eval_node(expr, steps)?;
        self.samples = before;
        self.charge(v.sample_count())?;
        Ok(v)
    }

    fn eval_node(&mut self, expr: &Expr, steps: Steps) -> Result<Val> {
        match expr {
            Expr::Aggregate(a) => aggregate::eval(self, a, steps),
            Expr::Unary(u) => match self.eval(&u.expr, steps)? {
                Val::Scalar(mut v) => {
                    v.iter_mut().for_each(|x| *x = -*x);
                    Ok(Val::Scalar(v))
                }
                Val::Vector(mut b) => {
                    b.vals.iter_mut().for_each(|x| *x = -*x);
                    Ok(Val::Vector(b.drop_names(true)?))
                }
                _ => Err(type_error("unary expression", "scalar or instant vector")),
            },
            Expr::Binary(b) => binary::eval(self, b, steps),
            Expr::Paren(p) => self.eval_node(&p.expr, steps),
            Expr::Subquery(s) => Ok(Val::Matrix(self.eval_subquery(s, steps)?)),
            Expr::NumberLiteral(n) => Ok(Val::Scalar(vec![n.val; steps.len()])),
            Expr::StringLiteral(s) => Ok(Val::String(s.val.clone())),
            Expr::VectorSelector(vs) => Ok(Val::Vector(self.select_instant(vs, steps, false)?)),
            Expr::MatrixSelector(ms) => Ok(Val::Matrix(self.select_range(ms, steps)?)),
            Expr::Call(c) => functions::eval_call(self, c, steps),
            Expr::Extension(_) => Err(PromqlError::Unsupported(
                "extension expressions are not supported".into(),
            )),
        }
    }

    pub fn eval_vector(&mut self, expr: &Expr, steps: Steps) -> Result<Batch> {
        match self.eval(expr, steps)? {
            Val::Vector(b) => Ok(b),
            _ => Err(type_error("expression", "instant vector")),
        }
    }

    pub fn eval_scalar(&mut self, expr: &Expr, steps: Steps) -> Result<Vec<f64>> {
        match self.eval(expr, steps)? {
            Val::Scalar(v) => Ok(v),
            _ => Err(type_error("expression", "scalar")),
        }
    }

    pub fn eval_range(&mut self, expr: &Expr, steps: Steps) -> Result<RangeData> {
        match self.eval(expr, steps)? {
            Val::Matrix(r) => Ok(r),
            _ => Err(type_error("expression", "range vector")),
        }
    }

    pub fn eval_string(&mut self, expr: &Expr, steps: Steps) -> Result<String> {
        match self.eval(expr, steps)? {
            Val::String(s) => Ok(s),
            _ => Err(type_error("expression", "string")),
        }
    }

    fn charge(&mut self, n: usize) -> Result<()> {
        self.samples += n;
        if self.samples > self.max_samples {
            return Err(PromqlError::TooManySamples(self.max_samples));
        }
        Ok(())
    }

    fn at_ms(&self, at: &Option<AtModifier>) -> Option<i64> {
        at.as_ref().map(|a| match a {
            AtModifier::Start => self.query_start,
            AtModifier::End => self.query_end,
            AtModifier::At(t) => system_time_ms(*t),
        })
    }

    /// Evaluates an instant vector selector: at every step, the latest sample
    /// in `(t - lookback, t]` (with `t` moved by `@` and `offset`), unless
    /// that sample is a staleness marker. With `timestamps`, the value is the
    /// sample's own timestamp in seconds (for `timestamp()`).
    pub fn select_instant(
        &mut self,
        vs: &VectorSelector,
        steps: Steps,
        timestamps: bool,
    ) -> Result<Batch> {
        let n = steps.len();
        if n == 0 {
            return Ok(Batch::new());
        }
        let at = self.at_ms(&vs.at);
        let offset = offset_ms(&vs.offset);
        let eff = |k: usize| at.unwrap_or_else(|| steps.t(k)) - offset;
        let (first, last) = (eff(0), eff(n - 1));
        let lookback = self.lookback;
        let ms = matchers(vs);
        if n == 1 {
            // One step (an instant query, a rule): only the newest sample
            // of each series matters, and the store decodes just that.
            let mut out = Batch::with_capacity(64, 64);
            let mut seen = 0;
            self.store
                .select_latest(&ms, first - lookback + 1, last, |labels, t, v| {
                    seen += 1;
                    if !is_stale_nan(v) {
                        out.push(steps.t(0), if timestamps { t as f64 / 1000.0 } else { v });
                        out.finish_series(SeriesMeta::new(labels.clone()));
                    }
                });
            self.charge(seen)?;
            out.uniform_names = has_exact_name(vs);
            return Ok(out);
        }
        let mut out = Batch::with_capacity(64, 64 * n.min(64));
        let mut seen = 0;
        let max = self.max_samples.saturating_sub(self.samples);
        self.store
            .select_each(&ms, first - lookback + 1, last, |labels, ts, vals| {
                seen += ts.len();
                if seen > max {
                    return;
                }
                let mut j = 0;
                for k in 0..n {
                    let e = eff(k);
                    j = functions::advance(ts, j, e);
                    if j == 0 {
                        continue;
                    }
                    let (t, v) = (ts[j - 1], vals[j - 1]);
                    if t <= e - lookback || is_stale_nan(v) {
                        continue;
                    }
                    out.push(steps.t(k), if timestamps { t as f64 / 1000.0 } else { v });
                }
                out.finish_series(SeriesMeta::new(labels.clone()));
            });
        self.charge(seen)?;
        out.uniform_names = has_exact_name(vs);
        Ok(out)
    }

    /// Selects the samples every step's window of a range selector needs,
    /// once: `(first_end - range, last_end]`.
    fn select_range(&mut self, ms: &MatrixSelector, steps: Steps) -> Result<RangeData> {
        let range = ms.range.as_millis() as i64;
        let at = self.at_ms(&ms.vs.at);
        let offset = offset_ms(&ms.vs.offset);
        let mut rd = RangeData {
            batch: Batch::new(),
            range,
            at,
            offset,
            may_have_stale: true,
        };
        let n = steps.len();
        if n == 0 {
            return Ok(rd);
        }
        let (first, last) = (rd.window_end(&steps, 0), rd.window_end(&steps, n - 1));
        let set = self
            .store
            .select(&matchers(&ms.vs), first - range + 1, last);
        self.charge(set.ts.len())?;
        rd.batch = Batch::from_series_set(set);
        rd.batch.uniform_names = has_exact_name(&ms.vs);
        Ok(rd)
    }

    /// Calls `f(window, labels, ts, vals)` with the samples of each series
    /// a range selector's windows need, one series at a time, so that a
    /// function reduces each series as it comes instead of holding the
    /// samples of all series at once (for `rate(x[5m])` over thousands of
    /// series, allocating that much costs more than the arithmetic).
    /// Staleness markers are included, as `RangeData::may_have_stale` says.
    pub fn stream_range(
        &mut self,
        ms: &MatrixSelector,
        steps: Steps,
        mut f: impl FnMut(&RangeData, &Arc<Labels>, &[i64], &[f64]),
    ) -> Result<()> {
        let rd = RangeData {
            batch: Batch::new(),
            range: ms.range.as_millis() as i64,
            at: self.at_ms(&ms.vs.at),
            offset: offset_ms(&ms.vs.offset),
            may_have_stale: true,
        };
        let n = steps.len();
        if n == 0 {
            return Ok(());
        }
        let (first, last) = (rd.window_end(&steps, 0), rd.window_end(&steps, n - 1));
        let max = self.max_samples.saturating_sub(self.samples);
        let mut seen = 0;
        self.store.select_each(
            &matchers(&ms.vs),
            first - rd.range + 1,
            last,
            |l, ts, vals| {
                seen += ts.len();
                if seen <= max {
                    f(&rd, l, ts, vals);
                }
            },
        );
        // The samples were held one series at a time: count them against
        // the limit (which fails the query if they were too many), then
        // release them.
        self.charge(seen)?;
        self.samples -= seen;
        Ok(())
    }

    /// Evaluates a subquery: the inner expression at absolute multiples of
    /// the subquery step covering every outer window, as Prometheus aligns.
    fn eval_subquery(&mut self, sq: &SubqueryExpr, steps: Steps) -> Result<RangeData> {
        let range = sq.range.as_millis() as i64;
        let step = sq.step.map_or(self.default_step, |s| s.as_millis() as i64);
        if step <= 0 {
            return Err(PromqlError::InvalidQuery(
                "subquery step must be positive".into(),
            ));
        }
        let mut rd = RangeData {
            batch: Batch::new(),
            range,
            at: self.at_ms(&sq.at),
            offset: offset_ms(&sq.offset),
            may_have_stale: false,
        };
        let n = steps.len();
        if n == 0 {
            return Ok(rd);
        }
        let (first, last) = (rd.window_end(&steps, 0), rd.window_end(&steps, n - 1));
        // Go's integer division truncates toward zero, like Rust's.
        let mut start = step * ((first - range) / step);
        if start <= first - range {
            start += step;
        }
        let inner = Steps {
            start,
            end: last,
            step,
        };
        rd.batch = self.eval_vector(&sq.expr, inner)?;
        Ok(rd)
    }
}

pub(crate) fn type_error(what: &str, expected: &str) -> PromqlError {
    PromqlError::Eval(format!("{what} must be of type {expected}"))
}

/// Rejects selector forms this engine does not evaluate.
pub(crate) fn check_selector(vs: &VectorSelector) -> Result<()> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(PromqlError::Unsupported(
            "unsupported 'or' between label matchers".into(),
        ));
    }
    Ok(())
}

/// Whether the selector pins the metric name, so all its series share it.
pub(crate) fn has_exact_name(vs: &VectorSelector) -> bool {
    vs.name.is_some()
        || vs
            .matchers
            .matchers
            .iter()
            .any(|m| m.name == METRIC_NAME && matches!(m.op, MatchOp::Equal))
}

fn matchers(vs: &VectorSelector) -> Vec<Matcher> {
    let mut m = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(name) = &vs.name {
        m.push(Matcher::new(MatchOp::Equal, METRIC_NAME, name));
    }
    m.extend(vs.matchers.matchers.iter().cloned());
    m
}

pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
    }
}

fn system_time_ms(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// The result of an instant query.
pub(crate) fn into_instant_value(v: Val) -> Value {
    match v {
        Val::Scalar(v) => Value::Scalar(v.first().copied().unwrap_or(f64::NAN)),
        Val::String(s) => Value::String(s),
        Val::Vector(b) => Value::Vector(
            (0..b.len())
                .map(|i| InstantSample {
                    labels: b.series[i].materialize(),
                    t: b.ts(i)[0],
                    v: b.vals(i)[0],
                })
                .collect(),
        ),
        Val::Matrix(mut r) => {
            r.batch.remove_stale();
            Value::Matrix(range_series(&r.batch))
        }
    }
}

/// The result of a range query: a matrix sorted by labels.
pub(crate) fn into_range_value(v: Val, steps: Steps) -> Result<Value> {
    let mut out = match v {
        Val::Scalar(v) => vec![RangeSeries {
            labels: Default::default(),
            samples: v
                .iter()
                .enumerate()
                .map(|(k, &v)| Sample { t: steps.t(k), v })
                .collect(),
        }],
        Val::Vector(b) => range_series(&b),
        _ => {
            return Err(PromqlError::InvalidQuery(
                "range queries must be of type scalar or instant vector".into(),
            ))
        }
    };
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(Value::Matrix(out))
}

fn range_series(b: &Batch) -> Vec<RangeSeries> {
    (0..b.len())
        .map(|i| RangeSeries {
            labels: b.series[i].materialize(),
            samples: b
                .ts(i)
                .iter()
                .zip(b.vals(i))
                .map(|(&t, &v)| Sample { t, v })
                .collect(),
        })
        .collect()
}
