//! `format: json`: gauges picked out of a JSON document by JSON pointers.
//!
//! A pointer that leads nowhere, or to something that is not a number, is an
//! error of that metric only: it is counted
//! (`hourglass_http_json_path_errors_total{job,metric}`), logged when it
//! starts and when it stops, and the other metrics of the scrape still land.
//! Only a body that is not JSON at all fails the scrape.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use super::super::SampleBuf;
use super::float::parse_float;
use crate::config::JsonMetric;

/// The configured metrics of one target, with what the last scrape found.
#[derive(Debug)]
pub struct JsonMetrics {
    metrics: Vec<Compiled>,
}

#[derive(Debug)]
struct Compiled {
    name: String,
    path: String,
    labels: Vec<(String, String)>,
    /// The error of the last scrape, so a lasting one is logged once.
    last_error: Option<PathError>,
}

/// Why a metric's pointer gave no number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    Missing,
    Null,
    NotNumeric,
    Object,
    Array,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::Missing => "no value at this path",
            PathError::Null => "the value is null",
            PathError::NotNumeric => "the value is a string that is not a number",
            PathError::Object => "the value is an object, not a number",
            PathError::Array => "the value is an array, not a number",
        })
    }
}

impl JsonMetrics {
    pub fn new(metrics: &[JsonMetric]) -> JsonMetrics {
        JsonMetrics {
            metrics: metrics
                .iter()
                .map(|m| Compiled {
                    name: m.name.clone(),
                    path: m.path.clone(),
                    labels: m
                        .labels
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    last_error: None,
                })
                .collect(),
        }
    }

    /// The metric names, in configuration order (the order of `errors` in
    /// [`JsonMetrics::extract`]).
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.metrics.iter().map(|m| m.name.as_str())
    }

    /// Parses `body` and appends one sample per metric whose path holds a
    /// number; a metric that fails adds one to its slot of `errors`. Returns
    /// the number of samples, or the JSON syntax error.
    pub fn extract(
        &mut self,
        body: &[u8],
        job: &str,
        errors: &[AtomicU64],
        out: &mut SampleBuf,
    ) -> Result<usize, serde_json::Error> {
        let doc: Value = serde_json::from_slice(body)?;
        let mut n = 0;
        for (i, m) in self.metrics.iter_mut().enumerate() {
            let result = doc
                .pointer(&m.path)
                .ok_or(PathError::Missing)
                .and_then(number);
            match result {
                Ok(v) => {
                    let mut b = out.begin(&m.name);
                    for (k, lv) in &m.labels {
                        b = b.label(k, lv);
                    }
                    b.value(v);
                    n += 1;
                    if m.last_error.take().is_some() {
                        tracing::info!(job, metric = %m.name, path = %m.path, "json path has a number again");
                    }
                }
                Err(e) => {
                    if let Some(c) = errors.get(i) {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                    if m.last_error != Some(e) {
                        tracing::warn!(job, metric = %m.name, path = %m.path, error = %e,
                            "json path gives no number; the metric is skipped");
                        m.last_error = Some(e);
                    }
                }
            }
        }
        Ok(n)
    }
}

