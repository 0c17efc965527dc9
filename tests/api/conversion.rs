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

/// A landing link for the invitation of `email` in `campaign`.
async fn link_for(app: &TestApp, campaign: &str, email: &'static str) -> (String, String) {
    let campaign_id = campaign.to_owned();
    let invitation: String = app
        .with_db(move |c| {
            invitations::table
                .filter(invitations::campaign_id.eq(&campaign_id))
                .filter(invitations::email.eq(email))
                .select(invitations::id)
                .first(c)
                .unwrap()
        })
        .await;
    let link = app
        .keyring
        .sign(
            optbridge::links::LinkPurpose::Landing,
            &invitation,
            campaign,
            "da",
            optbridge::db::now(),
        )
        .unwrap();
    (link, invitation)
}

/// Reminder emails in the dev mail outbox: (recipient, text part).
async fn reminders(app: &TestApp) -> Vec<(String, String)> {
    app.with_db(|c| {
        use optbridge::db::schema::dev_messages;
        dev_messages::table
            .filter(dev_messages::channel.eq("email"))
            .filter(dev_messages::raw.like("%Message-ID: <reminder-%"))
            .order(dev_messages::created_at.asc())
            .select((dev_messages::recipient, dev_messages::body_text))
            .load(c)
            .unwrap()
    })
    .await
}

async fn one_reminder_only_to_sign_ups_still_pending(backend: Backend) {
    let (app, fake) = twilio_app(backend, |a| {
        a.doi_email_reminder_secs = 1;
        a.limit_doi_per_ip = 100;
    })
    .await;
    let (ws, campaign) = app.campaign_for_all().await;
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    let mut links = std::collections::HashMap::new();
    for (email, phone) in [
        ("anna@example.dk", "+4520123401"),
        ("bo@example.dk", "+4520123402"),
        ("ove@example.dk", "+4520123403"),
        ("ingrid@example.no", "+4520123404"),
        ("lars@example.no", "+4520123405"),
        ("elsa@example.se", "+4520123406"),
    ] {
        let (link, invitation) = link_for(&app, &campaign, email).await;
        assert_eq!(app.submit_landing(&link, phone, true, &[]).await.0, 303, "{email}");
        links.insert(email, (link, invitation, phone));
    }
    app.dispatch_all().await;
    // Bo confirms; Ove unsubscribes from the emails; Ingrid's address is suppressed; Lars is
    // erased; Elsa's sign-up expires.
    app.sms_reply("+4520123402", "JA", "SMrem0001").await;
    let (ove_link, ove_invitation, _) = links["ove@example.dk"].clone();
    let unsubscribe = app
        .keyring
        .sign(
            optbridge::links::LinkPurpose::Unsubscribe,
            &ove_invitation,
            &campaign,
            "da",
            optbridge::db::now(),
        )
        .unwrap();
    let _ = ove_link;
    let res = app
        .client
        .post(app.url(&format!("/u/{unsubscribe}")))
        .form(&[("List-Unsubscribe", "One-Click")])
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let ws_id = ws.id.clone();
    app.with_db(move |c| {
        optbridge::contacts::suppress(
            c,
            &ws_id,
            optbridge::domain::Channel::Email,
            "ingrid@example.no",
            "test: complaint",
        )
        .unwrap()
    })
    .await;
    let lars = contact_of(&app, &links["lars@example.no"].1).await;
    assert_eq!(
        app.client
            .delete(app.url(&format!("/api/v1/contacts/{lars}")))
            .bearer_auth(&ws.token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let elsa = links["elsa@example.se"].1.clone();
    app.with_db(move |c| {
        diesel::update(consent_requests::table.filter(consent_requests::invitation_id.eq(&elsa)))
            .set(consent_requests::expires_at.eq(optbridge::db::now() - chrono::Duration::seconds(1)))
            .execute(c)
            .unwrap()
    })
    .await;
    assert!(reminders(&app).await.is_empty(), "not before DOI_EMAIL_REMINDER_SECS");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    let sent = reminders(&app).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].0.contains("anna@example.dk"), "{sent:?}");
    let text = &sent[0].1;
    assert!(text.contains("Bekræft min tilmelding"), "Danish, as Anna: {text}");
    // The link goes to the code page of Anna's sign-up, where the SMS can come again.
    let url = text
        .lines()
        .find(|l| l.contains("/confirm"))
        .expect("a link to the code page")
        .trim()
        .to_owned();
    assert!(url.len() <= 200, "{} characters: {url}", url.len());
    let path = url
        .strip_prefix(&app.settings.base_url.as_str().trim_end_matches('/').to_owned())
        .unwrap();
    let (status, page) = app.page(path).await;
    assert_eq!(status, 200);
    assert!(page.contains("3401") && page.contains("/resend"), "{page}");
    assert!(
        page.contains(&format!("href=\"/l/{}\"", links["anna@example.dk"].0)) || page.contains("href=\"/l/"),
        "a way back to correct the number"
    );

    // Never a second one, whatever runs again.
    let anna = links["anna@example.dk"].1.clone();
    let ws_id = ws.id.clone();
    app.with_db(move |c| optbridge::consent::reminder::schedule(c, &ws_id, &anna, optbridge::db::now()).unwrap())
        .await;
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(reminders(&app).await.len(), 1);

    // Anna confirms with the code after the reminder: the funnel shows both.
    let code = fake.last_code_for("+4520123401").expect("Anna's code");
    let anna_link = links["anna@example.dk"].0.clone();
    let (_, code_page) = app.page(&format!("/l/{anna_link}/confirm")).await;
    let csrf = crate::helpers::field(&code_page, "csrf");
    let (status, _, _) = app
        .post_form(&format!("/l/{anna_link}/confirm"), &[("csrf", &csrf), ("code", &code)])
        .await;
    assert_eq!(status, 200);
    let f = funnel(&app, &ws, &campaign).await;
    assert_eq!(f["reminded"], 1, "{f}");
    assert_eq!(f["confirmed_after_reminder"], 1, "{f}");
    assert_eq!(f["confirmed"], 2, "{f}");
    assert_eq!(f["confirmed_by_path"]["form_code"], 1, "{f}");
    assert_eq!(f["confirmed_by_path"]["form_reply"], 1, "{f}");
    assert_eq!(f["confirmed_by_path"]["after_reminder"], 1, "{f}");
}

