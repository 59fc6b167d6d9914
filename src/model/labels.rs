use std::fmt;
use std::hash::{Hash, Hasher};

/// The label that carries a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// One label: a name and a value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    pub name: String,
    pub value: String,
}

/// A label set sorted by name, without duplicates and without empty values
/// (an empty value means "no such label", as in Prometheus). The metric name
/// is the `__name__` label.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Labels {
    labels: Vec<Label>,
}

impl Hash for Labels {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.fingerprint());
    }
}

impl Labels {
    /// An empty label set.
    pub fn empty() -> Labels {
        Labels { labels: Vec::new() }
    }

    /// Builds a label set from pairs in any order; later duplicates win and
    /// empty values are dropped.
    pub fn from_pairs<N: AsRef<str>, V: AsRef<str>>(pairs: &[(N, V)]) -> Labels {
        let mut b = LabelsBuilder::new();
        for (n, v) in pairs {
            b.set(n.as_ref(), v.as_ref());
        }
        b.build()
    }

    /// Takes labels that the caller already sorted and de-duplicated; checked in
    /// debug builds.
    pub fn from_sorted(labels: Vec<Label>) -> Labels {
        debug_assert!(labels.windows(2).all(|w| w[0].name < w[1].name));
        Labels { labels }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.labels[i].value.as_str())
    }

    /// The metric name, or "" when the set has none.
    pub fn metric_name(&self) -> &str {
        self.get(METRIC_NAME).unwrap_or("")
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.labels.iter()
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn as_slice(&self) -> &[Label] {
        &self.labels
    }

    pub fn into_vec(self) -> Vec<Label> {
        self.labels
    }

    /// A stable 64-bit hash of the label set (xxh3 over `name\xffvalue\xff...`),
    /// the same across runs and machines.
    pub fn fingerprint(&self) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for l in &self.labels {
            h.update(l.name.as_bytes());
            h.update(&[0xff]);
            h.update(l.value.as_bytes());
            h.update(&[0xff]);
        }
        h.digest()
    }

    /// The `fingerprint` of this set with `extra` labels set (replacing
    /// labels of the same name), without building that set. `extra` must be
    /// sorted by name and hold no empty values.
    pub fn fingerprint_with(&self, extra: &[(&str, &str)]) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        let mut put = |n: &str, v: &str| {
            h.update(n.as_bytes());
            h.update(&[0xff]);
            h.update(v.as_bytes());
            h.update(&[0xff]);
        };
        let mut rest = extra;
        for l in &self.labels {
            while let Some((&(n, v), tail)) = rest.split_first() {
                if n >= l.name.as_str() {
                    break;
                }
                put(n, v);
                rest = tail;
            }
            if !extra.iter().any(|(n, _)| *n == l.name) {
                put(&l.name, &l.value);
            }
        }
        for &(n, v) in rest {
            put(n, v);
        }
        h.digest()
    }

    /// A copy without the metric name, as functions and most binary operators
    /// return.
    pub fn without_metric_name(&self) -> Labels {
        Labels {
            labels: self
                .labels
                .iter()
                .filter(|l| l.name != METRIC_NAME)
                .cloned()
                .collect(),
        }
    }

    /// Keeps only the named labels (`by`/`on`), or drops them (`without`/`ignoring`,
    /// which also drops the metric name).
    pub fn project(&self, names: &[String], keep: bool) -> Labels {
        Labels {
            labels: self
                .labels
                .iter()
                .filter(|l| {
                    let listed = names.iter().any(|n| n == &l.name);
                    if keep {
                        listed
                    } else {
                        !listed && l.name != METRIC_NAME
                    }
                })
                .cloned()
                .collect(),
        }
    }

    /// Bytes this label set holds on the heap, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.labels.capacity() * std::mem::size_of::<Label>()
            + self
                .labels
                .iter()
                .map(|l| l.name.capacity() + l.value.capacity())
                .sum::<usize>()
    }
}

