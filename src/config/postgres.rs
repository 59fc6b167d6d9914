//! `sources.postgres[]`: PostgreSQL servers scraped with postgres_exporter's
//! metric names (`job="postgres"`, `instance` = the source's name).
//!
//! The DSN usually carries a password, so it is wrapped in [`PostgresDsn`],
//! whose `Debug` never shows it; summaries, logs and errors name a target by
//! its `name` and `host:port/database` only. The DSN comes either inline
//! (`dsn`, where `${VAR}` expansion applies) or from a file (`dsn_file`, read
//! at every (re)connection so that a rotated password is picked up).
//! Checks on a single value happen while deserializing, so their errors carry
//! the file:line:column; checks across fields and targets happen in
//! [`validate_postgres`].

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{de, Deserialize, Deserializer};

use super::{resolve_relative, Config, Schedule};

/// Default `statements.limit`: statements reported per scrape.
pub const DEFAULT_STATEMENTS_LIMIT: usize = 20;
/// Largest `statements.limit`: each statement is three series.
pub const MAX_STATEMENTS_LIMIT: usize = 1000;

/// One PostgreSQL target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSource {
    /// The `instance` label of the target's series; unique among
    /// PostgreSQL sources.
    pub name: String,
    /// A libpq-style connection string: a URL
    /// (`postgres://user:password@host:port/db?sslmode=require`) or
    /// `key=value` pairs (`host=... user=... dbname=...`).
    #[serde(default)]
    pub dsn: Option<PostgresDsn>,
    /// A file holding the DSN (one line), instead of `dsn`. Relative to the
    /// configuration file's directory.
    #[serde(default)]
    pub dsn_file: Option<PathBuf>,
    /// Defaults to `global.scrape_interval`.
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    /// Defaults to `global.scrape_timeout`, cut to the interval.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// TLS to the server. Absent: the DSN's `sslmode` (libpq's default,
    /// `prefer`: TLS when the server offers it, certificate not verified).
    #[serde(default)]
    pub tls: Option<PostgresTls>,
    /// The top statements of `pg_stat_statements`, when the extension is
    /// installed in the connected database.
    #[serde(default)]
    pub statements: PostgresStatements,
}

impl PostgresSource {
    /// Makes relative file paths relative to the configuration file's directory.
    pub fn resolve_paths(&mut self, config_file: &Path) {
        if let Some(p) = &mut self.dsn_file {
            *p = resolve_relative(Some(config_file), p);
        }
        if let Some(p) = self.tls.as_mut().and_then(|t| t.ca_file.as_mut()) {
            *p = resolve_relative(Some(config_file), p);
        }
    }
}

/// `tls: {mode, ca_file}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresTls {
    pub mode: PostgresTlsMode,
    /// PEM file of the certificate authorities trusted with `verify-full`,
    /// instead of the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// How the connection is secured; overrides the DSN's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PostgresTlsMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it; the certificate is not checked.
    Prefer,
    /// TLS or no connection; the certificate is not checked (libpq's `require`).
    Require,
    /// TLS, the chain checked against `ca_file` or the system's roots and
    /// the host name against the certificate.
    VerifyFull,
}

impl PostgresTlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PostgresTlsMode::Disable => "disable",
            PostgresTlsMode::Prefer => "prefer",
            PostgresTlsMode::Require => "require",
            PostgresTlsMode::VerifyFull => "verify-full",
        }
    }
}

/// `statements: {enabled, limit}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresStatements {
    pub enabled: bool,
    /// Statements reported per scrape, those with the most total time first.
    pub limit: usize,
}

impl Default for PostgresStatements {
    fn default() -> Self {
        PostgresStatements {
            enabled: true,
            limit: DEFAULT_STATEMENTS_LIMIT,
        }
    }
}

/// A PostgreSQL connection string. Its `Debug` shows only
/// `host:port/database`; use [`PostgresDsn::expose`] only to hand it to the
/// client library.
#[derive(Clone)]
pub struct PostgresDsn {
    text: String,
    config: tokio_postgres::Config,
}

impl PostgresDsn {
    /// Parses a DSN; the error never contains the input.
    pub fn parse(s: &str) -> Result<PostgresDsn, String> {
        let config = tokio_postgres::Config::from_str(s)
            .map_err(|e| format!("invalid PostgreSQL DSN: {}", dsn_error(&e)))?;
        if config.get_hosts().is_empty() {
            return Err("invalid PostgreSQL DSN: no host".into());
        }
        if config.get_user().is_none() {
            return Err("invalid PostgreSQL DSN: no user".into());
        }
        Ok(PostgresDsn {
            text: s.to_owned(),
            config,
        })
    }

    /// The DSN as written, password included.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// The parsed settings (their `Debug` hides the password).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// `host:port/database` of the first host: how logs and errors name the
    /// target.
    pub fn target(&self) -> String {
        dsn_target(&self.config)
    }

