//! A minimal DER reader and writer: single-byte tags and definite, minimally encoded lengths of
//! at most four bytes. Enough for SubjectPublicKeyInfo, PKCS#8 and SEC1 structures and
//! AlgorithmIdentifiers; not a general ASN.1 library (certificates go through x509-parser).
//!
//! Readers return `None` for anything malformed, so each caller names what it was reading.

/// Tags of the universal types read and written here.
pub const INTEGER: u8 = 0x02;
pub const BIT_STRING: u8 = 0x03;
pub const OCTET_STRING: u8 = 0x04;
pub const NULL: u8 = 0x05;
pub const OID: u8 = 0x06;
pub const SEQUENCE: u8 = 0x30;
/// `[0]`, constructed, context-specific (SEC1 `ECPrivateKey.parameters`).
pub const CONTEXT_0: u8 = 0xa0;

/// Contents (DER without tag and length) of the key algorithm and curve identifiers.
pub mod oid {
    /// id-ecPublicKey (1.2.840.10045.2.1).
    pub const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    /// secp256r1 / P-256 (1.2.840.10045.3.1.7).
    pub const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    /// secp384r1 / P-384 (1.3.132.0.34).
    pub const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
    /// secp521r1 / P-521 (1.3.132.0.35).
    pub const P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
    /// rsaEncryption (1.2.840.113549.1.1.1).
    pub const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    /// id-Ed25519 (1.3.101.112).
    pub const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
}

/// Reads one element: `(tag, contents, rest)`. `None` when the input is truncated, uses a
/// multi-byte tag, or encodes its length in a longer form than needed (BER, not DER).
pub fn read(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (len_bytes, after) = rest.split_at(n);
        rest = after;
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        if len < 0x80 || len_bytes[0] == 0 {
            return None;
        }
        len
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

/// Reads one element that must have `tag`: `(contents, rest)`.
pub fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    match read(input)? {
        (t, contents, rest) if t == tag => Some((contents, rest)),
        _ => None,
    }
}

/// Encodes one element.
pub fn encode(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(contents.len() + 6);
    out.push(tag);
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        // At most 8 length bytes: the count fits the low seven bits.
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(contents);
    out
}

/// Encodes an unsigned big-endian value as an INTEGER: leading zero bytes dropped, one added
/// back where the top bit would otherwise make it negative.
pub fn encode_uint(value: &[u8]) -> Vec<u8> {
    let value = &value[value.iter().take_while(|b| **b == 0).count()..];
    let mut body = Vec::with_capacity(value.len() + 1);
    if value.first().is_none_or(|b| b & 0x80 != 0) {
        body.push(0);
    }
    body.extend_from_slice(value);
    encode(INTEGER, &body)
}

/// The dotted form of an OID's contents (`1.2.840.10045.3.1.7`), for messages.
pub fn oid_to_string(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut acc: u64 = 0;
    for b in oid {
        acc = (acc << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (acc / 40).min(2);
                arcs.push(first);
                arcs.push(acc - first * 40);
            } else {
                arcs.push(acc);
            }
            acc = 0;
        }
    }
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// Splits concatenated DER certificates (the Workload API's `x509_svid` and `bundle` fields)
/// into one `CertificateDer` each. Each element must be a complete SEQUENCE.
pub fn split_certificates(
    concatenated: &[u8],
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    let mut out = Vec::new();
    let mut rest = concatenated;
    while !rest.is_empty() {
        let offset = concatenated.len() - rest.len();
        match read(rest) {
            Some((0x30, _, after)) => {
                let len = rest.len() - after.len();
                out.push(rustls_pki_types::CertificateDer::from(rest[..len].to_vec()));
                rest = after;
            }
            _ => {
                return Err(format!(
                    "bytes at offset {offset} are not a DER certificate (truncated or not a SEQUENCE)"
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip_in_short_and_long_form() {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let data = vec![7u8; len];
            let enc = encode(SEQUENCE, &data);
            assert_eq!(read(&enc), Some((SEQUENCE, &data[..], &[][..])), "{len}");
        }
        let two = [OCTET_STRING, 0x02, 0xaa, 0xbb, 0xff];
        assert_eq!(
            expect(&two, OCTET_STRING),
            Some((&[0xaa, 0xbb][..], &[0xff][..]))
        );
    }

    #[test]
    fn malformed_input_is_refused() {
        let cases: [(&str, &[u8]); 8] = [
            ("empty", &[]),
            ("no length", &[OCTET_STRING]),
            ("short contents", &[OCTET_STRING, 0x03, 0x00]),
            ("short long-form length", &[SEQUENCE, 0x82, 0x01]),
            ("indefinite length", &[SEQUENCE, 0x80, 0x00, 0x00]),
            (
                "length in long form below 128",
                &[SEQUENCE, 0x81, 0x05, 1, 2, 3, 4, 5],
            ),
            (
                "length with a leading zero byte",
                &[SEQUENCE, 0x82, 0x00, 0x80],
            ),
            ("multi-byte tag", &[0x1f, 0x01, 0x00]),
        ];
        for (name, input) in cases {
            assert_eq!(read(input), None, "{name}");
        }
        assert_eq!(expect(&[OCTET_STRING, 0x00], SEQUENCE), None, "wrong tag");
    }

    #[test]
    fn uint_adds_a_sign_byte_and_drops_leading_zeros() {
        assert_eq!(encode_uint(&[0x80]), vec![INTEGER, 2, 0, 0x80]);
        assert_eq!(
            encode_uint(&[0x00, 0x01, 0x00, 0x01]),
            vec![INTEGER, 3, 1, 0, 1]
        );
        assert_eq!(encode_uint(&[]), vec![INTEGER, 1, 0]);
    }

    #[test]
    fn oids_print_dotted() {
        assert_eq!(oid_to_string(oid::P256), "1.2.840.10045.3.1.7");
        assert_eq!(oid_to_string(oid::ED25519), "1.3.101.112");
        assert_eq!(oid_to_string(oid::RSA_ENCRYPTION), "1.2.840.113549.1.1.1");
        assert_eq!(oid_to_string(&[0x2a, 0x03]), "1.2.3");
    }
}
