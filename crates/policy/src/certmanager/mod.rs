//! cert-manager vocabulary (`cert-manager.io/v1`): [`CertificateSpec`] and the
//! [`IssuerSpec`] shared by `Issuer` and `ClusterIssuer`.
//!
//! Every field of the upstream v1 schema is decoded and kept, so `kubectl get -o yaml`
//! output round-trips. Sigil itself issues only from `selfSigned`, `ca` and its own `sigil`
//! issuer; `acme`, `vault` and `venafi` bodies are kept as opaque JSON values.
//! Validation (the cert-manager webhook's rules) lives in `validate_certmanager.rs`.

mod certificate;
mod issuer;
pub(crate) mod syntax;

use std::fmt;

pub use certificate::{
    AdditionalOutputFormat, CertificateSpec, IssuerRef, JksKeystore, KeyUsage, Keystores,
    NameConstraintItem, NameConstraints, OtherName, OutputFormatType, Pkcs12Keystore,
    Pkcs12Profile, PrivateKey, PrivateKeyAlgorithm, PrivateKeyEncoding, Renewal, RenewalPolicy,
    RenewalWindow, RotationPolicy, SecretKeySelector, SecretTemplate, SignatureAlgorithm,
    X509Subject,
};
pub use issuer::{CaIssuer, IssuerSpec, IssuerType, SelfSignedIssuer, SigilIssuer};

/// The cert-manager API group; `issuerRef.group` defaults to it.
pub const CERT_MANAGER_GROUP: &str = "cert-manager.io";

/// A Go `time.Duration` (signed nanoseconds), as cert-manager's `duration` and
/// `renewBefore` fields hold it.
///
/// [`GoDuration::parse`] accepts exactly Go's `time.ParseDuration` syntax: an optional
/// sign, then one or more decimal numbers (with optional fraction) each followed by a
/// unit `ns`, `us` (`µs`), `ms`, `s`, `m` or `h` — e.g. `2160h`, `1h30m`, `1.5h`; the bare
/// `0` is also accepted. Days (`d`) are not a Go unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GoDuration(i64);

const NANOS_PER_SEC: i64 = 1_000_000_000;

impl GoDuration {
    /// `n` whole seconds.
    pub const fn from_secs(n: i64) -> Self {
        GoDuration(n.saturating_mul(NANOS_PER_SEC))
    }

    /// `n` whole hours.
    pub const fn from_hours(n: i64) -> Self {
        GoDuration::from_secs(n.saturating_mul(3600))
    }

    /// Signed nanoseconds.
    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// As a [`std::time::Duration`]; `None` when negative.
    pub fn to_std(self) -> Option<std::time::Duration> {
        u64::try_from(self.0)
            .ok()
            .map(std::time::Duration::from_nanos)
    }

    /// `self × numerator / denominator`, rounded toward zero (for percentages).
    pub fn scale(self, numerator: i64, denominator: i64) -> Self {
        if denominator == 0 {
            return self;
        }
        let v = i128::from(self.0) * i128::from(numerator) / i128::from(denominator);
        GoDuration(i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX }))
    }

    /// Parses Go duration syntax; `None` when the text is not a Go duration or overflows.
    pub fn parse(s: &str) -> Option<Self> {
        let (negative, mut rest) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        if rest == "0" {
            return Some(GoDuration(0));
        }
        if rest.is_empty() {
            return None;
        }
        let mut total: u128 = 0;
        while !rest.is_empty() {
            let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            let (int_part, after) = rest.split_at(int_len);
            let (frac_part, after) = match after.strip_prefix('.') {
                Some(a) => {
                    let n = a.bytes().take_while(u8::is_ascii_digit).count();
                    a.split_at(n)
                }
                None => ("", after),
            };
            if int_part.is_empty() && frac_part.is_empty() {
                return None;
            }
            let unit_len = after
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(after.len());
            let (unit, after) = after.split_at(unit_len);
            let scale: u128 = match unit {
                "ns" => 1,
                "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60_000_000_000,
                "h" => 3_600_000_000_000,
                _ => return None,
            };
            let whole: u128 = if int_part.is_empty() {
                0
            } else {
                int_part.parse().ok()?
            };
            let mut value = whole.checked_mul(scale)?;
            // Fraction digits beyond nanosecond precision are truncated, like Go.
            let mut place = scale;
            for d in frac_part.bytes() {
                place /= 10;
                if place == 0 {
                    break;
                }
                value += u128::from(d - b'0') * place;
            }
            total = total.checked_add(value)?;
            if total > i64::MAX as u128 {
                return None;
            }
            rest = after;
        }
        let n = i64::try_from(total).ok()?;
        Some(GoDuration(if negative { -n } else { n }))
    }
}

