//! The campaign editor and controls in the dashboard (issue 16, items 4–7 and 11): a draft
//! written in the form with variants added and removed without JavaScript, edited, previewed
//! (sandboxed `iframe srcdoc` under the unchanged CSP), test-sent, scheduled in the workspace's
//! time zone, paused, resumed and cancelled; CSRF and the editor role on every POST.

use std::time::Duration;

use diesel::prelude::*;
use optbridge::accounts::Role;
use optbridge::db::schema::campaigns;

use crate::helpers::{Backend, TestApp, TestWorkspace, both_backends, cookie_value, field, set_cookie, spawn_app_with};
use crate::smtp_sink::SmtpSink;

const PASSWORD: &str = "a long enough password";

async fn session_as(app: &TestApp, ws: &TestWorkspace, email: &'static str, role: Role) -> String {
    let id = ws.id.clone();
    app.with_db(move |c| optbridge::accounts::create_user_with_role(c, &id, email, PASSWORD, role).unwrap())
        .await;
    let res = app.login(email, PASSWORD).await;
    assert_eq!(res.status(), 303);
    format!(
        "ob_session={}",
        cookie_value(&set_cookie(&res, "ob_session").expect("session cookie"))
    )
}

async fn get(app: &TestApp, cookie: &str, path: &str) -> (u16, String, Option<String>) {
    let res = app
        .client
        .get(app.url(path))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap();
    let csp = res
        .headers()
        .get("content-security-policy")
        .map(|v| v.to_str().unwrap().to_owned());
    (res.status().as_u16(), res.text().await.unwrap(), csp)
}

async fn post(app: &TestApp, cookie: &str, path: &str, form: &[(&str, &str)]) -> (u16, String, Option<String>) {
    post_in(app, cookie, path, form, None).await
}

/// [`post`] with the browser's `Accept-Language`, which chooses the dashboard's language.
async fn post_in(
    app: &TestApp,
    cookie: &str,
    path: &str,
    form: &[(&str, &str)],
    language: Option<&str>,
) -> (u16, String, Option<String>) {
    let mut request = app.client.post(app.url(path)).header("Cookie", cookie);
    if let Some(language) = language {
        request = request.header("Accept-Language", language);
    }
    let res = request.form(form).send().await.unwrap();
    let status = res.status().as_u16();
    let location = res.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
    (status, res.text().await.unwrap(), location)
}

async fn status_of(app: &TestApp, campaign: &str) -> String {
    let id = campaign.to_owned();
    app.with_db(move |c| campaigns::table.find(&id).select(campaigns::status).first(c).unwrap())
        .await
}

