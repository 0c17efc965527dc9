//! The marketer's campaign controls through the API (issue 16): one language per recipient,
//! drafts edited with PATCH, preview, test send, schedule, pause, resume, cancel and their 409s,
//! and the audience shown before sending.

use std::time::Duration;

use diesel::prelude::*;
use optbridge::db::schema::{funnel_events, invitations};
use optbridge::links::LinkPurpose;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, TestWorkspace, both_backends, json, signed_up, spawn_app, spawn_app_with};
use crate::mail_parse::ParsedMail;
use crate::smtp_sink::{Fault, SmtpSink};

async fn app_with_sink(backend: Backend, sink: &SmtpSink) -> TestApp {
    let url = sink.url();
    spawn_app_with(backend, move |a| a.smtp_url = Some(url)).await
}

async fn post(app: &TestApp, ws: &TestWorkspace, path: &str, body: &Value) -> (u16, Value) {
    let res = app.post_json(&ws.token, path, body).await;
    let status = res.status().as_u16();
    (status, json(res).await)
}

async fn status_of(app: &TestApp, ws: &TestWorkspace, campaign: &str) -> String {
    let shown = json(app.get(&ws.token, &format!("/api/v1/campaigns/{campaign}")).await).await;
    shown["status"].as_str().unwrap().to_owned()
}

async fn invitation_count(app: &TestApp, campaign: &str) -> i64 {
    let campaign = campaign.to_owned();
    app.with_db(move |c| {
        invitations::table
            .filter(invitations::campaign_id.eq(&campaign))
            .count()
            .get_result(c)
            .unwrap()
    })
    .await
}

/// A two-locale draft (da, sv) with two variants, each variant's subject in both languages.
async fn two_language_draft(app: &TestApp, ws: &TestWorkspace) -> String {
    let da = app.consent_text(&ws.token, "da").await;
    let sv = app.consent_text(&ws.token, "sv").await;
    app.campaign(
        &ws.token,
        &json!({
            "name": "Two languages", "consent_texts": {"da": da, "sv": sv},
            "subject": {"da": "Vil du have SMS?", "sv": "Vill du ha SMS?"},
            "intro": {"da": "Hør først om udsalg.", "sv": "Hör först om rean."},
            "frequency": {"da": "højst 4 gange om måneden", "sv": "högst 4 gånger i månaden"},
            "variants": [
                {"name": "A"},
                {"name": "B", "subject": {"da": "Udsalg på SMS", "sv": "Rea via SMS"}, "weight": 2}
            ]
        }),
    )
    .await
}

async fn every_audience_locale_needs_its_own_consent_text(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Skobutikken").await;
    let da = app.consent_text(&ws.token, "da").await;
    let sv = app.consent_text(&ws.token, "sv").await;
    let cases = [
        // A Danish text for a Swedish audience: refused, naming the locale.
        (
            json!({"name": "C", "consent_text_id": da, "subject": {"da": "S", "sv": "S"}, "intro": {"da": "I", "sv": "I"},
                   "audience": {"locales": ["da", "sv"]}}),
            "'sv' has no consent text",
        ),
        // A text named for a locale it is not written in.
        (
            json!({"name": "C", "consent_texts": {"da": sv}, "subject": "S", "intro": "I"}),
            "consent_texts.da",
        ),
        // One subject for two languages.
        (
            json!({"name": "C", "consent_texts": {"da": da, "sv": sv}, "subject": "Only Danish", "intro": {"da": "I", "sv": "I"}}),
            "one text per locale",
        ),
        (
            json!({"name": "C", "consent_texts": {"da": da, "sv": sv}, "subject": {"da": "S"}, "intro": {"da": "I", "sv": "I"}}),
            "subject.sv is missing",
        ),
        (
            json!({"name": "C", "consent_texts": {"da": da}, "consent_text_id": da, "subject": "S", "intro": "I"}),
            "not both",
        ),
    ];
    for (body, needle) in cases {
        let (status, answer) = post(&app, &ws, "/api/v1/campaigns", &body).await;
        assert_eq!(status, 422, "{body} → {answer}");
        let err = answer["error"].as_str().unwrap();
        assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    }
    // `consent_text_id` still makes a one-language campaign.
    let one = app
        .campaign(
            &ws.token,
            &json!({"name": "C", "consent_text_id": da, "subject": "S", "intro": "I"}),
        )
        .await;
    let shown = json(app.get(&ws.token, &format!("/api/v1/campaigns/{one}")).await).await;
    assert_eq!(shown["consent_texts"], json!({"da": da}));
    assert_eq!(shown["audience_locales"], json!(["da"]));
}

