//! The HTTP API: the parts of Prometheus's HTTP API that Grafana and
//! `curl` users rely on, the agent's own `/metrics`, and health endpoints.
//!
//! Queries run on the blocking pool (evaluation is CPU-bound), at most
//! `MAX_CONCURRENT_QUERIES` at a time, each cut at its timeout.

mod json;
mod params;
mod rules;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use promql_parser::parser::Expr;
use tokio::sync::Semaphore;

use crate::model::{Labels, Matcher};
use crate::promql::{self, Engine, PromqlError};
use crate::rules::manager::{ReloadHandle, RuleManager};
use crate::store::Store;
use crate::telemetry::{QueryMetrics, Registry};

pub use params::{parse_duration, parse_time};

/// Queries evaluated at once; more wait (within their timeout). Bounds the
/// memory and CPU a burst of dashboard refreshes can take from the agent.
const MAX_CONCURRENT_QUERIES: usize = 4;
/// Default and largest query timeout, as Prometheus's `query.timeout`.
const QUERY_TIMEOUT: Duration = Duration::from_secs(120);
/// Prometheus refuses range queries with more points per series than this.
const MAX_POINTS: i64 = 11_000;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<Store>,
    pub engine: Arc<Engine>,
    pub registry: Arc<Registry>,
    pub queries: Arc<QueryMetrics>,
    pub ready: Arc<AtomicBool>,
    pub limiter: Arc<Semaphore>,
    /// The wall clock, injectable for tests; returns ms since the epoch.
    pub now: fn() -> i64,
    /// The rule manager, for `/api/v1/rules` and `/api/v1/alerts`.
    pub rules: Option<Arc<RuleManager>>,
    /// Requests a rule reload, for `POST /-/reload`.
    pub reload: Option<ReloadHandle>,
}

impl ApiState {
    pub fn new(store: Arc<Store>, engine: Arc<Engine>, registry: Arc<Registry>) -> ApiState {
        let queries = Arc::new(QueryMetrics::default());
        let q = queries.clone();
        registry.register(move |w| q.collect(w));
        ApiState {
            store,
            engine,
            registry,
            queries,
            ready: Arc::new(AtomicBool::new(false)),
            limiter: Arc::new(Semaphore::new(MAX_CONCURRENT_QUERIES)),
            now: now_ms,
            rules: None,
            reload: None,
        }
    }
}

/// Milliseconds since the Unix epoch by the wall clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/query", get(query).post(query))
        .route("/api/v1/query_range", get(query_range).post(query_range))
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/status/buildinfo", get(buildinfo))
        .route(
            "/api/v1/metadata",
            get(|| async { ok_json(json::success(|o| o.push_str("{}"))) }),
        )
        .route(
            "/api/v1/query_exemplars",
            get(|| async { ok_json(json::success(|o| o.push_str("[]"))) }),
        )
        .route("/api/v1/rules", get(rules::rules).post(rules::rules))
        .route("/api/v1/alerts", get(rules::alerts))
        .route(
            "/-/reload",
            axum::routing::post(rules::reload).put(rules::reload),
        )
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(|| async { "Hourglass is Healthy.\n" }))
        .route("/-/ready", get(ready))
        .with_state(state)
}

/// An API failure in Prometheus's terms.
struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    fn bad_data(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "bad_data",
            message: message.into(),
        }
    }
}

