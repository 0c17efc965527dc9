//! Webhooks out (issue 19): endpoints registered through the API get every event they subscribe
//! to, signed per Standard Webhooks (checked with the specification's Python library), retried
//! with the same `webhook-id` through failures and timeouts, never to private addresses, and
//! nothing is lost when a worker is SIGKILLed.

use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{ANNA, Backend, TestApp, both_backends, json, spawn_app, spawn_app_with, twilio_app};
use crate::webhook_receiver::{Answer, Receiver, verify_independently};

const ALL_EVENTS: [&str; 5] = [
    "consent.confirmed",
    "consent.withdrawn",
    "contact.unsubscribed",
    "contact.bounced",
    "campaign.sent",
];

/// Registers `url` for `events`; returns the endpoint id and its secret.
async fn register(app: &TestApp, token: &str, url: &str, events: &[&str]) -> (String, String) {
    let res = app
        .post_json(token, "/api/v1/webhooks", &json!({"url": url, "events": events}))
        .await;
    assert_eq!(res.status(), 201);
    let body = json(res).await;
    let secret = body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (body["id"].as_str().unwrap().to_owned(), secret)
}

/// The stored deliveries: (id, status, attempts, last_error).
async fn deliveries(app: &TestApp) -> Vec<(String, String, String, i32, Option<String>)> {
    app.with_db(|c| {
        use diesel::prelude::*;
        use optbridge::db::schema::webhook_deliveries as d;
        d::table
            .order(d::created_at.asc())
            .select((d::id, d::event_type, d::status, d::attempts, d::last_error))
            .load(c)
            .unwrap()
    })
    .await
}

