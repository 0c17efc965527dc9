//! Concurrent requests against one sign-up, one number, one link or one message: the attempt
//! limit, the sign-up limits and the delivery statuses hold when the requests arrive at once
//! (PostgreSQL runs them side by side; SQLite serializes writers, the same tests must pass there).

use std::time::Duration;

use diesel::prelude::*;
use futures_util::future::join_all;
use optbridge::consent::doi::ConsentRequestStatus;
use optbridge::db::schema::{consent_requests, sms_messages, sms_subscriptions};
use optbridge::sms::outbound::{self, SmsKind, SmsStatus};

use crate::fake_twilio::post_signed;
use crate::helpers::{ANNA, AUTH, Backend, TestApp, both_backends, field, twilio_app};

/// Database connections enough for many of the concurrent requests to overlap.
const POOL: u32 = 16;

async fn csrf_of(app: &TestApp, token: &str) -> String {
    field(&app.page(&format!("/l/{token}")).await.1, "csrf")
}

/// A number in `0..n` from the operating system's random source.
fn random_below(n: usize) -> usize {
    let r = u64::from_be_bytes(optbridge::crypto::random_bytes::<8>());
    usize::try_from(r % n as u64).unwrap()
}

fn shuffle<T>(items: &mut [T]) {
    for i in (1..items.len()).rev() {
        items.swap(i, random_below(i + 1));
    }
}

/// The double-opt-in SMS to `phone` recorded by the app (queued or sent).
async fn code_sms_to(app: &TestApp, phone: &'static str) -> i64 {
    app.with_db(move |c| {
        sms_messages::table
            .filter(sms_messages::kind.eq(SmsKind::DoiRequest))
            .filter(sms_messages::phone.eq(phone))
            .count()
            .get_result(c)
            .unwrap()
    })
    .await
}

async fn all_code_sms(app: &TestApp) -> i64 {
    app.with_db(|c| {
        sms_messages::table
            .filter(sms_messages::kind.eq(SmsKind::DoiRequest))
            .count()
            .get_result(c)
            .unwrap()
    })
    .await
}

/// 39 wrong codes and the right one posted at once to one sign-up: at most five codes are ever
/// compared, and the sign-up ends either confirmed (the right code among those five) or locked,
/// with the subscription active exactly when it is confirmed.
async fn concurrent_code_guesses_stop_at_the_attempt_limit(backend: Backend) {
    let (app, fake) = twilio_app(backend, |a| a.database_pool_size = Some(POOL)).await;
    let inv = app.invited().await;
    assert_eq!(app.submit_landing(&inv.anna, ANNA, true, &[]).await.0, 303);
    app.drain_outbox(Duration::from_secs(10)).await;
    let code = fake.last_code_for(ANNA).expect("the code SMS");
    let csrf = csrf_of(&app, &inv.anna).await;
    let confirm = format!("/l/{}/confirm", inv.anna);

    // 39 distinct wrong codes (steps of 25,013 never wrap onto the code), the right one among them.
    let right: u32 = code.parse().unwrap();
    let mut guesses: Vec<String> = (1..=39)
        .map(|n| format!("{:06}", (right + n * 25_013) % 1_000_000))
        .collect();
    guesses.insert(random_below(40), code.clone());
    let answers = join_all(guesses.iter().map(|g| async {
        app.post_form(&confirm, &[("csrf", csrf.as_str()), ("code", g.as_str())])
            .await
    }))
    .await;

    // 422 answers a wrong code that was compared; its page names the attempts left, unless a
    // concurrent guess locked the sign-up before the page was rendered.
    let (mut wrong, mut attempts_left) = (0, Vec::new());
    let (mut confirmed, mut locked) = (0, 0);
    for (status, body, _) in &answers {
        match status {
            422 => {
                wrong += 1;
                let left = body.split("Du har ").nth(1).and_then(|rest| rest.split(' ').next());
                if let Some(n) = left {
                    attempts_left.push(n.parse::<i32>().unwrap());
                }
            }
            200 if body.contains("Tak, du er tilmeldt") => confirmed += 1,
            200 if body.contains("For mange forkerte koder") => locked += 1,
            // Nothing waits for a code any more: the sign-up was confirmed.
            303 => {}
            _ => panic!("unexpected answer {status}: {body}"),
        }
    }
    let request = inv.anna_invitation.clone();
    let (status, attempts): (ConsentRequestStatus, i32) = app
        .with_db(move |c| {
            consent_requests::table
                .filter(consent_requests::invitation_id.eq(&request))
                .select((consent_requests::status, consent_requests::code_attempts))
                .first(c)
                .unwrap()
        })
        .await;
    let subscription = app.subscription_status(ANNA).await;

    // Each wrong code compared counted one attempt down from four: no two said the same.
    assert!(wrong <= 4, "{wrong} wrong codes were compared and answered 'try again'");
    attempts_left.sort_unstable();
    let mut distinct = attempts_left.clone();
    distinct.dedup();
    assert_eq!(attempts_left, distinct, "attempts left, as answered");
    assert!(attempts_left.iter().all(|n| (1..=4).contains(n)), "{attempts_left:?}");
    assert!(confirmed <= 1, "confirmed {confirmed} times");
    match status {
        ConsentRequestStatus::Confirmed => {
            assert_eq!(confirmed, 1, "confirmed, so one answer said so");
            assert_eq!(
                attempts as usize, wrong,
                "the right code came after the wrong ones counted"
            );
            assert!(wrong <= 4, "the right code was among the first five compared");
            assert_eq!(subscription.as_deref(), Some("active"));
        }
        ConsentRequestStatus::Locked => {
            assert_eq!(confirmed, 0, "a locked sign-up never confirmed by code");
            assert_eq!(attempts, 5);
            assert_eq!(wrong, 4, "four wrong codes, then the fifth locked it");
            assert!(locked >= 1);
            assert_eq!(subscription, None, "no consent from a locked sign-up");
        }
        other => panic!("the sign-up ended {other}"),
    }
}