async fn no_reminders_when_turned_off(backend: Backend) {
    let (app, _fake) = twilio_app(backend, |a| a.doi_email_reminder_secs = 0).await;
    let inv = app.invited().await;
    assert_eq!(app.submit_landing(&inv.anna, ANNA, true, &[]).await.0, 303);
    app.drain_outbox(Duration::from_secs(10)).await;
    let jobs: i64 = app
        .with_db(|c| {
            use optbridge::db::schema::outbox_jobs;
            outbox_jobs::table
                .filter(outbox_jobs::kind.eq("doi_email_reminder"))
                .count()
                .get_result(c)
                .unwrap()
        })
        .await;
    assert_eq!(jobs, 0);
    assert!(reminders(&app).await.is_empty());
}

/// Worker processes SIGKILLed while reminders go out (a real SMTP server): nobody gets two,
/// and every reminder the server accepted is recorded or was interrupted mid-send.
async fn reminders_survive_killed_workers_without_doubles(backend: Backend) {
    use crate::smtp_sink::{Fault, SmtpSink};
    use std::process::{Command, Stdio};
    const N: usize = 40;
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = crate::helpers::spawn_app_with(backend, |a| {
        a.doi_email_reminder_secs = 1;
        a.limit_doi_per_ip = 1000;
        a.limit_doi_per_country = 10_000;
        a.smtp_url = Some(smtp);
    })
    .await;
    let (ws, links) = app.invited_many(N).await;
    for (i, link) in links.iter().enumerate() {
        let phone = format!("+452012{i:04}");
        assert_eq!(app.submit_landing(link, &phone, true, &[]).await.0, 303);
    }
    let invitations = sink.messages().len();
    assert_eq!(invitations, N);
    for i in 0..N {
        // Slow the reminders a little so that kills land mid-send.
        sink.add_fault(
            &format!("r{i}@example.dk"),
            Fault::Stall {
                duration: Duration::from_millis(40),
                times: u32::MAX,
            },
        );
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let spawn = |drain: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_optbridge"));
        command.arg("worker");
        if drain {
            command.arg("--drain");
        }
        command
            .env("DATABASE_URL", &app.database.url)
            .env("BASE_URL", app.settings.base_url.as_str())
            .env("SMTP_URL", sink.url())
            .env_remove("SMS_PROVIDER")
            .env("OUTBOX_WORKERS", "2")
            .env("OUTBOX_BATCH", "5")
            .env("INVITATION_BATCH", "5")
            .env("OUTBOX_LEASE_SECS", "2")
            .env("OUTBOX_POLL_MS", "50")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        command
    };
    let reminded = || sink.messages().len() - invitations;
    for k in 1..=2 {
        let mut worker = spawn(false).spawn().expect("start a worker");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while reminded() < k * N / 3 {
            assert!(std::time::Instant::now() < deadline, "no progress");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        worker.kill().expect("SIGKILL");
        worker.wait().expect("reap");
    }
    assert!(reminded() < N, "killed before the end");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut drain = tokio::process::Command::from(spawn(true));
    assert!(drain.status().await.expect("drain").success());

    let mut per_recipient = std::collections::HashMap::<String, usize>::new();
    for m in sink.messages().iter().skip(invitations) {
        *per_recipient.entry(m.rcpt_to[0].clone()).or_default() += 1;
    }
    assert!(
        per_recipient.values().all(|&n| n == 1),
        "never twice: {per_recipient:?}"
    );
    let rows: Vec<(String, String)> = app
        .with_db(|c| {
            use optbridge::db::schema::doi_reminders;
            doi_reminders::table
                .select((doi_reminders::invitation_id, doi_reminders::status))
                .load(c)
                .unwrap()
        })
        .await;
    assert_eq!(rows.len(), N, "every pending sign-up was handled once");
    let sent = rows.iter().filter(|(_, s)| s == "sent").count();
    let interrupted = rows.iter().filter(|(_, s)| s == "sending").count();
    assert!(
        sent <= per_recipient.len() && per_recipient.len() <= sent + interrupted,
        "{sent} sent, {interrupted} interrupted, {} received",
        per_recipient.len()
    );
    assert!(interrupted <= 2 * 2 * 5, "at most the dead workers' leases");
    let f = funnel(&app, &ws, &campaign_of(&app, &rows[0].0).await).await;
    assert_eq!(f["reminded"].as_u64(), Some(sent as u64), "{f}");
    eprintln!("reminder crash test ({backend:?}): {N} pending, {sent} sent, {interrupted} interrupted by kills");
}

both_backends!(
    tap_to_text_is_one_consent_with_its_evidence,
    tap_to_text_refuses_numbers_outside_the_allowed_countries,
    tap_to_text_only_with_a_number_that_receives,
    dev_outbox_sends_the_prefilled_text_as_a_phone,
    one_reminder_only_to_sign_ups_still_pending,
    no_reminders_when_turned_off,
    reminders_survive_killed_workers_without_doubles,
    follow_up_audiences_are_exact,
    links_in_messages_are_short_and_old_links_still_work,
);

/// The contacts (by email) a campaign invited.
async fn invited_emails(app: &TestApp, campaign: &str) -> Vec<String> {
    let campaign = campaign.to_owned();
    let mut emails: Vec<String> = app
        .with_db(move |c| {
            invitations::table
                .filter(invitations::campaign_id.eq(&campaign))
                .select(invitations::email)
                .load(c)
                .unwrap()
        })
        .await;
    emails.sort();
    emails
}

async fn follow_up_audiences_are_exact(backend: Backend) {
    use crate::smtp_sink::{Fault, SmtpSink};
    use optbridge::links::LinkPurpose;
    let sink = SmtpSink::start().await;
    sink.add_fault(
        "elsa@example.se",
        Fault::RejectRcpt {
            code: 550,
            times: u32::MAX,
        },
    );
    let smtp = sink.url();
    let app = crate::helpers::spawn_app_with(backend, |a| a.smtp_url = Some(smtp)).await;
    let (ws, parent) = app.campaign_for_all().await;
    // A draft has no recipients to follow up.
    let body = serde_json::json!({"audience": "not_opened", "subject": "Sidste chance", "intro": "Vil du have SMS?"});
    let res = app
        .post_json(&ws.token, &format!("/api/v1/campaigns/{parent}/follow-ups"), &body)
        .await;
    assert_eq!(res.status(), 422);
    app.send_campaign(&ws.token, &parent).await;
    app.drain_outbox(Duration::from_secs(10)).await;

    // Anna opens; Bo clicks; Ove signs up (pending); Ingrid signs up and confirms; Lars
    // unsubscribes; Elsa bounced; Nils's address is suppressed afterwards; Amy does nothing.
    let app = &app;
    let link = |email: &'static str, purpose: LinkPurpose| {
        let parent = parent.clone();
        async move {
            let (_, invitation) = link_for(app, &parent, email).await;
            app.keyring
                .sign(purpose, &invitation, &parent, "da", optbridge::db::now())
                .unwrap()
        }
    };
    let open = link("anna@example.dk", LinkPurpose::Open).await;
    assert_eq!(
        app.client
            .get(app.url(&format!("/o/{open}")))
            .header("User-Agent", "Mozilla/5.0 (iPhone)")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.page(&format!("/l/{}", link("bo@example.dk", LinkPurpose::Landing).await))
            .await
            .0,
        200
    );
    assert_eq!(
        app.submit_landing(
            &link("ove@example.dk", LinkPurpose::Landing).await,
            "+4520123403",
            true,
            &[]
        )
        .await
        .0,
        303
    );
    assert_eq!(
        app.submit_landing(
            &link("ingrid@example.no", LinkPurpose::Landing).await,
            "+4520123404",
            true,
            &[]
        )
        .await
        .0,
        303
    );
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(app.dev_sms_reply("+4520123404", "JA").await.status(), 303);
    let unsubscribe = link("lars@example.no", LinkPurpose::Unsubscribe).await;
    let res = app
        .client
        .post(app.url(&format!("/u/{unsubscribe}")))
        .form(&[("List-Unsubscribe", "One-Click")])
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    app.drain_outbox(Duration::from_secs(10)).await;
    let ws_id = ws.id.clone();
    app.with_db(move |c| {
        optbridge::contacts::suppress(
            c,
            &ws_id,
            optbridge::domain::Channel::Email,
            "nils@example.se",
            "test: complaint",
        )
        .unwrap()
    })
    .await;
    app.eventually("opens and clicks are recorded", |c| {
        let opened: i64 = invitations::table
            .filter(invitations::opened_at.is_not_null())
            .count()
            .get_result(c)
            .unwrap();
        let clicked: i64 = invitations::table
            .filter(invitations::clicked_at.is_not_null())
            .count()
            .get_result(c)
            .unwrap();
        opened >= 1 && clicked == 3
    })
    .await;

    let mut waves = Vec::new();
    for (audience, expected) in [
        ("not_opened", vec!["amy@example.com"]),
        ("not_clicked", vec!["amy@example.com", "anna@example.dk"]),
        (
            "not_signed_up",
            vec!["amy@example.com", "anna@example.dk", "bo@example.dk"],
        ),
    ] {
        // The parent speaks four languages: the follow-up's texts are given per language.
        let body = serde_json::json!({
            "audience": audience,
            "subject": {"da": "Sidste chance", "nb": "Siste sjanse", "sv": "Sista chansen", "en": "Last chance"},
            "intro": {
                "da": "Vil du stadig have SMS?", "nb": "Vil du fortsatt ha SMS?",
                "sv": "Vill du fortfarande ha SMS?", "en": "Still want texts?"
            },
        });
        let res = app
            .post_json(&ws.token, &format!("/api/v1/campaigns/{parent}/follow-ups"), &body)
            .await;
        assert_eq!(res.status(), 201);
        let id = json(res).await["id"].as_str().unwrap().to_owned();
        let view = json(app.get(&ws.token, &format!("/api/v1/campaigns/{id}")).await).await;
        assert_eq!(view["status"], "draft");
        assert_eq!(view["audience_locales"], serde_json::json!(["da", "nb", "sv", "en"]));
        app.send_campaign(&ws.token, &id).await;
        app.drain_outbox(Duration::from_secs(10)).await;
        // Sending again adds nobody: each contact at most once per follow-up.
        app.send_campaign(&ws.token, &id).await;
        app.drain_outbox(Duration::from_secs(10)).await;
        assert_eq!(invited_emails(app, &id).await, expected, "{audience}");
        waves.push((id, expected.len()));
    }
    let bad = serde_json::json!({"audience": "everyone", "subject": "S", "intro": "I"});
    assert_eq!(
        app.post_json(&ws.token, &format!("/api/v1/campaigns/{parent}/follow-ups"), &bad)
            .await
            .status(),
        422
    );

    // The parent's funnel lists the waves, and a total counting each person once.
    let f = funnel(app, &ws, &parent).await;
    let listed = f["follow_ups"].as_array().expect("follow_ups");
    assert_eq!(listed.len(), 3, "{f}");
    for ((id, n), line) in waves.iter().zip(listed) {
        assert_eq!(line["id"], id.as_str());
        assert_eq!(line["recipients"].as_u64(), Some(*n as u64), "{line}");
        assert_eq!(line["sent"].as_u64(), Some(*n as u64), "{line}");
    }
    assert_eq!(f["combined"]["recipients"], 8, "{f}");
    assert_eq!(
        f["combined"]["sent"], 7,
        "each delivered person once (Elsa bounced): {f}"
    );
    assert_eq!(f["combined"]["confirmed"], 1, "{f}");
}

