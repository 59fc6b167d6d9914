//! Tests of the store through its public API.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use regex::Regex;

use super::*;
use crate::model::{stale_nan, MatchOp, STALE_NAN_BITS};

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs)
}

fn eq(name: &str, value: &str) -> Matcher {
    Matcher::new(MatchOp::Equal, name, value)
}

fn ne(name: &str, value: &str) -> Matcher {
    Matcher::new(MatchOp::NotEqual, name, value)
}

fn re(name: &str, pattern: &str) -> Matcher {
    let r = Regex::new(&format!("^(?:{pattern})$")).unwrap();
    Matcher::new(MatchOp::Re(r), name, pattern)
}

fn nre(name: &str, pattern: &str) -> Matcher {
    let r = Regex::new(&format!("^(?:{pattern})$")).unwrap();
    Matcher::new(MatchOp::NotRe(r), name, pattern)
}

/// What `select` returned, as comparable data: labels and (t, value bits).
type Flat = Vec<(Labels, Vec<(i64, u64)>)>;

fn flatten(set: &SeriesSet) -> Flat {
    (0..set.series.len())
        .map(|i| {
            let samples = set
                .timestamps(i)
                .iter()
                .zip(set.values(i))
                .map(|(&t, v)| (t, v.to_bits()))
                .collect();
            ((*set.series[i].labels).clone(), samples)
        })
        .collect()
}

/// `select`, checked against `select_into` and `select_each`.
fn select_all_ways(store: &Store, ms: &[Matcher], mint: i64, maxt: i64) -> Flat {
    let flat = flatten(&store.select(ms, mint, maxt));
    let mut into = SeriesSet {
        ts: vec![1, 2, 3],
        ..SeriesSet::default()
    };
    store.select_into(ms, mint, maxt, &mut into);
    assert_eq!(flatten(&into), flat);
    let mut each = Vec::new();
    store.select_each(ms, mint, maxt, |l, t, v| {
        let samples = t.iter().zip(v).map(|(&t, v)| (t, v.to_bits())).collect();
        each.push(((**l).clone(), samples));
    });
    assert_eq!(each, flat);
    // The newest sample of each selected series, and only those series.
    let mut latest = Vec::new();
    store.select_latest(ms, mint, maxt, |l, t, v| {
        latest.push(((**l).clone(), t, v.to_bits()));
    });
    let want: Vec<(Labels, i64, u64)> = flat
        .iter()
        .filter_map(|(l, s)| s.last().map(|&(t, v)| (l.clone(), t, v)))
        .collect();
    assert_eq!(latest, want);
    flat
}

/// A store with small chunks, so that tests cross head, open and sealed
/// chunks with few samples.
fn small_store(retention_ms: i64, max_series: usize) -> Store {
    Store::with_chunk_samples(
        StoreConfig {
            retention_ms,
            max_series,
        },
        32,
    )
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => (0i64..100_000).prop_map(|n| n as f64 / 100.0),
        2 => any::<f64>(),
        1 => Just(stale_nan()),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(-0.0),
    ]
}

/// Per series: increasing timestamps (steps of 1 ms to 100 s, mostly about
/// a second) and values.
fn series_data() -> impl Strategy<Value = Vec<Vec<(i64, f64)>>> {
    let one = proptest::collection::vec(
        (prop_oneof![8 => 995i64..1005, 1 => 1i64..100_000], value()),
        0..300,
    )
    .prop_map(|steps| {
        let mut t = 1_700_000_000_000i64;
        steps
            .into_iter()
            .map(|(d, v)| {
                t += d;
                (t, v)
            })
            .collect()
    });
    proptest::collection::vec(one, 1..6)
}

/// Appends the series' samples interleaved, as scrapes would.
fn fill(store: &Store, data: &[Vec<(i64, f64)>]) -> Vec<Labels> {
    let ls: Vec<Labels> = (0..data.len())
        .map(|i| {
            labels(&[
                ("__name__", "m"),
                ("i", &format!("{i:02}")),
                ("job", if i % 2 == 0 { "a" } else { "b" }),
            ])
        })
        .collect();
    // Series without samples are not created: they would linger for one
    // prune of grace.
    let refs: Vec<Option<SeriesRef>> = ls
        .iter()
        .zip(data)
        .map(|(l, d)| (!d.is_empty()).then(|| store.get_or_create(l).unwrap()))
        .collect();
    let longest = data.iter().map(Vec::len).max().unwrap_or(0);
    for k in 0..longest {
        for (s, samples) in data.iter().enumerate() {
            if let (Some(&(t, v)), Some(r)) = (samples.get(k), refs[s]) {
                store.append(r, t, v).unwrap();
            }
        }
    }
    ls
}

