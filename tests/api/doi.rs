//! The landing page and the SMS double opt-in, end to end: HTTP form, fake Twilio, signed
//! webhooks, keywords, abuse limits, the ledger.

use std::time::Duration;

use diesel::prelude::*;
use optbridge::db::schema::{consent_requests, invitations, sms_messages, sms_subscriptions};
use serde_json::{Value, json};

use crate::fake_twilio::{TwilioFault, post_signed};
use crate::helpers::{
    ANNA, AUTH, Backend, FROM, TestApp, TestWorkspace, both_backends, field, json, spawn_app, twilio_app,
};

async fn csrf_of(app: &TestApp, token: &str) -> String {
    field(&app.page(&format!("/l/{token}")).await.1, "csrf")
}

async fn consent_history(app: &TestApp, ws: &TestWorkspace, invitation: &str) -> Value {
    let invitation = invitation.to_owned();
    let contact: String = app
        .with_db(move |c| {
            invitations::table
                .find(&invitation)
                .select(invitations::contact_id)
                .first(c)
                .unwrap()
        })
        .await;
    json(app.get(&ws.token, &format!("/api/v1/contacts/{contact}/consent")).await).await
}

async fn reply_ja_confirms_with_full_evidence(backend: Backend) {
    let (app, fake) = twilio_app(backend, |_| {}).await;
    let inv = app.invited().await;

    let (status, _, location) = app.submit_landing(&inv.anna, "20 12 34 56", true, &["Tilbud"]).await;
    assert_eq!(status, 303);
    assert_eq!(location.as_deref(), Some(format!("/l/{}/confirm", inv.anna).as_str()));
    let (status, code_page) = app.page(&format!("/l/{}/confirm", inv.anna)).await;
    assert_eq!(status, 200);
    assert!(code_page.contains("•••• 3456"), "the number is shown masked");

    app.drain_outbox(Duration::from_secs(10)).await;
    let sent = fake.wait_for_delivered(1, Duration::from_secs(5)).await;
    let doi = &sent[0];
    assert_eq!(doi.to, ANNA);
    assert_eq!(doi.from.as_deref(), Some(FROM));
    assert!(doi.body.starts_with("Skobutikken:"), "{}", doi.body);
    assert!(doi.body.contains("JA") && doi.body.contains("STOP"), "{}", doi.body);
    let code = fake.last_code_for(ANNA).expect("a 6-digit code");
    assert!(doi.body.contains(&code));
    assert_eq!(
        optbridge::sms::segments::count(&doi.body).segments,
        1,
        "one GSM-7 segment"
    );
    let callback = app
        .settings
        .base_url
        .join("webhooks/twilio/status")
        .unwrap()
        .to_string();
    assert_eq!(doi.status_callback.as_deref(), Some(callback.as_str()));
    assert_eq!(
        app.subscription_status(ANNA).await,
        None,
        "not active before confirmation"
    );

    let res = app.sms_reply(ANNA, "  Ja tak!", "SMreply0001").await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("<Response>"));
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(app.subscription_status(ANNA).await.as_deref(), Some("active"));
    let receipt = fake.wait_for_delivered(2, Duration::from_secs(5)).await;
    assert!(
        receipt[1].body.contains("Normal SMS-takst") && receipt[1].body.contains("STOP"),
        "{}",
        receipt[1].body
    );

    // The evidence: the exact text version and its hash, where, when, how confirmed.
    let history = consent_history(&app, &inv.ws, &inv.anna_invitation).await;
    let request = &history["requests"][0];
    assert_eq!(request["status"], "confirmed");
    assert_eq!(request["confirmed_via"], "sms_reply");
    assert_eq!(request["categories"], json!(["Tilbud"]));
    assert_eq!(request["ip"], "127.0.0.1");
    let text = json(
        app.get(
            &inv.ws.token,
            &format!("/api/v1/consent-texts/{}", request["consent_text_id"].as_str().unwrap()),
        )
        .await,
    )
    .await;
    assert_eq!(request["consent_text_sha256"], text["sha256"]);
    assert_eq!(history["sms"][0]["status"], "active");
    let kinds: Vec<&str> = history["ledger"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "email_permission_imported",
            "sms_consent_requested",
            "sms_consent_confirmed"
        ]
    );
    assert_eq!(
        history["ledger"][2]["payload"]["confirmation"]["message_sid"],
        "SMreply0001"
    );

    let (_, done) = app.page(&format!("/l/{}/confirm", inv.anna)).await;
    assert!(done.contains("Tak, du er tilmeldt"), "{done}");
    // The same person again: the answer any number gets (tests/api/enumeration.rs), no new SMS.
    let (status, _, _) = app.submit_landing(&inv.anna, ANNA, true, &[]).await;
    assert_eq!(status, 303);
    let (_, page) = app.page(&format!("/l/{}/confirm", inv.anna)).await;
    assert!(
        page.contains("Er du allerede tilmeldt, sender vi ingen ny kode"),
        "{page}"
    );
    app.drain_outbox(Duration::from_secs(5)).await;
    assert_eq!(fake.delivered().len(), 2);
}

