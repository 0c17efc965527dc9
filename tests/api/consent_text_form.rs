//! The consent-text editor at `/app/consent-texts/new`: refusals next to their field with the
//! input kept (422), a preview that is the landing page's own consent block, the DOI SMS with
//! its encoding and segments, immutable versions, and viewers refused.

use diesel::prelude::*;
use optbridge::db::schema::{activity, consent_texts, invitations};
use optbridge::links::LinkPurpose;

use crate::helpers::{Backend, DANISH_CONSENT, TestApp, both_backends, field, spawn_app};

async fn post(app: &TestApp, cookie: &str, form: &[(&str, &str)]) -> (u16, String, Option<String>) {
    post_in(app, cookie, form, None).await
}

/// [`post`] with the browser's `Accept-Language`, which chooses the dashboard's language.
async fn post_in(
    app: &TestApp,
    cookie: &str,
    form: &[(&str, &str)],
    language: Option<&str>,
) -> (u16, String, Option<String>) {
    let mut request = app
        .client
        .post(app.url("/app/consent-texts/new"))
        .header("Cookie", cookie);
    if let Some(language) = language {
        request = request.header("Accept-Language", language);
    }
    let res = request.form(form).send().await.unwrap();
    let status = res.status().as_u16();
    let location = res.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
    (status, res.text().await.unwrap(), location)
}

/// The landing page's consent block: from the topics to the consent box's label.
fn consent_block(page: &str) -> &str {
    let start = page.find("<fieldset>").expect("topics");
    let consent_box = start + page[start..].find("name=\"consent\"").expect("the consent box");
    let end = consent_box + page[consent_box..].find("</label>").expect("its label") + "</label>".len();
    &page[start..end]
}

fn versions(conn: &mut optbridge::db::DbConn, workspace: &str) -> i64 {
    consent_texts::table
        .filter(consent_texts::workspace_id.eq(workspace))
        .count()
        .get_result(conn)
        .unwrap()
}

async fn consent_texts_are_checked_previewed_and_saved_from_the_dashboard(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Skobutikken").await;
    let (cookie, csrf) = app.dashboard_session(&ws.id, "marketer@skobutikken.example").await;

    let page = app
        .client
        .get(app.url("/app/consent-texts/new"))
        .header("Cookie", &cookie)
        .header("Accept-Language", "da")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Ny samtykketekst"), "{page}");
    assert!(
        page.contains("value=\"Skobutikken\""),
        "the company name starts as the workspace's"
    );

    let good = [
        ("csrf", csrf.as_str()),
        ("locale", "da"),
        ("company_name", "Skobutikken"),
        ("body", DANISH_CONSENT),
        ("categories", "Nyheder\r\nTilbud"),
        ("privacy_url", "https://skobutikken.example/privatliv"),
    ];
    let with = |name: &str, value: &'static str, intent: &'static str| {
        let mut form: Vec<(&str, &str)> = good
            .iter()
            .map(|&(k, v)| if k == name { (k, value) } else { (k, v) })
            .collect();
        form.push(("intent", intent));
        form
    };

    // "gratis" is refused, the reason next to the text, the input kept.
    let gratis = "Ja tak, Skobutikken må sende mig tilbud på SMS og en gratis gave. Svar STOP for at framelde.";
    let (status, page, _) = post(&app, &cookie, &with("body", gratis, "save")).await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("id=\"body-error\""), "{page}");
    let error = page
        .split("id=\"body-error\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap();
    assert!(error.contains("gratis"), "{error}");
    assert!(
        page.contains("aria-describedby=\"body-hint body-error\" aria-invalid=\"true\""),
        "{page}"
    );
    assert!(
        page.contains(&format!(">{gratis}</textarea>")),
        "the input is kept: {page}"
    );
    assert!(
        page.contains("Nyheder\r\nTilbud") || page.contains("Nyheder\nTilbud"),
        "{page}"
    );
    // A broken privacy link, next to its field.
    let (status, page, _) = post(&app, &cookie, &with("privacy_url", "javascript:alert(1)", "preview")).await;
    assert_eq!(status, 422);
    assert!(page.contains("id=\"privacy_url-error\""), "{page}");
    // The reasons are in the dashboard's language: each rule the text breaks, in Danish.
    let broken = with(
        "body",
        "Skoene er smukke, og du kan købe dem i butikken hver eneste dag hele året rundt.",
        "preview",
    );
    let (status, page, _) = post_in(&app, &cookie, &broken, Some("da")).await;
    assert_eq!(status, 422);
    for words in [
        "Nævn virksomheden Skobutikken",
        "Skriv, at samtykket gælder SMS",
        "Skriv, hvordan samtykket trækkes tilbage (fx &#39;Du kan til enhver tid",
    ] {
        assert!(page.contains(words), "{words}: {page}");
    }
    assert!(!page.contains("body must"), "the API's words: {page}");
    let ws_id = ws.id.clone();
    assert_eq!(app.with_db(move |c| versions(c, &ws_id)).await, 0, "nothing saved");

    // Preview: the landing page's consent block and the DOI SMS, nothing saved.
    let (status, preview, _) = post(&app, &cookie, &with("body", DANISH_CONSENT, "preview")).await;
    assert_eq!(status, 200, "{preview}");
    assert!(preview.contains("lang=\"da\""), "{preview}");
    let sms = optbridge::sms::outbound::text_to_send(
        &optbridge::i18n::sms::doi_request(
            optbridge::domain::Locale::Da,
            "Skobutikken",
            optbridge::sms::outbound::CODE_MASK,
        ),
        Some("123456"),
    );
    let count = optbridge::sms::segments::count(&sms);
    assert!(
        preview.contains(&format!("<pre class=\"sms\" lang=\"da\">{sms}</pre>")),
        "{preview}"
    );
    let encoding = if matches!(count.encoding, optbridge::sms::segments::Encoding::Gsm7) {
        "GSM-7"
    } else {
        "UCS-2"
    };
    assert!(
        preview.contains(&format!(
            "{encoding}, {} characters, {} SMS",
            count.units, count.segments
        )),
        "{preview}"
    );
    let ws_id = ws.id.clone();
    assert_eq!(
        app.with_db(move |c| versions(c, &ws_id)).await,
        0,
        "a preview saves nothing"
    );

    // Save: a new version, logged; the same text again is no new version.
    let (status, _, location) = post(&app, &cookie, &with("body", DANISH_CONSENT, "save")).await;
    assert_eq!(status, 303);
    let location = location.unwrap();
    let text_id = location.split("saved=").nth(1).unwrap().to_owned();
    let saved = app
        .client
        .get(app.url(&location))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(saved.contains("Saved as version 1."), "{saved}");
    let (status, again, _) = post(&app, &cookie, &with("body", DANISH_CONSENT, "save")).await;
    assert_eq!(status, 200);
    assert!(again.contains("identical to version 1"), "{again}");
    let (ws_id, id) = (ws.id.clone(), text_id.clone());
    let (count, logged) = app
        .with_db(move |c| {
            let logged: Vec<(String, String)> = activity::table
                .filter(activity::workspace_id.eq(&ws_id))
                .filter(activity::action.eq("consent_text_created"))
                .select((activity::actor, activity::detail))
                .load(c)
                .unwrap();
            (versions(c, &ws_id), logged)
        })
        .await;
    assert_eq!(count, 1);
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0].1, id);

    // The preview is what the landing page shows for a campaign on this text.
    app.import(&ws.token, "email,locale\nanna@example.dk,da\n").await;
    let campaign = app
        .campaign(
            &ws.token,
            &serde_json::json!({"name": "Spring", "consent_text_id": text_id, "subject": "SMS?", "intro": "Hej."}),
        )
        .await;
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(std::time::Duration::from_secs(10)).await;
    let c = campaign.clone();
    let invitation: String = app
        .with_db(move |conn| {
            invitations::table
                .filter(invitations::campaign_id.eq(&c))
                .select(invitations::id)
                .first(conn)
                .unwrap()
        })
        .await;
    let token = app
        .keyring
        .sign(LinkPurpose::Landing, &invitation, &campaign, "da", optbridge::db::now())
        .unwrap();
    let (status, landing) = app.page(&format!("/l/{token}")).await;
    assert_eq!(status, 200);
    let from_landing = consent_block(&landing).replace(" lang=\"da\"", "");
    let from_preview = consent_block(&saved).replace(" lang=\"da\"", "");
    assert_eq!(from_preview, from_landing);
    assert!(from_landing.contains("Emner: Nyheder, Tilbud"), "{from_landing}");
}