/// A consent confirmed by SMS reply reaches the endpoint after a 500 and a timeout, with one
/// `webhook-id` and a signature the reference library accepts; STOP and unsubscribe follow.
async fn events_arrive_signed_through_failures_and_timeouts(backend: Backend) {
    let receiver = Receiver::start(vec![Answer::Status(500), Answer::Hang(Duration::from_secs(14))]).await;
    let (app, _fake) = twilio_app(backend, |a| a.webhook_allow_private = true).await;
    let inv = app.invited().await;
    let (_, secret) = register(&app, &inv.ws.token, &receiver.url(), &ALL_EVENTS).await;

    assert_eq!(app.submit_landing(&inv.anna, ANNA, true, &["Tilbud"]).await.0, 303);
    app.drain_outbox(Duration::from_secs(10)).await;
    app.sms_reply(ANNA, "JA", "SMwh0001").await;
    // The reply is processed, the consent confirmed, the delivery tried three times.
    let started = std::time::Instant::now();
    app.drain_outbox(Duration::from_secs(60)).await;
    let got = receiver.received();
    assert_eq!(got.len(), 3, "500, timeout, accepted: {got:#?}");
    let elapsed_timeout = got[2].at - got[1].at;
    assert!(
        elapsed_timeout >= Duration::from_secs(10) && elapsed_timeout < Duration::from_secs(14),
        "the sender gave up on the hanging receiver after 10 s: {elapsed_timeout:?}"
    );
    eprintln!("webhook delivered on attempt 3 after {:?}", started.elapsed());

    let id = &got[0].id;
    assert!(id.starts_with("msg_"), "{id}");
    assert!(
        got.iter().all(|r| &r.id == id),
        "one webhook-id across attempts: {got:#?}"
    );
    assert!(got.iter().all(|r| r.body == got[0].body), "the same body every attempt");
    assert!(got.iter().all(|r| r.content_type == "application/json"));
    assert_eq!(verify_independently(&secret, &got), vec![true, true, true]);
    // The verifier is not vacuous: a changed body, another secret or another id fail.
    let mut forged = got[2].clone();
    forged.body = forged.body.replace("+45", "+46");
    let mut other_id = got[2].clone();
    other_id.id = "msg_other".into();
    assert_eq!(verify_independently(&secret, &[forged, other_id]), vec![false, false]);
    let (_, another_secret) = register(&app, &inv.ws.token, &receiver.url(), &["campaign.sent"]).await;
    assert_eq!(verify_independently(&another_secret, &got[2..]), vec![false]);

    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["type"], "consent.confirmed");
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    let data = &body["data"];
    assert_eq!(data["phone"], ANNA);
    assert_eq!(data["email"], "anna@example.dk");
    assert_eq!(data["locale"], "da");
    assert_eq!(data["categories"], json!(["Tilbud"]));
    assert_eq!(data["confirmed_via"], "sms_reply");
    assert_eq!(data["consent_text_version"], 1);
    assert_eq!(data["consent_text_sha256"].as_str().unwrap().len(), 64);
    assert!(data["confirmed_at"].as_str().unwrap().ends_with('Z'));
    for key in ["contact_id", "consent_text_id", "campaign_id"] {
        assert!(data[key].is_string(), "{key} in {data}");
    }
    assert!(data.get("external_id").is_some());
    let history = json(
        app.get(
            &inv.ws.token,
            &format!("/api/v1/contacts/{}/consent", data["contact_id"].as_str().unwrap()),
        )
        .await,
    )
    .await;
    assert_eq!(
        history["requests"][0]["consent_text_sha256"],
        data["consent_text_sha256"]
    );

    let stored = deliveries(&app).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0, *id);
    assert_eq!(
        (stored[0].2.as_str(), stored[0].3, stored[0].4.clone()),
        ("delivered", 3, None)
    );

    // STOP withdraws: consent.withdrawn; the email unsubscribe: contact.unsubscribed.
    app.sms_reply(ANNA, "STOP", "SMwh0002").await;
    let unsubscribe = app
        .keyring
        .sign(
            optbridge::links::LinkPurpose::Unsubscribe,
            &inv.anna_invitation,
            data["campaign_id"].as_str().unwrap(),
            "da",
            optbridge::db::now(),
        )
        .unwrap();
    let res = app
        .client
        .post(app.url(&format!("/u/{unsubscribe}")))
        .body("List-Unsubscribe=One-Click")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    app.drain_outbox(Duration::from_secs(20)).await;
    let got = receiver.received();
    let types: Vec<(String, Value)> = got[3..]
        .iter()
        .map(|r| {
            let b: Value = serde_json::from_str(&r.body).unwrap();
            (b["type"].as_str().unwrap().to_owned(), b["data"].clone())
        })
        .collect();
    let withdrawn = &types
        .iter()
        .find(|(t, _)| t == "consent.withdrawn")
        .expect("consent.withdrawn")
        .1;
    assert_eq!(withdrawn["phone"], ANNA);
    assert_eq!(withdrawn["withdrawn_via"], "stop_keyword");
    assert_eq!(withdrawn["consent_text_sha256"], data["consent_text_sha256"]);
    let unsubscribed = &types
        .iter()
        .find(|(t, _)| t == "contact.unsubscribed")
        .expect("contact.unsubscribed")
        .1;
    assert_eq!(unsubscribed["email"], "anna@example.dk");
    assert_eq!(unsubscribed["contact_id"], data["contact_id"]);
    assert_eq!(verify_independently(&secret, &got[3..]), vec![true; got.len() - 3]);
}

