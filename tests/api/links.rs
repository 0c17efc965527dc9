//! Signed links: the landing page, the open pixel, one-click unsubscribe, and bad tokens.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use diesel::prelude::*;
use optbridge::db::schema::{funnel_events, invitations};
use optbridge::links::{Keyring, LinkPurpose};
use serde_json::json;

use crate::helpers::{Backend, TestApp, TestWorkspace, both_backends, spawn_app};

/// A sent campaign and one of its invitations: (workspace, invitation id, campaign id, locale).
async fn sent_invitation(app: &TestApp) -> (TestWorkspace, String, String, String) {
    let (ws, campaign) = app.campaign_for_all().await;
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    let (id, locale): (String, String) = app
        .with_db(|c| {
            invitations::table
                .filter(invitations::email.eq("anna@example.dk"))
                .select((invitations::id, invitations::locale))
                .first(c)
                .unwrap()
        })
        .await;
    (ws, id, campaign, locale)
}

fn sign(app: &TestApp, purpose: LinkPurpose, invitation: &str, campaign: &str) -> String {
    app.keyring
        .sign(purpose, invitation, campaign, "da", optbridge::db::now())
        .unwrap()
}

async fn get(app: &TestApp, path: &str) -> (u16, String, reqwest::header::HeaderMap) {
    let res = app
        .client
        .get(app.url(path))
        .header("Accept-Language", "da")
        .header(
            "User-Agent",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148",
        )
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, res.text().await.unwrap(), headers)
}

