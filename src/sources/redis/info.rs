//! `INFO`'s `key:value` lines turned into redis_exporter's metrics.
//!
//! The reply is parsed in place: each line is split at its first `:` and the
//! field name matched against a fixed table, so a scrape allocates nothing
//! here beyond the sample buffer's arena. Fields a Redis version lacks give
//! no series; fields it adds are ignored.

use crate::sources::SampleBuf;

/// What the caller needs from `INFO` beyond the samples written.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(super) struct InfoSummary {
    /// `maxclients` of the clients section (Redis ≥ 7), the fallback for
    /// `redis_config_maxclients` when `CONFIG GET` is not allowed.
    pub maxclients: Option<f64>,
    /// Lines that looked like fields; 0 means the reply was not INFO.
    pub fields: usize,
}

/// INFO field → metric name, for the fields that are plain numbers.
/// Counters carry `_total`, as redis_exporter names them.
fn metric_of(field: &str) -> Option<&'static str> {
    Some(match field {
        "uptime_in_seconds" => "redis_uptime_in_seconds",
        "connected_clients" => "redis_connected_clients",
        "blocked_clients" => "redis_blocked_clients",
        "used_memory" => "redis_memory_used_bytes",
        "used_memory_rss" => "redis_memory_used_rss_bytes",
        "used_memory_peak" => "redis_memory_used_peak_bytes",
        "maxmemory" => "redis_memory_max_bytes",
        "mem_fragmentation_ratio" => "redis_mem_fragmentation_ratio",
        "rdb_changes_since_last_save" => "redis_rdb_changes_since_last_save",
        "total_connections_received" => "redis_connections_received_total",
        "total_commands_processed" => "redis_commands_processed_total",
        "instantaneous_ops_per_sec" => "redis_instantaneous_ops_per_sec",
        "total_net_input_bytes" => "redis_net_input_bytes_total",
        "total_net_output_bytes" => "redis_net_output_bytes_total",
        "rejected_connections" => "redis_rejected_connections_total",
        "expired_keys" => "redis_expired_keys_total",
        "evicted_keys" => "redis_evicted_keys_total",
        "keyspace_hits" => "redis_keyspace_hits_total",
        "keyspace_misses" => "redis_keyspace_misses_total",
        "connected_slaves" => "redis_connected_slaves",
        "used_cpu_sys" => "redis_cpu_sys_seconds_total",
        "used_cpu_user" => "redis_cpu_user_seconds_total",
        _ => return None,
    })
}

/// Writes the metrics of one `INFO` reply (all default sections) to `out`.
pub(super) fn write_info(text: &str, out: &mut SampleBuf) -> InfoSummary {
    let mut summary = InfoSummary::default();
    let (mut version, mut mode, mut role) = ("", "", "");
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((field, value)) = line.split_once(':') else {
            continue;
        };
        summary.fields += 1;
        match field {
            "redis_version" => version = value,
            "redis_mode" => mode = value,
            "role" => role = value,
            "maxclients" => summary.maxclients = value.parse().ok(),
            _ if is_db(field) => write_keyspace(field, value, out),
            _ => {
                if let (Some(name), Ok(v)) = (metric_of(field), value.parse::<f64>()) {
                    out.push(name, &[], v);
                }
            }
        }
    }
    if !version.is_empty() {
        out.begin("redis_instance_info")
            .label("redis_version", version)
            .label("redis_mode", mode)
            .label("role", role)
            .value(1.0);
    }
    summary
}