async fn code_on_the_page_confirms_and_wrong_codes_lock(backend: Backend) {
    let (app, fake) = twilio_app(backend, |_| {}).await;
    let inv = app.invited().await;
    app.submit_landing(&inv.anna, ANNA, true, &[]).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    let code = fake.last_code_for(ANNA).unwrap();
    let csrf = csrf_of(&app, &inv.anna).await;
    let confirm = format!("/l/{}/confirm", inv.anna);

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (status, body, _) = app.post_form(&confirm, &[("csrf", &csrf), ("code", wrong)]).await;
    assert_eq!(status, 422);
    assert!(body.contains("4 forsøg tilbage"), "{body}");
    let spaced = format!("{} {}", &code[..3], &code[3..]);
    let (status, body, _) = app.post_form(&confirm, &[("csrf", &csrf), ("code", &spaced)]).await;
    assert_eq!(status, 200);
    assert!(body.contains("Tak, du er tilmeldt"), "{body}");
    assert_eq!(app.subscription_status(ANNA).await.as_deref(), Some("active"));
    let history = consent_history(&app, &inv.ws, &inv.anna_invitation).await;
    assert_eq!(history["requests"][0]["confirmed_via"], "code");

    // Bo: five wrong codes lock the request, and then even the right one is refused.
    app.submit_landing(&inv.bo, "+45 20 99 88 77", true, &[]).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    let bo_code = fake.last_code_for("+4520998877").unwrap();
    let bo_confirm = format!("/l/{}/confirm", inv.bo);
    let bo_csrf = csrf_of(&app, &inv.bo).await;
    let wrong = if bo_code == "999999" { "888888" } else { "999999" };
    for _ in 0..5 {
        app.post_form(&bo_confirm, &[("csrf", &bo_csrf), ("code", wrong)]).await;
    }
    let (_, body, _) = app
        .post_form(&bo_confirm, &[("csrf", &bo_csrf), ("code", &bo_code)])
        .await;
    assert!(body.contains("For mange forkerte koder"), "{body}");
    assert_eq!(app.subscription_status("+4520998877").await, None);
}

/// Five wrong codes on the code page of `link`'s latest sign-up, whose code went to `phone`.
async fn lock_with_wrong_codes(app: &TestApp, fake: &crate::fake_twilio::FakeTwilio, link: &str, phone: &str) {
    let code = fake.last_code_for(phone).unwrap();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let csrf = csrf_of(app, link).await;
    let confirm = format!("/l/{link}/confirm");
    for _ in 0..5 {
        app.post_form(&confirm, &[("csrf", &csrf), ("code", wrong)]).await;
    }
    // The lock holds against guessing on the page: even the right code is refused now.
    let (_, body, _) = app.post_form(&confirm, &[("csrf", &csrf), ("code", &code)]).await;
    assert!(body.contains("For mange forkerte koder"), "{body}");
}