impl fmt::Display for GoDuration {
    /// Go's `Duration.String()` shape for whole units: `24h0m0s`, `5m0s`, `1.5s`, `100ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if n == 0 {
            return f.write_str("0s");
        }
        if n < 0 {
            f.write_str("-")?;
        }
        let abs = n.unsigned_abs();
        if abs < 1_000_000_000 {
            return match abs {
                a if a < 1_000 => write!(f, "{a}ns"),
                a if a < 1_000_000 => write!(f, "{}µs", trim_fraction(a, 1_000)),
                a => write!(f, "{}ms", trim_fraction(a, 1_000_000)),
            };
        }
        let secs = abs / 1_000_000_000;
        let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
        let sub = abs % 1_000_000_000;
        let s_text = trim_fraction(s * 1_000_000_000 + sub, 1_000_000_000);
        if h > 0 {
            write!(f, "{h}h{m}m{s_text}s")
        } else if m > 0 {
            write!(f, "{m}m{s_text}s")
        } else {
            write!(f, "{s_text}s")
        }
    }
}

/// `value / unit` with the fraction written out and trailing zeros removed.
fn trim_fraction(value: u64, unit: u64) -> String {
    let whole = value / unit;
    let frac = value % unit;
    if frac == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::GoDuration;

    #[test]
    fn go_duration_syntax() {
        let h = GoDuration::from_hours;
        assert_eq!(GoDuration::parse("2160h"), Some(h(2160)));
        assert_eq!(
            GoDuration::parse("1h30m"),
            Some(GoDuration::from_secs(5400))
        );
        assert_eq!(GoDuration::parse("1.5h"), Some(GoDuration::from_secs(5400)));
        assert_eq!(
            GoDuration::parse(".5s").map(GoDuration::as_nanos),
            Some(5e8 as i64)
        );
        assert_eq!(GoDuration::parse("0"), Some(GoDuration(0)));
        assert_eq!(GoDuration::parse("-5m"), Some(GoDuration::from_secs(-300)));
        assert_eq!(
            GoDuration::parse("1µs").map(GoDuration::as_nanos),
            Some(1000)
        );
        assert_eq!(
            GoDuration::parse("2h45m30.5s").map(|d| d.as_nanos()),
            Some(9_930_500_000_000)
        );
        for bad in [
            "",
            "5",
            "1d",
            "h",
            ".s",
            "1h 30m",
            "1..5s",
            "+",
            "9999999999999h",
            "1.h2",
        ] {
            assert_eq!(GoDuration::parse(bad), None, "{bad:?}");
        }
        assert_eq!(GoDuration::parse("1.s"), Some(GoDuration::from_secs(1)));
    }

    #[test]
    fn go_duration_display_matches_go() {
        let p = |s| GoDuration::parse(s).map(|d| d.to_string());
        assert_eq!(p("24h").as_deref(), Some("24h0m0s"));
        assert_eq!(p("5m").as_deref(), Some("5m0s"));
        assert_eq!(p("90s").as_deref(), Some("1m30s"));
        assert_eq!(p("1.5s").as_deref(), Some("1.5s"));
        assert_eq!(p("100ms").as_deref(), Some("100ms"));
        assert_eq!(p("-1h").as_deref(), Some("-1h0m0s"));
        assert_eq!(p("0").as_deref(), Some("0s"));
    }
}
