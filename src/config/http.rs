//! `sources.http[]`: applications scraped over HTTP, either their Prometheus
//! `/metrics` page or a JSON document whose numbers are picked out by JSON
//! pointers.
//!
//! Everything that can be checked on a single value (URL, metric and label
//! names, JSON pointers, sizes, header names) is checked while deserializing,
//! so the error carries the file:line:column of that value; checks across
//! fields and targets (unique names, `metrics` only with `format: json`, a
//! timeout within the interval) happen in [`validate_http`].

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{de, Deserialize, Deserializer};

use super::{is_label_name, resolve_relative, Config, Schedule};
use crate::rules::file::is_metric_name;

/// Default `body_limit`: 10 MiB, far above any application's metrics page.
pub const DEFAULT_BODY_LIMIT: u64 = 10 * 1024 * 1024;
/// Default `sample_limit`: bounds the series one target can create per scrape.
pub const DEFAULT_SAMPLE_LIMIT: usize = 50_000;

/// One HTTP target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSource {
    /// The `job` label of the target's series; unique among HTTP sources.
    pub name: String,
    /// `http://` or `https://`; its `host:port` is the `instance` label.
    #[serde(deserialize_with = "de_url")]
    pub url: url::Url,
    #[serde(default)]
    pub format: HttpFormat,
    /// Defaults to `global.scrape_interval`.
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    /// Defaults to `global.scrape_timeout`, cut to the interval.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// false (default): `job`/`instance` labels on the page are kept as
    /// `exported_job`/`exported_instance`; true: the page's labels win.
    #[serde(default)]
    pub honor_labels: bool,
    /// Largest response body accepted, in bytes or with a unit (`10MiB`,
    /// `512KB`; KB/MB/GB are powers of 1024, as in Prometheus).
    #[serde(default = "default_body_limit", deserialize_with = "de_byte_size")]
    pub body_limit: u64,
    /// Most samples one scrape may produce; more fails the scrape.
    #[serde(default = "default_sample_limit")]
    pub sample_limit: usize,
    /// Sent as `Authorization: Bearer <content>`; read on every scrape so a
    /// rotated token is picked up. Relative to the config file's directory.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// Extra request headers.
    #[serde(default, deserialize_with = "de_headers")]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub tls: HttpTls,
    /// For `format: json`: which numbers to take from the document.
    #[serde(default)]
    pub metrics: Vec<JsonMetric>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpFormat {
    /// The Prometheus text format (0.0.4) or OpenMetrics 1.0, whichever the
    /// server answers with.
    #[default]
    Prometheus,
    /// A JSON document; see [`JsonMetric`].
    Json,
}

/// TLS settings of an `https://` target. Certificates are verified unless
/// `insecure_skip_verify` says otherwise.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpTls {
    pub insecure_skip_verify: bool,
    /// PEM bundle of the CAs to trust instead of the system's roots.
    pub ca_file: Option<PathBuf>,
}

/// One gauge taken from a JSON document.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonMetric {
    #[serde(deserialize_with = "de_metric_name")]
    pub name: String,
    /// An RFC 6901 JSON pointer, e.g. `/data/queue_stats/pending` or
    /// `/workers/0/busy`.
    #[serde(deserialize_with = "de_json_pointer")]
    pub path: String,
    /// Static labels added to the series.
    #[serde(default, deserialize_with = "de_labels")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, rename = "type")]
    pub kind: JsonMetricType,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JsonMetricType {
    #[default]
    Gauge,
    /// A value that only grows; its name must end in `_total`.
    Counter,
}

impl HttpSource {
    /// The `instance` label: `host:port` of the URL, the port made explicit
    /// from the scheme when the URL has none (Prometheus's convention).
    pub fn instance(&self) -> String {
        let host = self.url.host_str().unwrap_or("");
        match self.url.port_or_known_default() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }

