//! Bit-level helpers shared by the chunk codecs: LEB128 varints, zigzag,
//! fixed-width bit packing (the frame-of-reference codec) and a bit stream
//! (the XOR codec).

/// Appends `v` as an unsigned LEB128 varint.
pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` zigzag-encoded as a varint.
pub(crate) fn put_ivarint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, zigzag(v));
}

/// Bytes `put_uvarint` writes for `v`.
pub(crate) fn uvarint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

#[inline]
pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
pub(crate) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Error for a chunk that ends early or holds an impossible field; only
/// reachable through a bug, since chunks never leave the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt;

/// Reads fields from the front of a byte slice.
pub(crate) struct Cursor<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Corrupt> {
        let b = *self.buf.get(self.pos).ok_or(Corrupt)?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn u64_le(&mut self) -> Result<u64, Corrupt> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().map_err(|_| Corrupt)?))
    }

    pub(crate) fn uvarint(&mut self) -> Result<u64, Corrupt> {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                return Err(Corrupt);
            }
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
            shift += 7;
            if shift > 63 {
                return Err(Corrupt);
            }
        }
    }

    pub(crate) fn ivarint(&mut self) -> Result<i64, Corrupt> {
        self.uvarint().map(unzigzag)
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Corrupt> {
        let end = self.pos.checked_add(n).ok_or(Corrupt)?;
        let s = self.buf.get(self.pos..end).ok_or(Corrupt)?;
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
}

/// Bits needed to hold `v` (0 for 0).
#[inline]
pub(crate) fn bit_width(v: u64) -> u32 {
    64 - v.leading_zeros()
}

/// Bytes `pack` writes for `n` values of `width` bits.
pub(crate) fn packed_len(n: usize, width: u32) -> usize {
    (n * width as usize).div_ceil(8)
}

/// Appends the low `width` bits of every value, least significant bit first,
/// back to back; the last byte is zero-padded.
pub(crate) fn pack(vals: &[u64], width: u32, out: &mut Vec<u8>) {
    if width == 0 {
        return;
    }
    let start = out.len();
    let mut acc: u128 = 0;
    let mut nbits = 0u32;
    for &v in vals {
        acc |= u128::from(v) << nbits;
        nbits += width;
        if nbits >= 64 {
            out.extend_from_slice(&(acc as u64).to_le_bytes());
            acc >>= 64;
            nbits -= 64;
        }
    }
    let tail = nbits.div_ceil(8) as usize;
    out.extend_from_slice(&(acc as u64).to_le_bytes()[..tail]);
    debug_assert_eq!(out.len() - start, packed_len(vals.len(), width));
}

/// Reverses `pack` for `out.len()` values. `src` must hold the packed bytes
/// followed by at least 16 bytes of padding (any content), which lets every
/// value be read with one unaligned load and no bounds branch.
pub(crate) fn unpack(src: &[u8], width: u32, out: &mut [u64]) {
    assert!(src.len() >= packed_len(out.len(), width) + 16);
    macro_rules! by_width {
        ($($w:literal)*) => {
            match width {
                0 => out.fill(0),
                $($w => unpack_fixed::<$w>(src, out),)*
                _ => unpack_wide(src, width, out),
            }
        };
    }
    by_width!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28
        29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56);
}

/// Unpacking with the width known at compile time: eight values take
/// exactly `W` bytes, so within a group every shift and offset is constant.
#[inline(always)]
fn unpack_fixed<const W: usize>(src: &[u8], out: &mut [u64]) {
    let mask = (1u64 << W) - 1;
    let mut groups = out.chunks_exact_mut(8);
    let mut base = 0;
    for g in &mut groups {
        let s = &src[base..base + W + 8];
        for (j, o) in g.iter_mut().enumerate() {
            let bit = j * W;
            let word = u64::from_le_bytes(s[bit / 8..bit / 8 + 8].try_into().unwrap());
            *o = (word >> (bit % 8)) & mask;
        }
        base += W;
    }
    for (j, o) in groups.into_remainder().iter_mut().enumerate() {
        let bit = base * 8 + j * W;
        let word = u64::from_le_bytes(src[bit / 8..bit / 8 + 8].try_into().unwrap());
        *o = (word >> (bit % 8)) & mask;
    }
}

/// Widths above 56 bits may straddle nine bytes: read 16.
fn unpack_wide(src: &[u8], width: u32, out: &mut [u64]) {
    let w = width as usize;
    let mask = if width == 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    };
    for (i, o) in out.iter_mut().enumerate() {
        let bit = i * w;
        let byte = bit >> 3;
        let word = u128::from_le_bytes(src[byte..byte + 16].try_into().unwrap());
        *o = (word >> (bit & 7)) as u64 & mask;
    }
}

/// Writes a stream of bit fields, most significant bit first.
#[derive(Default)]
pub(crate) struct BitWriter {
    pub(crate) out: Vec<u8>,
    acc: u64,
    nbits: u32,
}

impl BitWriter {
    pub(crate) fn new(out: Vec<u8>) -> Self {
        BitWriter {
            out,
            acc: 0,
            nbits: 0,
        }
    }

    /// Writes the low `n` bits of `v` (n ≤ 64).
    #[inline]
    pub(crate) fn write(&mut self, v: u64, n: u32) {
        if n == 0 {
            return;
        }
        let v = if n == 64 { v } else { v & ((1u64 << n) - 1) };
        let free = 64 - self.nbits;
        if n < free {
            self.acc = (self.acc << n) | v;
            self.nbits += n;
        } else {
            let rest = n - free;
            let hi = if free == 64 { v } else { v >> rest };
            let acc = if free == 64 {
                hi
            } else {
                (self.acc << free) | hi
            };
            self.out.extend_from_slice(&acc.to_be_bytes());
            self.acc = if rest == 0 {
                0
            } else {
                v & ((1u64 << rest) - 1)
            };
            self.nbits = rest;
        }
    }

    #[inline]
    pub(crate) fn bit(&mut self, b: bool) {
        self.write(b as u64, 1);
    }

    /// Flushes the last partial byte (zero-padded) and returns the buffer.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        let bytes = self.nbits.div_ceil(8);
        if bytes > 0 {
            let v = self.acc << (64 - self.nbits);
            self.out
                .extend_from_slice(&v.to_be_bytes()[..bytes as usize]);
        }
        self.out
    }
}

/// Reads what `BitWriter` wrote. The buffer must be followed by 16 bytes
/// of padding so that every field is one unaligned load; reading past the
/// real end returns padding, which the caller detects with `overran`.
pub(crate) struct BitReader<'a> {
    buf: &'a [u8],
    /// Bits of real data in `buf`.
    limit: usize,
    /// Next bit to read.
    pos: usize,
}

impl<'a> BitReader<'a> {
    /// `padded` holds `len` bytes of data and then at least 16 more.
    pub(crate) fn new(padded: &'a [u8], len: usize) -> Self {
        assert!(padded.len() >= len + 16);
        BitReader {
            buf: padded,
            limit: len * 8,
            pos: 0,
        }
    }

    /// True once more bits were read than the data holds.
    #[inline]
    pub(crate) fn overran(&self) -> bool {
        self.pos > self.limit
    }

    /// The next 57 or more bits, left-aligned. Safe to call as long as
    /// `pos` is within the data or at most 64 bits past it.
    #[inline]
    fn peek(&self) -> u64 {
        let byte = (self.pos >> 3).min(self.limit / 8 + 8);
        let w = u64::from_be_bytes(self.buf[byte..byte + 8].try_into().unwrap());
        w << (self.pos & 7)
    }

    /// Reads `n` bits (n ≤ 64).
    #[inline]
    pub(crate) fn read(&mut self, n: u32) -> u64 {
        if n == 0 {
            0
        } else if n <= 56 {
            let v = self.peek() >> (64 - n);
            self.pos += n as usize;
            v
        } else {
            let hi = self.read(n - 32);
            (hi << 32) | self.read(32)
        }
    }

    #[inline]
    pub(crate) fn bit(&mut self) -> bool {
        self.read(1) == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn pack_round_trips(vals in proptest::collection::vec(any::<u64>(), 0..300), width in 0u32..=64) {
            let mask = if width == 64 { u64::MAX } else { (1u64 << width) - 1 };
            let vals: Vec<u64> = vals.iter().map(|v| v & mask).collect();
            let mut buf = Vec::new();
            pack(&vals, width, &mut buf);
            prop_assert_eq!(buf.len(), packed_len(vals.len(), width));
            buf.extend_from_slice(&[0xAA; 16]);
            let mut out = vec![0; vals.len()];
            unpack(&buf, width, &mut out);
            prop_assert_eq!(out, vals);
        }

        #[test]
        fn bit_stream_round_trips(fields in proptest::collection::vec((any::<u64>(), 0u32..=64), 0..200)) {
            let mut w = BitWriter::new(Vec::new());
            for &(v, n) in &fields {
                w.write(v, n);
            }
            let mut buf = w.finish();
            let len = buf.len();
            buf.extend_from_slice(&[0xff; 16]);
            let mut r = BitReader::new(&buf, len);
            for &(v, n) in &fields {
                let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
                prop_assert_eq!(r.read(n), v & mask);
                prop_assert!(!r.overran());
            }
        }

        #[test]
        fn varints_round_trip(v in any::<i64>()) {
            let mut buf = Vec::new();
            put_ivarint(&mut buf, v);
            prop_assert_eq!(buf.len(), uvarint_len(zigzag(v)));
            let mut c = Cursor::new(&buf);
            prop_assert_eq!(c.ivarint().unwrap(), v);
            prop_assert!(c.rest().is_empty());
        }
    }
}