/// A delivery that never succeeds is marked failed after the last attempt, with the reason;
/// `410 Gone` fails at once; "send again" re-queues the same delivery.
async fn a_delivery_that_keeps_failing_is_marked_failed(backend: Backend) {
    let receiver = Receiver::start(vec![Answer::Status(503); 3]).await;
    let app = spawn_app_with(backend, |a| {
        a.webhook_allow_private = true;
        a.outbox_max_attempts = 3;
    })
    .await;
    let (ws, campaign) = app.campaign_for_all().await;
    register(&app, &ws.token, &receiver.url(), &["campaign.sent"]).await;
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(20)).await;
    let got = receiver.wait_for(3, Duration::from_secs(1)).await;
    assert_eq!(got.len(), 3, "three attempts, then no more");
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["type"], "campaign.sent");
    assert_eq!(body["data"]["campaign_id"], campaign.as_str());
    assert_eq!(body["data"]["recipients"], 8);
    let stored = deliveries(&app).await;
    assert_eq!(stored.len(), 1);
    let (id, _, status, attempts, error) = stored[0].clone();
    assert_eq!((status.as_str(), attempts), ("failed", 3));
    let error = error.unwrap();
    assert!(
        error.contains("gave up after 3 attempts") && error.contains("503"),
        "{error}"
    );

    // Send again: the same id, delivered now (the receiver's script is used up).
    let ws_id = ws.id.clone();
    let again = id.clone();
    assert!(
        app.with_db(move |c| optbridge::webhooks::send_again(c, &ws_id, &again).unwrap())
            .await
    );
    app.drain_outbox(Duration::from_secs(10)).await;
    let got = receiver.received();
    assert_eq!(got.len(), 4);
    assert_eq!(got[3].id, id);
    let stored = deliveries(&app).await;
    assert_eq!((stored[0].2.as_str(), stored[0].3), ("delivered", 4));

    // 410: the receiver wants no more; no retry.
    let gone = Receiver::start(vec![Answer::Status(410)]).await;
    let (ws2, campaign2) = app.campaign_for_all().await;
    register(&app, &ws2.token, &gone.url(), &["campaign.sent"]).await;
    app.send_campaign(&ws2.token, &campaign2).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(gone.received().len(), 1);
    let stored = deliveries(&app).await;
    let last = stored.last().unwrap();
    assert_eq!((last.2.as_str(), last.3), ("failed", 1));
    assert!(last.4.as_deref().unwrap().contains("410"));
}

