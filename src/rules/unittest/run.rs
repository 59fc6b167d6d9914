//! Running one test group against loaded rule groups, as promtool's
//! `testGroup.test` does: load the input series into a fresh store,
//! evaluate every group at every `evaluation_interval` from 0 to the
//! largest `eval_time`, compare the firing alerts at each alert test's
//! time, then run the PromQL tests against everything written.

use std::collections::BTreeMap;

use super::gofmt::{self, LabelsAndAnnotations};
use super::spec::{AlertTest, PromqlTest, TestGroup};
use crate::model::Labels;
use crate::promql::{Engine, EngineOptions, Value};
use crate::rules::alert::{AlertState, ALERTNAME};
use crate::rules::group::{eval_group, EvalContext, GroupState};
use crate::rules::rule::{format_duration, Group, Rule};
use crate::store::{Store, StoreConfig};

/// How floats are compared in `promql_expr_test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatCompare {
    /// Bit for bit, as promtool does by default; NaN equals NaN here (in
    /// promtool an expected NaN can never match).
    Exact,
    /// Within one ULP (`fuzzy_compare: true`, promtool 3).
    Fuzzy,
}

/// Runs `tg` against `groups` (already in evaluation order); returns the
/// failures in promtool's words, empty when the test group passed.
pub fn run_test_group(
    tg: &TestGroup,
    groups: &[&Group],
    eval_interval_ms: i64,
    floats: FloatCompare,
) -> Vec<String> {
    let store = Store::new(StoreConfig {
        // Nothing is ever pruned: a test may look back as far as it likes.
        retention_ms: i64::MAX / 4,
        max_series: usize::MAX,
    });
    if let Err(e) = load_series(&store, tg) {
        return vec![e];
    }
    // As promtool does, subqueries without a step use the evaluation
    // interval.
    let engine =
        Engine::new(EngineOptions::default()).with_default_subquery_step_ms(eval_interval_ms);
    let ctx = EvalContext {
        external_labels: tg.external_labels.clone(),
        external_url: tg.external_url.clone(),
        default_query_offset_ms: 0,
    };
    let mut states: Vec<GroupState> = groups.iter().map(|g| GroupState::new(g)).collect();

    let max_t = tg
        .alert_tests
        .iter()
        .map(|a| a.eval_time_ms)
        .chain(tg.promql_tests.iter().map(|p| p.eval_time_ms))
        .max()
        .unwrap_or(0);
    let mut alert_tests: BTreeMap<i64, Vec<&AlertTest>> = BTreeMap::new();
    for a in &tg.alert_tests {
        alert_tests.entry(a.eval_time_ms).or_default().push(a);
    }
    let mut pending = alert_tests.iter().peekable();

    let mut errs = Vec::new();
    let mut ts = 0;
    while ts <= max_t {
        let mut eval_errs = Vec::new();
        for (g, st) in groups.iter().zip(states.iter_mut()) {
            let res = eval_group(g, st, &engine, &store, ts, &ctx);
            for (i, e) in res.rule_errors {
                let name = g.rules.get(i).map_or("", Rule::name);
                eval_errs.push(format!(
                    "    rule: {name}, time: {}, err: {e}",
                    gofmt::go_duration(ts)
                ));
            }
        }
        // As in promtool, a rule that fails to evaluate ends the test
        // group: later comparisons would only repeat the error.
        if !eval_errs.is_empty() {
            errs.extend(eval_errs);
            return errs;
        }
        // An alert test at `eval_time` sees the evaluation at the latest
        // `ts <= eval_time`.
        while let Some((_, tests)) =
            pending.next_if(|(&t, _)| ts <= t && t < ts.saturating_add(eval_interval_ms))
        {
            for test in tests {
                if let Some(e) = check_alerts(tg, test, groups, &states) {
                    errs.push(e);
                }
            }
        }
        // An eval_time near the end of i64 (a typo) must not overflow.
        match ts.checked_add(eval_interval_ms) {
            Some(next) => ts = next,
            None => break,
        }
    }

    for p in &tg.promql_tests {
        if let Some(e) = check_promql(p, &engine, &store, floats) {
            errs.push(e);
        }
    }
    errs
}

fn load_series(store: &Store, tg: &TestGroup) -> Result<(), String> {
    for s in &tg.input_series {
        for (i, v) in s.values.iter().enumerate() {
            let Some(v) = v else { continue };
            store
                .append_labels(&s.labels, i as i64 * tg.interval_ms, *v)
                .map_err(|e| format!("    input series {}: {e}", gofmt::labels(&s.labels)))?;
        }
    }
    Ok(())
}

