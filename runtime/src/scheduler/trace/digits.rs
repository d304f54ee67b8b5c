//! Integers in decimal, written straight into the trace's buffer.

/// Appends `n` in decimal to `buf`.
///
/// The digits are gathered in a register and stored with one 16-byte write, then the tail is
/// cut off: digits written one byte at a time into a scratch array and read back as one block
/// stall the CPU's store forwarding, and a copy of the digits' own length would call `memcpy`.
#[inline(always)]
pub(super) fn push_int(buf: &mut Vec<u8>, n: u64) {
    if n >= 10_000_000_000_000_000 {
        return push_long_int(buf, n);
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
    let at = buf.len();
    buf.extend_from_slice(&digits.to_le_bytes());
    buf.truncate(at + len);
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

/// `push_int` for numbers of more than 16 digits.
#[cold]
fn push_long_int(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    while n > 0 {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    buf.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_written_in_decimal() {
        let long = [9_999_999_999_999_999, 10_000_000_000_000_000, u64::MAX];
        for n in [0, 7, 10, 99, 100, 12_345, 1 << 40].into_iter().chain(long) {
            let mut buf = Vec::new();
            push_int(&mut buf, n);
            assert_eq!(buf, n.to_string().into_bytes());
        }
    }
}
