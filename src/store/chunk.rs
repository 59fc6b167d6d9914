//! The chunk codec: a run of samples of one series, compressed column by
//! column.
//!
//! * Timestamps: an integer column (see `intseq`) of deltas or
//!   delta-of-deltas; the first timestamp is kept by the caller. Series
//!   scraped together share the encoded column (see `tscol`).
//! * Values: most scraped values are decimals with few places (CPU seconds
//!   with 2, load averages, bytes as integers), so when every value `v` is
//!   exactly `n / 10^k` (the operation decoding does, checked bit for bit)
//!   the integers `n` are stored as an integer column. A few values that
//!   are not (NaN, staleness markers, ±Inf, -0.0) are kept aside as
//!   exceptions with their exact bits. Otherwise the values fall back to
//!   Gorilla's XOR encoding, or to one value when all are identical.
//!
//! Frame-of-reference packing decodes with a branch-free unpack and a
//! prefix sum, 1–2 ns a value, which a query over thousands of series needs
//! more than the last percent of compression. Measured on host data
//! (`benches/store.rs`): pco 1.1 packs 1-hour chunks ~20% smaller, but in
//! the 128-sample chunks a 5-minute query wants it is 40% larger and 20×
//! slower to decode; plain Gorilla XOR takes 2.5× the bytes for values.
//!
//! Value column layout: a tag byte (the decimal places `k`, `TAG_XOR` or
//! `TAG_CONST`), then the integer column and `uvarint` exception count with
//! `(uvarint index delta, u64 bits)` pairs, the XOR stream, or the 8 bytes
//! of the constant.

pub use super::bits::Corrupt;
use super::bits::{put_uvarint, Cursor};
use super::intseq::{get_intseq, put_intseq};
use super::xor::{get_xor, put_xor};

/// Most samples one chunk may hold.
pub const MAX_CHUNK_SAMPLES: usize = 4096;

/// Largest number of decimal places tried for values.
const MAX_DECIMALS: usize = 12;

const POW10: [f64; MAX_DECIMALS + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
];

/// Value-column tags other than a decimal count (0..=MAX_DECIMALS).
const TAG_XOR: u8 = 0x40;
const TAG_CONST: u8 = 0x41;

/// Reusable buffers for encoding and decoding, so that neither allocates in
/// steady state.
#[derive(Default)]
pub struct Codec {
    out_ts: Vec<i64>,
    out_vals: Vec<f64>,
    ints: Vec<i64>,
    ks: Vec<u8>,
    tmp: Vec<u64>,
    pad: Vec<u8>,
    trial: Vec<u8>,
}

impl Codec {
    pub fn new() -> Codec {
        Codec::default()
    }

