//! The series index: labels → series, postings (label name → value → sorted
//! series slots) and the label order that `select` returns series in.
//!
//! Matchers are resolved on bitsets over slots: each matcher becomes either
//! the union of some postings lists ("these series") or the complement of
//! such a union ("all but these"), and the sets are intersected. Only when
//! no matcher names a positive set does the result start from every series.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

use super::mem;
use crate::model::{Labels, MatchOp, Matcher};

/// Bits of a series id that hold its slot; the rest is a generation that
/// changes when a slot is reused, so that a stale `SeriesRef` is refused.
pub(crate) const SLOT_BITS: u32 = 24;
pub(crate) const MAX_SLOTS: usize = 1 << SLOT_BITS;

pub(crate) fn slot_of(id: u32) -> usize {
    (id & ((1 << SLOT_BITS) - 1)) as usize
}

/// A set of slots.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Bitset {
    words: Vec<u64>,
}

impl Bitset {
    fn with_slots(n: usize) -> Bitset {
        Bitset {
            words: vec![0; n.div_ceil(64)],
        }
    }

    fn set(&mut self, i: usize) {
        let w = i / 64;
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
        }
        self.words[w] |= 1 << (i % 64);
    }

    fn clear(&mut self, i: usize) {
        if let Some(w) = self.words.get_mut(i / 64) {
            *w &= !(1 << (i % 64));
        }
    }

    pub(crate) fn contains(&self, i: usize) -> bool {
        self.words
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn and(&mut self, o: &Bitset) {
        for (i, w) in self.words.iter_mut().enumerate() {
            *w &= o.words.get(i).copied().unwrap_or(0);
        }
    }

    fn and_not(&mut self, o: &Bitset) {
        for (w, x) in self.words.iter_mut().zip(&o.words) {
            *w &= !x;
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(i * 64 + b)
            })
        })
    }
}

/// What one matcher selects.
enum Sel {
    /// Exactly these series.
    Only(Bitset),
    /// Every series but these.
    AllBut(Bitset),
}

#[derive(Default)]
pub(crate) struct Index {
    by_labels: HashMap<Arc<Labels>, u32>,
    ordered: BTreeMap<Arc<Labels>, u32>,
    postings: HashMap<Box<str>, HashMap<Box<str>, Vec<u32>>>,
    live: Bitset,
    /// Per slot: labels and id of its series, while it has one.
    slots: Vec<Option<(Arc<Labels>, u32)>>,
    /// Generation the next series in each slot gets.
    gens: Vec<u8>,
    /// Freed slots, reused oldest first so that a generation comes round
    /// again as late as possible.
    free: VecDeque<u32>,
    /// Each slot's position in label order, rebuilt at the first query
    /// after the series changed: sorting a query's series then compares
    /// integers instead of label strings behind several pointers.
    ranks: Mutex<Ranks>,
}

#[derive(Default)]
struct Ranks {
    valid: bool,
    by_slot: Vec<u32>,
}

impl Index {
    pub(crate) fn len(&self) -> usize {
        self.by_labels.len()
    }

    pub(crate) fn get(&self, labels: &Labels) -> Option<u32> {
        self.by_labels.get(labels).copied()
    }

    /// Adds a series and returns its id, or None when no slot is left.
    pub(crate) fn insert(&mut self, labels: Arc<Labels>) -> Option<u32> {
        let slot = match self.free.pop_front() {
            Some(s) => s as usize,
            None if self.slots.len() < MAX_SLOTS => {
                self.slots.push(None);
                self.gens.push(0);
                self.slots.len() - 1
            }
            None => return None,
        };
        let id = (u32::from(self.gens[slot]) << SLOT_BITS) | slot as u32;
        for l in labels.iter() {
            let values = match self.postings.get_mut(l.name.as_str()) {
                Some(v) => v,
                None => self.postings.entry(l.name.as_str().into()).or_default(),
            };
            let list = match values.get_mut(l.value.as_str()) {
                Some(v) => v,
                None => values.entry(l.value.as_str().into()).or_default(),
            };
            let at = list.partition_point(|&s| s < slot as u32);
            list.insert(at, slot as u32);
        }
        self.live.set(slot);
        self.ranks.get_mut().valid = false;
        self.slots[slot] = Some((labels.clone(), id));
        self.by_labels.insert(labels.clone(), id);
        self.ordered.insert(labels, id);
        Some(id)
    }

    /// Removes the series with this id, if it is still there.
    pub(crate) fn remove(&mut self, id: u32) -> bool {
        let slot = slot_of(id);
        let Some((labels, live_id)) = self.slots.get(slot).cloned().flatten() else {
            return false;
        };
        if live_id != id {
            return false;
        }
        for l in labels.iter() {
            let Some(values) = self.postings.get_mut(l.name.as_str()) else {
                continue;
            };
            if let Some(list) = values.get_mut(l.value.as_str()) {
                if let Ok(at) = list.binary_search(&(slot as u32)) {
                    list.remove(at);
                }
                mem::shrink_loose(list);
                if list.is_empty() {
                    values.remove(l.value.as_str());
                }
            }
            if values.is_empty() {
                self.postings.remove(l.name.as_str());
            }
        }
        self.by_labels.remove(&labels);
        self.ordered.remove(&labels);
        self.live.clear(slot);
        self.ranks.get_mut().valid = false;
        self.slots[slot] = None;
        self.gens[slot] = self.gens[slot].wrapping_add(1);
        self.free.push_back(slot as u32);
        true
    }

