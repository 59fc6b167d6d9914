//! The PostgreSQL source: postgres_exporter's metric names
//! (`job="postgres"`, `instance` = the source's name) from one connection
//! per target, kept across scrapes.
//!
//! A scrape is one round trip: the queries of `queries.rs`, prepared once
//! per connection, are sent together (tokio-postgres pipelines requests
//! made at the same time on one connection) and decoded in binary. When
//! `pg_stat_statements` is installed in the connected database (the
//! instance query tells, every scrape), its top statements join the same
//! round trip from the next scrape on; an extension that is installed but
//! not loaded (`shared_preload_libraries`) is noted once per connection and
//! left alone, and a missing one is not an error.
//!
//! On connecting, `statement_timeout` is set to 80 % of the scrape timeout,
//! so a slow server cancels the query itself; the whole scrape, connection
//! included, is cut at 90 %, so that `pg_up 0` is still written before the
//! loop's own timeout would discard everything. A failed scrape writes only
//! `pg_up 0` and returns [`SourceError::Down`]: the loop keeps that sample,
//! sets `up` to 0 and marks the other series stale. The connection is then
//! dropped; after failures to connect, attempts are spaced 1 s, 2 s, 4 s...
//! up to 30 s apart (scrapes in between report the last error without
//! touching the network). A query the server refuses (a permission, a
//! statement timeout) only leaves its metrics out: the server answered, so
//! `pg_up` is 1.
//!
//! Errors and logs name the target by `host:port/database` (the loop adds
//! the source's name). The password is never shown: messages are built from
//! the client library's errors (which do not carry the configuration) with
//! every form of the password replaced all the same.

mod connect;
mod queries;
#[cfg(test)]
mod tests;
mod tls;

use std::path::PathBuf;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Statement};

use super::backoff::{Backoff, Secrets};
use super::{BoxFuture, SampleBuf, ScrapeCtx, Source, SourceError};
use crate::config::{PostgresDsn, PostgresSource, PostgresTls};
pub use queries::QUERY_LABEL_CHARS;

/// The `job` label of PostgreSQL series.
pub const JOB: &str = "postgres";

/// Why a PostgreSQL scrape failed. Messages name the target by
/// `host:port/database` and never contain its password.
#[derive(Debug, thiserror::Error)]
pub enum PostgresSourceError {
    #[error("{target}: cannot read dsn_file: {message}")]
    DsnFile { target: String, message: String },
    #[error("{target}: {what}: {message}")]
    Postgres {
        target: String,
        what: &'static str,
        message: String,
    },
    #[error("{target}: tls: {message}")]
    Tls { target: String, message: String },
    #[error("{target}: no answer within {after:?}")]
    Timeout { target: String, after: Duration },
    /// Reported while waiting before the next connection attempt: the
    /// message of the failure that made it wait, so repeated failures log
    /// as one.
    #[error("{0}")]
    Waiting(String),
}

/// Scrapes one PostgreSQL server. Keeps its connection across scrapes.
pub struct PostgresScraper {
    dsn: DsnFrom,
    /// `host:port/database`, how messages name the target.
    target: String,
    tls: Option<PostgresTls>,
    statements_enabled: bool,
    statements_limit: i64,
    /// Every form of the password that could appear in a message.
    secrets: Secrets,
    conn: Option<Conn>,
    backoff: Backoff,
    /// Queries refused on the last scrape, to warn only when that changes.
    last_refused: Option<String>,
    /// Reused for the statements' `query` label.
    scratch: String,
}

enum DsnFrom {
    Inline(Box<PostgresDsn>),
    File(PathBuf),
}

/// An open connection and what was learnt on it.
struct Conn {
    client: Client,
    /// Drives the connection; aborted when the connection is dropped, so a
    /// hung socket cannot outlive it.
    task: JoinHandle<()>,
    server_version: i32,
    instance: Statement,
    activity: Statement,
    stat_database: Statement,
    database_size: Statement,
    locks: Statement,
    statements: Statements,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `pg_stat_statements` on one connection.
enum Statements {
    /// Not installed in the connected database (or not wanted).
    Absent,
    Ready(Statement),
    /// Installed but unusable (not in `shared_preload_libraries`): not
    /// asked again on this connection.
    Unavailable,
}

impl PostgresScraper {
    pub fn new(cfg: &PostgresSource) -> PostgresScraper {
        let (dsn, target) = match (&cfg.dsn, &cfg.dsn_file) {
            (Some(d), _) => (DsnFrom::Inline(Box::new(d.clone())), d.target()),
            (None, Some(f)) => (
                DsnFrom::File(f.clone()),
                format!("dsn_file {}", f.display()),
            ),
            // Refused by validation; a target that never connects is the
            // honest outcome if it gets here anyway.
            (None, None) => (DsnFrom::File(PathBuf::new()), "no dsn".to_owned()),
        };
        let mut s = PostgresScraper {
            dsn,
            target,
            tls: cfg.tls.clone(),
            statements_enabled: cfg.statements.enabled,
            statements_limit: i64::try_from(cfg.statements.limit).unwrap_or(i64::MAX),
            secrets: Secrets::default(),
            conn: None,
            backoff: Backoff::default(),
            last_refused: None,
            scratch: String::new(),
        };
        if let DsnFrom::Inline(d) = &s.dsn {
            let d = d.clone();
            s.add_dsn_secrets(&d);
        }
        s
    }

