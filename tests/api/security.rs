//! Security properties across the whole service: headers on every HTML page, secrets never in
//! the logs, API tokens, passwords and sessions only hashed at rest.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use diesel::prelude::*;
use optbridge::db::schema::invitations;
use optbridge::links::LinkPurpose;

use crate::helpers::{Backend, FROM, SID, TestApp, both_backends, dump, field, spawn_app_with};

const PASSWORD: &str = "correct horse battery";

/// Links of anna's invitation: landing, unsubscribe.
async fn links(app: &TestApp) -> (String, String) {
    let (inv, campaign): (String, String) = app
        .with_db(|c| {
            invitations::table
                .filter(invitations::email.eq("anna@example.dk"))
                .select((invitations::id, invitations::campaign_id))
                .first(c)
                .unwrap()
        })
        .await;
    let sign = |purpose| {
        app.keyring
            .sign(purpose, &inv, &campaign, "da", optbridge::db::now())
            .unwrap()
    };
    (sign(LinkPurpose::Landing), sign(LinkPurpose::Unsubscribe))
}

async fn security_headers_on_every_page(backend: Backend) {
    let app = spawn_app_with(backend, |a| {
        a.base_url = Some("https://optin.shop.example".into());
        a.dev_outboxes = true; // a test instance behind a (pretend) public https address
    })
    .await;
    let (ws, campaign) = app.campaign_for_all().await;
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    let (landing, unsubscribe) = links(&app).await;
    assert_eq!(app.submit_landing(&landing, "+45 20 12 34 56", true, &[]).await.0, 303);
    let id = ws.id.clone();
    app.with_db(move |c| optbridge::accounts::create_user(c, &id, "m@shop.example", PASSWORD).unwrap())
        .await;
    let session = {
        let res = app.login("m@shop.example", PASSWORD).await;
        assert_eq!(res.status(), 303);
        res.headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .find(|c| c.starts_with("ob_session="))
            .unwrap()
    };
    let contact: String = app
        .with_db(|c| {
            invitations::table
                .filter(invitations::email.eq("anna@example.dk"))
                .select(invitations::contact_id)
                .first(c)
                .unwrap()
        })
        .await;

    // (path, carries a secret token in its URL)
    let pages = [
        (format!("/l/{landing}"), true),
        (format!("/l/{landing}/confirm"), true),
        (format!("/u/{unsubscribe}"), true),
        ("/l/not-a-token".to_owned(), true),
        ("/no/such/page".to_owned(), false),
        ("/app/login".to_owned(), false),
        ("/app".to_owned(), false),
        (format!("/app/campaigns/{campaign}"), false),
        ("/app/consent-texts".to_owned(), false),
        ("/app/contacts?q=anna".to_owned(), false),
        (format!("/app/contacts/{contact}"), false),
        ("/app/suppressions".to_owned(), false),
        ("/dev/mail".to_owned(), false),
        ("/dev/sms".to_owned(), false),
    ];
    for (path, token_page) in &pages {
        let res = app
            .client
            .get(app.url(path))
            .header("Cookie", &session)
            .send()
            .await
            .unwrap();
        let h = res.headers().clone();
        let get = |name: &str| h.get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        assert!(
            get("content-type").starts_with("text/html"),
            "{path}: {}",
            get("content-type")
        );
        let csp = get("content-security-policy");
        assert!(csp.contains("default-src 'none'"), "{path}: CSP {csp:?}");
        assert!(
            !csp.contains("unsafe-inline") || !csp.contains("script-src"),
            "{path}: inline script allowed: {csp}"
        );
        assert!(
            csp.contains("frame-ancestors 'none'") || get("x-frame-options") == "DENY",
            "{path}: may be framed"
        );
        assert_eq!(get("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(get("strict-transport-security"), "max-age=31536000", "{path}: HSTS");
        if *token_page {
            assert_eq!(get("referrer-policy"), "no-referrer", "{path}: the token could leak");
            assert!(get("cache-control").contains("no-store"), "{path}");
        }
        if path.starts_with("/app/") && path != "/app/login" {
            assert!(
                get("cache-control").contains("no-store"),
                "{path}: personal data cached"
            );
        }
        let body = res.text().await.unwrap();
        assert!(!body.contains("<script"), "{path}: has a script");
    }
    // JSON answers get nosniff and HSTS too.
    let res = app.get(&ws.token, "/api/v1/workspace").await;
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(res.headers()["strict-transport-security"], "max-age=31536000");
}

/// Without https there is no HSTS header (it would pin a plain-http development host).
async fn no_hsts_on_plain_http(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let res = app.client.get(app.url("/app/login")).send().await.unwrap();
    assert!(res.headers().get("strict-transport-security").is_none());
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
}

/// A real `optbridge serve` with every log line on (debug, JSON): using the API token, link
/// tokens, the dashboard password and session, and a signed webhook never puts one of those
/// secrets into the log; and the database holds API tokens, passwords and sessions only hashed.
async fn secrets_are_never_logged_or_stored_in_clear(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (ws, campaign) = app.campaign_for_all().await;
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    let (landing, unsubscribe) = links(&app).await;
    let id = ws.id.clone();
    app.with_db(move |c| optbridge::accounts::create_user(c, &id, "m@shop.example", PASSWORD).unwrap())
        .await;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let auth_token = "twilio-secret-auth-token-0123";
    let mut server = Command::new(env!("CARGO_BIN_EXE_optbridge"))
        .args(["serve", "--no-workers"])
        .env("DATABASE_URL", &app.database.url)
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("BASE_URL", &base)
        .env("RUST_LOG", "debug")
        .env("LOG_FORMAT", "json")
        .env("SMS_PROVIDER", "twilio")
        .env("TWILIO_ACCOUNT_SID", SID)
        .env("TWILIO_AUTH_TOKEN", auth_token)
        .env("TWILIO_FROM", FROM)
        .env("TWILIO_API_BASE", "http://127.0.0.1:9")
        .env_remove("SMTP_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for _ in 0..100 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let status = |res: reqwest::Response| res.status().as_u16();
    assert_eq!(
        status(
            client
                .get(format!("{base}/api/v1/workspace"))
                .bearer_auth(&ws.token)
                .send()
                .await
                .unwrap()
        ),
        200
    );
    assert_eq!(
        status(
            client
                .get(format!("{base}/api/v1/workspace"))
                .bearer_auth("wrong-token")
                .send()
                .await
                .unwrap()
        ),
        401
    );
    assert_eq!(
        status(client.get(format!("{base}/l/{landing}")).send().await.unwrap()),
        200
    );
    assert_eq!(
        status(client.get(format!("{base}/u/{unsubscribe}")).send().await.unwrap()),
        200
    );
    assert_eq!(
        status(client.get(format!("{base}/l/{landing}x")).send().await.unwrap()),
        404
    );
    // Dashboard login and a page with the session.
    let page = client.get(format!("{base}/app/login")).send().await.unwrap();
    let login_cookie = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let csrf = field(&page.text().await.unwrap(), "csrf");
    let res = client
        .post(format!("{base}/app/login"))
        .header("Cookie", &login_cookie)
        .form(&[("email", "m@shop.example"), ("password", PASSWORD), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let session = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("ob_session="))
        .unwrap();
    let session_value = session.trim_start_matches("ob_session=").to_owned();
    assert_eq!(
        status(
            client
                .get(format!("{base}/app"))
                .header("Cookie", &session)
                .send()
                .await
                .unwrap()
        ),
        200
    );
    // A signed webhook, and one with a bad signature.
    let public = format!("{base}/webhooks/twilio/inbound");
    let params = [
        ("MessageSid", "SMsec0001"),
        ("From", "+4520123456"),
        ("To", FROM),
        ("Body", "hej"),
    ];
    let signature = crate::fake_twilio::twilio_signature(auth_token, &public, &params);
    let res = client
        .post(&public)
        .header("X-Twilio-Signature", &signature)
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = client
        .post(&public)
        .header("X-Twilio-Signature", "forged")
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    server.kill().unwrap();
    let mut log = String::new();
    server.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    server.wait().unwrap();
    assert!(
        log.contains("\"level\":\"DEBUG\""),
        "debug logging was on: {}",
        &log[..log.len().min(500)]
    );
    assert!(
        log.contains(r#""route":"/l/{token}""#),
        "requests were logged by route pattern: {log}"
    );
    for (name, secret) in [
        ("API token", ws.token.as_str()),
        ("landing token", landing.as_str()),
        ("unsubscribe token", unsubscribe.as_str()),
        ("password", PASSWORD),
        ("session cookie", session_value.as_str()),
        ("login form token", csrf.as_str()),
        ("Twilio auth token", auth_token),
        ("webhook signature", signature.as_str()),
    ] {
        assert!(!log.contains(secret), "the {name} is in the log");
    }

    // At rest: hashes only.
    let dump = app.with_db(dump).await;
    for (name, secret) in [
        ("API token", ws.token.as_str()),
        ("password", PASSWORD),
        ("session cookie", session_value.as_str()),
    ] {
        assert!(!dump.contains(secret), "the {name} is stored in clear");
    }
    assert!(dump.contains("$argon2id$"), "the password is an argon2id hash");
}

/// A NUL character (which PostgreSQL cannot store or even compare) in any input is a clear
/// 4xx on both backends, never a 500: in path ids and query strings, JSON text fields and the
/// login form.
async fn nul_characters_are_refused_as_bad_input(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (ws, campaign) = app.campaign_for_all().await;
    for path in [
        "/api/v1/campaigns/ab%00cd".to_owned(),
        "/api/v1/contacts/ab%00cd".to_owned(),
        "/api/v1/consent-texts/ab%00cd".to_owned(),
        "/api/v1/campaigns/ab%00cd/funnel".to_owned(),
        format!("/api/v1/campaigns/{campaign}/funnel?variant=%00"),
    ] {
        let res = app.get(&ws.token, &path).await;
        assert_eq!(res.status(), 400, "{path}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("NUL"), "{path}: {body}");
    }
    for path in ["/app/contacts?q=an%00na", "/app/contacts/ab%00cd"] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 400, "{path}");
    }
    // Signed links answer as for any bad token: the one 404 page, and the pixel is a GIF.
    let res = app.client.get(app.url("/l/ab%00cd")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let res = app.client.get(app.url("/o/ab%00cd")).send().await.unwrap();
    assert_eq!(
        (res.status().as_u16(), res.headers()["content-type"].clone()),
        (200, "image/gif".parse().unwrap())
    );
    // Text fields: the name, body and categories of a consent text; a campaign's name.
    let text = serde_json::json!({
        "locale": "da", "company_name": "Sko\u{0} A/S", "categories": ["Nyheder"],
        "privacy_url": "https://sko.example/privatliv",
        "body": "Ja tak, Sko\u{0} A/S må sende mig nyheder på SMS. Svar STOP for at framelde."
    });
    let res = app.post_json(&ws.token, "/api/v1/consent-texts", &text).await;
    assert_eq!(res.status(), 422);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("control characters"), "{body}");
    let mut text = text;
    text["company_name"] = "Sko A/S".into();
    text["body"] = "Ja tak, Sko A/S må sende mig nyheder på SMS. Svar STOP for at framelde.".into();
    text["categories"] = serde_json::json!(["Ny\u{0}heder"]);
    assert_eq!(
        app.post_json(&ws.token, "/api/v1/consent-texts", &text).await.status(),
        422
    );
    // Nothing was half-written.
    let texts: serde_json::Value = app.get(&ws.token, "/api/v1/consent-texts").await.json().await.unwrap();
    assert_eq!(
        texts.as_array().unwrap().len(),
        4,
        "only the campaign's own texts, one per locale: {texts}"
    );
    // A login with a NUL in the address is a wrong login, not a failure.
    let res = app.login("m\u{0}@shop.example", PASSWORD).await;
    assert_eq!(res.status(), 401);
}

both_backends!(
    nul_characters_are_refused_as_bad_input,
    security_headers_on_every_page,
    no_hsts_on_plain_http,
    secrets_are_never_logged_or_stored_in_clear,
);
