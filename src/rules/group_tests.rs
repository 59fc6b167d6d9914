use super::*;
use crate::model::is_stale_nan;
use crate::promql::EngineOptions;
use crate::rules::alert::{AlertEventKind, AlertState};
use crate::rules::file::parse_rule_file;
use crate::store::StoreConfig;

const S: i64 = 1000;
const MIN: i64 = 60 * S;

fn group(text: &str) -> Group {
    parse_rule_file(text, "g.yml")
        .unwrap_or_else(|e| panic!("{e:?}"))
        .remove(0)
}

fn setup() -> (Store, Engine) {
    (
        Store::new(StoreConfig::default()),
        Engine::new(EngineOptions::default()),
    )
}

/// Every sample of series matching `selector` up to `t`.
fn samples(
    store: &Store,
    engine: &Engine,
    selector: &str,
    t: i64,
) -> Vec<(String, Vec<(i64, f64)>)> {
    let _ = engine;
    let m = crate::model::Matcher::new(crate::model::MatchOp::Equal, METRIC_NAME, selector);
    let set = store.select(&[m], 0, t);
    (0..set.series.len())
        .map(|i| {
            let pts = set
                .timestamps(i)
                .iter()
                .copied()
                .zip(set.values(i).iter().copied())
                .collect();
            (set.series[i].labels.to_string(), pts)
        })
        .collect()
}

const CHAIN: &str = r#"
groups:
  - name: cpu
    labels: {team: ops}
    rules:
      - record: instance:cpu:double
        expr: cpu * 2
      - alert: CpuHigh
        expr: instance:cpu:double > 100
        for: 2m
        annotations:
          summary: "{{ $labels.instance }} at {{ $value }}"
"#;

#[test]
fn recording_rule_feeds_an_alert_in_the_same_group() {
    let (store, engine) = setup();
    let g = group(CHAIN);
    let mut st = GroupState::new(&g);
    let ctx = EvalContext::default();
    let cpu = Labels::from_pairs(&[("__name__", "cpu"), ("instance", "a")]);
    // cpu: 40 until 1 min, then 60 (doubled: 120 > 100) until 6 min, then gone.
    let mut states = Vec::new();
    let mut kinds = Vec::new();
    for m in 0..=8 {
        let t = m * MIN;
        if m <= 5 {
            store
                .append_labels(&cpu, t, if m < 1 { 40.0 } else { 60.0 })
                .unwrap();
        } else if m == 6 {
            store.append_labels(&cpu, t, stale_nan()).unwrap();
        }
        let r = eval_group(&g, &mut st, &engine, &store, t, &ctx);
        assert!(r.rule_errors.is_empty(), "{:?}", r.rule_errors);
        assert!(r.append_errors.is_empty(), "{:?}", r.append_errors);
        kinds.extend(r.events.iter().map(|e| (m, e.kind)));
        states.push(st.rules[1].alerts.state());
        assert_eq!(st.rules[0].health, RuleHealth::Ok);
    }
    use AlertState::*;
    assert_eq!(
        states,
        vec![Inactive, Pending, Pending, Firing, Firing, Firing, Inactive, Inactive, Inactive]
    );
    assert_eq!(
        kinds,
        vec![
            (1, AlertEventKind::Pending),
            (3, AlertEventKind::Firing),
            (6, AlertEventKind::Resolved)
        ]
    );
    // The recorded series was written at every evaluation with data, with
    // the group's labels, then marked stale once its source went away.
    let rec = samples(&store, &engine, "instance:cpu:double", 8 * MIN);
    assert_eq!(rec.len(), 1);
    assert_eq!(
        rec[0].0,
        "instance:cpu:double{instance=\"a\", team=\"ops\"}"
    );
    let pts = &rec[0].1;
    assert_eq!(pts.len(), 7);
    assert_eq!(
        pts[..6].iter().map(|p| p.1).collect::<Vec<_>>(),
        vec![80.0, 120.0, 120.0, 120.0, 120.0, 120.0]
    );
    assert_eq!(pts[6].0, 6 * MIN);
    assert!(is_stale_nan(pts[6].1));
    // ALERTS: pending, then firing (a new series), each marked stale when it ended.
    let alerts = samples(&store, &engine, "ALERTS", 8 * MIN);
    let show: Vec<String> = alerts
        .iter()
        .map(|(l, pts)| {
            let last = pts.last().unwrap();
            format!(
                "{l} n={} stale_at={}",
                pts.len(),
                if is_stale_nan(last.1) {
                    last.0 / MIN
                } else {
                    -1
                }
            )
        })
        .collect();
    assert_eq!(
        show,
        vec![
            "ALERTS{alertname=\"CpuHigh\", alertstate=\"firing\", instance=\"a\", team=\"ops\"} n=4 stale_at=6",
            "ALERTS{alertname=\"CpuHigh\", alertstate=\"pending\", instance=\"a\", team=\"ops\"} n=3 stale_at=3",
        ]
    );
    let fs = samples(&store, &engine, "ALERTS_FOR_STATE", 8 * MIN);
    assert_eq!(fs[0].1[0], (MIN, 60.0));
    // The annotation saw the recorded value.
    let firing = st.rules[1].alerts.alerts();
    assert_eq!(firing[0].annotations[0].1, "a at 120");
}

