use serde_json::{Value, json};

use crate::helpers::{Backend, both_backends, json, signed_up, spawn_app};

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

/// Every `/api/v1` route, tried with workspace B's token on workspace A's ids: 404 (or a
/// refusal for a reference to A's data in a body), and A's data unchanged. The route list is
/// read from the source, so a new route without a row here fails this test.
async fn every_api_route_is_isolated(backend: Backend) {
    use diesel::prelude::*;
    use optbridge::db::schema::{campaigns, consent_texts, contacts, invitations};

    let (app, a, _fake) = signed_up(backend).await;
    let a_token = a.ws.token.clone();
    let b = app.create_workspace("Shop B").await;
    let a_id = a.ws.id.clone();
    let (contact, campaign, text): (String, String, String) = app
        .with_db(move |c| {
            let contact = contacts::table
                .filter(contacts::workspace_id.eq(&a_id))
                .filter(contacts::email.eq("anna@example.dk"))
                .select(contacts::id)
                .first(c)
                .unwrap();
            let campaign = campaigns::table
                .filter(campaigns::workspace_id.eq(&a_id))
                .select(campaigns::id)
                .first(c)
                .unwrap();
            let text = consent_texts::table
                .filter(consent_texts::workspace_id.eq(&a_id))
                .select(consent_texts::id)
                .first(c)
                .unwrap();
            (contact, campaign, text)
        })
        .await;
    // A webhook endpoint of A's.
    let a_id = a.ws.id.clone();
    let (hook, _) = app
        .with_db(move |c| {
            optbridge::webhooks::create(
                c,
                &Default::default(),
                &a_id,
                &optbridge::activity::Actor::ApiToken { label: "test".into() },
                "https://a.example/hooks/a-secret-path",
                &[optbridge::webhooks::EventType::ConsentConfirmed],
            )
            .unwrap()
        })
        .await;
    let hook = hook.id;
    // A second campaign of A, still a draft: B must not be able to send it.
    let draft = app
        .campaign(
            &a_token,
            &json!({"name": "A draft", "consent_text_id": text, "subject": "S", "intro": "I"}),
        )
        .await;

    // (method, route pattern, concrete path, body, expected status for B)
    let cases: Vec<(&str, &str, String, Option<Value>, u16)> = vec![
        ("get", "/contacts/{id}", format!("/contacts/{contact}"), None, 404),
        (
            "get",
            "/contacts/{id}/consent",
            format!("/contacts/{contact}/consent"),
            None,
            404,
        ),
        ("delete", "/contacts/{id}", format!("/contacts/{contact}"), None, 404),
        (
            "get",
            "/consent-texts/{id}",
            format!("/consent-texts/{text}"),
            None,
            404,
        ),
        ("get", "/campaigns/{id}", format!("/campaigns/{campaign}"), None, 404),
        (
            "post",
            "/campaigns/{id}/send",
            format!("/campaigns/{draft}/send"),
            None,
            404,
        ),
        (
            "post",
            "/campaigns/{id}/follow-ups",
            format!("/campaigns/{campaign}/follow-ups"),
            Some(json!({"audience": "not_opened", "subject": "Again", "intro": "Still want texts?"})),
            404,
        ),
        (
            "get",
            "/campaigns/{id}/funnel",
            format!("/campaigns/{campaign}/funnel"),
            None,
            404,
        ),
        (
            "get",
            "/campaigns/{id}/recipients.csv",
            format!("/campaigns/{campaign}/recipients.csv"),
            None,
            404,
        ),
        (
            "post",
            "/campaigns",
            "/campaigns".to_owned(),
            Some(json!({"name": "Stolen", "consent_text_id": text, "subject": "S", "intro": "I"})),
            422,
        ),
        ("delete", "/webhooks/{id}", format!("/webhooks/{hook}"), None, 404),
        (
            "patch",
            "/campaigns/{id}",
            format!("/campaigns/{draft}"),
            Some(json!({"name": "Stolen"})),
            404,
        ),
        (
            "post",
            "/campaigns/{id}/pause",
            format!("/campaigns/{campaign}/pause"),
            None,
            404,
        ),
        (
            "post",
            "/campaigns/{id}/resume",
            format!("/campaigns/{campaign}/resume"),
            None,
            404,
        ),
        (
            "post",
            "/campaigns/{id}/cancel",
            format!("/campaigns/{draft}/cancel"),
            None,
            404,
        ),
        (
            "post",
            "/campaigns/{id}/test",
            format!("/campaigns/{draft}/test"),
            Some(json!({"email": "b@b.example"})),
            404,
        ),
        (
            "get",
            "/campaigns/{id}/preview",
            format!("/campaigns/{draft}/preview"),
            None,
            404,
        ),
        // Routes without ids act on B's own data; what they show is checked below.
        ("get", "/contacts", "/contacts".to_owned(), None, 200),
        ("get", "/suppressions", "/suppressions".to_owned(), None, 200),
        ("get", "/webhooks", "/webhooks".to_owned(), None, 200),
        (
            "post",
            "/webhooks",
            "/webhooks".to_owned(),
            Some(json!({"url": "https://93.184.216.34/b", "events": ["consent.confirmed"]})),
            201,
        ),
        // The OpenAPI document holds no workspace's data and needs no token.
        (
            "get",
            "/api/v1/openapi.json",
            "/api/v1/openapi.json".to_owned(),
            None,
            200,
        ),
        ("get", "/campaigns", "/campaigns".to_owned(), None, 200),
        ("get", "/consent-texts", "/consent-texts".to_owned(), None, 200),
        ("get", "/consents/export", "/consents/export".to_owned(), None, 200),
        ("get", "/workspace", "/workspace".to_owned(), None, 200),
        // B's activity log: none of A's entries (the leak check below).
        ("get", "/activity", "/activity".to_owned(), None, 200),
        ("post", "/contacts/import", "/contacts/import".to_owned(), None, 200),
        (
            "post",
            "/consent-texts",
            "/consent-texts".to_owned(),
            Some(
                json!({"locale": "da", "company_name": "Shop B", "privacy_url": "https://b.example/privacy",
                        "body": "Ja tak, Shop B må sende mig tilbud på SMS. Svar STOP for at afmelde."}),
            ),
            201,
        ),
    ];

    let source: String = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/src/routes/api"))
        .unwrap()
        .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
        .collect();
    let mut routes = Vec::new();
    for method in ["get", "post", "delete", "put", "patch"] {
        for part in source.split(&format!("#[{method}(\"")).skip(1) {
            routes.push((method, part.split('"').next().unwrap().to_owned()));
        }
    }
    assert!(routes.len() >= 15, "found the routes: {routes:?}");
    for (method, route) in &routes {
        assert!(
            cases.iter().any(|(m, r, ..)| m == method && r == route),
            "{method} /api/v1{route} has no isolation case"
        );
    }

    for (method, _, path, body, expected) in &cases {
        let url = match path.strip_prefix("/api/v1") {
            Some(_) => app.url(path),
            None => app.url(&format!("/api/v1{path}")),
        };
        let request = match *method {
            "get" => app.client.get(url),
            "delete" => app.client.delete(url),
            "patch" => app.client.patch(url),
            _ => app.client.post(url),
        }
        .bearer_auth(&b.token);
        let request = match (path.as_str(), body) {
            ("/contacts/import", _) => request.header("Content-Type", "text/csv").body("email\nb@b.example\n"),
            (_, Some(body)) => request.json(body),
            (_, None) => request,
        };
        let res = request.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        assert_eq!(status, *expected, "{method} {path} as B: {text}");
        for secret in [
            "anna@example.dk",
            &contact,
            &campaign,
            "+4520123456",
            "a-secret-path",
            &hook,
        ] {
            assert!(!text.contains(secret), "{method} {path} as B leaks {secret}: {text}");
        }
    }

    // A's data is as it was.
    assert_eq!(
        app.get(&a_token, &format!("/api/v1/contacts/{contact}")).await.status(),
        200
    );
    let draft_now = json(app.get(&a_token, &format!("/api/v1/campaigns/{draft}")).await).await;
    assert_eq!(draft_now["status"], "draft", "B could not send A's campaign");
    let a_id = a.ws.id.clone();
    let b_id = b.id.clone();
    let (a_invitations, b_campaigns) = app
        .with_db(move |c| {
            (
                invitations::table
                    .filter(invitations::workspace_id.eq(&a_id))
                    .count()
                    .get_result::<i64>(c)
                    .unwrap(),
                campaigns::table
                    .filter(campaigns::workspace_id.eq(&b_id))
                    .count()
                    .get_result::<i64>(c)
                    .unwrap(),
            )
        })
        .await;
    assert_eq!(a_invitations, 8);
    assert_eq!(b_campaigns, 0, "no campaign of B on A's consent text");
}

