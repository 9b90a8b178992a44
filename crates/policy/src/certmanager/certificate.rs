//! `cert-manager.io/v1` `Certificate`: which X.509 certificate to keep in which Secret,
//! signed by which issuer. Field names and defaults follow cert-manager's
//! `pkg/apis/certmanager/v1` types; defaults are documented, not filled in, so the value
//! round-trips as written.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{CERT_MANAGER_GROUP, GoDuration};

/// Spec of a `Certificate`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateSpec {
    /// Subject attributes other than the common name. Exclusive with `literalSubject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<X509Subject>,
    /// The whole subject as an RFC 4514 string (`CN=foo,O=Example`). Exclusive with
    /// `subject` and `commonName`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub literal_subject: String,
    /// Subject common name; at most 64 characters.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub common_name: String,
    /// Requested lifetime, Go duration syntax; absent = 90 days (`2160h`), minimum 1h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Renew this long before expiry; absent = a third of the issued lifetime; minimum 5m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_before: Option<String>,
    /// Renew when this percentage (1..99) of the lifetime remains. Exclusive with
    /// `renewBefore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_before_percentage: Option<i32>,
    /// DNS SANs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
    /// IP SANs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<String>,
    /// URI SANs (a SPIFFE ID goes here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uris: Vec<String>,
    /// `otherName` SANs with UTF-8 string values (e.g. a UPN).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_names: Vec<OtherName>,
    /// Email SANs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email_addresses: Vec<String>,
    /// The Secret (same namespace) that receives `tls.crt`, `tls.key`, `ca.crt`. Required.
    #[serde(default)]
    pub secret_name: String,
    /// Labels and annotations copied onto the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_template: Option<SecretTemplate>,
    /// Extra keystore formats written into the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keystores: Option<Keystores>,
    /// The issuer that signs. Required (`name` at least).
    #[serde(default)]
    pub issuer_ref: IssuerRef,
    /// Request a CA certificate; adds the `cert sign` usage.
    #[serde(rename = "isCA", default, skip_serializing_if = "is_false")]
    pub is_ca: bool,
    /// Key usages and extended key usages; absent = `digital signature`, `key encipherment`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usages: Vec<KeyUsage>,
    /// Key algorithm, size, encoding and rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<PrivateKey>,
    /// Encode usages into the CSR; absent = true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encode_usages_in_request: Option<bool>,
    /// CertificateRequest revisions to keep (≥ 1); absent = 1, as cert-manager defaults it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,
    /// Extra Secret entries: `key.der` (DER) and/or `tls-combined.pem` (CombinedPEM).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_output_formats: Vec<AdditionalOutputFormat>,
    /// X.509 name constraints (CA certificates only; alpha upstream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_constraints: Option<NameConstraints>,
    /// Signature algorithm to request; must suit the key algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_algorithm: Option<SignatureAlgorithm>,
    /// Renewal policy and cron windows (newest upstream field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal: Option<Renewal>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl CertificateSpec {
    /// cert-manager's default lifetime when `duration` is absent: 90 days.
    pub const DEFAULT_DURATION: GoDuration = GoDuration::from_hours(2160);
    /// Shortest accepted `duration`.
    pub const MINIMUM_DURATION: GoDuration = GoDuration::from_hours(1);
    /// Shortest accepted `renewBefore` (also the effective one from a percentage).
    pub const MINIMUM_RENEW_BEFORE: GoDuration = GoDuration::from_secs(300);

    /// `duration` parsed, or the 90-day default; `None` when it is not a Go duration.
    pub fn duration(&self) -> Option<GoDuration> {
        match &self.duration {
            Some(d) => GoDuration::parse(d),
            None => Some(Self::DEFAULT_DURATION),
        }
    }

    /// `renewBefore` parsed; `None` when absent or not a Go duration.
    pub fn renew_before(&self) -> Option<GoDuration> {
        self.renew_before.as_deref().and_then(GoDuration::parse)
    }
}