fn expected(ls: &[Labels], data: &[Vec<(i64, f64)>], mint: i64, maxt: i64) -> Flat {
    let mut m: BTreeMap<Labels, Vec<(i64, u64)>> = BTreeMap::new();
    for (l, samples) in ls.iter().zip(data) {
        let s: Vec<(i64, u64)> = samples
            .iter()
            .filter(|(t, _)| *t >= mint && *t <= maxt)
            .map(|&(t, v)| (t, v.to_bits()))
            .collect();
        if !s.is_empty() {
            m.insert(l.clone(), s);
        }
    }
    m.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn what_goes_in_comes_out(data in series_data(), a in 0i64..400_000, len in 0i64..400_000) {
        let store = small_store(i64::MAX / 2, 100);
        let ls = fill(&store, &data);
        let all = expected(&ls, &data, i64::MIN, i64::MAX);
        prop_assert_eq!(select_all_ways(&store, &[eq("__name__", "m")], i64::MIN, i64::MAX), all);
        // Any window, and a matcher that picks half of the series.
        let mint = 1_700_000_000_000 + a;
        let maxt = mint + len;
        prop_assert_eq!(select_all_ways(&store, &[], mint, maxt), expected(&ls, &data, mint, maxt));
        let half: Vec<usize> = (0..data.len()).step_by(2).collect();
        let hl: Vec<Labels> = half.iter().map(|&i| ls[i].clone()).collect();
        let hd: Vec<Vec<(i64, f64)>> = half.iter().map(|&i| data[i].clone()).collect();
        prop_assert_eq!(select_all_ways(&store, &[eq("job", "a")], mint, maxt), expected(&hl, &hd, mint, maxt));
        let listed: Vec<Labels> = store.series(&[], mint, maxt).iter().map(|l| (**l).clone()).collect();
        let want: Vec<Labels> = expected(&ls, &data, mint, maxt).into_iter().map(|e| e.0).collect();
        prop_assert_eq!(listed, want);
        let st = store.stats();
        prop_assert_eq!(st.samples, data.iter().map(|d| d.len() as u64).sum::<u64>());
        prop_assert_eq!(st.samples_appended, st.samples);
    }

    #[test]
    fn retention_drops_exactly_what_is_older_than_the_cutoff(
        data in series_data(),
        retention in 1i64..200_000,
        nows in proptest::collection::vec(0i64..400_000, 1..4),
    ) {
        let store = small_store(retention, 100);
        let ls = fill(&store, &data);
        let appended = store.stats().samples_appended;
        let mut cutoff = i64::MIN;
        for now in nows {
            let now = 1_700_000_000_000 + now;
            store.prune(now);
            cutoff = cutoff.max(now - retention);
            prop_assert_eq!(
                select_all_ways(&store, &[], i64::MIN, i64::MAX),
                expected(&ls, &data, cutoff, i64::MAX)
            );
            // Pruned plus held is what came in; held may include the old
            // part of a chunk straddling the cutoff.
            let st = store.stats();
            prop_assert_eq!(st.samples + st.samples_pruned, appended);
            let live = data.iter().filter(|d| d.last().is_some_and(|s| s.0 >= cutoff)).count();
            prop_assert_eq!(st.series, live);
        }
    }
}