/// Finding: the page of a sign-up locked by wrong codes says "you can still reply JA", but the
/// reply was ignored. A reply comes from the phone itself: it confirms a locked sign-up as a
/// pending one, while STOP and expiry still end it.
async fn a_locked_sign_up_is_confirmed_by_reply(backend: Backend) {
    let (app, fake) = twilio_app(backend, |_| {}).await;
    let inv = app.invited().await;
    app.submit_landing(&inv.anna, ANNA, true, &["Tilbud"]).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    lock_with_wrong_codes(&app, &fake, &inv.anna, ANNA).await;
    let (_, page) = app.page(&format!("/l/{}/confirm", inv.anna)).await;
    assert!(page.contains("Du kan stadig svare JA"), "{page}");
    assert_eq!(app.subscription_status(ANNA).await, None);

    let res = app.sms_reply(ANNA, "ja", "SMlocked0001").await;
    assert_eq!(res.status(), 200);
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(app.subscription_status(ANNA).await.as_deref(), Some("active"));
    let receipt = fake.wait_for_delivered(2, Duration::from_secs(5)).await;
    assert!(receipt[1].body.contains("Normal SMS-takst"), "{}", receipt[1].body);
    let history = consent_history(&app, &inv.ws, &inv.anna_invitation).await;
    assert_eq!(history["requests"][0]["status"], "confirmed");
    assert_eq!(history["requests"][0]["confirmed_via"], "sms_reply");
    let confirmed = history["ledger"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "sms_consent_confirmed")
        .expect("ledger evidence of the confirmation");
    assert_eq!(confirmed["payload"]["confirmation"]["message_sid"], "SMlocked0001");
    assert_eq!(confirmed["payload"]["via"], "sms_reply");
    let (_, done) = app.page(&format!("/l/{}/confirm", inv.anna)).await;
    assert!(done.contains("Tak, du er tilmeldt"), "{done}");

    // Bo's locked sign-up expires: a reply then confirms nothing.
    let bo = "+4520998877";
    app.submit_landing(&inv.bo, bo, true, &[]).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    lock_with_wrong_codes(&app, &fake, &inv.bo, bo).await;
    app.with_db(move |c| {
        diesel::update(consent_requests::table.filter(consent_requests::phone.eq(bo)))
            .set(consent_requests::expires_at.eq(optbridge::db::now() - chrono::Duration::minutes(1)))
            .execute(c)
            .unwrap()
    })
    .await;
    app.sms_reply(bo, "JA", "SMlocked0002").await;
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(app.subscription_status(bo).await, None);

    // Bo signs up again and locks it again, then sends STOP: a JA after that confirms nothing.
    assert_eq!(app.submit_landing(&inv.bo, bo, true, &[]).await.0, 303);
    app.drain_outbox(Duration::from_secs(10)).await;
    lock_with_wrong_codes(&app, &fake, &inv.bo, bo).await;
    app.sms_reply(bo, "STOP", "SMlocked0003").await;
    app.sms_reply(bo, "JA", "SMlocked0004").await;
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(app.subscription_status(bo).await, None);
}

async fn bad_form_input_is_refused_and_writes_nothing(backend: Backend) {
    let (app, fake) = twilio_app(backend, |_| {}).await;
    let inv = app.invited().await;
    let cases: [(&str, bool, &[&str], &str); 7] = [
        ("not a number", true, &[], "ligner ikke et gyldigt telefonnummer"),
        ("+46 8 123 456 78", true, &[], "ikke et mobilnummer"),
        ("+45 80 20 30 40", true, &[], "ikke et mobilnummer"),
        ("+49 151 23456789", true, &[], "ikke DE"),
        ("+45 2012345678901234567890", true, &[], "for langt"),
        (ANNA, false, &[], "Sæt flueben"),
        (ANNA, true, &["Made up"], "Vælg emner fra listen"),
    ];
    for (phone, consent, categories, message) in cases {
        let (status, body, _) = app.submit_landing(&inv.anna, phone, consent, categories).await;
        assert_eq!(status, 422, "{phone}");
        assert!(body.contains(message), "{phone}: {message} not in page");
        assert!(
            body.contains(&format!("value=\"{}\"", phone.replace('+', "&#43;")))
                || body.contains(&format!("value=\"{phone}\"")),
            "input is kept"
        );
    }
    // A missing or forged form token: refused before anything is looked at.
    let (status, body, _) = app
        .post_form(&format!("/l/{}", inv.anna), &[("phone", ANNA), ("consent", "yes")])
        .await;
    assert_eq!(status, 403);
    assert!(body.contains("Formularen er udløbet"));
    let (status, _, _) = app
        .post_form(
            &format!("/l/{}", inv.anna),
            &[("csrf", "forged"), ("phone", ANNA), ("consent", "yes")],
        )
        .await;
    assert_eq!(status, 403);
    let bo_csrf = csrf_of(&app, &inv.bo).await;
    let (status, _, _) = app
        .post_form(
            &format!("/l/{}", inv.anna),
            &[("csrf", &bo_csrf), ("phone", ANNA), ("consent", "yes")],
        )
        .await;
    assert_eq!(status, 403, "another link's form token does not fit");

    app.drain_outbox(Duration::from_secs(5)).await;
    let requests = app
        .with_db(|c| {
            consent_requests::table
                .select(consent_requests::id)
                .load::<String>(c)
                .unwrap()
        })
        .await;
    assert!(requests.is_empty());
    assert!(fake.requests().is_empty());
    let submitted: i64 = app
        .with_db(|c| {
            invitations::table
                .filter(invitations::submitted_at.is_not_null())
                .count()
                .get_result(c)
                .unwrap()
        })
        .await;
    assert_eq!(submitted, 0);
}

