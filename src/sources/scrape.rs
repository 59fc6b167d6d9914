//! The scrape loop every source runs in.
//!
//! One task per target: on each tick it asks the source for a scrape (cut at
//! the timeout), appends the samples with the target's `job`/`instance`
//! labels, appends `up`, `scrape_duration_seconds` and
//! `scrape_samples_scraped`, and marks stale the series that disappeared.
//! The loop is the I/O side, so it reads the wall clock (through an
//! injectable [`Clock`]); the store never does.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::model::{stale_nan, Labels, LabelsBuilder, METRIC_NAME};
use crate::store::{AppendError, SeriesRef, Store};

use super::{SampleBuf, SampleRef, ScrapeCtx, Source, SourceError};

/// Milliseconds since the Unix epoch. Injectable so tests under paused tokio
/// time get timestamps that move with the paused clock.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    })
}

/// How and as what one target is scraped.
#[derive(Clone)]
pub struct ScrapeConfig {
    pub job: String,
    pub instance: String,
    pub interval: Duration,
    /// Capped at `interval`, as in Prometheus: a scrape never overlaps the next.
    pub timeout: Duration,
    pub clock: Clock,
}

impl ScrapeConfig {
    pub fn new(
        job: impl Into<String>,
        instance: impl Into<String>,
        interval: Duration,
        timeout: Duration,
    ) -> ScrapeConfig {
        ScrapeConfig {
            job: job.into(),
            instance: instance.into(),
            interval,
            timeout,
            clock: system_clock(),
        }
    }

    pub fn with_clock(mut self, clock: Clock) -> ScrapeConfig {
        self.clock = clock;
        self
    }
}

impl fmt::Debug for ScrapeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScrapeConfig")
            .field("job", &self.job)
            .field("instance", &self.instance)
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Counters of one target, for the agent's own /metrics. Counters only grow.
/// `samples_appended + samples_refused` is the total of samples scraped by
/// successful scrapes; `up`, `scrape_*` and staleness markers are not counted.
#[derive(Debug, Default)]
pub struct ScrapeStats {
    pub job: String,
    pub instance: String,
    scrapes: AtomicU64,
    failures: AtomicU64,
    timeouts: AtomicU64,
    appended: AtomicU64,
    refused: AtomicU64,
    last_duration_bits: AtomicU64,
    last_success: AtomicU64,
}

/// A copy of [`ScrapeStats`] at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScrapeStatsSnapshot {
    pub scrapes_total: u64,
    /// Includes timeouts.
    pub scrape_failures_total: u64,
    pub scrape_timeouts_total: u64,
    pub samples_appended_total: u64,
    /// Refused by the store: series limit, out of order, duplicates.
    pub samples_refused_total: u64,
    pub last_duration_seconds: f64,
    /// 1 when the last scrape succeeded, else 0.
    pub last_success: u64,
}

impl ScrapeStats {
    pub fn new(job: impl Into<String>, instance: impl Into<String>) -> ScrapeStats {
        ScrapeStats {
            job: job.into(),
            instance: instance.into(),
            ..ScrapeStats::default()
        }
    }

    pub fn snapshot(&self) -> ScrapeStatsSnapshot {
        ScrapeStatsSnapshot {
            scrapes_total: self.scrapes.load(Ordering::Relaxed),
            scrape_failures_total: self.failures.load(Ordering::Relaxed),
            scrape_timeouts_total: self.timeouts.load(Ordering::Relaxed),
            samples_appended_total: self.appended.load(Ordering::Relaxed),
            samples_refused_total: self.refused.load(Ordering::Relaxed),
            last_duration_seconds: f64::from_bits(self.last_duration_bits.load(Ordering::Relaxed)),
            last_success: self.last_success.load(Ordering::Relaxed),
        }
    }
}

