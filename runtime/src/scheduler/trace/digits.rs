//! Integers in decimal, written straight into the trace's buffer.

/// Writes `n` in decimal at the start of `out` and returns how many of its bytes are the
/// number (1 to 20); `out` has room for 20 (it panics otherwise). Bytes after the number may
/// be overwritten.
///
/// The digits are gathered in a register and stored with one 16-byte write, of which the
/// number's length is kept: digits written one byte at a time into a scratch array and read
/// back as one block stall the CPU's store forwarding, and a copy of the digits' own length
/// would call `memcpy`.
#[inline(always)]
pub(super) fn write_int(out: &mut [u8], n: u64) -> usize {
    if n >= 10_000_000_000_000_000 {
        return write_long_int(out, n);
    }
    let mut digits: u128 = 0;
    let mut len = 0;
    let mut rest = n;
    // Two digits a step; the first gathered (the last of the number) end up highest.
    while rest >= 100 {
        let pair = PAIRS[(rest % 100) as usize];
        digits = (digits << 16) | u128::from(u16::from_le_bytes(pair));
        len += 2;
        rest /= 100;
    }
    if rest >= 10 {
        let pair = PAIRS[rest as usize];
        digits = (digits << 16) | u128::from(u16::from_le_bytes(pair));
        len += 2;
    } else {
        digits = (digits << 8) | u128::from(b'0' + rest as u8);
        len += 1;
    }
    out[..16].copy_from_slice(&digits.to_le_bytes());
    len
}

/// `"00"` to `"99"`.
const PAIRS: [[u8; 2]; 100] = {
    let mut pairs = [[0u8; 2]; 100];
    let mut i = 0;
    while i < 100 {
        pairs[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    pairs
};

/// `write_int` for numbers of more than 16 digits.
#[cold]
fn write_long_int(out: &mut [u8], mut n: u64) -> usize {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    while n > 0 {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    let len = digits.len() - at;
    out[..len].copy_from_slice(&digits[at..]);
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_written_in_decimal() {
        let long = [9_999_999_999_999_999, 10_000_000_000_000_000, u64::MAX];
        for n in [0, 7, 10, 99, 100, 12_345, 1 << 40].into_iter().chain(long) {
            let mut out = [b'x'; 24];
            let len = write_int(&mut out, n);
            assert_eq!(&out[..len], n.to_string().as_bytes());
        }
    }
}
