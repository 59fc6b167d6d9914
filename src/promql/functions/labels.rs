//! label_replace and label_join: they change series labels, not values.

use std::sync::Arc;

use promql_parser::parser::Expr;
use regex::Regex;

use super::string_arg;
use crate::model::LabelsBuilder;
use crate::promql::eval::Evaluator;
use crate::promql::value::{Batch, SeriesMeta, Steps};
use crate::promql::{PromqlError, Result};

/// label_replace(v, dst, replacement, src, regex): where `regex` matches
/// the whole value of `src`, sets `dst` to the expanded replacement.
pub(super) fn label_replace(ev: &mut Evaluator, args: &[&Expr], steps: Steps) -> Result<Batch> {
    let dst = string_arg(args[1])?;
    let repl = string_arg(args[2])?;
    let src = string_arg(args[3])?;
    let regex = string_arg(args[4])?;
    let re = Regex::new(&format!("^(?s:{regex})$")).map_err(|_| {
        PromqlError::Eval(format!(
            "invalid regular expression in label_replace(): {regex}"
        ))
    })?;
    if dst.is_empty() {
        return Err(PromqlError::Eval(
            "invalid destination label name in label_replace(): ".into(),
        ));
    }
    let mut b = ev.eval_vector(args[0], steps)?;
    let mut value = String::new();
    for meta in &mut b.series {
        let Some(caps) = re.captures(meta.get(src).unwrap_or("")) else {
            continue;
        };
        value.clear();
        caps.expand(repl, &mut value);
        *meta = set_label(meta, dst, &value);
    }
    b.uniform_names = false;
    b.resolve_duplicates(true)
}

/// label_join(v, dst, separator, src...): sets `dst` to the values of the
/// source labels joined by the separator.
pub(super) fn label_join(ev: &mut Evaluator, args: &[&Expr], steps: Steps) -> Result<Batch> {
    let dst = string_arg(args[1])?;
    let sep = string_arg(args[2])?;
    let srcs = args[3..]
        .iter()
        .map(|a| string_arg(a))
        .collect::<Result<Vec<_>>>()?;
    if let Some(bad) = srcs.iter().find(|s| s.is_empty()) {
        return Err(PromqlError::Eval(format!(
            "invalid source label name in label_join(): {bad}"
        )));
    }
    if dst.is_empty() {
        return Err(PromqlError::Eval(
            "invalid destination label name in label_join(): ".into(),
        ));
    }
    let mut b = ev.eval_vector(args[0], steps)?;
    for meta in &mut b.series {
        let joined = srcs
            .iter()
            .map(|s| meta.get(s).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(sep);
        *meta = set_label(meta, dst, &joined);
    }
    b.uniform_names = false;
    b.resolve_duplicates(true)
}

/// The effective labels of `meta` with one label set (or removed when the
/// value is empty).
fn set_label(meta: &SeriesMeta, name: &str, value: &str) -> SeriesMeta {
    let mut lb = LabelsBuilder::from_labels(&meta.materialize());
    lb.set(name, value);
    SeriesMeta::new(Arc::new(lb.into_labels()))
}