/// The number a JSON value stands for: numbers as they are, booleans as 1
/// and 0, strings holding a number (`"42"`, `" 1.5 "`, `"NaN"`) parsed.
pub fn number(v: &Value) -> Result<f64, PathError> {
    match v {
        Value::Number(n) => n.as_f64().ok_or(PathError::NotNumeric),
        Value::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        Value::String(s) => parse_float(s.trim()).ok_or(PathError::NotNumeric),
        Value::Null => Err(PathError::Null),
        Value::Object(_) => Err(PathError::Object),
        Value::Array(_) => Err(PathError::Array),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::JsonMetricType;

    fn metric(name: &str, path: &str, labels: &[(&str, &str)]) -> JsonMetric {
        JsonMetric {
            name: name.into(),
            path: path.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            kind: JsonMetricType::Gauge,
        }
    }

    const DOC: &str = r#"{
        "status": "ok",
        "data": {
            "queue_stats": {"pending": 12, "failed": "3", "ratio": " 0.25 "},
            "healthy": true,
            "workers": [{"busy": 2}, {"busy": 5}],
            "a/b": {"m~n": 7},
            "nothing": null
        }
    }"#;

    #[test]
    fn extracts_numbers_and_counts_failures() {
        let mut j = JsonMetrics::new(&[
            metric(
                "app_queue_pending",
                "/data/queue_stats/pending",
                &[("queue", "default")],
            ),
            metric("app_queue_failed", "/data/queue_stats/failed", &[]),
            metric("app_queue_ratio", "/data/queue_stats/ratio", &[]),
            metric("app_healthy", "/data/healthy", &[]),
            metric(
                "app_worker_busy",
                "/data/workers/1/busy",
                &[("worker", "1")],
            ),
            metric("app_escaped", "/data/a~1b/m~0n", &[]),
            metric("app_missing", "/data/queue_stats/nope", &[]),
            metric("app_status", "/status", &[]),
            metric("app_null", "/data/nothing", &[]),
            metric("app_object", "/data", &[]),
        ]);
        let errors: Vec<AtomicU64> = j.names().map(|_| AtomicU64::new(0)).collect();
        let mut out = SampleBuf::new();
        let n = j.extract(DOC.as_bytes(), "stats", &errors, &mut out);
        assert_eq!(n.ok(), Some(6));
        let got: Vec<_> = out
            .iter()
            .map(|s| (s.name().to_owned(), s.labels().count(), s.value))
            .collect();
        assert_eq!(
            got,
            vec![
                ("app_queue_pending".to_owned(), 1, 12.0),
                ("app_queue_failed".to_owned(), 0, 3.0),
                ("app_queue_ratio".to_owned(), 0, 0.25),
                ("app_healthy".to_owned(), 0, 1.0),
                ("app_worker_busy".to_owned(), 1, 5.0),
                ("app_escaped".to_owned(), 0, 7.0),
            ]
        );
        let counts: Vec<u64> = errors.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        assert_eq!(counts, vec![0, 0, 0, 0, 0, 0, 1, 1, 1, 1]);
        assert_eq!(j.metrics[6].last_error, Some(PathError::Missing));
        assert_eq!(j.metrics[7].last_error, Some(PathError::NotNumeric));
        assert_eq!(j.metrics[8].last_error, Some(PathError::Null));
        assert_eq!(j.metrics[9].last_error, Some(PathError::Object));
    }

    #[test]
    fn invalid_json_fails_whole() {
        let mut j = JsonMetrics::new(&[metric("a", "/a", &[])]);
        let errors = [AtomicU64::new(0)];
        let mut out = SampleBuf::new();
        assert!(j.extract(b"{\"a\": 1", "x", &errors, &mut out).is_err());
        assert!(j.extract(b"<html>", "x", &errors, &mut out).is_err());
        assert_eq!(errors[0].load(Ordering::Relaxed), 0);
        // The whole document may be the number.
        let mut whole = JsonMetrics::new(&[metric("a", "", &[])]);
        assert_eq!(whole.extract(b" 42 ", "x", &errors, &mut out).ok(), Some(1));
    }

    #[test]
    fn numbers_from_values() {
        assert_eq!(number(&serde_json::json!(false)), Ok(0.0));
        assert_eq!(number(&serde_json::json!(-3)), Ok(-3.0));
        assert_eq!(number(&serde_json::json!(u64::MAX)), Ok(u64::MAX as f64));
        assert_eq!(number(&serde_json::json!("+Inf")), Ok(f64::INFINITY));
        assert_eq!(
            number(&serde_json::json!("12 apples")),
            Err(PathError::NotNumeric)
        );
        assert_eq!(number(&serde_json::json!([1])), Err(PathError::Array));
    }
}
