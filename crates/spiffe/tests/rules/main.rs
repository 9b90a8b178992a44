//! Rule tests for sigil-spiffe: IDs, X.509-SVID rules, bundles, verification.
//! One test binary (modules share the generated test PKI in `pki`).

// Test helpers outside #[test] fns unwrap too: a panic there is a clear test failure
// (clippy.toml allows it inside tests; this extends it to the helpers).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bundle;
mod id;
mod pki;
mod svid;
mod verify;
