//! The HTTP application source: an application's Prometheus `/metrics` page
//! (text format 0.0.4 or OpenMetrics 1.0) or numbers from a JSON document.
//!
//! One [`HttpTarget`] per `sources.http[]` entry, run by the shared scrape
//! loop, which adds `job` (the entry's name) and `instance` (the URL's
//! `host:port`), `up` and `scrape_duration_seconds`, cuts the scrape at its
//! timeout and marks vanished series stale. A scrape is one GET:
//! - headers as Prometheus sends them: `Accept` preferring OpenMetrics, then
//!   the text format; `X-Prometheus-Scrape-Timeout-Seconds`; a bearer token
//!   read from `bearer_token_file` on every scrape (so a rotated token is
//!   used at once, as Prometheus does; the token is never logged); the
//!   configured extra headers. Environment proxies are not used.
//! - a non-2xx status, a body over `body_limit` (refused from
//!   `Content-Length`, or cut while streaming), an invalid line or more than
//!   `sample_limit` samples fail the whole scrape (`up` 0) with the reason
//!   in the log and in `hourglass_http_scrape_errors_total{job,instance,reason}`.
//! - the HTTP client (connection pool, TLS roots) is built on the first
//!   scrape and kept; a CA file that cannot be read fails scrapes until it can.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{spawn_scrape_loop, BoxFuture, SampleBuf, ScrapeConfig, ScrapeCtx, ScrapeStats};
use super::{Source, SourceError};
use crate::config::{Config, HttpFormat, HttpSource, HttpTls};
use crate::store::Store;
use crate::telemetry::MetricsWriter;

mod float;
mod json;
mod lex;
mod parse;

pub use json::{JsonMetrics, PathError};
pub use parse::{Format, ParseError, ParseOptions, Parser};

/// Prometheus 2's `Accept` header: OpenMetrics first, then the text format.
pub const ACCEPT_PROMETHEUS: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
const ACCEPT_JSON: &str = "application/json,*/*;q=0.1";
const TIMEOUT_HEADER: &str = "x-prometheus-scrape-timeout-seconds";
const USER_AGENT: &str = concat!("hourglass/", env!("CARGO_PKG_VERSION"));

/// Why a scrape failed. Messages never contain the URL (it may carry a
/// password) nor the bearer token.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    #[error("cannot read tls.ca_file {path}: {source}")]
    CaFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read bearer_token_file {path}: {source}")]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bearer_token_file {path} does not hold a usable token (visible ASCII only)")]
    TokenInvalid { path: PathBuf },
    #[error("request failed: {0}")]
    Request(String),
    #[error("server returned HTTP status {0}")]
    Status(reqwest::StatusCode),
    #[error("body size limit exceeded: the response is larger than {limit} bytes")]
    BodyLimit { limit: u64 },
    #[error("invalid exposition: {0}")]
    Parse(ParseError),
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl HttpError {
    /// The `reason` label of `hourglass_http_scrape_errors_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            HttpError::Client(_) | HttpError::CaFile { .. } => "tls",
            HttpError::TokenFile { .. } | HttpError::TokenInvalid { .. } => "token",
            HttpError::Request(_) => "request",
            HttpError::Status(_) => "status",
            HttpError::BodyLimit { .. } => "body_limit",
            HttpError::Parse(ParseError::SampleLimit { .. }) => "sample_limit",
            HttpError::Parse(_) | HttpError::Json(_) => "parse",
        }
    }
}

const REASONS: [&str; 7] = [
    "tls",
    "token",
    "request",
    "status",
    "body_limit",
    "sample_limit",
    "parse",
];

/// Counters of one HTTP target for the agent's own /metrics.
#[derive(Debug)]
pub struct HttpStats {
    pub job: String,
    pub instance: String,
    errors: [AtomicU64; REASONS.len()],
    /// Metric names of a JSON target, in configuration order.
    json_metrics: Vec<String>,
    /// Path errors of each of `json_metrics`.
    json_errors: Vec<AtomicU64>,
}

