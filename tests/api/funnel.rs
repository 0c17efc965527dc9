//! A scripted campaign with known behaviour gives exact counts and rates from the API, the CLI
//! and the CSV exports.

use std::time::Duration;

use optbridge::links::LinkPurpose;
use serde_json::{Value, json};

use crate::helpers::{Backend, both_backends, json, scripted};

fn expected_counts() -> Value {
    json!({
        "recipients": 10, "sent": 10, "delivered": 9, "bounced": 1, "failed": 0,
        "opened": 6, "opened_human": 5, "clicked": 4, "submitted": 3, "confirmed": 2,
        "opted_out": 0, "unsubscribed": 0
    })
}

fn assert_counts(report: &Value, expected: &Value) {
    for (k, v) in expected.as_object().unwrap() {
        assert_eq!(&report[k], v, "{k} in {report}");
    }
}

fn close(a: &Value, b: f64) -> bool {
    (a.as_f64().unwrap() - b).abs() < 1e-9
}

async fn scripted_campaign_counts_match_everywhere(backend: Backend) {
    let s = scripted(backend).await;
    let report = json(
        s.app
            .get(&s.token, &format!("/api/v1/campaigns/{}/funnel", s.campaign))
            .await,
    )
    .await;
    assert_counts(&report, &expected_counts());
    assert!(close(&report["open_rate"], 6.0 / 9.0), "{}", report["open_rate"]);
    assert!(close(&report["click_rate"], 4.0 / 9.0));
    assert!(close(&report["signup_rate_of_openers"], 2.0 / 6.0));
    assert!(close(&report["conversion_rate"], 2.0 / 10.0));
    assert_eq!(report["benchmark"]["name"], "KAiKU");
    assert!(close(&report["benchmark"]["open_rate"], 0.522));
    assert_counts(&report["variants"][0], &expected_counts());
    assert_eq!(report["variants"][0]["key"], "A");
    assert_eq!(report["locales"][0]["key"], "da");
    assert_counts(&report["locales"][0], &expected_counts());
    let series = report["series"]["points"].as_array().unwrap();
    let total_sent: i64 = series.iter().map(|p| p["sent"].as_i64().unwrap()).sum();
    let total_confirmed: i64 = series.iter().map(|p| p["confirmed"].as_i64().unwrap()).sum();
    assert_eq!(
        (total_sent, total_confirmed),
        (10, 2),
        "the series adds up to the totals"
    );

    // The CLI prints the same numbers.
    let out = crate::helpers::run_cli(
        &s.app.database.url,
        &[
            "stats",
            "--workspace",
            &s.app_workspace().await,
            "--campaign",
            &s.campaign,
            "--json",
        ],
    );
    let cli = crate::helpers::stdout_json(&out);
    assert_counts(&cli, &expected_counts());
    let out = crate::helpers::run_cli(
        &s.app.database.url,
        &[
            "stats",
            "--workspace",
            &s.app_workspace().await,
            "--campaign",
            &s.campaign,
        ],
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("opened") && table.contains("66.7 %") && table.contains("52.2 %"),
        "{table}"
    );

    // The per-recipient CSV.
    let res = s
        .app
        .get(&s.token, &format!("/api/v1/campaigns/{}/recipients.csv", s.campaign))
        .await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let body = res.text().await.unwrap();
    let mut rows = csv::Reader::from_reader(body.as_bytes());
    let headers = rows.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let records: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 10);
    let row = |email: &str| records.iter().find(|r| &r[col("email")] == email).unwrap();
    assert_eq!(&row("p0@example.dk")[col("open_count")], "5");
    assert!(!row("p1@example.dk")[col("opened_at")].is_empty());
    assert!(
        row("p1@example.dk")[col("human_opened_at")].is_empty(),
        "the proxy open is not human"
    );
    assert!(
        !row("p3@example.dk")[col("opened_at")].is_empty(),
        "a click implies an open"
    );
    assert!(!row("p2@example.dk")[col("confirmed_at")].is_empty());
    assert!(row("p4@example.dk")[col("confirmed_at")].is_empty());
    assert_eq!(&row("p9@example.dk")[col("status")], "bounced");
    assert_eq!(&row("p7@example.dk")[col("external_id")], "ext-7");
    assert!(!body.contains("eyJ"), "no link tokens in the export");
    let csv_confirmed = records.iter().filter(|r| !r[col("confirmed_at")].is_empty()).count();
    assert_eq!(csv_confirmed, 2);

    // STOP from p3 and an email unsubscribe from p6 show up in the funnel.
    let res = s.app.dev_sms_reply("+4520123453", "STOP").await;
    assert_eq!(res.status(), 303);
    let res = s
        .app
        .client
        .post(s.app.url(&format!("/u/{}", s.link(6, LinkPurpose::Unsubscribe))))
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    s.app.drain_outbox(Duration::from_secs(10)).await;
    let report = json(
        s.app
            .get(&s.token, &format!("/api/v1/campaigns/{}/funnel", s.campaign))
            .await,
    )
    .await;
    assert_eq!(
        (report["opted_out"].as_i64(), report["unsubscribed"].as_i64()),
        (Some(1), Some(1))
    );

    // The consents export lists the one consent still active, with its evidence.
    let body = s
        .app
        .get(&s.token, "/api/v1/consents/export")
        .await
        .text()
        .await
        .unwrap();
    let mut rows = csv::Reader::from_reader(body.as_bytes());
    let headers = rows.headers().unwrap().clone();
    let records: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 1, "{body}");
    let get = |name: &str| records[0][headers.iter().position(|h| h == name).unwrap()].to_owned();
    assert_eq!(get("phone"), "+4520123452");
    assert_eq!(get("email"), "p2@example.dk");
    assert_eq!(get("confirmed_via"), "sms_reply");
    assert_eq!(get("ip"), "127.0.0.1");
    assert_eq!(get("consent_text_version"), "1");
    assert_eq!(get("consent_text_sha256").len(), 64);
}

async fn funnel_is_scoped_to_the_workspace(backend: Backend) {
    let s = scripted(backend).await;
    let other = s.app.create_workspace("Other").await;
    for path in [
        format!("/api/v1/campaigns/{}/funnel", s.campaign),
        format!("/api/v1/campaigns/{}/recipients.csv", s.campaign),
    ] {
        assert_eq!(s.app.get(&other.token, &path).await.status(), 404, "{path}");
    }
    let body = s
        .app
        .get(&other.token, "/api/v1/consents/export")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(body.lines().count(), 1, "only the header: {body}");
}

both_backends!(
    scripted_campaign_counts_match_everywhere,
    funnel_is_scoped_to_the_workspace
);
