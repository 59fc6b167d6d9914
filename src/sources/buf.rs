//! The buffer a source fills during one scrape.
//!
//! Samples are written into one byte arena rather than as `Labels` values so
//! that a steady-state scrape allocates nothing: the arena and the sample
//! vector keep their capacity across scrapes. Each sample's identity (metric
//! name plus labels, in the order the source emitted them) is one contiguous
//! byte string, `name (0xff label 0xfe value)*`. The separators cannot occur
//! in UTF-8, so the string is unambiguous, and the scrape loop uses it as the
//! key of its series cache, just as Prometheus keys its scrape cache by the
//! raw exposition line.

use std::fmt::{self, Write as _};
use std::ops::Range;

/// Written before each label name in a sample's key.
const LABEL_SEP: u8 = 0xff;
/// Written between a label's name and its value in a sample's key.
const VALUE_SEP: u8 = 0xfe;

/// The samples of one scrape. Reused across scrapes: `clear` keeps capacity.
#[derive(Debug, Default)]
pub struct SampleBuf {
    bytes: Vec<u8>,
    samples: Vec<RawSample>,
}

#[derive(Debug, Clone)]
struct RawSample {
    key: Range<usize>,
    name_len: usize,
    value: f64,
    t: Option<i64>,
}

impl SampleBuf {
    pub fn new() -> SampleBuf {
        SampleBuf::default()
    }

    /// Forgets all samples, keeping the allocations.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.samples.clear();
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Adds a sample stamped with the scrape's timestamp. Labels may come in
    /// any order, but a source should emit a series' labels in the same order
    /// every scrape: the order is part of the cache key, so a changed order
    /// costs a label-set rebuild (never a wrong result).
    pub fn push(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let mut b = self.begin(name);
        for (k, v) in labels {
            b = b.label(k, v);
        }
        b.value(value);
    }

    /// Adds a sample with its own timestamp (ms since the epoch), as an
    /// exposition with explicit timestamps provides. Such series are not
    /// marked stale when they disappear, as in Prometheus: the source, not the
    /// scrape, owns their time line.
    pub fn push_at(&mut self, name: &str, labels: &[(&str, &str)], value: f64, t_ms: i64) {
        let mut b = self.begin(name);
        for (k, v) in labels {
            b = b.label(k, v);
        }
        b.value_at(value, t_ms);
    }

    /// Starts a sample whose labels are added one by one, for sources whose
    /// label count or values are only known while parsing.
    pub fn begin(&mut self, name: &str) -> SampleBuilder<'_> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(name.as_bytes());
        SampleBuilder {
            buf: self,
            start,
            name_len: name.len(),
        }
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = SampleRef<'_>> + '_ {
        self.samples.iter().map(|s| SampleRef {
            key: &self.bytes[s.key.clone()],
            name_len: s.name_len,
            value: s.value,
            t: s.t,
        })
    }
}

/// A sample being written; finish it with `value` or `value_at`. Dropping it
/// unfinished discards the sample (its bytes stay in the arena until `clear`).
pub struct SampleBuilder<'a> {
    buf: &'a mut SampleBuf,
    start: usize,
    name_len: usize,
}

impl SampleBuilder<'_> {
    pub fn label(self, name: &str, value: &str) -> Self {
        self.buf.bytes.push(LABEL_SEP);
        self.buf.bytes.extend_from_slice(name.as_bytes());
        self.buf.bytes.push(VALUE_SEP);
        self.buf.bytes.extend_from_slice(value.as_bytes());
        self
    }

    /// A label whose value is formatted straight into the arena (a number,
    /// an unescaped string) without an intermediate `String`.
    pub fn label_fmt(self, name: &str, value: fmt::Arguments<'_>) -> Self {
        self.buf.bytes.push(LABEL_SEP);
        self.buf.bytes.extend_from_slice(name.as_bytes());
        self.buf.bytes.push(VALUE_SEP);
        // Writing to a Vec cannot fail; a Display impl that errors leaves a
        // truncated value, which is the best that can be done with it.
        let _ = ArenaWriter(&mut self.buf.bytes).write_fmt(value);
        self
    }

    pub fn value(self, value: f64) {
        self.finish(value, None);
    }

    pub fn value_at(self, value: f64, t_ms: i64) {
        self.finish(value, Some(t_ms));
    }

    fn finish(self, value: f64, t: Option<i64>) {
        let end = self.buf.bytes.len();
        self.buf.samples.push(RawSample {
            key: self.start..end,
            name_len: self.name_len,
            value,
            t,
        });
    }
}