/// The marketer's dashboard routes (import, consent-text editor, contact list), tried by
/// workspace B's user on workspace A's ids: 404 or B's own data, never A's.
async fn dashboard_import_text_and_contact_routes_are_isolated(backend: Backend) {
    let app = spawn_app(backend).await;
    let a = app.create_workspace("Shop A").await;
    let b = app.create_workspace("Shop B").await;
    let (a_cookie, a_csrf) = app.dashboard_session(&a.id, "a@a.example").await;
    let (b_cookie, b_csrf) = app.dashboard_session(&b.id, "b@b.example").await;
    let (a_job, _) = app
        .import_through_page(
            &a_cookie,
            &a_csrf,
            "a.csv",
            b"email,first_name\nanna@example.dk,Anna\nbroken,X\n",
        )
        .await;
    let a_text = app.consent_text(&a.token, "da").await;

    // (method, route pattern, concrete path, expected status for B)
    let cases: Vec<(&str, &str, String, u16)> = vec![
        ("get", "/app/import/{id}", a_job.clone(), 404),
        (
            "get",
            "/app/import/{id}/refused.csv",
            format!("{a_job}/refused.csv"),
            404,
        ),
        ("get", "/app/import", "/app/import".to_owned(), 200),
        ("get", "/app/contacts", "/app/contacts?q=anna".to_owned(), 200),
        ("get", "/app/contacts", "/app/contacts".to_owned(), 200),
        (
            "get",
            "/app/consent-texts/new",
            format!("/app/consent-texts/new?saved={a_text}"),
            200,
        ),
    ];
    for (_, route, path, expected) in &cases {
        let res = app
            .client
            .get(app.url(path))
            .header("Cookie", &b_cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), *expected, "{route} as B");
        let text = res.text().await.unwrap();
        for secret in ["anna@example.dk", "broken", "a.csv", &a_text, "Saved as version"] {
            assert!(!text.contains(secret), "{route} as B leaks {secret}: {text}");
        }
    }
    // B's own POSTs land in B.
    let (b_job, page) = app
        .import_through_page(&b_cookie, &b_csrf, "b.csv", b"email\nbo@example.dk\n")
        .await;
    assert!(page.contains("data-metric=\"imported\">1<"), "{page}");
    let res = app
        .client
        .get(app.url(&b_job))
        .header("Cookie", &a_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404, "A cannot see B's job either");
    let (a_id, b_id) = (a.id.clone(), b.id.clone());
    let counts = app
        .with_db(move |c| {
            (
                optbridge::contacts::count(c, &a_id).unwrap(),
                optbridge::contacts::count(c, &b_id).unwrap(),
            )
        })
        .await;
    assert_eq!(counts, (1, 1));
}

both_backends!(
    dashboard_import_text_and_contact_routes_are_isolated,
    api_requires_a_valid_token,
    unknown_api_routes_are_json_404,
    workspaces_are_isolated,
    every_api_route_is_isolated,
);