async fn a_swede_reads_swedish_and_types_a_swedish_number(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ws, campaign) = app.campaign_for_all().await;
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(20)).await;
    let invitation: String = app
        .with_db(|c| {
            invitations::table
                .filter(invitations::email.eq("elsa@example.se"))
                .select(invitations::id)
                .first(c)
                .unwrap()
        })
        .await;
    let link = app
        .keyring
        .sign(LinkPurpose::Landing, &invitation, &campaign, "sv", optbridge::db::now())
        .unwrap();
    let (status, page) = app.page(&format!("/l/{link}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("Hör först om rean."), "the Swedish intro");
    assert!(page.contains("högst 4 gånger i månaden"), "the Swedish frequency");
    assert!(!page.contains("Ja tak, Skobutikken"), "not the Danish consent text");
    assert!(page.contains("value=\"+46 \""), "the phone field starts with +46");
    // A Swedish national number is read as Swedish (+46), not Danish.
    let (status, _, location) = app.submit_landing(&link, "070-123 45 67", true, &[]).await;
    assert_eq!(status, 303, "accepted");
    assert!(location.unwrap().ends_with("/confirm"));
    let phone: String = app
        .with_db(|c| {
            use optbridge::db::schema::consent_requests;
            consent_requests::table
                .select(consent_requests::phone)
                .first(c)
                .unwrap()
        })
        .await;
    assert_eq!(phone, "+46701234567");
}

async fn drafts_are_edited_until_sent(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Skobutikken").await;
    app.import(&ws.token, "email,locale\nanna@example.dk,da\nelsa@example.se,sv\n")
        .await;
    let campaign = two_language_draft(&app, &ws).await;
    let path = format!("/api/v1/campaigns/{campaign}");
    let res = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&ws.token)
        .json(&json!({"name": "Renamed", "subject": {"da": "Nyt emne", "sv": "Ny rubrik"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let edited = json(res).await;
    assert_eq!(edited["name"], "Renamed");
    let subjects: Vec<(String, String, String)> = edited["variant_locales"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["variant"].as_str().unwrap().into(),
                v["locale"].as_str().unwrap().into(),
                v["subject"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        subjects.contains(&("A".into(), "sv".into(), "Ny rubrik".into())),
        "{subjects:?}"
    );
    assert!(
        subjects.contains(&("B".into(), "sv".into(), "Rea via SMS".into())),
        "variant B keeps its own subject: {subjects:?}"
    );
    // An edit is checked like a new campaign.
    let res = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&ws.token)
        .json(&json!({"subject": "Gratis SMS"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);

    // The audience per locale, before sending.
    let shown = json(app.get(&ws.token, &path).await).await;
    assert_eq!(shown["audience_size"], json!({"da": 1, "sv": 1}));

    app.send_campaign(&ws.token, &campaign).await;
    let res = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&ws.token)
        .json(&json!({"name": "Too late"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409, "only drafts change");
    assert!(json(res).await["error"].as_str().unwrap().contains("draft"));
}

async fn the_preview_is_the_email_and_its_links_record_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Skobutikken").await;
    let campaign = two_language_draft(&app, &ws).await;
    let res = app
        .get(
            &ws.token,
            &format!("/api/v1/campaigns/{campaign}/preview?locale=sv&variant=B"),
        )
        .await;
    assert_eq!(res.status(), 200);
    let preview = json(res).await;
    assert_eq!(preview["subject"], "Rea via SMS");
    let text = preview["text"].as_str().unwrap();
    let html = preview["html"].as_str().unwrap();
    assert!(
        text.contains("Hör först om rean.") && text.contains("högst 4 gånger i månaden"),
        "{text}"
    );
    assert!(html.contains("lang=\"sv\""));
    let base = app.settings.base_url.as_str().trim_end_matches('/').to_owned();
    let start = text.find(&format!("{base}/l/")).expect("landing link");
    let link = text[start + base.len()..].split_whitespace().next().unwrap().to_owned();
    let (status, page) = app.page(&link).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("class=\"preview-banner\""),
        "a banner says it is a preview"
    );
    assert!(page.contains("<fieldset disabled"), "the form is switched off");
    assert!(page.contains("value=\"+46 \""));
    // Posting the form anyway is refused, and nothing was recorded.
    let (status, _, _) = app
        .post_form(&link, &[("phone", "+46701234567"), ("consent", "yes")])
        .await;
    assert_eq!(status, 404);
    let events: i64 = app
        .with_db(|c| funnel_events::table.count().get_result(c).unwrap())
        .await;
    assert_eq!(events, 0);
    assert_eq!(status_of(&app, &ws, &campaign).await, "draft");

    let res = app
        .get(&ws.token, &format!("/api/v1/campaigns/{campaign}/preview?locale=nb"))
        .await;
    assert_eq!(res.status(), 422, "nb is not in the audience");
}

async fn test_sends_go_out_marked_and_count_for_nothing(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = app_with_sink(backend, &sink).await;
    let ws = app.create_workspace("Skobutikken").await;
    app.import(&ws.token, "email,locale\nanna@example.dk,da\n").await;
    let campaign = two_language_draft(&app, &ws).await;
    let path = format!("/api/v1/campaigns/{campaign}/test");
    let (status, _) = post(
        &app,
        &ws,
        &path,
        &json!({"email": "marketer@shop.example", "locale": "sv", "variant": "B"}),
    )
    .await;
    assert_eq!(status, 202);
    app.drain_outbox(Duration::from_secs(10)).await;
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].rcpt_to, ["marketer@shop.example"]);
    let mail = ParsedMail::parse(&messages[0].data);
    assert_eq!(mail.header("Subject"), Some("[TEST] Rea via SMS"));
    assert!(mail.text.as_deref().unwrap().contains("Hör först om rean."));
    assert_eq!(
        status_of(&app, &ws, &campaign).await,
        "draft",
        "a test send sends nothing else"
    );
    assert_eq!(invitation_count(&app, &campaign).await, 0, "and is no recipient");

    let (status, answer) = post(&app, &ws, &path, &json!({"email": "not an address"})).await;
    assert_eq!(status, 422, "{answer}");
    // 20 per campaign per hour (the one above included).
    for _ in 1..20 {
        let (status, _) = post(&app, &ws, &path, &json!({"email": "marketer@shop.example"})).await;
        assert_eq!(status, 202);
    }
    let (status, answer) = post(&app, &ws, &path, &json!({"email": "marketer@shop.example"})).await;
    assert_eq!(status, 429, "{answer}");
}

async fn scheduling_waits_and_invalid_changes_are_409(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = app_with_sink(backend, &sink).await;
    let ws = app.create_workspace("Skobutikken").await;
    app.import(&ws.token, "email,locale\nanna@example.dk,da\nbo@example.dk,da\n")
        .await;
    let text = app.consent_text(&ws.token, "da").await;
    let body = json!({"name": "Later", "consent_text_id": text, "subject": "S", "intro": "I"});
    let campaign = app.campaign(&ws.token, &body).await;
    let action = |what: &str| format!("/api/v1/campaigns/{campaign}/{what}");

    // A draft cannot be paused or resumed.
    for what in ["pause", "resume"] {
        let (status, answer) = post(&app, &ws, &action(what), &json!({})).await;
        assert_eq!(status, 409, "{what}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains("draft"), "{answer}");
    }
    let (status, answer) = post(&app, &ws, &action("send"), &json!({"at": "tomorrow"})).await;
    assert_eq!(status, 422, "{answer}");

    let at = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let (status, answer) = post(&app, &ws, &action("send"), &json!({"at": at})).await;
    assert_eq!(status, 202);
    assert_eq!(answer["status"], "scheduled");
    let (status, _) = post(&app, &ws, &action("pause"), &json!({})).await;
    assert_eq!(status, 409, "a scheduled campaign is not sending yet");
    app.dispatch_all().await;
    assert!(sink.messages().is_empty(), "nothing before the time");
    assert_eq!(status_of(&app, &ws, &campaign).await, "scheduled");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(sink.messages().len(), 2);
    assert_eq!(status_of(&app, &ws, &campaign).await, "sent");
    for what in ["pause", "cancel", "resume"] {
        let (status, _) = post(&app, &ws, &action(what), &json!({})).await;
        assert_eq!(status, 409, "{what} after sent");
    }

    // A scheduled campaign can be cancelled: it never starts.
    let later = app.campaign(&ws.token, &body).await;
    let at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let (status, _) = post(
        &app,
        &ws,
        &format!("/api/v1/campaigns/{later}/send"),
        &json!({"at": at}),
    )
    .await;
    assert_eq!(status, 202);
    let (status, answer) = post(&app, &ws, &format!("/api/v1/campaigns/{later}/cancel"), &json!({})).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("cancelled")));
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(invitation_count(&app, &later).await, 0);
    assert_eq!(sink.messages().len(), 2);
    let (status, _) = post(&app, &ws, &format!("/api/v1/campaigns/{later}/send"), &json!({})).await;
    assert_eq!(status, 409, "a cancelled campaign stays cancelled");
}

async fn paused_sends_nothing_until_resumed(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = app_with_sink(backend, &sink).await;
    let (ws, campaign) = app.campaign_for_all().await;
    app.send_campaign(&ws.token, &campaign).await;
    let (status, answer) = post(&app, &ws, &format!("/api/v1/campaigns/{campaign}/pause"), &json!({})).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("paused")));
    // The expansion runs, the sends are held back.
    for _ in 0..3 {
        app.dispatch_all().await;
    }
    assert!(sink.messages().is_empty());
    assert_eq!(invitation_count(&app, &campaign).await, 8);
    assert_eq!(status_of(&app, &ws, &campaign).await, "paused");
    let (status, _) = post(&app, &ws, &format!("/api/v1/campaigns/{campaign}/resume"), &json!({})).await;
    assert_eq!(status, 200);
    app.drain_outbox(Duration::from_secs(20)).await;
    assert_eq!(sink.messages().len(), 8);
    assert_eq!(status_of(&app, &ws, &campaign).await, "sent");
}

