//! PromQL evaluation over the store, with Prometheus 3 semantics.
//!
//! Queries are parsed by the `promql-parser` crate; this module evaluates its
//! AST. Every node is evaluated over all steps of a query at once (an instant
//! query is a range query with a single step), so that each selector reads the
//! store exactly once and range functions slide their window over the selected
//! samples instead of selecting again for every step.
//!
//! Like the store, this module does no I/O and never reads the clock: the
//! evaluation time is always a parameter.

mod aggregate;
mod binary;
mod eval;
mod functions;
mod grouping;
mod stats;
mod steps;
pub mod test_script;
mod value;

use promql_parser::parser::value::ValueType;

use crate::model::{Labels, Sample};
use crate::store::Store;

/// The parsed query, as `parse` returns it.
pub use promql_parser::parser::Expr;

/// Settings of the query engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOptions {
    /// How far back an instant vector selector looks for the latest sample.
    pub lookback_ms: i64,
    /// Most samples a query may hold in memory at once; more is an error.
    pub max_samples: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_ms: 300_000,
            max_samples: 50_000_000,
        }
    }
}

/// The most steps a range query may have, as in Prometheus.
pub const MAX_RANGE_POINTS: i64 = 11_000;

/// Evaluates parsed PromQL expressions against a store.
#[derive(Debug, Clone)]
pub struct Engine {
    opts: EngineOptions,
    default_subquery_step_ms: i64,
}

/// The result of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(f64),
    String(String),
    Vector(Vec<InstantSample>),
    Matrix(Vec<RangeSeries>),
}

impl Value {
    /// The `resultType` the Prometheus HTTP API reports for this value.
    pub fn result_type(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::String(_) => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    pub labels: Labels,
    pub t: i64,
    pub v: f64,
}

/// One series of a range vector (matrix).
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// How the HTTP API should report an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The query itself is wrong: HTTP 400, `errorType: bad_data`.
    BadData,
    /// The query is valid but failed while running: HTTP 422, `errorType: execution`.
    Execution,
}

/// Errors of parsing or evaluating a query.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PromqlError {
    /// The parser rejected the query.
    #[error("parse error: {0}")]
    Parse(String),
    /// The query uses a part of PromQL this engine does not implement.
    #[error("{0}")]
    Unsupported(String),
    /// The query is well-formed but cannot run as asked (e.g. a range query
    /// of a range vector, or a bad step).
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// Evaluation failed, e.g. many-to-many matching.
    #[error("{0}")]
    Eval(String),
    /// The query would hold more samples than allowed (the limit is carried).
    #[error(
        "query processing would load too many samples into memory in query execution (limit {0})"
    )]
    TooManySamples(usize),
}

impl PromqlError {
    /// Whether the HTTP API should answer `bad_data` (400) or `execution` (422).
    pub fn kind(&self) -> ErrorKind {
        match self {
            PromqlError::Parse(_) | PromqlError::Unsupported(_) | PromqlError::InvalidQuery(_) => {
                ErrorKind::BadData
            }
            PromqlError::Eval(_) | PromqlError::TooManySamples(_) => ErrorKind::Execution,
        }
    }

    /// The Prometheus API `errorType` string for this error.
    pub fn error_type(&self) -> &'static str {
        match self.kind() {
            ErrorKind::BadData => "bad_data",
            ErrorKind::Execution => "execution",
        }
    }
}

pub(crate) type Result<T, E = PromqlError> = std::result::Result<T, E>;

/// Parses a query and rejects the parts of PromQL this engine does not
/// implement, so that they fail up front with a clear message instead of
/// giving a wrong answer.
pub fn parse(query: &str) -> Result<Expr> {
    let expr = promql_parser::parser::parse(query).map_err(PromqlError::Parse)?;
    check_supported(&expr)?;
    Ok(expr)
}