async fn replayed_posts_and_webhooks_do_nothing_twice(backend: Backend) {
    let (app, fake) = twilio_app(backend, |_| {}).await;
    let inv = app.invited().await;
    let csrf = csrf_of(&app, &inv.anna).await;
    let form = [("csrf", csrf.as_str()), ("phone", ANNA), ("consent", "yes")];
    for _ in 0..3 {
        let (status, _, _) = app.post_form(&format!("/l/{}", inv.anna), &form).await;
        assert_eq!(status, 303);
    }
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(fake.delivered().len(), 1, "one SMS for three identical posts");

    for _ in 0..3 {
        assert_eq!(app.sms_reply(ANNA, "JA", "SMsame").await.status(), 200);
    }
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(
        fake.delivered().len(),
        2,
        "one receipt for a webhook delivered three times"
    );
    let inbound: i64 = app
        .with_db(|c| {
            optbridge::db::schema::inbound_messages::table
                .count()
                .get_result(c)
                .unwrap()
        })
        .await;
    assert_eq!(inbound, 1);
}

async fn webhook_signatures_are_enforced(backend: Backend) {
    let (app, fake) = twilio_app(backend, |_| {}).await;
    let inv = app.invited().await;
    app.submit_landing(&inv.anna, ANNA, true, &[]).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    let public = app
        .settings
        .base_url
        .join("webhooks/twilio/inbound")
        .unwrap()
        .to_string();
    let url = app.url("/webhooks/twilio/inbound");
    let params = [("MessageSid", "SMx"), ("From", ANNA), ("To", FROM), ("Body", "JA")];

    // Signed with the wrong token, for the wrong URL, or not at all: 403, nothing stored.
    assert_eq!(
        post_signed(&app.client, &url, &public, "wrong-token", &params)
            .await
            .status(),
        403
    );
    assert_eq!(
        post_signed(
            &app.client,
            &url,
            "http://evil.example/webhooks/twilio/inbound",
            AUTH,
            &params
        )
        .await
        .status(),
        403
    );
    let unsigned = app.client.post(&url).form(&params).send().await.unwrap();
    assert_eq!(unsigned.status(), 403);
    // Tampered: signed for "NEJ", delivered with "JA".
    let sig = crate::fake_twilio::twilio_signature(
        AUTH,
        &public,
        &[("MessageSid", "SMx"), ("From", ANNA), ("To", FROM), ("Body", "NEJ")],
    );
    let tampered = app
        .client
        .post(&url)
        .header("X-Twilio-Signature", sig)
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(tampered.status(), 403);
    app.drain_outbox(Duration::from_secs(5)).await;
    assert_eq!(app.subscription_status(ANNA).await, None);
    assert_eq!(fake.delivered().len(), 1);
    // Counters are per process and tests run side by side: at least these four.
    assert!(optbridge::metrics::METRICS.webhook_rejected.get() >= 4);
}

async fn status_callbacks_only_move_forward(backend: Backend) {
    let (app, fake) = twilio_app(backend, |_| {}).await;
    let inv = app.invited().await;
    app.submit_landing(&inv.anna, ANNA, true, &[]).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    let sid = fake.delivered()[0].sid.clone().unwrap();
    let public = app
        .settings
        .base_url
        .join("webhooks/twilio/status")
        .unwrap()
        .to_string();
    let url = app.url("/webhooks/twilio/status");
    for status in ["sent", "delivered", "sent", "queued"] {
        let res = post_signed(
            &app.client,
            &url,
            &public,
            AUTH,
            &[("MessageSid", &sid), ("MessageStatus", status)],
        )
        .await;
        assert!(res.status().is_success(), "{status}: {}", res.status());
    }
    let stored: String = app
        .with_db(move |c| {
            sms_messages::table
                .filter(sms_messages::provider_sid.eq(&sid))
                .select(sms_messages::status)
                .first(c)
                .unwrap()
        })
        .await;
    assert_eq!(stored, "delivered");
}

