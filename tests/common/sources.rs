//! Library-level helpers for the tests of the connection sources
//! (PostgreSQL, Redis): one scrape as plain data, lookups in it, and what
//! the scrape loop stored.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hourglass::model::{is_stale_nan, MatchOp, Matcher, METRIC_NAME};
use hourglass::sources::{
    spawn_scrape_loop, SampleBuf, ScrapeConfig, ScrapeCtx, ScrapeStats, Source,
};
use hourglass::store::{Store, StoreConfig};

/// Samples of one scrape: name, labels (without the name), value.
pub type Samples = Vec<(String, Vec<(String, String)>, f64)>;

/// One scrape of `s` within `timeout`: its result (the error as text) and
/// the samples it wrote, also on error.
pub async fn scrape<S: Source>(s: &mut S, timeout: Duration) -> (Result<(), String>, Samples) {
    let mut buf = SampleBuf::new();
    let ctx = ScrapeCtx {
        timestamp_ms: 0,
        timeout,
    };
    let r = s.scrape(ctx, &mut buf).await.map_err(|e| e.to_string());
    let samples = buf
        .iter()
        .map(|x| {
            let labels = x
                .labels()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            (x.name().to_owned(), labels, x.value)
        })
        .collect();
    (r, samples)
}

/// Whether a sample is `name` with at least the `labels` given.
fn matches(n: &str, l: &[(String, String)], name: &str, labels: &[(&str, &str)]) -> bool {
    n == name
        && labels
            .iter()
            .all(|(k, want)| l.iter().any(|(lk, lv)| lk == k && lv == want))
}

/// The value of the first sample `name` with at least the `labels` given.
pub fn get(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find_map(|(n, l, v)| matches(n, l, name, labels).then_some(*v))
}

/// How many samples are `name` with at least the `labels` given.
pub fn count(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> usize {
    samples
        .iter()
        .filter(|(n, l, _)| matches(n, l, name, labels))
        .count()
}

/// Values of the series `name{instance=...}` in `store`, oldest first, with
/// staleness markers as None.
pub fn stored(store: &Store, name: &str, instance: &str) -> Vec<Option<f64>> {
    let set = store.select(
        &[
            Matcher::new(MatchOp::Equal, METRIC_NAME, name),
            Matcher::new(MatchOp::Equal, "instance", instance),
        ],
        i64::MIN,
        i64::MAX,
    );
    (0..set.series.len())
        .flat_map(|i| set.values(i).to_vec())
        .map(|v| (!is_stale_nan(v)).then_some(v))
        .collect()
}

/// Runs the real scrape loop of `source` (`job`, instance `down`, every
/// 200 ms with a 150 ms timeout) into a new store until it has scraped 3
/// times, then stops it (which writes the end-of-run staleness markers)
/// and returns the store and the loop's counters.
pub async fn scrape_three_times<S: Source + 'static>(
    source: S,
    job: &str,
) -> (Arc<Store>, Arc<ScrapeStats>) {
    let store = Arc::new(Store::new(StoreConfig::default()));
    let (tx, rx) = tokio::sync::watch::channel(false);
    let sc = ScrapeConfig::new(
        job,
        "down",
        Duration::from_millis(200),
        Duration::from_millis(150),
    );
    let (task, stats) = spawn_scrape_loop(source, store.clone(), sc, rx);
    let start = Instant::now();
    while stats.snapshot().scrapes_total < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the loop stalled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = tx.send(true);
    let _ = task.await;
    (store, stats)
}
