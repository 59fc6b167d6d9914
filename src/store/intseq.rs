//! Integer columns: frame-of-reference bit packing of differences.
//!
//! A column of `m` integers is stored as the differences of order 0, 1 or 2
//! (whichever packs smallest): the first `order` values as varints, then
//! every difference as `min + gcd * p` with `p` packed in `width` bits. The
//! greatest common divisor catches byte counters that move in sectors or
//! pages and memory in KiB. Layout: a byte `order * 65 + width`, `x0`
//! (unless the caller knows it), `x1 - x0` (order 2), then `min`,
//! `gcd - 1` and the packed bits (when there are differences).
//!
//! All arithmetic wraps, so that any i64 sequence round-trips.

use super::bits::{
    bit_width, pack, packed_len, put_ivarint, put_uvarint, unpack, uvarint_len, zigzag, Corrupt,
    Cursor,
};

/// Encodes an integer column, choosing the difference order that packs
/// smallest. With `first_known`, `x[0]` is not written (the decoder gets it).
pub(crate) fn put_intseq(x: &[i64], first_known: bool, tmp: &mut Vec<u64>, out: &mut Vec<u8>) {
    let m = x.len();
    let mut best = (usize::MAX, 0usize, Frame::default());
    for order in (first_known as usize)..=2 {
        let f = frame(x, order);
        let packed_n = m.saturating_sub(order);
        let mut size = 1 + packed_len(packed_n, f.width);
        if packed_n > 0 {
            size += uvarint_len(zigzag(f.min)) + uvarint_len(f.gcd - 1);
        }
        if order >= 1 && !first_known {
            size += uvarint_len(zigzag(x[0]));
        }
        if order == 2 && m > 1 {
            size += uvarint_len(zigzag(x[1].wrapping_sub(x[0])));
        }
        if size < best.0 {
            best = (size, order, f);
        }
    }
    let (_, order, f) = best;
    out.push((order * 65) as u8 + f.width as u8);
    if order >= 1 && !first_known {
        put_ivarint(out, x[0]);
    }
    if order == 2 && m > 1 {
        put_ivarint(out, x[1].wrapping_sub(x[0]));
    }
    if m > order {
        put_ivarint(out, f.min);
        put_uvarint(out, f.gcd - 1);
        tmp.clear();
        tmp.extend(diffs(x, order).map(|d| d.wrapping_sub(f.min) as u64 / f.gcd));
        pack(tmp, f.width, out);
    }
}

/// Differences of the given order, with wrapping arithmetic so that any
/// i64 input round-trips.
fn diffs(x: &[i64], order: usize) -> impl Iterator<Item = i64> + '_ {
    let start = order.min(x.len());
    (start..x.len()).map(move |i| match order {
        0 => x[i],
        1 => x[i].wrapping_sub(x[i - 1]),
        _ => x[i]
            .wrapping_sub(x[i - 1])
            .wrapping_sub(x[i - 1].wrapping_sub(x[i - 2])),
    })
}

/// How a column of differences is packed: `d = min + gcd * packed`.
#[derive(Debug, Clone, Copy)]
struct Frame {
    min: i64,
    gcd: u64,
    width: u32,
}

impl Default for Frame {
    fn default() -> Self {
        Frame {
            min: 0,
            gcd: 1,
            width: 0,
        }
    }
}

/// The frame of the differences of one order: their minimum, the greatest
/// common divisor of their offsets above it (byte counters move in sectors
/// or pages, memory in KiB) and the bits the largest quotient needs.
fn frame(x: &[i64], order: usize) -> Frame {
    let mut it = diffs(x, order);
    let Some(first) = it.next() else {
        return Frame::default();
    };
    let (mut lo, mut hi) = (first, first);
    for d in it {
        lo = lo.min(d);
        hi = hi.max(d);
    }
    let mut g = 0u64;
    for d in diffs(x, order) {
        g = gcd(g, d.wrapping_sub(lo) as u64);
        if g == 1 {
            break;
        }
    }
    let g = g.max(1);
    Frame {
        min: lo,
        gcd: g,
        width: bit_width(hi.wrapping_sub(lo) as u64 / g),
    }
}

/// Greatest common divisor; 0 when both are 0.
fn gcd(a: u64, b: u64) -> u64 {
    if a == 0 || b == 0 {
        return a | b;
    }
    // The usual divisors are powers of two (512, 1024, 4096): then the
    // answer is the common power of two, without division.
    if a.is_power_of_two() {
        return a.min(1 << b.trailing_zeros());
    }
    // Stein's binary algorithm: shifts and subtractions only.
    let shift = (a | b).trailing_zeros();
    let (mut a, mut b) = (a >> a.trailing_zeros(), b);
    while b != 0 {
        b >>= b.trailing_zeros();
        if a > b {
            std::mem::swap(&mut a, &mut b);
        }
        b -= a;
    }
    a << shift
}