/// A workspace with `n` Danish contacts (`kunde000@example.dk` …, in import order) and a
/// one-language draft campaign to all of them.
async fn danish_campaign(app: &TestApp, n: usize) -> (TestWorkspace, String) {
    let ws = app.create_workspace("Skobutikken").await;
    let mut csv = String::from("email,first_name,locale\n");
    for i in 0..n {
        csv.push_str(&format!("kunde{i:03}@example.dk,Kunde,da\n"));
    }
    app.import(&ws.token, &csv).await;
    let da = app.consent_text(&ws.token, "da").await;
    let campaign = app
        .campaign(
            &ws.token,
            &json!({"name": "Stor", "consent_text_id": da, "subject": "Vil du have SMS?", "intro": "Hør først om udsalg."}),
        )
        .await;
    (ws, campaign)
}

/// A batch larger than the sender's load chunk (250 invitations in one round: chunks of 100,
/// 100 and 50, the lanes sending the first while the rest load): a pause holds all of it, and
/// once resumed every recipient gets one message but the ones suppressed after the campaign
/// was queued, in every chunk, who are skipped.
async fn a_batch_loaded_in_chunks_is_held_and_sent_whole(backend: Backend) {
    const N: usize = 250;
    let sink = SmtpSink::start().await;
    let app = app_with_sink(backend, &sink).await;
    let (ws, campaign) = danish_campaign(&app, N).await;
    app.send_campaign(&ws.token, &campaign).await;
    let (status, _) = post(&app, &ws, &format!("/api/v1/campaigns/{campaign}/pause"), &json!({})).await;
    assert_eq!(status, 200);
    for _ in 0..3 {
        app.dispatch_all().await;
    }
    assert!(sink.messages().is_empty(), "a paused batch sends nothing");
    assert_eq!(invitation_count(&app, &campaign).await, N as i64);

    // Suppressed since the campaign was queued: one in each chunk.
    let suppressed = ["kunde007@example.dk", "kunde150@example.dk", "kunde249@example.dk"];
    let id = ws.id.clone();
    app.with_db(move |c| {
        for address in suppressed {
            assert!(
                optbridge::contacts::suppress(c, &id, optbridge::domain::Channel::Email, address, "unsubscribed")
                    .unwrap()
            );
        }
    })
    .await;
    let (status, _) = post(&app, &ws, &format!("/api/v1/campaigns/{campaign}/resume"), &json!({})).await;
    assert_eq!(status, 200);
    app.drain_outbox(Duration::from_secs(30)).await;
    let mut recipients: Vec<String> = sink.messages().into_iter().flat_map(|m| m.rcpt_to).collect();
    recipients.sort();
    let sent = recipients.len();
    recipients.dedup();
    assert_eq!((sent, recipients.len()), (N - 3, N - 3), "each recipient once");
    assert!(suppressed.iter().all(|a| !recipients.iter().any(|r| r == a)));
    let c = campaign.clone();
    let statuses: Vec<String> = app
        .with_db(move |conn| {
            invitations::table
                .filter(invitations::campaign_id.eq(&c))
                .select(invitations::status)
                .load(conn)
                .unwrap()
        })
        .await;
    assert_eq!(statuses.iter().filter(|s| *s == "sent").count(), N - 3);
    assert_eq!(statuses.iter().filter(|s| *s == "skipped").count(), 3);
    assert_eq!(status_of(&app, &ws, &campaign).await, "sent");
}

