//! `sources.redis[]`: Redis servers whose `INFO` and queue lengths are
//! scraped (`job="redis"`, `instance` = the source's name).
//!
//! The URL may carry a password, so it is wrapped in [`RedisUrl`], whose
//! `Debug` and error messages never show it; summaries and logs name a
//! target by its `name` and `host:port` only. Checks on a single value (the
//! URL, a queue pattern) happen while deserializing, so their errors carry
//! the file:line:column; checks across fields and targets happen in
//! [`validate_redis`].

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{de, Deserialize, Deserializer};

use super::{resolve_relative, Config, Schedule};

/// Default `max_queue_keys`: keys a glob in `queues` may match per scrape.
pub const DEFAULT_MAX_QUEUE_KEYS: usize = 100;
/// Largest `max_queue_keys`: each key is a series, and each is asked for its
/// type and length on every scrape.
pub const MAX_MAX_QUEUE_KEYS: usize = 10_000;

/// One Redis target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSource {
    /// The `instance` label of the target's series; unique among Redis sources.
    pub name: String,
    /// `redis://[user[:password]@]host[:port][/db]`, or `rediss://` for TLS
    /// (verified against the system's root certificates).
    pub url: RedisUrl,
    /// A file holding the password; overrides the URL's. Read at every
    /// (re)connection, so a rotated password is picked up. Relative to the
    /// configuration file's directory.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Keys whose length is reported as `redis_queue_length{key,type}`:
    /// exact keys (`celery`), or globs (`rq:queue:*`, Redis's syntax: `*`,
    /// `?`, `[...]`, `\` escapes) found with `SCAN`.
    #[serde(default, deserialize_with = "de_queues")]
    pub queues: Vec<String>,
    /// Most keys one glob of `queues` may match per scrape; the rest are
    /// left out and counted in `redis_queue_keys_truncated_total`.
    #[serde(default = "default_max_queue_keys")]
    pub max_queue_keys: usize,
    /// Defaults to `global.scrape_interval`.
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    /// Defaults to `global.scrape_timeout`, cut to the interval.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

impl RedisSource {
    /// Makes relative file paths relative to the configuration file's directory.
    pub fn resolve_paths(&mut self, config_file: &Path) {
        if let Some(p) = &mut self.password_file {
            *p = resolve_relative(Some(config_file), p);
        }
    }
}

/// A `redis://` or `rediss://` URL. Its `Debug` hides the password; use
/// [`RedisUrl::expose`] only to hand it to the client library.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(url::Url);

impl RedisUrl {
    /// Parses and checks a URL; the error never contains the input.
    pub fn parse(s: &str) -> Result<RedisUrl, String> {
        let u = url::Url::parse(s).map_err(|e| format!("invalid Redis URL: {e}"))?;
        if u.scheme() != "redis" && u.scheme() != "rediss" {
            return Err(format!(
                "invalid Redis URL: the scheme must be redis or rediss, not {:?}",
                u.scheme()
            ));
        }
        if u.host_str().is_none_or(str::is_empty) {
            return Err("invalid Redis URL: no host".into());
        }
        let db = u.path().trim_start_matches('/');
        if !db.is_empty() && db.parse::<u32>().is_err() {
            return Err(format!(
                "invalid Redis URL: the path must be a database number (/0, /1...), not {:?}",
                u.path()
            ));
        }
        Ok(RedisUrl(u))
    }

    /// The URL as written, password included.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    /// `host:port`, the port made explicit (6379): how logs and errors name
    /// the target.
    pub fn host_port(&self) -> String {
        let host = self.0.host_str().unwrap_or("");
        format!("{host}:{}", self.0.port().unwrap_or(6379))
    }

    /// Whether the connection uses TLS (`rediss://`).
    pub fn tls(&self) -> bool {
        self.0.scheme() == "rediss"
    }

    /// Whether the URL carries a password.
    pub fn has_password(&self) -> bool {
        self.0.password().is_some()
    }

    /// The database number of the path; 0 when there is none.
    pub fn db(&self) -> u32 {
        self.0.path().trim_start_matches('/').parse().unwrap_or(0)
    }

