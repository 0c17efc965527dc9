use std::collections::HashMap;
use std::time::Duration;

use crate::helpers::{Backend, TestApp, both_backends, json, spawn_app};

async fn healthz_reports_the_database(backend: Backend) {
    let app = spawn_app(backend).await;
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body = json(res).await;
    assert_eq!(body["database"], "ok");
    let expected = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(body["backend"], expected);
}

/// `/metrics` parsed: sample (name with labels) → value. Every sample's family has HELP and TYPE.
async fn scrape(app: &TestApp) -> HashMap<String, f64> {
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = res.text().await.unwrap();
    let mut samples = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (name, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line:?}"));
        let family = name.split('{').next().unwrap();
        assert!(text.contains(&format!("# TYPE {family} ")), "no TYPE for {family}");
        assert!(text.contains(&format!("# HELP {family} ")), "no HELP for {family}");
        samples.insert(
            name.to_owned(),
            value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
        );
    }
    samples
}

async fn metrics_count_requests_sends_and_funnel_stages(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ws, campaign) = app.campaign_for_all().await;
    app.send_campaign(&ws.token, &campaign).await;
    let before = scrape(&app).await;
    assert_eq!(
        before[r#"optbridge_outbox_jobs{kind="campaign_expand"}"#], 1.0,
        "the campaign waits to expand"
    );
    assert_eq!(
        before[r#"optbridge_outbox_jobs{kind="sms"}"#], 0.0,
        "every kind is listed"
    );
    for family in [
        "optbridge_emails_sent_total",
        "optbridge_sms_sent_total",
        "optbridge_sms_failed_total",
        "optbridge_inbound_sms_total",
        "optbridge_webhooks_rejected_total",
        "optbridge_http_panics_total",
        r#"optbridge_doi_limit_hits_total{limit="phone"}"#,
        r#"optbridge_funnel_transitions_total{stage="confirmed"}"#,
        r#"optbridge_http_responses_total{class="5xx"}"#,
    ] {
        assert!(before.contains_key(family), "{family} missing");
    }

    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(
        app.client.get(app.url("/no/such/page")).send().await.unwrap().status(),
        404
    );
    let after = scrape(&app).await;
    // Counters are per process and the tests share one: compare differences, at least.
    let grew = |name: &str| after[name] - before[name];
    assert!(grew("optbridge_emails_sent_total") >= 8.0);
    assert!(grew(r#"optbridge_funnel_transitions_total{stage="sent"}"#) >= 8.0);
    assert!(grew(r#"optbridge_funnel_transitions_total{stage="delivered"}"#) >= 8.0);
    assert!(
        grew(r#"optbridge_http_responses_total{class="2xx"}"#) >= 1.0,
        "the first scrape"
    );
    assert!(grew(r#"optbridge_http_responses_total{class="4xx"}"#) >= 1.0, "the 404");
    for kind in ["campaign_expand", "invitation_batch", "invitation_email"] {
        assert_eq!(
            after[&format!("optbridge_outbox_jobs{{kind=\"{kind}\"}}")],
            0.0,
            "{kind} drained"
        );
    }
}

both_backends!(
    healthz_reports_the_database,
    metrics_count_requests_sends_and_funnel_stages
);