async fn a_marketer_writes_previews_tests_and_sends_a_campaign(backend: Backend) {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = spawn_app_with(backend, move |a| a.smtp_url = Some(url)).await;
    let ws = app.create_workspace("Skobutikken").await;
    app.import(
        &ws.token,
        "email,locale\nanna@example.dk,da\nbo@example.dk,da\nelsa@example.se,sv\n",
    )
    .await;
    let da = app.consent_text(&ws.token, "da").await;
    let sv = app.consent_text(&ws.token, "sv").await;
    let editor = session_as(&app, &ws, "editor@shop.example", Role::Editor).await;
    let viewer = session_as(&app, &ws, "viewer@shop.example", Role::Viewer).await;

    let (status, page, _) = get(&app, &editor, "/app/campaigns/new").await;
    assert_eq!(status, 200);
    assert!(page.contains("name=\"consent_sv\"") && page.contains(&sv));
    let csrf = field(&page, "csrf");
    let mut form: Vec<(&str, &str)> = vec![
        ("csrf", &csrf),
        ("variants", "1"),
        ("name", "Forår"),
        ("locales", "da"),
        ("locales", "sv"),
        ("consent_da", &da),
        ("consent_sv", &sv),
        ("subject_da", "Vil du have SMS?"),
        ("subject_sv", "Vill du ha SMS?"),
        ("intro_da", "Hør først om udsalg."),
        ("intro_sv", "Hör först om rean."),
        ("frequency_da", "højst 4 gange om måneden"),
        ("frequency_sv", "högst 4 gånger i månaden"),
        ("v0_name", "A"),
        ("v0_weight", "1"),
    ];
    // Adding a variant is a submit that shows the form again, with the input kept.
    let mut add = form.clone();
    add.push(("action", "add_variant"));
    let (status, again, _) = post(&app, &editor, "/app/campaigns/new", &add).await;
    assert_eq!(status, 200);
    assert!(again.contains("name=\"v1_name\"") && again.contains("value=\"Vill du ha SMS?\""));
    assert!(again.contains("name=\"variants\" value=\"2\""));
    let mut remove = add.clone();
    remove.retain(|(k, _)| *k != "action" && *k != "variants");
    remove.extend([("variants", "2"), ("action", "remove_1")]);
    let (_, fewer, _) = post(&app, &editor, "/app/campaigns/new", &remove).await;
    assert!(!fewer.contains("name=\"v1_name\""), "the variant was removed");

    // A refused draft comes back with the reason and the input kept.
    let mut bad = form.clone();
    bad.retain(|(k, _)| *k != "consent_sv");
    bad.push(("action", "save"));
    let (status, refused, _) = post(&app, &editor, "/app/campaigns/new", &bad).await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused.contains("role=\"alert\"") && refused.contains("value=\"Forår\""));

    // Two variants, B with its own subject in both languages.
    form[1] = ("variants", "2");
    form.extend([
        ("v1_name", "B"),
        ("v1_weight", "1"),
        ("v1_subject_da", "Udsalg på SMS"),
        ("v1_subject_sv", "Rea via SMS"),
        ("action", "save"),
    ]);
    // Without the form token, or as a viewer: nothing is saved.
    let mut no_token = form.clone();
    no_token[0] = ("csrf", "wrong");
    assert_eq!(post(&app, &editor, "/app/campaigns/new", &no_token).await.0, 403);
    let viewer_csrf = field(&get(&app, &viewer, "/app").await.1, "csrf");
    let mut as_viewer = form.clone();
    as_viewer[0] = ("csrf", &viewer_csrf);
    assert_eq!(post(&app, &viewer, "/app/campaigns/new", &as_viewer).await.0, 403);
    let (status, _, location) = post(&app, &editor, "/app/campaigns/new", &form).await;
    assert_eq!(status, 303);
    let location = location.unwrap();
    let campaign = location.trim_start_matches("/app/campaigns/").to_owned();
    assert_eq!(status_of(&app, &campaign).await, "draft");

    // The campaign page: audience per language, previews per language and variant in sandboxed
    // frames under the same CSP, variant subjects.
    let (status, page, csp) = get(&app, &editor, &location).await;
    assert_eq!(status, 200);
    assert!(page.contains("data-audience=\"Dansk (da)\">2<"), "two Danish contacts");
    assert!(page.contains("data-audience=\"Svenska (sv)\">1<"));
    assert_eq!(page.matches("<iframe class=\"preview\" sandbox srcdoc=").count(), 4);
    assert!(page.contains("Rea via SMS"));
    assert_eq!(
        csp.as_deref(),
        Some(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )
    );

    // The draft is edited in the same form.
    let (status, edit, _) = get(&app, &editor, &format!("{location}/edit")).await;
    assert_eq!(status, 200);
    assert!(
        edit.contains("value=\"Udsalg på SMS\""),
        "variant B's own subject is kept"
    );
    let mut renamed = form.clone();
    renamed[2] = ("name", "Forår 2027");
    let (status, _, _) = post(&app, &editor, &format!("{location}/edit"), &renamed).await;
    assert_eq!(status, 303);
    assert!(get(&app, &editor, &location).await.1.contains("Forår 2027"));

    // A test send: marked, through SMTP, no recipient.
    let (status, _, back) = post(
        &app,
        &editor,
        &format!("{location}/test"),
        &[
            ("csrf", &csrf),
            ("email", "editor@shop.example"),
            ("locale", "sv"),
            ("variant", "B"),
        ],
    )
    .await;
    assert_eq!(
        (status, back.as_deref()),
        (303, Some(format!("{location}?msg=test_queued").as_str()))
    );
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(sink.messages().len(), 1);
    assert!(String::from_utf8_lossy(&sink.messages()[0].data).contains("Subject: [TEST] Rea via SMS"));
    assert_eq!(status_of(&app, &campaign).await, "draft");

    // Scheduled in the workspace's time zone (Denmark), cancelled before it starts.
    let local = (chrono::Utc::now() + chrono::Duration::days(2))
        .with_timezone(&optbridge::sms::quiet_hours::utc_offset(
            "DK",
            chrono::Utc::now() + chrono::Duration::days(2),
        ))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let (status, _, _) = post(&app, &viewer, &format!("{location}/send"), &[("csrf", &viewer_csrf)]).await;
    assert_eq!(status, 403, "a viewer cannot send");
    let (status, _, _) = post(
        &app,
        &editor,
        &format!("{location}/send"),
        &[("csrf", &csrf), ("at", &local)],
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(status_of(&app, &campaign).await, "scheduled");
    let id = campaign.clone();
    let at: chrono::NaiveDateTime = app
        .with_db(move |c| {
            campaigns::table
                .find(&id)
                .select(campaigns::scheduled_at)
                .first::<Option<chrono::NaiveDateTime>>(c)
                .unwrap()
                .unwrap()
        })
        .await;
    let expected = chrono::NaiveDateTime::parse_from_str(&local, "%Y-%m-%dT%H:%M").unwrap();
    let offset = (expected - at).num_minutes();
    assert!(offset == 60 || offset == 120, "read as Danish time: {offset} minutes");
    let (_, page, _) = get(&app, &editor, &location).await;
    assert!(page.contains("data-status=\"scheduled\""));
    let (_, _, back) = post(&app, &editor, &format!("{location}/pause"), &[("csrf", &csrf)]).await;
    assert_eq!(
        back.as_deref(),
        Some(format!("{location}?msg=conflict").as_str()),
        "not sending yet"
    );
    let (_, _, _) = post(&app, &editor, &format!("{location}/cancel"), &[("csrf", &csrf)]).await;
    assert_eq!(
        status_of(&app, &campaign).await,
        "scheduled",
        "cancel needs the confirmation box"
    );
    post(
        &app,
        &editor,
        &format!("{location}/cancel"),
        &[("csrf", &csrf), ("confirm", "yes")],
    )
    .await;
    assert_eq!(status_of(&app, &campaign).await, "cancelled");

    // Another draft sent now, paused and resumed from the page.
    let (_, _, location) = post(&app, &editor, "/app/campaigns/new", &form).await;
    let location = location.unwrap();
    post(&app, &editor, &format!("{location}/send"), &[("csrf", &csrf)]).await;
    post(&app, &editor, &format!("{location}/pause"), &[("csrf", &csrf)]).await;
    let (_, page, _) = get(&app, &editor, &location).await;
    assert!(page.contains("data-status=\"paused\"") && page.contains("/resume\""));
    post(&app, &editor, &format!("{location}/resume"), &[("csrf", &csrf)]).await;
    app.drain_outbox(Duration::from_secs(20)).await;
    assert_eq!(sink.messages().len(), 4, "the test and three invitations");
    let (_, page, _) = get(&app, &editor, &location).await;
    assert!(page.contains("data-status=\"sent\""));

    // The log names who did what.
    let ws_id = ws.id.clone();
    let actions: Vec<String> = app
        .with_db(move |c| {
            optbridge::activity::page(c, &ws_id, None, 100)
                .unwrap()
                .into_iter()
                .filter(|e| e.actor == "editor@shop.example")
                .map(|e| e.action.to_string())
                .collect()
        })
        .await;
    for action in [
        "campaign_created",
        "campaign_edited",
        "campaign_test_sent",
        "campaign_scheduled",
        "campaign_cancelled",
        "campaign_sent",
        "campaign_paused",
        "campaign_resumed",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action} in {actions:?}");
    }
}