/// Eight sign-ups, each confirmed by a JA reply while five wrong codes arrive on its page: each
/// ends either confirmed with an active subscription or locked without one, never locked with an
/// active subscription.
async fn a_reply_racing_wrong_codes_leaves_each_sign_up_consistent(backend: Backend) {
    const PEOPLE: usize = 8;
    let (app, _fake) = twilio_app(backend, |a| {
        a.database_pool_size = Some(POOL);
        a.limit_doi_per_ip = 1000;
    })
    .await;
    let (_ws, links) = app.invited_many(PEOPLE).await;
    let phones: Vec<String> = (0..PEOPLE).map(|i| format!("+452033440{i}")).collect();
    for (link, phone) in links.iter().zip(&phones) {
        assert_eq!(app.submit_landing(link, phone, true, &[]).await.0, 303);
    }
    app.drain_outbox(Duration::from_secs(10)).await;
    let mut guesses = Vec::new();
    for link in &links {
        let csrf = csrf_of(&app, link).await;
        for n in 0..5 {
            // Wrong unless by a one-in-200,000 chance (then confirmed by code: still consistent).
            guesses.push((
                format!("/l/{link}/confirm"),
                csrf.clone(),
                format!("{n}{n}{n}{n}{n}{n}"),
            ));
        }
    }
    for (i, phone) in phones.iter().enumerate() {
        assert_eq!(
            app.sms_reply(phone, "JA", &format!("SMrace{i:028}")).await.status(),
            200
        );
    }
    shuffle(&mut guesses);
    let codes = join_all(guesses.iter().map(|(path, csrf, code)| async {
        app.post_form(path, &[("csrf", csrf.as_str()), ("code", code.as_str())])
            .await
    }));
    let ((), _) = tokio::join!(app.drain_outbox(Duration::from_secs(20)), codes);

    let rows: Vec<(String, ConsentRequestStatus, Option<String>)> = app
        .with_db(|c| {
            consent_requests::table
                .left_join(sms_subscriptions::table.on(sms_subscriptions::consent_request_id.eq(consent_requests::id)))
                .select((
                    consent_requests::phone,
                    consent_requests::status,
                    sms_subscriptions::status.nullable(),
                ))
                .load(c)
                .unwrap()
        })
        .await;
    assert_eq!(rows.len(), PEOPLE);
    for (phone, status, subscription) in rows {
        match status {
            ConsentRequestStatus::Confirmed => assert_eq!(subscription.as_deref(), Some("active"), "{phone}"),
            ConsentRequestStatus::Locked => assert_eq!(subscription, None, "{phone}: locked yet subscribed"),
            other => panic!("{phone}: the sign-up ended {other}, its subscription {subscription:?}"),
        }
    }
}

/// One number entered through 30 links at once: exactly `LIMIT_DOI_PER_PHONE` code SMS.
async fn one_number_through_many_links_at_once_gets_the_phone_limit(backend: Backend) {
    let (app, _fake) = twilio_app(backend, |a| {
        a.database_pool_size = Some(POOL);
        // Every request comes from 127.0.0.1: only the number's limit is under test.
        a.limit_doi_per_ip = 1000;
    })
    .await;
    let (_ws, links) = app.invited_many(30).await;
    let answers = join_all(links.iter().map(|l| app.submit_landing(l, ANNA, true, &[]))).await;
    for (status, body, _) in &answers {
        assert!([303, 429].contains(status), "{status}: {body}");
    }
    assert_eq!(code_sms_to(&app, ANNA).await, 3, "LIMIT_DOI_PER_PHONE is 3");
    assert_eq!(answers.iter().filter(|a| a.0 == 303).count(), 3);
}

/// One link used for 30 numbers at once: exactly `LIMIT_DOI_PER_TOKEN` code SMS.
async fn one_link_for_many_numbers_at_once_gets_the_link_limit(backend: Backend) {
    let (app, _fake) = twilio_app(backend, |a| {
        a.database_pool_size = Some(POOL);
        a.limit_doi_per_ip = 1000;
    })
    .await;
    let inv = app.invited().await;
    let phones: Vec<String> = (0..30).map(|i| format!("+45 20 11 22 {i:02}")).collect();
    let answers = join_all(phones.iter().map(|p| app.submit_landing(&inv.anna, p, true, &[]))).await;
    for (status, body, _) in &answers {
        assert!([303, 429].contains(status), "{status}: {body}");
    }
    assert_eq!(all_code_sms(&app).await, 3, "LIMIT_DOI_PER_TOKEN is 3");
}

