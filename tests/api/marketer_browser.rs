//! In headless Chromium, the marketer's own pages: import (upload, job page), the consent-text
//! editor (refused, preview), the contact list and the dashboard's 404, each checked with
//! axe-core, also at phone width; screenshots in `target/screenshots/`.

use std::path::Path;

use crate::helpers::{Backend, DANISH_CONSENT, DASHBOARD_PASSWORD, spawn_app};

// SQLite only: this exercises the browser path, not the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_marketer_pages_are_accessible_in_a_browser() {
    let Some(browser) = crate::browser::Browser::start().await else {
        eprintln!("skipped: no browser");
        return;
    };
    let app = spawn_app(Backend::Sqlite).await;
    let ws = app.create_workspace("Skobutikken").await;
    let id = ws.id.clone();
    app.with_db(move |c| {
        optbridge::accounts::create_user(c, &id, "marketer@shop.example", DASHBOARD_PASSWORD).unwrap()
    })
    .await;
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");

    browser.goto(&app.url("/app/login")).await;
    browser.fill("#email", "marketer@shop.example").await;
    browser.fill("#password", DASHBOARD_PASSWORD).await;
    browser.submit("button[type=submit]").await;

    // Import a Shopify export through the file field.
    browser.goto(&app.url("/app/import")).await;
    browser.assert_accessible("the import page").await;
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/imports/shopify_customers_export.csv");
    browser.fill("#file", sample.to_str().unwrap()).await;
    browser.submit("form[action='/app/import'] button[type=submit]").await;
    assert!(
        browser.current_url().await.contains("/app/import/"),
        "{}",
        browser.current_url().await
    );
    browser.assert_accessible("a running import's page").await;
    app.drain_outbox(std::time::Duration::from_secs(10)).await;
    browser.goto(&browser.current_url().await).await;
    assert_eq!(browser.text("[data-metric='imported']").await, "2");
    assert_eq!(browser.text("[data-metric='refused']").await, "3");
    browser.assert_accessible("a finished import's page").await;
    browser.screenshot(&shots.join("dashboard-import-job.png")).await;
    browser.resize(390, 844).await;
    browser
        .assert_accessible("a finished import's page at phone width")
        .await;
    browser.resize(1280, 900).await;

    // A refused consent text, then its preview.
    browser.goto(&app.url("/app/consent-texts/new")).await;
    browser.assert_accessible("the consent-text editor").await;
    browser
        .fill(
            "#body",
            "Ja tak, Skobutikken må sende mig tilbud på SMS og en gratis gave. Svar STOP.",
        )
        .await;
    browser
        .fill("#privacy_url", "https://skobutikken.example/privatliv")
        .await;
    browser.submit("button[value=save]").await;
    assert!(browser.text("#body-error").await.contains("gratis"));
    browser.assert_accessible("a refused consent text").await;
    browser
        .screenshot(&shots.join("dashboard-consent-text-refused.png"))
        .await;
    browser.goto(&app.url("/app/consent-texts/new")).await;
    browser.fill("#body", DANISH_CONSENT).await;
    browser.fill("#categories", "Nyheder").await;
    browser
        .fill("#privacy_url", "https://skobutikken.example/privatliv")
        .await;
    browser.submit("button[value=preview]").await;
    assert!(browser.text(".preview .consent-text").await.contains("Skobutikken"));
    browser.assert_accessible("a consent text's preview").await;
    browser.resize(390, 844).await;
    browser
        .assert_accessible("a consent text's preview at phone width")
        .await;
    browser
        .screenshot(&shots.join("dashboard-consent-text-preview.png"))
        .await;
    browser.resize(1280, 900).await;

    browser.goto(&app.url("/app/contacts?locale=da")).await;
    browser.assert_accessible("the contact list").await;
    browser.goto(&app.url("/app/nowhere")).await;
    browser.assert_accessible("the dashboard's 404 page").await;
    browser.quit().await;
}