    pub fn has_password(&self) -> bool {
        self.config.get_password().is_some()
    }
}

impl PartialEq for PostgresDsn {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl fmt::Debug for PostgresDsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.target())
    }
}

impl<'de> Deserialize<'de> for PostgresDsn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PostgresDsn, D::Error> {
        // Parsed inside the visitor, so that the YAML parser still knows
        // where the string was and the error gets its line.
        struct Dsn;
        impl de::Visitor<'_> for Dsn {
            type Value = PostgresDsn;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a PostgreSQL connection string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PostgresDsn, E> {
                PostgresDsn::parse(s).map_err(E::custom)
            }
        }
        d.deserialize_str(Dsn)
    }
}

/// `host:port/database` of a parsed DSN's first host, the defaults (5432,
/// the user's name as the database) made explicit.
pub fn dsn_target(c: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let host = match c.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(p)) => p.display().to_string(),
        None => String::new(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    let db = c.get_dbname().or(c.get_user()).unwrap_or("");
    if host.contains(':') && !host.starts_with('/') {
        format!("[{host}]:{port}/{db}")
    } else {
        format!("{host}:{port}/{db}")
    }
}

/// The client library's reason for refusing a DSN (its `Display` says only
/// "invalid connection string"). Its reasons name options, never their
/// values, except for one character in a syntax error; that is kept, as it
/// shows where the problem is.
fn dsn_error(e: &tokio_postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => cause.to_string(),
        None => e.to_string(),
    }
}

impl Config {
    /// Interval and timeout of one PostgreSQL target after defaults.
    pub fn postgres_schedule(&self, p: &PostgresSource) -> Schedule {
        self.schedule(p.interval, p.timeout)
    }
}

/// Checks across fields and targets; called by `Config::validate`.
pub(super) fn validate_postgres(cfg: &Config) -> Result<(), String> {
    let mut names = HashSet::new();
    for (i, p) in cfg.sources.postgres.iter().enumerate() {
        let at = format!("sources.postgres[{i}] ({:?})", p.name);
        if p.name.is_empty() || p.name.chars().any(char::is_control) {
            return Err(format!(
                "sources.postgres[{i}].name must be a non-empty name without control characters"
            ));
        }
        if !names.insert(p.name.as_str()) {
            return Err(format!(
                "{at}: the name is used twice; each PostgreSQL source needs its own (it is the instance label)"
            ));
        }
        match (&p.dsn, &p.dsn_file) {
            (Some(_), Some(_)) => {
                return Err(format!("{at}: give either dsn or dsn_file, not both"))
            }
            (None, None) => return Err(format!("{at}: dsn or dsn_file is required")),
            _ => {}
        }
        if let Some(iv) = p.interval {
            super::positive(&format!("{at}.interval"), iv)?;
        }
        if let Some(t) = p.timeout {
            super::positive(&format!("{at}.timeout"), t)?;
            let iv = p.interval.unwrap_or(cfg.global.scrape_interval);
            if t > iv {
                return Err(format!(
                    "{at}: timeout ({}) must not exceed its interval ({})",
                    humantime::format_duration(t),
                    humantime::format_duration(iv)
                ));
            }
        }
        if let Some(t) = &p.tls {
            if t.ca_file.is_some() && t.mode != PostgresTlsMode::VerifyFull {
                return Err(format!(
                    "{at}: tls.ca_file is only used with tls.mode verify-full, not {}",
                    t.mode.as_str()
                ));
            }
        }
        if !(1..=MAX_STATEMENTS_LIMIT).contains(&p.statements.limit) {
            return Err(format!(
                "{at}: statements.limit must be between 1 and {MAX_STATEMENTS_LIMIT}"
            ));
        }
    }
    Ok(())
}

