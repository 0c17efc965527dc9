use serde_json::{Value, json};

use crate::helpers::{Backend, both_backends, json, spawn_app};

fn danish(body: &str) -> Value {
    json!({
        "locale": "da",
        "company_name": "Skobutikken",
        "body": body,
        "categories": ["Nyheder", "Tilbud"],
        "privacy_url": "https://skobutikken.example/privatliv"
    })
}

const BODY: &str = "Ja tak, Skobutikken må sende mig nyheder og tilbud på SMS, højst 4 gange om måneden. \
                    Jeg kan altid trække mit samtykke tilbage ved at svare STOP.";

async fn versions_are_immutable_and_content_addressed(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Skobutikken").await;

    let res = app.post_json(&ws.token, "/api/v1/consent-texts", &danish(BODY)).await;
    assert_eq!(res.status(), 201);
    let v1 = json(res).await;
    assert_eq!(v1["version"], 1);
    let rendered = v1["rendered"].as_str().unwrap();
    assert!(rendered.starts_with(BODY));
    assert!(rendered.contains("Emner: Nyheder, Tilbud"));
    assert_eq!(v1["sha256"], optbridge::crypto::sha256_hex(rendered.as_bytes()));
    assert_eq!(v1["categories"], json!(["Nyheder", "Tilbud"]));
    // The double-opt-in SMS this company name produces: one GSM-7 segment.
    assert_eq!(v1["sms_preview"]["encoding"], "gsm7");
    assert_eq!(v1["sms_preview"]["segments"], 1);
    assert!(
        v1["sms_preview"]["text"]
            .as_str()
            .unwrap()
            .starts_with("Skobutikken: Svar JA")
    );

    // The identical text (whitespace aside) is the same version.
    let res = app
        .post_json(&ws.token, "/api/v1/consent-texts", &danish(&format!("{BODY}\r\n")))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await["id"], v1["id"]);

    // A change makes version 2; another locale starts at 1.
    let res = app
        .post_json(
            &ws.token,
            "/api/v1/consent-texts",
            &danish(&BODY.replace("4 gange", "2 gange")),
        )
        .await;
    assert_eq!(res.status(), 201);
    let v2 = json(res).await;
    assert_eq!(v2["version"], 2);
    assert_ne!(v2["sha256"], v1["sha256"]);
    let english = json!({
        "locale": "en", "company_name": "Skobutikken",
        "body": "Yes, Skobutikken may text me news and offers by SMS, at most 4 times a month. Reply STOP to withdraw.",
        "privacy_url": "https://skobutikken.example/privacy"
    });
    let res = app.post_json(&ws.token, "/api/v1/consent-texts", &english).await;
    assert_eq!(json(res).await["version"], 1);

    let listed = json(app.get(&ws.token, "/api/v1/consent-texts").await).await;
    assert_eq!(listed.as_array().unwrap().len(), 3);
    let shown = json(
        app.get(
            &ws.token,
            &format!("/api/v1/consent-texts/{}", v1["id"].as_str().unwrap()),
        )
        .await,
    )
    .await;
    assert_eq!(shown["sha256"], v1["sha256"]);

    // There is no route to change a version, and the database itself refuses.
    let res = app
        .client
        .put(app.url(&format!("/api/v1/consent-texts/{}", v1["id"].as_str().unwrap())))
        .bearer_auth(&ws.token)
        .json(&danish(BODY))
        .send()
        .await
        .unwrap();
    assert!(res.status() == 404 || res.status() == 405, "{}", res.status());
    let id = v1["id"].as_str().unwrap().to_owned();
    let (update, delete) = app
        .with_db(move |c| {
            use diesel::prelude::*;
            use optbridge::db::schema::consent_texts;
            let update = diesel::update(consent_texts::table.find(&id))
                .set(consent_texts::body.eq("changed"))
                .execute(c);
            let delete = diesel::delete(consent_texts::table.find(&id)).execute(c);
            (update.map_err(|e| e.to_string()), delete.map_err(|e| e.to_string()))
        })
        .await;
    assert!(update.unwrap_err().contains("immutable"));
    assert!(delete.unwrap_err().contains("immutable"));
}

async fn unlawful_texts_are_rejected_with_the_reason(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Skobutikken").await;
    let cases = [
        (danish(&format!("{BODY} Få en gratis gave!")), "gratis"),
        (
            danish("Ja tak, send mig tilbud på SMS. Svar STOP for at afmelde."),
            "company",
        ),
        (
            danish("Ja tak, Skobutikken må sende mig tilbud på e-mail. Svar STOP."),
            "SMS",
        ),
        (
            danish("Ja tak, Skobutikken må sende mig tilbud på SMS hver uge."),
            "withdraw",
        ),
        (
            json!({"locale": "en", "company_name": "Skobutikken", "privacy_url": "https://x.example/p",
                   "body": "Yes, Skobutikken may text me by SMS. Get a FREE gift! Reply STOP to withdraw."}),
            "free",
        ),
        (
            json!({"locale": "fr", "company_name": "Skobutikken", "privacy_url": "https://x.example/p", "body": BODY}),
            "locale",
        ),
    ];
    for (body, needle) in cases {
        let res = app.post_json(&ws.token, "/api/v1/consent-texts", &body).await;
        assert_eq!(res.status(), 422, "{body}");
        let err = json(res).await["error"].as_str().unwrap().to_owned();
        assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    }

    // Malformed JSON and missing fields are 400s.
    let res = app
        .client
        .post(app.url("/api/v1/consent-texts"))
        .bearer_auth(&ws.token)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = app
        .post_json(&ws.token, "/api/v1/consent-texts", &json!({"locale": "da"}))
        .await;
    assert_eq!(res.status(), 400);
    assert!(json(res).await["error"].as_str().unwrap().contains("missing field"));

    let listed = json(app.get(&ws.token, "/api/v1/consent-texts").await).await;
    assert_eq!(listed, json!([]));
}

both_backends!(
    versions_are_immutable_and_content_addressed,
    unlawful_texts_are_rejected_with_the_reason
);
