//! Data rights: erasing a contact (API, CLI, dashboard is in `dashboard`) and the retention
//! purge. Erasure is checked against a dump of every row of every table, so a column added
//! later that keeps personal data makes these tests fail.

use std::io::Write as _;
use std::process::Stdio;
use std::time::Duration;

use diesel::prelude::*;
use optbridge::db::schema::{consent_requests, invitations, sms_subscriptions};
use serde_json::{Value, json};

use crate::helpers::{
    ANNA, BO, Backend, TestApp, both_backends, dump, json, run_cli, signed_up, spawn_app, stdout_json,
};

fn lines_with<'a>(dump: &'a str, needle: &str) -> Vec<&'a str> {
    dump.lines().filter(|l| l.contains(needle)).collect()
}

async fn contact_of(app: &TestApp, email: &'static str) -> (String, String) {
    app.with_db(move |c| {
        invitations::table
            .filter(invitations::email.eq(email))
            .select((invitations::contact_id, invitations::campaign_id))
            .first(c)
            .unwrap()
    })
    .await
}

async fn funnel_counts(app: &TestApp, token: &str, campaign: &str) -> Value {
    let report = json(app.get(token, &format!("/api/v1/campaigns/{campaign}/funnel")).await).await;
    let stages = [
        "recipients",
        "sent",
        "delivered",
        "opened",
        "clicked",
        "submitted",
        "confirmed",
        "opted_out",
    ];
    stages.iter().map(|s| (s.to_string(), report[s].clone())).collect()
}

