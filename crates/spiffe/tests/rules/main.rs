//! Rule tests for sigil-spiffe: IDs, X.509-SVID rules, bundles, verification.
//! One test binary (modules share the generated test PKI in `pki`).

mod bundle;
mod id;
mod pki;
mod svid;
mod verify;