/// Every link in a message fits in 200 characters with a realistic BASE_URL; links sent in the
/// long format before still work.
async fn links_in_messages_are_short_and_old_links_still_work(backend: Backend) {
    const BASE: &str = "https://optbridge.nordlys-sko.example";
    let app = crate::helpers::spawn_app_with(backend, |a| {
        a.base_url = Some(BASE.into());
        a.dev_outboxes = true;
        a.doi_email_reminder_secs = 1;
    })
    .await;
    let inv = app.invited().await;
    assert_eq!(app.submit_landing(&inv.anna, ANNA, true, &[]).await.0, 303);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    let mails: Vec<(Option<String>, String, Option<String>)> = app
        .with_db(|c| {
            use optbridge::db::schema::dev_messages;
            dev_messages::table
                .filter(dev_messages::channel.eq("email"))
                .select((dev_messages::raw, dev_messages::body_text, dev_messages::body_html))
                .load(c)
                .unwrap()
        })
        .await;
    assert_eq!(mails.len(), 9, "8 invitations and 1 reminder");
    let mut longest = 0;
    for (raw, text, html) in &mails {
        let all = format!(
            "{}\n{text}\n{}",
            raw.as_deref().unwrap_or_default().replace("=\r\n", ""),
            html.as_deref().unwrap_or_default()
        );
        let urls: Vec<&str> = all
            .match_indices(BASE)
            .map(|(at, _)| {
                let rest = &all[at..];
                let end = rest
                    .find(|c: char| c.is_whitespace() || matches!(c, '"' | '<' | '>'))
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .collect();
        assert!(urls.len() >= 3, "{urls:?}");
        for url in urls {
            assert!(url.len() <= 200, "{} characters: {url}", url.len());
            longest = longest.max(url.len());
        }
    }
    eprintln!("longest link in a message with BASE_URL {BASE}: {longest} characters");

    // A landing link in the long format, as invitations carried it before, still opens the page
    // and takes the form.
    let (kid, secret): (String, String) = app
        .with_db(|c| {
            use optbridge::db::schema::signing_keys;
            signing_keys::table
                .select((signing_keys::kid, signing_keys::secret))
                .first(c)
                .unwrap()
        })
        .await;
    let campaign = campaign_of(&app, &inv.anna_invitation).await;
    let bo_invitation: String = {
        let campaign = campaign.clone();
        app.with_db(move |c| {
            invitations::table
                .filter(invitations::campaign_id.eq(&campaign))
                .filter(invitations::email.eq("bo@example.dk"))
                .select(invitations::id)
                .first(c)
                .unwrap()
        })
        .await
    };
    let now = chrono::Utc::now().timestamp();
    let long = optbridge::links::LinkClaims {
        iss: "optbridge".into(),
        aud: "optbridge:landing".into(),
        sub: bo_invitation,
        exp: now + 3600,
        iat: now,
        jti: "0123456789abcdef01".into(),
        cid: campaign,
        loc: "da".into(),
    };
    let header = jsonwebtoken::Header {
        kid: Some(kid),
        ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
    };
    let token = jsonwebtoken::encode(
        &header,
        &long,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    assert!(token.len() > 300);
    let (status, page) = app.page(&format!("/l/{token}")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(app.submit_landing(&token, BO, true, &[]).await.0, 303);
    let expired = optbridge::links::LinkClaims { exp: now - 10, ..long };
    let token = jsonwebtoken::encode(
        &header,
        &expired,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    assert_eq!(app.page(&format!("/l/{token}")).await.0, 404);
}