/// Another workspace's editor reaches none of the campaign pages and changes nothing.
async fn campaign_pages_and_actions_are_isolated(backend: Backend) {
    let app = crate::helpers::spawn_app(backend).await;
    let (a, campaign) = app.campaign_for_all().await;
    let b = app.create_workspace("Other shop").await;
    let other = session_as(&app, &b, "other@shop.example", Role::Editor).await;
    let csrf = field(&get(&app, &other, "/app").await.1, "csrf");
    assert_eq!(
        get(&app, &other, &format!("/app/campaigns/{campaign}/edit")).await.0,
        404
    );
    for action in ["send", "pause", "resume", "cancel", "test", "edit"] {
        let (status, _, _) = post(
            &app,
            &other,
            &format!("/app/campaigns/{campaign}/{action}"),
            &[
                ("csrf", &csrf),
                ("confirm", "yes"),
                ("email", "other@shop.example"),
                ("action", "save"),
                ("name", "Stolen"),
            ],
        )
        .await;
        assert_eq!(status, 404, "{action} on another workspace's campaign");
    }
    assert_eq!(status_of(&app, &campaign).await, "draft");
    // Its own new-campaign form lists only its own consent texts.
    let texts = app.consent_texts_for_all(&a.token).await;
    let (_, form, _) = get(&app, &other, "/app/campaigns/new").await;
    for id in texts.as_object().unwrap().values() {
        assert!(!form.contains(id.as_str().unwrap()));
    }
}

