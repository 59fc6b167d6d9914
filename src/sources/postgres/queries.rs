//! The SQL of a scrape and the samples made of its rows.
//!
//! Each query follows the postgres_exporter collector of the same metrics,
//! so that names, labels and values match what users' rules expect. Every
//! value column is cast to `float8` and every label column to `text` in
//! SQL, so rows decode without numeric or name types on this side.

use tokio_postgres::Row;

use crate::sources::SampleBuf;

/// Longest `query` label of a statement, in characters, after runs of
/// whitespace are collapsed to one space (postgres_exporter's default
/// `--collector.stat_statements.query_length`).
pub const QUERY_LABEL_CHARS: usize = 120;

/// What the instance query reports besides its samples.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct InstanceInfo {
    /// The schema `pg_stat_statements` is installed in, in the connected
    /// database; None when it is not installed.
    pub statements_schema: Option<String>,
}

/// One row: `max_connections`, replication, postmaster start and whether
/// `pg_stat_statements` is installed (postgres_exporter's `settings`,
/// `replication` and `postmaster` collectors).
pub fn instance_sql(server_version: i32) -> String {
    // The WAL functions were renamed from xlog in PostgreSQL 10.
    let (receive, replay) = if server_version >= 100_000 {
        ("pg_last_wal_receive_lsn()", "pg_last_wal_replay_lsn()")
    } else {
        (
            "pg_last_xlog_receive_location()",
            "pg_last_xlog_replay_location()",
        )
    };
    format!(
        "SELECT current_setting('max_connections')::float8,
  (CASE WHEN NOT pg_is_in_recovery() THEN 0
        WHEN {receive} = {replay} THEN 0
        ELSE GREATEST(0, EXTRACT(EPOCH FROM (now() - pg_last_xact_replay_timestamp())))
   END)::float8,
  (CASE WHEN pg_is_in_recovery() THEN 1 ELSE 0 END)::float8,
  GREATEST(0, EXTRACT(EPOCH FROM (now() - pg_last_xact_replay_timestamp())))::float8,
  EXTRACT(EPOCH FROM pg_postmaster_start_time())::float8,
  (SELECT n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'pg_stat_statements')"
    )
}

/// Sessions per database and state, every standard state of every
/// database present (0 when no session is in it), as postgres_exporter's
/// `pg_stat_activity` query has it.
pub const ACTIVITY_SQL: &str = "SELECT pg_database.datname::text, tmp.state,
  COALESCE(count, 0)::float8, COALESCE(max_tx_duration, 0)::float8
FROM (VALUES ('active'), ('idle'), ('idle in transaction'),
             ('idle in transaction (aborted)'), ('fastpath function call'), ('disabled'))
     AS tmp(state) CROSS JOIN pg_database
LEFT JOIN (
  SELECT datname, state, count(*) AS count,
         MAX(EXTRACT(EPOCH FROM now() - xact_start))::float8 AS max_tx_duration
  FROM pg_stat_activity GROUP BY datname, state) AS tmp2
  ON tmp.state = tmp2.state AND pg_database.datname = tmp2.datname";

/// The columns of `pg_stat_database` reported, each as
/// `pg_stat_database_<column>{datid,datname}`.
pub const STAT_DATABASE_COLUMNS: [&str; 14] = [
    "numbackends",
    "xact_commit",
    "xact_rollback",
    "blks_read",
    "blks_hit",
    "tup_returned",
    "tup_fetched",
    "tup_inserted",
    "tup_updated",
    "tup_deleted",
    "conflicts",
    "temp_files",
    "temp_bytes",
    "deadlocks",
];

/// The metric names of [`STAT_DATABASE_COLUMNS`], in the same order.
const STAT_DATABASE_METRICS: [&str; 14] = [
    "pg_stat_database_numbackends",
    "pg_stat_database_xact_commit",
    "pg_stat_database_xact_rollback",
    "pg_stat_database_blks_read",
    "pg_stat_database_blks_hit",
    "pg_stat_database_tup_returned",
    "pg_stat_database_tup_fetched",
    "pg_stat_database_tup_inserted",
    "pg_stat_database_tup_updated",
    "pg_stat_database_tup_deleted",
    "pg_stat_database_conflicts",
    "pg_stat_database_temp_files",
    "pg_stat_database_temp_bytes",
    "pg_stat_database_deadlocks",
];

/// `pg_stat_database`, without the row of shared objects (no datname).
pub fn stat_database_sql() -> String {
    let cols: Vec<String> = STAT_DATABASE_COLUMNS
        .iter()
        .map(|c| format!("{c}::float8"))
        .collect();
    format!(
        "SELECT datid::text, datname::text, {} FROM pg_stat_database WHERE datname IS NOT NULL",
        cols.join(", ")
    )
}

/// Database sizes. `pg_database_size` needs CONNECT on the database (or
/// `pg_read_all_stats`, from PostgreSQL 10): the others are left out rather
/// than failing the query.
pub fn database_size_sql(server_version: i32) -> String {
    let may = if server_version >= 100_000 {
        "has_database_privilege(oid, 'CONNECT') OR pg_has_role('pg_read_all_stats', 'MEMBER')"
    } else {
        "has_database_privilege(oid, 'CONNECT')"
    };
    format!("SELECT datname::text, pg_database_size(oid)::float8 FROM pg_database WHERE {may}")
}

/// Locks per database and mode, every mode of every database present, as
/// postgres_exporter's `pg_locks` query has it (modes in lower case).
pub const LOCKS_SQL: &str = "SELECT pg_database.datname::text, tmp.mode, COALESCE(count, 0)::float8
FROM (VALUES ('accesssharelock'), ('rowsharelock'), ('rowexclusivelock'),
             ('shareupdateexclusivelock'), ('sharelock'), ('sharerowexclusivelock'),
             ('exclusivelock'), ('accessexclusivelock'), ('sireadlock'))
     AS tmp(mode) CROSS JOIN pg_database