impl HttpStats {
    fn count(&self, reason: &str) {
        if let Some(i) = REASONS.iter().position(|r| *r == reason) {
            self.errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Failed scrapes of this target with `reason` so far.
    pub fn errors(&self, reason: &str) -> u64 {
        REASONS
            .iter()
            .position(|r| *r == reason)
            .map_or(0, |i| self.errors[i].load(Ordering::Relaxed))
    }

    /// Path errors of one JSON metric so far.
    pub fn json_path_errors(&self, metric: &str) -> u64 {
        self.json_metrics
            .iter()
            .position(|m| m == metric)
            .and_then(|i| self.json_errors.get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// One `sources.http[]` target, ready for the scrape loop.
pub struct HttpTarget {
    job: String,
    url: url::Url,
    tls: HttpTls,
    /// Sent with every request; handed to the client when it is built.
    headers: Option<HeaderMap>,
    client: Option<reqwest::Client>,
    bearer_token_file: Option<PathBuf>,
    body_limit: u64,
    body: Vec<u8>,
    mode: Mode,
    stats: Arc<HttpStats>,
}

enum Mode {
    Prometheus { parser: Parser, opts: ParseOptions },
    Json(JsonMetrics),
}

impl HttpTarget {
    pub fn new(cfg: &HttpSource) -> HttpTarget {
        let mut headers = HeaderMap::new();
        let accept = match cfg.format {
            HttpFormat::Prometheus => ACCEPT_PROMETHEUS,
            HttpFormat::Json => ACCEPT_JSON,
        };
        headers.insert(ACCEPT, HeaderValue::from_static(accept));
        for (k, v) in &cfg.headers {
            // Both were checked when the configuration was read.
            if let (Ok(k), Ok(mut v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                v.set_sensitive(true);
                headers.insert(k, v);
            }
        }
        let (mode, json_metrics) = match cfg.format {
            HttpFormat::Prometheus => (
                Mode::Prometheus {
                    parser: Parser::new(),
                    opts: ParseOptions {
                        honor_labels: cfg.honor_labels,
                        sample_limit: cfg.sample_limit,
                    },
                },
                Vec::new(),
            ),
            HttpFormat::Json => {
                let j = JsonMetrics::new(&cfg.metrics);
                let names = j.names().map(str::to_owned).collect();
                (Mode::Json(j), names)
            }
        };
        HttpTarget {
            job: cfg.name.clone(),
            url: cfg.url.clone(),
            tls: cfg.tls.clone(),
            headers: Some(headers),
            client: None,
            bearer_token_file: cfg.bearer_token_file.clone(),
            body_limit: cfg.body_limit,
            body: Vec::new(),
            mode,
            stats: Arc::new(HttpStats {
                job: cfg.name.clone(),
                instance: cfg.instance(),
                errors: Default::default(),
                json_errors: json_metrics.iter().map(|_| AtomicU64::new(0)).collect(),
                json_metrics,
            }),
        }
    }

    pub fn stats(&self) -> Arc<HttpStats> {
        self.stats.clone()
    }

    async fn scrape_inner(&mut self, ctx: ScrapeCtx, out: &mut SampleBuf) -> Result<(), HttpError> {
        let client = match &self.client {
            Some(c) => c.clone(),
            None => {
                let headers = self.headers.clone().unwrap_or_default();
                let c = build_client(&self.tls, headers)?;
                self.headers = None;
                self.client.insert(c).clone()
            }
        };
        let mut req = client
            .get(self.url.clone())
            .header(TIMEOUT_HEADER, timeout_seconds(ctx.timeout));
        if let Some(path) = &self.bearer_token_file {
            req = req.header(AUTHORIZATION, bearer(path)?);
        }
        let mut resp = req.send().await.map_err(request_error)?;
        if !resp.status().is_success() {
            return Err(HttpError::Status(resp.status()));
        }
        let limit = self.body_limit;
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(HttpError::BodyLimit { limit });
        }
        let format = Format::from_content_type(
            resp.headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
        );
        self.body.clear();
        while let Some(chunk) = resp.chunk().await.map_err(request_error)? {
            if (self.body.len() + chunk.len()) as u64 > limit {
                // Do not keep up to `limit` bytes for the next scrape.
                self.body = Vec::new();
                return Err(HttpError::BodyLimit { limit });
            }
            self.body.extend_from_slice(&chunk);
        }
        let result = match &mut self.mode {
            Mode::Prometheus { parser, opts } => parser
                .parse(&self.body, format, *opts, out)
                .map(drop)
                .map_err(HttpError::Parse),
            Mode::Json(j) => j
                .extract(&self.body, &self.job, &self.stats.json_errors, out)
                .map(drop)
                .map_err(HttpError::Json),
        };
        // One unusually large page should not pin its memory for good.
        if self.body.capacity() > 4 * self.body.len().max(64 * 1024) {
            self.body = Vec::new();
        }
        result
    }
}

impl Source for HttpTarget {
    fn scrape<'a>(
        &'a mut self,
        ctx: ScrapeCtx,
        out: &'a mut SampleBuf,
    ) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(async move {
            self.scrape_inner(ctx, out).await.map_err(|e| {
                self.stats.count(e.reason());
                SourceError::other(e)
            })
        })
    }
}

fn build_client(tls: &HttpTls, headers: HeaderMap) -> Result<reqwest::Client, HttpError> {
    let mut b = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .default_headers(headers)
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1);
    if tls.insecure_skip_verify {
        b = b.tls_danger_accept_invalid_certs(true);
    }
    if let Some(path) = &tls.ca_file {
        let pem = std::fs::read(path).map_err(|source| HttpError::CaFile {
            path: path.clone(),
            source,
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            HttpError::Client(format!("tls.ca_file {}: {}", path.display(), chain(&e)))
        })?;
        if certs.is_empty() {
            return Err(HttpError::Client(format!(
                "tls.ca_file {} holds no PEM certificate",
                path.display()
            )));
        }
        b = b.tls_certs_only(certs);
    }
    b.build().map_err(|e| HttpError::Client(chain(&e)))
}

/// `Authorization: Bearer <token>` from the file, trimmed as Prometheus does.
fn bearer(path: &Path) -> Result<HeaderValue, HttpError> {
    let token = std::fs::read_to_string(path).map_err(|source| HttpError::TokenFile {
        path: path.to_path_buf(),
        source,
    })?;
    let mut v = HeaderValue::from_str(&format!("Bearer {}", token.trim())).map_err(|_| {
        HttpError::TokenInvalid {
            path: path.to_path_buf(),
        }
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// Seconds as Prometheus writes them in the header: `4`, `0.5`.
fn timeout_seconds(d: Duration) -> HeaderValue {
    let s = format!("{}", d.as_secs_f64());
    HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static("0"))
}

fn request_error(e: reqwest::Error) -> HttpError {
    HttpError::Request(chain(&e.without_url()))
}

/// An error and its causes, `outer: inner: root`, skipping causes whose
/// text the outer message already contains.
fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        src = s.source();
    }
    msg
}

/// Spawns one scrape loop per `sources.http[]` target, adding their tasks
/// and scrape counters to the caller's lists; returns the HTTP counters for
/// [`write_stats`].
pub fn spawn_targets(
    cfg: &Config,
    store: &Arc<Store>,
    shutdown: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
    scrape_stats: &mut Vec<Arc<ScrapeStats>>,
) -> Vec<Arc<HttpStats>> {
    let mut http_stats = Vec::new();
    for h in &cfg.sources.http {
        let schedule = cfg.http_schedule(h);
        let target = HttpTarget::new(h);
        http_stats.push(target.stats());
        let sc = ScrapeConfig::new(&h.name, h.instance(), schedule.interval, schedule.timeout);
        let (task, st) = spawn_scrape_loop(target, store.clone(), sc, shutdown.clone());
        tasks.push(task);
        scrape_stats.push(st);
    }
    http_stats
}

/// Writes `hourglass_http_scrape_errors_total{job,instance,reason}` and
/// `hourglass_http_json_path_errors_total{job,metric}`.
pub fn write_stats(targets: &[Arc<HttpStats>], w: &mut MetricsWriter) {
    if targets.is_empty() {
        return;
    }
    let name = "hourglass_http_scrape_errors_total";
    w.family(name, "counter", "Failed HTTP scrapes by reason.");
    for t in targets {
        for (reason, c) in REASONS.iter().zip(&t.errors) {
            let labels = [
                ("job", t.job.as_str()),
                ("instance", t.instance.as_str()),
                ("reason", reason),
            ];
            w.sample(name, &labels, c.load(Ordering::Relaxed) as f64);
        }
    }
    if targets.iter().all(|t| t.json_metrics.is_empty()) {
        return;
    }
    let name = "hourglass_http_json_path_errors_total";
    w.family(
        name,
        "counter",
        "JSON metrics whose path gave no number, per scrape.",
    );
    for t in targets {
        for (metric, c) in t.json_metrics.iter().zip(&t.json_errors) {
            let labels = [("job", t.job.as_str()), ("metric", metric.as_str())];
            w.sample(name, &labels, c.load(Ordering::Relaxed) as f64);
        }
    }
}

#[cfg(test)]
mod tests;
