//! What public pages answer when the database is unavailable: the 503 page in the visitor's
//! language, with `Retry-After` and the headers of every page; and the same page works again
//! once the database is back.

use std::time::Duration;

use diesel::prelude::*;
use optbridge::db::schema::invitations;
use optbridge::domain::Locale;
use optbridge::links::LinkPurpose;
use serde_json::json;

use crate::helpers::{Backend, TestApp, both_backends, spawn_app_with};

/// A sent campaign to one contact; returns the contact's signed unsubscribe link.
async fn unsubscribe_link(app: &TestApp) -> String {
    let ws = app.create_workspace("Skobutikken").await;
    app.import(&ws.token, "email,first_name\nanna@example.dk,Anna\n").await;
    let text = app.consent_text(&ws.token, "da").await;
    let campaign = app
        .campaign(
            &ws.token,
            &json!({
                "name": "Spring", "consent_text_id": text,
                "subject": "Skobutikken på SMS", "intro": "Hør først om udsalg.",
                "audience": {"locales": ["da"]}
            }),
        )
        .await;
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    let (inv, campaign): (String, String) = app
        .with_db(|c| {
            invitations::table
                .select((invitations::id, invitations::campaign_id))
                .first(c)
                .unwrap()
        })
        .await;
    app.keyring
        .sign(LinkPurpose::Unsubscribe, &inv, &campaign, "da", optbridge::db::now())
        .unwrap()
}

async fn unsubscribe(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/u/{token}")))
        .header("Accept-Language", "da-DK, en;q=0.5")
        .send()
        .await
        .unwrap()
}

/// Another session holds the invitations table (SQLite: the write lock past the app's busy
/// timeout; PostgreSQL: an exclusive table lock, after which the server drops the connection
/// waiting for it, as a restart would). The one-click unsubscribe answers the localized 503
/// page with Retry-After, and succeeds once the lock is gone.
async fn an_unavailable_database_is_a_localized_503_page_with_retry_after(backend: Backend) {
    let app = spawn_app_with(backend, |a| a.sqlite_busy_timeout_ms = 100).await;
    let token = unsubscribe_link(&app).await;

    let res = match backend {
        Backend::Sqlite => {
            let path = app.database.url.trim_start_matches("sqlite://").to_owned();
            let mut holder = diesel::SqliteConnection::establish(&path).unwrap();
            diesel::sql_query("BEGIN IMMEDIATE").execute(&mut holder).unwrap();
            let res = unsubscribe(&app, &token).await;
            diesel::sql_query("ROLLBACK").execute(&mut holder).unwrap();
            res
        }
        Backend::Postgres => {
            let url = app.database.url.clone();
            let mut holder = diesel::PgConnection::establish(&url).unwrap();
            diesel::sql_query("BEGIN").execute(&mut holder).unwrap();
            diesel::sql_query("LOCK TABLE invitations IN ACCESS EXCLUSIVE MODE")
                .execute(&mut holder)
                .unwrap();
            let pending = tokio::spawn({
                let (client, url) = (app.client.clone(), app.url(&format!("/u/{token}")));
                async move {
                    client
                        .post(url)
                        .header("Accept-Language", "da-DK, en;q=0.5")
                        .send()
                        .await
                        .unwrap()
                }
            });
            terminate_backends_waiting_for_a_lock(&url).await;
            let res = pending.await.unwrap();
            diesel::sql_query("ROLLBACK").execute(&mut holder).unwrap();
            res
        }
    };

    assert_eq!(res.status(), 503);
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(header("retry-after"), "30");
    assert!(header("content-type").starts_with("text/html"));
    assert!(header("content-security-policy").contains("default-src 'none'"));
    assert_eq!(
        header("referrer-policy"),
        "no-referrer",
        "the token in the URL must not leak"
    );
    assert!(header("cache-control").contains("no-store"));
    let body = res.text().await.unwrap();
    let da = optbridge::i18n::page(Locale::Da);
    assert!(body.contains("<html lang=\"da\">"), "{body}");
    assert!(
        body.contains(&format!("<title>{}</title>", da.unavailable_title)),
        "{body}"
    );
    assert!(body.contains(da.unavailable_body), "{body}");

    // The database is back: the same click unsubscribes.
    let res = unsubscribe(&app, &token).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("retry-after").is_none());
}

/// Terminates the sessions of the app's database that wait for a lock (polling until one does).
async fn terminate_backends_waiting_for_a_lock(database_url: &str) {
    #[derive(QueryableByName)]
    struct Terminated {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        terminated: bool,
    }
    let url = database_url.to_owned();
    for _ in 0..200 {
        let url = url.clone();
        let terminated = tokio::task::spawn_blocking(move || {
            let mut conn = diesel::PgConnection::establish(&url).unwrap();
            diesel::sql_query(
                "SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'",
            )
            .load::<Terminated>(&mut conn)
            .unwrap()
        })
        .await
        .unwrap();
        if terminated.iter().any(|t| t.terminated) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no request waited for the lock");
}

both_backends!(an_unavailable_database_is_a_localized_503_page_with_retry_after);
