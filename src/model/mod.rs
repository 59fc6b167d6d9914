//! The data model shared by every module: label sets, samples, matchers.
//!
//! This module depends on nothing else in the crate and does no I/O.

mod labels;

pub use labels::{Label, Labels, LabelsBuilder, METRIC_NAME};
pub use promql_parser::label::{MatchOp, Matcher};

/// The bit pattern Prometheus uses for a staleness marker: a NaN that no
/// arithmetic produces, so it can be told apart from a scraped NaN.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// A staleness marker value, appended when a series disappears from a scrape.
#[inline]
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// True when `v` is a staleness marker (not merely any NaN).
#[inline]
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One sample: a timestamp in milliseconds since the Unix epoch and a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub t: i64,
    pub v: f64,
}

/// True when every matcher accepts the label set. A matcher on a label the set
/// does not have is tested against the empty string, as in Prometheus.
pub fn matches_all(labels: &Labels, matchers: &[Matcher]) -> bool {
    matchers
        .iter()
        .all(|m| m.is_match(labels.get(&m.name).unwrap_or("")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_marker_is_distinct_from_plain_nan() {
        assert!(is_stale_nan(stale_nan()));
        assert!(!is_stale_nan(f64::NAN));
        // A NaN computed at run time (not a constant) is not a marker either.
        let zero = std::hint::black_box(0.0f64);
        assert!(!is_stale_nan(zero / zero));
    }

    #[test]
    fn matchers_treat_missing_labels_as_empty() {
        let l = Labels::from_pairs(&[("__name__", "up"), ("job", "host")]);
        let eq = Matcher::new(MatchOp::Equal, "instance", "");
        assert!(matches_all(&l, &[eq]));
        let ne = Matcher::new(MatchOp::NotEqual, "job", "host");
        assert!(!matches_all(&l, &[ne]));
    }
}
