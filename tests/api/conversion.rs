//! Issue 17: tap-to-text sign-up, the one email reminder, follow-up waves, short links and the
//! funnel by path.

use std::time::Duration;

use diesel::prelude::*;
use optbridge::db::schema::{consent_requests, invitations, landing_views, sms_subscriptions};
use serde_json::Value;

use crate::helpers::{ANNA, BO, Backend, FROM, TestApp, TestWorkspace, both_backends, json, spawn_app, twilio_app};

/// The tap-to-text link's number and code on a landing page, if it offers one.
fn tap_link(page: &str) -> Option<(String, String)> {
    let start = page.find("href=\"sms:")? + "href=\"sms:".len();
    let href = page[start..]
        .split('"')
        .next()?
        .replace("&amp;", "&")
        .replace("&#38;", "&");
    let (number, query) = href.split_once("?&body=")?;
    let (keyword, code) = query.split_once("%20")?;
    assert!(keyword == "JA" || keyword == "YES", "{href}");
    Some((number.to_owned(), code.to_owned()))
}

fn page_sha256(page: &str) -> String {
    let start = page.find("data-sha256=\"").expect("consent text on the page") + "data-sha256=\"".len();
    page[start..].split('"').next().unwrap().to_owned()
}

async fn contact_of(app: &TestApp, invitation: &str) -> String {
    let invitation = invitation.to_owned();
    app.with_db(move |c| {
        invitations::table
            .find(&invitation)
            .select(invitations::contact_id)
            .first(c)
            .unwrap()
    })
    .await
}

async fn counts(app: &TestApp) -> (i64, i64) {
    app.with_db(|c| {
        (
            consent_requests::table.count().get_result(c).unwrap(),
            sms_subscriptions::table.count().get_result(c).unwrap(),
        )
    })
    .await
}

async fn funnel(app: &TestApp, ws: &TestWorkspace, campaign: &str) -> Value {
    json(
        app.get(&ws.token, &format!("/api/v1/campaigns/{campaign}/funnel"))
            .await,
    )
    .await
}

async fn campaign_of(app: &TestApp, invitation: &str) -> String {
    let invitation = invitation.to_owned();
    app.with_db(move |c| {
        invitations::table
            .find(&invitation)
            .select(invitations::campaign_id)
            .first(c)
            .unwrap()
    })
    .await
}

async fn tap_to_text_is_one_consent_with_its_evidence(backend: Backend) {
    let (app, fake) = twilio_app(backend, |_| {}).await;
    let inv = app.invited().await;

    let (status, page) = app.page(&format!("/l/{}", inv.anna)).await;
    assert_eq!(status, 200);
    let (number, code) = tap_link(&page).unwrap_or_else(|| panic!("the landing page offers tap-to-text: {page}"));
    assert_eq!(number, FROM, "the Twilio sender number receives the text");
    assert_eq!(code.len(), 6);
    assert!(
        code.bytes().all(|b| b"0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(&b)),
        "{code}"
    );
    let sha = page_sha256(&page);
    // Each view shows its own code; viewing changes no consent state, but is recorded.
    let (_, again) = app.page(&format!("/l/{}", inv.anna)).await;
    let (_, other_code) = tap_link(&again).unwrap();
    assert_ne!(code, other_code);
    assert_eq!(counts(&app).await, (0, 0), "a page view is no consent");
    let views: Vec<(String, String, Option<chrono::NaiveDateTime>)> = app
        .with_db(|c| {
            landing_views::table
                .select((
                    landing_views::consent_text_sha256,
                    landing_views::tap_code_hash,
                    landing_views::used_at,
                ))
                .load(c)
                .unwrap()
        })
        .await;
    assert_eq!(views.len(), 2);
    assert!(
        views
            .iter()
            .all(|(s, hash, used)| *s == sha && !hash.contains(&code) && used.is_none())
    );

    // The prefilled text from Anna's phone: consent and proof of the number at once.
    assert_eq!(
        app.sms_reply(ANNA, &format!("JA {code}"), "SMtap0001").await.status(),
        200
    );
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(app.subscription_status(ANNA).await.as_deref(), Some("active"));
    let sent = fake.wait_for_delivered(1, Duration::from_secs(5)).await;
    assert_eq!(sent.len(), 1, "only the receipt: no code SMS is needed");
    assert_eq!(sent[0].to, ANNA);
    assert!(sent[0].body.contains("STOP"), "{}", sent[0].body);

    // The same code again from Anna, then from Bo: nothing new, one polite answer in all.
    app.sms_reply(ANNA, &format!("JA {code}"), "SMtap0002").await;
    app.drain_outbox(Duration::from_secs(10)).await;
    app.sms_reply(BO, &format!("ja {}", code.to_lowercase()), "SMtap0003")
        .await;
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(counts(&app).await, (1, 1), "one consent, whatever the repeats");
    assert_eq!(app.subscription_status(BO).await, None);
    let sent = fake.delivered();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[1].to, ANNA);
    assert!(sent[1].body.contains("allerede brugt"), "{}", sent[1].body);
    // The other view's code is void too: the person is signed up.
    app.sms_reply(BO, &format!("JA {other_code}"), "SMtap0004").await;
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(counts(&app).await, (1, 1));

    // Evidence: the API and the CSV export name the path, the text and the page's SHA-256.
    let contact = contact_of(&app, &inv.anna_invitation).await;
    let history = json(
        app.get(&inv.ws.token, &format!("/api/v1/contacts/{contact}/consent"))
            .await,
    )
    .await;
    let request = &history["requests"][0];
    assert_eq!(request["confirmed_via"], "tap_to_text", "{history}");
    assert_eq!(request["status"], "confirmed");
    assert_eq!(request["phone"], ANNA);
    assert_eq!(request["consent_text_sha256"], sha.as_str());
    assert_eq!(request["tap_to_text"]["inbound_message_sid"], "SMtap0001");
    assert_eq!(request["tap_to_text"]["consent_text_sha256_shown"], sha.as_str());
    let ledger = history["ledger"].to_string();
    assert!(
        ledger.contains("SMtap0001") && ledger.contains("tap_to_text"),
        "{ledger}"
    );
    let csv = app
        .get(&inv.ws.token, "/api/v1/consents/export")
        .await
        .text()
        .await
        .unwrap();
    let row = csv.lines().find(|l| l.starts_with(ANNA)).expect("Anna's consent");
    assert!(
        row.contains("tap_to_text") && row.contains("SMtap0001") && row.contains(&sha),
        "{row}"
    );

    // The funnel counts the sign-up once as submitted and confirmed, on the tap-to-text path.
    let campaign = campaign_of(&app, &inv.anna_invitation).await;
    let f = funnel(&app, &inv.ws, &campaign).await;
    assert_eq!(
        (f["submitted"].as_i64(), f["confirmed"].as_i64()),
        (Some(1), Some(1)),
        "{f}"
    );
    assert_eq!(f["confirmed_by_path"]["tap_to_text"], 1, "{f}");
    assert_eq!(f["confirmed_by_path"]["form_reply"], 0, "{f}");
}

