//! Benchmarks of the PromQL evaluator on a realistic store: 10 000 counter
//! series (10 jobs × 1 000 instances) scraped every second for an hour.
//!
//! The target is `sum by (job) (rate(x[5m]))` as an instant query in at most
//! 20 ms on one core; the query benchmarks report the thread's CPU time. The store's `select` of the same samples is measured on its own
//! too, to tell the evaluator's share from the store's.

mod common;

use std::hint::black_box;
use std::time::Instant;

use common::{cpu_time, Rng};
use criterion::Criterion;
use hourglass::model::{Labels, MatchOp, Matcher};
use hourglass::promql::{parse, Engine, EngineOptions, Value};
use hourglass::store::{Store, StoreConfig};

const JOBS: usize = 10;
const INSTANCES: usize = 1_000;
const SAMPLES: i64 = 3_600;
const STEP_MS: i64 = 1_000;
/// An arbitrary recent start, so that timestamps look like real ones.
const T0: i64 = 1_700_000_000_000;
const END: i64 = T0 + (SAMPLES - 1) * STEP_MS;

/// Counters with per-series rates of 1–100/s, jitter, and a rare restart
/// (counter reset), like `http_requests_total` of a fleet.
fn build_store() -> Store {
    let store = Store::new(StoreConfig {
        retention_ms: 2 * 3_600_000,
        max_series: 100_000,
    });
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for job in 0..JOBS {
        for inst in 0..INSTANCES {
            let labels = Labels::from_pairs(&[
                ("__name__", "http_requests_total"),
                ("job", &format!("job-{job}")),
                (
                    "instance",
                    &format!("10.0.{}.{}:9100", inst / 250, inst % 250),
                ),
            ]);
            let r = store.get_or_create(&labels).unwrap();
            let rate = 1.0 + rng.unit() * 99.0;
            let mut v = (rng.unit() * 1e6).floor();
            let reset_at = if rng.unit() < 0.01 {
                (rng.next() % SAMPLES as u64) as i64
            } else {
                -1
            };
            for i in 0..SAMPLES {
                if i == reset_at {
                    v = 0.0;
                }
                v += (rate * (0.5 + rng.unit())).round();
                store.append(r, T0 + i * STEP_MS, v).unwrap();
            }
        }
    }
    store
}

fn series_count(v: &Value) -> usize {
    match v {
        Value::Vector(v) => v.len(),
        Value::Matrix(m) => m.len(),
        _ => 0,
    }
}

fn main() {
    let t = Instant::now();
    let store = build_store();
    eprintln!(
        "built store: {} series x {} samples in {:.1?}",
        JOBS * INSTANCES,
        SAMPLES,
        t.elapsed()
    );
    let engine = Engine::new(EngineOptions::default());
    let query = parse("sum by (job) (rate(http_requests_total[5m]))").unwrap();
    let matchers = [Matcher::new(
        MatchOp::Equal,
        "__name__",
        "http_requests_total",
    )];
    let range_start = END - 3_600_000;

    // Sanity: ten jobs in both query kinds.
    let inst = engine.instant_query(&store, &query, END).unwrap();
    assert_eq!(series_count(&inst), JOBS);
    let range = engine
        .range_query(&store, &query, range_start, END, 60_000)
        .unwrap();
    assert_eq!(series_count(&range), JOBS);

    let mut c = Criterion::default().configure_from_args().sample_size(20);
    // The query benchmarks report thread CPU time (see common::cpu_now).
    c.bench_function("instant sum by (job) (rate(x[5m])) 10k series", |b| {
        b.iter_custom(|n| cpu_time(n, || engine.instant_query(&store, &query, END).unwrap()))
    });
    c.bench_function("store select of the instant query (5m window)", |b| {
        b.iter(|| black_box(store.select(&matchers, END - 300_000 + 1, END)))
    });
    let mut reused = Default::default();
    c.bench_function("store select_into, buffers reused (5m window)", |b| {
        b.iter(|| {
            store.select_into(&matchers, END - 300_000 + 1, END, &mut reused);
            black_box(&reused);
        })
    });
    c.bench_function("store select_each of the instant query (5m window)", |b| {
        b.iter(|| {
            let mut n = 0;
            store.select_each(&matchers, END - 300_000 + 1, END, |_, ts, _| n += ts.len());
            black_box(n)
        })
    });
    // An instant selector reads only the newest sample of each series.
    let threshold = parse("http_requests_total > 1e15").unwrap();
    c.bench_function("instant http_requests_total > 1e15 10k series", |b| {
        b.iter_custom(|n| cpu_time(n, || engine.instant_query(&store, &threshold, END).unwrap()))
    });
    let mut c = c.sample_size(10);
    c.bench_function(
        "range 1h step 60s sum by (job) (rate(x[5m])) 10k series",
        |b| {
            b.iter_custom(|n| {
                cpu_time(n, || {
                    engine
                        .range_query(&store, &query, range_start, END, 60_000)
                        .unwrap()
                })
            })
        },
    );
    c.bench_function("store select of the range query (65m window)", |b| {
        b.iter(|| black_box(store.select(&matchers, range_start - 300_000 + 1, END)))
    });
    c.final_summary();
}