    /// Slots of the series matching all matchers.
    pub(crate) fn matching(&self, matchers: &[Matcher]) -> Bitset {
        let mut only: Option<Bitset> = None;
        let mut but: Vec<Bitset> = Vec::new();
        for m in matchers {
            match self.resolve(m) {
                Sel::Only(b) => match &mut only {
                    Some(o) => o.and(&b),
                    None => only = Some(b),
                },
                Sel::AllBut(b) => but.push(b),
            }
        }
        let mut set = only.unwrap_or_else(|| self.live.clone());
        for b in &but {
            set.and_not(b);
        }
        set
    }

    fn resolve(&self, m: &Matcher) -> Sel {
        let values = self.postings.get(m.name.as_str());
        let mut set = Bitset::with_slots(self.slots.len());
        let mut add = |list: &Vec<u32>| {
            for &s in list {
                set.set(s as usize);
            }
        };
        // Equality needs no scan of the values.
        match (&m.op, m.value.is_empty()) {
            (MatchOp::Equal, false) => {
                if let Some(l) = values.and_then(|v| v.get(m.value.as_str())) {
                    add(l);
                }
                return Sel::Only(set);
            }
            (MatchOp::NotEqual, false) => {
                if let Some(l) = values.and_then(|v| v.get(m.value.as_str())) {
                    add(l);
                }
                return Sel::AllBut(set);
            }
            _ => {}
        }
        // A matcher that accepts "" also accepts series without the label
        // (Prometheus semantics): it excludes the series whose value it
        // rejects. Otherwise it includes those whose value it accepts.
        let empty_ok = m.is_match("");
        for (v, list) in values.into_iter().flatten() {
            if m.is_match(v) != empty_ok {
                add(list);
            }
        }
        if empty_ok {
            Sel::AllBut(set)
        } else {
            Sel::Only(set)
        }
    }

    /// The series in `set`, ordered by labels.
    pub(crate) fn in_order(&self, set: &Bitset) -> Vec<(Arc<Labels>, u32)> {
        let n = set.count();
        let total = self.ordered.len();
        // Sorting n label sets costs about n·log n comparisons of ~5 string
        // pairs; walking the whole ordered map costs one bit test per series.
        let log = usize::BITS - n.leading_zeros();
        if n.saturating_mul(log as usize).saturating_mul(8) < total {
            let mut ranks = self.ranks.lock();
            if !ranks.valid {
                ranks.by_slot.clear();
                ranks.by_slot.resize(self.slots.len(), u32::MAX);
                for (i, &id) in self.ordered.values().enumerate() {
                    ranks.by_slot[slot_of(id)] = i as u32;
                }
                ranks.valid = true;
            }
            let mut order: Vec<(u32, usize)> = set
                .iter()
                .map(|s| (ranks.by_slot.get(s).copied().unwrap_or(u32::MAX), s))
                .collect();
            drop(ranks);
            order.sort_unstable();
            order
                .into_iter()
                .filter_map(|(_, s)| self.slots.get(s).cloned().flatten())
                .collect()
        } else {
            let mut v = Vec::with_capacity(n);
            for (l, &id) in &self.ordered {
                if set.contains(slot_of(id)) {
                    v.push((l.clone(), id));
                }
            }
            v
        }
    }

    /// Label names with the slots of each value, for the metadata queries.
    pub(crate) fn postings(&self) -> impl Iterator<Item = (&str, &HashMap<Box<str>, Vec<u32>>)> {
        self.postings.iter().map(|(k, v)| (&**k, v))
    }

    pub(crate) fn values_of(&self, name: &str) -> Option<&HashMap<Box<str>, Vec<u32>>> {
        self.postings.get(name)
    }

    /// The id of the series in a slot, if it holds one.
    pub(crate) fn id_of(&self, slot: usize) -> Option<u32> {
        self.slots.get(slot).and_then(|s| s.as_ref()).map(|s| s.1)
    }

    /// Heap bytes of the index, including the label sets it shares with
    /// the series.
    pub(crate) fn heap_bytes(&self) -> usize {
        let ptr = std::mem::size_of::<usize>();
        let mut b = mem::table_bytes(self.by_labels.capacity(), 2 * ptr);
        // A B-tree leaf holds up to 11 entries, ~2/3 full on average.
        b += self.ordered.len() * mem::alloc_size(11 * (ptr + 4) + 16) * 3 / 22;
        b += mem::vec_bytes(&self.slots) + mem::vec_bytes(&self.gens);
        b += mem::alloc_size(self.free.capacity() * 4);
        b += mem::alloc_size(self.live.words.capacity() * 8);
        b += mem::vec_bytes(&self.ranks.lock().by_slot);
        let entry = std::mem::size_of::<(Box<str>, HashMap<Box<str>, Vec<u32>>)>();
        b += mem::table_bytes(self.postings.capacity(), entry);
        for (name, values) in &self.postings {
            b += mem::alloc_size(name.len());
            b += mem::table_bytes(
                values.capacity(),
                std::mem::size_of::<(Box<str>, Vec<u32>)>(),
            );
            for (v, list) in values {
                b += mem::alloc_size(v.len()) + mem::vec_bytes(list);
            }
        }
        for (labels, _) in self.slots.iter().flatten() {
            b += labels_bytes(labels);
        }
        b
    }
}

