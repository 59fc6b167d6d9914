//! The agent's own metrics, rendered in the Prometheus text format on
//! `/metrics`. Each part of the agent registers a collector closure; the
//! registry only knows how to write families, not what they mean.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

/// Writes metric families in the text exposition format (version 0.0.4).
pub struct MetricsWriter {
    out: String,
    last_family: String,
}

impl MetricsWriter {
    pub fn new() -> MetricsWriter {
        MetricsWriter {
            out: String::with_capacity(8192),
            last_family: String::new(),
        }
    }

    /// Starts a family with its HELP and TYPE lines (once per family name).
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        if self.last_family != name {
            let _ = writeln!(self.out, "# HELP {name} {help}");
            let _ = writeln!(self.out, "# TYPE {name} {kind}");
            name.clone_into(&mut self.last_family);
        }
    }

    /// One sample line; `labels` are (name, value) pairs.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"");
                for c in val.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        push_float(&mut self.out, v);
        self.out.push('\n');
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, v: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], v);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

impl Default for MetricsWriter {
    fn default() -> Self {
        MetricsWriter::new()
    }
}

/// Formats a float the way Prometheus does in its text format and JSON API:
/// the shortest representation that round-trips, `+Inf`, `-Inf`, `NaN`.
pub fn push_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{v}");
    }
}

type Collector = Box<dyn Fn(&mut MetricsWriter) + Send + Sync>;

/// Collectors registered by the parts of the agent.
#[derive(Default)]
pub struct Registry {
    collectors: RwLock<Vec<Collector>>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    pub fn register(&self, c: impl Fn(&mut MetricsWriter) + Send + Sync + 'static) {
        self.collectors.write().push(Box::new(c));
    }

    pub fn render(&self) -> String {
        let mut w = MetricsWriter::new();
        for c in self.collectors.read().iter() {
            c(&mut w);
        }
        w.finish()
    }
}

/// Upper bounds (seconds) of the query-duration histogram.
const QUERY_BUCKETS: [f64; 10] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 10.0,
];

/// A fixed-bucket histogram of query durations, lock-free.
#[derive(Default)]
pub struct QueryMetrics {
    buckets: [AtomicU64; QUERY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
    errors: AtomicU64,
}

impl QueryMetrics {
    pub fn observe(&self, seconds: f64, ok: bool) {
        for (b, le) in self.buckets.iter().zip(QUERY_BUCKETS) {
            if seconds <= le {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn collect(self: &Arc<Self>, w: &mut MetricsWriter) {
        let name = "hourglass_query_duration_seconds";
        w.family(
            name,
            "histogram",
            "Time taken by PromQL queries through the HTTP API.",
        );
        let bucket = format!("{name}_bucket");
        for (b, le) in self.buckets.iter().zip(QUERY_BUCKETS) {
            let le = le.to_string();
            w.sample(&bucket, &[("le", &le)], b.load(Ordering::Relaxed) as f64);
        }
        let count = self.count.load(Ordering::Relaxed) as f64;
        w.sample(&bucket, &[("le", "+Inf")], count);
        w.sample(
            &format!("{name}_sum"),
            &[],
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        );
        w.sample(&format!("{name}_count"), &[], count);
        w.single(
            "hourglass_query_errors_total",
            "counter",
            "PromQL queries through the HTTP API that failed.",
            self.errors.load(Ordering::Relaxed) as f64,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_families_once_and_escapes_values() {
        let mut w = MetricsWriter::new();
        w.family("a_total", "counter", "An a.");
        w.sample("a_total", &[("job", "x\"y")], 1.0);
        w.family("a_total", "counter", "An a.");
        w.sample("a_total", &[("job", "z")], f64::INFINITY);
        let s = w.finish();
        assert_eq!(s.matches("# TYPE a_total counter").count(), 1);
        assert!(s.contains("a_total{job=\"x\\\"y\"} 1\n"), "{s}");
        assert!(s.contains("a_total{job=\"z\"} +Inf\n"), "{s}");
    }

    #[test]
    fn query_histogram_is_cumulative() {
        let q = Arc::new(QueryMetrics::default());
        q.observe(0.002, true);
        q.observe(0.5, false);
        let mut w = MetricsWriter::new();
        q.collect(&mut w);
        let s = w.finish();
        assert!(
            s.contains("hourglass_query_duration_seconds_bucket{le=\"0.0025\"} 1\n"),
            "{s}"
        );
        assert!(
            s.contains("hourglass_query_duration_seconds_bucket{le=\"1\"} 2\n"),
            "{s}"
        );
        assert!(
            s.contains("hourglass_query_duration_seconds_count 2\n"),
            "{s}"
        );
        assert!(s.contains("hourglass_query_errors_total 1\n"), "{s}");
    }
}