async fn stop_then_start(backend: Backend) {
    let (app, fake) = twilio_app(backend, |_| {}).await;
    let inv = app.invited().await;
    app.submit_landing(&inv.anna, ANNA, true, &[]).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    app.sms_reply(ANNA, "ja", "SM1").await;
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(app.subscription_status(ANNA).await.as_deref(), Some("active"));

    app.sms_reply(ANNA, "Stop.", "SM2").await;
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(app.subscription_status(ANNA).await.as_deref(), Some("withdrawn"));
    let last = fake.delivered().last().unwrap().clone();
    assert!(
        last.body.contains("afmeldt") && last.body.contains("START"),
        "{}",
        last.body
    );
    let history = consent_history(&app, &inv.ws, &inv.anna_invitation).await;
    assert_eq!(history["sms"][0]["withdrawn_via"], "stop_keyword");
    // A new sign-up for a number that sent STOP sends no SMS; the code page (the same for every
    // number) says how to restart.
    let (status, _, _) = app.submit_landing(&inv.anna, ANNA, true, &[]).await;
    assert_eq!(status, 303);
    let (_, body) = app.page(&format!("/l/{}/confirm", inv.anna)).await;
    assert!(body.contains(&format!("send START til {FROM}")), "{body}");
    let before = fake.delivered().len();
    app.drain_outbox(Duration::from_secs(5)).await;
    assert_eq!(fake.delivered().len(), before);

    // START from a number that never sent STOP does nothing; from this one it restores.
    app.sms_reply("+4520998877", "START", "SM3").await;
    app.sms_reply(ANNA, "start", "SM4").await;
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(app.subscription_status(ANNA).await.as_deref(), Some("active"));
    assert!(fake.delivered().last().unwrap().body.contains("Velkommen tilbage"));
    let history = consent_history(&app, &inv.ws, &inv.anna_invitation).await;
    let kinds: Vec<&str> = history["ledger"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "email_permission_imported",
            "sms_consent_requested",
            "sms_consent_confirmed",
            "sms_consent_withdrawn",
            "sms_consent_requested",
            "sms_resubscribed"
        ]
    );
    let opted_out: i64 = app
        .with_db(|c| {
            invitations::table
                .filter(invitations::opted_out_at.is_not_null())
                .count()
                .get_result(c)
                .unwrap()
        })
        .await;
    assert_eq!(opted_out, 1);
}

async fn help_and_unknown_replies(backend: Backend) {
    let (app, fake) = twilio_app(backend, |_| {}).await;
    let inv = app.invited().await;
    app.submit_landing(&inv.anna, ANNA, true, &[]).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    app.sms_reply(ANNA, "hvad er det her?", "SM1").await;
    app.sms_reply(ANNA, "hallo??", "SM2").await;
    app.sms_reply(ANNA, "HJÆLP", "SM3").await;
    app.sms_reply("+4599999999", "hej", "SM4").await;
    app.drain_outbox(Duration::from_secs(10)).await;
    let bodies: Vec<String> = fake.delivered().iter().skip(1).map(|s| s.body.clone()).collect();
    assert_eq!(bodies.len(), 2, "one hint (not two) and one help: {bodies:?}");
    // The two replies are sent in one outbox round, over concurrent requests: in either order.
    assert_eq!(
        bodies.iter().filter(|b| b.contains("Svar JA for at bekræfte")).count(),
        1,
        "{bodies:?}"
    );
    assert_eq!(
        bodies.iter().filter(|b| b.contains("Hjælp og privatliv")).count(),
        1,
        "{bodies:?}"
    );
    assert_eq!(app.subscription_status(ANNA).await, None);
}

