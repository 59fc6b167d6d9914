//! Samples from files in the HTTP API's JSON, and loading samples into a
//! backtest's store with the staleness markers the API leaves out put back.

use std::collections::HashMap;

use serde_json::Value as Json;

use super::BacktestError;
use crate::model::{stale_nan, Labels};
use crate::store::{Store, StoreConfig};

/// The raw samples of one series, time-ordered, and how far the source
/// covered (for telling a series that stopped from one not yet scraped).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesData {
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
    pub horizon_ms: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadStats {
    pub series: usize,
    pub samples: usize,
    /// Staleness markers put back where a series stopped (see `load`).
    pub stale_markers: usize,
    /// Samples the store refused (series limit).
    pub refused: usize,
    /// The oldest and newest sample loaded.
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
}

/// A store that keeps samples from `mint_ms` to `maxt_ms` (and is never
/// pruned: the backtest holds what it loaded until it is done).
pub fn store_for(mint_ms: i64, maxt_ms: i64) -> Store {
    Store::new(StoreConfig {
        retention_ms: (maxt_ms - mint_ms).max(0) + 3_600_000,
        max_series: 10_000_000,
    })
}

/// Reads files holding query results in the API's shape (see
/// `parse_matrix`). A series that is in several files is merged.
pub fn read_data_files<P: AsRef<std::path::Path>>(
    paths: &[P],
) -> Result<Vec<SeriesData>, BacktestError> {
    let mut all = Vec::new();
    for p in paths {
        let path = p.as_ref().display().to_string();
        let text = std::fs::read(p.as_ref()).map_err(|e| BacktestError::ReadData {
            path: path.clone(),
            why: e.to_string(),
        })?;
        let json: Json = serde_json::from_slice(&text).map_err(|e| BacktestError::BadData {
            path: path.clone(),
            why: format!("not JSON: {e}"),
        })?;
        let series = parse_matrix(&json).map_err(|why| BacktestError::BadData { path, why })?;
        all.extend(series);
    }
    // A file does not say what time range it covers: its last sample is
    // taken as the end.
    let horizon = all
        .iter()
        .filter_map(|(_, s)| s.last().map(|p| p.0))
        .max()
        .unwrap_or(0);
    Ok(all
        .into_iter()
        .map(|(labels, samples)| SeriesData {
            labels,
            samples,
            horizon_ms: horizon,
        })
        .collect())
}

type Parsed = Vec<(Labels, Vec<(i64, f64)>)>;

/// The series of a query result in the Prometheus HTTP API's JSON: a whole
/// response (`{"status":"success","data":{...}}`), its `data` (`resultType`
/// `matrix` or `vector`), the `result` array alone, or an array of any of
/// these. Values are strings as the API writes them (`"1.5"`, `"NaN"`,
/// `"+Inf"`); numbers are accepted too.
pub fn parse_matrix(json: &Json) -> Result<Parsed, String> {
    let mut out = Vec::new();
    collect(json, &mut out)?;
    Ok(out)
}

fn collect(v: &Json, out: &mut Parsed) -> Result<(), String> {
    if let Some(items) = v.as_array() {
        for x in items {
            if x.get("metric").is_some() {
                out.push(series(x)?);
            } else {
                collect(x, out)?;
            }
        }
        return Ok(());
    }
    if let Some(status) = v.get("status") {
        if status != "success" {
            let why = v
                .get("error")
                .and_then(Json::as_str)
                .unwrap_or("status is not success");
            let kind = v.get("errorType").and_then(Json::as_str).unwrap_or("error");
            return Err(format!("{kind}: {why}"));
        }
        return match v.get("data") {
            Some(d) => collect(d, out),
            None => Err("a success response without \"data\"".into()),
        };
    }
    if let Some(result) = v.get("result") {
        match v.get("resultType").and_then(Json::as_str) {
            None | Some("matrix") | Some("vector") => {}
            Some(t) => {
                return Err(format!(
                    "resultType is {t:?}; expected a matrix (query SELECTOR[RANGE])"
                ))
            }
        }
        return collect(result, out);
    }
    if v.get("metric").is_some() {
        out.push(series(v)?);
        return Ok(());
    }
    Err("expected a Prometheus API query response, its \"data\" or its \"result\" array".into())
}

fn series(v: &Json) -> Result<(Labels, Vec<(i64, f64)>), String> {
    let metric = v
        .get("metric")
        .and_then(Json::as_object)
        .ok_or("\"metric\" is not an object")?;
    let mut pairs = Vec::with_capacity(metric.len());
    for (k, val) in metric {
        let s = val
            .as_str()
            .ok_or_else(|| format!("label {k:?} is not a string"))?;
        pairs.push((k.as_str(), s));
    }
    let labels = Labels::from_pairs(&pairs);
    let points: Vec<&Json> = match (v.get("values"), v.get("value")) {
        (Some(Json::Array(a)), _) => a.iter().collect(),
        (None, Some(p)) => vec![p],
        _ => return Err(format!("series {labels}: no \"values\" array")),
    };
    let mut samples = Vec::with_capacity(points.len());
    for p in points {
        let bad =
            || format!("series {labels}: bad point {p}; expected [<unix seconds>, \"<value>\"]");
        let [t, val] = p.as_array().map(Vec::as_slice).ok_or_else(bad)? else {
            return Err(bad());
        };
        let t = match t {
            Json::Number(n) => n.as_f64(),
            Json::String(s) => s.parse().ok(),
            _ => None,
        }
        .filter(|t: &f64| t.is_finite())
        .ok_or_else(bad)?;
        let val = match val {
            Json::String(s) => s.parse::<f64>().ok(),
            Json::Number(n) => n.as_f64(),
            _ => None,
        }
        .ok_or_else(bad)?;
        samples.push(((t * 1000.0).round() as i64, val));
    }
    Ok((labels, samples))
}

