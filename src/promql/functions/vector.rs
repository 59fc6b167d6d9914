//! Functions between vectors and scalars, absence and ordering: vector,
//! scalar, absent, absent_over_time, sort, sort_desc.

use std::cmp::Ordering;

use promql_parser::parser::Expr;

use super::{apply_windows, PerWindow, Window};
use crate::model::{LabelsBuilder, MatchOp, METRIC_NAME};
use crate::promql::eval::Evaluator;
use crate::promql::steps::Cursors;
use crate::promql::value::{Batch, SeriesMeta, Steps};
use crate::promql::Result;

/// vector(s): the scalar as a one-element vector without labels.
pub(super) fn vector(ev: &mut Evaluator, args: &[&Expr], steps: Steps) -> Result<Batch> {
    let s = ev.eval_scalar(args[0], steps)?;
    let mut b = Batch::with_capacity(1, s.len());
    for (k, v) in s.into_iter().enumerate() {
        b.push(steps.t(k), v);
    }
    b.finish_series(SeriesMeta::owned(Default::default()));
    Ok(b)
}

/// scalar(v): the value of a one-element vector, else NaN.
pub(super) fn scalar(ev: &mut Evaluator, args: &[&Expr], steps: Steps) -> Result<Vec<f64>> {
    let b = ev.eval_vector(args[0], steps)?;
    let mut cur = Cursors::new(&b);
    let mut out = Vec::with_capacity(steps.len());
    for k in 0..steps.len() {
        let t = steps.t(k);
        let mut found = None;
        let mut many = false;
        for i in 0..b.len() {
            if let Some(v) = cur.at(&b, i, t) {
                many |= found.is_some();
                found = Some(v);
            }
        }
        out.push(if many {
            f64::NAN
        } else {
            found.unwrap_or(f64::NAN)
        });
    }
    Ok(out)
}

/// The labels `absent()` gives its result: those fixed by equality
/// matchers of a selector argument (a label matched twice is left out).
fn absent_meta(arg: &Expr) -> SeriesMeta {
    let matchers = match arg {
        Expr::VectorSelector(vs) => &vs.matchers.matchers,
        Expr::MatrixSelector(ms) => &ms.vs.matchers.matchers,
        _ => return SeriesMeta::owned(Default::default()),
    };
    let mut b = LabelsBuilder::new();
    let mut seen: Vec<&str> = Vec::new();
    for m in matchers.iter().filter(|m| m.name != METRIC_NAME) {
        if matches!(m.op, MatchOp::Equal) && !seen.contains(&m.name.as_str()) {
            b.set(&m.name, &m.value);
            seen.push(&m.name);
        } else {
            b.del(&m.name);
        }
    }
    SeriesMeta::owned(b.into_labels())
}

/// A series of 1 at every step not marked present.
fn ones_where_absent(present: &[bool], meta: SeriesMeta, steps: Steps) -> Batch {
    let mut out = Batch::with_capacity(1, present.len());
    for (k, p) in present.iter().enumerate() {
        if !p {
            out.push(steps.t(k), 1.0);
        }
    }
    out.finish_series(meta);
    out
}

/// absent(v): 1 where the vector is empty.
pub(super) fn absent(ev: &mut Evaluator, args: &[&Expr], steps: Steps) -> Result<Batch> {
    let b = ev.eval_vector(args[0], steps)?;
    let mut present = vec![false; steps.len()];
    for &t in &b.ts {
        present[steps.index(t)] = true;
    }
    Ok(ones_where_absent(&present, absent_meta(args[0]), steps))
}

/// absent_over_time(m): 1 where no series has a sample in the window.
pub(super) fn absent_over_time(ev: &mut Evaluator, args: &[&Expr], steps: Steps) -> Result<Batch> {
    let has = apply_windows(
        ev,
        args[0],
        steps,
        &mut PerWindow(|_: &Window| Some(1.0)),
        true,
    )?;
    let mut present = vec![false; steps.len()];
    for &t in &has.ts {
        present[steps.index(t)] = true;
    }
    Ok(ones_where_absent(&present, absent_meta(args[0]), steps))
}

/// sort/sort_desc: orders an instant query's result by value, NaN last.
/// Range query results are always ordered by labels, so there it does
/// nothing.
pub(super) fn sort(ev: &mut Evaluator, desc: bool, args: &[&Expr], steps: Steps) -> Result<Batch> {
    let b = ev.eval_vector(args[0], steps)?;
    if steps.len() != 1 {
        return Ok(b);
    }
    let mut order: Vec<usize> = (0..b.len()).collect();
    order.sort_by(|&i, &j| {
        let (a, c) = (b.vals(i)[0], b.vals(j)[0]);
        match (a.is_nan(), c.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            _ if desc => c.partial_cmp(&a).unwrap(),
            _ => a.partial_cmp(&c).unwrap(),
        }
    });
    let mut out = Batch::with_capacity(b.len(), b.len());
    for i in order {
        out.push(b.ts(i)[0], b.vals(i)[0]);
        out.finish_series(b.series[i].clone());
    }
    Ok(out)
}