struct ArenaWriter<'a>(&'a mut Vec<u8>);

impl fmt::Write for ArenaWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// One sample of a `SampleBuf`.
#[derive(Debug, Clone, Copy)]
pub struct SampleRef<'a> {
    key: &'a [u8],
    name_len: usize,
    pub value: f64,
    /// The sample's own timestamp, if the source gave one.
    pub t: Option<i64>,
}

impl<'a> SampleRef<'a> {
    /// The identity of the series as the source wrote it; equal keys are
    /// the same series.
    pub fn key(&self) -> &'a [u8] {
        self.key
    }

    pub fn name(&self) -> &'a str {
        as_str(&self.key[..self.name_len])
    }

    /// The labels in the order the source added them.
    pub fn labels(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.key[self.name_len..]
            .split(|&b| b == LABEL_SEP)
            .skip(1)
            .map(|pair| {
                let mut it = pair.splitn(2, |&b| b == VALUE_SEP);
                let name = it.next().unwrap_or_default();
                let value = it.next().unwrap_or_default();
                (as_str(name), as_str(value))
            })
    }
}

/// The arena only ever receives whole `&str`s and the separators, and the
/// pieces handed here are cut at separators, so they are valid UTF-8; the
/// fallback is unreachable but cheaper to keep than to argue about.
fn as_str(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_round_trip_and_reuse_capacity() {
        let mut buf = SampleBuf::new();
        buf.push("m", &[("a", "1"), ("b", "")], 1.5);
        buf.begin("n")
            .label_fmt("cpu", format_args!("{}", 12))
            .value_at(2.0, 7);
        buf.push("plain", &[], 3.0);
        let got: Vec<_> = buf
            .iter()
            .map(|s| (s.name(), s.labels().collect::<Vec<_>>(), s.value, s.t))
            .collect();
        assert_eq!(
            got,
            vec![
                ("m", vec![("a", "1"), ("b", "")], 1.5, None),
                ("n", vec![("cpu", "12")], 2.0, Some(7)),
                ("plain", vec![], 3.0, None),
            ]
        );
        let cap = (buf.bytes.capacity(), buf.samples.capacity());
        buf.clear();
        assert!(buf.is_empty());
        buf.push("m", &[("a", "1"), ("b", "")], 1.5);
        assert_eq!((buf.bytes.capacity(), buf.samples.capacity()), cap);
    }

    #[test]
    fn keys_distinguish_where_labels_split() {
        let mut buf = SampleBuf::new();
        buf.push("m", &[("a", "bc")], 0.0);
        buf.push("m", &[("ab", "c")], 0.0);
        buf.push("ma", &[("b", "c")], 0.0);
        let keys: Vec<_> = buf.iter().map(|s| s.key().to_vec()).collect();
        assert_ne!(keys[0], keys[1]);
        assert_ne!(keys[1], keys[2]);
    }

    #[test]
    fn unfinished_builder_adds_nothing() {
        let mut buf = SampleBuf::new();
        let _ = buf.begin("lost").label("a", "b");
        buf.push("kept", &[], 1.0);
        assert_eq!(buf.len(), 1);
        assert_eq!(buf.iter().next().map(|s| s.name()), Some("kept"));
    }
}
