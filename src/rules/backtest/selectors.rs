//! Which raw samples the rules read: every distinct selector and the time
//! range each needs, so that a store can be filled with one query per
//! selector instead of one per evaluation.

use std::collections::HashMap;
use std::time::Duration;

use promql_parser::parser::{AtModifier, Offset, VectorSelector};

use crate::model::{MatchOp, METRIC_NAME};
use crate::promql::Expr;
use crate::rules::alert::{ALERTS_FOR_STATE_METRIC, ALERTS_METRIC};
use crate::rules::rule::{Rule, RuleSet};
use crate::store::Store;

/// One selector the rules read and the samples it needs, `mint..=maxt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeededSelector {
    /// The selector without `offset` and `@`, e.g. `up{job="host"}`.
    pub selector: String,
    pub mint: i64,
    pub maxt: i64,
}

impl NeededSelector {
    /// The query that returns those samples when evaluated at `maxt`.
    pub fn query(&self) -> String {
        let range = (self.maxt - self.mint).max(1000) as u64;
        format!(
            "{}[{}]",
            self.selector,
            promql_parser::util::display_duration(&Duration::from_millis(range))
        )
    }
}

/// The distinct selectors of all rules and the time each needs for
/// evaluations from `from_ms` to `to_ms`: the instant lookback or the
/// range window before each evaluation, moved by `offset`, `@`, the group's
/// query offset and enclosing subqueries. Selectors of series the rules
/// themselves produce (recording rules, `ALERTS`) are left out: the
/// backtest writes those.
pub fn needed_selectors(
    rules: &RuleSet,
    from_ms: i64,
    to_ms: i64,
    lookback_ms: i64,
    default_query_offset_ms: i64,
) -> Vec<NeededSelector> {
    let mut produced: Vec<&str> = vec![ALERTS_METRIC, ALERTS_FOR_STATE_METRIC];
    for g in &rules.groups {
        for r in &g.rules {
            if let Rule::Recording(r) = r {
                produced.push(&r.record);
            }
        }
    }
    let mut w = Walker {
        lookback: lookback_ms,
        produced,
        out: Vec::new(),
        index: HashMap::new(),
    };
    for g in &rules.groups {
        let off = g.query_offset_ms.unwrap_or(default_query_offset_ms);
        for r in &g.rules {
            let expr = match r {
                Rule::Alerting(r) => &r.expr,
                Rule::Recording(r) => &r.expr,
            };
            w.walk(expr, from_ms - off, to_ms - off);
        }
    }
    w.out
}

struct Walker<'a> {
    lookback: i64,
    produced: Vec<&'a str>,
    out: Vec<NeededSelector>,
    index: HashMap<String, usize>,
}

impl Walker<'_> {
    /// `expr` is evaluated at times `a..=b`.
    fn walk(&mut self, expr: &Expr, a: i64, b: i64) {
        match expr {
            Expr::VectorSelector(vs) => self.selector(vs, self.lookback, a, b),
            Expr::MatrixSelector(ms) => self.selector(&ms.vs, ms.range.as_millis() as i64, a, b),
            Expr::Subquery(sq) => {
                let (a, b) = shifted(&sq.at, &sq.offset, a, b);
                // The inner steps are aligned to the subquery step, so the
                // first may fall up to a step before the window.
                let step = sq.step.map_or(60_000, |s| s.as_millis() as i64);
                self.walk(&sq.expr, a - sq.range.as_millis() as i64 - step, b);
            }
            Expr::Aggregate(x) => {
                if let Some(p) = &x.param {
                    self.walk(p, a, b);
                }
                self.walk(&x.expr, a, b);
            }
            Expr::Unary(x) => self.walk(&x.expr, a, b),
            Expr::Paren(x) => self.walk(&x.expr, a, b),
            Expr::Binary(x) => {
                self.walk(&x.lhs, a, b);
                self.walk(&x.rhs, a, b);
            }
            Expr::Call(c) => {
                for arg in &c.args.args {
                    self.walk(arg, a, b);
                }
            }
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
        }
    }

    fn selector(&mut self, vs: &VectorSelector, window: i64, a: i64, b: i64) {
        let name = vs.name.as_deref().or_else(|| {
            vs.matchers
                .matchers
                .iter()
                .find(|m| m.name == METRIC_NAME && m.op == MatchOp::Equal)
                .map(|m| m.value.as_str())
        });
        if name.is_some_and(|n| self.produced.contains(&n)) {
            return;
        }
        let (a, b) = shifted(&vs.at, &vs.offset, a, b);
        let (mint, maxt) = (a - window, b);
        let bare = VectorSelector {
            offset: None,
            at: None,
            ..vs.clone()
        };
        let selector = bare.to_string();
        match self.index.get(&selector) {
            Some(&i) => {
                let n = &mut self.out[i];
                n.mint = n.mint.min(mint);
                n.maxt = n.maxt.max(maxt);
            }
            None => {
                self.index.insert(selector.clone(), self.out.len());
                self.out.push(NeededSelector {
                    selector,
                    mint,
                    maxt,
                });
            }
        }
    }
}

