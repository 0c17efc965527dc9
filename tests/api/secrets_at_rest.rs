//! Finding (issue 15, item 9): a copy of the database was enough to forge links (the signing
//! secrets were stored in clear) and held every code sent (in `sms_messages.body`).

use std::time::Duration;

use diesel::prelude::*;
use optbridge::crypto::EncryptionKey;
use optbridge::db::schema::{signing_keys, sms_messages};
use optbridge::links::{Keyring, LinkPurpose};
use optbridge::signing::KeyEncryption;

use crate::fake_twilio::TwilioFault;
use crate::helpers::{ANNA, Backend, TestApp, both_backends, field, spawn_app, start_instance, twilio_app};

/// What the `signing_keys.secret` column holds.
async fn stored_secrets(app: &TestApp) -> Vec<String> {
    app.with_db(|c| signing_keys::table.select(signing_keys::secret).load(c).unwrap())
        .await
}

async fn status_of(address: &str, path: &str) -> u16 {
    reqwest::get(format!("{address}{path}"))
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn signing_keys_are_encrypted_at_rest(backend: Backend) {
    // An instance that ran without SIGNING_KEY_ENCRYPTION_KEY: the secrets are in clear.
    let app = spawn_app(backend).await;
    let inv = app.invited().await;
    let clear = stored_secrets(&app).await;
    assert!(clear.iter().all(|s| s.len() == 43), "{clear:?}");
    let url = app.database.url.clone();
    let (k1, k2) = (EncryptionKey::random(), EncryptionKey::random());
    let with = |current: &EncryptionKey, old: Option<&EncryptionKey>| {
        let (current, old) = (current.to_base64(), old.map(EncryptionKey::to_base64));
        move |a: &mut optbridge::config::ConfigArgs| {
            a.signing_key_encryption_key = Some(current);
            a.signing_key_encryption_key_old = old;
        }
    };

    // Restarted with the key: the stored secrets are encrypted, links sent before still work.
    let restarted = start_instance(&url, with(&k1, None))
        .await
        .expect("starts with the key");
    let sealed = stored_secrets(&app).await;
    assert_eq!(sealed.len(), clear.len());
    for (stored, secret) in sealed.iter().zip(&clear) {
        assert!(stored.starts_with("v1:"), "{stored}");
        assert!(
            sealed.iter().all(|s| !s.contains(secret.as_str())),
            "no clear secret remains"
        );
    }
    assert_eq!(status_of(&restarted, &format!("/l/{}", inv.anna)).await, 200);

    // A new key made while the encryption key is set is stored encrypted too.
    let encryption = KeyEncryption {
        current: Some(k1.clone()),
        previous: None,
    };
    let rotated = encryption.clone();
    app.with_db(move |c| optbridge::signing::rotate(c, &rotated).unwrap())
        .await;
    assert!(stored_secrets(&app).await.iter().all(|s| s.starts_with("v1:")));
    let db = app.db.clone();
    let ring = tokio::task::spawn_blocking(move || Keyring::load(db, Duration::from_secs(86_400), encryption))
        .await
        .unwrap()
        .expect("the key opens every secret");
    let campaign: String = app
        .with_db({
            let invitation = inv.anna_invitation.clone();
            move |c| {
                optbridge::db::schema::invitations::table
                    .find(invitation)
                    .select(optbridge::db::schema::invitations::campaign_id)
                    .first(c)
                    .unwrap()
            }
        })
        .await;
    let after_rotation = ring
        .sign(
            LinkPurpose::Landing,
            &inv.anna_invitation,
            &campaign,
            "da",
            optbridge::db::now(),
        )
        .unwrap();

    // Without the key, or with another one, nothing starts: it cannot sign or check a link.
    let missing = start_instance(&url, |_| {}).await.expect_err("refused without the key");
    assert!(
        missing
            .to_string()
            .contains("is stored encrypted: set SIGNING_KEY_ENCRYPTION_KEY"),
        "{missing}"
    );
    let wrong = start_instance(&url, with(&k2, None))
        .await
        .expect_err("refused with a wrong key");
    assert!(
        wrong
            .to_string()
            .contains("SIGNING_KEY_ENCRYPTION_KEY does not decrypt"),
        "{wrong}"
    );
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_optbridge"))
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .env("SIGNING_KEY_ENCRYPTION_KEY", k2.to_base64())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!cli.status.success());
    assert!(
        String::from_utf8_lossy(&cli.stderr).contains("does not decrypt link-signing key"),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );

    // Changing the encryption key: the new one with the old one beside it re-encrypts every
    // secret; then the new one alone is enough and the old one no longer opens anything.
    let before = stored_secrets(&app).await;
    start_instance(&url, with(&k2, Some(&k1))).await.expect("re-encrypts");
    let reencrypted = stored_secrets(&app).await;
    assert!(reencrypted.iter().all(|s| s.starts_with("v1:") && !before.contains(s)));
    let after = start_instance(&url, with(&k2, None)).await.expect("the new key alone");
    assert_eq!(
        status_of(&after, &format!("/l/{}", inv.anna)).await,
        200,
        "a link signed before the encryption"
    );
    assert_eq!(
        status_of(&after, &format!("/l/{after_rotation}")).await,
        200,
        "signed since"
    );
    assert!(
        start_instance(&url, with(&k1, None)).await.is_err(),
        "the old key is retired"
    );
}