/// Recipients in the batch that [`interrupted_batch`] sends.
const INTERRUPTED_BATCH: usize = 250;

/// A campaign of one batch of [`INTERRUPTED_BATCH`] sent over one lane, `action` (`pause` or
/// `cancel`) posted while its round waits for the 11th message's answer: the round ends within
/// about a chunk (100) of it. Returns the app, workspace, campaign and sink after the round.
async fn interrupted_batch(backend: Backend, action: &str) -> (TestApp, TestWorkspace, String, SmtpSink) {
    use optbridge::outbox::worker::dispatch_once;
    let sink = SmtpSink::start().await;
    // One lane; the 11th message waits 1.5 s for its answer, long enough to act meanwhile.
    sink.add_fault(
        "kunde010@example.dk",
        Fault::Stall {
            duration: Duration::from_millis(1500),
            times: 1,
        },
    );
    let url = sink.url();
    let app = spawn_app_with(backend, move |a| {
        a.smtp_url = Some(url);
        a.smtp_concurrency = 1;
    })
    .await;
    let (ws, campaign) = danish_campaign(&app, INTERRUPTED_BATCH).await;
    app.send_campaign(&ws.token, &campaign).await;
    assert_eq!(dispatch_once(&app.worker, "expander").await.unwrap(), 1);
    let worker = app.worker.clone();
    let round = tokio::spawn(async move { dispatch_once(&worker, "worker-a").await.unwrap() });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, _) = post(&app, &ws, &format!("/api/v1/campaigns/{campaign}/{action}"), &json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(round.await.unwrap(), 1, "the round had the batch");
    let sent = sink.messages().len();
    assert!(
        (11..2 * 100).contains(&sent),
        "{sent} sent: the round should stop within about a chunk after the {action}"
    );
    (app, ws, campaign, sink)
}