/// `subject:` — X.509 subject attributes besides the common name.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct X509Subject {
    /// O.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizations: Vec<String>,
    /// C.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub countries: Vec<String>,
    /// OU.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizational_units: Vec<String>,
    /// L.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub localities: Vec<String>,
    /// ST.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provinces: Vec<String>,
    /// STREET.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub street_addresses: Vec<String>,
    /// POSTALCODE.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub postal_codes: Vec<String>,
    /// SERIALNUMBER (the subject attribute, not the certificate serial).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub serial_number: String,
}

impl X509Subject {
    /// True when no attribute is set.
    pub fn is_empty(&self) -> bool {
        self.organizations.is_empty()
            && self.countries.is_empty()
            && self.organizational_units.is_empty()
            && self.localities.is_empty()
            && self.provinces.is_empty()
            && self.street_addresses.is_empty()
            && self.postal_codes.is_empty()
            && self.serial_number.is_empty()
    }
}

/// One `otherNames` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OtherName {
    /// Dotted OID, e.g. `1.3.6.1.4.1.311.20.2.3` (UPN).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub oid: String,
    /// The UTF-8 string value.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub utf8_value: String,
}

/// `secretTemplate:`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretTemplate {
    /// Annotations for the Secret (`cert-manager.io/*` is reserved).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Labels for the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// `keystores:`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Keystores {
    /// `keystore.jks` / `truststore.jks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jks: Option<JksKeystore>,
    /// `keystore.p12` / `truststore.p12`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs12: Option<Pkcs12Keystore>,
}

/// `keystores.jks:`. Exactly one of `passwordSecretRef` and `password`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JksKeystore {
    /// Write the keystore.
    #[serde(default)]
    pub create: bool,
    /// Secret key holding the keystore password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeySelector>,
    /// Key alias; absent = `certificate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Literal password (non-empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// `keystores.pkcs12:`. Exactly one of `passwordSecretRef` and `password`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pkcs12Keystore {
    /// Write the keystore.
    #[serde(default)]
    pub create: bool,
    /// Secret key holding the keystore password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeySelector>,
    /// Encryption profile; absent = `LegacyRC2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Pkcs12Profile>,
    /// Literal password (non-empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// A key in a Secret of the same namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeySelector {
    /// Secret name.
    #[serde(default)]
    pub name: String,
    /// Key within the Secret's data.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
}

/// PKCS#12 encryption profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pkcs12Profile {
    /// RC2 (default upstream; unsupported by OpenSSL 3 / Java 20 by default).
    #[serde(rename = "LegacyRC2")]
    LegacyRc2,
    /// 3DES, for maximal compatibility.
    #[serde(rename = "LegacyDES")]
    LegacyDes,
    /// AES-256 + SHA-256.
    Modern2023,
    /// The newest upstream profile.
    Modern2026,
}

/// `issuerRef:` — `kind` defaults to `Issuer`, `group` to `cert-manager.io`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssuerRef {
    /// Issuer name. Required.
    #[serde(default)]
    pub name: String,
    /// `Issuer`, `ClusterIssuer`, or an external issuer's kind.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// API group; empty = `cert-manager.io`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
}

impl IssuerRef {
    /// `kind` with its default applied.
    pub fn effective_kind(&self) -> &str {
        if self.kind.is_empty() {
            "Issuer"
        } else {
            &self.kind
        }
    }

    /// `group` with its default applied.
    pub fn effective_group(&self) -> &str {
        if self.group.is_empty() {
            CERT_MANAGER_GROUP
        } else {
            &self.group
        }
    }
}