async fn codes_are_not_kept_once_sent(backend: Backend) {
    let (app, fake) = twilio_app(backend, |a| a.doi_resend_secs = 0).await;
    // The first try fails: the code must survive until the retry sends it.
    fake.add_fault(Some(ANNA), TwilioFault::ServerError { status: 503 }, 1);
    let inv = app.invited().await;
    assert_eq!(app.submit_landing(&inv.anna, ANNA, true, &[]).await.0, 303);
    let queued: Vec<(String, Option<String>)> = app
        .with_db(|c| {
            sms_messages::table
                .select((sms_messages::body, sms_messages::doi_code))
                .load(c)
                .unwrap()
        })
        .await;
    assert_eq!(queued.len(), 1);
    assert!(queued[0].0.contains("koden ******."), "{}", queued[0].0);
    assert!(queued[0].1.as_ref().is_some_and(|c| c.len() == 6), "kept until sent");

    app.drain_outbox(Duration::from_secs(10)).await;
    let first = fake.last_code_for(ANNA).expect("a code reached the phone");
    let tries: Vec<String> = fake.requests().into_iter().map(|r| r.body).collect();
    assert_eq!(tries.len(), 2, "{tries:?}");
    assert_eq!(tries[0], tries[1], "the retry carries the same code");

    // The code again (a fresh one), then confirm with it on the page.
    let csrf = field(&app.page(&format!("/l/{}/confirm", inv.anna)).await.1, "csrf");
    app.post_form(&format!("/l/{}/resend", inv.anna), &[("csrf", &csrf)])
        .await;
    app.drain_outbox(Duration::from_secs(10)).await;
    let second = fake.last_code_for(ANNA).unwrap();
    let (status, page, _) = app
        .post_form(
            &format!("/l/{}/confirm", inv.anna),
            &[("csrf", &csrf), ("code", &second)],
        )
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("Tak, du er tilmeldt"), "{page}");
    app.drain_outbox(Duration::from_secs(10)).await;

    // The phone got both codes; the database keeps neither, in no column of the messages.
    let rows: Vec<(String, Option<String>, Option<String>)> = app
        .with_db(|c| {
            sms_messages::table
                .select((sms_messages::body, sms_messages::doi_code, sms_messages::error))
                .load(c)
                .unwrap()
        })
        .await;
    assert_eq!(rows.len(), 3, "two codes and the receipt");
    for (body, code, error) in &rows {
        for sent in [&first, &second] {
            assert!(!body.contains(sent.as_str()), "{body}");
            assert!(!error.as_deref().unwrap_or_default().contains(sent.as_str()));
        }
        assert_eq!(code, &None);
    }
}

both_backends!(signing_keys_are_encrypted_at_rest, codes_are_not_kept_once_sent);
