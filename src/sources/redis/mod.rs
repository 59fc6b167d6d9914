//! The Redis source: redis_exporter's metric names from one `INFO` call,
//! `redis_config_maxclients`, and the lengths of the queues named in
//! `queues` (`job="redis"`, `instance` = the source's name).
//!
//! One multiplexed connection per target is kept across scrapes. It is
//! dropped on any failure and opened again on a later scrape; after
//! consecutive failures to connect, attempts are spaced 1 s, 2 s, 4 s... up
//! to 30 s apart (scrapes in between report the last error without touching
//! the network), so a dead server costs one refused connection every 30 s
//! at most. The connection's connect and response timeouts and the whole
//! scrape are cut at 90 % of the scrape timeout, so that a hung or
//! unreachable server still gets its `redis_up 0` written before the loop's
//! own timeout would discard everything.
//!
//! A failed scrape writes only `redis_up 0` and returns
//! [`SourceError::Down`]: the loop keeps that sample, sets `up` to 0 (so
//! `TargetDown` fires) and marks the other series stale. Errors and logs name
//! the target by its `host:port` (the loop adds the source's name); the
//! password, from the URL or `password_file`, is never shown: errors are
//! built from the client library's messages with every form of it replaced.
//!
//! Pipelining keeps a scrape to a few round trips (see `queues.rs`):
//! `INFO`, `CONFIG GET maxclients` and the first queue commands go together.
//! `CONFIG GET` refused (ACL, a renamed command) is not asked again until
//! the next connection; `maxclients` then comes from INFO's clients section
//! (Redis ≥ 7).

mod info;
mod queues;

use std::path::PathBuf;
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, IntoConnectionInfo, Pipeline, Value};
use tokio::time::Instant;

use super::backoff::{Backoff, Secrets};
use super::{BoxFuture, SampleBuf, ScrapeCtx, Source, SourceError};
use crate::config::{read_secret_file, RedisSource, RedisUrl};
use queues::{Queues, Slot};

/// The `job` label of Redis series.
pub const JOB: &str = "redis";

/// Why a Redis scrape failed. Messages name the target by `host:port` and
/// never contain its password.
#[derive(Debug, thiserror::Error)]
pub enum RedisSourceError {
    #[error("{target}: cannot read password_file: {message}")]
    PasswordFile { target: String, message: String },
    #[error("{target}: {what}: {message}")]
    Redis {
        target: String,
        what: &'static str,
        message: String,
    },
    #[error("{target}: no answer within {after:?}")]
    Timeout { target: String, after: Duration },
    /// Reported while waiting before the next connection attempt: the
    /// message of the failure that made it wait, so repeated failures log
    /// as one.
    #[error("{0}")]
    Waiting(String),
}

/// Scrapes one Redis server. Keeps its connection and buffers across scrapes.
pub struct RedisScraper {
    url: RedisUrl,
    /// `host:port`, how messages name the target.
    target: String,
    password_file: Option<PathBuf>,
    /// Every form of the password that could appear in a message.
    secrets: Secrets,
    conn: Option<MultiplexedConnection>,
    backoff: Backoff,
    /// false once `CONFIG GET` was refused on this connection.
    config_get: bool,
    queues: Queues,
    pipe: Pipeline,
    slots: Vec<Slot>,
    last_queue_error: Option<String>,
}

impl RedisScraper {
    pub fn new(cfg: &RedisSource) -> RedisScraper {
        let mut pipe = ::redis::pipe();
        // Server errors come back per command (a refused CONFIG GET, a key
        // that changed type) instead of failing the whole pipeline.
        pipe.ignore_errors();
        let mut s = RedisScraper {
            target: cfg.url.host_port(),
            url: cfg.url.clone(),
            password_file: cfg.password_file.clone(),
            secrets: Secrets::default(),
            conn: None,
            backoff: Backoff::default(),
            config_get: true,
            queues: Queues::new(&cfg.queues, cfg.max_queue_keys),
            pipe,
            slots: Vec::new(),
            last_queue_error: None,
        };
        if let Some(pw) = url_password(cfg.url.expose()) {
            s.add_secret(percent_decode(&pw));
            s.add_secret(pw);
        }
        s
    }

