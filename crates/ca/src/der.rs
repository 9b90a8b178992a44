//! A minimal DER TLV reader: just enough to look inside PKCS#8 and SEC1 key structures to
//! tell which algorithm a key claims before handing it to aws-lc-rs.

/// One DER element: its tag byte, its content, and the whole encoding (tag + length + content).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tlv<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    pub whole: &'a [u8],
}

pub(crate) const TAG_INTEGER: u8 = 0x02;
pub(crate) const TAG_OCTET_STRING: u8 = 0x04;
pub(crate) const TAG_OID: u8 = 0x06;
pub(crate) const TAG_SEQUENCE: u8 = 0x30;
/// `[0]` constructed, context-specific (SEC1 `parameters`).
pub(crate) const TAG_CONTEXT_0: u8 = 0xa0;

/// Reads one element (single-byte tags, definite lengths up to 4 length bytes).
/// Returns the element and the bytes after it, or `None` when malformed.
pub(crate) fn read(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // multi-byte tags do not occur in the structures we read
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | usize::from(b);
        }
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    let header = input.len() - rest.len();
    let whole = &input[..header + len];
    Some((
        Tlv {
            tag,
            content: &rest[..len],
            whole,
        },
        &rest[len..],
    ))
}

/// Reads one element and requires its tag.
pub(crate) fn expect(input: &[u8], tag: u8) -> Option<(Tlv<'_>, &[u8])> {
    read(input).filter(|(t, _)| t.tag == tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_short_and_long_lengths() {
        let short = [0x04, 0x02, 0xaa, 0xbb, 0xff];
        let (t, rest) = read(&short).unwrap();
        assert_eq!(
            (t.tag, t.content, t.whole.len(), rest),
            (0x04, &[0xaa, 0xbb][..], 4, &[0xff][..])
        );

        let mut long = vec![0x30, 0x81, 0x80];
        long.extend(std::iter::repeat_n(0u8, 0x80));
        let (t, rest) = read(&long).unwrap();
        assert_eq!((t.content.len(), rest.len()), (0x80, 0));
    }

    #[test]
    fn rejects_truncated_input() {
        assert!(read(&[]).is_none());
        assert!(read(&[0x04]).is_none());
        assert!(read(&[0x04, 0x03, 0x00]).is_none());
        assert!(read(&[0x30, 0x82, 0x01]).is_none());
        assert!(expect(&[0x04, 0x00], TAG_SEQUENCE).is_none());
    }
}