async fn tap_to_text_refuses_numbers_outside_the_allowed_countries(backend: Backend) {
    let (app, fake) = twilio_app(backend, |_| {}).await;
    let inv = app.invited().await;
    let (_, page) = app.page(&format!("/l/{}", inv.bo)).await;
    let (_, code) = tap_link(&page).unwrap();
    // A US number (the workspace allows DK, NO, SE): nothing, not even an answer.
    app.sms_reply("+12025550123", &format!("YES {code}"), "SMtapUS01").await;
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(counts(&app).await, (0, 0));
    assert!(fake.delivered().is_empty());
    // The code stays good for a number that is allowed.
    app.sms_reply(BO, &format!("JA {code}"), "SMtapBO01").await;
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(app.subscription_status(BO).await.as_deref(), Some("active"));
}

async fn tap_to_text_only_with_a_number_that_receives(backend: Backend) {
    // An alphanumeric sender cannot receive texts; a messaging service has no single number.
    for (from, service, inbound) in [
        (Some("Skobutik"), None, None),
        (None, Some("MG0123456789abcdef0123456789abcdef"), None),
        (None, Some("MG0123456789abcdef0123456789abcdef"), Some("+4570303030")),
    ] {
        let (app, _fake) = twilio_app(backend, |a| {
            a.twilio_from = from.map(str::to_owned);
            a.twilio_messaging_service_sid = service.map(str::to_owned);
            a.sms_inbound_number = inbound.map(str::to_owned);
        })
        .await;
        let inv = app.invited().await;
        let (status, page) = app.page(&format!("/l/{}", inv.anna)).await;
        assert_eq!(status, 200);
        assert_eq!(
            tap_link(&page).map(|(number, _)| number),
            inbound.map(str::to_owned),
            "{from:?} {service:?}"
        );
        let views: i64 = app
            .with_db(|c| landing_views::table.count().get_result(c).unwrap())
            .await;
        assert_eq!(
            views,
            i64::from(inbound.is_some()),
            "a view is recorded only with a code"
        );
    }
}

async fn dev_outbox_sends_the_prefilled_text_as_a_phone(backend: Backend) {
    let app = spawn_app(backend).await;
    let inv = app.invited().await;
    let (_, page) = app.page(&format!("/l/{}", inv.anna)).await;
    let (number, code) = tap_link(&page).expect("the dev outbox receives texts");
    assert_eq!(number, optbridge::sms::provider::DEV_INBOUND_NUMBER);
    let dev_link = format!("/dev/sms?body=JA%20{code}#send-as-phone");
    assert!(page.contains(&dev_link), "{page}");
    // The dev outbox's form comes prefilled with the text, addressed to the tap-to-text number.
    let (status, dev) = app.page(&format!("/dev/sms?body=JA%20{code}")).await;
    assert_eq!(status, 200);
    assert!(dev.contains(&format!("value=\"JA {code}\"")), "{dev}");
    assert!(dev.contains(&format!("name=\"to\" value=\"{number}\"")), "{dev}");
    let res = app.dev_sms_send_as(ANNA, &format!("JA {code}"), &number).await;
    assert_eq!(res.status(), 303);
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(app.subscription_status(ANNA).await.as_deref(), Some("active"));
    let via: Option<String> = app
        .with_db(|c| {
            consent_requests::table
                .select(consent_requests::confirmed_via)
                .first(c)
                .unwrap()
        })
        .await;
    assert_eq!(via.as_deref(), Some("tap_to_text"));
}

both_backends!(
    tap_to_text_is_one_consent_with_its_evidence,
    tap_to_text_refuses_numbers_outside_the_allowed_countries,
    tap_to_text_only_with_a_number_that_receives,
    dev_outbox_sends_the_prefilled_text_as_a_phone,
);
