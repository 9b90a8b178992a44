//! `sqlx::migrate!` embeds the migration files at compile time but does not tell cargo to rebuild
//! when they change; this does.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
