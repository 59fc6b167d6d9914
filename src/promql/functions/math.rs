//! Element-wise math: abs, ceil, floor, exp, ln, log2, log10, sqrt, sgn,
//! trigonometry, deg, rad, round, clamp, clamp_min, clamp_max.

use promql_parser::parser::Expr;

use super::scalar_arg;
use crate::promql::eval::Evaluator;
use crate::promql::value::{Batch, Steps};
use crate::promql::Result;

/// The element-wise function of this name, if it takes no parameters.
pub(super) fn simple(name: &str) -> Option<fn(f64) -> f64> {
    let f: fn(f64) -> f64 = match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sqrt" => f64::sqrt,
        "sgn" => |v| {
            if v < 0.0 {
                -1.0
            } else if v > 0.0 {
                1.0
            } else {
                v
            }
        },
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => |v| v * 180.0 / std::f64::consts::PI,
        "rad" => |v| v * std::f64::consts::PI / 180.0,
        _ => return None,
    };
    Some(f)
}

/// Applies `f` to every value; the result drops the metric name.
pub(super) fn apply(mut b: Batch, f: fn(f64) -> f64) -> Result<Batch> {
    b.vals.iter_mut().for_each(|v| *v = f(*v));
    b.drop_names(true)
}

/// Go's `math.Max`: NaN wins, and +0 is larger than -0.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_positive() {
            a
        } else {
            b
        }
    } else if a > b {
        a
    } else {
        b
    }
}

/// Go's `math.Min`: NaN wins, and -0 is smaller than +0.
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() {
            a
        } else {
            b
        }
    } else if a < b {
        a
    } else {
        b
    }
}

/// round, clamp, clamp_min and clamp_max, whose parameters may change by step.
pub(super) fn with_params(
    ev: &mut Evaluator,
    name: &str,
    args: &[&Expr],
    steps: Steps,
) -> Result<Batch> {
    let mut b = ev.eval_vector(args[0], steps)?;
    match name {
        "round" => {
            let to = scalar_arg(ev, args.get(1), 1.0, steps)?;
            b.retain_points(|_, t, v| {
                // The inverse gives fewer floating-point surprises.
                let inv = 1.0 / to[steps.index(t)];
                *v = (*v * inv + 0.5).floor() / inv;
                true
            });
        }
        _ => {
            let (lo, hi) = match name {
                "clamp" => (
                    scalar_arg(ev, args.get(1), f64::NEG_INFINITY, steps)?,
                    scalar_arg(ev, args.get(2), f64::INFINITY, steps)?,
                ),
                "clamp_min" => (
                    scalar_arg(ev, args.get(1), f64::NEG_INFINITY, steps)?,
                    vec![f64::INFINITY; steps.len()],
                ),
                _ => (
                    vec![f64::NEG_INFINITY; steps.len()],
                    scalar_arg(ev, args.get(1), f64::INFINITY, steps)?,
                ),
            };
            b.retain_points(|_, t, v| {
                let k = steps.index(t);
                if hi[k] < lo[k] {
                    return false;
                }
                *v = go_max(lo[k], go_min(hi[k], *v));
                true
            });
        }
    }
    b.drop_names(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_min_max_propagate_nan() {
        assert!(go_max(1.0, f64::NAN).is_nan());
        assert!(go_min(f64::NAN, 1.0).is_nan());
        assert_eq!(go_max(1.0, 2.0), 2.0);
        assert!(go_max(-0.0, 0.0).is_sign_positive());
    }
}
