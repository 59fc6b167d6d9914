//! histogram_quantile over classic histograms (`le` bucket series).

use std::collections::HashMap;

use promql_parser::parser::Expr;

use crate::model::{Labels, METRIC_NAME};
use crate::promql::eval::Evaluator;
use crate::promql::grouping::hash_labels;
use crate::promql::stats::almost_equal;
use crate::promql::steps::{Cursors, StepOut};
use crate::promql::value::{Batch, SeriesMeta, Steps};
use crate::promql::Result;

const BUCKET_LABEL: &str = "le";

/// Counts of neighbouring buckets closer than this (relative) are taken as
/// equal: the difference is floating-point noise.
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

/// histogram_quantile(φ, buckets): per histogram (the labels without `le`)
/// and step, the φ-quantile interpolated linearly within its bucket.
pub(super) fn histogram_quantile(
    ev: &mut Evaluator,
    args: &[&Expr],
    steps: Steps,
) -> Result<Batch> {
    let q = ev.eval_scalar(args[0], steps)?;
    let input = ev.eval_vector(args[1], steps)?;
    // The histogram a bucket series belongs to: all labels but `le`,
    // including the metric name, as Prometheus groups them. Histograms
    // whose labels coincide once the name is gone share an output series,
    // and a step where both have a value is an error, as in Prometheus.
    let mut by_key: HashMap<u64, u32> = HashMap::new();
    let mut by_labels: HashMap<u64, u32> = HashMap::new();
    let mut out = StepOut::new();
    let mut out_of: Vec<u32> = Vec::new();
    let mut hist_of: Vec<Option<(u32, f64)>> = Vec::with_capacity(input.len());
    for meta in &input.series {
        // A series without a parsable `le` is ignored (Prometheus warns).
        let Some(le) = meta.get(BUCKET_LABEL).and_then(parse_go_float) else {
            hist_of.push(None);
            continue;
        };
        let key = hash_labels(meta.iter().filter(|l| l.name != BUCKET_LABEL));
        let n = by_key.len() as u32;
        let g = *by_key.entry(key).or_insert(n);
        if g == n {
            let labels = Labels::from_sorted(
                meta.iter()
                    .filter(|l| l.name != BUCKET_LABEL && l.name != METRIC_NAME)
                    .cloned()
                    .collect(),
            );
            let o = *by_labels
                .entry(labels.fingerprint())
                .or_insert_with(|| out.add(SeriesMeta::owned(labels)));
            out_of.push(o);
        }
        hist_of.push(Some((g, le)));
    }
    let mut buckets: Vec<Vec<(f64, f64)>> = vec![Vec::new(); by_key.len()];
    let mut cur = Cursors::new(&input);
    for (k, &qk) in q.iter().enumerate() {
        let t = steps.t(k);
        buckets.iter_mut().for_each(Vec::clear);
        for (i, h) in hist_of.iter().enumerate() {
            if let Some(f) = cur.at(&input, i, t) {
                if let Some((g, le)) = h {
                    buckets[*g as usize].push((*le, f));
                }
            }
        }
        for (g, b) in buckets.iter_mut().enumerate() {
            if !b.is_empty() {
                out.push(out_of[g], t, bucket_quantile(qk, b))?;
            }
        }
    }
    Ok(out.finish())
}

/// Parses a float as Go's strconv.ParseFloat does for the common forms
/// (`+Inf`, `1e3`, `0.5`, `NaN`).
fn parse_go_float(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// Prometheus' `BucketQuantile` for classic histograms: sorts and merges the
/// buckets, repairs counts that are not monotonic, then interpolates
/// linearly within the bucket holding the rank. NaN without a `+Inf`
/// bucket, with fewer than two buckets or no observations; the highest
/// finite bound when the rank falls in the `+Inf` bucket.
pub(crate) fn bucket_quantile(q: f64, buckets: &mut Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().map(|b| b.0) != Some(f64::INFINITY) {
        return f64::NAN;
    }
    // Merge buckets with the same upper bound.
    let mut w = 0;
    for i in 1..buckets.len() {
        if buckets[i].0 == buckets[w].0 {
            buckets[w].1 += buckets[i].1;
        } else {
            w += 1;
            buckets[w] = buckets[i];
        }
    }
    buckets.truncate(w + 1);
    ensure_monotonic(buckets);
    let n = buckets.len();
    if n < 2 {
        return f64::NAN;
    }
    let observations = buckets[n - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = buckets[..n - 1].partition_point(|b| b.1 < rank);
    if b == n - 1 {
        return buckets[n - 2].0;
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let (mut start, end, mut count) = (0.0, buckets[b].0, buckets[b].1);
    if b > 0 {
        start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// Ignores numerically insignificant differences between neighbouring
/// buckets, then removes decreases, which bucket counts scraped at slightly
/// different moments (or rates of them) can show.
fn ensure_monotonic(buckets: &mut [(f64, f64)]) {
    let mut prev = buckets[0].1;
    for b in buckets.iter_mut().skip(1) {
        let curr = b.1;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, SMALL_DELTA_TOLERANCE) || curr < prev {
            b.1 = prev;
            continue;
        }
        prev = curr;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_quantile_interpolates() {
        let mut b = vec![(0.1, 10.0), (0.5, 20.0), (f64::INFINITY, 20.0)];
        assert_eq!(bucket_quantile(0.25, &mut b), 0.05);
        let mut b = vec![(f64::INFINITY, 20.0), (0.5, 20.0), (0.1, 10.0)];
        assert!((bucket_quantile(0.75, &mut b) - 0.3).abs() < 1e-12);
        let mut b = vec![(0.1, 10.0), (0.5, 20.0)];
        assert!(bucket_quantile(0.5, &mut b).is_nan());
        // Non-monotonic counts are repaired: 5 becomes 10.
        let mut b = vec![(1.0, 10.0), (2.0, 5.0), (f64::INFINITY, 10.0)];
        assert_eq!(bucket_quantile(0.5, &mut b), 0.5);
        // Rank in the +Inf bucket: the highest finite bound.
        let mut b = vec![(1.0, 1.0), (f64::INFINITY, 10.0)];
        assert_eq!(bucket_quantile(0.9, &mut b), 1.0);
    }

    #[test]
    fn parses_go_floats() {
        assert_eq!(parse_go_float("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_go_float("0.25"), Some(0.25));
        assert_eq!(parse_go_float("1e3"), Some(1000.0));
        assert_eq!(parse_go_float("x"), None);
    }
}