/// A pause during a batch's round stops it within about a chunk: the lanes finish what they
/// hold, the chunk read next sees the pause, the rest of the batch stays queued in it; resumed,
/// every recipient gets exactly one message.
async fn a_pause_stops_a_batch_part_way(backend: Backend) {
    let (app, ws, campaign, sink) = interrupted_batch(backend, "pause").await;
    let sent_before = sink.messages().len();
    let c = campaign.clone();
    let queued: i64 = app
        .with_db(move |conn| {
            invitations::table
                .filter(invitations::campaign_id.eq(&c))
                .filter(invitations::status.eq("queued"))
                .count()
                .get_result(conn)
                .unwrap()
        })
        .await;
    assert_eq!(
        queued,
        (INTERRUPTED_BATCH - sent_before) as i64,
        "the rest waits, queued"
    );
    for _ in 0..3 {
        app.dispatch_all().await;
    }
    assert_eq!(sink.messages().len(), sent_before, "nothing more while paused");

    let (status, _) = post(&app, &ws, &format!("/api/v1/campaigns/{campaign}/resume"), &json!({})).await;
    assert_eq!(status, 200);
    app.drain_outbox(Duration::from_secs(30)).await;
    let mut recipients: Vec<String> = sink.messages().into_iter().flat_map(|m| m.rcpt_to).collect();
    recipients.sort();
    let sent = recipients.len();
    recipients.dedup();
    let n = INTERRUPTED_BATCH;
    assert_eq!((sent, recipients.len()), (n, n), "each recipient once");
    assert_eq!(status_of(&app, &ws, &campaign).await, "sent");
}