async fn one_number_pending_with_two_workspaces(backend: Backend) {
    let (app, fake) = twilio_app(backend, |_| {}).await;
    let first = app.invited().await;
    let second = app.invited().await;
    app.submit_landing(&first.anna, ANNA, true, &[]).await;
    app.submit_landing(&second.anna, ANNA, true, &[]).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(fake.delivered().len(), 2);

    app.sms_reply(ANNA, "JA", "SM1").await;
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(app.subscription_status(ANNA).await, None, "a bare JA cannot say which");
    assert!(fake.delivered().last().unwrap().body.contains("flere ventende"));

    // The code on the page says which: the one sent for the second workspace's request.
    let ws2 = second.ws.id.clone();
    let sid: String = app
        .with_db(move |c| {
            sms_messages::table
                .filter(sms_messages::workspace_id.eq(&ws2))
                .filter(sms_messages::kind.eq("doi"))
                .select(sms_messages::provider_sid.assume_not_null())
                .first(c)
                .unwrap()
        })
        .await;
    let body = fake
        .delivered()
        .into_iter()
        .find(|s| s.sid.as_deref() == Some(&sid))
        .unwrap()
        .body;
    let code: String = body.split("koden ").nth(1).unwrap().chars().take(6).collect();
    let csrf = csrf_of(&app, &second.anna).await;
    let (status, _, _) = app
        .post_form(
            &format!("/l/{}/confirm", second.anna),
            &[("csrf", &csrf), ("code", &code)],
        )
        .await;
    assert_eq!(status, 200);
    let active: Vec<String> = app
        .with_db(|c| {
            sms_subscriptions::table
                .filter(sms_subscriptions::status.eq("active"))
                .select(sms_subscriptions::workspace_id)
                .load(c)
                .unwrap()
        })
        .await;
    assert_eq!(active, vec![second.ws.id.clone()]);
}

async fn provider_faults_are_retried_or_recorded(backend: Backend) {
    let (app, fake) = twilio_app(backend, |_| {}).await;
    fake.add_fault(Some(ANNA), TwilioFault::TooManyRequests { retry_after_secs: 1 }, 1);
    fake.add_fault(Some(ANNA), TwilioFault::ServerError { status: 500 }, 1);
    fake.add_fault(
        Some(ANNA),
        TwilioFault::Delay {
            duration: Duration::from_millis(2500),
        },
        1,
    );
    fake.add_fault(
        Some("+4520998877"),
        TwilioFault::TwilioError {
            status: 400,
            code: 21211,
            message: "Invalid 'To' Phone Number".into(),
        },
        u32::MAX,
    );
    let inv = app.invited().await;
    app.submit_landing(&inv.anna, ANNA, true, &[]).await;
    app.submit_landing(&inv.bo, "+45 20 99 88 77", true, &[]).await;
    let started = std::time::Instant::now();
    app.drain_outbox(Duration::from_secs(30)).await;
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After was honoured");

    let to_anna: Vec<_> = fake.requests().into_iter().filter(|r| r.to == ANNA).collect();
    assert_eq!(
        to_anna.iter().map(|r| r.status).collect::<Vec<_>>(),
        [429, 500, 201, 201]
    );
    let statuses: Vec<(String, String, i32)> = app
        .with_db(|c| {
            sms_messages::table
                .order(sms_messages::phone.asc())
                .select((sms_messages::phone, sms_messages::status, sms_messages::attempts))
                .load(c)
                .unwrap()
        })
        .await;
    assert_eq!(statuses[0].0, ANNA);
    assert_eq!(statuses[0].1, "sent");
    assert_eq!(statuses[0].2, 4, "429, 500, timeout, then sent");
    assert_eq!(
        (statuses[1].1.as_str(), statuses[1].2),
        ("failed", 1),
        "21211 is never retried"
    );
    // Bo's page tells him the SMS could not be sent.
    let (_, bo_page) = app.page(&format!("/l/{}/confirm", inv.bo)).await;
    assert!(bo_page.contains("kunne ikke sende en SMS"), "{bo_page}");
}

async fn abuse_limits_hold(backend: Backend) {
    let (app, _fake) = twilio_app(backend, |a| {
        a.limit_doi_per_token = 2;
        a.limit_doi_per_ip = 3;
        a.doi_resend_secs = 0;
    })
    .await;
    let inv = app.invited().await;
    // Per link: two different numbers, then refused.
    assert_eq!(app.submit_landing(&inv.anna, "+45 20 11 11 11", true, &[]).await.0, 303);
    assert_eq!(app.submit_landing(&inv.anna, "+45 20 22 22 22", true, &[]).await.0, 303);
    let (status, body, _) = app.submit_landing(&inv.anna, "+45 20 33 33 33", true, &[]).await;
    assert_eq!(status, 429);
    assert!(body.contains("Prøv igen senere"));
    // Per IP: the third sign-up from this address (another link) is refused.
    let (status, _, _) = app.submit_landing(&inv.bo, "+45 20 44 44 44", true, &[]).await;
    assert_eq!(status, 303);
    assert_eq!(app.submit_landing(&inv.bo, "+45 20 55 55 55", true, &[]).await.0, 429);

    // Resends: at most three SMS per request in all.
    let csrf = csrf_of(&app, &inv.bo).await;
    let resend = format!("/l/{}/resend", inv.bo);
    let (_, body, _) = app.post_form(&resend, &[("csrf", &csrf)]).await;
    assert!(body.contains("Vi har sendt en ny kode"), "{body}");
    app.post_form(&resend, &[("csrf", &csrf)]).await;
    let (_, body, _) = app.post_form(&resend, &[("csrf", &csrf)]).await;
    assert!(body.contains("ikke sende flere koder"), "{body}");
    // Counters are per process and tests run side by side: check they are exposed and counted.
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for kind in ["token", "ip", "resend"] {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(&format!("optbridge_doi_limit_hits_total{{limit=\"{kind}\"}}")))
            .unwrap_or_else(|| panic!("no {kind} limit metric in {metrics}"));
        assert!(
            line.split_whitespace().last().unwrap().parse::<u64>().unwrap() >= 1,
            "{line}"
        );
    }
}

