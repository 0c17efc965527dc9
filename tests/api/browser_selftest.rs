//! The browser client against the real landing page: a person opens an invitation link in
//! headless Chromium, types a number, ticks consent, submits and lands on the code page.

use std::path::Path;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use optbridge::db::schema::invitations;
use optbridge::links::LinkPurpose;

use crate::browser::Browser;
use crate::helpers::{Backend, spawn_app};

// SQLite only: this exercises the browser path, not the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn landing_form_submitted_in_a_browser_leads_to_the_code_page() {
    let started = Instant::now();
    let Some(browser) = Browser::start().await else {
        eprintln!("skipped: no browser");
        return;
    };
    let browser_up = started.elapsed();
    let app = spawn_app(Backend::Sqlite).await;
    let (ws, campaign) = app.campaign_for_all().await;
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    let invitation: String = app
        .with_db(|c| {
            invitations::table
                .filter(invitations::email.eq("anna@example.dk"))
                .select(invitations::id)
                .first(c)
                .unwrap()
        })
        .await;
    let token = app
        .keyring
        .sign(LinkPurpose::Landing, &invitation, &campaign, "da", optbridge::db::now())
        .unwrap();

    browser.goto(&app.url(&format!("/l/{token}"))).await;
    assert!(
        browser.source().await.contains("Få Skobutikken på SMS"),
        "Danish landing page"
    );
    assert!(
        !browser.is_selected("input[name=consent]").await,
        "consent starts unticked"
    );
    assert!(
        browser.value("input[name=phone]").await.starts_with("+45 "),
        "the phone field starts with the calling code"
    );
    browser.assert_accessible("the landing page").await;
    browser.resize(390, 844).await;
    browser.assert_accessible("the landing page at phone width").await;
    browser
        .screenshot(&Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots/landing-phone.png"))
        .await;
    browser.resize(1280, 1600).await;
    browser.fill("input[name=phone]", "+45 20 12 34 56").await;
    assert_eq!(browser.value("input[name=phone]").await, "+45 20 12 34 56");
    browser.click("input[name=consent]").await;
    assert!(browser.is_selected("input[name=consent]").await);
    browser.submit("button[type=submit]").await;

    let url = browser.current_url().await;
    assert!(url.ends_with(&format!("/l/{token}/confirm")), "{url}");
    assert_eq!(browser.text("h1").await, "Bekræft dit nummer");
    assert!(
        browser.source().await.contains("•••• 3456"),
        "the typed number came through, masked"
    );
    assert!(browser.cookies().await.is_empty(), "the landing flow sets no cookies");
    browser.assert_accessible("the code page").await;
    browser
        .screenshot(&Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots/landing-code-page.png"))
        .await;
    browser.quit().await;
    eprintln!(
        "browser test: {:?} in all, {browser_up:?} to start the browser",
        started.elapsed()
    );
}

/// The accessibility check can fail: axe-core finds an image without a text alternative and a
/// field without a label on a page made to break them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axe_finds_what_a_broken_page_breaks() {
    let Some(browser) = Browser::start().await else {
        eprintln!("skipped: no browser");
        return;
    };
    browser
        .goto("data:text/html,<html lang=en><title>t</title><main><img src=x.png><input type=text></main></html>")
        .await;
    let violations = browser.axe_violations().await;
    let ids: Vec<&str> = violations.iter().filter_map(|v| v["id"].as_str()).collect();
    assert!(ids.contains(&"image-alt"), "{violations:?}");
    assert!(ids.contains(&"label"), "{violations:?}");
    browser.quit().await;
}