/// Evaluation times `a..=b` moved by `@` and `offset`. `@ start()` and
/// `@ end()` are the evaluation time itself in a rule's instant query.
fn shifted(at: &Option<AtModifier>, offset: &Option<Offset>, a: i64, b: i64) -> (i64, i64) {
    let off = match offset {
        None => 0,
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
    };
    match at {
        Some(AtModifier::At(t)) => {
            let t = match t.duration_since(std::time::UNIX_EPOCH) {
                Ok(d) => d.as_millis() as i64,
                Err(e) => -(e.duration().as_millis() as i64),
            };
            (t - off, t - off)
        }
        _ => (a - off, b - off),
    }
}

/// The selectors of `needed` that match no series in `store` within their
/// time range: usually a typo in a metric or label name, or a source that
/// is not configured.
pub fn missing_selectors<'a>(store: &Store, needed: &'a [NeededSelector]) -> Vec<&'a str> {
    needed
        .iter()
        .filter(|n| {
            let Ok(Expr::VectorSelector(vs)) = crate::promql::parse(&n.selector) else {
                return false;
            };
            let mut m = Vec::with_capacity(vs.matchers.matchers.len() + 1);
            if let Some(name) = &vs.name {
                m.push(crate::model::Matcher::new(
                    MatchOp::Equal,
                    METRIC_NAME,
                    name,
                ));
            }
            m.extend(vs.matchers.matchers.iter().cloned());
            store.series(&m, n.mint, n.maxt).is_empty()
        })
        .map(|n| n.selector.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_cover_lookback_ranges_offsets_and_subqueries() {
        let groups = crate::rules::file::parse_rule_file(
            r#"
groups:
  - name: g
    query_offset: 1m
    rules:
      - record: job:x:rate
        expr: sum(rate(x{job="a"}[5m]))
      - alert: A
        expr: job:x:rate > 1 and y offset 10m
      - alert: B
        expr: max_over_time(rate(x{job="a"}[1m])[30m:1m]) > 0 unless ALERTS
"#,
            "g.yml",
        )
        .unwrap();
        let set = RuleSet { groups };
        const MIN: i64 = 60_000;
        let (from, to) = (100 * MIN, 160 * MIN);
        let got = needed_selectors(&set, from, to, 5 * MIN, 0);
        let find = |s: &str| {
            got.iter()
                .find(|n| n.selector == s)
                .unwrap_or_else(|| panic!("{s} not in {got:?}"))
        };
        assert_eq!(got.len(), 2, "{got:?}");
        let x = find(r#"x{job="a"}"#);
        // rate(x[5m]) from 99m (query offset 1m) and, in the subquery, 30m
        // plus a step before 99m, then the 1m range.
        assert_eq!(x.mint, 99 * MIN - 30 * MIN - MIN - MIN);
        assert_eq!(x.maxt, 159 * MIN);
        let y = find("y");
        assert_eq!((y.mint, y.maxt), (99 * MIN - 10 * MIN - 5 * MIN, 149 * MIN));
        // The query text parses back.
        for n in &got {
            crate::promql::parse(&n.query()).unwrap();
        }
        assert_eq!(y.query(), "y[1h5m]");
    }
}