impl fmt::Display for Labels {
    /// Prometheus notation: `name{a="b", c="d"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric_name();
        f.write_str(name)?;
        let mut first = true;
        for l in self.labels.iter().filter(|l| l.name != METRIC_NAME) {
            f.write_str(if first { "{" } else { ", " })?;
            first = false;
            write!(f, "{}=\"", l.name)?;
            for c in l.value.chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '"' => f.write_str("\\\"")?,
                    '\n' => f.write_str("\\n")?,
                    c => write!(f, "{c}")?,
                }
            }
            f.write_str("\"")?;
        }
        if !first {
            f.write_str("}")?;
        } else if name.is_empty() {
            f.write_str("{}")?;
        }
        Ok(())
    }
}

/// Builds or edits a label set.
#[derive(Debug, Clone, Default)]
pub struct LabelsBuilder {
    labels: Vec<Label>,
}

impl LabelsBuilder {
    pub fn new() -> LabelsBuilder {
        LabelsBuilder { labels: Vec::new() }
    }

    pub fn from_labels(labels: &Labels) -> LabelsBuilder {
        LabelsBuilder {
            labels: labels.labels.clone(),
        }
    }

    /// Sets a label; an empty value deletes it.
    pub fn set(&mut self, name: &str, value: &str) -> &mut Self {
        match self.labels.binary_search_by(|l| l.name.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                self.labels.remove(i);
            }
            Ok(i) => value.clone_into(&mut self.labels[i].value),
            Err(_) if value.is_empty() => {}
            Err(i) => self.labels.insert(
                i,
                Label {
                    name: name.to_owned(),
                    value: value.to_owned(),
                },
            ),
        }
        self
    }

    pub fn del(&mut self, name: &str) -> &mut Self {
        self.labels.retain(|l| l.name != name);
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.labels[i].value.as_str())
    }

    pub fn build(&self) -> Labels {
        Labels {
            labels: self.labels.clone(),
        }
    }

    pub fn into_labels(self) -> Labels {
        Labels {
            labels: self.labels,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_with_equals_the_fingerprint_of_the_built_set() {
        let base = Labels::from_pairs(&[("b", "2"), ("instance", "x"), ("job", "j"), ("z", "9")]);
        for extra in [
            vec![],
            vec![("__name__", "ALERTS"), ("alertstate", "firing")],
            vec![("a", "1"), ("job", "other"), ("zz", "last")],
            vec![("instance", "y")],
        ] {
            let mut b = LabelsBuilder::from_labels(&base);
            for (n, v) in &extra {
                b.set(n, v);
            }
            assert_eq!(
                base.fingerprint_with(&extra),
                b.build().fingerprint(),
                "{extra:?}"
            );
        }
    }

    #[test]
    fn builder_sorts_and_drops_empty_values() {
        let l = Labels::from_pairs(&[("b", "2"), ("a", "1"), ("c", ""), ("b", "3")]);
        let names: Vec<_> = l
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(names, vec![("a", "1"), ("b", "3")]);
    }

    #[test]
    fn display_is_prometheus_notation() {
        let l = Labels::from_pairs(&[("__name__", "up"), ("job", "a\"b"), ("instance", "x")]);
        assert_eq!(l.to_string(), r#"up{instance="x", job="a\"b"}"#);
        assert_eq!(Labels::from_pairs(&[("__name__", "up")]).to_string(), "up");
        assert_eq!(Labels::empty().to_string(), "{}");
    }

    #[test]
    fn fingerprint_depends_on_names_and_values() {
        let a = Labels::from_pairs(&[("a", "bc")]);
        let b = Labels::from_pairs(&[("ab", "c")]);
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(
            a.fingerprint(),
            Labels::from_pairs(&[("a", "bc")]).fingerprint()
        );
    }

    #[test]
    fn project_by_and_without() {
        let l = Labels::from_pairs(&[("__name__", "m"), ("job", "j"), ("cpu", "0")]);
        assert_eq!(
            l.project(&["job".into()], true),
            Labels::from_pairs(&[("job", "j")])
        );
        assert_eq!(
            l.project(&["job".into()], false),
            Labels::from_pairs(&[("cpu", "0")])
        );
    }
}