/// One number signed up through links of two workspaces, then resends on both pages at once:
/// every code SMS counts against the number, so it gets `LIMIT_DOI_PER_PHONE` in all.
async fn resends_through_two_links_count_against_the_phone_limit(backend: Backend) {
    let (app, fake) = twilio_app(backend, |a| {
        a.database_pool_size = Some(POOL);
        a.doi_resend_secs = 0;
    })
    .await;
    let first = app.invited().await;
    let second = app.invited().await;
    assert_eq!(app.submit_landing(&first.anna, ANNA, true, &[]).await.0, 303);
    assert_eq!(app.submit_landing(&second.anna, ANNA, true, &[]).await.0, 303);
    let mut resends = Vec::new();
    for link in [&first.anna, &second.anna] {
        let csrf = csrf_of(&app, link).await;
        for _ in 0..5 {
            resends.push((format!("/l/{link}/resend"), csrf.clone()));
        }
    }
    let answers = join_all(
        resends
            .iter()
            .map(|(path, csrf)| async { app.post_form(path, &[("csrf", csrf.as_str())]).await }),
    )
    .await;
    for (status, body, _) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert!(
            body.contains("Vi har sendt en ny kode") || body.contains("ikke sende flere koder"),
            "{body}"
        );
    }
    assert_eq!(code_sms_to(&app, ANNA).await, 3, "LIMIT_DOI_PER_PHONE is 3");
    app.drain_outbox(Duration::from_secs(10)).await;
    let received = fake.delivered().iter().filter(|s| s.to == ANNA).count();
    assert_eq!(received, 3, "the phone got three codes");
}

/// 150 messages, each getting `sending`, `sent` and `delivered` callbacks at once in random
/// order: every one ends `delivered`.
async fn concurrent_status_callbacks_never_move_back(backend: Backend) {
    const MESSAGES: usize = 150;
    let (app, _fake) = twilio_app(backend, |a| a.database_pool_size = Some(POOL)).await;
    let ws = app.create_workspace("Skobutikken").await;
    // The app records `sent` when Twilio accepts a message; Twilio's own states before that
    // (`accepted`) are staged here so the callbacks race from below `sent`.
    let sids: Vec<String> = app
        .with_db(move |c| {
            (0..MESSAGES)
                .map(|i| {
                    let id = outbound::queue(
                        c,
                        outbound::NewSms {
                            workspace_id: &ws.id,
                            consent_request_id: None,
                            kind: SmsKind::KeywordReply,
                            phone: ANNA,
                            country: "DK",
                            body: "Skobutikken: hej",
                            not_before: optbridge::db::now(),
                        },
                    )
                    .unwrap();
                    let sid = format!("SM{i:032}");
                    diesel::update(sms_messages::table.find(&id))
                        .set((
                            sms_messages::provider_sid.eq(&sid),
                            sms_messages::status.eq(SmsStatus::Accepted),
                        ))
                        .execute(c)
                        .unwrap();
                    sid
                })
                .collect()
        })
        .await;
    let public = app
        .settings
        .base_url
        .join("webhooks/twilio/status")
        .unwrap()
        .to_string();
    let url = app.url("/webhooks/twilio/status");
    let mut callbacks: Vec<(&str, &str)> = sids
        .iter()
        .flat_map(|sid| ["sending", "sent", "delivered"].map(|status| (sid.as_str(), status)))
        .collect();
    shuffle(&mut callbacks);
    let answers = join_all(callbacks.iter().map(|&(sid, status)| {
        let (client, url, public) = (&app.client, &url, &public);
        async move {
            post_signed(
                client,
                url,
                public,
                AUTH,
                &[("MessageSid", sid), ("MessageStatus", status)],
            )
            .await
        }
    }))
    .await;
    for res in &answers {
        assert_eq!(res.status(), 204);
    }
    let statuses: Vec<SmsStatus> = app
        .with_db(|c| {
            sms_messages::table
                .filter(sms_messages::provider_sid.is_not_null())
                .select(sms_messages::status)
                .load(c)
                .unwrap()
        })
        .await;
    assert_eq!(statuses.len(), MESSAGES);
    let behind = statuses.iter().filter(|s| **s != SmsStatus::Delivered).count();
    assert_eq!(behind, 0, "{behind} of {MESSAGES} messages ended below `delivered`");
}

both_backends!(
    concurrent_code_guesses_stop_at_the_attempt_limit,
    a_reply_racing_wrong_codes_leaves_each_sign_up_consistent,
    one_number_through_many_links_at_once_gets_the_phone_limit,
    one_link_for_many_numbers_at_once_gets_the_link_limit,
    resends_through_two_links_count_against_the_phone_limit,
    concurrent_status_callbacks_never_move_back,
);
