//! Benchmark of one rule evaluation cycle: 1 000 alerting rules over 10 000
//! series with an hour of 1 s data, on one core.
//!
//! Each of 1 000 metrics has 10 instances, and one alerting rule covers each
//! metric, so that every series is read by exactly one rule, as in a fleet
//! where each alert watches its own metric:
//! * even metrics are gauges, with `gauge_k > 80` and `for: 1m`;
//! * odd metrics are counters, with `rate(counter_k_total[5m]) > 50`.
//!
//! One rule in ten has a threshold its series cross, so 1 000 alerts are
//! active and the cycle includes templating their annotations and writing
//! `ALERTS` and `ALERTS_FOR_STATE`. The rules are in 100 groups of 10, as
//! rule files parsed by the agent's own loader.
//!
//! The target is ≤ 20 ms per cycle on one core. As in the running agent,
//! every cycle first appends a scrape (one sample to every series, not
//! timed), then evaluates all groups at that time. The time reported is the
//! thread's CPU time, not wall time, so that other work on the machine does
//! not count (it still costs through shared caches).

mod common;

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use common::{cpu_now, Rng};
use criterion::Criterion;
use hourglass::model::Labels;
use hourglass::promql::{Engine, EngineOptions};
use hourglass::rules::{eval_group, parse_rule_file, EvalContext, Group, GroupState};
use hourglass::store::{SeriesRef, Store, StoreConfig};

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

/// One series and how its next sample is made: gauges wander around 50
/// (those of every tenth metric around 95, so their alerts fire); counters
/// grow by 1–40 per second (every tenth by ~100, over its threshold of
/// 50/s).
struct Feed {
    r: SeriesRef,
    gauge: bool,
    hot: bool,
    rate: f64,
    v: f64,
}

impl Feed {
    fn next(&mut self, rng: &mut Rng) -> f64 {
        if self.gauge {
            let target = if self.hot { 95.0 } else { 50.0 };
            let v = (self.v + (target - self.v) * 0.1 + (rng.unit() - 0.5) * 4.0).clamp(0.0, 100.0);
            // Gauges are reported with one decimal, like most.
            self.v = (v * 10.0).round() / 10.0;
        } else {
            self.v += (self.rate * (0.5 + rng.unit())).round();
        }
        self.v
    }
}

/// The store with an hour of data up to `T0 + (SAMPLES - 1) s`, and the
/// feeds that continue it a scrape at a time.
fn build_store(rng: &mut Rng) -> (Store, Vec<Feed>) {
    let store = Store::new(StoreConfig {
        retention_ms: 2 * 3_600_000,
        max_series: 100_000,
    });
    let mut feeds = Vec::with_capacity(METRICS * INSTANCES);
    for k in 0..METRICS {
        let hot = k % 20 < 2;
        for inst in 0..INSTANCES {
            let labels = Labels::from_pairs(&[
                ("__name__", name(k).as_str()),
                ("job", "app"),
                ("instance", &format!("10.0.0.{inst}:8080")),
            ]);
            let mut f = Feed {
                r: store.get_or_create(&labels).expect("series"),
                gauge: k % 2 == 0,
                hot,
                rate: if hot { 100.0 } else { 1.0 + rng.unit() * 40.0 },
                v: if k % 2 == 0 { 50.0 } else { 0.0 },
            };
            for i in 0..SAMPLES {
                let v = f.next(rng);
                store.append(f.r, T0 + i * STEP_MS, v).expect("append");
            }
            feeds.push(f);
        }
    }
    (store, feeds)
}

/// 100 rule files' worth of groups, 10 alerting rules each.
fn build_groups() -> Vec<Group> {
    let mut groups = Vec::new();
    for g in 0..METRICS / 10 {
        let mut y = String::from("groups:\n");
        let _ = writeln!(y, "  - name: group-{g}\n    rules:");
        for k in g * 10..g * 10 + 10 {
            let expr = if k % 2 == 0 {
                format!("{} > 80", name(k))
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
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (store, mut feeds) = build_store(&mut rng);
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
    // As in the running agent: every second a scrape appends a sample to
    // every series, then the rules are evaluated at that time. Only the
    // evaluation is timed.
    let mut now = END;
    let mut cycle = |states: &mut Vec<GroupState>| -> Duration {
        now += STEP_MS;
        for f in feeds.iter_mut() {
            let v = f.next(&mut rng);
            store.append(f.r, now, v).expect("append");
        }
        let start = cpu_now();
        let mut events = 0;
        for (g, st) in groups.iter().zip(states.iter_mut()) {
            let res = eval_group(g, st, &engine, &store, now, &ctx);
            assert!(res.rule_errors.is_empty(), "{:?}", res.rule_errors);
            events += res.events.len();
        }
        black_box(events);
        cpu_now().saturating_sub(start)
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
        b.iter_custom(|iters| (0..iters).map(|_| cycle(&mut states)).sum())
    });
    c.final_summary();

    // A plain figure too: the distribution of 100 cycles (CPU time).
    let mut times: Vec<Duration> = (0..100).map(|_| cycle(&mut states)).collect();
    times.sort();
    eprintln!(
        "100 cycles: min {:.2?}, median {:.2?}, p90 {:.2?}, max {:.2?}",
        times[0], times[50], times[90], times[99]
    );
}
