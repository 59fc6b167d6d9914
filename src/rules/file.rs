//! Rule files in the Prometheus format: parsing and validation with
//! `file:line` for every error, all errors of a file at once, as
//! `promtool check rules` reports them.
//!
//! Lines come from the YAML parser itself, not from scanning the text: every
//! scalar we may need to point at (names, expressions, durations, label
//! values) is read as a `Spanned` string, which learns its line from the
//! position serde_norway attaches to an error raised at that scalar (see
//! `Spanned`). Flow-style YAML, anchors and odd indentation therefore get
//! the right lines too.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path;

use promql_parser::parser::value::ValueType;
use serde::de::{self, Deserialize, Deserializer, Visitor};

use super::rule::{parse_duration, AlertingRule, Group, RecordingRule, Rule, RuleSet};
use super::template::Template;
use crate::config::is_label_name;
use crate::model::{Labels, METRIC_NAME};

/// One problem in a rule file. `line` is 0 when no line is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleFileError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for RuleFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        } else {
            write!(f, "{}: {}", self.file, self.message)
        }
    }
}

impl std::error::Error for RuleFileError {}

/// Reads and validates rule files (globs already expanded by the caller).
/// Either every file is valid and the whole set is returned, or every error
/// of every file is.
pub fn load_files<P: AsRef<Path>>(paths: &[P]) -> Result<RuleSet, Vec<RuleFileError>> {
    let mut set = RuleSet::default();
    let mut errors = Vec::new();
    for p in paths {
        match read_rule_file(p.as_ref()) {
            Ok((name, text)) => match parse_rule_file(&text, &name) {
                Ok(groups) => set.groups.extend(groups),
                Err(e) => errors.extend(e),
            },
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(set)
    } else {
        Err(errors)
    }
}

/// Reads one rule file: its name (the path as given) and text.
pub fn read_rule_file(path: &Path) -> Result<(String, String), RuleFileError> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((name, text)),
        Err(e) => Err(RuleFileError {
            file: name,
            line: 0,
            message: format!("cannot read rule file: {e}"),
        }),
    }
}

/// Parses and validates the text of one rule file; `file` names it in
/// errors and in the groups' identity.
pub fn parse_rule_file(text: &str, file: &str) -> Result<Vec<Group>, Vec<RuleFileError>> {
    let err = |line: usize, message: String| RuleFileError {
        file: file.to_string(),
        line,
        message,
    };
    // An empty file (or only comments) has no groups, as in Prometheus.
    let raw: Option<RawFile> = serde_norway::from_str(text).map_err(|e| {
        let msg = e.to_string();
        // serde_norway appends " at line L column C"; we lead with file:line.
        let message = match msg.find(" at line ") {
            Some(i) => msg[..i].to_string(),
            None => msg,
        };
        vec![err(e.location().map_or(0, |l| l.line()), message)]
    })?;
    let raw = raw.unwrap_or_default();
    let mut errors = Vec::new();
    let mut groups = Vec::new();
    let mut names = HashSet::new();
    for g in raw.groups {
        let mut v = GroupValidator {
            file,
            errors: &mut errors,
            group: String::new(),
        };
        if let Some(group) = v.group(g, &mut names) {
            groups.push(group);
        }
    }
    if errors.is_empty() {
        Ok(groups)
    } else {
        // Labels come out of maps in name order; read top to bottom instead.
        errors.sort_by_key(|e| e.line);
        Err(errors)
    }
}

/// A YAML scalar and the line it is on (0 if unknown).
///
/// serde gives a `Deserialize` impl no position, but serde_norway attaches
/// the position of the current event to an error raised while visiting it.
/// So the visitor stores the string and raises a marker error; we take the
/// line from that error and return the stored string. The scalar event has
/// been consumed by then, so deserialization carries on normally. (Doing the
/// same for a mapping would leave its end event unread: scalars only.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Spanned {
    pub(crate) value: String,
    pub(crate) line: usize,
}

const PROBE: &str = "hourglass-span-probe";

impl<'de> Deserialize<'de> for Spanned {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Probe<'a>(&'a mut Option<String>);
        impl<'de> Visitor<'de> for Probe<'_> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
                *self.0 = Some(v.to_string());
                Err(E::custom(PROBE))
            }
        }
        let mut slot = None;
        match d.deserialize_str(Probe(&mut slot)) {
            Ok(()) => Err(de::Error::custom("expected a string")),
            Err(e) => match slot {
                Some(value) => Ok(Spanned {
                    value,
                    line: line_of(&e),
                }),
                None => Err(e),
            },
        }
    }
}

