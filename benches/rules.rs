//! Benchmark of one rule evaluation cycle: 1 000 alerting rules over 10 000
//! series with an hour of 1 s data, on one core.
//!
//! Each of 1 000 metrics has 10 instances, and one alerting rule covers each
//! metric, so that every series is read by exactly one rule, as in a fleet
//! where each alert watches its own metric:
//! * even metrics are gauges, with `gauge_k > 90` and `for: 1m`;
//! * odd metrics are counters, with `rate(counter_k_total[5m]) > 50`.
//!
//! One rule in ten has a threshold its series cross, so 1 000 alerts are
//! active and the cycle includes templating their annotations and writing
//! `ALERTS` and `ALERTS_FOR_STATE`. The rules are in 100 groups of 10, as
//! rule files parsed by the agent's own loader.
//!
//! The target is ≤ 20 ms per cycle. Every cycle evaluates all groups at a
//! time one second after the previous cycle, as the running agent would.

mod common;

use std::cell::Cell;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use common::Rng;
use criterion::Criterion;
use hourglass::model::Labels;
use hourglass::promql::{Engine, EngineOptions};
use hourglass::rules::{eval_group, parse_rule_file, EvalContext, Group, GroupState};
use hourglass::store::{Store, StoreConfig};

const METRICS: usize = 1_000;
const INSTANCES: usize = 10;
const SAMPLES: i64 = 3_600;
const STEP_MS: i64 = 1_000;
const T0: i64 = 1_700_000_000_000;
const END: i64 = T0 + (SAMPLES - 1) * STEP_MS;

fn name(k: usize) -> String {
    if k % 2 == 0 {
        format!("gauge_{k}")
    } else {
        format!("counter_{k}_total")
    }
}

/// Gauges wander around 50 (those of every tenth metric around 95, so their
/// alerts fire); counters grow by 1–100 per second (every tenth by ~100,
/// over its threshold of 50/s).
fn build_store() -> Store {
    let store = Store::new(StoreConfig {
        retention_ms: 2 * 3_600_000,
        max_series: 100_000,
    });
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for k in 0..METRICS {
        let hot = k % 20 < 2;
        for inst in 0..INSTANCES {
            let labels = Labels::from_pairs(&[
                ("__name__", name(k).as_str()),
                ("job", "app"),
                ("instance", &format!("10.0.0.{inst}:8080")),
            ]);
            let r = store.get_or_create(&labels).expect("series");
            let mut v: f64 = if k % 2 == 0 { 50.0 } else { 0.0 };
            let rate = if hot { 100.0 } else { 1.0 + rng.unit() * 40.0 };
            for i in 0..SAMPLES {
                if k % 2 == 0 {
                    let target = if hot { 95.0 } else { 50.0 };
                    v = (v + (target - v) * 0.1 + (rng.unit() - 0.5) * 4.0).clamp(0.0, 100.0);
                    // Gauges are reported with one decimal, like most.
                    v = (v * 10.0).round() / 10.0;
                } else {
                    v += (rate * (0.5 + rng.unit())).round();
                }
                store.append(r, T0 + i * STEP_MS, v).expect("append");
            }
        }
    }
    store
}

/// 100 rule files' worth of groups, 10 alerting rules each.
fn build_groups() -> Vec<Group> {
    let mut groups = Vec::new();
    for g in 0..METRICS / 10 {
        let mut y = String::from("groups:\n");
        let _ = writeln!(y, "  - name: group-{g}\n    rules:");
        for k in g * 10..g * 10 + 10 {
            let expr = if k % 2 == 0 {
                format!("{} > 90", name(k))
            } else {
                format!("rate({}[5m]) > 50", name(k))
            };
            let _ = write!(
                y,
                "      - alert: Alert{k}\n        expr: {expr}\n        for: 1m\n        labels: {{severity: warning}}\n        annotations:\n          summary: \"{{{{ $labels.instance }}}} is at {{{{ $value | humanize }}}}\"\n"
            );
        }
        match parse_rule_file(&y, &format!("bench-{g}.yml")) {
            Ok(mut gs) => groups.append(&mut gs),
            Err(e) => panic!("bench rule file: {e:?}"),
        }
    }
    groups
}

fn main() {
    let t = Instant::now();
    let store = build_store();
    let groups = build_groups();
    let rules: usize = groups.iter().map(|g| g.rules.len()).sum();
    eprintln!(
        "built store: {} series x {SAMPLES} samples, {rules} rules in {} groups, in {:.1?}",
        METRICS * INSTANCES,
        groups.len(),
        t.elapsed()
    );
    let engine = Engine::new(EngineOptions::default());
    let ctx = EvalContext::default();
    let mut states: Vec<GroupState> = groups.iter().map(GroupState::new).collect();
    // Evaluation times advance a second per cycle, from 50 minutes before
    // the end of the data (criterion runs a few thousand at most).
    let now = Cell::new(END - 3_000_000);
    let cycle = |states: &mut Vec<GroupState>| {
        let t = now.get();
        now.set(t + 1_000);
        let mut events = 0;
        for (g, st) in groups.iter().zip(states.iter_mut()) {
            let res = eval_group(g, st, &engine, &store, t, &ctx);
            assert!(res.rule_errors.is_empty(), "{:?}", res.rule_errors);
            events += res.events.len();
        }
        events
    };

    // Two minutes of cycles, so that the `for: 1m` alerts are firing.
    for _ in 0..120 {
        cycle(&mut states);
    }
    let firing: usize = states
        .iter()
        .flat_map(|s| &s.rules)
        .map(|r| r.alerts.active_alerts().len())
        .sum();
    eprintln!("active alerts after warm-up: {firing}");
    assert_eq!(firing, 1_000, "one rule in ten fires for its 10 series");

    let mut c = Criterion::default().configure_from_args().sample_size(20);
    c.bench_function("rule cycle: 1000 alerting rules over 10k series", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(cycle(&mut states));
            }
            start.elapsed()
        })
    });
    c.final_summary();

    // A plain figure too: the distribution of 100 cycles.
    let mut times: Vec<Duration> = (0..100)
        .map(|_| {
            let s = Instant::now();
            black_box(cycle(&mut states));
            s.elapsed()
        })
        .collect();
    times.sort();
    eprintln!(
        "100 cycles: min {:.2?}, median {:.2?}, p90 {:.2?}, max {:.2?}",
        times[0], times[50], times[90], times[99]
    );
}