/// The firing alerts of every alerting rule named `test.alertname` (in any
/// group) against the expected ones, order-insensitively.
fn check_alerts(
    tg: &TestGroup,
    test: &AlertTest,
    groups: &[&Group],
    states: &[GroupState],
) -> Option<String> {
    let mut got = Vec::new();
    for (g, st) in groups.iter().zip(states) {
        for (rule, rs) in g.rules.iter().zip(&st.rules) {
            let Rule::Alerting(r) = rule else { continue };
            if r.name != test.alertname {
                continue;
            }
            // promtool compares firing alerts only: pending ones and
            // resolved ones kept for re-notification are left out.
            got.extend(
                rs.alerts
                    .active
                    .values()
                    .filter(|a| a.state == AlertState::Firing)
                    .map(|a| LabelsAndAnnotations {
                        labels: a
                            .labels
                            .iter()
                            .map(|l| (l.name.clone(), l.value.clone()))
                            .collect(),
                        annotations: a.annotations.clone(),
                    }),
            );
        }
    }
    let mut exp: Vec<LabelsAndAnnotations> = test
        .exp_alerts
        .iter()
        .map(|e| {
            let mut labels = e.labels.clone();
            labels.retain(|(n, _)| n != ALERTNAME);
            labels.push((ALERTNAME.to_string(), test.alertname.clone()));
            labels.sort();
            LabelsAndAnnotations {
                labels,
                annotations: e.annotations.clone(),
            }
        })
        .collect();
    got.sort();
    exp.sort();
    if got == exp {
        return None;
    }
    let name = if tg.name.is_empty() {
        String::new()
    } else {
        format!("    name: {},\n", tg.name)
    };
    let indent = "            ";
    Some(format!(
        "{name}    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
        test.alertname,
        format_duration(test.eval_time_ms),
        gofmt::indent_lines(&gofmt::alerts(&exp), indent),
        gofmt::indent_lines(&gofmt::alerts(&got), indent),
    ))
}

fn check_promql(
    p: &PromqlTest,
    engine: &Engine,
    store: &Store,
    floats: FloatCompare,
) -> Option<String> {
    let time = format_duration(p.eval_time_ms);
    let quoted = crate::rules::template::go_quote(&p.expr);
    let res = crate::promql::parse(&p.expr)
        .and_then(|e| engine.instant_query(store, &e, p.eval_time_ms))
        .map_err(|e| e.to_string())
        .and_then(|v| match v {
            Value::Vector(v) => Ok(v.into_iter().map(|s| (s.labels, s.v)).collect()),
            Value::Scalar(f) => Ok(vec![(Labels::empty(), f)]),
            _ => Err("rule result is not a vector or scalar".to_string()),
        });
    let mut got: Vec<(Labels, f64)> = match res {
        Ok(v) => v,
        Err(e) => return Some(format!("    expr: {quoted}, time: {time}, err: {e}")),
    };
    let mut exp = p.exp_samples.clone();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    exp.sort_by(|a, b| a.0.cmp(&b.0));
    let same = got.len() == exp.len()
        && got
            .iter()
            .zip(&exp)
            .all(|(g, e)| g.0 == e.0 && floats_equal(g.1, e.1, floats));
    if same {
        return None;
    }
    Some(format!(
        "    expr: {quoted}, time: {time},\n        exp: {}\n        got: {}",
        gofmt::samples(&exp),
        gofmt::samples(&got)
    ))
}

fn floats_equal(a: f64, b: f64, how: FloatCompare) -> bool {
    if a == b || (a.is_nan() && b.is_nan()) {
        return true;
    }
    how == FloatCompare::Fuzzy
        && (next_toward(a, f64::NEG_INFINITY) == b || next_toward(a, f64::INFINITY) == b)
}

/// Go's `math.Nextafter(x, toward)` for finite `x`.
fn next_toward(x: f64, toward: f64) -> f64 {
    if x.is_nan() || x == toward {
        return x;
    }
    if x == 0.0 {
        return f64::from_bits(1).copysign(toward);
    }
    let bits = x.to_bits();
    let up = (toward > x) == (x > 0.0);
    f64::from_bits(if up { bits + 1 } else { bits - 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_comparison() {
        let one_up = f64::from_bits(1.0f64.to_bits() + 1);
        assert!(floats_equal(1.0, 1.0, FloatCompare::Exact));
        assert!(floats_equal(f64::NAN, f64::NAN, FloatCompare::Exact));
        assert!(!floats_equal(1.0, one_up, FloatCompare::Exact));
        assert!(floats_equal(1.0, one_up, FloatCompare::Fuzzy));
        assert!(floats_equal(one_up, 1.0, FloatCompare::Fuzzy));
        let two_up = f64::from_bits(1.0f64.to_bits() + 2);
        assert!(!floats_equal(1.0, two_up, FloatCompare::Fuzzy));
        assert!(floats_equal(-0.0, 0.0, FloatCompare::Exact));
        assert_eq!(next_toward(0.0, -1.0), -f64::from_bits(1));
        assert_eq!(
            next_toward(-1.0, f64::NEG_INFINITY),
            f64::from_bits((-1.0f64).to_bits() + 1)
        );
    }
}
