//! Times on the command line and in the report. Nothing here reads the
//! clock: "now" is a parameter.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::BacktestError;
use crate::rules::rule::{format_duration, parse_duration};

const DAY_MS: i64 = 86_400_000;

/// Parses a `--from`/`--to` argument: `now`, a duration ago (`-1h`,
/// `-30m`, `now-1h30m`), Unix seconds, RFC 3339 (`2024-05-01T03:00:00Z`,
/// also with a space and without the zone, read as UTC), or a UTC time of
/// day (`03:10`, `03:10:30`: the latest such time at or before now).
pub fn parse_time_arg(arg: &str, now_ms: i64) -> Result<i64, BacktestError> {
    let bad = |why: &str| BacktestError::BadTime {
        arg: arg.to_string(),
        why: why.to_string(),
    };
    let s = arg.trim();
    if s.eq_ignore_ascii_case("now") {
        return Ok(now_ms);
    }
    let rel = s
        .strip_prefix("now-")
        .or_else(|| s.strip_prefix('-'))
        .filter(|r| r.starts_with(|c: char| c.is_ascii_digit()));
    if let Some(d) = rel.and_then(|r| parse_duration(r).ok()) {
        return Ok(now_ms - d);
    }
    if let Ok(secs) = s.parse::<f64>() {
        if !secs.is_finite() || secs.abs() > 9.2e12 {
            return Err(bad("not a valid Unix time"));
        }
        return Ok((secs * 1000.0).round() as i64);
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(system_ms(t));
    }
    if let Some(tod) = time_of_day_ms(s) {
        let today = now_ms.div_euclid(DAY_MS) * DAY_MS + tod;
        return Ok(if today > now_ms {
            today - DAY_MS
        } else {
            today
        });
    }
    if parse_duration(s).is_ok() {
        return Err(bad(&format!(
            "a duration ago is written with a minus: -{s}"
        )));
    }
    Err(bad(
        "expected now, -DURATION (-1h, -30m), Unix seconds, RFC 3339 or HH:MM[:SS] UTC",
    ))
}

/// `HH:MM` or `HH:MM:SS` as milliseconds into the day.
fn time_of_day_ms(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.split(':').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty() || p.len() > 2) {
        return None;
    }
    let mut n = [0i64; 3];
    for (i, p) in parts.iter().enumerate() {
        n[i] = p.parse().ok()?;
    }
    (n[0] < 24 && n[1] < 60 && n[2] < 60).then(|| ((n[0] * 60 + n[1]) * 60 + n[2]) * 1000)
}

fn system_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

fn system_time(ms: i64) -> SystemTime {
    let d = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH + d
    } else {
        UNIX_EPOCH - d
    }
}

/// `2024-05-01T03:12:05Z` (seconds precision, UTC); with `short`, only
/// `03:12:05`.
pub fn format_time(ms: i64, short: bool) -> String {
    let full = humantime::format_rfc3339_seconds(system_time(ms)).to_string();
    if short {
        full.get(11..19).unwrap_or(&full).to_string()
    } else {
        full
    }
}

/// `2024-05-01T03:12:05.250Z`, for machines.
pub fn format_rfc3339_ms(ms: i64) -> String {
    humantime::format_rfc3339_millis(system_time(ms)).to_string()
}

/// `2024-05-01`, the UTC date of `ms`.
pub fn format_date(ms: i64) -> String {
    let full = format_time(ms, false);
    full.get(..10).unwrap_or(&full).to_string()
}

/// Whether two times fall on the same UTC day (then lines show only the
/// time of day).
pub fn same_day(a_ms: i64, b_ms: i64) -> bool {
    a_ms.div_euclid(DAY_MS) == b_ms.div_euclid(DAY_MS)
}

/// `t` relative to `now`, coarsely, as a person reads it: `-42s`, `-4m30s`,
/// `-42m`, `-1h5m`, `-3d2h`; `+` for the future, `now` within a second.
pub fn format_ago(t_ms: i64, now_ms: i64) -> String {
    let d = now_ms - t_ms;
    let sign = if d >= 0 { "-" } else { "+" };
    let s = d.unsigned_abs() / 1000;
    let (m, h, days) = (s / 60, s / 3600, s / 86_400);
    match s {
        0 => "now".to_string(),
        1..=59 => format!("{sign}{s}s"),
        60..=599 if s % 60 != 0 => format!("{sign}{m}m{}s", s % 60),
        60..=3599 => format!("{sign}{m}m"),
        3600..=86_399 if m % 60 != 0 => format!("{sign}{h}h{}m", m % 60),
        3600..=86_399 => format!("{sign}{h}h"),
        _ if h % 24 != 0 => format!("{sign}{days}d{}h", h % 24),
        _ => format!("{sign}{days}d"),
    }
}

/// A duration as Prometheus writes it (`5m`, `3m5s`, `1h2m`), rounded to
/// the second from a second up.
pub fn format_dur(ms: i64) -> String {
    if ms.abs() >= 1000 {
        format_duration((ms as f64 / 1000.0).round() as i64 * 1000)
    } else {
        format_duration(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2024-05-01T03:20:00Z
    const NOW: i64 = 1_714_533_600_000;

    #[test]
    fn parses_every_form() {
        let p = |s: &str| parse_time_arg(s, NOW).unwrap();
        assert_eq!(p("now"), NOW);
        assert_eq!(p("-1h"), NOW - 3_600_000);
        assert_eq!(p("now-1h30m"), NOW - 5_400_000);
        assert_eq!(p("-30m"), NOW - 1_800_000);
        assert_eq!(p("1714533600"), NOW);
        assert_eq!(p("2024-05-01T03:20:00Z"), NOW);
        assert_eq!(p("2024-05-01 03:20:00"), NOW);
        assert_eq!(p("03:10"), NOW - 600_000);
        // Later in the day than now: yesterday.
        assert_eq!(p("04:00"), NOW + 2_400_000 - DAY_MS);
        let err = parse_time_arg("1h", NOW).unwrap_err().to_string();
        assert!(err.contains("-1h"), "{err}");
        assert!(parse_time_arg("yesterday", NOW).is_err());
        assert!(parse_time_arg("25:00", NOW).is_err());
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(format_time(NOW, false), "2024-05-01T03:20:00Z");
        assert_eq!(format_time(NOW + 5_250, true), "03:20:05");
        assert_eq!(format_date(NOW), "2024-05-01");
        assert_eq!(format_ago(NOW - 42 * 60_000, NOW), "-42m");
        assert_eq!(format_ago(NOW - 270_000, NOW), "-4m30s");
        assert_eq!(format_ago(NOW - 3_900_000, NOW), "-1h5m");
        assert_eq!(format_ago(NOW - 2 * DAY_MS, NOW), "-2d");
        assert_eq!(format_ago(NOW + 5_000, NOW), "+5s");
        assert_eq!(format_ago(NOW - 400, NOW), "now");
        assert_eq!(format_dur(185_000), "3m5s");
        assert_eq!(format_dur(185_400), "3m5s");
        assert_eq!(format_dur(0), "0s");
    }
}
