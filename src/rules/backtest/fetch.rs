//! Fetching the samples the rules read from a running agent: one
//! `/api/v1/query` of `SELECTOR[range]` per selector, which returns the raw
//! samples of the range, on a small current-thread runtime.

use std::time::Duration;

use serde_json::Value as Json;

use super::data::{parse_matrix, SeriesData};
use super::selectors::NeededSelector;
use super::BacktestError;

/// What one selector brought back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorStat {
    pub query: String,
    pub series: usize,
    pub samples: usize,
}

/// Fetches every selector from the agent at `url` (one `/api/v1/query` of
/// `SELECTOR[range]` each, which returns the raw samples), on a small
/// current-thread runtime.
pub fn fetch_from_agent(
    url: &str,
    needed: &[NeededSelector],
    timeout: Duration,
) -> Result<(Vec<SeriesData>, Vec<SelectorStat>), BacktestError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BacktestError::Client(e.to_string()))?;
    rt.block_on(fetch_all(url, needed, timeout))
}

async fn fetch_all(
    url: &str,
    needed: &[NeededSelector],
    timeout: Duration,
) -> Result<(Vec<SeriesData>, Vec<SelectorStat>), BacktestError> {
    let unreachable = |why: String| BacktestError::Unreachable {
        url: url.to_string(),
        why,
    };
    let mut base = url::Url::parse(url).map_err(|e| unreachable(format!("invalid URL: {e}")))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(unreachable(
            "the URL must start with http:// or https://".into(),
        ));
    }
    // So that a path prefix (`http://host/hourglass`) is kept by `join`.
    if !base.path().ends_with('/') {
        let p = format!("{}/", base.path());
        base.set_path(&p);
    }
    let endpoint = base
        .join("api/v1/query")
        .map_err(|e| unreachable(format!("invalid URL: {e}")))?;
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| BacktestError::Client(error_chain(&e)))?;
    let mut data = Vec::new();
    let mut stats = Vec::with_capacity(needed.len());
    for n in needed {
        let query = n.query();
        let mut u = endpoint.clone();
        u.query_pairs_mut()
            .append_pair("query", &query)
            .append_pair("time", &format!("{:.3}", n.maxt as f64 / 1000.0));
        let refused = |why: String| BacktestError::Query {
            url: url.to_string(),
            query: query.clone(),
            why,
        };
        let resp = client
            .get(u)
            .send()
            .await
            .map_err(|e| unreachable(error_chain(&e.without_url())))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| unreachable(error_chain(&e.without_url())))?;
        let json: Json = serde_json::from_slice(&body).map_err(|e| {
            let head = String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
            refused(format!(
                "HTTP {status} with a body that is not JSON ({e}): {head:?}; is this an hourglass or Prometheus API?"
            ))
        })?;
        let series = parse_matrix(&json).map_err(refused)?;
        stats.push(SelectorStat {
            query: query.clone(),
            series: series.len(),
            samples: series.iter().map(|s| s.1.len()).sum(),
        });
        data.extend(series.into_iter().map(|(labels, samples)| SeriesData {
            labels,
            samples,
            horizon_ms: n.maxt,
        }));
    }
    Ok((data, stats))
}

/// An error and its sources, `outer: inner: innermost`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}