/// The line in serde_norway's error (its Debug form ends with
/// `, line: L, column: C)`); the error type is generic here, so its
/// `location()` is out of reach. A test pins this format.
fn line_of<E: fmt::Debug>(e: &E) -> usize {
    let s = format!("{e:?}");
    s.rfind(", line: ")
        .and_then(|i| {
            let rest = &s[i + 8..];
            rest[..rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len())]
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    groups: Vec<RawGroup>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    name: Option<Spanned>,
    #[serde(default)]
    interval: Option<Spanned>,
    #[serde(default)]
    query_offset: Option<Spanned>,
    #[serde(default)]
    limit: usize,
    #[serde(default)]
    labels: Option<BTreeMap<String, Spanned>>,
    #[serde(default)]
    rules: Option<Vec<RawRule>>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    record: Option<Spanned>,
    #[serde(default)]
    alert: Option<Spanned>,
    #[serde(default)]
    expr: Option<Spanned>,
    #[serde(default, rename = "for")]
    for_: Option<Spanned>,
    #[serde(default)]
    keep_firing_for: Option<Spanned>,
    #[serde(default)]
    labels: Option<BTreeMap<String, Spanned>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, Spanned>>,
}

impl RawRule {
    /// The line that best stands for the whole rule.
    fn line(&self) -> usize {
        [&self.alert, &self.record, &self.expr]
            .into_iter()
            .flatten()
            .map(|s| s.line)
            .find(|&l| l > 0)
            .unwrap_or(0)
    }
}

/// A Prometheus metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

struct GroupValidator<'a> {
    file: &'a str,
    errors: &'a mut Vec<RuleFileError>,
    group: String,
}