/// `db0`, `db15`: the keyspace section's field names.
fn is_db(field: &str) -> bool {
    field
        .strip_prefix("db")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `db0:keys=5,expires=1,avg_ttl=120000[,subexpiry=0]`.
fn write_keyspace(db: &str, value: &str, out: &mut SampleBuf) {
    for pair in value.split(',') {
        let Some((k, v)) = pair.split_once('=') else {
            continue;
        };
        let Ok(v) = v.parse::<f64>() else {
            continue;
        };
        let (name, v) = match k {
            "keys" => ("redis_db_keys", v),
            "expires" => ("redis_db_keys_expiring", v),
            "avg_ttl" => ("redis_db_avg_ttl_seconds", v / 1000.0),
            _ => continue,
        };
        out.begin(name).label("db", db).value(v);
    }
}

/// `maxclients` from a `CONFIG GET maxclients` reply's pairs, RESP2
/// (`[name, value]`) or RESP3 (a map) alike; the caller flattens both into
/// name/value byte strings.
pub(super) fn maxclients_from_pairs<'a>(
    mut pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> Option<f64> {
    pairs.find_map(|(k, v)| {
        k.eq_ignore_ascii_case(b"maxclients")
            .then(|| std::str::from_utf8(v).ok()?.trim().parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n\
        uptime_in_seconds:3053\r\n\r\n# Clients\r\nconnected_clients:3\r\nmaxclients:10000\r\n\
        blocked_clients:1\r\n\r\n# Memory\r\nused_memory:966536\r\nused_memory_human:943.88K\r\n\
        maxmemory:0\r\nmem_fragmentation_ratio:7.41\r\n\r\n# Stats\r\ntotal_commands_processed:42\r\n\
        keyspace_hits:7\r\nkeyspace_misses:2\r\nevicted_keys:0\r\nexpired_keys:5\r\n\
        rejected_connections:0\r\n\r\n# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\
        \r\n# Keyspace\r\ndb0:keys=5,expires=1,avg_ttl=1500\r\ndb3:keys=2,expires=0,avg_ttl=0,subexpiry=0\r\n";

    type Sample = (String, Vec<(String, String)>, f64);

    fn samples(buf: &SampleBuf) -> Vec<Sample> {
        buf.iter()
            .map(|s| {
                let labels = s
                    .labels()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                (s.name().to_owned(), labels, s.value)
            })
            .collect()
    }

    fn value(buf: &SampleBuf, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        samples(buf).into_iter().find_map(|(n, l, v)| {
            let want: Vec<_> = labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            (n == name && l == want).then_some(v)
        })
    }

    #[test]
    fn fields_become_exporter_metrics() {
        let mut buf = SampleBuf::new();
        let s = write_info(INFO, &mut buf);
        assert_eq!(s.maxclients, Some(10000.0));
        assert!(s.fields > 10);
        for (name, want) in [
            ("redis_uptime_in_seconds", 3053.0),
            ("redis_connected_clients", 3.0),
            ("redis_blocked_clients", 1.0),
            ("redis_memory_used_bytes", 966536.0),
            ("redis_memory_max_bytes", 0.0),
            ("redis_mem_fragmentation_ratio", 7.41),
            ("redis_commands_processed_total", 42.0),
            ("redis_keyspace_hits_total", 7.0),
            ("redis_keyspace_misses_total", 2.0),
            ("redis_evicted_keys_total", 0.0),
            ("redis_expired_keys_total", 5.0),
            ("redis_rejected_connections_total", 0.0),
            ("redis_connected_slaves", 0.0),
        ] {
            assert_eq!(value(&buf, name, &[]), Some(want), "{name}");
        }
        assert_eq!(value(&buf, "redis_db_keys", &[("db", "db0")]), Some(5.0));
        assert_eq!(
            value(&buf, "redis_db_keys_expiring", &[("db", "db0")]),
            Some(1.0)
        );
        assert_eq!(
            value(&buf, "redis_db_avg_ttl_seconds", &[("db", "db0")]),
            Some(1.5)
        );
        assert_eq!(value(&buf, "redis_db_keys", &[("db", "db3")]), Some(2.0));
        assert_eq!(
            value(
                &buf,
                "redis_instance_info",
                &[
                    ("redis_version", "7.0.15"),
                    ("redis_mode", "standalone"),
                    ("role", "master")
                ]
            ),
            Some(1.0)
        );
        // Human-readable duplicates and unknown fields are skipped.
        assert!(samples(&buf).iter().all(|(n, _, _)| !n.contains("human")));
    }

    #[test]
    fn garbage_gives_nothing() {
        let mut buf = SampleBuf::new();
        let s = write_info(
            "no colon here\nconnected_clients:abc\n\n#x:1\ndbx:keys=1\ndb:keys=2\n",
            &mut buf,
        );
        assert_eq!(s.maxclients, None);
        assert!(buf.is_empty(), "{:?}", samples(&buf));
        assert_eq!(write_info("", &mut buf).fields, 0);
    }

    #[test]
    fn maxclients_from_config_get() {
        let pairs: [(&[u8], &[u8]); 1] = [(b"maxclients", b"4064")];
        assert_eq!(maxclients_from_pairs(pairs.into_iter()), Some(4064.0));
        assert_eq!(maxclients_from_pairs(std::iter::empty()), None);
    }
}
