//! `GET /api/v1/contacts` and `GET /api/v1/suppressions` for a nightly sync: keyset pages that
//! stay stable while rows are added, strict limits, filters, and only the token's workspace.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::{ANNA, BO, Backend, TestApp, both_backends, json, signed_up, spawn_app};

/// Every page of `path` (which has a `?`), `limit` at a time; `between` runs after each page.
async fn all_pages(
    app: &TestApp,
    token: &str,
    path: &str,
    limit: usize,
    mut between: impl AsyncFnMut(usize),
) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut after: Option<String> = None;
    for page in 0.. {
        let url = match &after {
            None => format!("{path}&limit={limit}"),
            Some(c) => format!("{path}&limit={limit}&after={c}"),
        };
        let res = app.get(token, &url).await;
        assert_eq!(res.status(), 200, "{url}");
        let body = json(res).await;
        let data = body["data"].as_array().unwrap();
        assert!(data.len() <= limit);
        rows.extend(data.iter().cloned());
        match body["next"].as_str() {
            None => {
                assert!(body["next"].is_null());
                break;
            }
            Some(next) => {
                assert_eq!(data.len(), limit, "a page with a next is full");
                after = Some(next.to_owned());
            }
        }
        between(page).await;
        assert!(page < 100, "runaway paging");
    }
    rows
}

async fn contact_pages_are_stable_while_contacts_are_added(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Shop").await;
    let other = app.create_workspace("Other shop").await;
    let mut csv = String::from("email,locale,external_id\n");
    for i in 0..25 {
        csv.push_str(&format!(
            "c{i:02}@example.dk,{},ext-{i}\n",
            if i % 5 == 0 { "nb" } else { "da" }
        ));
    }
    app.import(&ws.token, &csv).await;
    app.import(&other.token, "email\nsomeone@else.example\n").await;

    // Five more arrive while the sync is on its second page: none is skipped or repeated.
    let mut added = false;
    let rows = all_pages(&app, &ws.token, "/api/v1/contacts?", 10, async |page| {
        if page == 1 && !added {
            added = true;
            let mut more = String::from("email\n");
            for i in 0..5 {
                more.push_str(&format!("late{i}@example.dk\n"));
            }
            app.import(&ws.token, &more).await;
        }
    })
    .await;
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), 30, "the 25, then the 5 added while paging");
    assert_eq!(unique.len(), 30, "no contact twice");
    assert!(
        rows.iter().all(|r| r["email"] != "someone@else.example"),
        "only this workspace"
    );
    let first = &rows[0];
    for key in ["email", "locale", "external_id", "created_at", "updated_at"] {
        assert!(first.get(key).is_some(), "{key} in {first}");
    }
    assert_eq!(first["sms_consent"], "none");
    assert_eq!(first["suppressed"], false);
    assert!(first.get("workspace_id").is_none());
    let updated: Vec<&str> = rows.iter().map(|r| r["updated_at"].as_str().unwrap()).collect();
    assert!(updated.windows(2).all(|w| w[0] <= w[1]), "in updated_at order");

    // Filters.
    let nb = json(app.get(&ws.token, "/api/v1/contacts?locale=nb").await).await;
    assert_eq!(nb["data"].as_array().unwrap().len(), 5);
    assert!(nb["data"].as_array().unwrap().iter().all(|c| c["locale"] == "nb"));
    let cutoff = updated[25];
    let since = json(
        app.get(
            &ws.token,
            &format!("/api/v1/contacts?updated_since={}Z", cutoff.trim_end_matches('Z')),
        )
        .await,
    )
    .await;
    let late = since["data"].as_array().unwrap();
    assert!(late.len() >= 5 && late.len() < 30, "{}", late.len());
    assert!(late.iter().all(|c| c["updated_at"].as_str().unwrap() >= cutoff));

    // Default and strict limits, and forged cursors.
    let all = json(app.get(&ws.token, "/api/v1/contacts").await).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 30, "default limit 100");
    assert!(all["next"].is_null());
    for bad in ["0", "1001", "-1", "ten", "2.5", ""] {
        let res = app.get(&ws.token, &format!("/api/v1/contacts?limit={bad}")).await;
        assert_eq!(res.status(), 400, "limit={bad}");
        let error = json(res).await["error"].as_str().unwrap().to_owned();
        assert!(error.contains("1 to 1000"), "{error}");
    }
    assert_eq!(app.get(&ws.token, "/api/v1/contacts?limit=1000").await.status(), 200);
    for bad in ["nonsense", "MTIz", "%00"] {
        let res = app.get(&ws.token, &format!("/api/v1/contacts?after={bad}")).await;
        assert_eq!(res.status(), 400, "after={bad}");
    }
    for bad in ["sms_consent=maybe", "suppressed=yes", "updated_since=yesterday"] {
        let res = app.get(&ws.token, &format!("/api/v1/contacts?{bad}")).await;
        assert_eq!(res.status(), 400, "{bad}");
        assert!(
            json(res).await["error"]
                .as_str()
                .unwrap()
                .contains(bad.split('=').next().unwrap())
        );
    }
    // Another workspace's cursor shows nothing of this one.
    let page = json(app.get(&ws.token, "/api/v1/contacts?limit=1").await).await;
    let cursor = page["next"].as_str().unwrap();
    let theirs = json(app.get(&other.token, &format!("/api/v1/contacts?after={cursor}")).await).await;
    assert!(
        theirs["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["email"] == "someone@else.example"),
        "{theirs}"
    );
}