#[test]
fn a_failing_rule_does_not_stop_the_others_and_limit_is_enforced() {
    let (store, engine) = setup();
    let g = group(
        r#"
groups:
  - name: g
    limit: 1
    rules:
      - record: too_many
        expr: x
      - record: dup
        expr: x * 0
        labels: {i: same}
      - record: fine
        expr: sum(x)
      - alert: Scalar
        expr: vector(1) > 0
"#,
    );
    for i in ["1", "2"] {
        store
            .append_labels(&Labels::from_pairs(&[("__name__", "x"), ("i", i)]), 0, 1.0)
            .unwrap();
    }
    let mut st = GroupState::new(&g);
    let r = eval_group(&g, &mut st, &engine, &store, 0, &EvalContext::default());
    let errs: Vec<_> = r
        .rule_errors
        .iter()
        .map(|(i, e)| format!("{i}: {e}"))
        .collect();
    assert_eq!(
        errs,
        vec![
            "0: exceeded limit of 1 with 2 series",
            "1: vector contains metrics with the same labelset after applying rule labels",
        ]
    );
    assert_eq!(
        st.rules.iter().map(|r| r.health).collect::<Vec<_>>(),
        vec![
            RuleHealth::Err,
            RuleHealth::Err,
            RuleHealth::Ok,
            RuleHealth::Ok
        ]
    );
    assert!(st.rules[0].last_error.is_some());
    assert_eq!(samples(&store, &engine, "fine", 0).len(), 1);
    assert!(samples(&store, &engine, "too_many", 0).is_empty());
    assert_eq!(st.rules[3].alerts.state(), AlertState::Firing);
}

#[test]
fn query_offset_shifts_query_and_sample_time_not_alert_time() {
    let (store, engine) = setup();
    let g = group("groups:\n  - name: g\n    query_offset: 1m\n    rules:\n      - alert: A\n        expr: x > 0\n");
    store
        .append_labels(&Labels::from_pairs(&[("__name__", "x")]), 0, 1.0)
        .unwrap();
    let mut st = GroupState::new(&g);
    eval_group(&g, &mut st, &engine, &store, MIN, &EvalContext::default());
    let a = st.rules[0].alerts.alerts()[0].clone();
    assert_eq!(a.active_at_ms, MIN);
    let alerts = samples(&store, &engine, "ALERTS", MIN);
    assert_eq!(alerts[0].1, vec![(0, 1.0)]);
}

#[test]
fn state_carries_over_a_reload_for_unchanged_rules() {
    let (store, engine) = setup();
    let g = group(CHAIN);
    let mut st = GroupState::new(&g);
    store
        .append_labels(
            &Labels::from_pairs(&[("__name__", "cpu"), ("instance", "a")]),
            0,
            60.0,
        )
        .unwrap();
    eval_group(&g, &mut st, &engine, &store, 0, &EvalContext::default());
    assert_eq!(st.rules[1].alerts.state(), AlertState::Pending);
    // Same rules plus a new one in front: the alert keeps its pending timer.
    let g2 = group(&CHAIN.replace(
        "    rules:\n",
        "    rules:\n      - record: new\n        expr: cpu\n",
    ));
    let st2 = GroupState::carry_over(&g2, st);
    assert_eq!(st2.rules[0].health, RuleHealth::Unknown);
    assert_eq!(st2.rules[2].alerts.alerts()[0].active_at_ms, 0);
    // A changed expression is a new rule.
    let g3 = group(&CHAIN.replace("> 100", "> 110"));
    let st3 = GroupState::carry_over(&g3, st2);
    assert!(st3.rules[1].alerts.active.is_empty());
}

#[test]
fn evaluation_slots_are_aligned_to_the_interval() {
    assert_eq!(eval_timestamp(12_345, 10_000, 0), 10_000);
    assert_eq!(eval_timestamp(12_345, 10_000, 3_000), 3_000);
    assert_eq!(eval_timestamp(13_000, 10_000, 3_000), 13_000);
    assert_eq!(eval_timestamp(2_000, 10_000, 3_000), -7_000);
    let off = group_offset_ms("rules/a.yml;cpu", 60_000);
    assert!((0..60_000).contains(&off));
    assert_eq!(off, group_offset_ms("rules/a.yml;cpu", 60_000), "stable");
    assert_ne!(off, group_offset_ms("rules/a.yml;mem", 60_000));
    assert_eq!(missed_iterations(0, 10_000, 10_000), 0);
    assert_eq!(missed_iterations(0, 40_000, 10_000), 3);
}

#[test]
fn rules_and_state_can_move_between_tasks() {
    // The manager keeps them across `.await`s; templates' `Rc`s stay inside
    // one evaluation.
    fn send_sync<T: Send + Sync>() {}
    send_sync::<crate::rules::RuleSet>();
    send_sync::<GroupState>();
    send_sync::<GroupEvalResult>();
}
