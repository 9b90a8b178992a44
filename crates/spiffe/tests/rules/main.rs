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

/// Fails with every failing row of a table-driven test at once.
fn assert_rows_pass(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} failing rows:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
