//! The chunk codec: a run of samples of one series, compressed.
//!
//! A chunk is encoded column by column, every column as frame-of-reference
//! bit packing: after taking differences of order 0, 1 or 2 (whichever is
//! smallest for this chunk), every value minus the smallest is stored in the
//! same number of bits. Decoding is a branch-free unpack and a prefix sum, a
//! few nanoseconds per sample, which a query over thousands of series needs
//! more than the last few percent of compression.
//!
//! * Timestamps: the first one is the chunk's `mint`, kept by the caller; the
//!   others as deltas (jittered scrapes) or delta-of-deltas (exact intervals).
//! * Values: most scraped values are decimals with few places (CPU seconds
//!   with 2, load averages, bytes as integers), so when every value `v` is
//!   exactly `n / 10^k` (the same operation decoding does, checked bit for
//!   bit), the integers `n` are stored as above. A few values that are not
//!   (NaN, staleness markers, ±Inf, -0.0) are kept aside as exceptions with
//!   their exact bits. Otherwise the values fall back to Gorilla's XOR
//!   encoding, or to one value when all are identical.
//!
//! Layout: `uvarint n`, the timestamp column (absent when n = 1), the value
//! column. An integer column starts with a byte `order * 65 + width`.

pub use super::bits::Corrupt;
use super::bits::{
    bit_width, pack, packed_len, put_ivarint, put_uvarint, unpack, uvarint_len, zigzag, BitReader,
    BitWriter, Cursor,
};

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

    /// Appends the encoding of the samples to `out`. Timestamps must be
    /// increasing, `1 <= ts.len() <= MAX_CHUNK_SAMPLES` and
    /// `ts.len() == vals.len()`. The first timestamp is not stored: pass it
    /// to `decode` as `mint`.
    pub fn encode(&mut self, ts: &[i64], vals: &[f64], out: &mut Vec<u8>) {
        let n = ts.len();
        assert!(n >= 1 && n <= MAX_CHUNK_SAMPLES && n == vals.len());
        put_uvarint(out, n as u64);
        if n > 1 {
            put_intseq(ts, true, &mut self.tmp, out);
        }
        self.encode_values(vals, out);
    }

    /// Like `encode` but always uses the XOR value codec; only for
    /// measuring the alternatives.
    #[doc(hidden)]
    pub fn encode_xor(&mut self, ts: &[i64], vals: &[f64], out: &mut Vec<u8>) {
        let n = ts.len();
        assert!(n >= 1 && n <= MAX_CHUNK_SAMPLES && n == vals.len());
        put_uvarint(out, n as u64);
        if n > 1 {
            put_intseq(ts, true, &mut self.tmp, out);
        }
        out.push(TAG_XOR);
        put_xor(vals, out);
    }

    fn encode_values(&mut self, vals: &[f64], out: &mut Vec<u8>) {
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
            for k in 0..=MAX_DECIMALS {
                if !seen[k] {
                    continue;
                }
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

    /// Decodes a chunk whose first timestamp is `mint`. The samples stay
    /// in the codec's buffers until its next use, so that decoding many
    /// chunks allocates nothing.
    pub fn decode(&mut self, bytes: &[u8], mint: i64) -> Result<(&[i64], &[f64]), Corrupt> {
        let mut c = Cursor::new(bytes);
        let n = self.decode_ts_from(&mut c, mint)?;
        grow(&mut self.out_vals, n);
        let vals = &mut self.out_vals[..n];
        let tag = c.u8()?;
        match tag {
            TAG_CONST => vals.fill(f64::from_bits(c.u64_le()?)),
            TAG_XOR => get_xor(c.rest(), &mut self.pad, vals)?,
            k if (k as usize) <= MAX_DECIMALS => {
                grow(&mut self.ints, n);
                let ints = &mut self.ints[..n];
                get_intseq(&mut c, None, &mut self.tmp, &mut self.pad, ints)?;
                ints_to_f64(ints, k as usize, vals);
                let exc = c.uvarint()?;
                let mut idx = 0usize;
                for _ in 0..exc {
                    idx = idx.checked_add(c.uvarint()? as usize).ok_or(Corrupt)?;
                    *vals.get_mut(idx).ok_or(Corrupt)? = f64::from_bits(c.u64_le()?);
                }
            }
            _ => return Err(Corrupt),
        }
        Ok((&self.out_ts[..n], &self.out_vals[..n]))
    }

    /// Decodes only the timestamps of a chunk, as `decode` does.
    pub fn decode_ts(&mut self, bytes: &[u8], mint: i64) -> Result<&[i64], Corrupt> {
        let n = self.decode_ts_from(&mut Cursor::new(bytes), mint)?;
        Ok(&self.out_ts[..n])
    }

    fn decode_ts_from(&mut self, c: &mut Cursor<'_>, mint: i64) -> Result<usize, Corrupt> {
        let n = c.uvarint()? as usize;
        if n == 0 || n > MAX_CHUNK_SAMPLES {
            return Err(Corrupt);
        }
        grow(&mut self.out_ts, n);
        let ts = &mut self.out_ts[..n];
        ts[0] = mint;
        if n > 1 {
            get_intseq(c, Some(mint), &mut self.tmp, &mut self.pad, ts)?;
        }
        Ok(n)
    }
}

/// Makes `v` at least `n` long; buffers only grow, so the zeroing is paid
/// once.
fn grow<T: Copy + Default>(v: &mut Vec<T>, n: usize) {
    if v.len() < n {
        v.resize(n, T::default());
    }
}

/// `vals[i] = ints[i] as f64 / 10^k`, bit for bit what the encoder checked.
fn ints_to_f64(ints: &[i64], k: usize, vals: &mut [f64]) {
    // x86 without AVX-512 has no vector i64 → f64 conversion; for
    // |i| < 2^51 adding the integer to the bits of 2^52 + 2^51 and
    // subtracting that float gives the same exact result, vectorized.
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    let small = ints
        .iter()
        .all(|&i| (i.wrapping_add(1 << 51) as u64) < (1 << 52));
    let p = POW10[k];
    match (small, k) {
        (true, 0) => {
            for (v, &i) in vals.iter_mut().zip(ints) {
                *v = f64::from_bits(MAGIC.to_bits().wrapping_add(i as u64)) - MAGIC;
            }
        }
        (true, _) => {
            for (v, &i) in vals.iter_mut().zip(ints) {
                *v = (f64::from_bits(MAGIC.to_bits().wrapping_add(i as u64)) - MAGIC) / p;
            }
        }
        (false, 0) => {
            for (v, &i) in vals.iter_mut().zip(ints) {
                *v = i as f64;
            }
        }
        (false, _) => {
            for (v, &i) in vals.iter_mut().zip(ints) {
                *v = i as f64 / p;
            }
        }
    }
}

/// Number of samples in an encoded chunk.
pub fn sample_count(bytes: &[u8]) -> usize {
    Cursor::new(bytes).uvarint().unwrap_or(0) as usize
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
/// operation `Codec::decode` does) gives back `v` bit for bit.
#[inline]
fn to_scaled(v: f64, k: usize, p: f64) -> Option<i64> {
    let x = (v * p).round();
    // Beyond 2^62 deltas between values could overflow the columns' i64
    // arithmetic in ways that, while still exact, would cost full width.
    if !(x.abs() < 4.6e18) {
        return None;
    }
    let n = x as i64;
    let back = if k == 0 { n as f64 } else { n as f64 / p };
    (back.to_bits() == v.to_bits()).then_some(n)
}

/// Encodes an integer column, choosing the difference order that packs
/// smallest. With `first_known`, `x[0]` is not written (the decoder gets it).
fn put_intseq(x: &[i64], first_known: bool, tmp: &mut Vec<u64>, out: &mut Vec<u8>) {
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

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Decodes an integer column into `out` (its length is the column's length).
fn get_intseq(
    c: &mut Cursor<'_>,
    first: Option<i64>,
    tmp: &mut Vec<u64>,
    pad: &mut Vec<u8>,
    out: &mut [i64],
) -> Result<(), Corrupt> {
    let m = out.len();
    let tag = c.u8()?;
    let (order, width) = ((tag / 65) as usize, (tag % 65) as u32);
    if order > 2 {
        return Err(Corrupt);
    }
    if order >= 1 {
        out[0] = match first {
            Some(f) => f,
            None => c.ivarint()?,
        };
    }
    if order == 2 && m > 1 {
        out[1] = out[0].wrapping_add(c.ivarint()?);
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
    tmp.clear();
    tmp.resize(k, 0);
    unpack(src, width, tmp);
    c.take(len)?;
    match order {
        0 => {
            for (o, &p) in out.iter_mut().zip(tmp.iter()) {
                *o = min.wrapping_add((p as i64).wrapping_mul(g));
            }
        }
        1 => {
            let mut acc = out[0];
            for (o, &p) in out[1..].iter_mut().zip(tmp.iter()) {
                acc = acc.wrapping_add(min.wrapping_add((p as i64).wrapping_mul(g)));
                *o = acc;
            }
        }
        _ => {
            let mut acc = out[1];
            let mut d = out[1].wrapping_sub(out[0]);
            for (o, &p) in out[2..].iter_mut().zip(tmp.iter()) {
                d = d.wrapping_add(min.wrapping_add((p as i64).wrapping_mul(g)));
                acc = acc.wrapping_add(d);
                *o = acc;
            }
        }
    }
    Ok(())
}

/// Gorilla's XOR encoding of a value column.
fn put_xor(vals: &[f64], out: &mut Vec<u8>) {
    let mut w = BitWriter::new(std::mem::take(out));
    let mut prev = vals[0].to_bits();
    w.write(prev, 64);
    // The previous window of meaningful bits: (leading zeros, length).
    let mut win: Option<(u32, u32)> = None;
    for v in &vals[1..] {
        let bits = v.to_bits();
        let x = bits ^ prev;
        prev = bits;
        if x == 0 {
            w.bit(false);
            continue;
        }
        w.bit(true);
        let lz = x.leading_zeros().min(31);
        let tz = x.trailing_zeros();
        match win {
            Some((plz, plen)) if lz >= plz && tz >= 64 - plz - plen => {
                w.bit(false);
                w.write(x >> (64 - plz - plen), plen);
            }
            _ => {
                let len = 64 - lz - tz;
                w.bit(true);
                w.write(u64::from(lz), 5);
                w.write(u64::from(len - 1), 6);
                w.write(x >> tz, len);
                win = Some((lz, len));
            }
        }
    }
    *out = w.finish();
}

fn get_xor(buf: &[u8], pad: &mut Vec<u8>, vals: &mut [f64]) -> Result<(), Corrupt> {
    pad.clear();
    pad.extend_from_slice(buf);
    pad.resize(buf.len() + 16, 0);
    let mut r = BitReader::new(pad, buf.len());
    let mut prev = r.read(64);
    vals[0] = f64::from_bits(prev);
    let (mut plz, mut plen) = (0u32, 0u32);
    for v in &mut vals[1..] {
        if r.overran() {
            return Err(Corrupt);
        }
        // Control bits: `0` repeat, `10` same window, `11` new window.
        if r.bit() {
            if r.bit() {
                let hdr = r.read(11) as u32;
                plz = hdr >> 6;
                plen = (hdr & 63) + 1;
                if plz + plen > 64 {
                    return Err(Corrupt);
                }
            } else if plen == 0 {
                return Err(Corrupt);
            }
            prev ^= r.read(plen) << (64 - plz - plen);
        }
        *v = f64::from_bits(prev);
    }
    if r.overran() {
        return Err(Corrupt);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::STALE_NAN_BITS;
    use proptest::prelude::*;

    fn round_trip(ts: &[i64], vals: &[f64]) -> usize {
        let mut codec = Codec::new();
        let mut buf = Vec::new();
        codec.encode(ts, vals, &mut buf);
        let (ts2, vals2) = codec.decode(&buf, ts[0]).unwrap();
        assert_eq!(ts2, ts);
        let bits = |v: &[f64]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(vals2), bits(vals));
        assert_eq!(codec.decode_ts(&buf, ts[0]).unwrap(), ts);
        assert_eq!(sample_count(&buf), ts.len());
        buf.len()
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
        assert!(size <= 16, "constant chunk takes {size} bytes");
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
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
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
}