/// Decodes values `skip..skip + out.len()` of an integer column of `m`
/// values into `out`, each passed through `conv` (so that a value column
/// becomes floats in the same pass as the prefix sum). Skipped values cost
/// only their share of the prefix sum.
#[inline]
#[allow(clippy::too_many_arguments)]
pub(crate) fn get_intseq<T: Copy>(
    c: &mut Cursor<'_>,
    first: Option<i64>,
    m: usize,
    skip: usize,
    tmp: &mut Vec<u64>,
    pad: &mut Vec<u8>,
    out: &mut [T],
    conv: impl Fn(i64) -> T,
) -> Result<(), Corrupt> {
    let end = skip + out.len();
    if end > m {
        return Err(Corrupt);
    }
    let tag = c.u8()?;
    let (order, width) = ((tag / 65) as usize, (tag % 65) as u32);
    if order > 2 {
        return Err(Corrupt);
    }
    let x0 = if order >= 1 {
        match first {
            Some(f) => f,
            None => c.ivarint()?,
        }
    } else {
        0
    };
    let d1 = if order == 2 && m > 1 { c.ivarint()? } else { 0 };
    // The values stored before the packed differences.
    let mut put = |i: usize, x: i64| {
        if i >= skip && i < end {
            out[i - skip] = conv(x);
        }
    };
    if order >= 1 {
        put(0, x0);
    }
    if order == 2 && m > 1 {
        put(1, x0.wrapping_add(d1));
    }
    if m <= order {
        return Ok(());
    }
    let min = c.ivarint()?;
    let g = c.uvarint()?.wrapping_add(1) as i64;
    let k = m - order;
    let len = packed_len(k, width);
    // Unpacking reads up to 16 bytes past the packed data; use the chunk
    // in place when it has that much left, else a padded copy.
    let src = if c.rest().len() >= len + 16 {
        c.rest()
    } else {
        pad.clear();
        pad.extend_from_slice(c.rest().get(..len).ok_or(Corrupt)?);
        pad.resize(len + 16, 0);
        pad.as_slice()
    };
    // Differences needed: up to value `end - 1`, i.e. `end - order` of them.
    let need = end.saturating_sub(order);
    if tmp.len() < need {
        tmp.resize(need, 0);
    }
    let tmp = &mut tmp[..need];
    unpack(src, width, tmp);
    c.take(len)?;
    let delta = |p: u64| min.wrapping_add((p as i64).wrapping_mul(g));
    match order {
        0 => {
            for (o, &p) in out.iter_mut().zip(&tmp[skip..]) {
                *o = conv(delta(p));
            }
        }
        1 => {
            // Value i is x0 plus differences 0..i.
            let from = skip.max(1);
            let mut acc = x0;
            for &p in &tmp[..from - 1] {
                acc = acc.wrapping_add(delta(p));
            }
            let rest = out.get_mut(from - skip..).unwrap_or_default();
            for (o, &p) in rest.iter_mut().zip(&tmp[from - 1..]) {
                acc = acc.wrapping_add(delta(p));
                *o = conv(acc);
            }
        }
        _ => {
            let from = skip.max(2);
            let mut d = d1;
            let mut acc = x0.wrapping_add(d1);
            for &p in &tmp[..from - 2] {
                d = d.wrapping_add(delta(p));
                acc = acc.wrapping_add(d);
            }
            let rest = out.get_mut(from - skip..).unwrap_or_default();
            for (o, &p) in rest.iter_mut().zip(&tmp[from - 2..]) {
                d = d.wrapping_add(delta(p));
                acc = acc.wrapping_add(d);
                *o = conv(acc);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(x: &[i64], first_known: bool) -> usize {
        let mut buf = Vec::new();
        let mut tmp = Vec::new();
        put_intseq(x, first_known, &mut tmp, &mut buf);
        let len = buf.len();
        let first = first_known.then_some(x[0]);
        let m = x.len();
        // The whole column, and a few sub-ranges.
        let ranges = [
            (0, m),
            (m / 3, m),
            (0, m / 2),
            (m / 4, m * 3 / 4),
            (m - 1, m),
            (0, 0),
            (0, 1),
            (1, 1.max(m.min(2))),
            (0, m.min(2)),
            (m, m),
        ];
        for (a, b) in ranges {
            let mut out = vec![0i64; b - a];
            let mut c = Cursor::new(&buf);
            get_intseq(
                &mut c,
                first,
                m,
                a,
                &mut tmp,
                &mut Vec::new(),
                &mut out,
                |v| v,
            )
            .unwrap();
            assert_eq!(out, &x[a..b]);
            assert!(c.rest().is_empty());
        }
        len
    }

    proptest! {
        #[test]
        fn arbitrary_columns_round_trip(x in proptest::collection::vec(any::<i64>(), 1..300), known: bool) {
            round_trip(&x, known);
        }

        #[test]
        fn steady_columns_round_trip(
            start in any::<i64>(),
            steps in proptest::collection::vec(0i64..5, 1..300),
            step in prop_oneof![Just(1i64), Just(1000), Just(4096)],
            known: bool,
        ) {
            let mut v = start;
            let x: Vec<i64> = steps.iter().map(|s| { v = v.wrapping_add(s * step); v }).collect();
            round_trip(&x, known);
        }
    }

    #[test]
    fn gcd_matches_euclid() {
        fn euclid(mut a: u64, mut b: u64) -> u64 {
            while b != 0 {
                (a, b) = (b, a % b);
            }
            a
        }
        let xs = [
            0,
            1,
            2,
            3,
            12,
            512,
            1024,
            4096,
            6144,
            1 << 63,
            u64::MAX,
            999_999_937,
            12 * 4096,
        ];
        for &a in &xs {
            for &b in &xs {
                assert_eq!(gcd(a, b), euclid(a, b), "gcd({a}, {b})");
            }
        }
    }

    #[test]
    fn regular_columns_cost_nothing_per_value() {
        let ts: Vec<i64> = (0..128).map(|i| 1_700_000_000_000 + i * 15_000).collect();
        assert!(round_trip(&ts, true) <= 5);
        let pages: Vec<i64> = (0..128).map(|i| (1 << 30) | ((i * 7 % 5) * 4096)).collect();
        // Order 0 with gcd 4096: 3 bits a value.
        assert!(round_trip(&pages, false) <= 6 + 48 + 2);
    }
}