async fn erasure_leaves_no_personal_data_behind(backend: Backend) {
    let (app, inv, _fake) = signed_up(backend).await;
    let token = inv.ws.token.clone();
    let (anna, campaign) = contact_of(&app, "anna@example.dk").await;
    let funnel_before = funnel_counts(&app, &token, &campaign).await;
    assert_eq!(funnel_before["confirmed"], 2);

    let before = app.with_db(dump).await;
    for needle in ["anna@example.dk", "4520123456", "Anna"] {
        assert!(
            !lines_with(&before, needle).is_empty(),
            "the dump sees {needle} before erasure"
        );
    }

    let res = app
        .client
        .delete(app.url(&format!("/api/v1/contacts/{anna}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await, json!({"erased": true}));

    let after = app.with_db(dump).await;
    for needle in ["anna@example.dk", "4520123456", "Anna"] {
        assert_eq!(
            lines_with(&after, needle),
            Vec::<&str>::new(),
            "{needle} survived the erasure"
        );
    }
    assert!(
        !lines_with(&after, "bo@example.dk").is_empty(),
        "other contacts are untouched"
    );
    assert!(!lines_with(&after, "4520654321").is_empty());
    assert_eq!(app.subscription_status(BO).await.as_deref(), Some("active"));

    // Anonymous statistics still add up; the ledger still verifies and records the erasure.
    assert_eq!(funnel_counts(&app, &token, &campaign).await, funnel_before);
    let verify = stdout_json(&run_cli(&app.database.url, &["ledger", "verify", "--json"]));
    assert_eq!(verify["problems"], json!([]), "{verify}");
    let history = json(app.get(&token, &format!("/api/v1/contacts/{anna}/consent")).await).await;
    let ledger = history["ledger"].as_array().unwrap();
    assert_eq!(ledger.last().unwrap()["kind"], "contact_erased");
    assert_eq!(ledger.last().unwrap()["payload"]["erased_by"], "api");
    assert!(
        ledger[..ledger.len() - 1].iter().all(|e| e["payload"].is_null()),
        "{ledger:?}"
    );
    assert_eq!(history["requests"][0]["ip"], Value::Null);
    assert_eq!(history["sms"][0]["status"], "withdrawn");
    assert_eq!(history["sms"][0]["withdrawn_via"], "erasure");

    // Idempotent; invisible from another workspace; unknown ids are 404.
    let again = app
        .client
        .delete(app.url(&format!("/api/v1/contacts/{anna}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    let other = app.create_workspace("Other shop").await;
    let res = app
        .client
        .delete(app.url(&format!("/api/v1/contacts/{}", bo_id(&app).await)))
        .bearer_auth(&other.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(
        app.subscription_status(BO).await.as_deref(),
        Some("active"),
        "nothing happened to Bo"
    );
    let res = app
        .client
        .delete(app.url("/api/v1/contacts/nope"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = app
        .client
        .delete(app.url(&format!("/api/v1/contacts/{anna}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "the API needs a token");
}

async fn bo_id(app: &TestApp) -> String {
    contact_of(app, "bo@example.dk").await.0
}

async fn erasure_and_users_from_the_cli(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ws, campaign) = app.campaign_for_all().await;
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    let bo = bo_id(&app).await;

    let out = run_cli(
        &app.database.url,
        &["contact", "erase", "--workspace", &ws.id, "--contact", &bo, "--json"],
    );
    assert_eq!(stdout_json(&out), json!({"contact_id": bo, "erased": true}));
    let contact = json(app.get(&ws.token, &format!("/api/v1/contacts/{bo}/consent")).await).await;
    assert_eq!(contact["contact"]["email"], format!("erased:{bo}"));
    let out = run_cli(
        &app.database.url,
        &["contact", "erase", "--workspace", &ws.id, "--contact", "nope"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no contact nope in workspace"));

    // Dashboard users: the password comes on stdin, never in the arguments.
    let create = |password: &str| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_optbridge"))
            .args([
                "user",
                "create",
                "--workspace",
                &ws.id,
                "--email",
                "Marketer@Shop.example",
                "--json",
            ])
            .env("DATABASE_URL", &app.database.url)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let short = create("short");
    assert!(!short.status.success());
    assert!(
        String::from_utf8_lossy(&short.stderr).contains("at least 10"),
        "{}",
        String::from_utf8_lossy(&short.stderr)
    );
    let made = stdout_json(&create("a long enough password"));
    assert_eq!(made["email"], "marketer@shop.example");
    let twice = create("a long enough password");
    assert!(!twice.status.success(), "one user per email");
    let res = app.login("marketer@shop.example", "a long enough password").await;
    assert_eq!(res.status(), 303, "the new user can log in");
}

/// Moves a contact's SMS activity three years into the past.
async fn backdate(app: &TestApp, phone: &'static str) {
    app.with_db(move |c| {
        let old = optbridge::db::now() - chrono::Duration::days(3 * 365);
        let requests = consent_requests::table.filter(consent_requests::phone.eq(phone));
        diesel::update(requests)
            .set((
                consent_requests::submitted_at.eq(old),
                consent_requests::expires_at.eq(old),
            ))
            .execute(c)
            .unwrap();
        diesel::update(requests.filter(consent_requests::confirmed_at.is_not_null()))
            .set(consent_requests::confirmed_at.eq(old))
            .execute(c)
            .unwrap();
        diesel::update(requests.filter(consent_requests::closed_at.is_not_null()))
            .set(consent_requests::closed_at.eq(old))
            .execute(c)
            .unwrap();
        let subs = sms_subscriptions::table.filter(sms_subscriptions::phone.eq(phone));
        diesel::update(subs)
            .set(sms_subscriptions::last_used_at.eq(old))
            .execute(c)
            .unwrap();
        diesel::update(subs.filter(sms_subscriptions::withdrawn_at.is_not_null()))
            .set(sms_subscriptions::withdrawn_at.eq(old))
            .execute(c)
            .unwrap();
    })
    .await;
}

async fn request_phones(app: &TestApp) -> Vec<String> {
    app.with_db(|c| {
        consent_requests::table
            .order(consent_requests::phone.asc())
            .select(consent_requests::phone)
            .load(c)
            .unwrap()
    })
    .await
}

async fn purge_removes_old_evidence_of_ended_consents_only(backend: Backend) {
    let (app, inv, _fake) = signed_up(backend).await;
    app.sms_reply(ANNA, "STOP", "SMdr0003").await;
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(app.subscription_status(ANNA).await.as_deref(), Some("withdrawn"));
    let purge = |extra: &[&str]| {
        let mut args = vec!["purge", "--json"];
        args.extend_from_slice(extra);
        stdout_json(&run_cli(&app.database.url, &args))
    };
    assert_eq!(purge(&[])["contacts"], 0, "a withdrawal of today is kept");

    backdate(&app, ANNA).await;
    backdate(&app, BO).await;
    let dry = purge(&["--dry-run"]);
    assert_eq!(
        (
            &dry["dry_run"],
            &dry["contacts"],
            &dry["consent_requests"],
            &dry["ledger_entries"]
        ),
        (&json!(true), &json!(1), &json!(1), &json!(3)),
        "Anna's sign-up, confirmation and withdrawal; Bo's consent is active: {dry}"
    );
    assert_eq!(request_phones(&app).await, [ANNA, BO], "a dry run changes nothing");
    assert_eq!(
        purge(&["--retention-days", "5000"])["contacts"],
        0,
        "a longer retention keeps it"
    );

    let done = purge(&[]);
    assert_eq!(
        (&done["dry_run"], &done["contacts"], &done["ledger_entries"]),
        (&json!(false), &json!(1), &json!(3))
    );
    assert_eq!(request_phones(&app).await, ["+4520654321", "purged"]);
    let (anna, _) = contact_of(&app, "anna@example.dk").await;
    let history = json(
        app.get(&inv.ws.token, &format!("/api/v1/contacts/{anna}/consent"))
            .await,
    )
    .await;
    let ledger = history["ledger"].as_array().unwrap();
    assert_eq!(ledger[0]["kind"], "email_permission_imported");
    assert!(!ledger[0]["payload"].is_null(), "email evidence is not SMS evidence");
    assert!(ledger[1..].iter().all(|e| e["payload"].is_null()), "{ledger:?}");
    assert_eq!(history["requests"][0]["ip"], Value::Null);
    assert_eq!(history["requests"][0]["user_agent"], Value::Null);
    let verify = stdout_json(&run_cli(&app.database.url, &["ledger", "verify", "--json"]));
    assert_eq!(verify["problems"], json!([]), "{verify}");
    assert_eq!(purge(&[])["contacts"], 0, "purging twice finds nothing");

    let out = run_cli(&app.database.url, &["purge", "--retention-days", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 1"));
}

both_backends!(
    erasure_leaves_no_personal_data_behind,
    erasure_and_users_from_the_cli,
    purge_removes_old_evidence_of_ended_consents_only,
);