/// Heap bytes of a shared label set: the Arc block and every string.
fn labels_bytes(l: &Labels) -> usize {
    let strings: usize = l
        .iter()
        .map(|l| mem::alloc_size(l.name.capacity()) + mem::alloc_size(l.value.capacity()))
        .sum();
    let string_bytes: usize = l
        .iter()
        .map(|l| l.name.capacity() + l.value.capacity())
        .sum();
    // heap_bytes counts the label vector's capacity plus the strings.
    let vec = l.heap_bytes() - string_bytes;
    mem::alloc_size(2 * std::mem::size_of::<usize>() + std::mem::size_of::<Labels>())
        + mem::alloc_size(vec)
        + strings
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    fn re(op: &str, name: &str, pat: &str) -> Matcher {
        let r = Regex::new(&format!("^(?:{pat})$")).unwrap();
        let op = if op == "=~" {
            MatchOp::Re(r)
        } else {
            MatchOp::NotRe(r)
        };
        Matcher::new(op, name, pat)
    }

    fn names(ix: &Index, ms: &[Matcher]) -> Vec<String> {
        ix.in_order(&ix.matching(ms))
            .iter()
            .map(|(l, _)| l.to_string())
            .collect()
    }

    fn index() -> Index {
        let mut ix = Index::default();
        for (n, job, extra) in [
            ("up", "node", ""),
            ("up", "pg", ""),
            ("load", "node", "x"),
            ("load", "", "y"),
        ] {
            let l = Labels::from_pairs(&[("__name__", n), ("job", job), ("extra", extra)]);
            ix.insert(Arc::new(l)).unwrap();
        }
        ix
    }

    #[test]
    fn equality_and_inequality() {
        let ix = index();
        let eq = |n: &str, v: &str| Matcher::new(MatchOp::Equal, n, v);
        let ne = |n: &str, v: &str| Matcher::new(MatchOp::NotEqual, n, v);
        assert_eq!(
            names(&ix, &[eq("__name__", "up")]),
            [r#"up{job="node"}"#, r#"up{job="pg"}"#]
        );
        assert_eq!(names(&ix, &[eq("job", "pg")]), [r#"up{job="pg"}"#]);
        assert!(names(&ix, &[eq("job", "nope")]).is_empty());
        // != also selects series without the label.
        assert_eq!(
            names(&ix, &[ne("job", "node")]),
            [r#"load{extra="y"}"#, r#"up{job="pg"}"#]
        );
        // ="" selects series without the label, !="" those with it.
        assert_eq!(names(&ix, &[eq("job", "")]), [r#"load{extra="y"}"#]);
        assert_eq!(names(&ix, &[ne("extra", "")]).len(), 2);
        assert_eq!(
            names(&ix, &[eq("__name__", "load"), ne("extra", "y")]),
            [r#"load{extra="x", job="node"}"#]
        );
        assert_eq!(names(&ix, &[]).len(), 4);
    }

    #[test]
    fn regex_matchers_and_empty_match() {
        let ix = index();
        assert_eq!(names(&ix, &[re("=~", "job", "n.*")]).len(), 2);
        // "p.*|" matches the empty string: series without `job` come too.
        assert_eq!(
            names(&ix, &[re("=~", "job", "p.*|")]),
            [r#"load{extra="y"}"#, r#"up{job="pg"}"#]
        );
        assert_eq!(
            names(&ix, &[re("!~", "job", "n.*")]),
            [r#"load{extra="y"}"#, r#"up{job="pg"}"#]
        );
        // !~ of a pattern matching "" rejects series without the label.
        assert_eq!(names(&ix, &[re("!~", "job", "node|")]), [r#"up{job="pg"}"#]);
        assert_eq!(names(&ix, &[re("=~", "job", ".*")]).len(), 4);
        assert_eq!(names(&ix, &[re("=~", "job", ".+")]).len(), 3);
        assert_eq!(names(&ix, &[re("=~", "nolabel", ".+")]).len(), 0);
    }

    #[test]
    fn removal_frees_slots_and_postings() {
        let mut ix = index();
        let id = ix
            .get(&Labels::from_pairs(&[("__name__", "up"), ("job", "pg")]))
            .unwrap();
        assert!(ix.remove(id));
        assert!(!ix.remove(id));
        assert!(ix.values_of("job").unwrap().get("pg").is_none());
        let again = ix
            .insert(Arc::new(Labels::from_pairs(&[("a", "b")])))
            .unwrap();
        assert_eq!(slot_of(again), slot_of(id));
        assert_ne!(again, id);
        assert_eq!(ix.len(), 4);
    }
}
