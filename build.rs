//! The migrations are embedded at compile time (`diesel_migrations::embed_migrations!`): a new
//! or edited migration must rebuild the crate even when no Rust source changed.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