/// Walks the AST and fails on the first unsupported construct.
pub fn check_supported(expr: &Expr) -> Result<()> {
    match expr {
        Expr::Aggregate(a) => {
            aggregate::check_supported(a)?;
            if let Some(p) = &a.param {
                check_supported(p)?;
            }
            check_supported(&a.expr)
        }
        Expr::Unary(u) => check_supported(&u.expr),
        Expr::Binary(b) => {
            binary::check_supported(b)?;
            check_supported(&b.lhs)?;
            check_supported(&b.rhs)
        }
        Expr::Paren(p) => check_supported(&p.expr),
        Expr::Subquery(s) => check_supported(&s.expr),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::VectorSelector(vs) => eval::check_selector(vs),
        Expr::MatrixSelector(ms) => eval::check_selector(&ms.vs),
        Expr::Call(c) => {
            functions::check_supported(c)?;
            c.args.args.iter().try_for_each(|a| check_supported(a))
        }
        Expr::Extension(_) => Err(PromqlError::Unsupported(
            "extension expressions are not supported".into(),
        )),
    }
}

impl Engine {
    pub fn new(opts: EngineOptions) -> Engine {
        Engine {
            opts,
            default_subquery_step_ms: 60_000,
        }
    }

    /// Sets the step of subqueries written without one (`x[1h:]`); Prometheus
    /// uses the global evaluation interval. The default is one minute.
    pub fn with_default_subquery_step_ms(mut self, step_ms: i64) -> Engine {
        if step_ms > 0 {
            self.default_subquery_step_ms = step_ms;
        }
        self
    }

    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Evaluates `expr` at time `t_ms`.
    pub fn instant_query(&self, store: &Store, expr: &Expr, t_ms: i64) -> Result<Value> {
        check_supported(expr)?;
        // Prometheus evaluates an instant query as a one-step range query
        // with an interval of 1 ms.
        let steps = value::Steps {
            start: t_ms,
            end: t_ms,
            step: 1,
        };
        let mut ev = self.evaluator(store, t_ms, t_ms);
        let v = ev.eval(expr, steps)?;
        Ok(eval::into_instant_value(v))
    }