/// Starts the scrape loop of one target on the current tokio runtime.
///
/// Ticks fall on multiples of `interval` shifted by an offset hashed from
/// `job`/`instance` (Prometheus's scheme: stable across restarts, spreads
/// targets over the interval); a tick missed because a scrape ran long is
/// skipped, not caught up in a burst. Each sample gets the target's `job`
/// and `instance` labels unless it already has its own, which win (like
/// Prometheus's `honor_labels: true`: a source such as a federation endpoint
/// knows better). The task ends soon after `shutdown` turns true or its
/// sender is dropped, after marking the target's series stale.
pub fn spawn_scrape_loop<S: Source + 'static>(
    source: S,
    store: Arc<Store>,
    cfg: ScrapeConfig,
    shutdown: watch::Receiver<bool>,
) -> (JoinHandle<()>, Arc<ScrapeStats>) {
    let lp = ScrapeLoop::new(source, store, cfg);
    let stats = lp.stats.clone();
    (tokio::spawn(lp.run(shutdown)), stats)
}

const UP: usize = 0;
const DURATION: usize = 1;
const SCRAPED: usize = 2;

/// Repeated failures with the same error are logged at warn level again
/// after this long, so a target that stays down is neither silent nor
/// flooding the log once per interval.
const WARN_EVERY: Duration = Duration::from_secs(300);

struct ScrapeLoop<S> {
    source: S,
    store: Arc<Store>,
    stats: Arc<ScrapeStats>,
    cfg: ScrapeConfig,
    buf: SampleBuf,
    /// Series of the previous scrape, keyed by the source's raw sample key.
    cache: HashMap<Box<[u8]>, CacheEntry>,
    /// Incremented per successful scrape; entries not stamped with the
    /// current one were absent from it.
    generation: u64,
    report: [Report; 3],
    /// The last timestamp used, so end-of-run markers land after it.
    last_t: i64,
    failures_in_a_row: u64,
    last_warn: Option<(Instant, String)>,
}

struct CacheEntry {
    r: SeriesRef,
    generation: u64,
    /// Series with their own timestamps get no staleness markers.
    explicit_ts: bool,
}

struct Report {
    labels: Labels,
    r: Option<SeriesRef>,
}

enum Outcome {
    Ok,
    Failed(SourceError),
    /// `SourceError::Down`: failed, but the source's samples are kept.
    Down(Box<dyn std::error::Error + Send + Sync>),
    TimedOut,
    Shutdown,
}

impl<S: Source> ScrapeLoop<S> {
    fn new(source: S, store: Arc<Store>, cfg: ScrapeConfig) -> ScrapeLoop<S> {
        let report =
            ["up", "scrape_duration_seconds", "scrape_samples_scraped"].map(|name| Report {
                labels: Labels::from_pairs(&[
                    (METRIC_NAME, name),
                    ("job", cfg.job.as_str()),
                    ("instance", cfg.instance.as_str()),
                ]),
                r: None,
            });
        ScrapeLoop {
            source,
            store,
            stats: Arc::new(ScrapeStats::new(&cfg.job, &cfg.instance)),
            cfg,
            buf: SampleBuf::new(),
            cache: HashMap::new(),
            generation: 0,
            report,
            last_t: i64::MIN,
            failures_in_a_row: 0,
            last_warn: None,
        }
    }

    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let interval = self.cfg.interval.max(Duration::from_millis(1));
        let mut ticker = tokio::time::interval_at(self.first_tick(interval), interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        // Report series first, so that when the store is full a target
        // still says whether it is up.
        for report in &mut self.report {
            report.r = self.store.get_or_create(&report.labels).ok();
        }
        loop {
            tokio::select! {
                biased;
                _ = shutdown_requested(&mut shutdown) => break,
                _ = ticker.tick() => {}
            }
            if !self.scrape_once(interval, &mut shutdown).await {
                break;
            }
        }
        self.end_of_run();
    }