LEFT JOIN (
  SELECT database, lower(mode) AS mode, count(*) AS count
  FROM pg_locks WHERE database IS NOT NULL GROUP BY database, lower(mode)) AS tmp2
  ON tmp.mode = tmp2.mode AND pg_database.oid = tmp2.database";

/// The top `$1` statements by total execution time. Rows of the same
/// (user, database, queryid) (top-level and nested, from PostgreSQL 14) are
/// added up so each is one series. The text is cut on the server, so a
/// huge statement costs the same as a short one here.
pub fn statements_sql(schema: &str, server_version: i32) -> String {
    // pg_stat_statements 1.8 (PostgreSQL 13) split total_time into
    // planning and execution; postgres_exporter reports execution.
    let total = if server_version >= 130_000 {
        "total_exec_time"
    } else {
        "total_time"
    };
    let schema = schema.replace('"', "\"\"");
    format!(
        "SELECT d.datname::text, pg_get_userbyid(s.userid)::text, s.queryid::text,
  min(left(s.query, 1024)), sum(s.calls)::float8, (sum(s.{total}) / 1000.0)::float8,
  sum(s.rows)::float8
FROM \"{schema}\".pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
WHERE s.queryid IS NOT NULL
GROUP BY d.datname, s.userid, s.queryid
ORDER BY 6 DESC
LIMIT $1"
    )
}

/// A text column; None for NULL or a type that is not text.
fn text(row: &Row, i: usize) -> Option<&str> {
    row.try_get::<_, Option<&str>>(i).ok().flatten()
}

/// A float8 column; None for NULL.
fn num(row: &Row, i: usize) -> Option<f64> {
    row.try_get::<_, Option<f64>>(i).ok().flatten()
}

pub fn write_instance(rows: &[Row], out: &mut SampleBuf) -> InstanceInfo {
    const METRICS: [&str; 5] = [
        "pg_settings_max_connections",
        "pg_replication_lag_seconds",
        "pg_replication_is_replica",
        "pg_replication_last_replay_seconds",
        "pg_postmaster_start_time_seconds",
    ];
    let Some(row) = rows.first() else {
        return InstanceInfo::default();
    };
    for (i, name) in METRICS.iter().enumerate() {
        if let Some(v) = num(row, i) {
            out.push(name, &[], v);
        }
    }
    InstanceInfo {
        statements_schema: text(row, METRICS.len()).map(str::to_owned),
    }
}

pub fn write_activity(rows: &[Row], out: &mut SampleBuf) {
    for row in rows {
        let (Some(datname), Some(state)) = (text(row, 0), text(row, 1)) else {
            continue;
        };
        let labels = [("datname", datname), ("state", state)];
        if let Some(v) = num(row, 2) {
            out.push("pg_stat_activity_count", &labels, v);
        }
        if let Some(v) = num(row, 3) {
            out.push("pg_stat_activity_max_tx_duration", &labels, v);
        }
    }
}

pub fn write_stat_database(rows: &[Row], out: &mut SampleBuf) {
    for row in rows {
        let (Some(datid), Some(datname)) = (text(row, 0), text(row, 1)) else {
            continue;
        };
        let labels = [("datid", datid), ("datname", datname)];
        for (i, name) in STAT_DATABASE_METRICS.iter().enumerate() {
            if let Some(v) = num(row, i + 2) {
                out.push(name, &labels, v);
            }
        }
    }
}

pub fn write_database_size(rows: &[Row], out: &mut SampleBuf) {
    for row in rows {
        if let (Some(datname), Some(v)) = (text(row, 0), num(row, 1)) {
            out.push("pg_database_size_bytes", &[("datname", datname)], v);
        }
    }
}

pub fn write_locks(rows: &[Row], out: &mut SampleBuf) {
    for row in rows {
        if let (Some(datname), Some(mode), Some(v)) = (text(row, 0), text(row, 1), num(row, 2)) {
            out.push("pg_locks_count", &[("datname", datname), ("mode", mode)], v);
        }
    }
}

/// Writes the statements' three counters; `scratch` holds the shortened
/// query text between rows, so its allocation is reused.
pub fn write_statements(rows: &[Row], out: &mut SampleBuf, scratch: &mut String) {
    const METRICS: [&str; 3] = [
        "pg_stat_statements_calls_total",
        "pg_stat_statements_seconds_total",
        "pg_stat_statements_rows_total",
    ];
    for row in rows {
        let (Some(datname), Some(queryid)) = (text(row, 0), text(row, 2)) else {
            continue;
        };
        let user = text(row, 1).unwrap_or("unknown");
        query_label(text(row, 3).unwrap_or(""), scratch);
        for (i, name) in METRICS.iter().enumerate() {
            if let Some(v) = num(row, i + 4) {
                out.begin(name)
                    .label("datname", datname)
                    .label("user", user)
                    .label("queryid", queryid)
                    .label("query", scratch)
                    .value(v);
            }
        }
    }
}

/// The `query` label: runs of whitespace collapsed to one space, trimmed,
/// and cut at [`QUERY_LABEL_CHARS`] characters.
pub fn query_label(raw: &str, out: &mut String) {
    out.clear();
    let mut chars = 0;
    for word in raw.split_whitespace() {
        for (i, c) in std::iter::once(' ').chain(word.chars()).enumerate() {
            if i == 0 && out.is_empty() {
                continue;
            }
            if chars == QUERY_LABEL_CHARS {
                if out.ends_with(' ') {
                    out.pop();
                }
                return;
            }
            out.push(c);
            chars += 1;
        }
    }
}