/// Private, loopback and link-local URLs are refused at registration, and a name that resolves
/// to one is refused at delivery time too; only `WEBHOOK_ALLOW_PRIVATE=true` lets them through.
async fn private_destinations_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Shop").await;
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://10.0.0.5/hook",
        "http://192.168.1.10/hook",
        "http://172.20.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
    ] {
        let res = app
            .post_json(
                &ws.token,
                "/api/v1/webhooks",
                &json!({"url": url, "events": ["consent.confirmed"]}),
            )
            .await;
        assert_eq!(res.status(), 422, "{url}");
        let error = json(res).await["error"].as_str().unwrap().to_owned();
        assert!(error.contains("WEBHOOK_ALLOW_PRIVATE"), "{url}: {error}");
    }
    for (body, why) in [
        (
            json!({"url": "ftp://example.com/", "events": ["consent.confirmed"]}),
            "https://",
        ),
        (
            json!({"url": "https://u:p@93.184.216.34/", "events": ["consent.confirmed"]}),
            "password",
        ),
        (
            json!({"url": "https://93.184.216.34/", "events": []}),
            "at least one event",
        ),
        (
            json!({"url": "https://93.184.216.34/", "events": ["consent.created"]}),
            "unknown event",
        ),
    ] {
        let res = app.post_json(&ws.token, "/api/v1/webhooks", &body).await;
        assert_eq!(res.status(), 422, "{body}");
        assert!(json(res).await["error"].as_str().unwrap().contains(why), "{body}");
    }
    // A public address is accepted (nothing is sent at registration; no bounce happens below).
    let res = app
        .post_json(
            &ws.token,
            "/api/v1/webhooks",
            &json!({"url": "https://93.184.216.34/hook", "events": ["contact.bounced"]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let listed = json(app.get(&ws.token, "/api/v1/webhooks").await).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["url"], "https://93.184.216.34/hook");
    assert_eq!(listed[0]["events"], json!(["contact.bounced"]));
    assert!(listed[0].get("secret").is_none(), "the secret is shown once: {listed}");

    // DNS rebinding: the endpoint's name resolved to a public address when it was registered
    // and points to this machine now. Written to the database as a registration would have.
    let receiver = Receiver::start(vec![]).await;
    let rebound = receiver.url().replace("127.0.0.1", "localhost");
    let ws_id = ws.id.clone();
    app.with_db(move |c| {
        optbridge::webhooks::create(
            c,
            &Default::default(),
            &ws_id,
            &optbridge::activity::Actor::ApiToken { label: "test".into() },
            &rebound,
            &[optbridge::webhooks::EventType::CampaignSent],
        )
        .unwrap()
    })
    .await;
    // And an IP literal that slipped in the same way.
    let literal = receiver.url();
    let ws_id = ws.id.clone();
    app.with_db(move |c| {
        optbridge::webhooks::create(
            c,
            &Default::default(),
            &ws_id,
            &optbridge::activity::Actor::ApiToken { label: "test".into() },
            &literal,
            &[optbridge::webhooks::EventType::CampaignSent],
        )
        .unwrap()
    })
    .await;
    let ws_id = ws.id.clone();
    app.with_db(move |c| {
        optbridge::db::write_tx(c, |c| {
            optbridge::webhooks::emit(
                c,
                &ws_id,
                &optbridge::webhooks::Event {
                    kind: optbridge::webhooks::EventType::CampaignSent,
                    at: optbridge::db::now(),
                    data: json!({"campaign_id": "c1"}),
                },
            )
        })
        .unwrap()
    })
    .await;
    app.dispatch_all().await;
    assert!(receiver.received().is_empty(), "nothing reached the private address");
    let stored = deliveries(&app).await;
    let private: Vec<_> = stored.iter().filter(|d| d.4.is_some()).collect();
    assert_eq!(private.len(), 2, "{stored:?}");
    for d in private {
        assert!(d.4.as_deref().unwrap().contains("private"), "{d:?}");
    }
}

/// The endpoints of a workspace are its own: another token neither lists nor deletes them, and
/// its events go only to its endpoints.
async fn endpoints_belong_to_their_workspace(backend: Backend) {
    let receiver_a = Receiver::start(vec![]).await;
    let receiver_b = Receiver::start(vec![]).await;
    let app = spawn_app_with(backend, |a| a.webhook_allow_private = true).await;
    let (a, campaign) = app.campaign_for_all().await;
    let b = app.create_workspace("Shop B").await;
    let (hook_a, _) = register(&app, &a.token, &receiver_a.url(), &ALL_EVENTS).await;
    register(&app, &b.token, &receiver_b.url(), &ALL_EVENTS).await;
    assert_eq!(
        json(app.get(&b.token, "/api/v1/webhooks").await)
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let res = app
        .client
        .delete(app.url(&format!("/api/v1/webhooks/{hook_a}")))
        .bearer_auth(&b.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    app.send_campaign(&a.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(receiver_a.received().len(), 1);
    assert!(receiver_b.received().is_empty(), "B hears nothing of A's campaign");
    // A deletes its endpoint: later events are not sent there.
    let res = app
        .client
        .delete(app.url(&format!("/api/v1/webhooks/{hook_a}")))
        .bearer_auth(&a.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(json(app.get(&a.token, "/api/v1/webhooks").await).await, json!([]));
}

/// Worker processes SIGKILLed mid-delivery lose nothing: after a drain every delivery reached
/// the receiver (some twice, within the leases the dead worker held) and is marked delivered.
async fn killed_webhook_workers_lose_nothing(backend: Backend) {
    const EVENTS: usize = 40;
    const BATCH: usize = 5;
    let receiver = Receiver::start(vec![]).await;
    receiver.set_delay(Duration::from_millis(60));
    let app = spawn_app_with(backend, |a| a.webhook_allow_private = true).await;
    let ws = app.create_workspace("Crash").await;
    let (_, secret) = register(&app, &ws.token, &receiver.url(), &["campaign.sent"]).await;
    let ws_id = ws.id.clone();
    app.with_db(move |c| {
        optbridge::db::write_tx(c, |c| {
            for n in 0..EVENTS {
                optbridge::webhooks::emit(
                    c,
                    &ws_id,
                    &optbridge::webhooks::Event {
                        kind: optbridge::webhooks::EventType::CampaignSent,
                        at: optbridge::db::now(),
                        data: json!({"n": n}),
                    },
                )?;
            }
            Ok::<_, optbridge::db::DbError>(())
        })
        .unwrap()
    })
    .await;

    let worker = |drain: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_optbridge"));
        command.arg("worker");
        if drain {
            command.arg("--drain");
        }
        command
            .env("DATABASE_URL", &app.database.url)
            .env("BASE_URL", app.settings.base_url.as_str())
            .env("WEBHOOK_ALLOW_PRIVATE", "true")
            .env("OUTBOX_WORKERS", "1")
            .env("OUTBOX_BATCH", BATCH.to_string())
            .env("OUTBOX_LEASE_SECS", "2")
            .env("OUTBOX_POLL_MS", "50")
            .env("OUTBOX_RETRY_BASE_MS", "20")
            .env("SMTP_CONCURRENCY", "2")
            .env_remove("SMTP_URL")
            .env_remove("SMS_PROVIDER")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        command
    };
    for target in [8, 20] {
        let mut child = worker(false).spawn().expect("start optbridge worker");
        receiver.wait_for(target, Duration::from_secs(60)).await;
        child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix: no cleanup runs
        child.wait().expect("reap");
    }
    assert!(receiver.received().len() < EVENTS, "the kills came before the end");
    tokio::time::sleep(Duration::from_millis(2500)).await; // the dead workers' leases expire
    let mut drain = tokio::process::Command::from(worker(true));
    assert!(drain.status().await.expect("run the drain").success());
    assert_eq!(app.outbox_len().await, 0, "the outbox ends empty");

    let got = receiver.received();
    let mut per_id: HashMap<&str, usize> = HashMap::new();
    for r in &got {
        *per_id.entry(r.id.as_str()).or_default() += 1;
    }
    let stored = deliveries(&app).await;
    let ids: HashSet<&str> = stored.iter().map(|d| d.0.as_str()).collect();
    assert_eq!(ids.len(), EVENTS);
    assert!(
        ids.iter().all(|id| per_id.contains_key(id)),
        "every delivery reached the receiver"
    );
    assert!(stored.iter().all(|d| d.2 == "delivered"), "{stored:?}");
    let duplicates: usize = per_id.values().map(|n| n - 1).sum();
    assert!(duplicates <= 2 * BATCH, "{duplicates} duplicates, bound {}", 2 * BATCH);
    assert!(verify_independently(&secret, &got).into_iter().all(|ok| ok));
    eprintln!("webhook crash test ({backend:?}): {EVENTS} delivered, {duplicates} duplicates after 2 kills");
}

/// The owner's settings page lists endpoints and deliveries with status, attempts and last error,
/// and sends a failed delivery again (same `webhook-id`) from a form with the form token; editors
/// and viewers get 403. Registering through the API is in the activity log.
async fn owners_see_deliveries_and_send_again(backend: Backend) {
    use optbridge::accounts::Role;
    const PASSWORD: &str = "a long enough password";
    let receiver = Receiver::start(vec![Answer::Status(500); 2]).await;
    let app = spawn_app_with(backend, |a| {
        a.webhook_allow_private = true;
        a.outbox_max_attempts = 2;
    })
    .await;
    let (ws, campaign) = app.campaign_for_all().await;
    register(&app, &ws.token, &receiver.url(), &["campaign.sent"]).await;
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    let id = ws.id.clone();
    let logged = app
        .with_db(move |c| {
            for (email, role) in [
                ("owner@shop.example", Role::Owner),
                ("editor@shop.example", Role::Editor),
                ("viewer@shop.example", Role::Viewer),
            ] {
                optbridge::accounts::create_user_with_role(c, &id, email, PASSWORD, role).unwrap();
            }
            optbridge::activity::page(c, &id, None, 20).unwrap()
        })
        .await;
    assert!(
        logged
            .iter()
            .any(|e| e.action == optbridge::activity::Action::WebhookCreated),
        "{logged:?}"
    );
    let session = async |email: &str| {
        let res = app.login(email, PASSWORD).await;
        assert_eq!(res.status(), 303);
        let cookie = crate::helpers::set_cookie(&res, "ob_session").expect("session cookie");
        format!("ob_session={}", crate::helpers::cookie_value(&cookie))
    };
    let get = async |cookie: &str| {
        let res = app
            .client
            .get(app.url("/app/webhooks"))
            .header("Cookie", cookie)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    };
    let delivery = deliveries(&app).await[0].0.clone();
    let send_again = async |cookie: &str, csrf: Option<&str>| {
        let mut form = vec![];
        if let Some(csrf) = csrf {
            form.push(("csrf", csrf));
        }
        app.client
            .post(app.url(&format!("/app/webhooks/deliveries/{delivery}/send-again")))
            .header("Cookie", cookie)
            .form(&form)
            .send()
            .await
            .unwrap()
    };

    let owner = session("owner@shop.example").await;
    let (status, page) = get(&owner).await;
    assert_eq!(status, 200);
    assert!(page.contains(&receiver.url()), "the endpoint is listed");
    assert!(page.contains(&delivery) && page.contains("campaign.sent"));
    assert!(
        page.contains("failed") && page.contains("gave up after 2 attempts"),
        "{page}"
    );
    assert!(!page.contains("<script"), "no JavaScript");
    let csrf = crate::helpers::field(&page, "csrf");

    for who in ["editor@shop.example", "viewer@shop.example"] {
        let cookie = session(who).await;
        assert_eq!(get(&cookie).await.0, 403, "{who} reads no webhook settings");
        assert_eq!(
            send_again(&cookie, Some(&csrf)).await.status(),
            403,
            "{who} sends nothing again"
        );
    }
    assert_eq!(
        send_again(&owner, None).await.status(),
        403,
        "the form token is required"
    );
    assert_eq!(send_again(&owner, Some("forged")).await.status(), 403);
    assert_eq!(receiver.received().len(), 2, "nothing was queued by the refused posts");
    let res = send_again(&owner, Some(&csrf)).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/app/webhooks?queued=1");
    app.drain_outbox(Duration::from_secs(10)).await;
    let got = receiver.received();
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].id, delivery, "sent again with the same webhook-id");
    let (_, page) = get(&owner).await;
    assert!(page.contains("delivered"), "{page}");
    // Another workspace's owner cannot send this delivery again.
    let other = app.create_workspace("Other").await;
    let other_id = other.id.clone();
    app.with_db(move |c| {
        optbridge::accounts::create_user_with_role(c, &other_id, "owner@other.example", PASSWORD, Role::Owner).unwrap()
    })
    .await;
    let stranger = session("owner@other.example").await;
    let (_, their_page) = get(&stranger).await;
    assert!(!their_page.contains(&delivery));
    let their_csrf = crate::helpers::field(&their_page, "csrf");
    assert_eq!(send_again(&stranger, Some(&their_csrf)).await.status(), 404);
}

/// A refusal at RCPT (550) is a hard bounce: `contact.bounced` with the address and the reason,
/// through the one recording path every bounce takes; the address is suppressed and listed.
async fn a_bounce_fires_contact_bounced(backend: Backend) {
    use crate::smtp_sink::{Fault, SmtpSink};
    let sink = SmtpSink::start().await;
    sink.add_fault(
        "anna@example.dk",
        Fault::RejectRcpt {
            code: 550,
            times: u32::MAX,
        },
    );
    let receiver = Receiver::start(vec![]).await;
    let url = sink.url();
    let app = spawn_app_with(backend, move |a| {
        a.webhook_allow_private = true;
        a.smtp_url = Some(url);
    })
    .await;
    let (ws, campaign) = app.campaign_for_all().await;
    let (_, secret) = register(&app, &ws.token, &receiver.url(), &["contact.bounced"]).await;
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(20)).await;
    let got = receiver.received();
    assert_eq!(got.len(), 1, "one bounce, and only the subscribed event: {got:#?}");
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["type"], "contact.bounced");
    assert_eq!(body["data"]["email"], "anna@example.dk");
    assert_eq!(body["data"]["hard"], true);
    assert_eq!(body["data"]["campaign_id"], campaign.as_str());
    assert!(body["data"]["reason"].as_str().unwrap().contains("550"), "{body}");
    assert_eq!(verify_independently(&secret, &got), vec![true]);
    let list = json(app.get(&ws.token, "/api/v1/suppressions").await).await;
    assert_eq!(list["data"][0]["email"], "anna@example.dk");
    let suppressed = json(app.get(&ws.token, "/api/v1/contacts?suppressed=true").await).await;
    assert_eq!(suppressed["data"][0]["email"], "anna@example.dk");
}

