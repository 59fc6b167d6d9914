//! Tests of the scrape loop, driven by a scripted source under paused tokio
//! time with a clock that follows it.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;

use super::*;
use crate::model::{is_stale_nan, MatchOp, Matcher};
use crate::store::StoreConfig;

const BASE_MS: i64 = 1_700_000_000_000;
const INTERVAL: Duration = Duration::from_secs(10);

/// A sample as the scripted source emits it: name, labels, value.
type Emitted = (&'static str, &'static [(&'static str, &'static str)], f64);
/// A series as read back: its labels, then (timestamp, value or None when stale).
type ReadBack = (String, Vec<(i64, Option<f64>)>);

/// What the scripted source does on its next scrapes.
#[derive(Clone)]
enum Mode {
    Emit(Vec<Emitted>),
    /// Emits, but takes this long.
    Slow(Duration),
    Fail,
    /// Writes `x_up 0` and fails with `SourceError::Down`.
    Down,
    Hang,
}

struct Scripted(Arc<Mutex<Mode>>);

impl Source for Scripted {
    fn scrape<'a>(
        &'a mut self,
        _ctx: ScrapeCtx,
        out: &'a mut SampleBuf,
    ) -> super::super::BoxFuture<'a, Result<(), SourceError>> {
        let mode = self.0.lock().clone();
        Box::pin(async move {
            match mode {
                Mode::Emit(samples) => {
                    for (name, labels, v) in samples {
                        out.push(name, labels, v);
                    }
                    Ok(())
                }
                Mode::Slow(d) => {
                    tokio::time::sleep(d).await;
                    out.push("slow", &[], 1.0);
                    Ok(())
                }
                Mode::Fail => Err(SourceError::other("connection refused")),
                Mode::Down => {
                    out.push("x_up", &[], 0.0);
                    Err(SourceError::Down("connection refused".into()))
                }
                Mode::Hang => {
                    std::future::pending::<()>().await;
                    Ok(())
                }
            }
        })
    }
}

struct Harness {
    store: Arc<Store>,
    mode: Arc<Mutex<Mode>>,
    stats: Arc<ScrapeStats>,
    task: JoinHandle<()>,
    shutdown: watch::Sender<bool>,
}

fn start(mode: Mode, store_cfg: StoreConfig) -> Harness {
    let store = Arc::new(Store::new(store_cfg));
    let mode = Arc::new(Mutex::new(mode));
    let start = Instant::now();
    let clock: Clock = Arc::new(move || BASE_MS + start.elapsed().as_millis() as i64);
    let cfg =
        ScrapeConfig::new("fake", "here:1", INTERVAL, Duration::from_secs(5)).with_clock(clock);
    let (shutdown, rx) = watch::channel(false);
    let (task, stats) = spawn_scrape_loop(Scripted(mode.clone()), store.clone(), cfg, rx);
    Harness {
        store,
        mode,
        stats,
        task,
        shutdown,
    }
}

impl Harness {
    fn set(&self, mode: Mode) {
        *self.mode.lock() = mode;
    }

