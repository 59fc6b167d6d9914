//! Gorilla's XOR encoding of a value column, for values that are not short
//! decimals (durations, ratios, results of arithmetic).
//!
//! Each value is XORed with the previous one: `0` when equal; `10` and the
//! meaningful bits when they fit the previous window of leading/trailing
//! zeros; `11`, 5 bits of leading zeros, 6 bits of length and the bits
//! otherwise.

use super::bits::{BitReader, BitWriter, Corrupt};

/// Gorilla's XOR encoding of a value column.
pub(crate) fn put_xor(vals: &[f64], out: &mut Vec<u8>) {
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

pub(crate) fn get_xor(buf: &[u8], pad: &mut Vec<u8>, vals: &mut [f64]) -> Result<(), Corrupt> {
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
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn xor_round_trips(bits in proptest::collection::vec(prop_oneof![any::<u64>(), 0u64..4, Just(0x7ff0_0000_0000_0002)], 1..300)) {
            let vals: Vec<f64> = bits.iter().map(|&b| f64::from_bits(b)).collect();
            let mut buf = Vec::new();
            put_xor(&vals, &mut buf);
            let mut out = vec![0.0; vals.len()];
            get_xor(&buf, &mut Vec::new(), &mut out).unwrap();
            let back: Vec<u64> = out.iter().map(|v| v.to_bits()).collect();
            prop_assert_eq!(back, bits);
        }
    }

    #[test]
    fn truncated_input_is_an_error() {
        let vals = [1.5, 2.25, 3.125, 1e300];
        let mut buf = Vec::new();
        put_xor(&vals, &mut buf);
        let mut out = [0.0; 4];
        assert!(get_xor(&buf[..buf.len() - 3], &mut Vec::new(), &mut out).is_err());
    }
}