/// With `SIGNING_KEY_ENCRYPTION_KEY`, an endpoint's secret is stored sealed (a copy of the
/// database cannot sign webhooks), and deliveries still sign with it.
async fn secrets_are_sealed_at_rest(backend: Backend) {
    let receiver = Receiver::start(vec![]).await;
    let key = optbridge::crypto::EncryptionKey::random().to_base64();
    let app = spawn_app_with(backend, move |a| {
        a.webhook_allow_private = true;
        a.signing_key_encryption_key = Some(key);
    })
    .await;
    let (ws, campaign) = app.campaign_for_all().await;
    let (_, secret) = register(&app, &ws.token, &receiver.url(), &["campaign.sent"]).await;
    let stored: String = app
        .with_db(|c| {
            use diesel::prelude::*;
            use optbridge::db::schema::webhook_endpoints as e;
            e::table.select(e::secret).first(c).unwrap()
        })
        .await;
    assert!(stored.starts_with("v1:"), "sealed: {stored}");
    let key_part = secret.trim_start_matches("whsec_");
    assert!(!stored.contains(key_part), "the secret is not in the database in clear");
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(verify_independently(&secret, &got), vec![true]);
}

both_backends!(
    secrets_are_sealed_at_rest,
    a_bounce_fires_contact_bounced,
    owners_see_deliveries_and_send_again,
    events_arrive_signed_through_failures_and_timeouts,
    a_delivery_that_keeps_failing_is_marked_failed,
    private_destinations_are_refused,
    endpoints_belong_to_their_workspace,
    killed_webhook_workers_lose_nothing,
);

