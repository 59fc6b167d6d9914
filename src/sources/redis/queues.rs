//! Queue lengths: `redis_queue_length{key,type}` for the keys of `queues`.
//!
//! A scrape is a few pipelined round trips, never one per key:
//! 1. (with `INFO`) `SCAN 0 MATCH glob COUNT 1000` for every glob, and
//!    `TYPE` for every exact key, each followed by the length command of the
//!    type that key had on the previous scrape (`LLEN`, `XLEN`, `ZCARD`,
//!    `SCARD`);
//! 2. more `SCAN` pages, all globs in one pipeline, until each walk ends or
//!    its glob has matched more than `max_queue_keys` keys;
//! 3. `TYPE` plus the previous scrape's length command for the keys found;
//! 4. only for keys that are new or changed type: the right length command.
//!
//! In the steady state that is 1 round trip without globs and 2 plus the
//! `SCAN` pages with them. A key matched by several patterns is reported
//! once. Keys of other types (string, hash) give no series. A missing exact
//! key is reported as `0` with `type="none"`: Celery deletes an empty
//! list, so an absent queue is an empty one, and alerting on its length
//! keeps working; a glob's keys that vanish simply disappear.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use ::redis::{Pipeline, Value};

use crate::sources::SampleBuf;

/// `SCAN`'s `COUNT`: keys the server looks at per call. Larger means fewer
/// round trips over a big keyspace, each blocking the server a bit longer.
const SCAN_COUNT: usize = 1000;

/// Which command of a pipeline a reply answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    Info,
    ConfigGet,
    /// A `SCAN` page of glob `i`.
    Scan(usize),
    /// `TYPE` of key `i`.
    Type(usize),
    /// The length command of key `i`, for the type it was sent with.
    Len(usize, KeyType),
}

/// A key's type as `TYPE` names it, reduced to what has a queue length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyType {
    /// The key does not exist.
    None,
    List,
    Stream,
    ZSet,
    Set,
    /// string, hash, a module's type: no length reported.
    Other,
}

impl KeyType {
    fn parse(s: &[u8]) -> KeyType {
        match s {
            b"none" => KeyType::None,
            b"list" => KeyType::List,
            b"stream" => KeyType::Stream,
            b"zset" => KeyType::ZSet,
            b"set" => KeyType::Set,
            _ => KeyType::Other,
        }
    }

    fn len_command(self) -> Option<&'static str> {
        match self {
            KeyType::List => Some("LLEN"),
            KeyType::Stream => Some("XLEN"),
            KeyType::ZSet => Some("ZCARD"),
            KeyType::Set => Some("SCARD"),
            KeyType::None | KeyType::Other => None,
        }
    }

    /// The `type` label.
    fn label(self) -> &'static str {
        match self {
            KeyType::None => "none",
            KeyType::List => "list",
            KeyType::Stream => "stream",
            KeyType::ZSet => "zset",
            KeyType::Set => "set",
            KeyType::Other => "other",
        }
    }
}

/// The configured patterns and what the previous scrape learnt about them.
#[derive(Debug)]
pub(super) struct Queues {
    exact: Vec<Vec<u8>>,
    globs: Vec<Glob>,
    max_keys: usize,
    /// Each key's type on the previous scrape, to send its length command
    /// along with `TYPE` and save a round trip.
    types: HashMap<Vec<u8>, KeyType>,
    /// This scrape's keys: the exact ones first, then those found by globs.
    keys: Vec<Key>,
    seen: HashSet<Vec<u8>>,
    /// The first server error of this scrape's queue commands.
    pub error: Option<String>,
}

#[derive(Debug)]
struct Glob {
    pattern: String,
    truncated_total: u64,
    cursor: u64,
    found: usize,
    done: bool,
    truncated: bool,
}

#[derive(Debug)]
struct Key {
    name: Vec<u8>,
    exact: bool,
    /// What `TYPE` said this scrape.
    actual: Option<KeyType>,
    len: Option<f64>,
}