    /// Evaluates `expr` at every step from `start_ms` to `end_ms`; the
    /// result is always a matrix, sorted by labels.
    pub fn range_query(
        &self,
        store: &Store,
        expr: &Expr,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<Value> {
        check_supported(expr)?;
        if step_ms <= 0 {
            return Err(PromqlError::InvalidQuery(
                "zero or negative query resolution step widths are not accepted".into(),
            ));
        }
        if end_ms < start_ms {
            return Err(PromqlError::InvalidQuery(
                "end timestamp must not be before start time".into(),
            ));
        }
        if (end_ms - start_ms) / step_ms >= MAX_RANGE_POINTS {
            return Err(PromqlError::InvalidQuery(format!(
                "exceeded maximum resolution of {MAX_RANGE_POINTS} points per timeseries"
            )));
        }
        let vt = expr.value_type();
        if vt != ValueType::Vector && vt != ValueType::Scalar {
            let name = if vt == ValueType::Matrix {
                "range vector"
            } else {
                "string"
            };
            return Err(PromqlError::InvalidQuery(format!(
                "invalid expression type \"{name}\" for range query, must be Scalar or instant Vector"
            )));
        }
        let steps = value::Steps {
            start: start_ms,
            end: end_ms,
            step: step_ms,
        };
        let mut ev = self.evaluator(store, start_ms, end_ms);
        let v = ev.eval(expr, steps)?;
        eval::into_range_value(v, steps)
    }

    fn evaluator<'a>(&'a self, store: &'a Store, start: i64, end: i64) -> eval::Evaluator<'a> {
        eval::Evaluator::new(store, &self.opts, self.default_subquery_step_ms, start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rejects_unsupported_functions_and_modifiers() {
        let err = parse("histogram_count(x)").unwrap_err();
        assert_eq!(
            err,
            PromqlError::Unsupported("unsupported function histogram_count".into())
        );
        assert_eq!(err.error_type(), "bad_data");
        assert!(matches!(
            parse("limitk(2, x)"),
            Err(PromqlError::Unsupported(_))
        ));
        assert!(matches!(
            parse("a + fill(0) b"),
            Err(PromqlError::Unsupported(_))
        ));
        assert!(matches!(
            parse("x{a=\"1\" or b=\"2\"}"),
            Err(PromqlError::Unsupported(_))
        ));
        assert!(matches!(
            parse("sum(rate(x[5m]"),
            Err(PromqlError::Parse(_))
        ));
        assert!(parse("sum by (job) (rate(x[5m]))").is_ok());
    }

    #[test]
    fn error_kinds_map_to_api_error_types() {
        assert_eq!(PromqlError::Eval("x".into()).error_type(), "execution");
        assert_eq!(PromqlError::TooManySamples(1).error_type(), "execution");
        assert_eq!(
            PromqlError::InvalidQuery("x".into()).error_type(),
            "bad_data"
        );
    }

    fn store_with(series: &[(&str, &[(i64, f64)])]) -> Store {
        let store = Store::new(Default::default());
        for (name, samples) in series {
            let l = Labels::from_pairs(&[("__name__", *name), ("job", "a")]);
            for &(t, v) in *samples {
                store.append_labels(&l, t, v).unwrap();
            }
        }
        store
    }

    #[test]
    fn instant_query_results_by_type() {
        let store = store_with(&[("x", &[(1_000, 1.0), (2_000, 2.0), (3_000, 3.0)])]);
        let engine = Engine::new(EngineOptions::default());
        let q = |s: &str| {
            engine
                .instant_query(&store, &parse(s).unwrap(), 3_000)
                .unwrap()
        };
        assert_eq!(q("1 + 1"), Value::Scalar(2.0));
        assert_eq!(q("\"s\""), Value::String("s".into()));
        let Value::Vector(v) = q("x") else { panic!() };
        assert_eq!((v[0].t, v[0].v), (3_000, 3.0));
        assert_eq!(v[0].labels.metric_name(), "x");
        // A range selector gives the raw samples of the left-open window.
        let Value::Matrix(m) = q("x[2s]") else {
            panic!()
        };
        assert_eq!(
            m[0].samples,
            vec![Sample { t: 2_000, v: 2.0 }, Sample { t: 3_000, v: 3.0 }]
        );
        assert_eq!(m[0].labels.metric_name(), "x");
    }

    #[test]
    fn range_query_of_a_scalar_is_one_series() {
        let store = store_with(&[]);
        let engine = Engine::new(EngineOptions::default());
        let v = engine
            .range_query(&store, &parse("time()").unwrap(), 0, 2_000, 1_000)
            .unwrap();
        let Value::Matrix(m) = v else { panic!() };
        assert_eq!(m.len(), 1);
        assert!(m[0].labels.is_empty());
        assert_eq!(
            m[0].samples.iter().map(|s| s.v).collect::<Vec<_>>(),
            vec![0.0, 1.0, 2.0]
        );
    }

    #[test]
    fn too_many_samples_is_an_execution_error() {
        let samples: Vec<(i64, f64)> = (0..100).map(|i| (i * 1_000, i as f64)).collect();
        let store = store_with(&[("x", &samples)]);
        let engine = Engine::new(EngineOptions {
            max_samples: 50,
            ..Default::default()
        });
        let err = engine
            .instant_query(&store, &parse("sum_over_time(x[1m])").unwrap(), 99_000)
            .unwrap_err();
        assert_eq!(err, PromqlError::TooManySamples(50));
        assert_eq!(err.kind(), ErrorKind::Execution);
        assert!(engine
            .instant_query(&store, &parse("sum_over_time(x[30s])").unwrap(), 99_000)
            .is_ok());
    }

    #[test]
    fn unsupported_functions_fail_at_evaluation_too() {
        // An expression built without `parse` still gets a clear error.
        let e = promql_parser::parser::parse("sort_by_label(x, \"a\")").unwrap();
        let store = store_with(&[]);
        let engine = Engine::new(EngineOptions::default());
        assert_eq!(
            engine.instant_query(&store, &e, 0).unwrap_err(),
            PromqlError::Unsupported("unsupported function sort_by_label".into())
        );
    }

    #[test]
    fn range_query_rejects_range_vectors_and_bad_steps() {
        let store = Store::new(Default::default());
        let engine = Engine::new(EngineOptions::default());
        let e = parse("x[5m]").unwrap();
        assert!(matches!(
            engine.range_query(&store, &e, 0, 10, 1),
            Err(PromqlError::InvalidQuery(_))
        ));
        let e = parse("x").unwrap();
        assert!(matches!(
            engine.range_query(&store, &e, 0, 10, 0),
            Err(PromqlError::InvalidQuery(_))
        ));
        assert!(matches!(
            engine.range_query(&store, &e, 0, 100_000_000, 1),
            Err(PromqlError::InvalidQuery(_))
        ));
    }
}