async fn consent_and_suppression_states_are_listed_and_filtered(backend: Backend) {
    let (app, inv, _fake) = signed_up(backend).await;
    let token = &inv.ws.token;
    let before = json(app.get(token, "/api/v1/contacts?sms_consent=active").await).await;
    let phones: HashSet<&str> = before["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["phone"].as_str().unwrap())
        .collect();
    assert_eq!(phones, HashSet::from([ANNA, BO]));
    let stamp = before["data"][0]["updated_at"].as_str().unwrap().to_owned();

    // Bo sends STOP: withdrawn, and his number is suppressed.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    app.sms_reply(BO, "STOP", "SMsync01").await;
    app.drain_outbox(std::time::Duration::from_secs(10)).await;
    let withdrawn = json(app.get(token, "/api/v1/contacts?sms_consent=withdrawn").await).await;
    let withdrawn = withdrawn["data"].as_array().unwrap();
    assert_eq!(withdrawn.len(), 1);
    assert_eq!(withdrawn[0]["email"], "bo@example.dk");
    assert_eq!(withdrawn[0]["phone"], BO);
    assert_eq!(withdrawn[0]["suppressed"], true);
    assert!(
        withdrawn[0]["updated_at"].as_str().unwrap() > stamp.as_str(),
        "a consent change touches the contact"
    );
    let active = json(app.get(token, "/api/v1/contacts?sms_consent=active").await).await;
    assert_eq!(active["data"].as_array().unwrap().len(), 1);
    let none = json(app.get(token, "/api/v1/contacts?sms_consent=none").await).await;
    assert_eq!(none["data"].as_array().unwrap().len(), 6);
    let suppressed = json(app.get(token, "/api/v1/contacts?suppressed=true").await).await;
    assert_eq!(suppressed["data"].as_array().unwrap().len(), 1);
    let not = json(app.get(token, "/api/v1/contacts?suppressed=false").await).await;
    assert_eq!(not["data"].as_array().unwrap().len(), 7);
    let combined = json(
        app.get(token, "/api/v1/contacts?sms_consent=active&suppressed=false&locale=da")
            .await,
    )
    .await;
    assert_eq!(combined["data"][0]["email"], "anna@example.dk");
    assert_eq!(combined["data"].as_array().unwrap().len(), 1);
    // Only the contacts changed since the stamp (Bo): what a nightly sync asks for.
    let since = json(
        app.get(token, &format!("/api/v1/contacts?updated_since={stamp}Z"))
            .await,
    )
    .await;
    assert!(
        since["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["email"] == "bo@example.dk")
    );

    // The suppression list: the number, why, since when.
    let list = json(app.get(token, "/api/v1/suppressions").await).await;
    let rows = list["data"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{list}");
    assert_eq!(rows[0]["channel"], "sms");
    assert_eq!(rows[0]["phone"], BO);
    assert!(rows[0].get("email").is_none());
    assert!(
        rows[0]["reason"].as_str().unwrap().to_lowercase().contains("stop"),
        "{}",
        rows[0]
    );
    assert!(rows[0]["suppressed_at"].is_string());
    assert!(list["next"].is_null());
    // Another workspace sees none of it.
    let other = app.create_workspace("Other").await;
    assert_eq!(
        json(app.get(&other.token, "/api/v1/suppressions").await).await["data"],
        json!([])
    );
    assert_eq!(
        json(app.get(&other.token, "/api/v1/contacts").await).await["data"],
        json!([])
    );
}

async fn suppression_pages_are_stable_while_suppressions_are_added(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Shop").await;
    let ws_id = ws.id.clone();
    let add = move |from: usize, to: usize| {
        let ws_id = ws_id.clone();
        move |c: &mut optbridge::db::DbConn| {
            for i in from..to {
                optbridge::contacts::suppress(
                    c,
                    &ws_id,
                    optbridge::domain::Channel::Email,
                    &format!("gone{i:02}@example.dk"),
                    "hard bounce: 550 no such user",
                )
                .unwrap();
            }
        }
    };
    app.with_db(add(0, 12)).await;
    let mut added = false;
    let rows = all_pages(&app, &ws.token, "/api/v1/suppressions?", 5, async |_| {
        if !added {
            added = true;
            app.with_db(add(12, 15)).await;
        }
    })
    .await;
    let emails: Vec<&str> = rows.iter().map(|r| r["email"].as_str().unwrap()).collect();
    assert_eq!(emails.len(), 15);
    assert_eq!(emails.iter().collect::<HashSet<_>>().len(), 15);
    assert!(
        rows.iter()
            .all(|r| r["reason"] == "hard bounce: 550 no such user" && r["channel"] == "email")
    );
    assert_eq!(app.get(&ws.token, "/api/v1/suppressions?limit=0").await.status(), 400);
}

both_backends!(
    contact_pages_are_stable_while_contacts_are_added,
    consent_and_suppression_states_are_listed_and_filtered,
    suppression_pages_are_stable_while_suppressions_are_added,
);
