//! The marketer's dashboard: logins, sessions, form tokens, pages, isolation between workspaces.

use std::time::Duration;

use diesel::prelude::*;
use optbridge::db::schema::invitations;
use serde_json::json;

use crate::helpers::{
    Backend, TestApp, TestWorkspace, both_backends, cookie_value, field, json, scripted, set_cookie, spawn_app,
    spawn_app_with,
};

const PASSWORD: &str = "a long enough password";

async fn user(app: &TestApp, ws: &TestWorkspace, email: &'static str) {
    let id = ws.id.clone();
    app.with_db(move |c| optbridge::accounts::create_user(c, &id, email, PASSWORD).unwrap())
        .await;
}

/// A session cookie header for `email`.
async fn session(app: &TestApp, email: &str) -> String {
    let res = app.login(email, PASSWORD).await;
    assert_eq!(res.status(), 303);
    format!(
        "ob_session={}",
        cookie_value(&set_cookie(&res, "ob_session").expect("session cookie"))
    )
}

async fn get(app: &TestApp, cookie: &str, path: &str) -> (u16, String) {
    let res = app
        .client
        .get(app.url(path))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn every_page_needs_a_login(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_ws, campaign) = app.campaign_for_all().await;
    for path in [
        "/app".to_owned(),
        format!("/app/campaigns/{campaign}"),
        format!("/app/campaigns/{campaign}/recipients.csv"),
        "/app/consent-texts".to_owned(),
        "/app/contacts?q=anna".to_owned(),
        "/app/suppressions".to_owned(),
        "/app/consents.csv".to_owned(),
        "/app/contacts/x/evidence.json".to_owned(),
        "/app/users".to_owned(),
        "/app/activity".to_owned(),
    ] {
        let res = app.client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(res.status(), 303, "{path}");
        assert_eq!(res.headers()["location"], "/app/login");
        let res = app
            .client
            .get(app.url(&path))
            .header("Cookie", "ob_session=forged")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "{path} with a forged cookie");
    }
    for path in [
        "/app/logout",
        "/app/contacts/x/erase",
        "/app/users/invite",
        "/app/users/x/role",
        "/app/users/x/remove",
    ] {
        let res = app
            .client
            .post(app.url(path))
            .form(&[("csrf", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{path}");
    }
}

async fn login_logout_and_cookie_flags(backend: Backend) {
    let app = spawn_app_with(backend, |a| {
        a.base_url = Some("https://optin.shop.example".into());
        a.dev_outboxes = true; // a test instance behind a (pretend) public https address
    })
    .await;
    let ws = app.create_workspace("Skobutikken").await;
    user(&app, &ws, "marketer@shop.example").await;

    let res = app.login("marketer@shop.example", "wrong password!").await;
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("Wrong email or password"));
    let res = app.login("nobody@shop.example", PASSWORD).await;
    assert_eq!(res.status(), 401, "unknown users get the same answer");

    let res = app.login("Marketer@Shop.example", PASSWORD).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/app");
    let cookie = set_cookie(&res, "ob_session").unwrap();
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/app", "Secure", "Max-Age=43200"] {
        assert!(cookie.contains(flag), "{flag} missing in {cookie}");
    }
    let session = format!("ob_session={}", cookie_value(&cookie));
    let (status, page) = get(&app, &session, "/app").await;
    assert_eq!(status, 200);
    assert!(page.contains("marketer@shop.example"));

    // A login form without its form-token cookie is refused.
    let page = app
        .client
        .get(app.url("/app/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let res = app
        .client
        .post(app.url("/app/login"))
        .form(&[
            ("email", "marketer@shop.example"),
            ("password", PASSWORD),
            ("csrf", &field(&page, "csrf")),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    // Logout needs the session's form token, then ends the session.
    let res = app
        .client
        .post(app.url("/app/logout"))
        .header("Cookie", &session)
        .form(&[("csrf", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let csrf = field(&get(&app, &session, "/app").await.1, "csrf");
    let res = app
        .client
        .post(app.url("/app/logout"))
        .header("Cookie", &session)
        .form(&[("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(get(&app, &session, "/app").await.0, 303, "the session is gone");
}

/// Behind a proxy, a client that writes its own X-Forwarded-For entries (a new address each
/// time) is still known by the address the proxy appended: its guesses are throttled.
async fn a_spoofed_forwarded_for_does_not_escape_the_throttle(backend: Backend) {
    let app = spawn_app_with(backend, |a| a.trust_forwarded_for = true).await;
    let ws = app.create_workspace("Skobutikken").await;
    user(&app, &ws, "marketer@shop.example").await;
    let guess = |n: u32| {
        let app = &app;
        async move {
            // What the client wrote, then what the (trusted) proxy appended.
            let forwarded_for = format!("203.0.113.{n}, 198.51.100.7");
            app.login_from(
                &app.client,
                "marketer@shop.example",
                "wrong password!",
                Some(&forwarded_for),
            )
            .await
            .status()
        }
    };
    for n in 0..10 {
        assert_eq!(guess(n).await, 401);
    }
    assert_eq!(guess(10).await, 429, "the proxy-appended address is throttled");
    // Without the header the address is the peer's (127.0.0.1), which never guessed.
    let res = app.login("marketer@shop.example", PASSWORD).await;
    assert_eq!(res.status(), 303);
}

/// A client whose requests come from `127.0.0.{n}` (all of 127.0.0.0/8 is this machine).
fn client_from(n: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, n]))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The login page's answer without its per-request form token and the email it echoes, to
/// compare answers.
async fn answer(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let body = res.text().await.unwrap();
    let token = field(&body, "csrf");
    let body = body.replace(&token, "TOKEN");
    (
        status,
        body.replace("marketer@shop.example", "EMAIL")
            .replace("nobody@shop.example", "EMAIL"),
    )
}

/// Guessing is throttled per client address, not per account: the address gets 429 for every
/// account, while the real user elsewhere still logs in. Known, unknown and (after a guess from
/// many addresses) locked accounts all get the same answer.
async fn login_throttles_the_guessing_address_and_answers_alike(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Skobutikken").await;
    user(&app, &ws, "marketer@shop.example").await;
    let attacker = client_from(2);
    let wrong = answer(
        app.login_from(&attacker, "marketer@shop.example", "wrong password!", None)
            .await,
    )
    .await;
    assert_eq!(wrong.0, 401);
    let unknown = answer(
        app.login_from(&attacker, "nobody@shop.example", "wrong password!", None)
            .await,
    )
    .await;
    assert_eq!(unknown, wrong, "unknown accounts answer like known ones");
    for i in 2..10 {
        let email = if i % 2 == 0 {
            "marketer@shop.example"
        } else {
            "nobody@shop.example"
        };
        assert_eq!(
            app.login_from(&attacker, email, "wrong password!", None).await.status(),
            401
        );
    }
    for email in ["marketer@shop.example", "nobody@shop.example"] {
        let res = app.login_from(&attacker, email, PASSWORD, None).await;
        assert_eq!(res.status(), 429, "the eleventh try from the address, for {email}");
        assert_eq!(res.headers()["retry-after"], "900");
        assert!(res.text().await.unwrap().contains("Too many wrong attempts from here"));
    }
    let res = app
        .login_from(&client_from(3), "marketer@shop.example", PASSWORD, None)
        .await;
    assert_eq!(res.status(), 303, "the real user, elsewhere, is not locked out");

    // A guess spread over many addresses locks the account after 100 wrong passwords in a row;
    // from then on even the right password gets the wrong-password answer.
    let mut tries = 0;
    for n in 10..30u8 {
        let client = client_from(n);
        for _ in 0..9 {
            if tries == 100 {
                break;
            }
            assert_eq!(
                app.login_from(&client, "marketer@shop.example", "wrong password!", None)
                    .await
                    .status(),
                401
            );
            tries += 1;
        }
    }
    let fresh = client_from(40);
    let locked = answer(app.login_from(&fresh, "marketer@shop.example", PASSWORD, None).await).await;
    assert_eq!(locked, wrong, "a locked account answers like a wrong password");
    let unknown = answer(app.login_from(&fresh, "nobody@shop.example", PASSWORD, None).await).await;
    assert_eq!(unknown, wrong);

    // Setting a new password lifts the lock.
    let mut set = std::process::Command::new(env!("CARGO_BIN_EXE_optbridge"))
        .args(["user", "set-password", "--email", "marketer@shop.example"])
        .env("DATABASE_URL", &app.database.url)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut set.stdin.take().unwrap(), b"a brand new password\n").unwrap();
    assert!(set.wait().unwrap().success());
    let res = app
        .login_from(&fresh, "marketer@shop.example", "a brand new password", None)
        .await;
    assert_eq!(res.status(), 303);
}

async fn campaign_page_shows_the_funnel(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ws, campaign) = app.campaign_for_all().await;
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    user(&app, &ws, "marketer@shop.example").await;
    let session = session(&app, "marketer@shop.example").await;

    let (status, list) = get(&app, &session, "/app").await;
    assert_eq!(status, 200);
    assert!(list.contains("Spring") && list.contains(&format!("/app/campaigns/{campaign}")));
    let (status, page) = get(&app, &session, &format!("/app/campaigns/{campaign}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("<svg"), "server-side SVG charts");
    assert!(page.contains("Sent 8"), "the funnel chart describes its numbers");
    assert!(page.contains("data-metric=\"Sent\">8<"), "the sent card shows 8");
    assert!(
        page.contains("52.2 %") && page.contains("3.5 %"),
        "the KAiKU benchmark is shown beside the rates"
    );
    assert!(!page.contains("<script"), "no JavaScript");

    // Danish browsers get the Danish dashboard.
    let res = app
        .client
        .get(app.url(&format!("/app/campaigns/{campaign}")))
        .header("Cookie", &session)
        .header("Accept-Language", "da-DK,da;q=0.9")
        .send()
        .await
        .unwrap();
    let page = res.text().await.unwrap();
    assert!(page.contains("Tragt") && page.contains("Konvertering"), "Danish labels");

    let (status, csv) = get(&app, &session, &format!("/app/campaigns/{campaign}/recipients.csv")).await;
    assert_eq!(status, 200);
    assert_eq!(csv.lines().count(), 9, "header and eight recipients");
    let (status, texts) = get(&app, &session, "/app/consent-texts").await;
    assert_eq!(status, 200);
    assert!(
        texts.contains("Skobutikken: Svar JA") && texts.contains("GSM7, 1"),
        "{texts}"
    );
}

/// The scripted campaign of the funnel tests (10 recipients, known behaviour): the page's cards
/// and the funnel chart carry the same numbers as the API.
async fn scripted_campaign_page_has_the_right_numbers(backend: Backend) {
    let s = scripted(backend).await;
    let ws = s.app_workspace().await;
    let app = &s.app;
    let id = ws.clone();
    app.with_db(move |c| optbridge::accounts::create_user(c, &id, "marketer@shop.example", PASSWORD).unwrap())
        .await;
    let session = session(app, "marketer@shop.example").await;
    let (status, page) = get(app, &session, &format!("/app/campaigns/{}", s.campaign)).await;
    assert_eq!(status, 200);
    for (metric, n) in [
        ("Recipients", 10),
        ("Sent", 10),
        ("Delivered", 9),
        ("Bounced", 1),
        ("Opened", 6),
        ("Opened (people)", 5),
        ("Clicked", 4),
        ("Signed up", 3),
        ("Confirmed", 2),
    ] {
        assert!(page.contains(&format!("data-metric=\"{metric}\">{n}<")), "{metric} {n}");
    }
    let funnel = &page[page.find("<svg").unwrap()..];
    let desc = &funnel[funnel.find("<desc").unwrap()..funnel.find("</desc>").unwrap()];
    for part in [
        "Sent 10",
        "Delivered 9 (90.0 %)",
        "Opened 6 (60.0 %; KAiKU benchmark 52.2 %)",
        "Signed up 3 (30.0 %)",
        "Confirmed 2 (20.0 %; KAiKU benchmark 3.5 %)",
    ] {
        assert!(desc.contains(part), "{part} not in {desc}");
    }
}

async fn workspaces_are_isolated_in_the_dashboard(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, campaign) = app.campaign_for_all().await;
    app.send_campaign(&a.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    let b = app.create_workspace("Other shop").await;
    user(&app, &b, "other@shop.example").await;
    let session = session(&app, "other@shop.example").await;
    let contact: String = app
        .with_db(|c| {
            invitations::table
                .filter(invitations::email.eq("anna@example.dk"))
                .select(invitations::contact_id)
                .first(c)
                .unwrap()
        })
        .await;
    assert_eq!(get(&app, &session, &format!("/app/campaigns/{campaign}")).await.0, 404);
    assert_eq!(
        get(&app, &session, &format!("/app/campaigns/{campaign}/recipients.csv"))
            .await
            .0,
        404
    );
    assert_eq!(get(&app, &session, &format!("/app/contacts/{contact}")).await.0, 404);
    assert_eq!(
        get(&app, &session, &format!("/app/contacts/{contact}/evidence.json"))
            .await
            .0,
        404
    );
    let (_, list) = get(&app, &session, "/app").await;
    assert!(!list.contains("Spring"), "another workspace's campaign is not listed");
    let (_, search) = get(&app, &session, "/app/contacts?q=anna").await;
    assert!(!search.contains("anna@example.dk"));
    let csrf = field(&get(&app, &session, "/app").await.1, "csrf");
    let res = app
        .client
        .post(app.url(&format!("/app/contacts/{contact}/erase")))
        .header("Cookie", &session)
        .form(&[("csrf", csrf.as_str()), ("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let still: String = app
        .with_db(move |c| {
            use optbridge::db::schema::contacts;
            contacts::table.find(&contact).select(contacts::email).first(c).unwrap()
        })
        .await;
    assert_eq!(still, "anna@example.dk");
}

async fn contact_search_history_and_erasure(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ws, campaign) = app.campaign_for_all().await;
    app.send_campaign(&ws.token, &campaign).await;
    app.drain_outbox(Duration::from_secs(10)).await;
    user(&app, &ws, "marketer@shop.example").await;
    let session = session(&app, "marketer@shop.example").await;

    let (_, results) = get(&app, &session, "/app/contacts?q=ANNA").await;
    let start = results.find("/app/contacts/").expect("a result");
    let id: String = results[start + 14..].split('"').next().unwrap().to_owned();
    assert!(!results.contains("bo@example.dk"));
    let (_, none) = get(&app, &session, "/app/contacts?q=%25").await;
    assert!(none.contains("No contacts found."), "a typed % is not a wildcard");
    let rows = |page: &str| page.matches("<tr><td><a href=\"/app/contacts/").count();
    let (_, a) = get(&app, &session, "/app/contacts?q=a").await;
    assert_eq!(rows(&a), 4, "anna and amy by email prefix, Lars and Elsa by name");
    let (_, middle) = get(&app, &session, "/app/contacts?q=example").await;
    assert_eq!(rows(&middle), 0, "emails match by prefix only");
    let (_, nils) = get(&app, &session, "/app/contacts?q=ILS").await;
    assert_eq!(rows(&nils), 1, "names match anywhere, whatever the case");
    assert!(nils.contains("nils@example.se"));
    let (status, page) = get(&app, &session, &format!("/app/contacts/{id}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("email_permission_imported"), "the ledger is shown");
    let res = app
        .client
        .get(app.url(&format!("/app/contacts/{id}/evidence.json")))
        .header("Cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let evidence = json(res).await;
    assert_eq!(evidence["contact"]["email"], "anna@example.dk");
    assert_eq!(evidence["ledger"][0]["kind"], "email_permission_imported");

    // Erasure: needs the form token and the confirmation box; keeps the chain verifiable.
    let csrf = field(&page, "csrf");
    let erase = format!("/app/contacts/{id}/erase");
    let res = app
        .client
        .post(app.url(&erase))
        .header("Cookie", &session)
        .form(&[("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = app
        .client
        .post(app.url(&erase))
        .header("Cookie", &session)
        .form(&[("csrf", csrf.as_str()), ("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let (_, page) = get(&app, &session, &format!("/app/contacts/{id}?erased=1")).await;
    assert!(page.contains("erased"), "{page}");
    assert!(!page.contains("anna@example.dk"));
    let history = json(app.get(&ws.token, &format!("/api/v1/contacts/{id}/consent")).await).await;
    let kinds: Vec<&str> = history["ledger"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.last(), Some(&"contact_erased"));
    assert!(
        history["ledger"][0]["payload"].is_null(),
        "earlier payloads are redacted"
    );
    let out = crate::helpers::run_cli(&app.database.url, &["ledger", "verify", "--json"]);
    assert_eq!(crate::helpers::stdout_json(&out)["problems"], json!([]));
}

/// A viewer reads but cannot erase: 403 with the localized page, and the contact is untouched;
/// an editor can. The activity log keeps what it is given, newest first, per workspace.
async fn a_viewer_reads_but_cannot_erase(backend: Backend) {
    use optbridge::accounts::Role;
    use optbridge::activity::{self, Action, Actor};

    let app = spawn_app(backend).await;
    let (ws, _campaign) = app.campaign_for_all().await;
    let id = ws.id.clone();
    app.with_db(move |c| {
        optbridge::accounts::create_user_with_role(c, &id, "viewer@shop.example", PASSWORD, Role::Viewer).unwrap();
        optbridge::accounts::create_user_with_role(c, &id, "editor@shop.example", PASSWORD, Role::Editor).unwrap();
    })
    .await;
    let viewer = session(&app, "viewer@shop.example").await;
    let (status, results) = get(&app, &viewer, "/app/contacts?q=anna").await;
    assert_eq!(status, 200, "a viewer reads");
    let start = results.find("/app/contacts/").expect("a result");
    let contact: String = results[start + 14..].split('"').next().unwrap().to_owned();
    let (_, page) = get(&app, &viewer, &format!("/app/contacts/{contact}")).await;
    let res = app
        .client
        .post(app.url(&format!("/app/contacts/{contact}/erase")))
        .header("Cookie", &viewer)
        .header("Accept-Language", "da")
        .form(&[("csrf", field(&page, "csrf").as_str()), ("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("Det har du ikke adgang til"));
    let (_, still) = get(&app, &viewer, &format!("/app/contacts/{contact}")).await;
    assert!(still.contains("anna@example.dk"), "nothing changed");

    let editor = session(&app, "editor@shop.example").await;
    let (_, page) = get(&app, &editor, &format!("/app/contacts/{contact}")).await;
    let res = app
        .client
        .post(app.url(&format!("/app/contacts/{contact}/erase")))
        .header("Cookie", &editor)
        .form(&[("csrf", field(&page, "csrf").as_str()), ("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "an editor erases");

    let (id, other) = (ws.id.clone(), app.create_workspace("Other").await.id);
    let entries = app
        .with_db(move |c| {
            let user = Actor::User {
                email: "editor@shop.example".into(),
            };
            let token = Actor::ApiToken {
                label: "nightly".into(),
            };
            activity::record(c, &id, &user, Action::Login, None, "").unwrap();
            activity::record(c, &id, &token, Action::Import, None, "3 imported").unwrap();
            activity::record(c, &other, &token, Action::Import, None, "elsewhere").unwrap();
            let first = activity::page(c, &id, None, 1).unwrap();
            let rest = activity::page(c, &id, Some(&first[0].id), 10).unwrap();
            (first, rest)
        })
        .await;
    let (first, rest) = entries;
    assert_eq!(first.len(), 1);
    assert_eq!(
        (first[0].actor.as_str(), first[0].action),
        ("API token nightly", Action::Import)
    );
    assert!(rest.iter().all(|e| e.detail != "elsewhere"), "scoped to the workspace");
    assert!(
        rest.iter()
            .any(|e| e.actor == "editor@shop.example" && e.action == Action::Login)
    );
}

both_backends!(
    a_viewer_reads_but_cannot_erase,
    every_page_needs_a_login,
    login_logout_and_cookie_flags,
    login_throttles_the_guessing_address_and_answers_alike,
    a_spoofed_forwarded_for_does_not_escape_the_throttle,
    campaign_page_shows_the_funnel,
    scripted_campaign_page_has_the_right_numbers,
    workspaces_are_isolated_in_the_dashboard,
    contact_search_history_and_erasure,
);

/// In headless Chromium: log in, open the scripted campaign, screenshot it, log out.
// SQLite only: this exercises the browser path, not the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_logs_in_and_screenshots_the_campaign_page() {
    let Some(browser) = crate::browser::Browser::start().await else {
        eprintln!("skipped: no browser");
        return;
    };
    let s = scripted(Backend::Sqlite).await;
    let ws = s.app_workspace().await;
    let app = &s.app;
    app.with_db(move |c| optbridge::accounts::create_user(c, &ws, "marketer@shop.example", PASSWORD).unwrap())
        .await;

    browser.goto(&app.url(&format!("/app/campaigns/{}", s.campaign))).await;
    assert!(
        browser.current_url().await.ends_with("/app/login"),
        "sent to the login page"
    );
    browser.assert_accessible("the login page").await;
    browser.fill("#email", "marketer@shop.example").await;
    browser.fill("#password", "not the password").await;
    browser.submit("button[type=submit]").await;
    assert!(browser.text(".error").await.contains("Wrong email or password"));
    browser.fill("#password", PASSWORD).await;
    browser.submit("button[type=submit]").await;
    assert!(
        browser.current_url().await.ends_with("/app"),
        "{}",
        browser.current_url().await
    );
    let session = browser
        .cookies()
        .await
        .into_iter()
        .find(|c| c["name"] == "ob_session")
        .expect("a session cookie");
    assert_eq!(session["httpOnly"], true);
    assert_eq!(session["sameSite"], "Lax");
    browser.assert_accessible("the campaign list").await;

    // `submit` clicks and waits for the next page, a link as well as a button.
    browser
        .submit(&format!("a[href='/app/campaigns/{}']", s.campaign))
        .await;
    assert!(browser.text("h1").await.starts_with("Scripted"));
    assert_eq!(browser.text("[data-metric='Confirmed']").await, "2");
    assert_eq!(browser.text("[data-metric='Opened']").await, "6");
    assert!(browser.source().await.contains("KAiKU benchmark 52.2 %"));
    browser.assert_accessible("the campaign page").await;
    browser
        .screenshot(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots/dashboard-campaign.png"))
        .await;

    browser.submit("form.logout button").await;
    assert!(browser.current_url().await.ends_with("/app/login"));
    browser.goto(&app.url("/app")).await;
    assert!(browser.current_url().await.ends_with("/app/login"), "logged out");
    browser.quit().await;
}
