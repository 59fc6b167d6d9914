//! Label signatures: grouping (`by`/`without`), vector matching
//! (`on`/`ignoring`) and label-set hashes.

use super::value::SeriesMeta;
use crate::model::{Label, Labels, METRIC_NAME};
use xxhash_rust::xxh3::xxh3_64;

/// Hashes label pairs as `Labels::fingerprint` does (xxh3 over
/// `name\xffvalue\xff...`), in one shot over a reused buffer: much cheaper
/// than a streaming hasher for the few short labels of a series.
pub(crate) fn hash_labels<'a>(labels: impl Iterator<Item = &'a Label>) -> u64 {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with(|b| {
        let mut b = b.borrow_mut();
        b.clear();
        for l in labels {
            b.extend_from_slice(l.name.as_bytes());
            b.push(0xff);
            b.extend_from_slice(l.value.as_bytes());
            b.push(0xff);
        }
        xxh3_64(&b)
    })
}

/// A label list of `by`/`on` (keep) or `without`/`ignoring` (drop), sorted.
#[derive(Debug, Clone)]
pub(crate) struct Grouping {
    pub keep: bool,
    pub names: Vec<String>,
}

impl Grouping {
    pub fn new(keep: bool, names: &[String]) -> Grouping {
        let mut names = names.to_vec();
        names.sort();
        names.dedup();
        Grouping { keep, names }
    }

    fn selects(&self, name: &str) -> bool {
        let listed = self
            .names
            .binary_search_by(|n| n.as_str().cmp(name))
            .is_ok();
        if self.keep {
            listed
        } else {
            !listed && name != METRIC_NAME
        }
    }

    /// Hash of the selected labels of a series (the group or match signature).
    pub fn key(&self, meta: &SeriesMeta) -> u64 {
        if self.keep {
            if self.names.is_empty() {
                return 0;
            }
            // Few names: look them up rather than test every label. Comparing
            // lengths first spares reading most label names from memory.
            let labels = meta.labels.as_slice();
            hash_labels(self.names.iter().filter_map(|n| {
                if meta.drop_name && n == METRIC_NAME {
                    return None;
                }
                labels
                    .iter()
                    .find(|l| l.name.len() == n.len() && l.name == *n)
            }))
        } else {
            hash_labels(meta.iter().filter(|l| self.selects(&l.name)))
        }
    }

    /// The selected labels of a series.
    pub fn labels(&self, meta: &SeriesMeta) -> Labels {
        Labels::from_sorted(
            meta.iter()
                .filter(|l| self.selects(&l.name))
                .cloned()
                .collect(),
        )
    }
}