    async fn scrape_once(
        &mut self,
        ctx: ScrapeCtx,
        out: &mut SampleBuf,
    ) -> Result<(), SourceError> {
        let budget = ctx.timeout - ctx.timeout / 10;
        let collected = tokio::time::timeout(budget, self.collect(ctx.timeout, out)).await;
        let err = match collected {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e,
            Err(_) => {
                let e = PostgresSourceError::Timeout {
                    target: self.target.clone(),
                    after: budget,
                };
                if self.conn.is_none() {
                    // Cut while connecting: space the next attempts too.
                    self.backoff.failed(Instant::now(), e.to_string());
                }
                e
            }
        };
        // The connection may be broken or stuck mid-reply: start afresh.
        self.conn = None;
        out.clear();
        out.push("pg_up", &[], 0.0);
        Err(SourceError::Down(Box::new(err)))
    }

    async fn collect(
        &mut self,
        timeout: Duration,
        out: &mut SampleBuf,
    ) -> Result<(), PostgresSourceError> {
        if self.conn.is_none() {
            if let Some(last) = self.backoff.waiting(Instant::now()) {
                return Err(PostgresSourceError::Waiting(last));
            }
            match self.connect(timeout).await {
                Ok(c) => {
                    self.backoff = Backoff::default();
                    self.conn = Some(c);
                    tracing::debug!(job = JOB, target = %self.target, "connected to postgres");
                }
                Err(e) => {
                    self.backoff.failed(Instant::now(), e.to_string());
                    return Err(e);
                }
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(self.error("connect", "no connection".into()));
        };
        let c = &conn.client;
        let limit = self.statements_limit;
        let statements = async {
            match &conn.statements {
                Statements::Ready(st) => Some(c.query(st, &[&limit]).await),
                _ => None,
            }
        };
        // One round trip: every request is written before any reply is read.
        let (instance, activity, stat_database, size, locks, statements) = tokio::join!(
            c.query(&conn.instance, &[]),
            c.query(&conn.activity, &[]),
            c.query(&conn.stat_database, &[]),
            c.query(&conn.database_size, &[]),
            c.query(&conn.locks, &[]),
            statements,
        );

        // Anything but the server's refusal of a query means the connection
        // is gone: the scrape fails.
        let mut refused = Vec::new();
        type Rows = Result<Vec<tokio_postgres::Row>, tokio_postgres::Error>;
        let mut rows = |what: &'static str, r: Rows| match r {
            Ok(rows) => Ok(Some(rows)),
            Err(e) => match db_error(&e) {
                Some(msg) => {
                    refused.push(format!("{what}: {msg}"));
                    Ok(None)
                }
                None => Err((what, e)),
            },
        };
        let results = (|| {
            Ok::<_, (&'static str, tokio_postgres::Error)>((
                rows("instance", instance)?,
                rows("pg_stat_activity", activity)?,
                rows("pg_stat_database", stat_database)?,
                rows("database size", size)?,
                rows("pg_locks", locks)?,
            ))
        })();
        let (instance, activity, stat_database, size, locks) = match results {
            Ok(r) => r,
            Err((what, e)) => return Err(self.pg_error(what, &e)),
        };
        out.push("pg_up", &[], 1.0);
        // None when the instance query was refused: then nothing is known
        // about the extension and nothing changes.
        let info = instance.map(|r| queries::write_instance(&r, out));
        if let Some(r) = activity {
            queries::write_activity(&r, out);
        }
        if let Some(r) = stat_database {
            queries::write_stat_database(&r, out);
        }
        if let Some(r) = size {
            queries::write_database_size(&r, out);
        }
        if let Some(r) = locks {
            queries::write_locks(&r, out);
        }
        match statements {
            Some(Ok(r)) => queries::write_statements(&r, out, &mut self.scratch),
            Some(Err(e)) => match e.code() {
                // Dropped since the last scrape: the instance query says so too.
                Some(c) if *c == SqlState::UNDEFINED_TABLE => conn.statements = Statements::Absent,
                Some(c) if *c == SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE => {
                    note_unavailable(&self.target, &e);
                    conn.statements = Statements::Unavailable;
                }
                _ => match db_error(&e) {
                    Some(msg) => refused.push(format!("pg_stat_statements: {msg}")),
                    None => return Err(self.pg_error("pg_stat_statements", &e)),
                },
            },
            None => {}
        }
        self.log_refused(refused);
        self.follow_statements(info).await
    }