impl From<PromqlError> for ApiError {
    fn from(e: PromqlError) -> ApiError {
        if e.kind() == promql::ErrorKind::BadData {
            ApiError::bad_data(e.to_string())
        } else {
            ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                kind: "execution",
                message: e.to_string(),
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json::error(self.kind, &self.message);
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

fn ok_json(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

type ApiResult = Result<Response, ApiError>;

fn param_time(p: &params::Params, name: &str, default: i64) -> Result<i64, ApiError> {
    match p.get(name) {
        None | Some("") => Ok(default),
        Some(s) => parse_time(s)
            .map_err(|e| ApiError::bad_data(format!("invalid parameter {name:?}: {e}"))),
    }
}

fn parse_query(p: &params::Params) -> Result<Expr, ApiError> {
    let q = p
        .get("query")
        .ok_or_else(|| ApiError::bad_data("invalid parameter \"query\": no query given"))?;
    promql::parse(q).map_err(|e| ApiError::bad_data(format!("invalid parameter \"query\": {e}")))
}

fn timeout_of(p: &params::Params) -> Result<Duration, ApiError> {
    match p.get("timeout") {
        None | Some("") => Ok(QUERY_TIMEOUT),
        Some(s) => {
            let ms = parse_duration(s)
                .map_err(|e| ApiError::bad_data(format!("invalid parameter \"timeout\": {e}")))?;
            Ok(Duration::from_millis(ms.max(1) as u64).min(QUERY_TIMEOUT))
        }
    }
}

/// Runs an evaluation on the blocking pool under the concurrency limit and
/// the timeout, and records its duration.
async fn evaluate(
    st: &ApiState,
    timeout: Duration,
    f: impl FnOnce(&Engine, &Store) -> Result<promql::Value, PromqlError> + Send + 'static,
) -> Result<promql::Value, ApiError> {
    let timed_out = || ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        kind: "timeout",
        message: format!(
            "query timed out after {}",
            humantime::format_duration(timeout)
        ),
    };
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let permit = tokio::time::timeout_at(deadline, st.limiter.clone().acquire_owned())
        .await
        .map_err(|_| timed_out())?
        .map_err(|_| ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "unavailable",
            message: "the agent is shutting down".into(),
        })?;
    let (engine, store) = (st.engine.clone(), st.store.clone());
    let task = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        f(&engine, &store)
    });
    let result = match tokio::time::timeout_at(deadline, task).await {
        Err(_) => Err(timed_out()),
        Ok(Err(join)) => Err(ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "internal",
            message: format!("query evaluation failed: {join}"),
        }),
        Ok(Ok(r)) => r.map_err(ApiError::from),
    };
    st.queries
        .observe(started.elapsed().as_secs_f64(), result.is_ok());
    result
}

async fn query(State(st): State<ApiState>, RawQuery(q): RawQuery, body: Bytes) -> ApiResult {
    let p = params::Params::parse(q.as_deref(), &body);
    let expr = parse_query(&p)?;
    let t = param_time(&p, "time", (st.now)())?;
    let timeout = timeout_of(&p)?;
    let value = evaluate(&st, timeout, move |e, s| e.instant_query(s, &expr, t)).await?;
    Ok(ok_json(json::success(|o| {
        json::push_query_data(o, &value, t)
    })))
}

