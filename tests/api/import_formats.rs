//! Shop and mail-tool exports (Shopify, Mailchimp, Klaviyo) imported through the API, the CLI
//! and the dashboard's import page: the same columns mapped, the same people refused, each with
//! the reason on their line. The samples are in `tests/fixtures/imports/`.

use diesel::prelude::*;
use serde_json::Value;

use crate::helpers::{
    Backend, TestApp, TestDatabase, both_backends, json, metric, run_cli, sample_export, spawn_app, stdout_json,
};

struct Sample {
    file: &'static str,
    /// `format` in the API's answer (absent for optbridge's own columns).
    format: &'static str,
    imported: u64,
    /// Refused lines and a part of each reason.
    refused: &'static [(u64, &'static str)],
}

const SAMPLES: [Sample; 6] = [
    Sample {
        file: "shopify_customers_export.csv",
        format: "shopify",
        imported: 2,
        refused: &[
            (3, "not accepting email marketing (Accepts Email Marketing: no)"),
            (5, "not accepting email marketing (Accepts Email Marketing: no)"),
            (6, "not an email address"),
        ],
    },
    Sample {
        file: "mailchimp_subscribed_members_export.csv",
        format: "mailchimp",
        imported: 3,
        refused: &[],
    },
    Sample {
        file: "mailchimp_unsubscribed_members_export.csv",
        format: "mailchimp",
        imported: 0,
        refused: &[
            (2, "unsubscribed from email marketing (UNSUB_TIME: 2024-02-10 17:22:09)"),
            (3, "unsubscribed from email marketing (UNSUB_TIME: 2023-12-01 08:00:00)"),
        ],
    },
    Sample {
        file: "mailchimp_cleaned_members_export.csv",
        format: "mailchimp",
        imported: 0,
        refused: &[(
            2,
            "cleaned (it bounced or was invalid) (CLEAN_TIME: 2024-04-04 04:04:04)",
        )],
    },
    Sample {
        file: "mailchimp_all_contacts_export.csv",
        format: "mailchimp",
        imported: 1,
        refused: &[
            (3, "not subscribed to email marketing (Status: unsubscribed)"),
            (4, "(Status: cleaned)"),
            (5, "(Status: pending)"),
        ],
    },
    Sample {
        file: "klaviyo_profiles_export.csv",
        format: "klaviyo",
        imported: 2,
        refused: &[
            (
                3,
                "not subscribed to email marketing (Email Marketing Consent: UNSUBSCRIBED)",
            ),
            (4, "(Email Marketing Consent: NEVER_SUBSCRIBED)"),
        ],
    },
];