    async fn scrape_once(
        &mut self,
        ctx: ScrapeCtx,
        out: &mut SampleBuf,
    ) -> Result<(), SourceError> {
        let budget = ctx.timeout - ctx.timeout / 10;
        let collected = tokio::time::timeout(budget, self.collect(budget, out)).await;
        let err = match collected {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e,
            Err(_) => RedisSourceError::Timeout {
                target: self.target.clone(),
                after: budget,
            },
        };
        // The connection may be broken or stuck mid-reply: start afresh.
        self.conn = None;
        out.clear();
        out.push("redis_up", &[], 0.0);
        Err(SourceError::Down(Box::new(err)))
    }

    async fn collect(
        &mut self,
        budget: Duration,
        out: &mut SampleBuf,
    ) -> Result<(), RedisSourceError> {
        let started = Instant::now();
        let mut conn = self.connection(budget).await?;

        // Round trip 1: INFO, CONFIG GET, the first queue commands.
        self.reset();
        self.pipe.cmd("INFO");
        self.slots.push(Slot::Info);
        if self.config_get {
            self.pipe.cmd("CONFIG").arg("GET").arg("maxclients");
            self.slots.push(Slot::ConfigGet);
        }
        self.queues.plan_first(&mut self.pipe, &mut self.slots);
        let replies = self.run(&mut conn, "INFO").await?;
        out.push("redis_up", &[], 1.0);
        let (mut summary, mut maxclients) = (None, None);
        for (i, v) in replies.into_iter().enumerate() {
            match self.slots.get(i).copied() {
                Some(Slot::Info) => summary = Some(self.take_info(v, out)?),
                Some(Slot::ConfigGet) => maxclients = self.take_config_get(v),
                Some(slot) => self.queues.take(slot, v),
                None => break,
            }
        }
        let summary = summary.ok_or_else(|| self.error("INFO", "no reply".into()))?;
        if let Some(m) = maxclients.or(summary.maxclients) {
            out.push("redis_config_maxclients", &[], m);
        }
        if self.queues.is_empty() {
            return Ok(());
        }

        // SCAN pages until half the scrape's budget is spent: the keys
        // found by then are reported and the walks cut short are counted.
        let scan_until = started + budget / 2;
        loop {
            self.reset();
            if !self.queues.plan_scans(&mut self.pipe, &mut self.slots) {
                break;
            }
            if Instant::now() >= scan_until {
                self.queues.stop_scans();
                break;
            }
            self.queue_round(&mut conn, "SCAN").await?;
        }
        self.reset();
        if self.queues.plan_types(&mut self.pipe, &mut self.slots) {
            self.queue_round(&mut conn, "TYPE").await?;
        }
        self.reset();
        if self.queues.plan_lengths(&mut self.pipe, &mut self.slots) {
            self.queue_round(&mut conn, "queue length").await?;
        }
        self.queues.write(out);
        self.log_queue_error();
        Ok(())
    }

    fn reset(&mut self) {
        self.pipe.clear();
        self.slots.clear();
    }

    /// Sends the planned queue commands and hands their replies over.
    async fn queue_round(
        &mut self,
        conn: &mut MultiplexedConnection,
        what: &'static str,
    ) -> Result<(), RedisSourceError> {
        let replies = self.run(conn, what).await?;
        for (&slot, v) in self.slots.iter().zip(replies) {
            self.queues.take(slot, v);
        }
        Ok(())
    }

    /// The open connection, or a new one unless still backing off.
    async fn connection(
        &mut self,
        budget: Duration,
    ) -> Result<MultiplexedConnection, RedisSourceError> {
        if let Some(c) = &self.conn {
            return Ok(c.clone());
        }
        if let Some(last) = self.backoff.waiting(Instant::now()) {
            return Err(RedisSourceError::Waiting(last));
        }
        match self.connect(budget).await {
            Ok(c) => {
                self.backoff = Backoff::default();
                self.config_get = true;
                self.conn = Some(c.clone());
                tracing::debug!(job = JOB, target = %self.target, "connected to redis");
                Ok(c)
            }
            Err(e) => {
                self.backoff.failed(Instant::now(), e.to_string());
                Err(e)
            }
        }
    }