/// The webhook page in a real browser: accessible (axe) at desktop and phone width, and its
/// "send again" form works without JavaScript.
#[tokio::test]
async fn browser_shows_the_webhook_page_accessibly() {
    const PASSWORD: &str = "a long enough password";
    let Some(browser) = crate::browser::Browser::start().await else {
        eprintln!("skipped: no browser");
        return;
    };
    let receiver = Receiver::start(vec![Answer::Status(500)]).await;
    let app = spawn_app_with(Backend::Sqlite, |a| {
        a.webhook_allow_private = true;
        a.outbox_max_attempts = 1;
    })
    .await;
    let (ws, campaign) = app.campaign_for_all().await;
    register(&app, &ws.token, &receiver.url(), &["campaign.sent"]).await;
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    let id = ws.id.clone();
    app.with_db(move |c| optbridge::accounts::create_user(c, &id, "owner@shop.example", PASSWORD).unwrap())
        .await;

    browser.goto(&app.url("/app/login")).await;
    browser.fill("#email", "owner@shop.example").await;
    browser.fill("#password", PASSWORD).await;
    browser.submit("button[type=submit]").await;
    browser.goto(&app.url("/app/webhooks")).await;
    assert_eq!(browser.text("h1").await, "Webhooks");
    assert!(browser.source().await.contains("the endpoint answered 500"));
    browser.assert_accessible("the webhook page").await;
    browser.resize(375, 800).await;
    browser.assert_accessible("the webhook page at phone width").await;
    browser.submit("td form button").await;
    assert!(browser.current_url().await.ends_with("/app/webhooks?queued=1"));
    browser.assert_accessible("the webhook page after send again").await;
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(receiver.received().len(), 2, "sent again");
    browser
        .screenshot(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots/dashboard-webhooks.png"))
        .await;
    browser.quit().await;
}