    /// The URL without user, password or query: safe to show.
    pub fn redacted(&self) -> String {
        format!("{}://{}/{}", self.0.scheme(), self.host_port(), self.db())
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for RedisUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RedisUrl, D::Error> {
        let s = String::deserialize(d)?;
        RedisUrl::parse(&s).map_err(de::Error::custom)
    }
}

impl Config {
    /// Interval and timeout of one Redis target after defaults.
    pub fn redis_schedule(&self, r: &RedisSource) -> Schedule {
        self.schedule(r.interval, r.timeout)
    }
}

/// Checks across fields and targets; called by `Config::validate`.
pub(super) fn validate_redis(cfg: &Config) -> Result<(), String> {
    let mut names = HashSet::new();
    for (i, r) in cfg.sources.redis.iter().enumerate() {
        let at = format!("sources.redis[{i}] ({:?})", r.name);
        if r.name.is_empty() || r.name.chars().any(char::is_control) {
            return Err(format!(
                "sources.redis[{i}].name must be a non-empty name without control characters"
            ));
        }
        if !names.insert(r.name.as_str()) {
            return Err(format!(
                "{at}: the name is used twice; each Redis source needs its own (it is the instance label)"
            ));
        }
        if let Some(iv) = r.interval {
            super::positive(&format!("{at}.interval"), iv)?;
        }
        if let Some(t) = r.timeout {
            super::positive(&format!("{at}.timeout"), t)?;
            let iv = r.interval.unwrap_or(cfg.global.scrape_interval);
            if t > iv {
                return Err(format!(
                    "{at}: timeout ({}) must not exceed its interval ({})",
                    humantime::format_duration(t),
                    humantime::format_duration(iv)
                ));
            }
        }
        if !(1..=MAX_MAX_QUEUE_KEYS).contains(&r.max_queue_keys) {
            return Err(format!(
                "{at}: max_queue_keys must be between 1 and {MAX_MAX_QUEUE_KEYS}"
            ));
        }
    }
    Ok(())
}

/// The `sources.redis` lines of `hourglass check config`.
pub(super) fn summarize_redis(cfg: &Config) -> String {
    let mut s = String::new();
    for r in &cfg.sources.redis {
        let sc = cfg.redis_schedule(r);
        let auth = match (&r.password_file, r.url.has_password()) {
            (Some(_), _) => ", password from file",
            (None, true) => ", password from the URL",
            (None, false) => "",
        };
        s.push_str(&format!(
            "source redis {}: {}{auth}, {} queue patterns, every {}, timeout {}\n",
            r.name,
            r.url.redacted(),
            r.queues.len(),
            humantime::format_duration(sc.interval),
            humantime::format_duration(sc.timeout)
        ));
    }
    s
}

fn default_max_queue_keys() -> usize {
    DEFAULT_MAX_QUEUE_KEYS
}

fn de_queues<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    if v.iter().any(String::is_empty) {
        return Err(de::Error::custom(
            "a queue key or pattern must not be empty",
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, "hg.yml").map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_schedule() {
        let c = parse(
            "sources:\n  redis:\n    - {name: cache, url: \"redis://127.0.0.1:6379\", queues: [celery, \"jobs:*\"]}\n",
        )
        .unwrap();
        let r = &c.sources.redis[0];
        assert_eq!(r.max_queue_keys, DEFAULT_MAX_QUEUE_KEYS);
        assert_eq!(r.queues, vec!["celery", "jobs:*"]);
        assert_eq!(r.url.host_port(), "127.0.0.1:6379");
        assert!(!r.url.tls());
        assert_eq!(r.url.db(), 0);
        let s = c.redis_schedule(r);
        assert_eq!(
            (s.interval, s.timeout),
            (Duration::from_secs(5), Duration::from_secs(4))
        );
        assert!(c
            .summary()
            .contains("source redis cache: redis://127.0.0.1:6379/0, 2 queue patterns"));
    }

    #[test]
    fn password_never_shown() {
        let c = parse(
            "sources:\n  redis:\n    - {name: a, url: \"rediss://user:s3cret@cache.example:6380/2\", interval: 10s}\n",
        )
        .unwrap();
        let r = &c.sources.redis[0];
        assert!(r.url.tls());
        assert_eq!(r.url.db(), 2);
        assert_eq!(r.url.host_port(), "cache.example:6380");
        assert!(r.url.expose().contains("s3cret"));
        for shown in [format!("{c:?}"), c.summary(), r.url.redacted()] {
            assert!(!shown.contains("s3cret"), "{shown}");
        }
        assert!(c.summary().contains("password from the URL"));
        assert_eq!(
            c.redis_schedule(r),
            Schedule {
                interval: Duration::from_secs(10),
                timeout: Duration::from_secs(4)
            }
        );
    }

    #[test]
    fn bad_urls_are_refused_at_their_line_without_the_password() {
        for (url, want) in [
            ("http://u:pw1@h:1", "the scheme must be redis or rediss"),
            ("redis://u:pw1@h:1/x", "the path must be a database number"),
            ("redis://u:pw1@:1", "invalid Redis URL"),
            ("not a url pw1", "invalid Redis URL"),
        ] {
            let e = parse(&format!(
                "sources:\n  redis:\n    - name: a\n      url: {url:?}\n"
            ))
            .unwrap_err();
            assert!(e.starts_with("hg.yml:3:"), "{url}: {e}");
            assert!(e.contains("sources.redis[0]"), "{url}: {e}");
            assert!(e.contains(want), "{url}: {e}");
            assert!(!e.contains("pw1"), "{url}: {e}");
        }
    }

    #[test]
    fn cross_field_errors_name_the_source() {
        for (yaml, want) in [
            (
                "[{name: a, url: \"redis://h\"}, {name: a, url: \"redis://h\"}]",
                "the name is used twice",
            ),
            ("[{name: \"\", url: \"redis://h\"}]", "non-empty name"),
            (
                "[{name: a, url: \"redis://h\", interval: 2s, timeout: 3s}]",
                "must not exceed its interval",
            ),
            (
                "[{name: a, url: \"redis://h\", max_queue_keys: 0}]",
                "max_queue_keys must be between",
            ),
            (
                "[{name: a, url: \"redis://h\", queues: [\"\"]}]",
                "must not be empty",
            ),
            ("[{name: a, url: \"redis://h\", db: 1}]", "unknown field"),
        ] {
            let e = parse(&format!("sources:\n  redis: {yaml}\n")).unwrap_err();
            assert!(e.contains(want), "{yaml}: {e}");
        }
    }

    #[test]
    fn relative_password_file_follows_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hg.yml");
        std::fs::write(
            &path,
            "sources:\n  redis:\n    - {name: a, url: \"redis://h\", password_file: secrets/redis}\n",
        )
        .unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(
            c.sources.redis[0].password_file.as_deref(),
            Some(dir.path().join("secrets/redis").as_path())
        );
        assert!(c.summary().contains("password from file"));
    }
}
