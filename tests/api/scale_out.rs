//! Scale-out on one PostgreSQL database (issue 18): two `serve --no-workers` instances (as behind
//! a load balancer) and two separate `worker` processes, all the real binary. A campaign reaches
//! each recipient exactly once; a sign-up made on one instance is confirmed on the other; the
//! per-phone limit holds across instances; a key rotation is honoured by every process.
//!
//! PostgreSQL only (SQLite is one file for one host): skipped like every PostgreSQL test when no
//! server is reachable, unless `OPTBRIDGE_REQUIRE_POSTGRES=1` or `CI=true`.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use diesel::prelude::*;
use optbridge::db::schema::invitations;
use optbridge::links::{Keyring, LinkPurpose};
use serde_json::{Value, json};

use crate::fake_twilio::FakeTwilio;
use crate::helpers::{AUTH, Backend, FROM, SID, TestApp, field, run_cli, spawn_app, stdout_json};
use crate::smtp_sink::SmtpSink;

const RECIPIENTS: usize = 1000;
/// `LIMIT_DOI_PER_PHONE`'s default.
const PER_PHONE: usize = 3;

/// One process of the deployment; SIGKILLed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What every process of the deployment shares: the database, the public origin, the relay and
/// the SMS provider.
fn command(app: &TestApp, public: &str, sink: &SmtpSink, fake: &FakeTwilio, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_optbridge"));
    command
        .args(args)
        .env("DATABASE_URL", &app.database.url)
        .env("BASE_URL", public)
        .env("SMTP_URL", sink.url())
        .env("SMS_PROVIDER", "twilio")
        .env("TWILIO_ACCOUNT_SID", SID)
        .env("TWILIO_AUTH_TOKEN", AUTH)
        .env("TWILIO_FROM", FROM)
        .env("TWILIO_API_BASE", fake.base_url())
        .env("SIGNING_KEY_RELOAD_SECS", "1")
        // No email reminder an hour after each sign-up: the test waits for an empty outbox.
        .env("DOI_EMAIL_REMINDER_SECS", "0")
        .env("OUTBOX_POLL_MS", "50")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for name in [
        "OUTBOX_WORKERS",
        "OUTBOX_BATCH",
        "INVITATION_BATCH",
        "SMTP_CONCURRENCY",
        "BIND",
    ] {
        command.env_remove(name);
    }
    command
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn wait_healthy(client: &reqwest::Client, address: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(res) = client.get(format!("{address}/healthz")).send().await
            && res.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "{address} did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn post_json(client: &reqwest::Client, address: &str, token: &str, path: &str, body: &Value) -> (u16, Value) {
    let res = client
        .post(format!("{address}{path}"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("answer");
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn page(client: &reqwest::Client, url: &str) -> (u16, String) {
    let res = client.get(url).send().await.expect("answer");
    (res.status().as_u16(), res.text().await.expect("body"))
}

/// Opens the landing page of `link` on `address` and signs `phone` up there.
async fn sign_up(client: &reqwest::Client, address: &str, link: &str, phone: &str) -> u16 {
    let (status, landing) = page(client, &format!("{address}/l/{link}")).await;
    assert_eq!(status, 200, "{landing}");
    let csrf = field(&landing, "csrf");
    let res = client
        .post(format!("{address}/l/{link}"))
        .form(&[("csrf", csrf.as_str()), ("phone", phone), ("consent", "yes")])
        .send()
        .await
        .expect("answer");
    res.status().as_u16()
}

/// The `kid` in the header of a signed link token.
fn kid_of(token: &str) -> String {
    let header = token.split('.').next().expect("a JWT");
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .expect("base64url header");
    let header: Value = serde_json::from_slice(&header).expect("JSON header");
    header["kid"].as_str().expect("kid").to_owned()
}

/// The landing-link token in an invitation as the relay received it.
fn landing_token(message: &[u8]) -> String {
    let text = crate::mail_parse::ParsedMail::parse(message).text.expect("a text part");
    let at = text.find("/l/").expect("a landing link") + 3;
    text[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect()
}

async fn invitation_ids(app: &TestApp, campaign: &str) -> Vec<String> {
    let campaign = campaign.to_owned();
    app.with_db(move |c| {
        invitations::table
            .filter(invitations::campaign_id.eq(&campaign))
            .order(invitations::email.asc())
            .select(invitations::id)
            .load(c)
            .unwrap()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_and_two_workers_share_one_postgres_database() {
    if !crate::helpers::postgres_available() {
        return;
    }
    let app = spawn_app(Backend::Postgres).await;
    let sink = SmtpSink::start().await;
    let fake = FakeTwilio::start(SID, AUTH).await;
    // A fresh connection per request: an instance may close an idle keep-alive connection just as
    // it is reused (a reset that says nothing about the instance).
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");

    // Behind a load balancer every instance has the same public origin; here it is A's address.
    let (port_a, port_b) = (free_port(), free_port());
    let (a, b) = (
        format!("http://127.0.0.1:{port_a}"),
        format!("http://127.0.0.1:{port_b}"),
    );
    let mut processes = Vec::new();
    for port in [port_a, port_b] {
        let mut serve = command(&app, &a, &sink, &fake, &["serve", "--no-workers"]);
        serve.env("BIND", format!("127.0.0.1:{port}"));
        processes.push(Process(serve.spawn().expect("start serve")));
    }
    for _ in 0..2 {
        let mut worker = command(&app, &a, &sink, &fake, &["worker"]);
        processes.push(Process(worker.spawn().expect("start worker")));
    }
    wait_healthy(&client, &a).await;
    wait_healthy(&client, &b).await;

    // A campaign created on A and sent on B: each recipient exactly once, over both workers.
    let ws = app.create_workspace("Nordlys Sko").await;
    let mut csv = String::from("email,locale\n");
    for i in 0..RECIPIENTS {
        csv.push_str(&format!("s{i:04}@example.dk,da\n"));
    }
    app.import(&ws.token, &csv).await;
    let text = app.consent_text(&ws.token, "da").await;
    let (status, created) = post_json(
        &client,
        &a,
        &ws.token,
        "/api/v1/campaigns",
        &json!({"name": "Scale", "consent_text_id": text, "subject": "S", "intro": "I"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let campaign = created["id"].as_str().expect("id").to_owned();
    let (status, _) = post_json(
        &client,
        &b,
        &ws.token,
        &format!("/api/v1/campaigns/{campaign}/send"),
        &json!({}),
    )
    .await;
    assert_eq!(status, 202);
    sink.wait_for_messages(RECIPIENTS, Duration::from_secs(120)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.outbox_len().await > 0 {
        assert!(Instant::now() < deadline, "the outbox did not empty");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut per_recipient: HashMap<String, usize> = HashMap::new();
    for m in sink.messages() {
        *per_recipient.entry(m.rcpt_to[0].clone()).or_default() += 1;
    }
    assert_eq!(per_recipient.len(), RECIPIENTS, "every recipient");
    let repeated: Vec<_> = per_recipient.iter().filter(|(_, n)| **n != 1).collect();
    assert!(repeated.is_empty(), "received more than once: {repeated:?}");
    let connections = sink
        .messages()
        .iter()
        .map(|m| m.connection)
        .collect::<std::collections::HashSet<_>>();
    assert!(connections.len() >= 2, "both workers sent");

    let invitations = invitation_ids(&app, &campaign).await;
    let link = |n: usize| {
        app.keyring
            .sign(
                LinkPurpose::Landing,
                &invitations[n],
                &campaign,
                "da",
                optbridge::db::now(),
            )
            .expect("link")
    };

    // Signed up on A, confirmed by code on B.
    let anna = "+4520123456";
    let first = link(0);
    assert_eq!(sign_up(&client, &a, &first, anna).await, 303);
    fake.wait_for_delivered(1, Duration::from_secs(30)).await;
    let code = fake.last_code_for(anna).expect("a code SMS");
    let (status, confirm_page) = page(&client, &format!("{b}/l/{first}/confirm")).await;
    assert_eq!(status, 200, "{confirm_page}");
    let csrf = field(&confirm_page, "csrf");
    let res = client
        .post(format!("{b}/l/{first}/confirm"))
        .form(&[("csrf", csrf.as_str()), ("code", code.as_str())])
        .send()
        .await
        .expect("answer");
    assert_eq!(res.status(), 200);
    let body = res.text().await.expect("body");
    assert!(body.contains("Tak, du er tilmeldt"), "{body}");

    // One phone through four links, two on each instance: the per-phone limit holds overall.
    let bo = "+4520654321";
    let mut statuses = Vec::new();
    for (n, address) in [(1, &a), (2, &b), (3, &a), (4, &b)] {
        statuses.push(sign_up(&client, address, &link(n), bo).await);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 303).count(),
        PER_PHONE,
        "{statuses:?}"
    );
    assert!(statuses.iter().all(|s| [303, 429].contains(s)), "{statuses:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.outbox_len().await > 0 {
        assert!(Instant::now() < deadline, "the outbox did not empty");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let to_bo = fake.delivered().iter().filter(|s| s.to == bo).count();
    let rows: Vec<(String, String, Option<String>)> = app
        .with_db(|c| {
            use diesel::prelude::*;
            use optbridge::db::schema::sms_messages;
            sms_messages::table
                .select((sms_messages::kind, sms_messages::status, sms_messages::error))
                .load(c)
                .unwrap()
        })
        .await;
    // A later sign-up of the same phone supersedes a pending one whose SMS has not left yet
    // (one pending request per phone keeps a reply unambiguous), so fewer may go out.
    assert!(
        (1..=PER_PHONE).contains(&to_bo),
        "at most LIMIT_DOI_PER_PHONE code SMS to one phone: {to_bo}, {rows:?}"
    );

    // `keys rotate` against the database while everything runs.
    let rotated = stdout_json(&run_cli(&app.database.url, &["--json", "keys", "rotate"]));
    let kid = rotated["kid"].as_str().expect("kid").to_owned();
    let db = app.db.clone();
    let encryption = app.settings.signing_key_encryption.clone();
    let fresh = tokio::task::spawn_blocking(move || Keyring::load(db, Duration::from_secs(3600), encryption))
        .await
        .expect("join")
        .expect("keys");
    let token = fresh
        .sign(
            LinkPurpose::Landing,
            &invitations[5],
            &campaign,
            "da",
            optbridge::db::now(),
        )
        .expect("link");
    // A compact link names its key by a 4-character alias of the kid.
    assert_eq!(
        kid_of(&token),
        optbridge::links::kid_alias(&kid),
        "signed with the new key"
    );
    for address in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, _) = page(&client, &format!("{address}/l/{token}")).await;
            if status == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "{address} never accepted the new key's link");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // And the running workers sign with it within SIGNING_KEY_RELOAD_SECS.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let late = app.create_workspace("Later").await;
    app.import(&late.token, "email,locale\nlate@example.dk,da\n").await;
    let text = app.consent_text(&late.token, "da").await;
    let (_, created) = post_json(
        &client,
        &b,
        &late.token,
        "/api/v1/campaigns",
        &json!({"name": "Later", "consent_text_id": text, "subject": "S", "intro": "I"}),
    )
    .await;
    let later = created["id"].as_str().expect("id").to_owned();
    let (status, _) = post_json(
        &client,
        &a,
        &late.token,
        &format!("/api/v1/campaigns/{later}/send"),
        &json!({}),
    )
    .await;
    assert_eq!(status, 202);
    let messages = sink.wait_for_messages(RECIPIENTS + 1, Duration::from_secs(30)).await;
    let last = messages
        .iter()
        .find(|m| m.rcpt_to[0] == "late@example.dk")
        .expect("the later invitation");
    assert_eq!(
        kid_of(&landing_token(&last.data)),
        optbridge::links::kid_alias(&kid),
        "the workers sign with the new key"
    );
    drop(processes);
}