    /// Heap bytes of the buffers, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        use super::mem::vec_bytes;
        vec_bytes(&self.out_ts)
            + vec_bytes(&self.out_vals)
            + vec_bytes(&self.ints)
            + vec_bytes(&self.ks)
            + vec_bytes(&self.tmp)
            + vec_bytes(&self.pad)
            + vec_bytes(&self.trial)
    }

    /// Appends the encoding of an increasing timestamp column (1 to
    /// `MAX_CHUNK_SAMPLES` values). The first timestamp is not stored:
    /// `decode_ts` takes it as `mint`.
    pub fn encode_ts(&mut self, ts: &[i64], out: &mut Vec<u8>) {
        assert!(!ts.is_empty() && ts.len() <= MAX_CHUNK_SAMPLES);
        if ts.len() > 1 {
            put_intseq(ts, true, &mut self.tmp, out);
        }
    }

    /// Like `encode_values` but always XOR; only for measuring the
    /// alternatives.
    #[doc(hidden)]
    pub fn encode_values_xor(&mut self, vals: &[f64], out: &mut Vec<u8>) {
        out.push(TAG_XOR);
        put_xor(vals, out);
    }

    /// Appends the encoding of a value column (1 to `MAX_CHUNK_SAMPLES`
    /// values).
    pub fn encode_values(&mut self, vals: &[f64], out: &mut Vec<u8>) {
        assert!(!vals.is_empty() && vals.len() <= MAX_CHUNK_SAMPLES);
        let first = vals[0].to_bits();
        if vals.iter().all(|v| v.to_bits() == first) {
            out.push(TAG_CONST);
            out.extend_from_slice(&first.to_le_bytes());
            return;
        }
        // At most one value in eight may be an exception; beyond that the
        // chunk is not decimal data and XOR does better.
        let budget = vals.len() / 8;
        self.ks.clear();
        let mut misses = 0;
        for &v in vals {
            let k = decimals(v);
            if k.is_none() {
                misses += 1;
                if misses > budget {
                    break;
                }
            }
            self.ks.push(k.unwrap_or(u8::MAX));
        }
        if misses <= budget {
            // Candidate scales: each decimal count seen that leaves few
            // enough values as exceptions; keep the smallest encoding.
            let mut best: Option<usize> = None;
            let start = out.len();
            let mut seen = [false; MAX_DECIMALS + 1];
            for &k in &self.ks {
                if k != u8::MAX {
                    seen[k as usize] = true;
                }
            }
            for (k, _) in seen.iter().enumerate().filter(|s| *s.1) {
                let over = self.ks.iter().filter(|&&ki| ki > k as u8).count();
                if over > budget {
                    continue;
                }
                let mut trial = std::mem::take(&mut self.trial);
                trial.clear();
                self.encode_decimal(vals, k, &mut trial);
                if best.is_none_or(|b| trial.len() < b) {
                    best = Some(trial.len());
                    out.truncate(start);
                    out.extend_from_slice(&trial);
                }
                self.trial = trial;
            }
            if best.is_some() {
                return;
            }
        }
        out.push(TAG_XOR);
        put_xor(vals, out);
    }

    /// Values as integers scaled by 10^k, with exceptions for those that are
    /// not exactly such a decimal.
    fn encode_decimal(&mut self, vals: &[f64], k: usize, out: &mut Vec<u8>) {
        let p = POW10[k];
        let mut exc: Vec<(usize, u64)> = Vec::new();
        self.ints.clear();
        for (i, &v) in vals.iter().enumerate() {
            match to_scaled(v, k, p) {
                Some(n) => self.ints.push(n),
                None => {
                    exc.push((i, v.to_bits()));
                    self.ints.push(0);
                }
            }
        }
        // Exceptions get an integer on the line through their neighbours,
        // so that they widen no difference column: a counter that ends in a
        // staleness marker keeps its narrow deltas.
        let x = &mut self.ints;
        let first_regular = (0..vals.len())
            .find(|i| exc.binary_search_by_key(i, |e| e.0).is_err())
            .unwrap_or(0);
        for &(i, _) in &exc {
            if i > first_regular {
                x[i] = match i - first_regular {
                    1 => x[i - 1],
                    _ => x[i - 1].wrapping_mul(2).wrapping_sub(x[i - 2]),
                };
            }
        }
        for i in (0..first_regular).rev() {
            x[i] = match x.get(i + 2) {
                Some(&b) => x[i + 1].wrapping_mul(2).wrapping_sub(b),
                None => x[i + 1],
            };
        }
        out.push(k as u8);
        put_intseq(&self.ints, false, &mut self.tmp, out);
        put_uvarint(out, exc.len() as u64);
        let mut last = 0;
        for (i, bits) in exc {
            put_uvarint(out, (i - last) as u64);
            out.extend_from_slice(&bits.to_le_bytes());
            last = i;
        }
    }

    /// Decodes a timestamp column of `n` values starting at `mint`. The
    /// result stays in the codec's buffer until its next use.
    pub fn decode_ts(&mut self, bytes: &[u8], mint: i64, n: usize) -> Result<&[i64], Corrupt> {
        if n == 0 || n > MAX_CHUNK_SAMPLES {
            return Err(Corrupt);
        }
        grow(&mut self.out_ts, n);
        let ts = &mut self.out_ts[..n];
        ts[0] = mint;
        if n > 1 {
            let mut c = Cursor::new(bytes);
            get_intseq(
                &mut c,
                Some(mint),
                n,
                0,
                &mut self.tmp,
                &mut self.pad,
                ts,
                |t| t,
            )?;
        }
        Ok(ts)
    }

    /// Decodes a value column of `n` values. The result stays in the
    /// codec's buffer until its next use.
    pub fn decode_values(&mut self, bytes: &[u8], n: usize) -> Result<&[f64], Corrupt> {
        self.decode_values_range(bytes, n, 0..n)
    }

    /// Decodes values `range` of a column of `n` values; values before the
    /// range cost only their part of a prefix sum. The result stays in the
    /// codec's buffer until its next use.
    pub fn decode_values_range(
        &mut self,
        bytes: &[u8],
        n: usize,
        range: std::ops::Range<usize>,
    ) -> Result<&[f64], Corrupt> {
        if n == 0 || n > MAX_CHUNK_SAMPLES || range.start > range.end || range.end > n {
            return Err(Corrupt);
        }
        let mut c = Cursor::new(bytes);
        let tag = c.u8()?;
        if tag == TAG_XOR {
            // XOR decodes sequentially: decode all, keep the range.
            grow(&mut self.out_vals, n);
            get_xor(c.rest(), &mut self.pad, &mut self.out_vals[..n])?;
            return Ok(&self.out_vals[range]);
        }
        let len = range.len();
        grow(&mut self.out_vals, len);
        let vals = &mut self.out_vals[..len];
        match tag {
            TAG_CONST => vals.fill(f64::from_bits(c.u64_le()?)),
            k if (k as usize) <= MAX_DECIMALS => {
                let (skip, tmp, pad) = (range.start, &mut self.tmp, &mut self.pad);
                get_intseq(&mut c, None, n, skip, tmp, pad, vals, |i| i as f64)?;
                if k > 0 {
                    // A separate pass, so that the divisions vectorize.
                    let p = POW10[k as usize];
                    for v in vals.iter_mut() {
                        *v /= p;
                    }
                }
                let exc = c.uvarint()?;
                let mut idx = 0usize;
                for _ in 0..exc {
                    idx = idx.checked_add(c.uvarint()? as usize).ok_or(Corrupt)?;
                    let bits = c.u64_le()?;
                    if idx >= n {
                        return Err(Corrupt);
                    }
                    if range.contains(&idx) {
                        vals[idx - range.start] = f64::from_bits(bits);
                    }
                }
            }
            _ => return Err(Corrupt),
        }
        Ok(vals)
    }
}

