//! Binary operators: arithmetic, comparisons (with and without `bool`),
//! `atan2` and the set operators, with `on`/`ignoring` and
//! `group_left`/`group_right` vector matching as in Prometheus.

use std::collections::{HashMap, HashSet};

use promql_parser::parser::token::TokenId;
use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD,
    T_MUL, T_NEQ, T_POW, T_SUB,
};
use promql_parser::parser::{BinModifier, BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::eval::{type_error, Evaluator};
use super::grouping::Grouping;
use super::steps::{Cursors, StepOut};
use super::value::{Batch, SeriesMeta, Steps, Val};
use super::{PromqlError, Result};
use crate::model::{Label, Labels, METRIC_NAME};

pub(crate) fn check_supported(b: &BinaryExpr) -> Result<()> {
    if let Some(m) = &b.modifier {
        if m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some() {
            return Err(PromqlError::Unsupported(
                "unsupported binary operator modifier fill".into(),
            ));
        }
    }
    match b.op.id() {
        T_ADD | T_SUB | T_MUL | T_DIV | T_MOD | T_POW | T_ATAN2 | T_EQLC | T_NEQ | T_GTR
        | T_LSS | T_GTE | T_LTE | T_LAND | T_LOR | T_LUNLESS => Ok(()),
        _ => Err(PromqlError::Unsupported(format!(
            "unsupported binary operator {}",
            b.op
        ))),
    }
}

pub(crate) fn eval(ev: &mut Evaluator, e: &BinaryExpr, steps: Steps) -> Result<Val> {
    let op = e.op.id();
    let lhs = ev.eval(&e.lhs, steps)?;
    let rhs = ev.eval(&e.rhs, steps)?;
    let return_bool = e.return_bool();
    match (lhs, rhs) {
        (Val::Scalar(mut l), Val::Scalar(r)) => {
            for (a, b) in l.iter_mut().zip(&r) {
                let (v, keep) = elem(op, *a, *b);
                *a = if is_comparison(op) { btos(keep) } else { v };
            }
            Ok(Val::Scalar(l))
        }
        (Val::Vector(l), Val::Scalar(r)) => Ok(Val::Vector(vector_scalar(
            l,
            &r,
            op,
            false,
            return_bool,
            steps,
        )?)),
        (Val::Scalar(l), Val::Vector(r)) => Ok(Val::Vector(vector_scalar(
            r,
            &l,
            op,
            true,
            return_bool,
            steps,
        )?)),
        (Val::Vector(l), Val::Vector(r)) => {
            let default = BinModifier::default();
            let m = e.modifier.as_ref().unwrap_or(&default);
            let matching = match &m.matching {
                Some(LabelModifier::Include(ls)) => Grouping::new(true, &ls.labels),
                Some(LabelModifier::Exclude(ls)) => Grouping::new(false, &ls.labels),
                None => Grouping::new(false, &[]),
            };
            let b = match op {
                T_LAND | T_LOR | T_LUNLESS => set_op(op, l, r, &matching, steps)?,
                _ => vector_vector(op, l, r, m, &matching, return_bool, steps)?,
            };
            Ok(Val::Vector(b))
        }
        _ => Err(type_error(
            "operand of a binary expression",
            "scalar or instant vector",
        )),
    }
}

fn is_comparison(op: TokenId) -> bool {
    matches!(op, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

/// Operators whose result is no longer the measured quantity, so the metric
/// name is dropped.
fn changes_schema(op: TokenId) -> bool {
    matches!(op, T_ADD | T_SUB | T_MUL | T_DIV | T_POW | T_MOD | T_ATAN2)
}

fn btos(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// One element of a binary operation: the value and whether to keep it (only
/// comparisons filter).
fn elem(op: TokenId, l: f64, r: f64) -> (f64, bool) {
    match op {
        T_ADD => (l + r, true),
        T_SUB => (l - r, true),
        T_MUL => (l * r, true),
        T_DIV => (l / r, true),
        T_POW => (l.powf(r), true),
        T_MOD => (l % r, true),
        T_ATAN2 => (l.atan2(r), true),
        T_EQLC => (l, l == r),
        T_NEQ => (l, l != r),
        T_GTR => (l, l > r),
        T_LSS => (l, l < r),
        T_GTE => (l, l >= r),
        T_LTE => (l, l <= r),
        _ => (f64::NAN, false),
    }
}

fn vector_scalar(
    mut b: Batch,
    s: &[f64],
    op: TokenId,
    swap: bool,
    return_bool: bool,
    steps: Steps,
) -> Result<Batch> {
    let cmp = is_comparison(op);
    b.retain_points(|_, t, v| {
        let sv = s[steps.index(t)];
        let (l, r) = if swap { (sv, *v) } else { (*v, sv) };
        let (mut val, mut keep) = elem(op, l, r);
        // A comparison keeps the vector's value even when the scalar is on
        // the left.
        if cmp && swap {
            val = r;
        }
        if return_bool {
            val = btos(keep);
            keep = true;
        }
        if keep {
            *v = val;
        }
        keep
    });
    if changes_schema(op) || return_bool {
        b = b.drop_names(true)?;
    }
    Ok(b)
}

/// Join signatures of both sides as small ordinals.
fn signatures(l: &Batch, r: &Batch, matching: &Grouping) -> (Vec<u32>, Vec<u32>, usize) {
    let mut ords: HashMap<u64, u32> = HashMap::new();
    let mut sig = |m: &SeriesMeta| {
        let n = ords.len() as u32;
        *ords.entry(matching.key(m)).or_insert(n)
    };
    let ls: Vec<u32> = l.series.iter().map(&mut sig).collect();
    let rs: Vec<u32> = r.series.iter().map(&mut sig).collect();
    let n = ords.len();
    (ls, rs, n)
}

fn set_op(op: TokenId, l: Batch, r: Batch, matching: &Grouping, steps: Steps) -> Result<Batch> {
    let (lsig, rsig, nsigs) = signatures(&l, &r, matching);
    let mut out = StepOut::new();
    let lout: Vec<u32> = l
        .series
        .iter()
        .map(|m| {
            if op == T_LOR {
                out.get_or_add(m.fingerprint(), || m.clone())
            } else {
                out.add(m.clone())
            }
        })
        .collect();
    let mut rout = vec![u32::MAX; r.len()];
    let mut stamp = vec![0usize; nsigs];
    let (mut lc, mut rc) = (Cursors::new(&l), Cursors::new(&r));
    for k in 0..steps.len() {
        let t = steps.t(k);
        let mark = k + 1;
        if op == T_LOR {
            for i in 0..l.len() {
                if let Some(v) = lc.at(&l, i, t) {
                    stamp[lsig[i] as usize] = mark;
                    out.push(lout[i], t, v)?;
                }
            }
            for j in 0..r.len() {
                if let Some(v) = rc.at(&r, j, t) {
                    if stamp[rsig[j] as usize] != mark {
                        if rout[j] == u32::MAX {
                            let m = &r.series[j];
                            rout[j] = out.get_or_add(m.fingerprint(), || m.clone());
                        }
                        out.push(rout[j], t, v)?;
                    }
                }
            }
        } else {
            for j in 0..r.len() {
                if rc.at(&r, j, t).is_some() {
                    stamp[rsig[j] as usize] = mark;
                }
            }
            let want = op == T_LAND;
            for i in 0..l.len() {
                if let Some(v) = lc.at(&l, i, t) {
                    if (stamp[lsig[i] as usize] == mark) == want {
                        out.push(lout[i], t, v)?;
                    }
                }
            }
        }
    }
    Ok(out.finish())
}

/// Prometheus' notation for label sets in error messages.
pub(crate) fn prom_labels(l: &Labels) -> String {
    let parts: Vec<String> = l
        .iter()
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

struct Matching<'a> {
    op: TokenId,
    one_to_one: bool,
    matching: &'a Grouping,
    include: &'a [String],
    return_bool: bool,
}

impl Matching<'_> {
    /// Labels of a result element: from the "many" side, reduced by `on`/
    /// `ignoring` for one-to-one matching, plus the `group_x` labels of the
    /// "one" side.
    fn result_labels(&self, many: &SeriesMeta, one: &SeriesMeta) -> Labels {
        let drop = changes_schema(self.op) || self.return_bool;
        let listed = |n: &str| self.matching.names.iter().any(|x| x == n);
        let mut v: Vec<Label> = many
            .iter()
            .filter(|l| !(drop && l.name == METRIC_NAME))
            .filter(|l| !self.one_to_one || listed(&l.name) == self.matching.keep)
            .cloned()
            .collect();
        for name in self.include {
            let pos = v.binary_search_by(|l| l.name.as_str().cmp(name));
            match (one.get(name), pos) {
                (Some(val), Ok(i)) => v[i].value = val.to_owned(),
                (Some(val), Err(i)) => v.insert(
                    i,
                    Label {
                        name: name.clone(),
                        value: val.to_owned(),
                    },
                ),
                (None, Ok(i)) => {
                    v.remove(i);
                }
                (None, Err(_)) => {}
            }
        }
        Labels::from_sorted(v)
    }

    /// True when the result keeps the "many" side's label set as it is.
    fn keeps_labels(&self) -> bool {
        self.one_to_one && !self.matching.keep && self.matching.names.is_empty()
    }
}

fn vector_vector(
    op: TokenId,
    l: Batch,
    r: Batch,
    m: &BinModifier,
    matching: &Grouping,
    return_bool: bool,
    steps: Steps,
) -> Result<Batch> {
    let (swap, include): (bool, &[String]) = match &m.card {
        VectorMatchCardinality::OneToOne | VectorMatchCardinality::ManyToMany => (false, &[]),
        VectorMatchCardinality::ManyToOne(ls) => (false, &ls.labels),
        VectorMatchCardinality::OneToMany(ls) => (true, &ls.labels),
    };
    let one_to_one = matches!(m.card, VectorMatchCardinality::OneToOne);
    let mt = Matching {
        op,
        one_to_one,
        matching,
        include,
        return_bool,
    };
    // The "many" side is the left one unless group_right swapped them.
    let (many, one) = if swap { (r, l) } else { (l, r) };
    let (msig, osig, nsigs) = signatures(&many, &one, matching);
    let mut out = StepOut::new();
    let mut out_by_many = vec![u32::MAX; many.len()];
    let mut out_by_pair: HashMap<(u32, u32), u32> = HashMap::new();
    let mut one_stamp = vec![0usize; nsigs];
    let mut one_at = vec![(0u32, 0f64); nsigs];
    let mut matched_stamp = vec![0usize; nsigs];
    let mut matched: HashSet<(u32, u32)> = HashSet::new();
    let (mut mc, mut oc) = (Cursors::new(&many), Cursors::new(&one));
    for k in 0..steps.len() {
        let t = steps.t(k);
        let mark = k + 1;
        for (j, &sig) in osig.iter().enumerate() {
            if let Some(v) = oc.at(&one, j, t) {
                let s = sig as usize;
                if one_stamp[s] == mark {
                    let other = &one.series[one_at[s].0 as usize];
                    return Err(duplicate_error(&one.series[j], other, matching, swap));
                }
                one_stamp[s] = mark;
                one_at[s] = (j as u32, v);
            }
        }
        matched.clear();
        for i in 0..many.len() {
            let Some(mv) = mc.at(&many, i, t) else {
                continue;
            };
            let s = msig[i] as usize;
            if one_stamp[s] != mark {
                continue;
            }
            let (j, ov) = one_at[s];
            let (lv, rv) = if swap { (ov, mv) } else { (mv, ov) };
            let (mut val, keep) = elem(op, lv, rv);
            if return_bool {
                val = btos(keep);
            }
            let o = if include.is_empty() {
                if out_by_many[i] == u32::MAX {
                    out_by_many[i] =
                        result_series(&mut out, &mt, &many.series[i], &one.series[j as usize]);
                }
                out_by_many[i]
            } else {
                match out_by_pair.get(&(i as u32, j)) {
                    Some(&o) => o,
                    None => {
                        let o =
                            result_series(&mut out, &mt, &many.series[i], &one.series[j as usize]);
                        out_by_pair.insert((i as u32, j), o);
                        o
                    }
                }
            };
            if one_to_one {
                if matched_stamp[s] == mark {
                    return Err(PromqlError::Eval(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                    ));
                }
                matched_stamp[s] = mark;
            } else if !matched.insert((s as u32, o)) {
                return Err(PromqlError::Eval(
                    "multiple matches for labels: grouping labels must ensure unique matches"
                        .into(),
                ));
            }
            if keep || return_bool {
                out.push(o, t, val)?;
            }
        }
    }
    Ok(out.finish())
}

fn result_series(out: &mut StepOut, mt: &Matching, many: &SeriesMeta, one: &SeriesMeta) -> u32 {
    if mt.keeps_labels() {
        let meta = SeriesMeta {
            labels: many.labels.clone(),
            drop_name: many.drop_name || changes_schema(mt.op) || mt.return_bool,
        };
        out.get_or_add(meta.fingerprint(), || meta)
    } else {
        let labels = mt.result_labels(many, one);
        out.get_or_add(labels.fingerprint(), || SeriesMeta::owned(labels))
    }
}

fn duplicate_error(a: &SeriesMeta, b: &SeriesMeta, matching: &Grouping, swap: bool) -> PromqlError {
    let side = if swap { "left" } else { "right" };
    PromqlError::Eval(format!(
        "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
        prom_labels(&matching.labels(a)),
        prom_labels(&a.materialize()),
        prom_labels(&b.materialize()),
    ))
}
