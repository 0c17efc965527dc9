//! Per-message cost of building an invitation in the sender: the three signed links, the
//! prepared invitation filled in (with its parts kept as text, for the dev outbox, and the
//! message alone, what `mail::deliver` does per recipient over SMTP) and, for comparison,
//! the full render from the templates, on the same content in one process.
//!
//!   cargo run --release --example bench-render [iterations]

use std::hint::black_box;
use std::time::Duration;

use optbridge::domain::Locale;
use optbridge::links::Keyring;
use optbridge::mail::invitation::{self, InvitationContent, PreparedInvitation};

#[path = "common.rs"]
mod common;
use common::{per_call, scratch_db};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iterations: u32 = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let (dir, db) = scratch_db("render")?;
    let ring = Keyring::load(db, Duration::from_secs(30 * 86_400), Default::default())?;
    let now = chrono::Utc::now().naive_utc();
    let invitation = "0199a3f2-7c4e-7d31-9a55-3c1f0e2b8d47";
    let campaign = "0199a3f2-6b10-7e02-8c44-1a2b3c4d5e6f";
    let base = "https://optin.bench.example";
    let categories = vec!["Nyheder".to_owned(), "Tilbud".to_owned()];
    let links = ring.sign_invitation(invitation, campaign, "da", now)?;
    let (landing, open, unsubscribe) = (
        format!("{base}/l/{}", links.landing),
        format!("{base}/o/{}", links.open),
        format!("{base}/u/{}", links.unsubscribe),
    );
    let content = InvitationContent {
        invitation_id: invitation,
        message_id: Some("<0199a3f2-7c4e-7d31-9a55-3c1f0e2b8d47@bench.example>"),
        locale: Locale::Da,
        from: "Bench Sko <news@bench.example>",
        to_email: "anna.jensen@example.dk",
        to_name: Some("Anna Jensen".into()),
        first_name: Some("Anna"),
        company: "Bench Sko",
        subject: "Vil du have vores tilbud på SMS?",
        intro: "Hør først om udsalg og nyheder.",
        categories: &categories,
        frequency: Some("højst 4 gange om måneden"),
        privacy_url: "https://bench.example/privatliv",
        landing_url: &landing,
        pixel_url: &open,
        unsubscribe_url: &unsubscribe,
    };
    let prepared = PreparedInvitation::new(&content)?.ok_or("the prepared form differs from the full render")?;
    let size = prepared.render(&content)?.raw.len();

    let sign = per_call(iterations, || {
        black_box(ring.sign_invitation(black_box(invitation), campaign, "da", now).is_ok());
    });
    let fill = per_call(iterations, || {
        black_box(prepared.render(black_box(&content)).map(|m| m.raw.len()).ok());
    });
    let raw = per_call(iterations, || {
        black_box(prepared.render_raw(black_box(&content)).map(|m| m.raw.len()).ok());
    });
    let full = per_call(iterations / 10, || {
        black_box(invitation::render(black_box(&content)).map(|m| m.raw.len()).ok());
    });
    println!("{iterations} messages of {size} bytes, per message:");
    println!("  signing the three links        {:>8.2} µs", sign.as_secs_f64() * 1e6);
    println!("  prepared invitation filled in  {:>8.2} µs", fill.as_secs_f64() * 1e6);
    println!("  … the message alone (SMTP)     {:>8.2} µs", raw.as_secs_f64() * 1e6);
    println!("  full render from the templates {:>8.2} µs", full.as_secs_f64() * 1e6);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
