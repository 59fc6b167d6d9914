//! The configuration file: YAML, unknown fields refused, durations like `5s`,
//! `${VAR}` expansion, secrets from `*_file` fields.
//!
//! Errors carry `file:line:column` whenever the YAML parser can tell where
//! the problem is (unknown field, bad duration, bad address, bad URL).

mod expand;
mod http;
mod postgres;
mod redis;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use expand::expand_env;
pub use http::*;
pub use postgres::*;
pub use redis::*;

/// The configuration used when `hourglass run` is given no file.
pub const DEFAULT_CONFIG: &str = include_str!("default.yml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    At {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the HTTP API, /metrics and health endpoints.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    #[serde(default)]
    pub global: Global,
    #[serde(default)]
    pub sources: Sources,
    /// Prometheus rule files, globs allowed, relative to this file's
    /// directory. Absent: the bundled rules (`rules/` in the repository,
    /// compiled in). `[]`: no rules.
    #[serde(default)]
    pub rule_files: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Global {
    /// Default interval of every source.
    #[serde(with = "humantime_serde")]
    pub scrape_interval: Duration,
    /// Default timeout of every source; at most its interval.
    #[serde(with = "humantime_serde")]
    pub scrape_timeout: Duration,
    /// Default interval of rule groups.
    #[serde(with = "humantime_serde")]
    pub evaluation_interval: Duration,
    /// How much history the store keeps.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Most series the store holds; new series beyond it are refused and counted.
    pub max_series: usize,
    /// How far back an instant vector looks for a sample (Prometheus: 5m).
    #[serde(with = "humantime_serde")]
    pub lookback_delta: Duration,
    /// Labels added to alerts and exports.
    pub external_labels: BTreeMap<String, String>,
}

impl Default for Global {
    fn default() -> Self {
        Global {
            scrape_interval: Duration::from_secs(5),
            scrape_timeout: Duration::from_secs(4),
            evaluation_interval: Duration::from_secs(5),
            retention: Duration::from_secs(3600),
            max_series: 100_000,
            lookback_delta: Duration::from_secs(300),
            external_labels: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sources {
    pub host: HostSource,
    /// Applications scraped over HTTP (Prometheus text or JSON).
    pub http: Vec<HttpSource>,
    /// Redis servers: INFO and queue lengths.
    pub redis: Vec<RedisSource>,
    /// PostgreSQL servers, with postgres_exporter's metric names.
    pub postgres: Vec<PostgresSource>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostSource {
    pub enabled: bool,
    /// Defaults to `global.scrape_interval`.
    #[serde(with = "humantime_serde")]
    pub interval: Option<Duration>,
    /// Defaults to `global.scrape_timeout`, cut to the interval.
    #[serde(with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

impl Default for HostSource {
    fn default() -> Self {
        HostSource {
            enabled: true,
            interval: None,
            timeout: None,
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9977))
}

/// Interval and timeout of one source after defaults are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub interval: Duration,
    pub timeout: Duration,
}

impl Config {
    /// Reads, expands and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: name.clone(),
            source,
        })?;
        let mut cfg = Config::parse(&text, &name)?;
        for h in &mut cfg.sources.http {
            h.resolve_paths(path);
        }
        for r in &mut cfg.sources.redis {
            r.resolve_paths(path);
        }
        for p in &mut cfg.sources.postgres {
            p.resolve_paths(path);
        }
        Ok(cfg)
    }

    /// The embedded default configuration.
    pub fn embedded_default() -> Result<Config, ConfigError> {
        Config::parse(DEFAULT_CONFIG, "<embedded default>")
    }

    /// Parses configuration text; `name` is used in error messages.
    pub fn parse(text: &str, name: &str) -> Result<Config, ConfigError> {
        let expanded =
            expand_env(text, |k| std::env::var(k).ok()).map_err(|e| ConfigError::At {
                file: name.to_owned(),
                line: e.line,
                column: e.column,
                message: e.message,
            })?;
        // An empty file is a valid configuration: every default applies.
        let doc = if expanded.trim().is_empty() {
            "{}"
        } else {
            &expanded
        };
        let cfg: Config = serde_norway::from_str(doc).map_err(|e| yaml_error(name, &e))?;
        cfg.validate().map_err(|message| ConfigError::Invalid {
            file: name.to_owned(),
            message,
        })?;
        Ok(cfg)
    }

    /// The host source's schedule, or None when it is disabled.
    pub fn host_schedule(&self) -> Option<Schedule> {
        let h = &self.sources.host;
        h.enabled.then(|| self.schedule(h.interval, h.timeout))
    }

    fn schedule(&self, interval: Option<Duration>, timeout: Option<Duration>) -> Schedule {
        let interval = interval.unwrap_or(self.global.scrape_interval);
        // An explicit timeout longer than the interval is refused in validate();
        // the inherited default is cut to the interval instead, so that
        // `host: {interval: 1s}` works with the global 4s timeout.
        let timeout = timeout.unwrap_or(self.global.scrape_timeout).min(interval);
        Schedule { interval, timeout }
    }

    fn validate(&self) -> Result<(), String> {
        let g = &self.global;
        positive("global.scrape_interval", g.scrape_interval)?;
        positive("global.scrape_timeout", g.scrape_timeout)?;
        positive("global.evaluation_interval", g.evaluation_interval)?;
        positive("global.lookback_delta", g.lookback_delta)?;
        if g.scrape_timeout > g.scrape_interval {
            return Err(format!(
                "global.scrape_timeout ({}) must not exceed global.scrape_interval ({})",
                humantime::format_duration(g.scrape_timeout),
                humantime::format_duration(g.scrape_interval)
            ));
        }
        if g.retention < Duration::from_secs(60) {
            return Err(format!(
                "global.retention ({}) must be at least 1m",
                humantime::format_duration(g.retention)
            ));
        }
        if g.max_series == 0 {
            return Err("global.max_series must be at least 1".into());
        }
        for name in g.external_labels.keys() {
            if !is_label_name(name) {
                return Err(format!(
                    "global.external_labels: {name:?} is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)"
                ));
            }
        }
        for pattern in self.rule_files.iter().flatten() {
            glob::Pattern::new(pattern)
                .map_err(|e| format!("rule_files: {pattern:?} is not a valid glob: {e}"))?;
        }
        let h = &self.sources.host;
        if let Some(i) = h.interval {
            positive("sources.host.interval", i)?;
        }
        if let (Some(t), Some(i)) = (h.timeout, h.interval) {
            if t > i {
                return Err(format!(
                    "sources.host.timeout ({}) must not exceed its interval ({})",
                    humantime::format_duration(t),
                    humantime::format_duration(i)
                ));
            }
        }
        http::validate_http(self)?;
        redis::validate_redis(self)?;
        postgres::validate_postgres(self)?;
        Ok(())
    }

    /// A short human summary of what would run, for `hourglass check config`.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let g = &self.global;
        s.push_str(&format!("listen: {}\n", self.listen));
        s.push_str(&format!(
            "store: retention {}, at most {} series, lookback {}\n",
            humantime::format_duration(g.retention),
            g.max_series,
            humantime::format_duration(g.lookback_delta)
        ));
        match self.host_schedule() {
            Some(sc) => s.push_str(&format!(
                "source host: every {}, timeout {}\n",
                humantime::format_duration(sc.interval),
                humantime::format_duration(sc.timeout)
            )),
            None => s.push_str("source host: disabled\n"),
        }
        s.push_str(&http::summarize_http(self));
        s.push_str(&redis::summarize_redis(self));
        s.push_str(&postgres::summarize_postgres(self));
        s.push_str(&format!(
            "rules: every {} by default, from {}\n",
            humantime::format_duration(g.evaluation_interval),
            match &self.rule_files {
                None => "the bundled rules".to_string(),
                Some(f) if f.is_empty() => "no rule files".to_string(),
                Some(f) => f.join(", "),
            }
        ));
        if !g.external_labels.is_empty() {
            let labels: Vec<String> = g
                .external_labels
                .iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect();
            s.push_str(&format!("external labels: {}\n", labels.join(", ")));
        }
        s
    }
}

fn positive(what: &str, d: Duration) -> Result<(), String> {
    if d.is_zero() {
        Err(format!("{what} must be greater than zero"))
    } else {
        Ok(())
    }
}

/// A Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn yaml_error(file: &str, e: &serde_norway::Error) -> ConfigError {
    // serde_norway prefixes the message with the location; keep our own
    // `file:line:column: message` form instead.
    let msg = e.to_string();
    let message = match msg.find(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg,
    };
    match e.location() {
        Some(loc) => ConfigError::At {
            file: file.to_owned(),
            line: loc.line(),
            column: loc.column(),
            message,
        },
        None => ConfigError::Invalid {
            file: file.to_owned(),
            message,
        },
    }
}

/// Reads a secret from a file (the `*_file` fields), trimming one trailing
/// newline. The content is never logged; errors name only the path.
pub fn read_secret_file(path: &Path) -> Result<String, ConfigError> {
    let mut s = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.display().to_string(),
        source,
    })?;
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    Ok(s)
}

/// Where a relative path in the configuration is resolved from: the
/// directory of the configuration file.
pub fn resolve_relative(config_file: Option<&Path>, p: &Path) -> PathBuf {
    match config_file.and_then(Path::parent) {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p.to_path_buf(),
    }
}

#[cfg(test)]
mod tests;