    /// Lets paused time run until `n` scrapes have completed in total.
    async fn scrapes(&self, n: u64) {
        while self.stats.snapshot().scrapes_total < n {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// (timestamp, value) of every sample of the series named `name`
    /// (stale markers shown as `None`), per series with its labels.
    fn series(&self, name: &str) -> Vec<ReadBack> {
        let set = self.store.select(
            &[Matcher::new(MatchOp::Equal, METRIC_NAME, name)],
            i64::MIN,
            i64::MAX,
        );
        (0..set.series.len())
            .map(|i| {
                let pts = set
                    .timestamps(i)
                    .iter()
                    .zip(set.values(i))
                    .map(|(&t, &v)| (t, (!is_stale_nan(v)).then_some(v)))
                    .collect();
                (set.series[i].labels.to_string(), pts)
            })
            .collect()
    }

    fn values(&self, name: &str) -> Vec<Option<f64>> {
        let s = self.series(name);
        assert_eq!(s.len(), 1, "one series named {name}: {s:?}");
        s[0].1.iter().map(|p| p.1).collect()
    }

    fn times(&self, name: &str) -> Vec<i64> {
        self.series(name)[0].1.iter().map(|p| p.0).collect()
    }
}

fn emit(samples: Vec<Emitted>) -> Mode {
    Mode::Emit(samples)
}

#[tokio::test(start_paused = true)]
async fn success_appends_samples_with_target_labels_and_up() {
    let h = start(
        emit(vec![
            ("m", &[("a", "1")], 1.0),
            // The source's own instance wins over the target's.
            ("fed", &[("instance", "elsewhere")], 2.0),
        ]),
        StoreConfig::default(),
    );
    h.scrapes(2).await;

    assert_eq!(
        h.series("m")[0].0,
        r#"m{a="1", instance="here:1", job="fake"}"#
    );
    assert_eq!(
        h.series("fed")[0].0,
        r#"fed{instance="elsewhere", job="fake"}"#
    );
    assert_eq!(h.values("m"), vec![Some(1.0), Some(1.0)]);
    assert_eq!(h.series("up")[0].0, r#"up{instance="here:1", job="fake"}"#);
    assert_eq!(h.values("up"), vec![Some(1.0), Some(1.0)]);
    assert_eq!(
        h.values("scrape_samples_scraped"),
        vec![Some(2.0), Some(2.0)]
    );
    assert!(h
        .values("scrape_duration_seconds")
        .iter()
        .all(|v| v.is_some_and(|v| v >= 0.0)));

    // Scrapes fall one interval apart, on the same phase every time.
    let t = h.times("up");
    assert_eq!(t[1] - t[0], INTERVAL.as_millis() as i64);
    assert_eq!(h.times("m"), t);

    let st = h.stats.snapshot();
    assert_eq!((st.scrapes_total, st.scrape_failures_total), (2, 0));
    assert_eq!(
        (st.samples_appended_total, st.samples_refused_total),
        (4, 0)
    );
    assert_eq!(st.last_success, 1);
}

#[tokio::test(start_paused = true)]
async fn slow_scrapes_keep_the_schedule() {
    let h = start(Mode::Slow(Duration::from_secs(4)), StoreConfig::default());
    h.scrapes(3).await;
    let t = h.times("up");
    assert_eq!(t[1] - t[0], 10_000);
    assert_eq!(t[2] - t[1], 10_000);
    let d = h.values("scrape_duration_seconds");
    assert!(
        d.iter().all(|d| d.is_some_and(|d| (4.0..4.1).contains(&d))),
        "{d:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn failure_reports_down_and_marks_previous_series_stale() {
    let h = start(
        emit(vec![("m", &[], 1.0), ("n", &[], 2.0)]),
        StoreConfig::default(),
    );
    h.scrapes(1).await;
    h.set(Mode::Fail);
    h.scrapes(3).await;

    assert_eq!(h.values("up"), vec![Some(1.0), Some(0.0), Some(0.0)]);
    assert_eq!(
        h.values("scrape_samples_scraped"),
        vec![Some(2.0), Some(0.0), Some(0.0)]
    );
    // One marker, at the first failed scrape; nothing more while down.
    let up_t = h.times("up");
    assert_eq!(
        h.series("m")[0].1,
        vec![(up_t[0], Some(1.0)), (up_t[1], None)]
    );
    assert_eq!(
        h.series("n")[0].1,
        vec![(up_t[0], Some(2.0)), (up_t[1], None)]
    );

    let st = h.stats.snapshot();
    assert_eq!(
        (
            st.scrapes_total,
            st.scrape_failures_total,
            st.scrape_timeouts_total
        ),
        (3, 2, 0)
    );
    assert_eq!(st.last_success, 0);

    // Recovery: the series come back after their markers.
    h.set(emit(vec![("m", &[], 3.0)]));
    h.scrapes(4).await;
    assert_eq!(h.values("m"), vec![Some(1.0), None, Some(3.0)]);
    assert_eq!(h.stats.snapshot().last_success, 1);
}

#[tokio::test(start_paused = true)]
async fn vanished_series_gets_a_marker_at_the_next_scrape() {
    let h = start(
        emit(vec![("m", &[("k", "a")], 1.0), ("m", &[("k", "b")], 2.0)]),
        StoreConfig::default(),
    );
    h.scrapes(1).await;
    h.set(emit(vec![("m", &[("k", "a")], 1.0)]));
    h.scrapes(3).await;

    let up_t = h.times("up");
    let m = h.series("m");
    assert_eq!(
        m[0].1,
        vec![
            (up_t[0], Some(1.0)),
            (up_t[1], Some(1.0)),
            (up_t[2], Some(1.0))
        ]
    );
    // Exactly one marker: the cache entry went with it.
    assert_eq!(m[1].1, vec![(up_t[0], Some(2.0)), (up_t[1], None)]);

    // A series that returns is looked up again and continues.
    h.set(emit(vec![
        ("m", &[("k", "a")], 1.0),
        ("m", &[("k", "b")], 5.0),
    ]));
    h.scrapes(4).await;
    assert_eq!(
        h.series("m")[1].1.last(),
        Some(&(up_t[2] + 10_000, Some(5.0)))
    );
}

#[tokio::test(start_paused = true)]
async fn explicit_timestamps_are_kept_and_never_marked_stale() {
    struct WithTs;
    impl Source for WithTs {
        fn scrape<'a>(
            &'a mut self,
            ctx: ScrapeCtx,
            out: &'a mut SampleBuf,
        ) -> super::super::BoxFuture<'a, Result<(), SourceError>> {
            Box::pin(async move {
                if ctx.timestamp_ms < BASE_MS + 15_000 {
                    out.push_at("own", &[], 1.0, 42);
                }
                Ok(())
            })
        }
    }
    let store = Arc::new(Store::new(StoreConfig::default()));
    let start = Instant::now();
    let clock: Clock = Arc::new(move || BASE_MS + start.elapsed().as_millis() as i64);
    let cfg = ScrapeConfig::new("j", "i", INTERVAL, INTERVAL).with_clock(clock);
    let (_tx, rx) = watch::channel(false);
    let (_task, stats) = spawn_scrape_loop(WithTs, store.clone(), cfg, rx);
    while stats.snapshot().scrapes_total < 3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let set = store.select(
        &[Matcher::new(MatchOp::Equal, METRIC_NAME, "own")],
        i64::MIN,
        i64::MAX,
    );
    assert_eq!(set.timestamps(0), &[42]);
    assert_eq!(set.values(0), &[1.0]);
}

#[tokio::test(start_paused = true)]
async fn hanging_source_times_out_and_the_loop_carries_on() {
    let h = start(emit(vec![("m", &[], 1.0)]), StoreConfig::default());
    h.scrapes(1).await;
    h.set(Mode::Hang);
    h.scrapes(2).await;
    assert_eq!(h.values("up"), vec![Some(1.0), Some(0.0)]);
    assert_eq!(h.values("m"), vec![Some(1.0), None]);
    // Cut at the 5 s timeout.
    let d = h.values("scrape_duration_seconds");
    assert!(d[1].is_some_and(|d| (5.0..5.1).contains(&d)), "{d:?}");
    let st = h.stats.snapshot();
    assert_eq!((st.scrape_failures_total, st.scrape_timeouts_total), (1, 1));

    h.set(emit(vec![("m", &[], 2.0)]));
    h.scrapes(3).await;
    assert_eq!(h.values("up"), vec![Some(1.0), Some(0.0), Some(1.0)]);
    assert_eq!(h.values("m"), vec![Some(1.0), None, Some(2.0)]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_marks_everything_stale_and_ends_the_task() {
    let mut h = start(emit(vec![("m", &[], 1.0)]), StoreConfig::default());
    h.scrapes(2).await;
    h.shutdown.send(true).unwrap();
    let ended = tokio::time::timeout(Duration::from_millis(10), &mut h.task).await;
    assert!(ended.is_ok(), "task did not end promptly");
    for name in [
        "m",
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
    ] {
        let v = h.series(name)[0].1.clone();
        assert_eq!(v.len(), 3, "{name}: {v:?}");
        assert_eq!(v[2].1, None, "{name} ends with a stale marker");
        assert!(v[2].0 > v[1].0);
    }
}

#[tokio::test(start_paused = true)]
async fn shutdown_interrupts_a_hanging_scrape() {
    let mut h = start(emit(vec![("m", &[], 1.0)]), StoreConfig::default());
    h.scrapes(1).await;
    h.set(Mode::Hang);
    // Past the next tick, into the hanging scrape.
    tokio::time::sleep(INTERVAL).await;
    h.shutdown.send(true).unwrap();
    let ended = tokio::time::timeout(Duration::from_millis(10), &mut h.task).await;
    assert!(ended.is_ok(), "task did not end promptly");
    assert_eq!(h.values("m"), vec![Some(1.0), None]);
}

#[tokio::test(start_paused = true)]
async fn dropped_shutdown_sender_also_stops_the_loop() {
    let mut h = start(emit(vec![("m", &[], 1.0)]), StoreConfig::default());
    drop(h.shutdown);
    let ended = tokio::time::timeout(Duration::from_millis(10), &mut h.task).await;
    assert!(ended.is_ok());
}

#[tokio::test(start_paused = true)]
async fn refused_samples_are_counted_not_fatal() {
    // Room for the three report series and one more.
    let cfg = StoreConfig {
        max_series: 4,
        ..StoreConfig::default()
    };
    let h = start(
        emit(vec![
            ("m", &[("k", "a")], 1.0),
            ("m", &[("k", "b")], 1.0),
            // A duplicate within one scrape: out of order for the store.
            ("m", &[("k", "a")], 1.0),
        ]),
        cfg,
    );
    h.scrapes(2).await;
    let st = h.stats.snapshot();
    assert_eq!(
        (st.samples_appended_total, st.samples_refused_total),
        (2, 4)
    );
    assert_eq!(h.values("up"), vec![Some(1.0), Some(1.0)]);
    assert_eq!(h.store.stats().series, 4);
}

/// `cargo test --release --lib sources::scrape -- --ignored --nocapture`
/// prints the loop's own cost per sample in the steady state (cache hits),
/// next to the store's append.
#[test]
#[ignore]
fn print_commit_cost() {
    let store = Arc::new(Store::new(StoreConfig::default()));
    let mut lp = ScrapeLoop::new(
        Scripted(Arc::new(Mutex::new(Mode::Fail))),
        store.clone(),
        ScrapeConfig::new("j", "i", INTERVAL, INTERVAL),
    );
    let cpus: Vec<String> = (0..64).map(|i| i.to_string()).collect();
    for cpu in &cpus {
        for mode in [
            "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
        ] {
            lp.buf.push(
                "node_cpu_seconds_total",
                &[("cpu", cpu), ("mode", mode)],
                1.0,
            );
        }
    }
    let n = lp.buf.len();
    lp.commit(BASE_MS);
    let rounds = 2000;
    let t0 = std::time::Instant::now();
    for i in 1..=rounds {
        let (appended, _) = lp.commit(BASE_MS + i * 1000);
        assert_eq!(appended as usize, n);
    }
    let per_sample = t0.elapsed() / (rounds as u32 * n as u32);
    let refs: Vec<SeriesRef> = lp.cache.values().map(|e| e.r).collect();
    let t0 = std::time::Instant::now();
    for i in 1..=rounds {
        for r in &refs {
            store
                .append(*r, BASE_MS + (rounds + i) * 1000, 1.0)
                .unwrap();
        }
    }
    let append_only = t0.elapsed() / (rounds as u32 * n as u32);
    println!("commit: {per_sample:?}/sample, of which store.append alone {append_only:?}");
}

#[tokio::test(start_paused = true)]
async fn down_keeps_the_sources_verdict_and_fails_the_scrape() {
    let h = start(
        emit(vec![("m", &[], 1.0), ("x_up", &[], 1.0)]),
        StoreConfig::default(),
    );
    h.scrapes(1).await;
    h.set(Mode::Down);
    h.scrapes(2).await;
    h.set(emit(vec![("m", &[], 1.0), ("x_up", &[], 1.0)]));
    h.scrapes(3).await;

    assert_eq!(h.values("x_up"), vec![Some(1.0), Some(0.0), Some(1.0)]);
    assert_eq!(h.values("m"), vec![Some(1.0), None, Some(1.0)]);
    assert_eq!(h.values("up"), vec![Some(1.0), Some(0.0), Some(1.0)]);
    let snap = h.stats.snapshot();
    assert_eq!(snap.scrape_failures_total, 1);
    let _ = h.shutdown.send(true);
    let _ = h.task.await;
}