    /// The first tick: the next instant when `now ≡ offset (mod interval)`.
    fn first_tick(&self, interval: Duration) -> Instant {
        let every = interval.as_millis().clamp(1, i64::MAX as u128) as i64;
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(self.cfg.job.as_bytes());
        h.update(&[0xff]);
        h.update(self.cfg.instance.as_bytes());
        let offset = (h.digest() % every as u64) as i64;
        let delay = (offset - (self.cfg.clock)()).rem_euclid(every);
        Instant::now() + Duration::from_millis(delay as u64)
    }

    /// One scrape; false when shutdown interrupted it.
    async fn scrape_once(
        &mut self,
        interval: Duration,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let t = (self.cfg.clock)();
        self.last_t = self.last_t.max(t);
        let timeout = self.cfg.timeout.min(interval);
        let ctx = ScrapeCtx {
            timestamp_ms: t,
            timeout,
        };
        let started = Instant::now();
        self.buf.clear();
        let outcome = {
            let scrape = tokio::time::timeout(timeout, self.source.scrape(ctx, &mut self.buf));
            tokio::select! {
                biased;
                _ = shutdown_requested(shutdown) => Outcome::Shutdown,
                r = scrape => match r {
                    Ok(Ok(())) => Outcome::Ok,
                    Ok(Err(SourceError::Down(e))) => Outcome::Down(e),
                    Ok(Err(e)) => Outcome::Failed(e),
                    Err(_) => Outcome::TimedOut,
                },
            }
        };
        let duration = started.elapsed().as_secs_f64();
        let scraped = match outcome {
            Outcome::Shutdown => return false,
            Outcome::Ok => {
                let (appended, refused) = self.commit(t);
                let stats = &self.stats;
                stats.appended.fetch_add(appended, Ordering::Relaxed);
                stats.refused.fetch_add(refused, Ordering::Relaxed);
                if self.failures_in_a_row > 0 {
                    tracing::info!(job = %self.cfg.job, instance = %self.cfg.instance,
                        failures = self.failures_in_a_row, "scrape recovered");
                }
                self.failures_in_a_row = 0;
                self.last_warn = None;
                Some(self.buf.len())
            }
            Outcome::Failed(e) => {
                self.failed(t, &e.to_string());
                None
            }
            Outcome::Down(e) => {
                // The source's own verdict on its target (`redis_up 0`) is
                // stored, as an exporter would serve it; whatever else the
                // previous scrape had goes stale. Not counted in the stats'
                // appended samples, which are those of successful scrapes.
                let _ = self.commit(t);
                self.note_failure(&e.to_string());
                None
            }
            Outcome::TimedOut => {
                self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                self.failed(t, &format!("timed out after {timeout:?}"));
                None
            }
        };
        let up = scraped.is_some();
        self.append_report(UP, t, if up { 1.0 } else { 0.0 });
        self.append_report(DURATION, t, duration);
        self.append_report(SCRAPED, t, scraped.unwrap_or(0) as f64);
        let stats = &self.stats;
        stats.scrapes.fetch_add(1, Ordering::Relaxed);
        stats
            .last_duration_bits
            .store(duration.to_bits(), Ordering::Relaxed);
        stats.last_success.store(u64::from(up), Ordering::Relaxed);
        true
    }