async fn query_range(State(st): State<ApiState>, RawQuery(q): RawQuery, body: Bytes) -> ApiResult {
    let p = params::Params::parse(q.as_deref(), &body);
    let expr = parse_query(&p)?;
    let need = |name: &str| {
        p.get(name)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::bad_data(format!("invalid parameter {name:?}: missing")))
    };
    let start = parse_time(need("start")?)
        .map_err(|e| ApiError::bad_data(format!("invalid parameter \"start\": {e}")))?;
    let end = parse_time(need("end")?)
        .map_err(|e| ApiError::bad_data(format!("invalid parameter \"end\": {e}")))?;
    if end < start {
        return Err(ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    let step = parse_duration(need("step")?)
        .map_err(|e| ApiError::bad_data(format!("invalid parameter \"step\": {e}")))?;
    if step <= 0 {
        return Err(ApiError::bad_data(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > MAX_POINTS {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let timeout = timeout_of(&p)?;
    let value = evaluate(&st, timeout, move |e, s| {
        e.range_query(s, &expr, start, end, step)
    })
    .await?;
    Ok(ok_json(json::success(|o| {
        json::push_query_data(o, &value, end)
    })))
}

/// The matcher sets of `match[]` parameters; each is a series selector.
fn selectors(p: &params::Params) -> Result<Vec<Vec<Matcher>>, ApiError> {
    let mut sets = Vec::new();
    for m in p.all("match[]") {
        let bad = |why: String| ApiError::bad_data(format!("invalid parameter \"match[]\": {why}"));
        let expr = promql_parser::parser::parse(m).map_err(bad)?;
        let Expr::VectorSelector(vs) = expr else {
            return Err(bad(format!("{m:?} is not a series selector")));
        };
        let mut base: Vec<Matcher> = vs.matchers.matchers.clone();
        if let Some(name) = &vs.name {
            base.push(Matcher::new(
                crate::model::MatchOp::Equal,
                crate::model::METRIC_NAME,
                name,
            ));
        }
        if vs.matchers.or_matchers.is_empty() {
            sets.push(base);
        } else {
            for alt in &vs.matchers.or_matchers {
                let mut set = base.clone();
                set.extend(alt.iter().cloned());
                sets.push(set);
            }
        }
    }
    Ok(sets)
}

/// Series matching any of the selectors (all series when there are none).
fn matching_series(st: &ApiState, sets: &[Vec<Matcher>], mint: i64, maxt: i64) -> Vec<Arc<Labels>> {
    if sets.is_empty() {
        return st.store.series(&[], mint, maxt);
    }
    let mut all: Vec<Arc<Labels>> = sets
        .iter()
        .flat_map(|m| st.store.series(m, mint, maxt))
        .collect();
    all.sort();
    all.dedup();
    all
}

async fn series(State(st): State<ApiState>, RawQuery(q): RawQuery, body: Bytes) -> ApiResult {
    let p = params::Params::parse(q.as_deref(), &body);
    let sets = selectors(&p)?;
    if sets.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let mint = param_time(&p, "start", i64::MIN)?;
    let maxt = param_time(&p, "end", i64::MAX)?;
    let found = matching_series(&st, &sets, mint, maxt);
    Ok(ok_json(json::success(|o| {
        o.push('[');
        for (i, l) in found.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            json::push_labels(o, l);
        }
        o.push(']');
    })))
}

async fn labels(State(st): State<ApiState>, RawQuery(q): RawQuery, body: Bytes) -> ApiResult {
    let p = params::Params::parse(q.as_deref(), &body);
    let sets = selectors(&p)?;
    let mint = param_time(&p, "start", i64::MIN)?;
    let maxt = param_time(&p, "end", i64::MAX)?;
    let names = if sets.len() <= 1 {
        st.store
            .label_names(sets.first().map(Vec::as_slice).unwrap_or(&[]), mint, maxt)
    } else {
        let mut names: Vec<String> = sets
            .iter()
            .flat_map(|m| st.store.label_names(m, mint, maxt))
            .collect();
        names.sort();
        names.dedup();
        names
    };
    Ok(ok_json(json::success(|o| json::push_str_array(o, &names))))
}

async fn label_values(
    State(st): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let p = params::Params::parse(q.as_deref(), b"");
    if !crate::config::is_label_name(&name) {
        return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
    }
    let sets = selectors(&p)?;
    let mint = param_time(&p, "start", i64::MIN)?;
    let maxt = param_time(&p, "end", i64::MAX)?;
    let values = if sets.len() <= 1 {
        st.store.label_values(
            &name,
            sets.first().map(Vec::as_slice).unwrap_or(&[]),
            mint,
            maxt,
        )
    } else {
        let mut v: Vec<String> = sets
            .iter()
            .flat_map(|m| st.store.label_values(&name, m, mint, maxt))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    Ok(ok_json(json::success(|o| json::push_str_array(o, &values))))
}

async fn buildinfo() -> Response {
    ok_json(json::success(|o| {
        o.push_str("{\"version\":");
        json::push_str(o, env!("CARGO_PKG_VERSION"));
        o.push_str(
            ",\"revision\":\"\",\"branch\":\"\",\"buildUser\":\"\",\"buildDate\":\"\",\"goVersion\":\"\",\"application\":\"hourglass\"}",
        );
    }))
}

async fn metrics(State(st): State<ApiState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        st.registry.render(),
    )
        .into_response()
}

async fn ready(State(st): State<ApiState>) -> Response {
    if st.ready.load(Ordering::Relaxed) {
        "Hourglass is Ready.\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n").into_response()
    }
}
