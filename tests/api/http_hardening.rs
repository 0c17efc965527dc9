//! Launch hardening of the HTTP edge: each test does what an attacker did to a running optbridge
//! (a forged reply on the dev SMS outbox, bodies trickled a byte a second, error answers without
//! the security headers) and says what must hold instead.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use optbridge::db::schema::dev_messages;
use optbridge::domain::Direction;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::{ANNA, Backend, TestApp, both_backends, cookie_value, field, set_cookie, spawn_app_with};

/// Replies the dev SMS outbox has recorded (each answered as a provider webhook would be).
async fn dev_replies(app: &TestApp) -> i64 {
    app.with_db(|c| {
        dev_messages::table
            .filter(dev_messages::direction.eq(Direction::In))
            .count()
            .get_result(c)
            .unwrap()
    })
    .await
}

/// Finding: `POST /dev/sms/reply` had no form token and took cross-origin posts: any page a
/// tester visited could make a number "reply" JA (a confirmed consent with ledger evidence) or
/// STOP. It takes only same-origin posts carrying the token of the `/dev/sms` page.
async fn dev_sms_replies_need_the_page_token_and_this_origin(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let inv = app.invited().await;
    assert_eq!(app.submit_landing(&inv.anna, ANNA, true, &[]).await.0, 303);
    app.drain_outbox(Duration::from_secs(10)).await;

    let page = app.client.get(app.url("/dev/sms")).send().await.unwrap();
    let set = set_cookie(&page, "ob_dev_csrf").expect("the page sets its form token cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/dev"] {
        assert!(set.contains(attribute), "{attribute} missing: {set}");
    }
    let token = cookie_value(&set);
    assert_eq!(
        field(&page.text().await.unwrap(), "csrf"),
        token,
        "the form carries the cookie's token"
    );
    let cookie = format!("ob_dev_csrf={token}");

    let post = |headers: &[(&'static str, &str)], cookie: Option<&str>, csrf: Option<&str>| {
        let mut form = vec![("phone", ANNA), ("body", "JA")];
        if let Some(csrf) = csrf {
            form.push(("csrf", csrf));
        }
        let mut req = app.client.post(app.url("/dev/sms/reply")).form(&form);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(cookie) = cookie {
            req = req.header("Cookie", cookie);
        }
        req.send()
    };
    let evil = [("Origin", "http://evil.example"), ("Sec-Fetch-Site", "cross-site")];
    // A form on another site posting to the outbox, as a browser sends it (no token, and the
    // SameSite=Strict cookie stays home); and even with the token, by Origin or by Fetch
    // Metadata alone.
    let forged = [
        ("cross-site form", post(&evil, None, None).await.unwrap()),
        (
            "cross-site with the token",
            post(&evil, Some(&cookie), Some(&token)).await.unwrap(),
        ),
        (
            "other Origin",
            post(&evil[..1], Some(&cookie), Some(&token)).await.unwrap(),
        ),
        (
            "Sec-Fetch-Site: cross-site",
            post(&evil[1..], Some(&cookie), Some(&token)).await.unwrap(),
        ),
        ("no cookie, no token", post(&[], None, None).await.unwrap()),
        ("token without its cookie", post(&[], None, Some(&token)).await.unwrap()),
        ("cookie, no token", post(&[], Some(&cookie), None).await.unwrap()),
        (
            "cookie, wrong token",
            post(&[], Some(&cookie), Some("guessed")).await.unwrap(),
        ),
    ];
    for (what, res) in forged {
        assert_eq!(res.status(), 403, "{what}");
    }
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(dev_replies(&app).await, 0, "a refused reply was recorded");
    assert_eq!(
        app.subscription_status(ANNA).await,
        None,
        "a forged JA confirmed the consent"
    );

    // The page's own form, from this origin: accepted and processed.
    let res = app
        .client
        .post(app.url("/dev/sms/reply"))
        .header("Origin", app.settings.base_url.origin().ascii_serialization())
        .header("Sec-Fetch-Site", "same-origin")
        .header("Cookie", &cookie)
        .form(&[("phone", ANNA), ("body", "JA"), ("csrf", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(dev_replies(&app).await, 1);
    assert_eq!(app.subscription_status(ANNA).await.as_deref(), Some("active"));
}

/// Sends `head` (announcing a 100-byte body) and then the body a byte a second; returns what
/// the server answered before closing, and when it closed.
async fn trickle(app: &TestApp, head: String) -> (String, Duration) {
    let mut stream = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (mut read, mut write) = stream.into_split();
    let trickler = tokio::spawn(async move {
        for _ in 0..100 {
            if write.write_all(b"a").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // The body needs 100 s; a server without a body timeout is still reading after 20.
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(n) = read.read(&mut buf).await {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let closed = started.elapsed();
    trickler.abort();
    (String::from_utf8_lossy(&answer).into_owned(), closed)
}

/// Finding: request bodies trickled at a byte a second were never timed out (800 such
/// connections stayed open). With REQUEST_BODY_TIMEOUT_SECS=2 a form post and the streamed CSV
/// import are answered 408 and closed within seconds, while others are served meanwhile.
async fn trickled_bodies_are_cut_off(backend: Backend) {
    let app = spawn_app_with(backend, |a| a.request_body_timeout_secs = 2).await;
    let ws = app.create_workspace("Trickle").await;
    let host = app.address.trim_start_matches("http://").to_owned();
    let login = format!(
        "POST /app/login HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 100\r\n\r\n"
    );
    let import = format!(
        "POST /api/v1/contacts/import HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: text/csv\r\nContent-Length: 100\r\n\r\n",
        ws.token
    );
    let served_meanwhile = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        app.client.get(app.url("/healthz")).send().await.unwrap().status()
    };
    let ((form, form_closed), (csv, csv_closed), healthz) =
        tokio::join!(trickle(&app, login), trickle(&app, import), served_meanwhile);
    assert_eq!(healthz, 200, "the server kept serving others");
    for (what, answer, closed) in [("form post", form, form_closed), ("CSV import", csv, csv_closed)] {
        assert!(answer.starts_with("HTTP/1.1 408"), "{what}: {answer:?}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{what}: {answer}"
        );
        assert!(
            answer.to_ascii_lowercase().contains("x-content-type-options: nosniff"),
            "{what}: {answer}"
        );
        assert!(
            closed < Duration::from_secs(10),
            "{what}: connection open for {closed:?}"
        );
    }
    // A body sent at once is not affected.
    assert_eq!(app.login("nobody@shop.example", "wrong").await.status(), 401);
}

/// Finding: the API's 401 and the `%00` 400 came without `X-Content-Type-Options` (and without
/// HSTS under https): middlewares answered them as errors, outside the headers middleware.
async fn error_answers_carry_the_security_headers(backend: Backend) {
    let app = spawn_app_with(backend, |a| {
        a.base_url = Some("https://optin.shop.example".into());
        a.dev_outboxes = true; // a test instance behind a (pretend) public https address
    })
    .await;
    let ws = app.create_workspace("Headers").await;
    let bearer = format!("Bearer {}", ws.token);
    let cases = [
        ("/api/v1/contacts", Some("Bearer wrong-token"), 401),
        ("/api/v1/contacts", None, 401),
        ("/api/v1/campaigns/ab%00cd", None, 400),
        ("/app/contacts?q=an%00na", None, 400),
        ("/no/such/page", None, 404),
        ("/api/v1/no-such-thing", Some(bearer.as_str()), 404),
    ];
    for (path, auth, status) in cases {
        let mut req = app.client.get(app.url(path));
        if let Some(auth) = auth {
            req = req.header("Authorization", auth);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), status, "{path}");
        let h = res.headers();
        assert_eq!(
            h.get("x-content-type-options").map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            h.get("strict-transport-security").map(|v| v.to_str().unwrap()),
            Some("max-age=31536000"),
            "{path}"
        );
    }
}

both_backends!(
    dev_sms_replies_need_the_page_token_and_this_origin,
    trickled_bodies_are_cut_off,
    error_answers_carry_the_security_headers,
);
