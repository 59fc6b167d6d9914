//! timestamp() and the calendar functions (minute, hour, day_of_week,
//! day_of_month, day_of_year, days_in_month, month, year), all in UTC.

use promql_parser::parser::Expr;

use crate::model::Labels;
use crate::promql::eval::Evaluator;
use crate::promql::value::{Batch, SeriesMeta, Steps};
use crate::promql::Result;

/// timestamp(v): the timestamp of each sample in seconds. For a plain
/// selector that is the time the sample was scraped, not the step time.
pub(super) fn timestamp(ev: &mut Evaluator, args: &[&Expr], steps: Steps) -> Result<Batch> {
    let b = match args[0] {
        Expr::VectorSelector(vs) => ev.select_instant(vs, steps, true)?,
        e => {
            let mut b = ev.eval_vector(e, steps)?;
            b.retain_points(|_, t, v| {
                *v = t as f64 / 1000.0;
                true
            });
            b
        }
    };
    b.drop_names(true)
}

type DateFn = fn(i64) -> f64;

pub(super) fn date_fn(name: &str) -> Option<DateFn> {
    let f: DateFn = match name {
        "minute" => |s| (s.rem_euclid(3600) / 60) as f64,
        "hour" => |s| (s.rem_euclid(86_400) / 3600) as f64,
        "day_of_week" => |s| (s.div_euclid(86_400) + 4).rem_euclid(7) as f64,
        "day_of_month" => |s| civil_from_days(s.div_euclid(86_400)).2 as f64,
        "day_of_year" => |s| {
            let days = s.div_euclid(86_400);
            let (y, _, _) = civil_from_days(days);
            (days - days_from_civil(y, 1, 1) + 1) as f64
        },
        "days_in_month" => |s| {
            let (y, m, _) = civil_from_days(s.div_euclid(86_400));
            days_in_month(y, m) as f64
        },
        "month" => |s| civil_from_days(s.div_euclid(86_400)).1 as f64,
        "year" => |s| civil_from_days(s.div_euclid(86_400)).0 as f64,
        _ => return None,
    };
    Some(f)
}

/// A calendar function: of the evaluation time when called without an
/// argument, else of each sample value taken as Unix seconds.
pub(super) fn date(ev: &mut Evaluator, f: DateFn, args: &[&Expr], steps: Steps) -> Result<Batch> {
    match args.first() {
        None => {
            let mut b = Batch::with_capacity(1, steps.len());
            for k in 0..steps.len() {
                // Go's integer division truncates, like Rust's.
                b.push(steps.t(k), f(steps.t(k) / 1000));
            }
            b.finish_series(SeriesMeta::owned(Labels::empty()));
            Ok(b)
        }
        Some(e) => {
            let mut b = ev.eval_vector(e, steps)?;
            b.retain_points(|_, _, v| {
                *v = f(*v as i64);
                true
            });
            b.drop_names(true)
        }
    }
}

/// Year, month (1-12) and day (1-31) of a day count since 1970-01-01
/// (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = (if z >= 0 { z } else { z - 146_096 }) / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = (if y >= 0 { y } else { y - 399 }) / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_conversions() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        // 2024-02-29 is day 19782.
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        let f = date_fn("day_of_week").unwrap();
        assert_eq!(f(0), 4.0); // Thursday
        assert_eq!(date_fn("days_in_month").unwrap()(19_782 * 86_400), 29.0);
        assert_eq!(date_fn("day_of_year").unwrap()(19_782 * 86_400), 60.0);
        assert_eq!(date_fn("hour").unwrap()(3 * 3600 + 59), 3.0);
    }
}