/// cert-manager's key usage vocabulary (key usages and extended key usages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyUsage {
    /// Alias of digital signature.
    #[serde(rename = "signing")]
    Signing,
    /// KU digitalSignature.
    #[serde(rename = "digital signature")]
    DigitalSignature,
    /// KU contentCommitment (nonRepudiation).
    #[serde(rename = "content commitment")]
    ContentCommitment,
    /// KU keyEncipherment.
    #[serde(rename = "key encipherment")]
    KeyEncipherment,
    /// KU keyAgreement.
    #[serde(rename = "key agreement")]
    KeyAgreement,
    /// KU dataEncipherment.
    #[serde(rename = "data encipherment")]
    DataEncipherment,
    /// KU keyCertSign.
    #[serde(rename = "cert sign")]
    CertSign,
    /// KU cRLSign.
    #[serde(rename = "crl sign")]
    CrlSign,
    /// KU encipherOnly.
    #[serde(rename = "encipher only")]
    EncipherOnly,
    /// KU decipherOnly.
    #[serde(rename = "decipher only")]
    DecipherOnly,
    /// EKU anyExtendedKeyUsage.
    #[serde(rename = "any")]
    Any,
    /// EKU serverAuth.
    #[serde(rename = "server auth")]
    ServerAuth,
    /// EKU clientAuth.
    #[serde(rename = "client auth")]
    ClientAuth,
    /// EKU codeSigning.
    #[serde(rename = "code signing")]
    CodeSigning,
    /// EKU emailProtection.
    #[serde(rename = "email protection")]
    EmailProtection,
    /// EKU emailProtection (S/MIME spelling).
    #[serde(rename = "s/mime")]
    Smime,
    /// EKU ipsecEndSystem.
    #[serde(rename = "ipsec end system")]
    IpsecEndSystem,
    /// EKU ipsecTunnel.
    #[serde(rename = "ipsec tunnel")]
    IpsecTunnel,
    /// EKU ipsecUser.
    #[serde(rename = "ipsec user")]
    IpsecUser,
    /// EKU timeStamping.
    #[serde(rename = "timestamping")]
    Timestamping,
    /// EKU OCSPSigning.
    #[serde(rename = "ocsp signing")]
    OcspSigning,
    /// EKU Microsoft Server Gated Crypto.
    #[serde(rename = "microsoft sgc")]
    MicrosoftSgc,
    /// EKU Netscape Server Gated Crypto.
    #[serde(rename = "netscape sgc")]
    NetscapeSgc,
}

/// `privateKey:`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrivateKey {
    /// Regenerate the key on every issuance (`Always`, the default since cert-manager
    /// 1.18) or reuse the Secret's key (`Never`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_policy: Option<RotationPolicy>,
    /// PEM encoding; absent = PKCS1 (Ed25519 is always PKCS8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<PrivateKeyEncoding>,
    /// Key algorithm; absent = RSA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<PrivateKeyAlgorithm>,
    /// Key size in bits: RSA 2048..8192 (default 2048), ECDSA 256/384/521 (default 256),
    /// ignored for Ed25519. `0` means the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
}

/// Key rotation on re-issuance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RotationPolicy {
    /// Keep the key already in the Secret.
    Never,
    /// Generate a new key every time.
    Always,
}

/// Private key PEM encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrivateKeyEncoding {
    /// `BEGIN RSA PRIVATE KEY` / `BEGIN EC PRIVATE KEY`.
    #[serde(rename = "PKCS1")]
    Pkcs1,
    /// `BEGIN PRIVATE KEY`.
    #[serde(rename = "PKCS8")]
    Pkcs8,
}

/// Private key algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrivateKeyAlgorithm {
    /// RSA.
    #[serde(rename = "RSA")]
    Rsa,
    /// ECDSA (P-256, P-384, P-521).
    #[serde(rename = "ECDSA")]
    Ecdsa,
    /// Ed25519.
    Ed25519,
}

impl PrivateKeyAlgorithm {
    /// The spelling in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            PrivateKeyAlgorithm::Rsa => "RSA",
            PrivateKeyAlgorithm::Ecdsa => "ECDSA",
            PrivateKeyAlgorithm::Ed25519 => "Ed25519",
        }
    }
}