    async fn connect(
        &mut self,
        budget: Duration,
    ) -> Result<MultiplexedConnection, RedisSourceError> {
        let mut info = self
            .url
            .expose()
            .into_connection_info()
            .map_err(|e| self.error("connect", e.to_string()))?;
        if let Some(path) = self.password_file.clone() {
            // A few bytes from a local file, once per connection: not worth
            // the blocking pool.
            let pw = read_secret_file(&path).map_err(|e| RedisSourceError::PasswordFile {
                target: self.target.clone(),
                message: e.to_string(),
            })?;
            let settings = info.redis_settings().clone().set_password(&pw);
            info = info.set_redis_settings(settings);
            self.add_secret(pw);
        }
        let client =
            ::redis::Client::open(info).map_err(|e| self.error("connect", e.to_string()))?;
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(budget))
            .set_response_timeout(Some(budget));
        client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
            .map_err(|e| self.error("connect", e.to_string()))
    }

    /// Sends the pipeline; server errors come back as values.
    async fn run(
        &self,
        conn: &mut MultiplexedConnection,
        what: &'static str,
    ) -> Result<Vec<Value>, RedisSourceError> {
        self.pipe
            .query_async::<Vec<Value>>(conn)
            .await
            .map_err(|e| self.error(what, e.to_string()))
    }

    fn take_info(
        &self,
        v: Value,
        out: &mut SampleBuf,
    ) -> Result<info::InfoSummary, RedisSourceError> {
        let text = match &v {
            Value::BulkString(b) => std::str::from_utf8(b).ok(),
            Value::VerbatimString { text, .. } => Some(text.as_str()),
            Value::SimpleString(s) => Some(s.as_str()),
            // NOAUTH, NOPERM: the server is there but tells us nothing.
            Value::ServerError(e) => return Err(self.error("INFO", e.to_string())),
            _ => None,
        };
        let summary = text.map(|t| info::write_info(t, out)).unwrap_or_default();
        if summary.fields == 0 {
            return Err(self.error("INFO", "the reply is not INFO's key:value lines".into()));
        }
        Ok(summary)
    }

    fn take_config_get(&mut self, v: Value) -> Option<f64> {
        let bytes = |v: &Value| match v {
            Value::BulkString(b) => Some(b.clone()),
            Value::SimpleString(s) => Some(s.clone().into_bytes()),
            _ => None,
        };
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = match v {
            Value::ServerError(e) => {
                tracing::debug!(job = JOB, target = %self.target, error = %self.redact(e.to_string()),
                    "CONFIG GET maxclients refused; maxclients comes from INFO");
                self.config_get = false;
                return None;
            }
            Value::Array(items) => items
                .chunks(2)
                .filter_map(|p| Some((bytes(p.first()?)?, bytes(p.get(1)?)?)))
                .collect(),
            Value::Map(items) => items
                .iter()
                .filter_map(|(k, v)| Some((bytes(k)?, bytes(v)?)))
                .collect(),
            _ => return None,
        };
        info::maxclients_from_pairs(pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
    }

    /// Queue commands refused by the server (an ACL without SCAN or TYPE):
    /// warned about when the error changes, not on every scrape.
    fn log_queue_error(&mut self) {
        let err = self.queues.error.take().map(|e| self.redact(e));
        if err.is_some() && err != self.last_queue_error {
            tracing::warn!(job = JOB, target = %self.target, error = ?err,
                "some queue lengths could not be read");
        }
        self.last_queue_error = err;
    }

    fn error(&self, what: &'static str, message: String) -> RedisSourceError {
        RedisSourceError::Redis {
            target: self.target.clone(),
            what,
            message: self.redact(message),
        }
    }

    fn redact(&self, message: String) -> String {
        self.secrets.redact(message)
    }

    fn add_secret(&mut self, s: String) {
        self.secrets.add(s);
    }
}

impl Source for RedisScraper {
    fn scrape<'a>(
        &'a mut self,
        ctx: ScrapeCtx,
        out: &'a mut SampleBuf,
    ) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(self.scrape_once(ctx, out))
    }
}

/// The password of a URL as written (percent-encoded), if any.
fn url_password(url: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .password()
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
}

/// `%XX` escapes decoded, as the client library decodes a URL's password.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied(), b.get(i + 2).copied()) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                let v = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(v as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_the_password_is_redacted() {
        let cfg = crate::config::Config::parse(
            "sources:\n  redis:\n    - {name: a, url: \"redis://u:p%40ss%2Fw@h:1\"}\n",
            "t.yml",
        )
        .unwrap();
        let s = RedisScraper::new(&cfg.sources.redis[0]);
        assert_eq!(s.target, "h:1");
        assert_eq!(
            s.redact("auth p@ss/w failed for p%40ss%2Fw".into()),
            "auth xxxxx failed for xxxxx"
        );
        assert_eq!(percent_decode("a%zz%4"), "a%zz%4");
    }
}