async fn resend_waits_a_minute_and_replaces_the_code(backend: Backend) {
    let (app, fake) = twilio_app(backend, |_| {}).await;
    let inv = app.invited().await;
    app.submit_landing(&inv.anna, ANNA, true, &[]).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    let csrf = csrf_of(&app, &inv.anna).await;
    let (_, body, _) = app
        .post_form(&format!("/l/{}/resend", inv.anna), &[("csrf", &csrf)])
        .await;
    assert!(body.contains("Vent 6") || body.contains("Vent 5"), "{body}");
    // A minute later (moved back in the database) a new code goes out and the old one fails.
    app.with_db(|c| {
        diesel::update(consent_requests::table)
            .set(consent_requests::last_sms_at.eq(optbridge::db::now() - chrono::Duration::seconds(61)))
            .execute(c)
            .unwrap()
    })
    .await;
    let old = fake.last_code_for(ANNA).unwrap();
    let (_, body, _) = app
        .post_form(&format!("/l/{}/resend", inv.anna), &[("csrf", &csrf)])
        .await;
    assert!(body.contains("Vi har sendt en ny kode"), "{body}");
    app.drain_outbox(Duration::from_secs(10)).await;
    let new = fake.last_code_for(ANNA).unwrap();
    let confirm = format!("/l/{}/confirm", inv.anna);
    if old != new {
        let (status, _, _) = app.post_form(&confirm, &[("csrf", &csrf), ("code", &old)]).await;
        assert_eq!(status, 422, "the replaced code no longer works");
    }
    let (status, _, _) = app.post_form(&confirm, &[("csrf", &csrf), ("code", &new)]).await;
    assert_eq!(status, 200);
}

async fn expired_requests_cannot_be_confirmed(backend: Backend) {
    let (app, fake) = twilio_app(backend, |_| {}).await;
    let inv = app.invited().await;
    app.submit_landing(&inv.anna, ANNA, true, &[]).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    app.with_db(|c| {
        diesel::update(consent_requests::table)
            .set(consent_requests::expires_at.eq(optbridge::db::now() - chrono::Duration::minutes(1)))
            .execute(c)
            .unwrap()
    })
    .await;
    let (_, body) = app.page(&format!("/l/{}/confirm", inv.anna)).await;
    assert!(body.contains("Tilmeldingen er udløbet"), "{body}");
    app.sms_reply(ANNA, "JA", "SM1").await;
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(app.subscription_status(ANNA).await, None);
    // A new sign-up starts over with a new code.
    assert_eq!(app.submit_landing(&inv.anna, ANNA, true, &[]).await.0, 303);
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(fake.delivered().len(), 2);
}

async fn late_retries_wait_for_daytime(backend: Backend) {
    // A window that excludes the present Danish hour.
    let now = chrono::Utc::now();
    let dk_hour = now
        .with_timezone(&optbridge::sms::quiet_hours::utc_offset("DK", now))
        .format("%H")
        .to_string();
    let window = if dk_hour == "00" { "23-24" } else { "00-01" };
    let (app, fake) = twilio_app(backend, move |a| a.quiet_hours_window = window.into()).await;
    let inv = app.invited().await;
    app.submit_landing(&inv.anna, ANNA, true, &[]).await;
    // The SMS was queued 20 minutes ago (the provider was down): no longer a direct reply.
    app.with_db(|c| {
        diesel::update(sms_messages::table)
            .set(sms_messages::created_at.eq(optbridge::db::now() - chrono::Duration::minutes(20)))
            .execute(c)
            .unwrap()
    })
    .await;
    app.dispatch_all().await;
    assert!(fake.requests().is_empty(), "deferred to the recipient's daytime");
    let (status, attempts): (String, i32) = app
        .with_db(|c| {
            sms_messages::table
                .select((sms_messages::status, sms_messages::attempts))
                .first(c)
                .unwrap()
        })
        .await;
    assert_eq!((status.as_str(), attempts), ("queued", 0));
    let run_after: chrono::NaiveDateTime = app
        .with_db(|c| {
            use optbridge::db::schema::outbox_jobs;
            outbox_jobs::table
                .filter(outbox_jobs::kind.eq("sms"))
                .select(outbox_jobs::run_after)
                .first(c)
                .unwrap()
        })
        .await;
    assert!(run_after > optbridge::db::now(), "{run_after}");
}