    /// The URL with any password replaced, for logs and summaries.
    pub fn redacted_url(&self) -> String {
        let mut u = self.url.clone();
        if u.password().is_some() {
            let _ = u.set_password(Some("xxxxx"));
        }
        u.to_string()
    }

    /// Makes relative file paths relative to the configuration file's directory.
    pub fn resolve_paths(&mut self, config_file: &Path) {
        let base = Some(config_file);
        if let Some(p) = &mut self.bearer_token_file {
            *p = resolve_relative(base, p);
        }
        if let Some(p) = &mut self.tls.ca_file {
            *p = resolve_relative(base, p);
        }
    }
}

impl Config {
    /// Interval and timeout of one HTTP target after defaults.
    pub fn http_schedule(&self, h: &HttpSource) -> Schedule {
        self.schedule(h.interval, h.timeout)
    }
}

/// Checks across fields and targets; called by `Config::validate`.
pub(super) fn validate_http(cfg: &Config) -> Result<(), String> {
    let mut names = HashSet::new();
    for (i, h) in cfg.sources.http.iter().enumerate() {
        let at = format!("sources.http[{i}] ({:?})", h.name);
        if h.name.is_empty() || h.name.chars().any(char::is_control) {
            return Err(format!(
                "sources.http[{i}].name must be a non-empty name without control characters"
            ));
        }
        if !names.insert(h.name.as_str()) {
            return Err(format!(
                "{at}: the name is used twice; each HTTP source needs its own (it is the job label)"
            ));
        }
        if let Some(iv) = h.interval {
            super::positive(&format!("{at}.interval"), iv)?;
        }
        if let Some(t) = h.timeout {
            super::positive(&format!("{at}.timeout"), t)?;
            let iv = h.interval.unwrap_or(cfg.global.scrape_interval);
            if t > iv {
                return Err(format!(
                    "{at}: timeout ({}) must not exceed its interval ({})",
                    humantime::format_duration(t),
                    humantime::format_duration(iv)
                ));
            }
        }
        if h.sample_limit == 0 {
            return Err(format!("{at}: sample_limit must be at least 1"));
        }
        if h.bearer_token_file.is_some()
            && h.headers
                .keys()
                .any(|k| k.eq_ignore_ascii_case("authorization"))
        {
            return Err(format!(
                "{at}: set either bearer_token_file or an Authorization header, not both"
            ));
        }
        validate_metrics(h, &at)?;
    }
    Ok(())
}

fn validate_metrics(h: &HttpSource, at: &str) -> Result<(), String> {
    match h.format {
        HttpFormat::Prometheus if !h.metrics.is_empty() => {
            return Err(format!(
                "{at}: metrics are only for format: json (a Prometheus page names its own)"
            ))
        }
        HttpFormat::Json if h.metrics.is_empty() => {
            return Err(format!(
                "{at}: format: json needs metrics: [{{name, path}}, ...] to know what to take"
            ))
        }
        _ => {}
    }
    let mut series = HashSet::new();
    for m in &h.metrics {
        if m.kind == JsonMetricType::Counter && !m.name.ends_with("_total") {
            return Err(format!(
                "{at}: metric {} is a counter; counter names end in _total",
                m.name
            ));
        }
        for k in m.labels.keys() {
            if k == "job" || k == "instance" {
                return Err(format!(
                    "{at}: metric {}: label {k} is set by the scrape (job is the source's name, instance its host:port)",
                    m.name
                ));
            }
        }
        if !series.insert((&m.name, &m.labels)) {
            return Err(format!(
                "{at}: metric {} is listed twice with the same labels",
                m.name
            ));
        }
    }
    Ok(())
}

/// The `sources.http` lines of `hourglass check config`.
pub(super) fn summarize_http(cfg: &Config) -> String {
    let mut s = String::new();
    for h in &cfg.sources.http {
        let sc = cfg.http_schedule(h);
        let what = match h.format {
            HttpFormat::Prometheus => "prometheus".to_owned(),
            HttpFormat::Json => format!("json, {} metrics", h.metrics.len()),
        };
        s.push_str(&format!(
            "source http {}: {} ({what}), every {}, timeout {}\n",
            h.name,
            h.redacted_url(),
            humantime::format_duration(sc.interval),
            humantime::format_duration(sc.timeout)
        ));
    }
    s
}

