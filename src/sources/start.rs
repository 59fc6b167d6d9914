//! Starting the configured sources, and the agent's own metrics about them.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::store::Store;
use crate::telemetry::{MetricsWriter, Registry};

use super::{host, spawn_scrape_loop, ScrapeConfig, ScrapeStats};

/// The `job` label of the host source's series.
pub const HOST_JOB: &str = "host";

/// Starts one scrape loop per configured source and registers their
/// counters with `registry`. Must be called inside a tokio runtime.
pub fn start_all(
    cfg: &Config,
    store: &Arc<Store>,
    registry: &Registry,
    shutdown: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    let mut stats = Vec::new();
    if let Some(s) = cfg.host_schedule() {
        let sc = ScrapeConfig::new(HOST_JOB, hostname(), s.interval, s.timeout);
        let (task, st) = spawn_scrape_loop(host::source(), store.clone(), sc, shutdown.clone());
        tasks.push(task);
        stats.push(st);
    }
    let http_stats = super::http::spawn_targets(cfg, store, shutdown, &mut tasks, &mut stats);
    registry.register(move |w| super::http::write_stats(&http_stats, w));
    for r in &cfg.sources.redis {
        let s = cfg.redis_schedule(r);
        let sc = ScrapeConfig::new(super::redis::JOB, r.name.as_str(), s.interval, s.timeout);
        let source = super::redis::RedisScraper::new(r);
        let (task, st) = spawn_scrape_loop(source, store.clone(), sc, shutdown.clone());
        tasks.push(task);
        stats.push(st);
    }
    for p in &cfg.sources.postgres {
        let s = cfg.postgres_schedule(p);
        let sc = ScrapeConfig::new(super::postgres::JOB, p.name.as_str(), s.interval, s.timeout);
        let source = super::postgres::PostgresScraper::new(p);
        let (task, st) = spawn_scrape_loop(source, store.clone(), sc, shutdown.clone());
        tasks.push(task);
        stats.push(st);
    }
    // One collector for all targets, so that each family is written once
    // with every target's sample under it, as the text format requires.
    registry.register(move |w| write_stats(&stats, w));
    tasks
}

/// The host's name, the `instance` of host metrics: what an operator
/// recognises in an alert, where node_exporter would give `host:9100`.
pub fn hostname() -> String {
    let name = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    if name.is_empty() {
        "localhost".to_owned()
    } else {
        name
    }
}

/// Writes the scrape counters of `targets` as `hourglass_scrape_*` families
/// labelled with each target's `job` and `instance`.
pub fn write_stats(targets: &[Arc<ScrapeStats>], w: &mut MetricsWriter) {
    type Field = fn(&super::ScrapeStatsSnapshot) -> f64;
    const FAMILIES: [(&str, &str, &str, Field); 7] = [
        (
            "hourglass_scrapes_total",
            "counter",
            "Scrapes attempted.",
            |s| s.scrapes_total as f64,
        ),
        (
            "hourglass_scrape_failures_total",
            "counter",
            "Scrapes that failed, timeouts included.",
            |s| s.scrape_failures_total as f64,
        ),
        (
            "hourglass_scrape_timeouts_total",
            "counter",
            "Scrapes cut at their timeout.",
            |s| s.scrape_timeouts_total as f64,
        ),
        (
            "hourglass_scrape_samples_appended_total",
            "counter",
            "Scraped samples the store accepted.",
            |s| s.samples_appended_total as f64,
        ),
        (
            "hourglass_scrape_samples_refused_total",
            "counter",
            "Scraped samples the store refused (series limit, out of order, duplicates).",
            |s| s.samples_refused_total as f64,
        ),
        (
            "hourglass_scrape_last_duration_seconds",
            "gauge",
            "Duration of the last scrape.",
            |s| s.last_duration_seconds,
        ),
        (
            "hourglass_scrape_last_success",
            "gauge",
            "1 if the last scrape succeeded, else 0.",
            |s| s.last_success as f64,
        ),
    ];
    if targets.is_empty() {
        return;
    }
    let snaps: Vec<_> = targets.iter().map(|t| (t, t.snapshot())).collect();
    for (name, kind, help, field) in FAMILIES {
        w.family(name, kind, help);
        for (t, snap) in &snaps {
            let labels = [("job", t.job.as_str()), ("instance", t.instance.as_str())];
            w.sample(name, &labels, field(snap));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_render_one_family_per_name() {
        let a = Arc::new(ScrapeStats::new("host", "a"));
        let b = Arc::new(ScrapeStats::new("pg", "b"));
        let mut w = MetricsWriter::new();
        write_stats(&[a, b], &mut w);
        let s = w.finish();
        assert_eq!(
            s.matches("# TYPE hourglass_scrapes_total counter").count(),
            1
        );
        assert!(
            s.contains("hourglass_scrapes_total{job=\"host\",instance=\"a\"} 0\n"),
            "{s}"
        );
        assert!(
            s.contains("hourglass_scrape_last_success{job=\"pg\",instance=\"b\"} 0\n"),
            "{s}"
        );
    }

    #[test]
    fn hostname_is_never_empty() {
        assert!(!hostname().is_empty());
    }
}
