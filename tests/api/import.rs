use serde_json::json;

use crate::helpers::{Backend, MESSY_REJECTED_LINES, both_backends, json, messy_csv, spawn_app, spawn_app_with};

async fn messy_csv_keeps_good_rows_and_reports_bad_ones_by_line(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Shop").await;

    let body = json(app.post_csv(&ws.token, messy_csv()).await).await;
    assert_eq!(body["imported"], 2, "{body}");
    assert_eq!(body["updated"], 0);
    let rejected = body["rejected"].as_array().unwrap();
    let lines: Vec<u64> = rejected.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, MESSY_REJECTED_LINES, "{body}");
    let errors: Vec<&str> = rejected.iter().map(|r| r["error"].as_str().unwrap()).collect();
    assert!(errors[0].contains("duplicate of line 2"), "{}", errors[0]);
    assert!(errors[1].contains("not an email address"), "{}", errors[1]);
    assert!(
        errors[2].contains("line break") && errors[2].contains("lines 5–6"),
        "{}",
        errors[2]
    );
    assert!(errors[3].contains("not a date"), "{}", errors[3]);
    assert!(errors[4].contains("expected 5 fields"), "{}", errors[4]);
    assert!(errors[5].contains("unsupported locale"), "{}", errors[5]);
    assert!(errors[6].contains("UTF-8"), "{}", errors[6]);

    // The same file again changes nothing: no new contacts, the same rows rejected.
    let again = json(app.post_csv(&ws.token, messy_csv()).await).await;
    assert_eq!(again["imported"], 0);
    assert_eq!(again["updated"], 2);
    assert_eq!(again["rejected"], body["rejected"]);
    let id = ws.id.clone();
    assert_eq!(
        app.with_db(move |c| optbridge::contacts::count(c, &id).unwrap()).await,
        2
    );
}

async fn reimport_updates_fields_and_matches_email_case_insensitively(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Shop").await;
    let first = "email,first_name,locale,email_consent_at,email_consent_source\n\
                 Anna@Example.dk,Anna,da,2024-01-02 03:04:05,footer form\n";
    assert_eq!(json(app.post_csv(&ws.token, first).await).await["imported"], 1);

    // Different case, a new name, an empty locale (which must not erase the stored one).
    let second = "email,first_name,locale\nanna@example.DK,Anne,\n";
    let body = json(app.post_csv(&ws.token, second).await).await;
    assert_eq!(body, json!({"imported": 0, "updated": 1, "rejected": []}));

    let id = ws.id.clone();
    let contact = app
        .with_db(move |c| {
            use diesel::prelude::*;
            use optbridge::db::schema::contacts;
            contacts::table
                .filter(contacts::workspace_id.eq(&id))
                .select(optbridge::contacts::Contact::as_select())
                .first(c)
                .unwrap()
        })
        .await;
    assert_eq!(contact.email, "Anna@Example.dk");
    assert_eq!(contact.first_name.as_deref(), Some("Anne"));
    assert_eq!(contact.locale.as_deref(), Some("da"));
    assert_eq!(contact.email_consent_source.as_deref(), Some("footer form"));
    assert_eq!(contact.email_consent_at.unwrap().to_string(), "2024-01-02 03:04:05");
}

async fn suppressed_contacts_stay_suppressed_after_reimport(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Shop").await;
    app.post_csv(&ws.token, "email\nbo@example.dk\n").await;
    let id = ws.id.clone();
    app.with_db(move |c| {
        use diesel::prelude::*;
        use optbridge::db::schema::suppressions;
        diesel::insert_into(suppressions::table)
            .values((
                suppressions::id.eq(optbridge::db::new_id()),
                suppressions::workspace_id.eq(&id),
                suppressions::channel.eq("email"),
                suppressions::address.eq("bo@example.dk"),
                suppressions::reason.eq("unsubscribed"),
                suppressions::created_at.eq(optbridge::db::now()),
            ))
            .execute(c)
            .unwrap();
    })
    .await;
    let body = json(app.post_csv(&ws.token, "email\nBo@Example.dk\n").await).await;
    assert_eq!(body["updated"], 1);
    let id = ws.id.clone();
    let suppressed = app
        .with_db(move |c| {
            optbridge::contacts::is_suppressed(c, &id, optbridge::domain::Channel::Email, "bo@example.dk").unwrap()
        })
        .await;
    assert!(suppressed);
}