/// A refused draft says what is wrong in the dashboard's language, naming the field and the
/// language of the text, not in the API's words (`subject.da must be 1 to 200 characters`).
async fn a_refused_draft_says_why_in_the_marketers_language(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let ws = app.create_workspace("Skobutikken").await;
    let da = app.consent_text(&ws.token, "da").await;
    let editor = session_as(&app, &ws, "editor@shop.example", Role::Editor).await;
    let csrf = field(&get(&app, &editor, "/app/campaigns/new").await.1, "csrf");
    let form: Vec<(&str, &str)> = vec![
        ("csrf", &csrf),
        ("variants", "1"),
        ("name", "Forår"),
        ("locales", "da"),
        ("consent_da", &da),
        ("subject_da", "Vil du have SMS?"),
        ("intro_da", "Hør først om udsalg."),
        ("v0_name", "A"),
        ("v0_weight", "1"),
        ("action", "save"),
    ];
    let refused = |changes: Vec<(&'static str, &'static str)>, language: &'static str| {
        let mut form = form.clone();
        for (key, value) in changes {
            form.retain(|(k, _)| *k != key);
            if !value.is_empty() || key.starts_with("subject") {
                form.push((key, value));
            }
        }
        let (app, editor) = (&app, &editor);
        async move {
            let (status, page, _) = post_in(app, editor, "/app/campaigns/new", &form, Some(language)).await;
            assert_eq!(status, 422);
            page
        }
    };
    // (the form's fields changed, the dashboard's language, what the page must say)
    type Case = (Vec<(&'static str, &'static str)>, &'static str, &'static str);
    let cases: [Case; 7] = [
        (
            vec![("subject_da", "")],
            "da",
            "Emnelinje · Dansk (da): skriv 1 til 200 tegn.",
        ),
        (
            vec![("subject_da", "")],
            "en",
            "Subject line · Dansk (da): write 1 to 200 characters.",
        ),
        (
            vec![("intro_da", "Få en gratis gave")],
            "da",
            "Indledning · Dansk (da): brug ikke ordet &#34;gratis&#34;",
        ),
        (
            vec![("locales", "sv"), ("subject_sv", "Vill du ha SMS?")],
            "da",
            "Samtykketekst (version) · Svenska (sv): vælg en samtykketekst på dette sprog",
        ),
        (vec![("locales", "")], "da", "Sprog: vælg mindst ét sprog."),
        (
            vec![("name", "To\u{7}")],
            "da",
            "Navn (kun internt): fjern kontroltegnene",
        ),
        (
            vec![("v0_weight", "5000")],
            "en",
            "Variant A: give a weight from 1 to 1000.",
        ),
    ];
    for (changes, language, words) in cases {
        let page = refused(changes.clone(), language).await;
        assert!(
            page.contains(words),
            "{changes:?} in {language}: {words} not in the page"
        );
        for api_words in ["must be", "consent_texts", "subject.da"] {
            assert!(!page.contains(api_words), "{changes:?}: the API's words in the page");
        }
    }
}