/// Requested signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignatureAlgorithm {
    /// RSA PKCS#1 v1.5 with SHA-256.
    #[serde(rename = "SHA256WithRSA")]
    Sha256WithRsa,
    /// RSA PKCS#1 v1.5 with SHA-384.
    #[serde(rename = "SHA384WithRSA")]
    Sha384WithRsa,
    /// RSA PKCS#1 v1.5 with SHA-512.
    #[serde(rename = "SHA512WithRSA")]
    Sha512WithRsa,
    /// ECDSA with SHA-256.
    #[serde(rename = "ECDSAWithSHA256")]
    EcdsaWithSha256,
    /// ECDSA with SHA-384.
    #[serde(rename = "ECDSAWithSHA384")]
    EcdsaWithSha384,
    /// ECDSA with SHA-512.
    #[serde(rename = "ECDSAWithSHA512")]
    EcdsaWithSha512,
    /// Ed25519.
    PureEd25519,
}

impl SignatureAlgorithm {
    /// The spelling in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureAlgorithm::Sha256WithRsa => "SHA256WithRSA",
            SignatureAlgorithm::Sha384WithRsa => "SHA384WithRSA",
            SignatureAlgorithm::Sha512WithRsa => "SHA512WithRSA",
            SignatureAlgorithm::EcdsaWithSha256 => "ECDSAWithSHA256",
            SignatureAlgorithm::EcdsaWithSha384 => "ECDSAWithSHA384",
            SignatureAlgorithm::EcdsaWithSha512 => "ECDSAWithSHA512",
            SignatureAlgorithm::PureEd25519 => "PureEd25519",
        }
    }

    /// The key algorithm this signature algorithm needs.
    pub fn key_algorithm(self) -> PrivateKeyAlgorithm {
        match self {
            SignatureAlgorithm::Sha256WithRsa
            | SignatureAlgorithm::Sha384WithRsa
            | SignatureAlgorithm::Sha512WithRsa => PrivateKeyAlgorithm::Rsa,
            SignatureAlgorithm::EcdsaWithSha256
            | SignatureAlgorithm::EcdsaWithSha384
            | SignatureAlgorithm::EcdsaWithSha512 => PrivateKeyAlgorithm::Ecdsa,
            SignatureAlgorithm::PureEd25519 => PrivateKeyAlgorithm::Ed25519,
        }
    }
}

/// One `additionalOutputFormats` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdditionalOutputFormat {
    /// Which format.
    #[serde(rename = "type")]
    pub format: OutputFormatType,
}

/// Additional Secret output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputFormatType {
    /// `key.der`: the private key in DER.
    #[serde(rename = "DER")]
    Der,
    /// `tls-combined.pem`: key then chain, PEM.
    #[serde(rename = "CombinedPEM")]
    CombinedPem,
}

impl OutputFormatType {
    /// The spelling in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormatType::Der => "DER",
            OutputFormatType::CombinedPem => "CombinedPEM",
        }
    }
}

/// `nameConstraints:` (RFC 5280 §4.2.1.10).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NameConstraints {
    /// Mark the extension critical.
    #[serde(default, skip_serializing_if = "is_false")]
    pub critical: bool,
    /// Names must fall within these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permitted: Option<NameConstraintItem>,
    /// Names must not fall within these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded: Option<NameConstraintItem>,
}

/// One side of `nameConstraints`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NameConstraintItem {
    /// DNS domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_domains: Vec<String>,
    /// CIDR ranges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_ranges: Vec<String>,
    /// Email addresses or domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email_addresses: Vec<String>,
    /// URI domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uri_domains: Vec<String>,
}

/// `renewal:` — whether and when renewal may run.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Renewal {
    /// `RenewBefore` (renew per `renewBefore`) or `Disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<RenewalPolicy>,
    /// Cron windows renewal must fall into.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<RenewalWindow>,
}

/// Renewal policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RenewalPolicy {
    /// Renew per `renewBefore` / `renewBeforePercentage`.
    RenewBefore,
    /// Never renew automatically.
    Disabled,
}

/// One renewal window: opens at each `cron` match, for `windowDuration`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RenewalWindow {
    /// Five-field cron expression (minute hour day-of-month month day-of-week).
    #[serde(default)]
    pub cron: String,
    /// How long the window stays open, Go duration syntax. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_duration: Option<String>,
    /// IANA time zone for `cron`; empty = UTC.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub timezone: String,
}
