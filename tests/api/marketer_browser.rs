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

const SWEDISH_CONSENT: &str = "Ja tack, Skobutikken får skicka nyheter och erbjudanden till mig via SMS, högst 4 gånger \
                               i månaden. Jag kan när som helst återkalla mitt samtycke genom att svara STOP.";

/// The whole conversion as a marketer does it, in headless Chromium with no API token: log in,
/// upload a CSV with a bad row, have a consent text refused ("gratis") and save good ones, create
/// a campaign with two variants in two languages, preview every language and variant, send a
/// test, schedule, pause, resume, watch the funnel, read the activity log. Every page is checked
/// with axe-core; screenshots go to `target/screenshots/marketer-*.png`.
// SQLite only: this exercises the browser path, not the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marketer_does_the_whole_conversion_in_the_browser() {
    use diesel::prelude::*;
    use optbridge::campaigns::InvitationStatus;
    use optbridge::db::schema::{campaigns, invitations, outbox_jobs};

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
    let shot = |name: &str| shots.join(format!("marketer-{name}.png"));

    // 1. Log in.
    browser.goto(&app.url("/app")).await;
    browser.fill("#email", "marketer@shop.example").await;
    browser.fill("#password", DASHBOARD_PASSWORD).await;
    browser.submit("button[type=submit]").await;
    assert!(browser.current_url().await.ends_with("/app"));

    // 2. Upload a CSV with a bad row: two Danish and two Swedish contacts, one broken address.
    let csv = "email,first_name,locale\nanna@example.dk,Anna,da\nbo@example.dk,Bo,da\n\
               nils@example.se,Nils,sv\nnot-an-address,Broken,da\nelsa@example.se,Elsa,sv\n";
    let file = std::env::temp_dir().join(format!("optbridge-marketer-{}.csv", ws.id));
    std::fs::write(&file, csv).unwrap();
    browser.goto(&app.url("/app/import")).await;
    browser.fill("#file", file.to_str().unwrap()).await;
    browser.submit("form[action='/app/import'] button[type=submit]").await;
    app.drain_outbox(std::time::Duration::from_secs(20)).await;
    browser.goto(&browser.current_url().await).await;
    assert_eq!(browser.text("[data-metric='imported']").await, "4");
    assert_eq!(browser.text("[data-metric='refused']").await, "1");
    assert!(
        browser.source().await.contains("not-an-address"),
        "the refused line is shown"
    );
    browser.assert_accessible("the import result").await;
    browser.screenshot(&shot("1-import")).await;
    let _ = std::fs::remove_file(&file);

    // 3. A consent text with "gratis" is refused next to its field; good ones in da and sv are saved.
    browser.goto(&app.url("/app/consent-texts/new")).await;
    browser.fill("#company_name", "Skobutikken").await;
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
    browser.screenshot(&shot("2-consent-refused")).await;
    for (locale, body) in [("da", crate::helpers::DANISH_CONSENT), ("sv", SWEDISH_CONSENT)] {
        browser.goto(&app.url("/app/consent-texts/new")).await;
        browser.set_value("#locale", locale).await;
        browser.fill("#company_name", "Skobutikken").await;
        browser.fill("#body", body).await;
        browser.fill("#categories", "Nyheder").await;
        browser
            .fill("#privacy_url", "https://skobutikken.example/privatliv")
            .await;
        browser.submit("button[value=save]").await;
    }
    browser.goto(&app.url("/app/consent-texts")).await;
    assert!(
        browser.source().await.contains("Ja tack, Skobutikken"),
        "both texts saved"
    );

    // 4. A campaign in Danish and Swedish with two variants.
    browser.goto(&app.url("/app/campaigns/new")).await;
    browser.assert_accessible("the campaign form").await;
    browser.fill("#name", "Vinterudsalg").await;
    for locale in ["da", "sv"] {
        let tick = format!("input[name=locales][value={locale}]");
        if !browser.is_selected(&tick).await {
            browser.click(&tick).await;
        }
    }
    browser.fill("#subject_da", "Få vores tilbud på SMS").await;
    browser
        .fill("#intro_da", "Hej! Vil du have vores bedste tilbud på SMS?")
        .await;
    browser.fill("#frequency_da", "højst 4 gange om måneden").await;
    browser.fill("#subject_sv", "Få våra erbjudanden på SMS").await;
    browser
        .fill("#intro_sv", "Hej! Vill du ha våra bästa erbjudanden på SMS?")
        .await;
    browser.fill("#frequency_sv", "högst 4 gånger i månaden").await;
    browser.fill("#v0_name", "A").await;
    browser.submit("button[value=add_variant]").await;
    browser.fill("#v1_name", "B").await;
    browser.screenshot(&shot("3-campaign-form")).await;
    browser.submit("button[value=save]").await;
    let page = browser.current_url().await;
    let campaign = page
        .rsplit("/app/campaigns/")
        .next()
        .and_then(|rest| rest.split(['?', '/']).next())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(campaign.len(), 36, "on the new campaign's page: {page}");

    // 5. Preview: every language and variant, in sandboxed frames.
    let source = browser.source().await;
    assert_eq!(
        source.matches("<iframe class=\"preview\" sandbox").count(),
        4,
        "da and sv × A and B: {:?}",
        source
            .split("<summary>")
            .skip(1)
            .map(|s| s.split("</summary>").next().unwrap_or_default())
            .collect::<Vec<_>>()
    );
    assert!(source.contains("Få vores tilbud på SMS") && source.contains("Få våra erbjudanden på SMS"));
    assert_eq!(browser.text("[data-audience='Dansk (da)']").await, "2");
    assert_eq!(browser.text("[data-audience='Svenska (sv)']").await, "2");
    browser.click("details:has(iframe.preview) summary").await;
    browser.assert_accessible("the draft campaign with its previews").await;
    browser.screenshot(&shot("4-preview")).await;

    // 6. A test send goes through the outbox; the campaign stays a draft with no recipient.
    browser.set_value("#test-locale", "sv").await;
    browser.set_value("#test-variant", "B").await;
    browser.submit("form[action$='/test'] button[type=submit]").await;
    app.drain_outbox(std::time::Duration::from_secs(20)).await;
    let c = campaign.clone();
    let recipients: i64 = app
        .with_db(move |conn| {
            invitations::table
                .filter(invitations::campaign_id.eq(&c))
                .count()
                .get_result(conn)
                .unwrap()
        })
        .await;
    assert_eq!(recipients, 0, "a test is not a recipient");

    // 7. Schedule for a morning in January (read in the workspace's time zone).
    browser.set_value("#at", "2031-01-15T09:00").await;
    browser.submit("form[action$='/send'] #at ~ button[type=submit]").await;
    assert!(browser.source().await.contains("2031-01-15"), "the page says when");
    browser.assert_accessible("a scheduled campaign").await;
    browser.screenshot(&shot("5-scheduled")).await;

    // The clock reaches the scheduled time: the expansion queues the audience.
    let c = campaign.clone();
    app.with_db(move |conn| {
        let now = optbridge::db::now();
        diesel::update(outbox_jobs::table.filter(outbox_jobs::ref_id.eq(&c)))
            .set(outbox_jobs::run_after.eq(now))
            .execute(conn)
            .unwrap();
        diesel::update(campaigns::table.find(&c))
            .set(campaigns::scheduled_at.eq(now))
            .execute(conn)
            .unwrap();
    })
    .await;
    optbridge::outbox::worker::dispatch_once(&app.worker, "marketer-test")
        .await
        .unwrap();

    // 8. Pause: nothing leaves while paused.
    browser.goto(&page).await;
    browser.submit("form[action$='/pause'] button").await;
    optbridge::outbox::worker::dispatch_once(&app.worker, "marketer-test")
        .await
        .unwrap();
    let app = &app;
    let sent = |campaign: String| async move {
        app.with_db(move |conn| {
            invitations::table
                .filter(invitations::campaign_id.eq(&campaign))
                .filter(invitations::status.eq(InvitationStatus::Sent))
                .count()
                .get_result::<i64>(conn)
                .unwrap()
        })
        .await
    };
    assert_eq!(sent(campaign.clone()).await, 0, "paused: no invitation left");
    browser.assert_accessible("a paused campaign").await;
    browser.screenshot(&shot("6-paused")).await;

    // 9. Resume: every recipient gets the invitation once; the funnel shows it.
    browser.submit("form[action$='/resume'] button").await;
    app.drain_outbox(std::time::Duration::from_secs(60)).await;
    assert_eq!(sent(campaign.clone()).await, 4);
    browser.goto(&page).await;
    assert_eq!(browser.text("[data-metric='Sent']").await, "4");
    browser.assert_accessible("the campaign's funnel").await;
    browser.resize(390, 844).await;
    browser.assert_accessible("the campaign's funnel at phone width").await;
    browser.screenshot(&shot("7-funnel-phone")).await;
    browser.resize(1280, 1600).await;
    browser.screenshot(&shot("7-funnel")).await;

    // 10. The activity log names who did what.
    browser.goto(&app.url("/app/activity")).await;
    let log = browser.source().await;
    for done in [
        "scheduled a campaign",
        "paused a campaign",
        "resumed a campaign",
        "created a campaign",
        "marketer@shop.example",
    ] {
        assert!(log.contains(done), "the activity log shows {done:?}");
    }
    browser.assert_accessible("the activity log").await;
    browser.screenshot(&shot("8-activity")).await;
    browser.quit().await;
}