impl Queues {
    pub fn new(patterns: &[String], max_keys: usize) -> Queues {
        let mut exact: Vec<Vec<u8>> = Vec::new();
        let mut globs: Vec<Glob> = Vec::new();
        for p in patterns {
            match classify(p) {
                Pattern::Exact(k) if !exact.contains(&k) => exact.push(k),
                Pattern::Glob(g) if !globs.iter().any(|x| x.pattern == g) => globs.push(Glob {
                    pattern: g,
                    truncated_total: 0,
                    cursor: 0,
                    found: 0,
                    done: false,
                    truncated: false,
                }),
                _ => {}
            }
        }
        Queues {
            exact,
            globs,
            max_keys,
            types: HashMap::new(),
            keys: Vec::new(),
            seen: HashSet::new(),
            error: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.globs.is_empty()
    }

    /// Round trip 1: resets this scrape's state and plans the first `SCAN`
    /// pages and the exact keys' `TYPE` (+ length).
    pub fn plan_first(&mut self, pipe: &mut Pipeline, slots: &mut Vec<Slot>) {
        self.keys.clear();
        self.seen.clear();
        self.error = None;
        for g in &mut self.globs {
            (g.cursor, g.found, g.done, g.truncated) = (0, 0, false, false);
        }
        for k in &self.exact {
            self.seen.insert(k.clone());
            self.keys.push(Key {
                name: k.clone(),
                exact: true,
                actual: None,
                len: None,
            });
        }
        self.plan_scans(pipe, slots);
        self.plan_types(pipe, slots);
    }

    /// Plans the next `SCAN` page of every glob still walking; false when
    /// none is.
    pub fn plan_scans(&mut self, pipe: &mut Pipeline, slots: &mut Vec<Slot>) -> bool {
        let mut any = false;
        for (i, g) in self.globs.iter().enumerate().filter(|(_, g)| !g.done) {
            pipe.cmd("SCAN")
                .arg(g.cursor)
                .arg("MATCH")
                .arg(&g.pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT);
            slots.push(Slot::Scan(i));
            any = true;
        }
        any
    }

    /// Ends every walk still going (the scrape's time for scanning is up);
    /// those globs count as truncated.
    pub fn stop_scans(&mut self) {
        for g in self.globs.iter_mut().filter(|g| !g.done) {
            g.done = true;
            g.truncated = true;
        }
    }

    /// Plans `TYPE` for the keys not typed yet, each with the length
    /// command of its previous type; false when there are none.
    pub fn plan_types(&mut self, pipe: &mut Pipeline, slots: &mut Vec<Slot>) -> bool {
        let mut any = false;
        for (i, k) in self
            .keys
            .iter()
            .enumerate()
            .filter(|(_, k)| k.actual.is_none())
        {
            pipe.cmd("TYPE").arg(&k.name);
            slots.push(Slot::Type(i));
            if let Some(t) = self.types.get(&k.name) {
                if let Some(cmd) = t.len_command() {
                    pipe.cmd(cmd).arg(&k.name);
                    slots.push(Slot::Len(i, *t));
                }
            }
            any = true;
        }
        any
    }

    /// Plans the length command of keys whose type was not the guessed
    /// one; false when there are none.
    pub fn plan_lengths(&mut self, pipe: &mut Pipeline, slots: &mut Vec<Slot>) -> bool {
        let mut any = false;
        for (i, k) in self.keys.iter().enumerate() {
            if let (Some(t), None) = (k.actual, k.len) {
                if let Some(cmd) = t.len_command() {
                    pipe.cmd(cmd).arg(&k.name);
                    slots.push(Slot::Len(i, t));
                    any = true;
                }
            }
        }
        any
    }

    /// Takes the reply to a queue command.
    pub fn take(&mut self, slot: Slot, v: Value) {
        if let Value::ServerError(e) = &v {
            // WRONGTYPE when a key changed type between TYPE and the length
            // command: the next round trip asks again. Anything else (NOPERM
            // for a restricted user) is reported once per scrape.
            if e.code() != "WRONGTYPE" && self.error.is_none() {
                self.error = Some(e.to_string());
            }
            if let Slot::Scan(i) = slot {
                if let Some(g) = self.globs.get_mut(i) {
                    g.done = true;
                }
            }
            return;
        }
        match slot {
            Slot::Scan(i) => self.take_scan(i, v),
            Slot::Type(i) => {
                if let (Some(k), Some(t)) = (self.keys.get_mut(i), as_bytes(&v)) {
                    k.actual = Some(KeyType::parse(t));
                }
            }
            Slot::Len(i, sent) => {
                if let (Some(k), Value::Int(n)) = (self.keys.get_mut(i), v) {
                    // A reply for a type the key no longer has is dropped;
                    // TYPE, earlier in the same pipeline, is the truth.
                    if k.actual == Some(sent) {
                        k.len = Some(n as f64);
                    }
                }
            }
            Slot::Info | Slot::ConfigGet => {}
        }
    }

    fn take_scan(&mut self, i: usize, v: Value) {
        let Some(g) = self.globs.get_mut(i) else {
            return;
        };
        let Value::Array(mut parts) = v else {
            g.done = true;
            return;
        };
        let keys = match parts.pop() {
            Some(Value::Array(keys)) => keys,
            _ => Vec::new(),
        };
        g.cursor = parts
            .first()
            .and_then(as_bytes)
            .and_then(|c| std::str::from_utf8(c).ok()?.parse().ok())
            .unwrap_or(0);
        for key in keys {
            let Value::BulkString(name) = key else {
                continue;
            };
            if self.seen.contains(&name) {
                continue;
            }
            if g.found == self.max_keys {
                g.truncated = true;
                break;
            }
            g.found += 1;
            self.seen.insert(name.clone());
            self.keys.push(Key {
                name,
                exact: false,
                actual: None,
                len: None,
            });
        }
        g.done = g.truncated || g.cursor == 0;
    }

    /// Writes this scrape's series and keeps the keys' types for the next.
    pub fn write(&mut self, out: &mut SampleBuf) {
        self.types.clear();
        for k in self.keys.drain(..) {
            let Some(t) = k.actual else { continue };
            let v = match (t, k.len) {
                (KeyType::None, _) if k.exact => 0.0,
                (KeyType::None | KeyType::Other, _) | (_, None) => continue,
                (_, Some(n)) => n,
            };
            let name: Cow<'_, str> = String::from_utf8_lossy(&k.name);
            out.begin("redis_queue_length")
                .label("key", &name)
                .label("type", t.label())
                .value(v);
            if t.len_command().is_some() {
                self.types.insert(k.name, t);
            }
        }
        for g in &mut self.globs {
            if g.truncated {
                g.truncated_total += 1;
            }
            out.begin("redis_queue_keys")
                .label("pattern", &g.pattern)
                .value(g.found as f64);
            out.begin("redis_queue_keys_truncated_total")
                .label("pattern", &g.pattern)
                .value(g.truncated_total as f64);
        }
    }
}

fn as_bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes()),
        Value::Okay => Some(b"OK"),
        _ => None,
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Pattern {
    Exact(Vec<u8>),
    Glob(String),
}