    /// Appends a successful scrape's samples and marks stale the series of
    /// the previous scrape that are missing from it. Returns (appended,
    /// refused). In the steady state this does one hash lookup per sample
    /// and allocates nothing.
    fn commit(&mut self, t: i64) -> (u64, u64) {
        self.generation += 1;
        let generation = self.generation;
        let (mut appended, mut refused) = (0u64, 0u64);
        for s in self.buf.iter() {
            let cached = match self.cache.get_mut(s.key()) {
                Some(e) => {
                    e.generation = generation;
                    Some(e.r)
                }
                None => None,
            };
            let r = match cached {
                Some(r) => r,
                None => match self.store.get_or_create(&target_labels(&s, &self.cfg)) {
                    Ok(r) => {
                        let entry = CacheEntry {
                            r,
                            generation,
                            explicit_ts: s.t.is_some(),
                        };
                        self.cache.insert(s.key().into(), entry);
                        r
                    }
                    Err(_) => {
                        refused += 1;
                        continue;
                    }
                },
            };
            let ts = s.t.unwrap_or(t);
            let res = match self.store.append(r, ts, s.value) {
                // The store dropped the series (retention pruned it while its
                // samples were all old): look it up afresh, once.
                Err(AppendError::UnknownSeries) => self
                    .store
                    .get_or_create(&target_labels(&s, &self.cfg))
                    .and_then(|r| {
                        if let Some(e) = self.cache.get_mut(s.key()) {
                            e.r = r;
                        }
                        self.store.append(r, ts, s.value)
                    }),
                res => res,
            };
            match res {
                Ok(()) => appended += 1,
                Err(_) => refused += 1,
            }
        }
        let store = &self.store;
        self.cache.retain(|_, e| {
            if e.generation == generation {
                return true;
            }
            if !e.explicit_ts {
                // Refused only if the clock went backwards; nothing to do then.
                let _ = store.append(e.r, t, stale_nan());
            }
            false
        });
        (appended, refused)
    }

    /// A failed scrape: every series of the previous scrape goes stale.
    fn failed(&mut self, t: i64, error: &str) {
        self.mark_all_stale(t);
        self.note_failure(error);
    }

    /// Counts a failed scrape and logs it, at warn level unless it repeats.
    fn note_failure(&mut self, error: &str) {
        self.stats.failures.fetch_add(1, Ordering::Relaxed);
        self.failures_in_a_row += 1;
        let repeat = match &self.last_warn {
            Some((at, last)) => last == error && at.elapsed() < WARN_EVERY,
            None => false,
        };
        if repeat {
            tracing::debug!(job = %self.cfg.job, instance = %self.cfg.instance, %error, "scrape failed");
        } else {
            tracing::warn!(job = %self.cfg.job, instance = %self.cfg.instance, %error,
                failures = self.failures_in_a_row, "scrape failed");
            self.last_warn = Some((Instant::now(), error.to_owned()));
        }
    }

    fn mark_all_stale(&mut self, t: i64) {
        for e in self.cache.values().filter(|e| !e.explicit_ts) {
            let _ = self.store.append(e.r, t, stale_nan());
        }
        self.cache.clear();
    }

    fn append_report(&mut self, i: usize, t: i64, v: f64) {
        let report = &mut self.report[i];
        for _ in 0..2 {
            let r = match report.r {
                Some(r) => r,
                None => match self.store.get_or_create(&report.labels) {
                    Ok(r) => *report.r.insert(r),
                    Err(_) => return,
                },
            };
            match self.store.append(r, t, v) {
                Err(AppendError::UnknownSeries) => report.r = None,
                _ => return,
            }
        }
    }

    /// The target goes away: all its series, `up` included, are marked stale
    /// so queries stop returning them at once instead of 5 minutes later.
    fn end_of_run(&mut self) {
        let t = (self.cfg.clock)().max(self.last_t.saturating_add(1));
        self.mark_all_stale(t);
        for report in &self.report {
            if let Some(r) = report.r {
                let _ = self.store.append(r, t, stale_nan());
            }
        }
        tracing::debug!(job = %self.cfg.job, instance = %self.cfg.instance, "scrape loop stopped");
    }
}

/// The series' full label set: the source's labels, then the target's
/// `job`/`instance` where the source set none. Only built on a cache miss.
fn target_labels(s: &SampleRef<'_>, cfg: &ScrapeConfig) -> Labels {
    let mut b = LabelsBuilder::new();
    b.set(METRIC_NAME, s.name());
    for (name, value) in s.labels() {
        b.set(name, value);
    }
    if b.get("job").is_none() {
        b.set("job", &cfg.job);
    }
    if b.get("instance").is_none() {
        b.set("instance", &cfg.instance);
    }
    b.into_labels()
}

/// Resolves when shutdown is asked for, or when its sender is gone (nobody
/// could ask any more). Cancel-safe, so it can sit in a `select!`.
async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
#[path = "scrape_tests.rs"]
mod tests;
