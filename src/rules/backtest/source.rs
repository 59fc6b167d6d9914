//! Getting a backtest ready: the time range from the arguments, a store
//! filled from the agent or from files, and what the reader should know
//! about that data.

use std::path::PathBuf;
use std::time::Duration;

use super::data::{load, read_data_files, store_for, LoadStats};
use super::fetch::fetch_from_agent;
use super::selectors::{missing_selectors, needed_selectors};
use super::time::{format_ago, format_time, parse_time_arg};
use super::BacktestError;
use crate::rules::rule::RuleSet;
use crate::store::Store;

/// Where the samples come from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// A running agent's HTTP API.
    Agent { url: &'a str, timeout: Duration },
    /// Files in the API's JSON (see `parse_matrix`).
    Files(&'a [PathBuf]),
}

/// A filled store and the range to replay.
pub struct Prepared {
    pub store: Store,
    pub from_ms: i64,
    pub to_ms: i64,
    /// Where the data came from, for the report's heading.
    pub notes: Vec<String>,
    /// Gaps in the data the reader should know about.
    pub warnings: Vec<String>,
}

/// Parses `--from`/`--to` (defaults: the last hour for an agent, the span
/// of the files for files), fetches or reads the samples the rules need and
/// loads them into a fresh store.
pub fn prepare(
    rules: &RuleSet,
    source: Source<'_>,
    from: Option<&str>,
    to: Option<&str>,
    now_ms: i64,
    lookback_ms: i64,
) -> Result<Prepared, BacktestError> {
    let time = |arg: Option<&str>, default: i64| match arg {
        Some(s) => parse_time_arg(s, now_ms),
        None => Ok(default),
    };
    let mut notes = Vec::new();
    let mut warnings = Vec::new();
    let (store, from_ms, to_ms, needed, loaded) = match source {
        Source::Agent { url, timeout } => {
            let from_ms = time(from, now_ms - 3_600_000)?;
            let to_ms = time(to, now_ms)?;
            check_range(from_ms, to_ms)?;
            let needed = needed_selectors(rules, from_ms, to_ms, lookback_ms, 0);
            let (data, stats) = fetch_from_agent(url, &needed, timeout)?;
            let mint = needed.iter().map(|n| n.mint).min().unwrap_or(from_ms);
            let store = store_for(mint, to_ms);
            let loaded = load(&store, data);
            notes.push(format!(
                "Data: {} {} to {url}: {} series, {} samples{}",
                stats.len(),
                if stats.len() == 1 { "query" } else { "queries" },
                loaded.series,
                loaded.samples,
                stale_note(loaded.stale_markers),
            ));
            (store, from_ms, to_ms, needed, loaded)
        }
        Source::Files(paths) => {
            let data = read_data_files(paths)?;
            let first = data
                .iter()
                .filter_map(|s| s.samples.first())
                .map(|p| p.0)
                .min();
            let last = data
                .iter()
                .filter_map(|s| s.samples.last())
                .map(|p| p.0)
                .max();
            let names = || {
                paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let (Some(first), Some(last)) = (first, last) else {
                return Err(BacktestError::BadData {
                    path: names(),
                    why: "no samples".into(),
                });
            };
            let from_ms = time(from, first)?;
            let to_ms = time(to, last)?;
            check_range(from_ms, to_ms)?;
            let needed = needed_selectors(rules, from_ms, to_ms, lookback_ms, 0);
            let store = store_for(first.min(from_ms), to_ms.max(last));
            let loaded = load(&store, data);
            notes.push(format!(
                "Data: {}: {} series, {} samples from {} to {}{}",
                names(),
                loaded.series,
                loaded.samples,
                format_time(first, false),
                format_time(last, false),
                stale_note(loaded.stale_markers),
            ));
            (store, from_ms, to_ms, needed, loaded)
        }
    };
    warnings.extend(coverage(&loaded, from_ms, to_ms, now_ms));
    for s in missing_selectors(&store, &needed) {
        warnings.push(format!(
            "no series match `{s}` in the range: check the metric and label names"
        ));
    }
    Ok(Prepared {
        store,
        from_ms,
        to_ms,
        notes,
        warnings,
    })
}

fn check_range(from_ms: i64, to_ms: i64) -> Result<(), BacktestError> {
    if from_ms > to_ms {
        return Err(BacktestError::EmptyRange {
            from: format_time(from_ms, false),
            to: format_time(to_ms, false),
        });
    }
    Ok(())
}

/// A warning when the data starts well after `from` (the agent started
/// later, or keeps less history) or ends well before `to`.
fn coverage(loaded: &LoadStats, from_ms: i64, to_ms: i64, now_ms: i64) -> Vec<String> {
    let mut out = Vec::new();
    let (Some(first), Some(last)) = (loaded.first_ms, loaded.last_ms) else {
        return out;
    };
    if first > from_ms + 15_000 {
        out.push(format!(
            "the data starts at {} ({}): evaluations before then saw nothing",
            format_time(first, false),
            format_ago(first, now_ms)
        ));
    }
    if last < to_ms - 15_000 {
        out.push(format!(
            "the data ends at {} ({}): evaluations after then saw only what the lookback kept",
            format_time(last, false),
            format_ago(last, now_ms)
        ));
    }
    out
}

fn stale_note(n: usize) -> String {
    match n {
        0 => String::new(),
        1 => "; 1 staleness marker put back where a series stopped".into(),
        n => format!("; {n} staleness markers put back where series stopped"),
    }
}