/// Makes `v` at least `n` long; buffers only grow, so the zeroing is paid
/// once.
fn grow<T: Copy + Default>(v: &mut Vec<T>, n: usize) {
    if v.len() < n {
        v.resize(n, T::default());
    }
}

/// Fewest decimal places `k` with `v == round(v * 10^k) / 10^k` bit for bit,
/// or None (NaN, infinities, -0.0, or more places than tried).
fn decimals(v: f64) -> Option<u8> {
    if !v.is_finite() {
        return None;
    }
    (0..=MAX_DECIMALS)
        .find(|&k| to_scaled(v, k, POW10[k]).is_some())
        .map(|k| k as u8)
}

/// `v * 10^k` as an integer when decoding it (`n as f64 / 10^k`, exactly the
/// operation `Codec::decode_values` does) gives back `v` bit for bit.
#[inline]
fn to_scaled(v: f64, k: usize, p: f64) -> Option<i64> {
    let x = v * p;
    // Beyond 2^62 deltas between values could overflow the columns' i64
    // arithmetic in ways that, while still exact, would cost full width.
    // (Written so that NaN fails too.)
    if x.abs().partial_cmp(&4.6e18) != Some(std::cmp::Ordering::Less) {
        return None;
    }
    // Rounding half away from zero; `f64::round` is a libm call on
    // baseline x86-64. An off-by-one near .5 only fails the check below.
    let n = (x + 0.5f64.copysign(x)) as i64;
    let back = if k == 0 { n as f64 } else { n as f64 / p };
    (back.to_bits() == v.to_bits()).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::STALE_NAN_BITS;
    use proptest::prelude::*;

    /// Encodes and decodes both columns; returns the bytes they take.
    fn round_trip(ts: &[i64], vals: &[f64]) -> usize {
        let mut codec = Codec::new();
        let (mut bt, mut bv) = (Vec::new(), Vec::new());
        codec.encode_ts(ts, &mut bt);
        codec.encode_values(vals, &mut bv);
        assert_eq!(codec.decode_ts(&bt, ts[0], ts.len()).unwrap(), ts);
        let bits = |v: &[f64]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let back = codec.decode_values(&bv, vals.len()).unwrap();
        assert_eq!(bits(back), bits(vals));
        let n = vals.len();
        for r in [n / 2..n, 1.min(n)..n, n / 3..n * 2 / 3, n..n] {
            let part = codec.decode_values_range(&bv, n, r.clone()).unwrap();
            assert_eq!(bits(part), bits(&vals[r]));
        }
        bt.len() + bv.len()
    }

    fn special_f64() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            Just(f64::from_bits(STALE_NAN_BITS)),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
            Just(0.0),
            (0i64..1_000_000, 0usize..4).prop_map(|(n, k)| n as f64 / POW10[k]),
        ]
    }

    /// Increasing timestamps: a start and positive steps, sometimes huge.
    fn timestamps(max: usize) -> impl Strategy<Value = Vec<i64>> {
        (
            any::<i64>(),
            proptest::collection::vec(prop_oneof![1i64..2000, 1i64..i64::MAX / 4], 0..max),
        )
            .prop_map(|(start, steps)| {
                let mut t = start;
                let mut v = vec![t];
                for s in steps {
                    match t.checked_add(s) {
                        Some(n) => t = n,
                        None => break,
                    }
                    v.push(t);
                }
                v
            })
    }

    proptest! {
        #[test]
        fn arbitrary_chunks_round_trip(
            ts in timestamps(300),
            vals in proptest::collection::vec(special_f64(), 300),
        ) {
            round_trip(&ts, &vals[..ts.len()]);
        }

        #[test]
        fn decimal_series_round_trip(
            ts in timestamps(200),
            start in -1_000_000i64..1_000_000_000,
            steps in proptest::collection::vec(0i64..200, 200),
            k in 0usize..=MAX_DECIMALS,
            mult in prop_oneof![Just(1i64), Just(512), Just(1024), Just(4096)],
            specials in proptest::collection::vec((0usize..200, special_f64()), 0..6),
        ) {
            let mut n = start;
            let mut vals: Vec<f64> = steps[..ts.len()].iter().map(|s| { n += s * mult; n as f64 / POW10[k] }).collect();
            for (i, v) in specials {
                if i < vals.len() { vals[i] = v; }
            }
            round_trip(&ts, &vals);
        }
    }

    #[test]
    fn single_sample_and_constant_chunks() {
        round_trip(&[5], &[1.5]);
        round_trip(&[i64::MIN], &[f64::from_bits(STALE_NAN_BITS)]);
        round_trip(&[i64::MIN, i64::MAX], &[f64::MAX, f64::MIN_POSITIVE]);
        let ts: Vec<i64> = (0..120).map(|i| i * 15_000).collect();
        let size = round_trip(&ts, &[1.0 / 3.0; 120]);
        assert!(size <= 14, "constant chunk takes {size} bytes");
    }

    #[test]
    fn realistic_columns_are_small() {
        // CPU seconds: 2 decimals growing up to 1 per second, 1 s scrapes with
        // a few ms of jitter.
        let ts: Vec<i64> = (0..128)
            .map(|i| 1_700_000_000_000 + i * 1000 + (i * 7919 % 5))
            .collect();
        let mut x = 12_345_678i64;
        let mut rng = 42u64;
        let vals: Vec<f64> = (0..128)
            .map(|_| {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                x += 90 + (rng >> 60) as i64;
                x as f64 / 100.0
            })
            .collect();
        let size = round_trip(&ts, &vals);
        assert!(size < 128, "cpu chunk takes {size} bytes");
        // A stale marker at the end does not push the chunk to XOR.
        let mut v2 = vals.clone();
        v2[127] = f64::from_bits(STALE_NAN_BITS);
        let with_marker = round_trip(&ts, &v2);
        assert!(with_marker <= size + 10, "{size} then {with_marker}");
    }

    #[test]
    fn corrupt_input_is_an_error() {
        let mut codec = Codec::new();
        assert!(codec.decode_values(&[], 3).is_err());
        assert!(codec.decode_values(&[0x77], 3).is_err());
        assert!(codec.decode_values(&[TAG_CONST, 1, 2], 3).is_err());
        assert!(codec.decode_ts(&[200], 0, 3).is_err());
        assert!(codec.decode_ts(&[], 0, 0).is_err());
    }
}