fn default_body_limit() -> u64 {
    DEFAULT_BODY_LIMIT
}

fn default_sample_limit() -> usize {
    DEFAULT_SAMPLE_LIMIT
}

fn de_url<'de, D: Deserializer<'de>>(d: D) -> Result<url::Url, D::Error> {
    let s = String::deserialize(d)?;
    let u =
        url::Url::parse(&s).map_err(|e| de::Error::custom(format!("invalid URL {s:?}: {e}")))?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err(de::Error::custom(format!(
            "invalid URL {s:?}: the scheme must be http or https"
        )));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(de::Error::custom(format!("invalid URL {s:?}: no host")));
    }
    Ok(u)
}

fn de_metric_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if !is_metric_name(&s) {
        return Err(de::Error::custom(format!(
            "{s:?} is not a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)"
        )));
    }
    Ok(s)
}

fn de_labels<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let m = BTreeMap::<String, String>::deserialize(d)?;
    for k in m.keys() {
        if !is_label_name(k) || k.starts_with("__") {
            return Err(de::Error::custom(format!(
                "{k:?} is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"
            )));
        }
    }
    Ok(m)
}

/// An RFC 6901 JSON pointer: empty (the whole document) or `/`-separated
/// tokens in which `~` only appears as `~0` or `~1`.
pub fn check_json_pointer(p: &str) -> Result<(), String> {
    if !p.is_empty() && !p.starts_with('/') {
        return Err(format!(
            "{p:?} is not a JSON pointer: it must start with / (e.g. /data/queue_stats/pending)"
        ));
    }
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!(
                "{p:?} is not a JSON pointer: ~ must be written ~0 (and / inside a key ~1)"
            ));
        }
    }
    Ok(())
}

fn de_json_pointer<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    check_json_pointer(&s).map_err(de::Error::custom)?;
    Ok(s)
}

/// Headers the agent sets itself, which a configuration may not override.
const RESERVED_HEADERS: [&str; 3] = ["accept", "x-prometheus-scrape-timeout-seconds", "host"];

fn de_headers<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let m = BTreeMap::<String, String>::deserialize(d)?;
    for (k, v) in &m {
        if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
            return Err(de::Error::custom(format!(
                "{k:?} is not a valid header name"
            )));
        }
        if RESERVED_HEADERS.iter().any(|r| k.eq_ignore_ascii_case(r)) {
            return Err(de::Error::custom(format!(
                "header {k:?} is set by hourglass and cannot be configured"
            )));
        }
        // The value is not echoed: it may be a credential.
        if reqwest::header::HeaderValue::from_str(v).is_err() {
            return Err(de::Error::custom(format!(
                "the value of header {k:?} is not a valid header value (visible ASCII only)"
            )));
        }
    }
    Ok(m)
}

/// Parses `1048576`, `512KB`, `10MiB`, `1.5GB` (KB/MB/GB are powers of 1024).
pub fn parse_byte_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("{s:?} is not a size (e.g. 10MiB, 512KB, 1048576)")),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 10MiB, 512KB, 1048576)"))?;
    let bytes = n * mult as f64;
    if !(1.0..=(1u64 << 40) as f64).contains(&bytes) {
        return Err(format!("{s:?}: a size must be between 1 byte and 1TiB"));
    }
    Ok(bytes as u64)
}

fn de_byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Int(u64),
        Text(String),
    }
    match Size::deserialize(d)? {
        Size::Int(0) => Err(de::Error::custom("a size must be at least 1 byte")),
        Size::Int(n) => Ok(n),
        Size::Text(s) => parse_byte_size(&s).map_err(de::Error::custom),
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