    /// Prepares the statements query once the extension shows up, forgets
    /// it once it is gone. The new query runs from the next scrape on.
    async fn follow_statements(
        &mut self,
        info: Option<queries::InstanceInfo>,
    ) -> Result<(), PostgresSourceError> {
        let (Some(conn), Some(info)) = (self.conn.as_mut(), info) else {
            return Ok(());
        };
        let schema = match (info.statements_schema, &conn.statements) {
            (None, _) => {
                conn.statements = Statements::Absent;
                return Ok(());
            }
            (Some(s), Statements::Absent) if self.statements_enabled => s,
            _ => return Ok(()),
        };
        let sql = queries::statements_sql(&schema, conn.server_version);
        match conn.client.prepare(&sql).await {
            Ok(st) => conn.statements = Statements::Ready(st),
            Err(e) => match db_error(&e) {
                Some(msg) => {
                    conn.statements = Statements::Unavailable;
                    tracing::info!(job = JOB, target = %self.target, error = %self.redact(msg),
                        "pg_stat_statements is installed but cannot be read; its statements are left out");
                }
                None => return Err(self.pg_error("pg_stat_statements", &e)),
            },
        }
        Ok(())
    }

    /// Warns when the set of refused queries changes, not every scrape.
    fn log_refused(&mut self, refused: Vec<String>) {
        let now = (!refused.is_empty()).then(|| self.redact(refused.join("; ")));
        if now != self.last_refused {
            match &now {
                Some(e) => tracing::warn!(job = JOB, target = %self.target, error = %e,
                    "some PostgreSQL metrics could not be read"),
                None => tracing::info!(job = JOB, target = %self.target,
                    "all PostgreSQL metrics are read again"),
            }
        }
        self.last_refused = now;
    }

    fn pg_error(&self, what: &'static str, e: &tokio_postgres::Error) -> PostgresSourceError {
        self.error(what, render_error(e))
    }

    fn error(&self, what: &'static str, message: String) -> PostgresSourceError {
        PostgresSourceError::Postgres {
            target: self.target.clone(),
            what,
            message: self.redact(message),
        }
    }

    fn redact(&self, message: String) -> String {
        self.secrets.redact(message)
    }

    fn add_dsn_secrets(&mut self, d: &PostgresDsn) {
        if let Some(pw) = d.config().get_password() {
            self.add_secret(String::from_utf8_lossy(pw).into_owned());
        }
        // A URL's password as written, percent-encoded.
        if let Ok(u) = url::Url::parse(d.expose()) {
            if let Some(pw) = u.password() {
                self.add_secret(pw.to_owned());
            }
        }
    }

    fn add_secret(&mut self, s: String) {
        self.secrets.add(s);
    }
}

impl Source for PostgresScraper {
    fn scrape<'a>(
        &'a mut self,
        ctx: ScrapeCtx,
        out: &'a mut SampleBuf,
    ) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(self.scrape_once(ctx, out))
    }
}

/// The server's refusal of one query (a permission, a timeout), as
/// `SQLSTATE: message`; None for errors of the connection itself.
fn db_error(e: &tokio_postgres::Error) -> Option<String> {
    if e.is_closed() {
        return None;
    }
    e.as_db_error()
        .map(|d| format!("{}: {}", d.code().code(), d.message()))
}

/// A client error as text: the server's message with its SQLSTATE, or the
/// library's message and its cause. Neither carries the configuration.
fn render_error(e: &tokio_postgres::Error) -> String {
    if let Some(d) = e.as_db_error() {
        return format!("{} {}: {}", d.severity(), d.code().code(), d.message());
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        source = cause.source();
    }
    s
}

fn note_unavailable(target: &str, e: &tokio_postgres::Error) {
    tracing::info!(job = JOB, target = %target, error = %render_error(e),
        "pg_stat_statements is installed but not loaded (shared_preload_libraries); its statements are left out");
}