both_backends!(
    a_marketer_writes_previews_tests_and_sends_a_campaign,
    campaign_pages_and_actions_are_isolated,
    a_refused_draft_says_why_in_the_marketers_language,
);

/// The editor and the campaign page in headless Chromium, at desktop and phone width: axe-core
/// finds nothing on any of them; screenshots in `target/screenshots/`.
#[tokio::test]
async fn browser_writes_a_two_language_campaign_accessibly() {
    let Some(browser) = crate::browser::Browser::start().await else {
        eprintln!("skipped: no browser");
        return;
    };
    let app = crate::helpers::spawn_app(Backend::Sqlite).await;
    let ws = app.create_workspace("Skobutikken").await;
    app.import(&ws.token, "email,locale\nanna@example.dk,da\nelsa@example.se,sv\n")
        .await;
    app.consent_text(&ws.token, "da").await;
    app.consent_text(&ws.token, "sv").await;
    let id = ws.id.clone();
    app.with_db(move |c| optbridge::accounts::create_user(c, &id, "marketer@shop.example", PASSWORD).unwrap())
        .await;
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");

    browser.goto(&app.url("/app/login")).await;
    browser.fill("#email", "marketer@shop.example").await;
    browser.fill("#password", PASSWORD).await;
    browser.submit("button[type=submit]").await;
    browser.submit("a[href='/app/campaigns/new']").await;
    browser.assert_accessible("the new campaign form").await;
    browser.fill("#name", "Forår").await;
    browser.click("input[name=locales][value=sv]").await;
    browser.fill("#subject_da", "Vil du have SMS?").await;
    browser.fill("#intro_da", "Hør først om udsalg.").await;
    browser.fill("#subject_sv", "Vill du ha SMS?").await;
    browser.fill("#intro_sv", "Hör först om rean.").await;
    browser.submit("button[value=add_variant]").await;
    assert_eq!(
        browser.value("#subject_sv").await,
        "Vill du ha SMS?",
        "kept across the re-render"
    );
    browser.fill("#v1_name", "B").await;
    browser.assert_accessible("the form with two variants").await;
    browser.screenshot(&shots.join("campaign-new.png")).await;
    browser.submit("button[value=save]").await;
    assert!(browser.current_url().await.contains("/app/campaigns/"), "saved");
    assert_eq!(browser.text("[data-status]").await, "draft");
    browser.assert_accessible("the draft's page with previews").await;
    browser.screenshot(&shots.join("campaign-draft.png")).await;
    browser.resize(390, 844).await;
    browser.assert_accessible("the draft's page at phone width").await;
    browser.screenshot(&shots.join("campaign-draft-phone.png")).await;
    browser.submit("a[href$='/edit']").await;
    browser.assert_accessible("the edit form at phone width").await;
    browser.quit().await;
}