async fn dev_sms_outbox_walkthrough(backend: Backend) {
    let app = spawn_app(backend).await;
    let inv = app.invited().await;
    app.submit_landing(&inv.anna, ANNA, true, &[]).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    let (status, threads) = app.page("/dev/sms").await;
    assert_eq!(status, 200);
    assert!(threads.contains(ANNA) && threads.contains("Svar JA"), "{threads}");
    let res = app.dev_sms_reply(ANNA, "Ja").await;
    assert_eq!(res.status(), 303);
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(app.subscription_status(ANNA).await.as_deref(), Some("active"));
    let (_, threads) = app.page("/dev/sms").await;
    assert!(
        threads.contains("Tak for din tilmelding"),
        "the receipt shows in the thread"
    );
    // Without Twilio configured the webhooks do not exist.
    assert_eq!(
        app.client
            .post(app.url("/webhooks/twilio/inbound"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

async fn ledger_verify_detects_tampering(backend: Backend) {
    let (app, _fake) = twilio_app(backend, |_| {}).await;
    let inv = app.invited().await;
    app.submit_landing(&inv.anna, ANNA, true, &[]).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    app.sms_reply(ANNA, "JA", "SM1").await;
    app.drain_outbox(Duration::from_secs(10)).await;
    let url = app.database.url.clone();
    let ok = crate::helpers::run_cli(&url, &["ledger", "verify", "--json"]);
    let report = crate::helpers::stdout_json(&ok);
    assert_eq!(report["problems"], json!([]));
    assert!(report["entries"].as_u64().unwrap() >= 10, "{report}");

    // The database refuses edits of the chain itself…
    let refused = app
        .with_db(|c| {
            use optbridge::db::schema::consent_ledger;
            diesel::update(consent_ledger::table.filter(consent_ledger::seq.eq(2)))
                .set(consent_ledger::kind.eq("sms_consent_confirmed"))
                .execute(c)
                .map_err(|e| e.to_string())
        })
        .await;
    assert!(refused.unwrap_err().contains("append-only"));
    // …and when someone edits evidence anyway (a payload), verify names the entry.
    app.with_db(|c| {
        use optbridge::db::schema::consent_ledger;
        diesel::update(consent_ledger::table.filter(consent_ledger::kind.eq("sms_consent_requested")))
            .set(consent_ledger::payload.eq(Some(r#"{"phone":"+4500000000"}"#)))
            .execute(c)
            .unwrap()
    })
    .await;
    let bad = crate::helpers::run_cli(&url, &["ledger", "verify", "--json"]);
    assert!(!bad.status.success(), "verify fails");
    let report: Value = serde_json::from_slice(&bad.stdout).unwrap();
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{report}");
    assert!(problems[0]["problem"].as_str().unwrap().contains("payload was edited"));
}

both_backends!(
    reply_ja_confirms_with_full_evidence,
    code_on_the_page_confirms_and_wrong_codes_lock,
    a_locked_sign_up_is_confirmed_by_reply,
    bad_form_input_is_refused_and_writes_nothing,
    replayed_posts_and_webhooks_do_nothing_twice,
    webhook_signatures_are_enforced,
    status_callbacks_only_move_forward,
    stop_then_start,
    help_and_unknown_replies,
    one_number_pending_with_two_workspaces,
    provider_faults_are_retried_or_recorded,
    abuse_limits_hold,
    resend_waits_a_minute_and_replaces_the_code,
    expired_requests_cannot_be_confirmed,
    late_retries_wait_for_daytime,
    dev_sms_outbox_walkthrough,
    ledger_verify_detects_tampering,
);