impl GroupValidator<'_> {
    fn push(&mut self, line: usize, message: String) {
        self.errors.push(RuleFileError {
            file: self.file.to_string(),
            line,
            message,
        });
    }

    fn duration(&mut self, what: &str, s: &Option<Spanned>, prefix: &str) -> Option<i64> {
        let s = s.as_ref()?;
        match parse_duration(&s.value) {
            Ok(ms) => Some(ms),
            Err(e) => {
                self.push(s.line, format!("{prefix}invalid '{what}': {e}"));
                None
            }
        }
    }

    fn labels(&mut self, map: &BTreeMap<String, Spanned>, prefix: &str, what: &str) {
        for (k, v) in map {
            let bad = !is_label_name(k) || (what == "label" && k == METRIC_NAME);
            if bad {
                self.push(v.line, format!("{prefix}invalid {what} name: {k}"));
            }
        }
    }

    fn group(&mut self, g: RawGroup, names: &mut HashSet<String>) -> Option<Group> {
        let before = self.errors.len();
        let name = g.name.clone().unwrap_or_default();
        let rules_raw = g.rules.unwrap_or_default();
        let line = if name.line > 0 {
            name.line
        } else {
            rules_raw.first().map_or(0, RawRule::line)
        };
        self.group = name.value.clone();
        if name.value.is_empty() {
            self.push(line, "group name must not be empty".into());
        } else if !names.insert(name.value.clone()) {
            self.push(
                line,
                format!("group name {:?} is repeated in the same file", name.value),
            );
        }
        let interval_ms = self
            .duration("interval", &g.interval, "")
            .filter(|&ms| ms > 0);
        let query_offset_ms = self.duration("query_offset", &g.query_offset, "");
        let group_labels = g.labels.unwrap_or_default();
        self.labels(&group_labels, &format!("group {:?}: ", name.value), "label");
        let mut rules = Vec::new();
        for (i, r) in rules_raw.into_iter().enumerate() {
            if let Some(rule) = self.rule(i + 1, r, &group_labels) {
                rules.push(rule);
            }
        }
        (self.errors.len() == before).then(|| Group {
            name: name.value,
            file: self.file.to_string(),
            line,
            interval_ms,
            query_offset_ms,
            limit: g.limit,
            labels: Labels::from_pairs(
                &group_labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.value.as_str()))
                    .collect::<Vec<_>>(),
            ),
            rules,
        })
    }

    fn rule(
        &mut self,
        index: usize,
        r: RawRule,
        group_labels: &BTreeMap<String, Spanned>,
    ) -> Option<Rule> {
        let before = self.errors.len();
        let line = r.line();
        let alert = r.alert.clone().filter(|s| !s.value.is_empty());
        let record = r.record.clone().filter(|s| !s.value.is_empty());
        let name = alert
            .as_ref()
            .or(record.as_ref())
            .map_or("", |s| s.value.as_str());
        let prefix = format!("group {:?}, rule {index}, {name:?}: ", self.group);
        match (&alert, &record) {
            (Some(_), Some(rec)) => self.push(
                rec.line,
                format!("{prefix}only one of 'record' and 'alert' must be set"),
            ),
            (None, None) => self.push(
                line,
                format!("{prefix}one of 'record' or 'alert' must be set"),
            ),
            _ => {}
        }
        let expr_src = r.expr.clone().unwrap_or_default();
        let expr_line = if expr_src.line > 0 {
            expr_src.line
        } else {
            line
        };
        let expr = if expr_src.value.trim().is_empty() {
            self.push(
                expr_line,
                format!("{prefix}field 'expr' must be set in rule"),
            );
            None
        } else {
            match crate::promql::parse(&expr_src.value) {
                Ok(e) => match e.value_type() {
                    ValueType::Vector | ValueType::Scalar => Some(e),
                    t => {
                        self.push(expr_line, format!("{prefix}expression must be an instant vector or a scalar, not a {t}"));
                        None
                    }
                },
                Err(e) => {
                    self.push(
                        expr_line,
                        format!("{prefix}could not parse expression: {e}"),
                    );
                    None
                }
            }
        };
        let labels = r.labels.unwrap_or_default();
        let annotations = r.annotations.unwrap_or_default();
        self.labels(&labels, &prefix, "label");
        self.labels(&annotations, &prefix, "annotation");
        // Group labels first, rule labels override them.
        let mut merged: BTreeMap<String, Spanned> = group_labels.clone();
        merged.extend(labels);

        if let Some(rec) = &record {
            let at = rec.line;
            if !annotations.is_empty() {
                self.push(
                    at,
                    format!("{prefix}invalid field 'annotations' in recording rule"),
                );
            }
            if r.for_
                .as_ref()
                .is_some_and(|s| parse_duration(&s.value) != Ok(0))
            {
                self.push(at, format!("{prefix}invalid field 'for' in recording rule"));
            }
            if r.keep_firing_for
                .as_ref()
                .is_some_and(|s| parse_duration(&s.value) != Ok(0))
            {
                self.push(
                    at,
                    format!("{prefix}invalid field 'keep_firing_for' in recording rule"),
                );
            }
            if rec.value.contains(['{', '}']) {
                self.push(at, format!("{prefix}braces present in the recording rule name; should it be in expr?: {}", rec.value));
            } else if !is_metric_name(&rec.value) {
                self.push(
                    at,
                    format!("{prefix}invalid recording rule name: {}", rec.value),
                );
            }
            let expr = expr?;
            return (self.errors.len() == before && alert.is_none()).then(|| {
                Rule::Recording(RecordingRule {
                    record: rec.value.clone(),
                    expr,
                    expr_text: expr_src.value.clone(),
                    labels: Labels::from_pairs(
                        &merged
                            .iter()
                            .map(|(k, v)| (k.as_str(), v.value.as_str()))
                            .collect::<Vec<_>>(),
                    ),
                    line,
                })
            });
        }
        let alert = alert?;
        let for_ms = self.duration("for", &r.for_, &prefix).unwrap_or(0);
        let keep_ms = self
            .duration("keep_firing_for", &r.keep_firing_for, &prefix)
            .unwrap_or(0);
        let tmpl_name = format!("__alert_{}", alert.value);
        let mut templates = |what: &str, map: &BTreeMap<String, Spanned>| {
            let mut out = Vec::new();
            for (k, v) in map {
                match Template::parse(&tmpl_name, &v.value) {
                    Ok(t) => out.push((k.clone(), t)),
                    Err(e) => self.push(v.line, format!("{prefix}{what} {k:?}: {e}")),
                }
            }
            out
        };
        let label_templates = templates("label", &merged);
        let annotation_templates = templates("annotation", &annotations);
        let expr = expr?;
        (self.errors.len() == before).then(|| {
            Rule::Alerting(AlertingRule {
                name: alert.value.clone(),
                expr,
                expr_text: expr_src.value.clone(),
                for_ms,
                keep_firing_for_ms: keep_ms,
                labels: label_templates,
                annotations: annotation_templates,
                line,
            })
        })
    }
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