/// Appends the series to `store`, merging ones that came from several
/// selectors or files.
///
/// The API leaves staleness markers out, but the agent writes one when a
/// series disappears from a scrape or a scrape fails, and rules see that
/// at once (an alert's condition clears; `absent` fires). So a marker is
/// put back where a series clearly stopped: after a gap of more than three
/// times its usual (median) interval, one interval after the last sample,
/// and the same after its last sample if the source went on for longer
/// than that. Shorter gaps are left alone: a busy agent skips a tick now and
/// then without writing a marker, and inventing one would clear an alert
/// the agent kept.
pub fn load(store: &Store, data: Vec<SeriesData>) -> LoadStats {
    let mut merged: HashMap<u64, SeriesData> = HashMap::new();
    for s in data {
        match merged.entry(s.labels.fingerprint()) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let m = e.get_mut();
                m.samples.extend(s.samples);
                m.horizon_ms = m.horizon_ms.max(s.horizon_ms);
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(s);
            }
        }
    }
    let mut all: Vec<SeriesData> = merged.into_values().collect();
    all.sort_by(|a, b| a.labels.cmp(&b.labels));
    let mut stats = LoadStats::default();
    for mut s in all {
        s.samples.sort_by_key(|p| p.0);
        s.samples.dedup_by_key(|p| p.0);
        let with_markers = with_staleness(&s.samples, s.horizon_ms);
        let Ok(r) = store.get_or_create(&s.labels) else {
            stats.refused += s.samples.len();
            continue;
        };
        stats.series += 1;
        stats.samples += s.samples.len();
        stats.stale_markers += with_markers.len() - s.samples.len();
        if let (Some(first), Some(last)) = (s.samples.first(), s.samples.last()) {
            stats.first_ms = Some(stats.first_ms.map_or(first.0, |t| t.min(first.0)));
            stats.last_ms = Some(stats.last_ms.map_or(last.0, |t| t.max(last.0)));
        }
        for (t, v) in with_markers {
            if store.append(r, t, v).is_err() {
                stats.refused += 1;
            }
        }
    }
    stats
}

/// `samples` (sorted, distinct times) with staleness markers where the
/// series stopped; see `load`.
fn with_staleness(samples: &[(i64, f64)], horizon_ms: i64) -> Vec<(i64, f64)> {
    if samples.len() < 2 {
        return samples.to_vec();
    }
    let mut gaps: Vec<i64> = samples.windows(2).map(|w| w[1].0 - w[0].0).collect();
    gaps.sort_unstable();
    let usual = gaps[gaps.len() / 2].max(1);
    let limit = usual * 3;
    let mut out = Vec::with_capacity(samples.len() + 1);
    for (i, &(t, v)) in samples.iter().enumerate() {
        out.push((t, v));
        let next = samples.get(i + 1).map_or(horizon_ms, |p| p.0);
        if next - t > limit {
            out.push((t + usual, stale_nan()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::is_stale_nan;

    #[test]
    fn staleness_is_put_back_where_series_stop() {
        let s: Vec<(i64, f64)> = vec![
            (0, 1.0),
            (1000, 1.0),
            (2000, 1.0),
            (6000, 1.0),
            (7000, 1.0),
            (9000, 1.0),
            (10_000, 1.0),
        ];
        // A 4 s gap is a stop; a 2 s gap (a skipped tick) is not.
        let out = with_staleness(&s, 12_000);
        let stale: Vec<i64> = out
            .iter()
            .filter(|p| is_stale_nan(p.1))
            .map(|p| p.0)
            .collect();
        assert_eq!(stale, vec![3000]);
        let out = with_staleness(&s, 20_000);
        let stale: Vec<i64> = out
            .iter()
            .filter(|p| is_stale_nan(p.1))
            .map(|p| p.0)
            .collect();
        assert_eq!(stale, vec![3000, 11_000]);
    }

    #[test]
    fn parses_api_responses_in_every_wrapping() {
        let resp: Json = serde_json::from_str(
            r#"{"status":"success","data":{"resultType":"matrix","result":[
                {"metric":{"__name__":"x","a":"1"},"values":[[1.5,"1"],[2,"NaN"],[3,"+Inf"]]}]}}"#,
        )
        .unwrap();
        let got = parse_matrix(&resp).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0.get("a"), Some("1"));
        assert_eq!(got[0].1[0], (1500, 1.0));
        assert!(got[0].1[1].1.is_nan());
        assert_eq!(got[0].1[2].1, f64::INFINITY);
        // NaN != NaN: compare as text.
        let same = |v: &Json| format!("{:?}", parse_matrix(v).unwrap()) == format!("{got:?}");
        assert!(same(&resp["data"]));
        assert!(same(&resp["data"]["result"]));
        let arr = Json::Array(vec![resp.clone(), resp.clone()]);
        assert_eq!(parse_matrix(&arr).unwrap().len(), 2);

        let err: Json = serde_json::from_str(
            r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
        )
        .unwrap();
        assert_eq!(parse_matrix(&err).unwrap_err(), "bad_data: parse error");
        let scalar: Json =
            serde_json::from_str(r#"{"resultType":"scalar","result":[1,"1"]}"#).unwrap();
        assert!(parse_matrix(&scalar).unwrap_err().contains("matrix"));
        let bad: Json = serde_json::from_str(r#"[{"metric":{},"values":[[1]]}]"#).unwrap();
        assert!(parse_matrix(&bad).unwrap_err().contains("bad point"));
    }
}