#[test]
fn matchers_select_as_in_prometheus() {
    let store = Store::new(StoreConfig::default());
    for (name, job, instance) in [
        ("up", "node", "a"),
        ("up", "pg", "b"),
        ("up", "", "c"),
        ("load1", "node", "a"),
    ] {
        store
            .append_labels(
                &labels(&[("__name__", name), ("job", job), ("instance", instance)]),
                1000,
                1.0,
            )
            .unwrap();
    }
    let names = |ms: &[Matcher]| -> Vec<String> {
        store
            .select(ms, 0, 2000)
            .series
            .iter()
            .map(|s| s.labels.to_string())
            .collect()
    };
    assert_eq!(
        names(&[eq("__name__", "up"), eq("job", "node")]),
        [r#"up{instance="a", job="node"}"#]
    );
    // != and !~ also select series without the label.
    assert_eq!(names(&[eq("__name__", "up"), ne("job", "node")]).len(), 2);
    assert_eq!(names(&[eq("__name__", "up"), nre("job", "no.*")]).len(), 2);
    // A regex matching "" selects series without the label too; one that
    // does not, only series with a matching value.
    assert_eq!(
        names(&[eq("__name__", "up"), re("job", "pg|")]),
        [r#"up{instance="b", job="pg"}"#, r#"up{instance="c"}"#]
    );
    assert_eq!(names(&[re("job", ".+")]).len(), 3);
    assert_eq!(names(&[eq("job", "")]), [r#"up{instance="c"}"#]);
    assert_eq!(names(&[ne("job", "")]).len(), 3);
    // !~ with a pattern matching "" drops series without the label.
    assert_eq!(
        names(&[nre("job", "node|")]),
        [r#"up{instance="b", job="pg"}"#]
    );
    assert_eq!(
        names(&[re("__name__", "up|load1"), eq("instance", "a")]).len(),
        2
    );
    assert!(names(&[eq("__name__", "nope")]).is_empty());
    assert_eq!(names(&[]).len(), 4);
    // Sorted by labels.
    let all = names(&[]);
    let mut sorted = all.clone();
    sorted.sort_by_key(|s| s.replace('{', " "));
    assert_eq!(all[0], r#"load1{instance="a", job="node"}"#);
}

#[test]
fn series_limit_refuses_and_counts() {
    let store = small_store(3_600_000, 3);
    for i in 0..3 {
        store
            .append_labels(&labels(&[("i", &i.to_string())]), 1000, 1.0)
            .unwrap();
    }
    let extra = labels(&[("i", "3")]);
    assert_eq!(
        store.get_or_create(&extra),
        Err(AppendError::SeriesLimit(3))
    );
    assert_eq!(
        store.append_labels(&extra, 1000, 1.0),
        Err(AppendError::SeriesLimit(3))
    );
    // Existing series are unaffected.
    store
        .append_labels(&labels(&[("i", "0")]), 2000, 2.0)
        .unwrap();
    let st = store.stats();
    assert_eq!((st.series, st.series_refused), (3, 2));
    // Once retention frees a series there is room again.
    store
        .append_labels(&labels(&[("i", "1")]), 5_000_000, 1.0)
        .unwrap();
    store
        .append_labels(&labels(&[("i", "2")]), 5_000_000, 1.0)
        .unwrap();
    store.prune(5_000_000);
    assert_eq!(store.stats().series, 2);
    assert!(store.get_or_create(&extra).is_ok());
}

#[test]
fn out_of_order_and_unknown_refs_are_refused_and_counted() {
    let store = small_store(1000, 10);
    let r = store.get_or_create(&labels(&[("a", "b")])).unwrap();
    store.append(r, 1000, 1.0).unwrap();
    assert_eq!(store.append(r, 1000, 2.0), Err(AppendError::OutOfOrder));
    assert_eq!(store.append(r, 50, 2.0), Err(AppendError::OutOfOrder));
    store.append(r, 1001, 2.0).unwrap();
    assert_eq!(
        store.append(SeriesRef(12345), 1, 1.0),
        Err(AppendError::UnknownSeries)
    );
    // Older than the last prune's cutoff is refused too.
    store.prune(1500);
    let r2 = store.get_or_create(&labels(&[("c", "d")])).unwrap();
    assert_eq!(store.append(r2, 400, 1.0), Err(AppendError::OutOfOrder));
    let st = store.stats();
    assert_eq!((st.out_of_order, st.samples_appended), (3, 2));
    let want = vec![(
        labels(&[("a", "b")]),
        vec![(1000, 1f64.to_bits()), (1001, 2f64.to_bits())],
    )];
    assert_eq!(flatten(&store.select(&[], 0, 2000)), want);
}

#[test]
fn prune_frees_series_and_memory() {
    let store = small_store(60_000, 1000);
    let old: Vec<SeriesRef> = (0..50)
        .map(|i| {
            store
                .get_or_create(&labels(&[("__name__", "old"), ("i", &i.to_string())]))
                .unwrap()
        })
        .collect();
    let keep = store
        .get_or_create(&labels(&[("__name__", "keep")]))
        .unwrap();
    for t in 0..300 {
        for &r in &old {
            store.append(r, t * 1000, t as f64).unwrap();
        }
        store.append(keep, t * 1000, 1.0).unwrap();
    }
    store.append(keep, 400_000, 1.0).unwrap();
    let before = store.stats();
    store.prune(400_000);
    let after = store.stats();
    assert_eq!(after.series, 1);
    // Chunks, label sets and postings go; what stays is fixed overhead
    // (slot tables, scratch buffers) that new series reuse.
    assert!(
        after.chunk_bytes < before.chunk_bytes / 10,
        "{before:?} then {after:?}"
    );
    assert!(
        after.index_bytes < before.index_bytes / 5,
        "{before:?} then {after:?}"
    );
    assert!(
        before.bytes - after.bytes > before.chunk_bytes,
        "{before:?} then {after:?}"
    );
    // The head of `keep` holds 12 old samples beside the new one; queries
    // never see them.
    assert_eq!(after.samples_pruned + after.samples, 50 * 300 + 301);
    assert_eq!(store.select(&[], 0, i64::MAX).ts, [400_000]);
    assert_eq!(store.label_values("__name__", &[], 0, i64::MAX), ["keep"]);
    // A dropped series' ref is refused, not confused with a new series.
    assert_eq!(
        store.append(old[0], 500_000, 1.0),
        Err(AppendError::UnknownSeries)
    );
    let again = store
        .get_or_create(&labels(&[("__name__", "old"), ("i", "0")]))
        .unwrap();
    assert_ne!(again, old[0]);
    store.append(again, 500_000, 1.0).unwrap();
    assert_eq!(
        store.append(old[0], 500_001, 1.0),
        Err(AppendError::UnknownSeries)
    );
}

#[test]
fn series_without_samples_get_one_prune_of_grace() {
    let store = small_store(1000, 10);
    let r = store.get_or_create(&labels(&[("a", "b")])).unwrap();
    store.prune(10_000);
    assert_eq!(store.stats().series, 1);
    store.prune(10_001);
    assert_eq!(store.stats().series, 0);
    assert_eq!(
        store.append(r, 20_000, 1.0),
        Err(AppendError::UnknownSeries)
    );
}

#[test]
fn metadata_queries_filter_by_matchers_and_time() {
    let store = Store::new(StoreConfig::default());
    store
        .append_labels(
            &labels(&[("__name__", "up"), ("job", "node"), ("instance", "a")]),
            1000,
            1.0,
        )
        .unwrap();
    store
        .append_labels(
            &labels(&[("__name__", "up"), ("job", "pg"), ("dsn", "x")]),
            5000,
            1.0,
        )
        .unwrap();
    store
        .append_labels(
            &labels(&[("__name__", "load1"), ("job", "node"), ("cpu", "0")]),
            9000,
            1.0,
        )
        .unwrap();
    assert_eq!(
        store.label_names(&[], 0, 10_000),
        ["__name__", "cpu", "dsn", "instance", "job"]
    );
    assert_eq!(
        store.label_names(&[], 0, 2000),
        ["__name__", "instance", "job"]
    );
    assert_eq!(
        store.label_names(&[eq("job", "pg")], 0, 10_000),
        ["__name__", "dsn", "job"]
    );
    assert_eq!(store.label_values("job", &[], 0, 10_000), ["node", "pg"]);
    assert_eq!(store.label_values("job", &[], 4000, 6000), ["pg"]);
    assert_eq!(
        store.label_values("__name__", &[eq("job", "node")], 0, 10_000),
        ["load1", "up"]
    );
    assert!(store.label_values("nope", &[], 0, 10_000).is_empty());
    let s = store.series(&[eq("job", "node")], 0, 10_000);
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].metric_name(), "load1");
    assert!(store.series(&[eq("job", "node")], 2000, 8000).is_empty());
    // A gap inside one chunk: no sample in (1000, 2000).
    let r = store
        .get_or_create(&labels(&[("__name__", "gap")]))
        .unwrap();
    for t in [1000, 2000] {
        store.append(r, t, 1.0).unwrap();
    }
    assert!(store
        .series(&[eq("__name__", "gap")], 1001, 1999)
        .is_empty());
    assert_eq!(store.series(&[eq("__name__", "gap")], 1001, 2000).len(), 1);
}

#[test]
fn long_gaps_and_special_values_round_trip() {
    let store = small_store(i64::MAX / 2, 10);
    let r = store.get_or_create(&labels(&[("a", "b")])).unwrap();
    let mut want = Vec::new();
    let mut t = -5_000_000_000_000i64;
    for i in 0..1000i64 {
        t += if i % 97 == 0 {
            10_000_000_000
        } else {
            1000 + i % 7
        };
        let v = match i % 50 {
            0 => stale_nan(),
            1 => f64::NEG_INFINITY,
            2 => -0.0,
            _ => (i * 37 % 1000) as f64 / 1000.0,
        };
        store.append(r, t, v).unwrap();
        want.push((t, v.to_bits()));
    }
    let got = select_all_ways(&store, &[], i64::MIN, i64::MAX);
    assert_eq!(got[0].1, want);
    assert!(got[0].1.iter().any(|s| s.1 == STALE_NAN_BITS));
}

#[test]
fn concurrent_appends_and_queries() {
    let store = Arc::new(Store::new(StoreConfig::default()));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            std::thread::spawn(move || {
                let refs: Vec<SeriesRef> = (0..50)
                    .map(|i| {
                        store
                            .get_or_create(&labels(&[("w", &w.to_string()), ("i", &i.to_string())]))
                            .unwrap()
                    })
                    .collect();
                for t in 0..400 {
                    for &r in &refs {
                        store.append(r, t * 1000, t as f64).unwrap();
                    }
                }
            })
        })
        .collect();
    let reader = {
        let store = store.clone();
        std::thread::spawn(move || {
            for _ in 0..50 {
                let set = store.select(&[], 0, i64::MAX);
                for i in 0..set.series.len() {
                    let ts = set.timestamps(i);
                    assert!(ts.windows(2).all(|w| w[0] < w[1]));
                    // Each series' samples are a prefix of 0, 1000, 2000, …
                    assert!(ts.iter().enumerate().all(|(k, &t)| t == k as i64 * 1000));
                }
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    reader.join().unwrap();
    let st = store.stats();
    assert_eq!((st.series, st.samples), (200, 200 * 400));
    assert_eq!(store.select(&[], 0, i64::MAX).ts.len(), 200 * 400);
}

#[test]
fn bytes_are_counted_honestly() {
    let store = Store::new(StoreConfig::default());
    let refs: Vec<SeriesRef> = (0..500)
        .map(|i| {
            store
                .get_or_create(&labels(&[("__name__", "c"), ("i", &i.to_string())]))
                .unwrap()
        })
        .collect();
    for t in 0..1000i64 {
        for (i, &r) in refs.iter().enumerate() {
            store
                .append(r, t * 1000 + t % 3, (t * i as i64) as f64 / 100.0)
                .unwrap();
        }
    }
    let st = store.stats();
    assert!(st.bytes > st.chunk_bytes + st.index_bytes);
    // Every series holds its inline head and more.
    assert!(st.bytes > st.chunk_bytes + st.index_bytes + 500 * std::mem::size_of::<Series>());
    let per_sample = st.bytes as f64 / st.samples as f64;
    assert!(per_sample < 2.0, "{per_sample} bytes/sample");
}

/// A query matching few of many series sorts them by cached ranks; the
/// ranks must follow series being added and dropped.
#[test]
fn few_of_many_series_come_in_label_order_as_series_change() {
    let store = small_store(60_000, 10_000);
    let t = 1_700_000_000_000;
    // 300 background series, and the queried ones created out of order.
    for i in 0..300 {
        let l = labels(&[("__name__", "bg"), ("i", &format!("{i:03}"))]);
        store.append_labels(&l, t, 1.0).unwrap();
    }
    let names = |store: &Store| -> Vec<String> {
        store
            .select(&[eq("__name__", "q")], t - 1, t + 10_000_000)
            .series
            .iter()
            .map(|s| s.labels.get("k").unwrap_or("").to_string())
            .collect()
    };
    for k in ["m", "c", "x"] {
        store
            .append_labels(&labels(&[("__name__", "q"), ("k", k)]), t, 1.0)
            .unwrap();
    }
    assert_eq!(names(&store), ["c", "m", "x"]);
    // New series between and before the known ones.
    for k in ["a", "n"] {
        store
            .append_labels(&labels(&[("__name__", "q"), ("k", k)]), t + 1, 1.0)
            .unwrap();
    }
    assert_eq!(names(&store), ["a", "c", "m", "n", "x"]);
    // Dropped by retention: only series with newer samples stay.
    for k in ["c", "x"] {
        store
            .append_labels(&labels(&[("__name__", "q"), ("k", k)]), t + 5_000_000, 1.0)
            .unwrap();
    }
    store.prune(t + 5_000_000);
    store.prune(t + 5_000_000);
    assert_eq!(names(&store), ["c", "x"]);
    store
        .append_labels(
            &labels(&[("__name__", "q"), ("k", "b")]),
            t + 5_000_001,
            1.0,
        )
        .unwrap();
    assert_eq!(names(&store), ["b", "c", "x"]);
}
