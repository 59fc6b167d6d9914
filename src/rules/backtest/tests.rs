use super::*;
use crate::promql::EngineOptions;
use crate::rules::file::parse_rule_file;
use crate::store::StoreConfig;

const S: i64 = 1000;
// 2024-05-01T03:00:00Z
const T0: i64 = 1_714_532_400_000;

const RULES: &str = r#"
groups:
  - name: g
    interval: 10s
    rules:
      - record: load:double
        expr: load * 2
      - alert: Fires
        expr: load:double / 2 > 0.8
        for: 30s
      - alert: Blips
        expr: blip > 5
        for: 1m
      - alert: Never
        expr: disk < 0.1
        for: 1m
      - alert: Typo
        expr: lod > 0.8
      - alert: AtOnce
        expr: blip > 5
"#;

/// 10 minutes of 1 s samples from T0:
/// * `load` 0.5, but 0.9 from 100 s to 199 s with 0.95 from 150 s to 159 s;
/// * `blip` 1, but 10 from 300 s to 319 s;
/// * `disk` 0.5, but 0.2 from 395 s to 405 s.
fn store() -> Store {
    let store = Store::new(StoreConfig::default());
    let series = |name: &str| Labels::from_pairs(&[("__name__", name), ("host", "a")]);
    let (load, blip, disk) = (series("load"), series("blip"), series("disk"));
    for s in 0..600 {
        let t = T0 + s * S;
        let l = match s {
            150..=159 => 0.95,
            100..=199 => 0.9,
            _ => 0.5,
        };
        let b = if (300..320).contains(&s) { 10.0 } else { 1.0 };
        let d = if (395..=405).contains(&s) { 0.2 } else { 0.5 };
        store.append_labels(&load, t, l).unwrap();
        store.append_labels(&blip, t, b).unwrap();
        store.append_labels(&disk, t, d).unwrap();
    }
    store
}

fn backtest() -> (Report, Vec<i64>) {
    let groups = parse_rule_file(RULES, "r.yml").unwrap_or_else(|e| panic!("{e:?}"));
    let set = RuleSet { groups };
    let opts = Options {
        from_ms: T0,
        to_ms: T0 + 599 * S,
        default_interval_ms: 5 * S,
        ctx: EvalContext::default(),
    };
    let first = first_slot(&set.groups[0], 10 * S, T0);
    let slots: Vec<i64> = (0..)
        .map(|k| first + k * 10 * S)
        .take_while(|&t| t <= opts.to_ms)
        .collect();
    let engine = Engine::new(EngineOptions::default());
    let report = run(&store(), &engine, &set, &opts).unwrap();
    (report, slots)
}

/// The first slot at or after `s` seconds into the data.
fn slot_at(slots: &[i64], s: i64) -> i64 {
    *slots.iter().find(|&&t| t >= T0 + s * S).unwrap()
}

fn alert<'a>(r: &'a Report, name: &str) -> &'a AlertReport {
    r.groups[0]
        .rules
        .iter()
        .find_map(|r| match r {
            RuleReport::Alerting(a) if a.name == name => Some(a),
            _ => None,
        })
        .unwrap()
}

#[test]
fn alert_goes_pending_fires_and_resolves() {
    let (r, slots) = backtest();
    assert_eq!(r.groups[0].evaluations, slots.len());
    let a = alert(&r, "Fires");
    assert_eq!(a.series.len(), 1);
    assert_eq!(
        a.series[0].labels.to_string(),
        r#"{alertname="Fires", host="a"}"#
    );
    let pending = slot_at(&slots, 100);
    let resolved = slot_at(&slots, 200);
    assert_eq!(
        a.series[0].episodes,
        vec![Episode {
            pending_at_ms: pending,
            fired_at_ms: Some(pending + 30 * S),
            ended_at_ms: Some(resolved),
            peak: 0.95,
            peak_at_ms: slot_at(&slots, 150),
        }]
    );
    assert_eq!(a.times_fired(), 1);
    assert_eq!(a.firing_ms(r.to_ms), resolved - pending - 30 * S);
    assert_eq!(a.closest, None, "only for rules that never fired");
    assert_eq!(
        a.condition,
        Some(Condition {
            lhs: "load:double / 2".into(),
            op: ">".into(),
            threshold: 0.8
        })
    );

    // `for: 0`: pending and firing at once.
    let a = alert(&r, "AtOnce");
    let e = &a.series[0].episodes[0];
    assert_eq!(e.fired_at_ms, Some(e.pending_at_ms));
}

