use serde_json::json;

use crate::helpers::{Backend, both_backends, json, spawn_app};

async fn api_requires_a_valid_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Shop A").await;

    let res = app.client.get(app.url("/api/v1/workspace")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    assert!(json(res).await["error"].as_str().unwrap().contains("Authorization"));

    for bad in ["obk_not-a-real-token", "garbage", ""] {
        let res = app.get(bad, "/api/v1/workspace").await;
        assert_eq!(res.status(), 401, "token {bad:?}");
    }
    let res = app
        .client
        .get(app.url("/api/v1/workspace"))
        .header("Authorization", format!("Basic {}", ws.token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "only the Bearer scheme is accepted");

    let res = app.get(&ws.token, "/api/v1/workspace").await;
    assert_eq!(res.status(), 200);
    let body = json(res).await;
    assert_eq!(body["id"], ws.id.as_str());
    assert_eq!(body["name"], "Shop A");

    // A revoked token stops working at once.
    let (id, token) = (ws.id.clone(), ws.token.clone());
    assert!(
        app.with_db(move |c| optbridge::workspace::revoke_token(c, &id, &token).unwrap())
            .await
    );
    assert_eq!(app.get(&ws.token, "/api/v1/workspace").await.status(), 401);
}

async fn unknown_api_routes_are_json_404(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Shop").await;
    let res = app.get(&ws.token, "/api/v1/nothing-here").await;
    assert_eq!(res.status(), 404);
    assert!(json(res).await["error"].is_string());
}

/// Workspace B's token can neither read nor change anything of workspace A.
async fn workspaces_are_isolated(backend: Backend) {
    let app = spawn_app(backend).await;
    let a = app.create_workspace("Shop A").await;
    let b = app.create_workspace("Shop B").await;

    let res = app
        .post_csv(&a.token, "email,first_name\nanna@example.dk,Anna\nbo@example.dk,Bo\n")
        .await;
    assert_eq!(json(res).await["imported"], 2);
    let text = json(
        app.post_json(
            &a.token,
            "/api/v1/consent-texts",
            &json!({
                "locale": "da", "company_name": "Shop A",
                "body": "Ja tak, Shop A må sende mig tilbud på SMS. Svar STOP for at afmelde.",
                "privacy_url": "https://a.example/privacy"
            }),
        )
        .await,
    )
    .await;
    let text_id = text["id"].as_str().unwrap().to_owned();
    let a_id = a.id.clone();
    let contact_id: String = app
        .with_db(move |c| {
            use diesel::prelude::*;
            use optbridge::db::schema::contacts;
            contacts::table
                .filter(contacts::workspace_id.eq(&a_id))
                .select(contacts::id)
                .first(c)
                .unwrap()
        })
        .await;

    // A sees its own data.
    assert_eq!(
        app.get(&a.token, &format!("/api/v1/consent-texts/{text_id}"))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.get(&a.token, &format!("/api/v1/contacts/{contact_id}"))
            .await
            .status(),
        200
    );

    // B sees nothing of A's, and learns nothing from the answer.
    assert_eq!(
        app.get(&b.token, &format!("/api/v1/consent-texts/{text_id}"))
            .await
            .status(),
        404
    );
    assert_eq!(
        app.get(&b.token, &format!("/api/v1/contacts/{contact_id}"))
            .await
            .status(),
        404
    );
    let listed = json(app.get(&b.token, "/api/v1/consent-texts").await).await;
    assert_eq!(listed, json!([]));
    assert_eq!(
        json(app.get(&b.token, "/api/v1/workspace").await).await["id"],
        b.id.as_str()
    );

    // B importing the same addresses creates B's own contacts and leaves A's untouched.
    let res = app
        .post_csv(&b.token, "email,first_name\nanna@example.dk,Changed by B\n")
        .await;
    let body = json(res).await;
    assert_eq!(body["imported"], 1);
    assert_eq!(body["updated"], 0);
    let contact = json(app.get(&a.token, &format!("/api/v1/contacts/{contact_id}")).await).await;
    assert_eq!(contact["first_name"], "Anna");
    let (a_id, b_id) = (a.id.clone(), b.id.clone());
    let counts = app
        .with_db(move |c| {
            (
                optbridge::contacts::count(c, &a_id).unwrap(),
                optbridge::contacts::count(c, &b_id).unwrap(),
            )
        })
        .await;
    assert_eq!(counts, (2, 1));
}

both_backends!(
    api_requires_a_valid_token,
    unknown_api_routes_are_json_404,
    workspaces_are_isolated
);