async fn a_viewer_cannot_save_or_preview_a_consent_text(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Skobutikken").await;
    let id = ws.id.clone();
    app.with_db(move |c| {
        optbridge::accounts::create_user_with_role(
            c,
            &id,
            "viewer@skobutikken.example",
            crate::helpers::DASHBOARD_PASSWORD,
            optbridge::accounts::Role::Viewer,
        )
        .unwrap()
    })
    .await;
    let res = app
        .login("viewer@skobutikken.example", crate::helpers::DASHBOARD_PASSWORD)
        .await;
    let cookie = format!(
        "ob_session={}",
        crate::helpers::cookie_value(&crate::helpers::set_cookie(&res, "ob_session").unwrap())
    );
    let page = app
        .client
        .get(app.url("/app/consent-texts/new"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = field(&page, "csrf");
    for intent in ["save", "preview"] {
        let (status, _, _) = post(
            &app,
            &cookie,
            &[
                ("csrf", csrf.as_str()),
                ("locale", "da"),
                ("company_name", "Skobutikken"),
                ("body", DANISH_CONSENT),
                ("privacy_url", "https://skobutikken.example/privatliv"),
                ("intent", intent),
            ],
        )
        .await;
        assert_eq!(status, 403, "{intent}");
    }
    let res = app
        .upload_import(&cookie, &csrf, "contacts.csv", b"email\nanna@example.dk\n")
        .await;
    assert_eq!(res.status(), 403, "a viewer cannot import");
    let ws_id = ws.id.clone();
    let (texts, jobs) = app
        .with_db(move |c| {
            use optbridge::db::schema::import_jobs;
            (
                versions(c, &ws_id),
                import_jobs::table.count().get_result::<i64>(c).unwrap(),
            )
        })
        .await;
    assert_eq!((texts, jobs), (0, 0));
}

both_backends!(
    consent_texts_are_checked_previewed_and_saved_from_the_dashboard,
    a_viewer_cannot_save_or_preview_a_consent_text,
);