/// The API's (and the CLI's `--json`) answer for a sample is what the sample must give.
fn check_report(sample: &Sample, report: &Value) {
    let what = sample.file;
    assert_eq!(report["format"], sample.format, "{what}: {report}");
    assert_eq!(report["imported"], sample.imported, "{what}: {report}");
    let rejected = report["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), sample.refused.len(), "{what}: {report}");
    for (row, (line, reason)) in rejected.iter().zip(sample.refused) {
        assert_eq!(row["line"], *line, "{what}: {row}");
        let error = row["error"].as_str().unwrap();
        assert!(error.contains(reason), "{what} line {line}: {error}");
    }
}

/// A contact's (external_id, email_consent_at, email_consent_source).
async fn mapped(
    app: &TestApp,
    workspace: &str,
    email: &'static str,
) -> (Option<String>, Option<String>, Option<String>) {
    use optbridge::db::schema::contacts;
    let ws = workspace.to_owned();
    app.with_db(move |c| {
        let (external, at, source): (Option<String>, Option<chrono::NaiveDateTime>, Option<String>) = contacts::table
            .filter(contacts::workspace_id.eq(&ws))
            .filter(contacts::email_normalized.eq(email))
            .select((
                contacts::external_id,
                contacts::email_consent_at,
                contacts::email_consent_source,
            ))
            .first(c)
            .unwrap();
        (external, at.map(|t| t.to_string()), source)
    })
    .await
}

async fn exports_are_mapped_and_refusals_explained_through_the_api(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Skobutikken").await;
    for sample in &SAMPLES {
        let report = json(app.post_csv(&ws.token, sample_export(sample.file)).await).await;
        check_report(sample, &report);
    }
    // Shopify's Customer ID is the external id; the export names the permission's source.
    assert_eq!(
        mapped(&app, &ws.id, "anna.jensen@example.dk").await,
        (
            Some("7398802653250".into()),
            None,
            Some("Shopify customer export".into())
        )
    );
    // Mailchimp: the confirmation time, or the opt-in time when there was no confirmation.
    assert_eq!(
        mapped(&app, &ws.id, "frida@example.dk").await,
        (
            Some("a1b2c3d4e5".into()),
            Some("2023-02-01 08:16:40".into()),
            Some("Mailchimp audience export".into())
        )
    );
    assert_eq!(
        mapped(&app, &ws.id, "gustav@example.se").await.1.as_deref(),
        Some("2022-11-20 19:45:00")
    );
    assert_eq!(
        mapped(&app, &ws.id, "per@example.dk").await,
        (
            Some("01HQ3ZB2X9K7M4N5P6Q7R8S9T0".into()),
            Some("2024-03-05 09:12:44".into()),
            Some("Klaviyo profile export".into())
        )
    );
    // Nobody refused became a contact.
    let id = ws.id.clone();
    let refused_in_db: i64 = app
        .with_db(move |c| {
            use optbridge::db::schema::contacts;
            contacts::table
                .filter(contacts::workspace_id.eq(&id))
                .filter(contacts::email_normalized.eq_any([
                    "bo.hansen@example.dk",
                    "ida@example.dk",
                    "karl@old-domain.example",
                    "mads@example.dk",
                    "otto@example.dk",
                    "rikke@example.dk",
                    "sofie@example.se",
                ]))
                .count()
                .get_result(c)
                .unwrap()
        })
        .await;
    assert_eq!(refused_in_db, 0);
    let total = SAMPLES.iter().map(|s| s.imported as i64).sum::<i64>();
    let id = ws.id.clone();
    assert_eq!(
        app.with_db(move |c| optbridge::contacts::count(c, &id).unwrap()).await,
        total
    );
}

async fn exports_are_mapped_and_refusals_explained_through_the_cli(backend: Backend) {
    let database = TestDatabase::new(backend);
    let url = database.url.clone();
    stdout_json(&run_cli(&url, &["migrate", "--json"]));
    let created = stdout_json(&run_cli(
        &url,
        &[
            "workspace",
            "create",
            "--name",
            "Skobutikken",
            "--from",
            "Skobutikken <news@skobutikken.example>",
            "--json",
        ],
    ));
    let workspace = created["workspace_id"].as_str().unwrap();
    for sample in &SAMPLES {
        let path = format!("{}/tests/fixtures/imports/{}", env!("CARGO_MANIFEST_DIR"), sample.file);
        let report = stdout_json(&run_cli(&url, &["import", "--workspace", workspace, &path, "--json"]));
        check_report(sample, &report);
    }
    // The text output tells the format and each refused line with its reason.
    let path = format!(
        "{}/tests/fixtures/imports/shopify_customers_export.csv",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = run_cli(&url, &["import", "--workspace", workspace, &path]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Shopify customer export"), "{text}");
    assert!(
        text.contains("line 3: not imported: the export marks this person as not accepting email marketing"),
        "{text}"
    );
}

async fn exports_are_mapped_and_refusals_explained_through_the_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Skobutikken").await;
    let (cookie, csrf) = app.dashboard_session(&ws.id, "marketer@skobutikken.example").await;
    for sample in &SAMPLES {
        let (location, page) = app
            .import_through_page(&cookie, &csrf, sample.file, &sample_export(sample.file))
            .await;
        let what = sample.file;
        assert!(
            page.contains(&format!("data-format=\"{}\"", sample.format)),
            "{what}: {page}"
        );
        assert_eq!(metric(&page, "imported") as u64, sample.imported, "{what}");
        assert_eq!(metric(&page, "refused") as usize, sample.refused.len(), "{what}");
        assert!(page.contains("data-status=\"done\""), "{what}: {page}");
        assert!(!page.contains("Stop refreshing"), "a finished job stops refreshing");
        for (line, reason) in sample.refused {
            assert!(
                page.contains(&format!("<td class=\"num\">{line}</td>")),
                "{what}: line {line}"
            );
            assert!(page.contains(reason), "{what}: {reason} in {page}");
        }
        // Every refused row back as a CSV: the file's own columns, then line and reason.
        let csv = app
            .client
            .get(app.url(&format!("{location}/refused.csv")))
            .header("Cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(csv.status(), 200);
        let csv = csv.text().await.unwrap();
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let header = reader.headers().unwrap().clone();
        let original = String::from_utf8(sample_export(sample.file)).unwrap();
        let original_header = original.lines().next().unwrap();
        assert_eq!(
            header.iter().collect::<Vec<_>>().join(","),
            format!("{original_header},line,reason"),
            "{what}"
        );
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), sample.refused.len(), "{what}: {csv}");
        for (row, (line, reason)) in rows.iter().zip(sample.refused) {
            let width = row.len();
            assert_eq!(&row[width - 2], line.to_string(), "{what}");
            assert!(row[width - 1].contains(reason), "{what}: {}", &row[width - 1]);
            // The original row, cell for cell.
            let source_line = original.lines().nth(*line as usize - 1).unwrap();
            let mut source = csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(source_line.as_bytes());
            let source = source.records().next().unwrap().unwrap();
            assert_eq!(
                row.iter().take(width - 2).collect::<Vec<_>>(),
                source.iter().collect::<Vec<_>>(),
                "{what}"
            );
        }
    }
}

/// A Danish marketer reads why each row was refused in Danish, on the job's page and in its
/// `refused.csv`; the English page keeps the importer's own words, and a row stored before
/// refusals were kept as data still shows its English reason.
async fn refusals_are_explained_in_the_marketers_language(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Skobutikken").await;
    let (cookie, csrf) = app.dashboard_session(&ws.id, "marketer@skobutikken.example").await;
    let file = "email,first_name,locale,email_consent_at\n\
                anna@example.dk,Anna,da,2024-05-01\n\
                not-an-address,Bo,da,\n\
                anna@example.dk,Anna,da,\n\
                carl@example.dk,Carl,fi,\n\
                dora@example.dk,Dora,da,2999-01-01\n\
                erik@example.dk,\"Er\u{202E}ik\",da,\n\
                finn@example.dk,Finn\n";
    let (location, english) = app
        .import_through_page(&cookie, &csrf, "contacts.csv", file.as_bytes())
        .await;
    assert_eq!(metric(&english, "refused"), 6, "{english}");
    let danish_words = [
        (3, "&#39;not-an-address&#39; er ikke en e-mailadresse"),
        (4, "Samme e-mail som linje 2 (anna@example.dk)."),
        (5, "Sproget &#39;fi&#39; kendes ikke"),
        (6, "email_consent_at &#39;2999-01-01&#39; ligger i fremtiden."),
        (
            7,
            "first_name indeholder U+202E RIGHT-TO-LEFT OVERRIDE, et usynligt tegn",
        ),
        (8, "Rækken har 2 felter, men overskriften har 4."),
    ];
    for (line, words) in danish_words {
        assert!(
            !english.contains(words),
            "line {line} in Danish on the English page: {english}"
        );
    }
    for (line, words) in [
        (3, "&#39;not-an-address&#39; is not an email address"),
        (4, "duplicate of line 2 (same email anna@example.dk)"),
        (8, "expected 4 fields as in the header, found 2"),
    ] {
        assert!(english.contains(words), "line {line}: {english}");
    }

    let danish = app.page_in(&cookie, &location, "da").await;
    for (line, words) in danish_words {
        assert!(danish.contains(words), "line {line}: {words} in {danish}");
    }
    assert!(!danish.contains("is not an email address"), "{danish}");

    let csv = app.page_in(&cookie, &format!("{location}/refused.csv"), "da").await;
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let reasons: Vec<String> = reader
        .records()
        .map(|row| row.unwrap().iter().next_back().unwrap().to_owned())
        .collect();
    assert_eq!(reasons.len(), 6, "{csv}");
    assert!(reasons[1].starts_with("Samme e-mail som linje 2"), "{reasons:?}");
    assert!(
        reasons[0].contains("'not-an-address' er ikke en e-mailadresse"),
        "{reasons:?}"
    );
    let csv = app.page_in(&cookie, &format!("{location}/refused.csv"), "en").await;
    assert!(
        csv.contains("duplicate of line 2 (same email anna@example.dk)"),
        "{csv}"
    );

    // A row refused before the problem was stored beside its reason.
    app.with_db(|conn| {
        diesel::sql_query("UPDATE import_refusals SET problem = NULL WHERE line = 4")
            .execute(conn)
            .unwrap();
    })
    .await;
    let danish = app.page_in(&cookie, &location, "da").await;
    assert!(
        danish.contains("duplicate of line 2 (same email anna@example.dk)"),
        "{danish}"
    );
    assert!(danish.contains("Sproget &#39;fi&#39; kendes ikke"), "{danish}");
}

both_backends!(
    exports_are_mapped_and_refusals_explained_through_the_api,
    exports_are_mapped_and_refusals_explained_through_the_cli,
    exports_are_mapped_and_refusals_explained_through_the_page,
    refusals_are_explained_in_the_marketers_language,
);