async fn whole_file_problems_are_clear_400s(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Shop").await;

    let res = app.post_csv(&ws.token, "name,phone\nAnna,123\n").await;
    assert_eq!(res.status(), 400);
    let err = json(res).await["error"].as_str().unwrap().to_owned();
    assert!(
        err.contains("no 'email' column") && err.contains("name, phone"),
        "{err}"
    );

    let res = app.post_csv(&ws.token, "").await;
    assert_eq!(res.status(), 400);
    assert!(json(res).await["error"].as_str().unwrap().contains("empty"));

    let res = app
        .client
        .post(app.url("/api/v1/contacts/import"))
        .bearer_auth(&ws.token)
        .header("Content-Type", "multipart/form-data; boundary=x")
        .body("--x--")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);

    let id = ws.id.clone();
    assert_eq!(
        app.with_db(move |c| optbridge::contacts::count(c, &id).unwrap()).await,
        0
    );
}

async fn oversized_bodies_get_413_and_write_nothing(backend: Backend) {
    let app = spawn_app_with(backend, |args| args.import_max_bytes = 1000).await;
    let ws = app.create_workspace("Shop").await;
    let mut csv = String::from("email\n");
    for i in 0..200 {
        csv.push_str(&format!("person{i}@example.dk\n"));
    }
    let res = app.post_csv(&ws.token, csv.clone()).await;
    assert_eq!(res.status(), 413);
    assert!(json(res).await["error"].as_str().unwrap().contains("1000 bytes"));

    // Without Content-Length (chunked transfer), the limit holds while streaming.
    let status = post_chunked(&app.address, &ws.token, csv.as_bytes()).await;
    assert_eq!(status, 413);
    let id = ws.id.clone();
    assert_eq!(
        app.with_db(move |c| optbridge::contacts::count(c, &id).unwrap()).await,
        0
    );
}

/// More rows than one batch, with errors spread across batches.
async fn large_import_spans_batches(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Shop").await;
    let mut csv = String::from("email,first_name\n");
    for i in 0..2500 {
        if i % 1000 == 999 {
            csv.push_str("broken,row\n");
        } else {
            csv.push_str(&format!("person{i}@example.dk,P{i}\n"));
        }
    }
    let body = json(app.post_csv(&ws.token, csv).await).await;
    assert_eq!(body["imported"], 2498, "{}", body["rejected"]);
    let lines: Vec<u64> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [1001, 2001]);
}

/// Posts `body` with `Transfer-Encoding: chunked` over a raw connection; returns the status.
async fn post_chunked(address: &str, token: &str, body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "POST /api/v1/contacts/import HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: text/csv\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(100) {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        // The server may answer 413 and close before the whole body is sent.
        if stream.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"))
}

/// The sample the demo and the README use must import without a single rejected row.
async fn demo_sample_imports_cleanly(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Demo").await;
    let csv = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/demo/contacts.csv")).unwrap();
    let body = json(app.post_csv(&ws.token, csv).await).await;
    assert_eq!(body, json!({"imported": 32, "updated": 0, "rejected": []}));
}

both_backends!(
    messy_csv_keeps_good_rows_and_reports_bad_ones_by_line,
    reimport_updates_fields_and_matches_email_case_insensitively,
    suppressed_contacts_stay_suppressed_after_reimport,
    whole_file_problems_are_clear_400s,
    oversized_bodies_get_413_and_write_nothing,
    large_import_spans_batches,
    demo_sample_imports_cleanly,
);
