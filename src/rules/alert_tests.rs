use super::*;
use crate::rules::file::parse_rule_file;
use crate::rules::rule::Rule;
use AlertEventKind as K;
use AlertState as S;

fn rule(extra: &str) -> AlertingRule {
    let text = format!(
        "groups:\n- name: g\n  labels: {{team: ops}}\n  rules:\n  - alert: High\n    expr: x > 1\n{extra}"
    );
    let groups = parse_rule_file(&text, "t.yml").unwrap_or_else(|e| panic!("{e:?}"));
    match groups[0].rules[0].clone() {
        Rule::Alerting(r) => r,
        _ => unreachable!(),
    }
}

fn sample(instance: &str, v: f64) -> InstantSample {
    InstantSample {
        labels: Labels::from_pairs(&[("__name__", "x"), ("instance", instance)]),
        t: 0,
        v,
    }
}

const MIN: i64 = 60_000;

/// Runs one step at minute `m` with series `on` present (value 5).
fn at(
    state: &mut AlertRuleState,
    r: &AlertingRule,
    m: i64,
    on: &[&str],
) -> Vec<(AlertEventKind, String)> {
    let result: Vec<_> = on.iter().map(|i| sample(i, 5.0)).collect();
    let out = step(state, &result, m * MIN, r, &TemplateCtx::default(), 0).unwrap();
    out.events
        .into_iter()
        .map(|e| {
            (
                e.kind,
                e.alert.labels.get("instance").unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn only(state: &AlertRuleState) -> &Alert {
    assert_eq!(state.active.len(), 1, "{state:?}");
    state.active.values().next().unwrap()
}

#[test]
fn for_zero_fires_at_first_evaluation() {
    let r = rule("");
    let mut st = AlertRuleState::default();
    assert_eq!(
        at(&mut st, &r, 0, &["a"]),
        vec![(K::Pending, "a".into()), (K::Firing, "a".into())]
    );
    let a = only(&st);
    assert_eq!(
        (a.state, a.active_at_ms, a.fired_at_ms),
        (S::Firing, 0, Some(0))
    );
}

#[test]
fn pending_until_for_then_fires_keeping_active_at() {
    let r = rule("    for: 5m\n");
    let mut st = AlertRuleState::default();
    assert_eq!(at(&mut st, &r, 0, &["a"]), vec![(K::Pending, "a".into())]);
    for m in 1..5 {
        assert!(at(&mut st, &r, m, &["a"]).is_empty());
        assert_eq!(only(&st).state, S::Pending);
    }
    assert_eq!(at(&mut st, &r, 5, &["a"]), vec![(K::Firing, "a".into())]);
    let a = only(&st);
    assert_eq!(
        (a.state, a.active_at_ms, a.fired_at_ms),
        (S::Firing, 0, Some(5 * MIN))
    );
    at(&mut st, &r, 6, &["a"]);
    assert_eq!(only(&st).active_at_ms, 0);
}

#[test]
fn pending_is_dropped_when_condition_clears_before_for() {
    let r = rule("    for: 5m\n");
    let mut st = AlertRuleState::default();
    at(&mut st, &r, 0, &["a"]);
    assert_eq!(
        at(&mut st, &r, 3, &[]),
        vec![(K::PendingCleared, "a".into())]
    );
    assert!(st.active.is_empty());
    // Coming back restarts the timer.
    at(&mut st, &r, 4, &["a"]);
    assert_eq!(only(&st).active_at_ms, 4 * MIN);
    assert!(at(&mut st, &r, 8, &["a"]).is_empty());
    assert_eq!(at(&mut st, &r, 9, &["a"]), vec![(K::Firing, "a".into())]);
}

#[test]
fn keep_firing_for_holds_a_firing_alert() {
    let r = rule("    keep_firing_for: 10m\n");
    let mut st = AlertRuleState::default();
    at(&mut st, &r, 0, &["a"]);
    for m in 1..10 {
        assert!(at(&mut st, &r, m, &[]).is_empty(), "minute {m}");
        let a = only(&st);
        assert_eq!((a.state, a.keep_firing_since_ms), (S::Firing, Some(MIN)));
    }
    // The condition returning resets the keep-firing clock.
    at(&mut st, &r, 10, &["a"]);
    assert_eq!(only(&st).keep_firing_since_ms, None);
    for m in 11..21 {
        assert!(at(&mut st, &r, m, &[]).is_empty(), "minute {m}");
    }
    assert_eq!(at(&mut st, &r, 21, &[]), vec![(K::Resolved, "a".into())]);
    let a = only(&st);
    assert_eq!((a.state, a.resolved_at_ms), (S::Inactive, Some(21 * MIN)));
}

#[test]
fn resolved_alerts_are_kept_fifteen_minutes_then_dropped() {
    let r = rule("");
    let mut st = AlertRuleState::default();
    at(&mut st, &r, 0, &["a"]);
    assert_eq!(at(&mut st, &r, 1, &[]), vec![(K::Resolved, "a".into())]);
    at(&mut st, &r, 16, &[]);
    assert_eq!(only(&st).state, S::Inactive, "exactly 15 min: still kept");
    assert!(st.active_alerts().is_empty());
    assert!(alert_series(&st).is_empty());
    at(&mut st, &r, 17, &[]);
    assert!(st.active.is_empty());
}

#[test]
fn a_resolved_alert_that_returns_starts_over() {
    let r = rule("    for: 2m\n");
    let mut st = AlertRuleState::default();
    at(&mut st, &r, 0, &["a"]);
    at(&mut st, &r, 2, &["a"]);
    at(&mut st, &r, 3, &[]);
    assert_eq!(at(&mut st, &r, 4, &["a"]), vec![(K::Pending, "a".into())]);
    let a = only(&st);
    assert_eq!(
        (a.state, a.active_at_ms, a.resolved_at_ms, a.fired_at_ms),
        (S::Pending, 4 * MIN, None, None)
    );
}

#[test]
fn flapping_series_never_fires_with_for() {
    let r = rule("    for: 2m\n");
    let mut st = AlertRuleState::default();
    let mut kinds = Vec::new();
    for m in 0..10 {
        let on: &[&str] = if m % 2 == 0 { &["a"] } else { &[] };
        kinds.extend(at(&mut st, &r, m, on).into_iter().map(|e| e.0));
    }
    assert!(!kinds.contains(&K::Firing), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == K::Pending).count(), 5);
}

#[test]
fn labels_and_annotations_are_templated_per_series() {
    let r = rule(
        "    labels:\n      severity: '{{ if gt $value 3.0 }}page{{ else }}ticket{{ end }}'\n      empty: ''\n    annotations:\n      summary: '{{ $labels.instance }} at {{ $value | humanize }} in {{ $externalLabels.dc }}'\n      bad: '{{ humanize \"x\" }}'\n",
    );
    let mut st = AlertRuleState::default();
    let ctx = TemplateCtx {
        external_labels: Rc::new(Labels::from_pairs(&[("dc", "eu")])),
        ..TemplateCtx::default()
    };
    let out = step(&mut st, &[sample("a", 1500.0)], 0, &r, &ctx, 0).unwrap();
    assert_eq!(out.template_errors.len(), 1);
    let a = only(&st);
    assert_eq!(
        a.labels,
        Labels::from_pairs(&[
            ("alertname", "High"),
            ("instance", "a"),
            ("severity", "page"),
            ("team", "ops")
        ])
    );
    assert_eq!(
        a.annotations[1],
        ("summary".to_string(), "a at 1.5k in eu".to_string())
    );
    assert!(a.annotations[0]
        .1
        .starts_with("<error expanding template: "));
    // A new value updates annotations of a firing alert, and says so.
    let out = step(&mut st, &[sample("a", 2000.0)], MIN, &r, &ctx, 0).unwrap();
    assert_eq!(
        out.events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![K::Updated]
    );
    assert_eq!(only(&st).annotations[1].1, "a at 2k in eu");
    assert_eq!(only(&st).value, 2000.0);
}

#[test]
fn duplicate_label_sets_after_templating_are_an_error() {
    // Dropping `instance` through a template makes both series one alert.
    let r = rule("    labels:\n      instance: ''\n");
    let mut st = AlertRuleState::default();
    let e = step(
        &mut st,
        &[sample("a", 2.0), sample("b", 2.0)],
        0,
        &r,
        &TemplateCtx::default(),
        0,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "vector contains metrics with the same labelset after applying alert labels"
    );
    assert!(st.active.is_empty());
}

#[test]
fn limit_clears_state_and_fails() {
    let r = rule("");
    let mut st = AlertRuleState::default();
    let res = [sample("a", 2.0), sample("b", 2.0)];
    assert!(step(&mut st, &res, 0, &r, &TemplateCtx::default(), 2).is_ok());
    let e = step(
        &mut st,
        &[sample("a", 2.0), sample("b", 2.0), sample("c", 2.0)],
        MIN,
        &r,
        &TemplateCtx::default(),
        2,
    )
    .unwrap_err();
    assert_eq!(e, AlertError::Limit { limit: 2, count: 3 });
    assert!(st.active.is_empty());
}

#[test]
fn alerts_series_for_pending_and_firing() {
    let r = rule("    for: 1m\n");
    let mut st = AlertRuleState::default();
    at(&mut st, &r, 0, &["a"]);
    at(&mut st, &r, 1, &["a", "b"]);
    let series = alert_series(&st);
    let show: Vec<String> = series.iter().map(|(l, v)| format!("{l} {v}")).collect();
    assert_eq!(
        show,
        vec![
            "ALERTS{alertname=\"High\", alertstate=\"firing\", instance=\"a\", team=\"ops\"} 1",
            "ALERTS_FOR_STATE{alertname=\"High\", instance=\"a\", team=\"ops\"} 0",
            "ALERTS{alertname=\"High\", alertstate=\"pending\", instance=\"b\", team=\"ops\"} 1",
            "ALERTS_FOR_STATE{alertname=\"High\", instance=\"b\", team=\"ops\"} 60",
        ]
    );
    assert_eq!(st.state(), S::Firing);
}