#[test]
fn alert_that_goes_pending_and_clears_never_fires() {
    let (r, slots) = backtest();
    let a = alert(&r, "Blips");
    let e = &a.series[0].episodes;
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].pending_at_ms, slot_at(&slots, 300));
    assert_eq!(e[0].fired_at_ms, None);
    assert_eq!(e[0].ended_at_ms, Some(slot_at(&slots, 320)));
    assert_eq!(a.times_fired(), 0);
    assert_eq!(a.times_pending(), 1);
    assert_eq!(
        a.longest_unfired_pending_ms(r.to_ms),
        Some(slot_at(&slots, 320) - slot_at(&slots, 300))
    );
    let Some(Approach::Extreme { value, .. }) = &a.closest else {
        panic!("{:?}", a.closest)
    };
    assert_eq!(*value, 10.0);
}

#[test]
fn alert_that_never_fires_reports_its_closest_approach() {
    let (r, _) = backtest();
    let a = alert(&r, "Never");
    assert!(a.series.is_empty());
    let Some(Approach::Extreme {
        value,
        at_ms,
        labels,
    }) = &a.closest
    else {
        panic!("{:?}", a.closest)
    };
    // `disk < 0.1`: the lowest value is the closest.
    assert_eq!(*value, 0.2);
    assert!((T0 + 395 * S..T0 + 406 * S).contains(at_ms), "{at_ms}");
    assert_eq!(labels.get("host"), Some("a"));

    assert_eq!(alert(&r, "Typo").closest, Some(Approach::NoData));
}

#[test]
fn recording_rules_count_series_and_samples() {
    let (r, slots) = backtest();
    let RuleReport::Recording(rec) = &r.groups[0].rules[0] else {
        panic!()
    };
    assert_eq!(rec.record, "load:double");
    assert_eq!((rec.series, rec.samples), (1, slots.len()));
    assert_eq!(rec.errors, None);
}

#[test]
fn reports_render_as_text_and_json() {
    let (r, slots) = backtest();
    let now = T0 + 3_600 * S;
    let text = render_text(&r, now);
    let pending = slot_at(&slots, 100);
    let line = format!(
        "pending at {} ({}), firing at {} ({}, after 30s), resolved at",
        format_time(pending, true),
        format_ago(pending, now),
        format_time(pending + 30 * S, true),
        format_ago(pending + 30 * S, now),
    );
    assert!(text.contains(&line), "{line}\n{text}");
    assert!(text.contains("ALERT Fires (r.yml:"), "{text}");
    assert!(
        text.contains("fired 1 time, firing 1m10s in total"),
        "{text}"
    );
    assert!(
        text.contains("never fired; min value 0.2 vs threshold < 0.1 at 03:06:"),
        "{text}"
    );
    assert!(
        text.contains(
            "never fired; pending 1 time, longest 20s (for is 1m); max value 10 vs threshold > 5"
        ),
        "{text}"
    );
    assert!(text.contains("`lod` returned no data"), "{text}");
    assert!(text.contains("RECORD load:double (r.yml:"), "{text}");
    assert!(
        text.contains(
            "Summary: 2 of 5 alerting rules would have fired: Fires (1×, 1m10s), AtOnce (1×, 20s)."
        ),
        "{text}"
    );

    let v: serde_json::Value = serde_json::from_str(&render_json(&r)).unwrap();
    let rules = &v["groups"][0]["rules"];
    assert_eq!(rules[0]["type"], "recording");
    assert_eq!(rules[1]["name"], "Fires");
    assert_eq!(rules[1]["times_fired"], 1);
    assert_eq!(rules[1]["firing_seconds"], 70.0);
    assert_eq!(rules[1]["alerts"][0]["labels"]["host"], "a");
    assert_eq!(rules[1]["alerts"][0]["episodes"][0]["outcome"], "resolved");
    assert_eq!(rules[3]["closest"]["value"], 0.2);
    assert_eq!(rules[4]["closest"]["no_data"], true);
}

#[test]
fn comparisons_are_recognised_either_way_round() {
    let c = |q: &str| simple_comparison(&crate::promql::parse(q).unwrap()).map(|(_, c)| c);
    let got = c("0.8 < (x)").unwrap();
    assert_eq!(
        (got.lhs.as_str(), got.op.as_str(), got.threshold),
        ("x", ">", 0.8)
    );
    assert_eq!(c("(x <= -1)").unwrap().threshold, -1.0);
    assert!(c("x > bool 1").is_none());
    assert!(c("x == 1").is_none());
    assert!(c("x > y").is_none());
    assert!(c("x > 1 and y").is_none());
}

#[test]
fn an_empty_range_is_an_error() {
    let set = RuleSet::default();
    let opts = Options {
        from_ms: 10,
        to_ms: 0,
        default_interval_ms: 5000,
        ctx: EvalContext::default(),
    };
    let engine = Engine::new(EngineOptions::default());
    let store = Store::new(StoreConfig::default());
    assert!(matches!(
        run(&store, &engine, &set, &opts),
        Err(BacktestError::EmptyRange { .. })
    ));
}
