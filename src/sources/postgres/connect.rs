//! Opening a connection: the DSN (inline or from its file), TLS, the
//! session's settings and the scrape's prepared queries; and the spacing of
//! attempts after failures.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};

use super::tls::MakeRustls;
use super::{
    queries, render_error, Conn, DsnFrom, PostgresScraper, PostgresSourceError, Statements, JOB,
};
use crate::config::{read_secret_file, PostgresDsn, PostgresTls, PostgresTlsMode};

impl PostgresScraper {
    pub(super) async fn connect(&mut self, timeout: Duration) -> Result<Conn, PostgresSourceError> {
        let dsn = match &self.dsn {
            DsnFrom::Inline(d) => (**d).clone(),
            DsnFrom::File(path) => {
                // A few bytes from a local file, once per connection: not
                // worth the blocking pool.
                let text = read_secret_file(path).map_err(|e| PostgresSourceError::DsnFile {
                    target: self.target.clone(),
                    message: e.to_string(),
                })?;
                let d = PostgresDsn::parse(text.trim()).map_err(|message| {
                    PostgresSourceError::DsnFile {
                        target: self.target.clone(),
                        message,
                    }
                })?;
                self.add_dsn_secrets(&d);
                self.target = d.target();
                d
            }
        };
        let budget = timeout - timeout / 10;
        let mut cfg = dsn.config().clone();
        cfg.connect_timeout(budget);
        if cfg.get_application_name().is_none() {
            cfg.application_name("hourglass");
        }
        let tls = match &self.tls {
            Some(PostgresTls { mode, ca_file }) => {
                cfg.ssl_mode(match mode {
                    PostgresTlsMode::Disable => SslMode::Disable,
                    PostgresTlsMode::Prefer => SslMode::Prefer,
                    PostgresTlsMode::Require | PostgresTlsMode::VerifyFull => SslMode::Require,
                });
                match mode {
                    PostgresTlsMode::Disable => None,
                    PostgresTlsMode::VerifyFull => Some(MakeRustls::verified(ca_file.as_deref())),
                    _ => Some(MakeRustls::unverified()),
                }
            }
            // libpq's meaning of the DSN's sslmode (prefer by default).
            None if cfg.get_ssl_mode() == SslMode::Disable => None,
            None => Some(MakeRustls::unverified()),
        };
        let (client, task) = match tls {
            None => {
                let (client, connection) = cfg
                    .connect(NoTls)
                    .await
                    .map_err(|e| self.pg_error("connect", &e))?;
                (client, tokio::spawn(async move { drive(connection).await }))
            }
            Some(make) => {
                let make = make.map_err(|message| PostgresSourceError::Tls {
                    target: self.target.clone(),
                    message,
                })?;
                let (client, connection) = cfg
                    .connect(make)
                    .await
                    .map_err(|e| self.pg_error("connect", &e))?;
                (client, tokio::spawn(async move { drive(connection).await }))
            }
        };
        self.prepare(client, task, timeout).await
    }

    /// Sets the session up and prepares the scrape's queries: two round trips.
    async fn prepare(
        &self,
        client: Client,
        task: JoinHandle<()>,
        timeout: Duration,
    ) -> Result<Conn, PostgresSourceError> {
        let statement_timeout = (timeout * 8 / 10).as_millis().max(1);
        let setup = format!(
            "SET statement_timeout = {statement_timeout}; SELECT current_setting('server_version_num')"
        );
        let messages = match client.simple_query(&setup).await {
            Ok(m) => m,
            Err(e) => {
                task.abort();
                return Err(self.pg_error("session setup", &e));
            }
        };
        let server_version = messages
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0)?.parse::<i32>().ok(),
                _ => None,
            })
            .unwrap_or(0);
        let (instance_sql, stat_database_sql, size_sql) = (
            queries::instance_sql(server_version),
            queries::stat_database_sql(),
            queries::database_size_sql(server_version),
        );
        let prepared = tokio::try_join!(
            client.prepare(&instance_sql),
            client.prepare(queries::ACTIVITY_SQL),
            client.prepare(&stat_database_sql),
            client.prepare(&size_sql),
            client.prepare(queries::LOCKS_SQL),
        );
        match prepared {
            Ok((instance, activity, stat_database, database_size, locks)) => Ok(Conn {
                client,
                task,
                server_version,
                instance,
                activity,
                stat_database,
                database_size,
                locks,
                statements: Statements::Absent,
            }),
            Err(e) => {
                task.abort();
                Err(self.pg_error("prepare", &e))
            }
        }
    }
}

/// Runs a connection until it closes. Its error, if any, reaches the client
/// as a closed connection on the next query, which reports it.
async fn drive<F>(connection: F)
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
{
    if let Err(e) = connection.await {
        tracing::debug!(job = JOB, error = %render_error(&e), "postgres connection ended");
    }
}