fn funnel_metric(metric: &'static str) -> impl Fn(&mut optbridge::db::DbConn) -> i64 + Clone + Send + Sync + 'static {
    move |c| {
        use optbridge::db::schema::funnel_counts;
        funnel_counts::table
            .filter(funnel_counts::metric.eq(metric))
            .select(funnel_counts::count)
            .load::<i64>(c)
            .unwrap()
            .iter()
            .sum()
    }
}

async fn landing_get_shows_an_unticked_form_and_records_only_a_click(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_ws, invitation, campaign, _) = sent_invitation(&app).await;
    let token = sign(&app, LinkPurpose::Landing, &invitation, &campaign);
    let (status, page, headers) = get(&app, &format!("/l/{token}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["referrer-policy"], "no-referrer",
        "the token must not leak by Referer"
    );
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    assert!(page.contains("Få Skobutikken på SMS"), "Danish page");
    assert!(page.contains(r#"name="consent" value="yes""#));
    assert!(!page.contains(" checked"), "nothing is pre-ticked");
    assert!(page.contains(r#"name="csrf""#));
    assert!(
        page.contains(r#"value="+45 ""#),
        "the phone field starts with the workspace's calling code"
    );
    let text_sha: String = app
        .with_db(|c| {
            use optbridge::db::schema::consent_texts;
            consent_texts::table.select(consent_texts::sha256).first(c).unwrap()
        })
        .await;
    assert!(
        page.contains(&format!(r#"data-sha256="{text_sha}""#)),
        "the exact version is shown"
    );
    assert!(page.contains("Jeg kan altid trække mit samtykke tilbage ved at svare STOP."));

    let inv = invitation.clone();
    app.eventually("the click is recorded", move |c| {
        invitations::table
            .find(&inv)
            .select(invitations::clicked_at.is_not_null())
            .first::<bool>(c)
            .unwrap()
    })
    .await;
    let inv = invitation.clone();
    let (opened, submitted, clicks): (bool, bool, i32) = app
        .with_db(move |c| {
            invitations::table
                .find(&inv)
                .select((
                    invitations::opened_at.is_not_null(),
                    invitations::submitted_at.is_not_null(),
                    invitations::click_count,
                ))
                .first(c)
                .unwrap()
        })
        .await;
    assert!(opened, "a click implies an open");
    assert!(!submitted, "GET never changes consent state");
    assert_eq!(clicks, 1);
    assert_eq!(app.with_db(funnel_metric("clicked")).await, 1);
}

async fn opens_count_recipients_once_and_tell_machines_apart(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_ws, anna, campaign, _) = sent_invitation(&app).await;
    let bo: String = app
        .with_db(|c| {
            invitations::table
                .filter(invitations::email.eq("bo@example.dk"))
                .select(invitations::id)
                .first(c)
                .unwrap()
        })
        .await;
    let anna_pixel = sign(&app, LinkPurpose::Open, &anna, &campaign);
    for _ in 0..5 {
        let (status, _, headers) = get(&app, &format!("/o/{anna_pixel}")).await;
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "image/gif");
        assert!(headers["cache-control"].to_str().unwrap().contains("no-store"));
    }
    // Apple Mail Privacy Protection: fetched by Apple's proxy, nobody read it.
    let bo_pixel = sign(&app, LinkPurpose::Open, &bo, &campaign);
    let res = app
        .client
        .get(app.url(&format!("/o/{bo_pixel}")))
        .header("User-Agent", "Mozilla/5.0")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    app.eventually("six opens written", |c| {
        funnel_events::table
            .filter(funnel_events::kind.eq("opened"))
            .count()
            .get_result::<i64>(c)
            .unwrap()
            == 6
    })
    .await;
    assert_eq!(app.with_db(funnel_metric("opened")).await, 2, "distinct recipients");
    assert_eq!(
        app.with_db(funnel_metric("opened_human")).await,
        1,
        "the proxy open is not human"
    );
    let counts: i32 = app
        .with_db(move |c| {
            invitations::table
                .find(&anna)
                .select(invitations::open_count)
                .first(c)
                .unwrap()
        })
        .await;
    assert_eq!(counts, 5);
}

/// Forged, `alg: none`, wrong purpose, expired, unknown key, malformed: one identical 404 page.
async fn bad_links_all_get_the_same_404(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_ws, invitation, campaign, _) = sent_invitation(&app).await;
    let good = sign(&app, LinkPurpose::Landing, &invitation, &campaign);
    let parts: Vec<&str> = good.split('.').collect();

    let forged = format!("{}.{}.{}", parts[0], parts[1], "A".repeat(parts[2].len()));
    let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let none_header = URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT", "kid": header["kid"]}).to_string());
    let alg_none = format!("{none_header}.{}.", parts[1]);
    let wrong_purpose = sign(&app, LinkPurpose::Open, &invitation, &campaign);
    let expired = app
        .keyring
        .sign(
            LinkPurpose::Landing,
            &invitation,
            &campaign,
            "da",
            optbridge::db::now() - chrono::Duration::days(31),
        )
        .unwrap();
    let unknown_kid = {
        let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        let h = jsonwebtoken::Header {
            kid: Some("k-unknown".into()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        };
        jsonwebtoken::encode(
            &h,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(b"someone else's secret"),
        )
        .unwrap()
    };
    let tampered_claims = {
        let mut claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        claims["sub"] = json!("another-invitation");
        format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            parts[2]
        )
    };

    let (status, reference, _) = get(&app, "/l/not-a-token").await;
    assert_eq!(status, 404);
    for (name, token) in [
        ("forged signature", forged),
        ("alg none", alg_none),
        ("wrong purpose", wrong_purpose),
        ("expired", expired),
        ("unknown kid", unknown_kid),
        ("tampered claims", tampered_claims),
        ("empty-ish", "x".to_owned()),
    ] {
        for prefix in ["l", "u"] {
            let (status, body, _) = get(&app, &format!("/{prefix}/{token}")).await;
            assert_eq!(status, 404, "{name} on /{prefix}/");
            assert_eq!(body, reference, "{name}: the page must not say why");
        }
        let (status, _, headers) = get(&app, &format!("/o/{token}")).await;
        assert_eq!(
            (status, headers["content-type"].to_str().unwrap()),
            (200, "image/gif"),
            "{name}"
        );
    }
    let (status, _, _) = get(&app, &format!("/l/{good}")).await;
    assert_eq!(status, 200, "the genuine link still works");
}

async fn links_signed_before_a_rotation_keep_working(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_ws, invitation, campaign, _) = sent_invitation(&app).await;
    let before = sign(&app, LinkPurpose::Landing, &invitation, &campaign);
    let new_kid = app
        .with_db(|c| optbridge::signing::rotate(c, &Default::default()).unwrap())
        .await;

    // A process that loaded the keys after the rotation signs with the new key; the server
    // learns it on first sight.
    let db = app.db.clone();
    let fresh = tokio::task::spawn_blocking(move || {
        Keyring::load(db, Duration::from_secs(30 * 86_400), Default::default()).unwrap()
    })
    .await
    .unwrap();
    let after = fresh
        .sign(LinkPurpose::Landing, &invitation, &campaign, "da", optbridge::db::now())
        .unwrap();
    let header = jsonwebtoken::decode_header(&after).unwrap();
    // A compact link names its key by the key's short alias.
    assert_eq!(header.kid, Some(optbridge::links::kid_alias(&new_kid)));
    tokio::time::sleep(Duration::from_secs(5)).await; // the server reloads at most every 5 s
    assert_eq!(get(&app, &format!("/l/{after}")).await.0, 200, "new key");
    assert_eq!(
        get(&app, &format!("/l/{before}")).await.0,
        200,
        "retired key, link not expired"
    );
}

async fn one_click_unsubscribe_suppresses_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ws, invitation, campaign, _) = sent_invitation(&app).await;
    let token = sign(&app, LinkPurpose::Unsubscribe, &invitation, &campaign);

    let (status, page, _) = get(&app, &format!("/u/{token}")).await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"method="post""#));
    let ws_id = ws.id.clone();
    let suppressed = move |c: &mut optbridge::db::DbConn| {
        optbridge::contacts::is_suppressed(c, &ws_id, optbridge::domain::Channel::Email, "anna@example.dk").unwrap()
    };
    assert!(!app.with_db(suppressed.clone()).await, "GET changes nothing");

    // RFC 8058: the mail client posts this body, with no cookie and no form token.
    for _ in 0..2 {
        let res = app
            .client
            .post(app.url(&format!("/u/{token}")))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    assert!(app.with_db(suppressed).await);
    assert_eq!(app.with_db(funnel_metric("unsubscribed")).await, 1, "idempotent");
    let inv = invitation.clone();
    let events: Vec<String> = app
        .with_db(move |c| {
            optbridge::funnel::tracking::events_of(c, &inv)
                .unwrap()
                .into_iter()
                .map(|e| e.0)
                .collect()
        })
        .await;
    assert_eq!(events.iter().filter(|k| *k == "unsubscribed").count(), 1, "{events:?}");
    // The send is the invitation row's sent_at, read as the first event; no event row holds it.
    assert_eq!(events.first().map(String::as_str), Some("sent"), "{events:?}");
    assert_eq!(events.iter().filter(|k| *k == "sent").count(), 1, "{events:?}");
    let inv = invitation.clone();
    let stored_sent: i64 = app
        .with_db(move |c| {
            funnel_events::table
                .filter(funnel_events::invitation_id.eq(&inv))
                .filter(funnel_events::kind.eq("sent"))
                .count()
                .get_result(c)
                .unwrap()
        })
        .await;
    assert_eq!(stored_sent, 0);

    // The next campaign does not write to anna again.
    let text = app.consent_text(&ws.token, "da").await;
    let next = app
        .campaign(
            &ws.token,
            &json!({"name": "Next", "consent_text_id": text, "subject": "S", "intro": "I"}),
        )
        .await;
    app.send_campaign(&ws.token, &next).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    let anna_invited: i64 = app
        .with_db(move |c| {
            invitations::table
                .filter(invitations::campaign_id.eq(&next))
                .filter(invitations::email.eq("anna@example.dk"))
                .count()
                .get_result(c)
                .unwrap()
        })
        .await;
    assert_eq!(anna_invited, 0);
}

/// Migration 2026-12-09-000001 takes the foreign keys off `invitations` (SQLite: by rebuilding the
/// table). Down and up again on a database with a sent invitation and a sign-up from it: every
/// row stays, and `consent_requests` still refers to the invitations table that replaced the
/// old one (an unknown invitation is refused).
async fn the_invitation_keys_migration_keeps_rows_and_references(backend: Backend) {
    use diesel_migrations::{FileBasedMigrations, MigrationHarness};
    use optbridge::db::DbConn;
    use optbridge::db::schema::consent_requests;
    let app = spawn_app(backend).await;
    let (_ws, invitation, campaign, _) = sent_invitation(&app).await;
    let link = sign(&app, LinkPurpose::Landing, &invitation, &campaign);
    assert_eq!(app.submit_landing(&link, "+4520123456", true, &[]).await.0, 303);
    let counts = |c: &mut DbConn| -> (i64, i64) {
        (
            invitations::table.count().get_result(c).unwrap(),
            consent_requests::table
                .filter(consent_requests::invitation_id.is_not_null())
                .count()
                .get_result(c)
                .unwrap(),
        )
    };
    let before = app.with_db(counts).await;
    assert_eq!(before.1, 1, "the sign-up refers to its invitation");
    let after = app
        .with_db(move |c| {
            let dir = |name| format!("{}/migrations/{name}", env!("CARGO_MANIFEST_DIR"));
            // Later migrations go down first, down to this one.
            let mut reverted: Vec<String> = Vec::new();
            while reverted.last().map(String::as_str) != Some("20261209000001") {
                assert!(reverted.len() < 10, "not reverted: {reverted:?}");
                reverted.push(
                    match &mut *c {
                        DbConn::Sqlite(c) => c
                            .revert_last_migration(FileBasedMigrations::from_path(dir("sqlite")).unwrap())
                            .map(|v| v.to_string()),
                        DbConn::Pg(c) => c
                            .revert_last_migration(FileBasedMigrations::from_path(dir("postgres")).unwrap())
                            .map(|v| v.to_string()),
                    }
                    .unwrap(),
                );
            }
            assert_eq!(counts(c), before, "down keeps every row");
            optbridge::db::run_migrations(c).unwrap();
            counts(c)
        })
        .await;
    assert_eq!(after, before, "up keeps every row");
    let refused = app
        .with_db(|c| {
            diesel::update(consent_requests::table)
                .set(consent_requests::invitation_id.eq("no-such-invitation"))
                .execute(c)
        })
        .await;
    assert!(refused.is_err(), "{refused:?}");
}

both_backends!(
    the_invitation_keys_migration_keeps_rows_and_references,
    landing_get_shows_an_unticked_form_and_records_only_a_click,
    opens_count_recipients_once_and_tell_machines_apart,
    bad_links_all_get_the_same_404,
    links_signed_before_a_rotation_keep_working,
    one_click_unsubscribe_suppresses_once,
);