/// The `sources.postgres` lines of `hourglass check config`.
pub(super) fn summarize_postgres(cfg: &Config) -> String {
    let mut s = String::new();
    for p in &cfg.sources.postgres {
        let sc = cfg.postgres_schedule(p);
        let target = match (&p.dsn, &p.dsn_file) {
            (Some(d), _) => d.target(),
            (None, Some(f)) => format!("dsn from {}", f.display()),
            (None, None) => "no dsn".to_owned(),
        };
        let tls = match &p.tls {
            Some(t) => format!(", tls {}", t.mode.as_str()),
            None => String::new(),
        };
        let statements = if p.statements.enabled {
            format!("top {} statements", p.statements.limit)
        } else {
            "no statements".to_owned()
        };
        s.push_str(&format!(
            "source postgres {}: {target}{tls}, {statements}, every {}, timeout {}\n",
            p.name,
            humantime::format_duration(sc.interval),
            humantime::format_duration(sc.timeout)
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, "hg.yml").map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_schedule_and_summary() {
        let c = parse(
            "sources:\n  postgres:\n    - {name: main, dsn: \"postgres://postgres@127.0.0.1/test\"}\n",
        )
        .unwrap();
        let p = &c.sources.postgres[0];
        assert_eq!(p.statements, PostgresStatements::default());
        assert_eq!(p.tls, None);
        let d = p.dsn.as_ref().unwrap();
        assert_eq!(d.target(), "127.0.0.1:5432/test");
        assert!(!d.has_password());
        let s = c.postgres_schedule(p);
        assert_eq!(
            (s.interval, s.timeout),
            (Duration::from_secs(5), Duration::from_secs(4))
        );
        assert!(
            c.summary().contains(
                "source postgres main: 127.0.0.1:5432/test, top 20 statements, every 5s, timeout 4s"
            ),
            "{}",
            c.summary()
        );
    }

    #[test]
    fn key_value_dsn_tls_and_statements() {
        let c = parse(
            "sources:\n  postgres:\n    - name: a\n      dsn: \"host=db.example port=6432 user=mon password=s3cret dbname=app\"\n      interval: 10s\n      tls: {mode: verify-full, ca_file: ca.pem}\n      statements: {enabled: false, limit: 5}\n",
        )
        .unwrap();
        let p = &c.sources.postgres[0];
        let d = p.dsn.as_ref().unwrap();
        assert_eq!(d.target(), "db.example:6432/app");
        assert!(d.has_password());
        assert!(d.expose().contains("s3cret"));
        assert_eq!(
            p.tls.as_ref().map(|t| t.mode),
            Some(PostgresTlsMode::VerifyFull)
        );
        assert!(!p.statements.enabled);
        for shown in [format!("{c:?}"), c.summary(), d.target()] {
            assert!(!shown.contains("s3cret"), "{shown}");
        }
        assert!(c
            .summary()
            .contains(", tls verify-full, no statements, every 10s"));
    }

    #[test]
    fn bad_dsns_are_refused_at_their_line_without_the_password() {
        for (dsn, want) in [
            ("postgres://u:pw1@h:notaport/db", "invalid PostgreSQL DSN"),
            (
                "host=h user=u password=pw1 bogus=1",
                "unknown option `bogus`",
            ),
            ("postgres://u:pw1@/db", "no host"),
        ] {
            let e = parse(&format!(
                "sources:\n  postgres:\n    - name: a\n      dsn: {dsn:?}\n"
            ))
            .unwrap_err();
            assert!(e.starts_with("hg.yml:4:"), "{dsn}: {e}");
            assert!(e.contains(want), "{dsn}: {e}");
            assert!(!e.contains("pw1"), "{dsn}: {e}");
        }
    }

    #[test]
    fn cross_field_errors_name_the_source() {
        let dsn = "dsn: \"postgres://u@h/db\"";
        for (yaml, want) in [
            (
                format!("[{{name: a, {dsn}}}, {{name: a, {dsn}}}]"),
                "the name is used twice",
            ),
            (format!("[{{name: \"\", {dsn}}}]"), "non-empty name"),
            ("[{name: a}]".to_owned(), "dsn or dsn_file is required"),
            (
                format!("[{{name: a, {dsn}, dsn_file: f}}]"),
                "either dsn or dsn_file",
            ),
            (
                format!("[{{name: a, {dsn}, interval: 2s, timeout: 3s}}]"),
                "must not exceed its interval",
            ),
            (
                format!("[{{name: a, {dsn}, statements: {{limit: 0}}}}]"),
                "statements.limit must be between",
            ),
            (
                format!("[{{name: a, {dsn}, tls: {{mode: require, ca_file: x}}}}]"),
                "only used with tls.mode verify-full",
            ),
            (
                format!("[{{name: a, {dsn}, tls: {{mode: verify-ca}}}}]"),
                "unknown variant",
            ),
            (format!("[{{name: a, {dsn}, db: 1}}]"), "unknown field"),
        ] {
            let e = parse(&format!("sources:\n  postgres: {yaml}\n")).unwrap_err();
            assert!(e.contains(want), "{yaml}: {e}");
        }
    }

    #[test]
    fn relative_files_follow_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hg.yml");
        std::fs::write(
            &path,
            "sources:\n  postgres:\n    - {name: a, dsn_file: secrets/pg, tls: {mode: verify-full, ca_file: ca.pem}}\n",
        )
        .unwrap();
        let c = Config::load(&path).unwrap();
        let p = &c.sources.postgres[0];
        assert_eq!(
            p.dsn_file.as_deref(),
            Some(dir.path().join("secrets/pg").as_path())
        );
        assert_eq!(
            p.tls.as_ref().and_then(|t| t.ca_file.as_deref()),
            Some(dir.path().join("ca.pem").as_path())
        );
        assert!(c.summary().contains("source postgres a: dsn from "));
    }
}
