//! The machine's crypto bounds, one core, with aws-lc-rs (the provider of Sigil's rustls).
//!
//! The handshake bound is the server side of one full TLS 1.3 mTLS handshake with ECDSA P-256
//! certificates where the client sends leaf + intermediate: one signature (CertificateVerify),
//! three verifications (the client's CertificateVerify, its leaf, its intermediate) and the
//! server's key-exchange share. Everything else a handshake does (hashing, HKDF, record
//! protection, parsing, syscalls) is overhead above this bound.

use std::hint::black_box;
use std::time::Instant;

use anyhow::{Context, anyhow};
use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, X25519};
use aws_lc_rs::kem::{DecapsulationKey, EncapsulationKey, ML_KEM_768};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair};

/// Operations per second of each primitive (AES in MB/s).
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    pub ecdsa_sign: f64,
    pub ecdsa_verify: f64,
    /// X25519 key generation + derivation (one server share).
    pub x25519: f64,
    /// X25519 keygen + derive + ML-KEM-768 encapsulation (the server share of X25519MLKEM768).
    pub x25519mlkem768: f64,
    /// AES-128-GCM seal of 16 KiB records, MB/s (10^6 bytes).
    pub aes128gcm_mbs: f64,
}

/// Server mTLS handshakes per second of one core: 1 / (1 sign + 3 verify + 1 key exchange).
pub fn handshake_bound(sign: f64, verify: f64, kx: f64) -> f64 {
    1.0 / (1.0 / sign + 3.0 / verify + 1.0 / kx)
}

impl Rates {
    /// `key=value` pairs, bounds included.
    pub fn lines(&self) -> Vec<(&'static str, String)> {
        let b = |kx| handshake_bound(self.ecdsa_sign, self.ecdsa_verify, kx);
        vec![
            ("ecdsa_p256_sign", format!("{:.0}", self.ecdsa_sign)),
            ("ecdsa_p256_verify", format!("{:.0}", self.ecdsa_verify)),
            ("x25519", format!("{:.0}", self.x25519)),
            ("x25519mlkem768", format!("{:.0}", self.x25519mlkem768)),
            ("aes128gcm_16k_mbs", format!("{:.0}", self.aes128gcm_mbs)),
            ("bound_hs_x25519", format!("{:.0}", b(self.x25519))),
            (
                "bound_hs_x25519mlkem768",
                format!("{:.0}", b(self.x25519mlkem768)),
            ),
        ]
    }
}

/// Calls `f` in batches until `secs` have passed; calls per second.
fn rate(secs: f64, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    for _ in 0..16 {
        f()?;
    }
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        for _ in 0..16 {
            f()?;
        }
        n += 16;
        let t = start.elapsed().as_secs_f64();
        if t >= secs {
            return Ok(n as f64 / t);
        }
    }
}

fn unspecified(what: &'static str) -> impl Fn(aws_lc_rs::error::Unspecified) -> anyhow::Error {
    move |_| anyhow!("aws-lc-rs: {what} failed")
}

/// Measures every primitive for about `secs` each on the calling thread.
pub fn measure(secs: f64) -> anyhow::Result<Rates> {
    let rng = SystemRandom::new();
    let alg = &signature::ECDSA_P256_SHA256_ASN1_SIGNING;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(unspecified("P-256 keygen"))?;
    let key = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref())
        .map_err(|e| anyhow!("aws-lc-rs: P-256 key: {e}"))?;
    // The TLS 1.3 CertificateVerify input: 64 spaces, a context string, a SHA-256 hash.
    let msg = [0x20u8; 130];
    let ecdsa_sign = rate(secs, || {
        black_box(key.sign(&rng, &msg).map_err(unspecified("sign"))?);
        Ok(())
    })?;
    let sig = key.sign(&rng, &msg).map_err(unspecified("sign"))?;
    let public = signature::UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_ASN1,
        key.public_key().as_ref().to_vec(),
    );
    let ecdsa_verify = rate(secs, || {
        public
            .verify(&msg, sig.as_ref())
            .map_err(unspecified("verify"))
    })?;

    let peer = EphemeralPrivateKey::generate(&X25519, &rng).map_err(unspecified("X25519"))?;
    let peer_public = peer.compute_public_key().map_err(unspecified("X25519"))?;
    let peer_public = peer_public.as_ref().to_vec();
    let x25519_share = || -> anyhow::Result<()> {
        let mine = EphemeralPrivateKey::generate(&X25519, &rng).map_err(unspecified("X25519"))?;
        black_box(mine.compute_public_key().map_err(unspecified("X25519"))?);
        agreement::agree_ephemeral(
            mine,
            UnparsedPublicKey::new(&X25519, &peer_public),
            anyhow!("X25519 agreement failed"),
            |s| {
                black_box(s);
                Ok(())
            },
        )
    };
    let x25519 = rate(secs, x25519_share)?;
    let client_kem = DecapsulationKey::generate(&ML_KEM_768).map_err(unspecified("ML-KEM"))?;
    let client_ek = client_kem
        .encapsulation_key()
        .and_then(|k| k.key_bytes())
        .map_err(unspecified("ML-KEM"))?;
    let client_ek = client_ek.as_ref().to_vec();
    let x25519mlkem768 = rate(secs, || {
        x25519_share()?;
        let ek = EncapsulationKey::new(&ML_KEM_768, &client_ek)
            .map_err(|e| anyhow!("ML-KEM-768 key: {e}"))?;
        black_box(
            ek.encapsulate()
                .map_err(unspecified("ML-KEM encapsulate"))?,
        );
        Ok(())
    })?;

    let aead = LessSafeKey::new(
        UnboundKey::new(&AES_128_GCM, &[7u8; 16]).map_err(unspecified("AES key"))?,
    );
    let mut record = vec![0u8; 16 * 1024];
    let mut counter = 0u64;
    let seals = rate(secs, || {
        counter += 1;
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&counter.to_be_bytes());
        let tag = aead
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(n), Aad::empty(), &mut record)
            .map_err(unspecified("AES-GCM seal"))?;
        let _ = black_box(tag);
        Ok(())
    })
    .context("AES-128-GCM")?;
    Ok(Rates {
        ecdsa_sign,
        ecdsa_verify,
        x25519,
        x25519mlkem768,
        aes128gcm_mbs: seals * (16.0 * 1024.0) / 1e6,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_adds_the_costs_of_one_sign_three_verifies_and_one_share() {
        // 1 ms + 3 × 1 ms + 1 ms = 5 ms per handshake.
        let b = handshake_bound(1000.0, 1000.0, 1000.0);
        assert!((b - 200.0).abs() < 1e-9, "{b}");
        // A slower key exchange lowers it.
        assert!(handshake_bound(1000.0, 1000.0, 500.0) < b);
    }

    #[test]
    fn every_primitive_measures_a_positive_rate() {
        let r = measure(0.01).unwrap();
        for (k, v) in r.lines() {
            let v: f64 = v.parse().unwrap();
            assert!(v > 0.0, "{k}={v}");
        }
    }
}