/// A pattern with an unescaped `*`, `?` or `[` is a glob (for `SCAN
/// MATCH`, as written); anything else is one key, its `\` escapes removed.
fn classify(p: &str) -> Pattern {
    let mut key = Vec::with_capacity(p.len());
    let mut bytes = p.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'*' | b'?' | b'[' => return Pattern::Glob(p.to_owned()),
            b'\\' => key.push(bytes.next().unwrap_or(b'\\')),
            _ => key.push(b),
        }
    }
    Pattern::Exact(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_classified() {
        assert_eq!(classify("celery"), Pattern::Exact(b"celery".to_vec()));
        assert_eq!(classify("rq:queue:*"), Pattern::Glob("rq:queue:*".into()));
        assert_eq!(classify("q[12]"), Pattern::Glob("q[12]".into()));
        assert_eq!(classify("a?"), Pattern::Glob("a?".into()));
        assert_eq!(classify(r"lit\*eral"), Pattern::Exact(b"lit*eral".to_vec()));
        assert_eq!(classify(r"end\"), Pattern::Exact(b"end\\".to_vec()));
        let q = Queues::new(&["a".into(), "a".into(), "b*".into(), "b*".into()], 10);
        assert_eq!((q.exact.len(), q.globs.len()), (1, 1));
    }

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    /// Drives the state machine with scripted replies, as the server would.
    #[test]
    fn rounds_dedupe_cap_and_guess_types() {
        let mut q = Queues::new(&["celery".into(), "jobs:*".into()], 2);
        q.types.insert(b"celery".to_vec(), KeyType::List);
        let (mut pipe, mut slots) = (::redis::pipe(), Vec::new());
        q.plan_first(&mut pipe, &mut slots);
        assert_eq!(
            slots,
            vec![Slot::Scan(0), Slot::Type(0), Slot::Len(0, KeyType::List)]
        );
        q.take(
            Slot::Scan(0),
            Value::Array(vec![
                bulk("0"),
                Value::Array(vec![
                    bulk("jobs:a"),
                    bulk("jobs:a"),
                    bulk("jobs:b"),
                    bulk("jobs:c"),
                ]),
            ]),
        );
        q.take(Slot::Type(0), Value::SimpleString("list".into()));
        q.take(Slot::Len(0, KeyType::List), Value::Int(5));
        assert!(q.globs[0].truncated && q.globs[0].done);

        let (mut pipe, mut slots) = (::redis::pipe(), Vec::new());
        assert!(!q.plan_scans(&mut pipe, &mut slots));
        assert!(q.plan_types(&mut pipe, &mut slots));
        assert_eq!(slots, vec![Slot::Type(1), Slot::Type(2)]);
        q.take(Slot::Type(1), Value::SimpleString("stream".into()));
        q.take(Slot::Type(2), Value::SimpleString("string".into()));

        let (mut pipe, mut slots) = (::redis::pipe(), Vec::new());
        assert!(q.plan_lengths(&mut pipe, &mut slots));
        assert_eq!(slots, vec![Slot::Len(1, KeyType::Stream)]);
        q.take(Slot::Len(1, KeyType::Stream), Value::Int(3));

        let mut out = SampleBuf::new();
        q.write(&mut out);
        let got: Vec<_> = out
            .iter()
            .map(|s| {
                let l: Vec<_> = s.labels().map(|(_, v)| v.to_owned()).collect();
                (s.name().to_owned(), l.join(","), s.value)
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("redis_queue_length".into(), "celery,list".into(), 5.0),
                ("redis_queue_length".into(), "jobs:a,stream".into(), 3.0),
                ("redis_queue_keys".into(), "jobs:*".into(), 2.0),
                (
                    "redis_queue_keys_truncated_total".into(),
                    "jobs:*".into(),
                    1.0
                ),
            ]
        );
        assert_eq!(q.types.get(b"jobs:a".as_slice()), Some(&KeyType::Stream));
        assert_eq!(q.types.get(b"jobs:b".as_slice()), None);
    }

    #[test]
    fn missing_exact_key_is_an_empty_queue_and_a_changed_type_is_asked_again() {
        let mut q = Queues::new(&["gone".into(), "moved".into()], 10);
        q.types.insert(b"moved".to_vec(), KeyType::List);
        let (mut pipe, mut slots) = (::redis::pipe(), Vec::new());
        q.plan_first(&mut pipe, &mut slots);
        q.take(Slot::Type(0), Value::SimpleString("none".into()));
        q.take(Slot::Type(1), Value::SimpleString("zset".into()));
        // The guessed LLEN answered for a key that is a zset now.
        q.take(Slot::Len(1, KeyType::List), Value::Int(0));
        assert_eq!(q.keys[1].len, None);
        let (mut pipe, mut slots) = (::redis::pipe(), Vec::new());
        assert!(q.plan_lengths(&mut pipe, &mut slots));
        assert_eq!(slots, vec![Slot::Len(1, KeyType::ZSet)]);
        q.take(Slot::Len(1, KeyType::ZSet), Value::Int(4));
        let mut out = SampleBuf::new();
        q.write(&mut out);
        let got: Vec<_> = out
            .iter()
            .map(|s| {
                (
                    s.labels().map(|(_, v)| v).collect::<Vec<_>>().join(","),
                    s.value,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![("gone,none".into(), 0.0), ("moved,zset".into(), 4.0)]
        );
        assert!(q.error.is_none());
    }
}
