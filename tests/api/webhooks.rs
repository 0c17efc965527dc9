//! Malformed calls to Twilio's webhooks: refused with a 4xx, nothing stored, and the server keeps
//! answering. (The form decoding and signature check are property-tested in
//! `src/sms/twilio_signature.rs`; this is the same through HTTP.)

use diesel::prelude::*;
use optbridge::db::schema::inbound_messages;

use crate::fake_twilio::{post_signed, twilio_signature};
use crate::helpers::{ANNA, AUTH, Backend, FROM, SID, TestApp, both_backends, twilio_app};

async fn post_raw(
    app: &TestApp,
    path: &str,
    content_type: &str,
    signature: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> u16 {
    let mut req = app
        .client
        .post(app.url(path))
        .header(reqwest::header::CONTENT_TYPE, content_type);
    if let Some(signature) = signature {
        req = req.header("X-Twilio-Signature", signature);
    }
    let res = req
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    res.status().as_u16()
}

async fn inbound_count(app: &TestApp) -> i64 {
    app.with_db(|c| inbound_messages::table.count().get_result(c).unwrap())
        .await
}

async fn malformed_bodies_are_refused_and_the_server_keeps_answering(backend: Backend) {
    let (app, _fake) = twilio_app(backend, |_| {}).await;
    const FORM: &str = "application/x-www-form-urlencoded";
    let rejected_before = optbridge::metrics::METRICS.webhook_rejected.get();

    for path in ["/webhooks/twilio/inbound", "/webhooks/twilio/status"] {
        let public = app.settings.base_url.join(&path[1..]).unwrap().to_string();
        // Percent escapes that are not UTF-8, a lone '%', bad hex, empty pairs, raw bytes.
        let garbage: &[&[u8]] = &[
            b"Body=%FF%FE%C3&From=%C3%28&To=%E2%82",
            b"MessageSid=%&From=%ZZ&&=&=%",
            b"\xff\xfe\x00MessageSid=SM1\x00",
            b"",
        ];
        for body in garbage {
            for signature in [None, Some("garbage"), Some("0/KCTR6DLpKmkAf8muzZqo1nDgQ=")] {
                let status = post_raw(&app, path, FORM, signature, body.to_vec()).await;
                assert_eq!(status, 403, "{path} {body:?} signature {signature:?}");
            }
        }
        // Signed correctly but for other fields than those sent.
        let signed_for_other = twilio_signature(AUTH, &public, &[("MessageSid", "SM1"), ("From", ANNA)]);
        let status = post_raw(
            &app,
            path,
            FORM,
            Some(&signed_for_other),
            "MessageSid=SM1&From=%2B4520123457",
        )
        .await;
        assert_eq!(status, 403, "{path}: tampered value");

        // JSON instead of a form: read as a form it is one odd field, and the signature (here
        // Twilio's for the same fields as a form) does not match it.
        let json = format!(r#"{{"MessageSid":"SMjson","From":"{ANNA}","To":"{FROM}","Body":"JA"}}"#);
        let as_form = [("MessageSid", "SMjson"), ("From", ANNA), ("To", FROM), ("Body", "JA")];
        let status = post_raw(
            &app,
            path,
            "application/json",
            Some(&twilio_signature(AUTH, &public, &as_form)),
            json,
        )
        .await;
        assert_eq!(status, 403, "{path}: JSON body");

        // A megabyte, correctly signed: over the body limit before any signature check.
        let huge = "a".repeat(1 << 20);
        let fields = [
            ("MessageSid", "SMhuge"),
            ("From", ANNA),
            ("To", FROM),
            ("Body", huge.as_str()),
        ];
        let status = post_signed(&app.client, &app.url(path), &public, AUTH, &fields)
            .await
            .status();
        assert_eq!(status, 413, "{path}: 1 MB body");

        // Correctly signed, but without the fields the endpoint needs.
        let status = post_signed(
            &app.client,
            &app.url(path),
            &public,
            AUTH,
            &[("Body", "JA"), ("AccountSid", SID)],
        )
        .await
        .status();
        assert_eq!(status, 400, "{path}: missing fields");
    }
    assert_eq!(inbound_count(&app).await, 0, "nothing malformed was stored");
    assert!(optbridge::metrics::METRICS.webhook_rejected.get() >= rejected_before + 2 * 14);

    // Still serving: health, and a proper reply with odd text: a NUL (which PostgreSQL cannot
    // store: dropped, rather than a 503 on every retry), U+FFFD, a repeated field (the first counts).
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let public = app
        .settings
        .base_url
        .join("webhooks/twilio/inbound")
        .unwrap()
        .to_string();
    let fields = [
        ("MessageSid", "SMok"),
        ("From", ANNA),
        ("To", FROM),
        ("Body", "JA\u{0}\u{fffd} tak"),
        ("Body", "second"),
    ];
    let res = post_signed(
        &app.client,
        &app.url("/webhooks/twilio/inbound"),
        &public,
        AUTH,
        &fields,
    )
    .await;
    assert_eq!(res.status(), 200);
    let stored: String = app
        .with_db(|c| {
            inbound_messages::table
                .filter(inbound_messages::message_sid.eq("SMok"))
                .select(inbound_messages::body)
                .first(c)
                .unwrap()
        })
        .await;
    assert_eq!(stored, "JA\u{fffd} tak");
}

both_backends!(malformed_bodies_are_refused_and_the_server_keeps_answering);