/// A cancel during a batch's round ends it within about a chunk, and ends the batch: the chunk
/// read next sees the cancel, the lanes skip what they have not sent, and nothing is left queued
/// or waiting in the outbox (it was put off for `PAUSED_RECHECK_SECS`, as for a pause, and stayed
/// queued until then).
async fn a_cancel_ends_a_batch_part_way(backend: Backend) {
    use optbridge::db::schema::outbox_jobs;
    let (app, ws, campaign, sink) = interrupted_batch(backend, "cancel").await;
    let sent = sink.messages().len();
    let c = campaign.clone();
    let (statuses, jobs) = app
        .with_db(move |conn| {
            let statuses: Vec<String> = invitations::table
                .filter(invitations::campaign_id.eq(&c))
                .select(invitations::status)
                .load(conn)
                .unwrap();
            let jobs: i64 = outbox_jobs::table.count().get_result(conn).unwrap();
            (statuses, jobs)
        })
        .await;
    let count = |status: &str| statuses.iter().filter(|s| *s == status).count();
    assert_eq!(
        (count("sent"), count("skipped"), count("queued")),
        (sent, INTERRUPTED_BATCH - sent, 0),
        "what was not sent is skipped in the same round"
    );
    assert_eq!(jobs, 0, "the batch is finished, not put off");
    app.dispatch_all().await;
    assert_eq!(sink.messages().len(), sent, "nothing more is sent");
    assert_eq!(status_of(&app, &ws, &campaign).await, "cancelled");
}

async fn contacts_with_sms_consent_are_not_asked_again(backend: Backend) {
    let (app, inv, _fake) = signed_up(backend).await;
    let texts = app.consent_texts_for_all(&inv.ws.token).await;
    let per_locale = json!({"da": "S", "nb": "S", "sv": "S", "en": "S"});
    let campaign = app
        .campaign(
            &inv.ws.token,
            &json!({"name": "Again", "consent_texts": texts, "subject": per_locale, "intro": per_locale}),
        )
        .await;
    let shown = json(app.get(&inv.ws.token, &format!("/api/v1/campaigns/{campaign}")).await).await;
    // anna and bo (da) have an active SMS consent; ove (no locale: da) is left.
    assert_eq!(shown["audience_size"]["da"], 1, "{shown}");
    assert_eq!(shown["audience_size"]["nb"], 2, "{shown}");
    app.send_campaign(&inv.ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(20)).await;
    let campaign_id = campaign.clone();
    let invited: Vec<String> = app
        .with_db(move |c| {
            invitations::table
                .filter(invitations::campaign_id.eq(&campaign_id))
                .select(invitations::email)
                .load(c)
                .unwrap()
        })
        .await;
    assert_eq!(invited.len(), 6, "{invited:?}");
    assert!(!invited.iter().any(|e| e == "anna@example.dk" || e == "bo@example.dk"));
}

/// A campaign reads as sent once its audience is queued and none of its invitations waits in the
/// outbox: not while one refused with 451 waits for its retry (a job of its own, whose scope is
/// the campaign), and as soon as that retry is delivered.
async fn a_campaign_is_sending_while_a_retry_waits(backend: Backend) {
    let sink = SmtpSink::start().await;
    sink.add_fault(
        "anna@example.dk",
        Fault::RejectRcpt {
            code: 451,
            times: u32::MAX,
        },
    );
    let app = app_with_sink(backend, &sink).await;
    let (ws, campaign) = app.campaign_for_all().await;
    app.send_campaign(&ws.token, &campaign).await;
    app.dispatch_all().await;
    let waiting: Vec<(String, String)> = app
        .with_db(|c| {
            use optbridge::db::schema::outbox_jobs;
            outbox_jobs::table
                .select((outbox_jobs::kind, outbox_jobs::scope.assume_not_null()))
                .filter(outbox_jobs::scope.is_not_null())
                .load(c)
                .unwrap()
        })
        .await;
    assert_eq!(waiting, vec![("invitation_email".to_owned(), campaign.clone())]);
    assert_eq!(status_of(&app, &ws, &campaign).await, "sending");

    sink.clear_faults();
    app.drain_outbox(Duration::from_secs(20)).await;
    assert!(sink.messages().iter().any(|m| m.rcpt_to[0] == "anna@example.dk"));
    assert_eq!(status_of(&app, &ws, &campaign).await, "sent");
}

both_backends!(
    a_campaign_is_sending_while_a_retry_waits,
    every_audience_locale_needs_its_own_consent_text,
    a_swede_reads_swedish_and_types_a_swedish_number,
    drafts_are_edited_until_sent,
    the_preview_is_the_email_and_its_links_record_nothing,
    test_sends_go_out_marked_and_count_for_nothing,
    scheduling_waits_and_invalid_changes_are_409,
    paused_sends_nothing_until_resumed,
    a_batch_loaded_in_chunks_is_held_and_sent_whole,
    a_pause_stops_a_batch_part_way,
    a_cancel_ends_a_batch_part_way,
    contacts_with_sms_consent_are_not_asked_again,
);
