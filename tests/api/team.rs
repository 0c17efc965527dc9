//! Roles, users and the activity log: a viewer's POST to every dashboard action is refused and
//! changes nothing; editors cannot manage users; owners invite (a single-use, expiring link by
//! email), change roles and remove users, and a workspace always keeps an owner, also when two
//! owners demote each other at once. The activity log names who did what, on the page and in the
//! API. Plus the newcomer's CLI help and consent-text errors.

use diesel::prelude::*;
use optbridge::accounts::Role;
use optbridge::db::schema::{dev_messages, user_invites, users};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, both_backends, cookie_value, dump, field, json, set_cookie, spawn_app};

const PASSWORD: &str = "a long enough password";

async fn user(app: &TestApp, workspace: &str, email: &'static str, role: Role) -> String {
    let ws = workspace.to_owned();
    app.with_db(move |c| optbridge::accounts::create_user_with_role(c, &ws, email, PASSWORD, role).unwrap())
        .await
}

/// A logged-in user's cookie header and form token.
struct Login {
    cookie: String,
    csrf: String,
}

async fn login(app: &TestApp, email: &str) -> Login {
    let res = app.login(email, PASSWORD).await;
    assert_eq!(res.status(), 303, "{email} logs in");
    let cookie = format!(
        "ob_session={}",
        cookie_value(&set_cookie(&res, "ob_session").expect("session cookie"))
    );
    let (_, page) = get(app, &cookie, "/app/activity").await;
    Login {
        csrf: field(&page, "csrf"),
        cookie,
    }
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

async fn post(app: &TestApp, who: &Login, path: &str, form: &[(&str, &str)]) -> (u16, String) {
    let mut fields = vec![("csrf", who.csrf.as_str())];
    fields.extend_from_slice(form);
    let res = app
        .client
        .post(app.url(path))
        .header("Cookie", &who.cookie)
        .form(&fields)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// The database as sorted lines (the dump's row order is the backend's).
async fn snapshot(app: &TestApp) -> Vec<String> {
    let mut lines: Vec<String> = app.with_db(dump).await.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

/// Every `#[post("…")]` route under src/routes/app/.
fn dashboard_post_routes() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/routes/app");
    let mut routes = Vec::new();
    for file in std::fs::read_dir(dir).unwrap() {
        let source = std::fs::read_to_string(file.unwrap().path()).unwrap();
        for part in source.split("#[post(\"").skip(1) {
            routes.push(part.split('"').next().unwrap().to_owned());
        }
    }
    routes
}

/// A viewer's POST to every dashboard action answers 403 and changes nothing; an editor's POST
/// to every owner-only action too. The actions are `routes::app::ACTIONS`, and every POST route
/// of the dashboard must be in it (or be one of the open ones: login, logout, invitation).
async fn viewers_and_editors_are_refused_and_nothing_changes(backend: Backend) {
    use optbridge::routes::app::{ACTIONS, OPEN_POSTS};

    let routes = dashboard_post_routes();
    assert!(routes.len() >= 7, "found {routes:?}");
    for route in &routes {
        assert!(
            ACTIONS.iter().any(|(r, _)| r == route) || OPEN_POSTS.contains(&route.as_str()),
            "POST {route} has no row in routes::app::ACTIONS (the role it needs)"
        );
    }
    for (route, _) in ACTIONS {
        assert!(
            routes.contains(&(*route).to_owned()),
            "ACTIONS lists {route}, no handler has it"
        );
    }

    let app = spawn_app(backend).await;
    let (ws, campaign) = app.campaign_for_all().await;
    let owner = user(&app, &ws.id, "owner@shop.example", Role::Owner).await;
    user(&app, &ws.id, "editor@shop.example", Role::Editor).await;
    user(&app, &ws.id, "viewer@shop.example", Role::Viewer).await;
    let id = ws.id.clone();
    let contact: String = app
        .with_db(move |c| {
            use optbridge::db::schema::contacts;
            contacts::table
                .filter(contacts::workspace_id.eq(&id))
                .select(contacts::id)
                .first(c)
                .unwrap()
        })
        .await;
    let viewer = login(&app, "viewer@shop.example").await;
    let editor = login(&app, "editor@shop.example").await;
    // The id each kind of path takes: a real one of this workspace where there is one.
    let concrete = |route: &str| {
        let id = match route.split('/').nth(2) {
            Some("contacts") => contact.clone(),
            Some("users") => owner.clone(),
            Some("campaigns") => campaign.clone(),
            _ => "0190a0a0-0000-7000-8000-000000000000".to_owned(),
        };
        route.replace("{id}", &id)
    };
    // Whatever an action might read, filled in as a real request would.
    let form: &[(&str, &str)] = &[
        ("confirm", "yes"),
        ("email", "new@shop.example"),
        ("role", "viewer"),
        ("name", "A campaign"),
        ("subject", "Subject"),
        ("intro", "Intro"),
    ];

    let before = snapshot(&app).await;
    for (route, needed) in ACTIONS {
        let path = concrete(route);
        let (status, page) = post(&app, &viewer, &path, form).await;
        assert_eq!(status, 403, "a viewer's POST {path}: {page}");
        assert!(page.contains("Not allowed"), "the localized 403 page for {path}");
        if *needed == Role::Owner {
            let (status, _) = post(&app, &editor, &path, form).await;
            assert_eq!(status, 403, "an editor's POST {path}");
        }
    }
    assert_eq!(snapshot(&app).await, before, "nothing changed");

    let (status, _) = get(&app, &editor.cookie, "/app/users").await;
    assert_eq!(status, 403, "editors do not manage users");
    let (_, page) = get(&app, &editor.cookie, "/app").await;
    assert!(
        !page.contains("href=\"/app/users\""),
        "nor see the users page in the menu"
    );
    let (status, _) = get(&app, &viewer.cookie, "/app/activity").await;
    assert_eq!(status, 200, "everyone reads the activity log");
}

/// The invitation email of `email`, and the link in it.
async fn invitation_link(app: &TestApp, email: &'static str) -> String {
    app.dispatch_all().await;
    let bodies: Vec<String> = app
        .with_db(move |c| {
            dev_messages::table
                .filter(dev_messages::recipient.like(format!("%{email}%")))
                .order(dev_messages::created_at.desc())
                .select(dev_messages::body_text)
                .load(c)
                .unwrap()
        })
        .await;
    let body = bodies
        .first()
        .unwrap_or_else(|| panic!("no invitation email to {email}"));
    let start = body.find("/app/invite/").expect("a link in the email");
    let end = body[start..].find(char::is_whitespace).unwrap_or(body.len() - start);
    body[start..start + end].to_owned()
}

async fn owners_invite_change_roles_and_remove(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Skobutikken").await;
    user(&app, &ws.id, "owner@shop.example", Role::Owner).await;
    let owner = login(&app, "owner@shop.example").await;

    let (status, page) = get(&app, &owner.cookie, "/app/users").await;
    assert_eq!(status, 200);
    assert!(page.contains("owner@shop.example"));
    let (status, page) = post(
        &app,
        &owner,
        "/app/users/invite",
        &[("email", "not an email"), ("role", "editor")],
    )
    .await;
    assert_eq!(status, 422, "{page}");
    let (status, _) = post(
        &app,
        &owner,
        "/app/users/invite",
        &[("email", "Owner@Shop.example"), ("role", "editor")],
    )
    .await;
    assert_eq!(status, 409, "an existing login cannot be invited");

    let (status, _) = post(
        &app,
        &owner,
        "/app/users/invite",
        &[("email", "Nina@Shop.example"), ("role", "viewer")],
    )
    .await;
    assert_eq!(status, 303);
    let (_, page) = get(&app, &owner.cookie, "/app/users?done=invited").await;
    assert!(page.contains("nina@shop.example"), "listed as pending");
    let path = invitation_link(&app, "nina@shop.example").await;
    let token = path.trim_start_matches("/app/invite/").to_owned();

    // Only the token's hash is stored, nowhere the token itself.
    let hash = optbridge::crypto::sha256_hex(token.as_bytes());
    let stored: Option<String> = app
        .with_db(|c| user_invites::table.select(user_invites::token_sha256).first(c).unwrap())
        .await;
    assert_eq!(stored.as_deref(), Some(hash.as_str()));
    let everything = app
        .with_db(|c| {
            use optbridge::db::schema::dev_messages;
            diesel::delete(dev_messages::table).execute(c).unwrap();
            dump(c)
        })
        .await;
    assert!(!everything.contains(&token), "the token rests nowhere in the database");

    // The invitee sets a password through the link: once.
    let page = app.client.get(app.url(&path)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let form_cookie = cookie_value(&set_cookie(&page, "ob_invite_csrf").expect("form token cookie"));
    let html = page.text().await.unwrap();
    assert!(html.contains("Skobutikken") && html.contains("viewer"), "{html}");
    let csrf = field(&html, "csrf");
    let accept = |password: &'static str, again: &'static str| {
        let (url, cookie, csrf) = (app.url(&path), form_cookie.clone(), csrf.clone());
        let client = app.client.clone();
        async move {
            let res = client
                .post(url)
                .header("Cookie", format!("ob_invite_csrf={cookie}"))
                .form(&[("csrf", csrf.as_str()), ("password", password), ("password2", again)])
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    assert_eq!(accept(PASSWORD, "something else!").await.0, 422);
    assert_eq!(accept("short", "short").await.0, 422, "the password rules");
    let res = app
        .client
        .post(app.url(&path))
        .form(&[("csrf", csrf.as_str()), ("password", PASSWORD), ("password2", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "no form-token cookie");
    let (status, page) = accept(PASSWORD, PASSWORD).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("/app/login"));
    let (status, _) = accept(PASSWORD, PASSWORD).await;
    assert_eq!(status, 404, "the link works once");
    assert_eq!(app.client.get(app.url(&path)).send().await.unwrap().status(), 404);

    let nina = login(&app, "nina@shop.example").await;
    let (status, _) = post(
        &app,
        &nina,
        "/app/users/invite",
        &[("email", "x@shop.example"), ("role", "owner")],
    )
    .await;
    assert_eq!(status, 403, "nina is a viewer");
    let nina_id: String = app
        .with_db(|c| {
            users::table
                .filter(users::email.eq("nina@shop.example"))
                .select(users::id)
                .first(c)
                .unwrap()
        })
        .await;
    let (status, _) = post(
        &app,
        &owner,
        &format!("/app/users/{nina_id}/role"),
        &[("role", "editor")],
    )
    .await;
    assert_eq!(status, 303);
    let role: Role = app
        .with_db({
            let id = nina_id.clone();
            move |c| users::table.find(id).select(users::role).first(c).unwrap()
        })
        .await;
    assert_eq!(role, Role::Editor);

    // An expired link does not work.
    let (status, _) = post(
        &app,
        &owner,
        "/app/users/invite",
        &[("email", "late@shop.example"), ("role", "editor")],
    )
    .await;
    assert_eq!(status, 303);
    let late = invitation_link(&app, "late@shop.example").await;
    app.with_db(|c| {
        diesel::update(user_invites::table.filter(user_invites::email.eq("late@shop.example")))
            .set(user_invites::expires_at.eq(optbridge::db::now() - chrono::Duration::minutes(1)))
            .execute(c)
            .unwrap()
    })
    .await;
    assert_eq!(app.client.get(app.url(&late)).send().await.unwrap().status(), 404);

    // Removed: the sessions end and the login is gone.
    let (status, _) = post(&app, &owner, &format!("/app/users/{nina_id}/remove"), &[]).await;
    assert_eq!(status, 303);
    let (status, _) = get(&app, &nina.cookie, "/app").await;
    assert_eq!(status, 303, "back to the login page");
    assert_eq!(app.login("nina@shop.example", PASSWORD).await.status(), 401);

    // Another workspace's owner cannot touch this workspace's users.
    let other = app.create_workspace("Other shop").await;
    user(&app, &other.id, "boss@other.example", Role::Owner).await;
    let boss = login(&app, "boss@other.example").await;
    let owner_id: String = app
        .with_db(|c| {
            users::table
                .filter(users::email.eq("owner@shop.example"))
                .select(users::id)
                .first(c)
                .unwrap()
        })
        .await;
    let (status, _) = post(
        &app,
        &boss,
        &format!("/app/users/{owner_id}/role"),
        &[("role", "viewer")],
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = post(&app, &boss, &format!("/app/users/{owner_id}/remove"), &[]).await;
    assert_eq!(status, 404);
    let (_, page) = get(&app, &boss.cookie, "/app/users").await;
    assert!(!page.contains("owner@shop.example") && !page.contains("late@shop.example"));

    // Every change is in the activity log, newest first, by who made it.
    let (_, log) = get(&app, &owner.cookie, "/app/activity").await;
    for entry in [
        "removed a user",
        "changed a user&#39;s role",
        "accepted an invitation",
        "invited a user",
        "logged in",
    ] {
        assert!(log.contains(entry), "{entry} missing in {log}");
    }
    let removed = log.find("removed a user").unwrap();
    let invited = log.find("invited a user").unwrap();
    assert!(removed < invited, "newest first");
}

/// The last owner can neither leave nor be demoted; two owners demoting each other at once:
/// one wins, one owner stays.
async fn a_workspace_always_keeps_an_owner(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Skobutikken").await;
    let a_id = user(&app, &ws.id, "a@shop.example", Role::Owner).await;
    let a = login(&app, "a@shop.example").await;
    let (status, page) = post(&app, &a, &format!("/app/users/{a_id}/role"), &[("role", "editor")]).await;
    assert_eq!(status, 409);
    assert!(page.contains("A workspace always needs an owner"), "{page}");
    let (status, _) = post(&app, &a, &format!("/app/users/{a_id}/remove"), &[]).await;
    assert_eq!(status, 409);

    let owners = |ws: String| {
        move |c: &mut optbridge::db::DbConn| -> i64 {
            users::table
                .filter(users::workspace_id.eq(ws))
                .filter(users::role.eq(Role::Owner))
                .count()
                .get_result(c)
                .unwrap()
        }
    };
    for round in 0..5 {
        let email: &'static str = Box::leak(format!("b{round}@shop.example").into_boxed_str());
        let b_id = user(&app, &ws.id, email, Role::Owner).await;
        let b = login(&app, email).await;
        let (demote_b, demote_a) = (format!("/app/users/{b_id}/role"), format!("/app/users/{a_id}/role"));
        let ((s1, _), (s2, _)) = tokio::join!(
            post(&app, &a, &demote_b, &[("role", "viewer")]),
            post(&app, &b, &demote_a, &[("role", "viewer")]),
        );
        let mut statuses = [s1, s2];
        statuses.sort();
        assert!(
            statuses == [303, 403] || statuses == [303, 409],
            "round {round}: one demotion wins ({statuses:?})"
        );
        assert_eq!(app.with_db(owners(ws.id.clone())).await, 1, "round {round}");
        // Back to a single owner a, for the next round.
        let a_role: Role = app
            .with_db({
                let id = a_id.clone();
                move |c| users::table.find(id).select(users::role).first(c).unwrap()
            })
            .await;
        if a_role != Role::Owner {
            let (status, _) = post(&app, &b, &demote_a, &[("role", "owner")]).await;
            assert_eq!(status, 303);
            let (status, _) = post(&app, &a, &format!("/app/users/{b_id}/remove"), &[]).await;
            assert_eq!(status, 303);
        } else {
            let (status, _) = post(&app, &a, &format!("/app/users/{b_id}/remove"), &[]).await;
            assert_eq!(status, 303);
        }
    }
    // Concurrent removals: of two owners removing each other, one stays.
    let b_id = user(&app, &ws.id, "last@shop.example", Role::Owner).await;
    let b = login(&app, "last@shop.example").await;
    let (remove_b, remove_a) = (format!("/app/users/{b_id}/remove"), format!("/app/users/{a_id}/remove"));
    let _ = tokio::join!(post(&app, &a, &remove_b, &[]), post(&app, &b, &remove_a, &[]));
    assert_eq!(app.with_db(owners(ws.id.clone())).await, 1);
}

/// The API's log: who ("API token <label>", a user's email), what, when and on what, newest
/// first, paged by cursor; the page shows the same in Danish for a Danish browser.
async fn the_activity_log_names_who_did_what(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ws, campaign) = app.campaign_for_all().await;
    app.send_campaign(&ws.token, &campaign).await;
    user(&app, &ws.id, "owner@shop.example", Role::Owner).await;
    let owner = login(&app, "owner@shop.example").await;

    let page = json(app.get(&ws.token, "/api/v1/activity?limit=3").await).await;
    let actions: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["login", "campaign_sent", "campaign_created"], "{page}");
    assert_eq!(page["data"][0]["actor"], "owner@shop.example");
    assert_eq!(page["data"][1]["actor"], "API token created with the workspace");
    assert_eq!(page["data"][1]["detail"], campaign.as_str());
    assert!(page["data"][0]["at"].as_str().unwrap().ends_with("+00:00"));
    let next = page["next"].as_str().expect("more entries").to_owned();
    let rest = json(
        app.get(&ws.token, &format!("/api/v1/activity?limit=50&after={next}"))
            .await,
    )
    .await;
    let rest_actions: Vec<&str> = rest["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(rest_actions, ["consent_text_created", "import"], "{rest}");
    assert_eq!(rest["next"], Value::Null);
    assert!(rest["data"][1]["detail"].as_str().unwrap().starts_with("imported "));
    assert_eq!(app.get(&ws.token, "/api/v1/activity?limit=0").await.status(), 400);

    // Erasures, by a user and through the API, are logged with the contact's id only.
    let id = ws.id.clone();
    let contacts: Vec<String> = app
        .with_db(move |c| {
            use optbridge::db::schema::contacts;
            contacts::table
                .filter(contacts::workspace_id.eq(&id))
                .select(contacts::id)
                .order(contacts::id.asc())
                .limit(2)
                .load(c)
                .unwrap()
        })
        .await;
    let (status, _) = post(
        &app,
        &owner,
        &format!("/app/contacts/{}/erase", contacts[0]),
        &[("confirm", "yes")],
    )
    .await;
    assert_eq!(status, 303);
    let res = app
        .client
        .delete(app.url(&format!("/api/v1/contacts/{}", contacts[1])))
        .bearer_auth(&ws.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let page = json(app.get(&ws.token, "/api/v1/activity?limit=2").await).await;
    assert_eq!(page["data"][0]["action"], "contact_erased");
    assert_eq!(page["data"][0]["subject"], contacts[1].as_str());
    assert_eq!(page["data"][1]["actor"], "owner@shop.example");
    assert_eq!(page["data"][1]["subject"], contacts[0].as_str());

    let res = app
        .client
        .get(app.url("/app/activity"))
        .header("Cookie", &owner.cookie)
        .header("Accept-Language", "da")
        .send()
        .await
        .unwrap();
    let html = res.text().await.unwrap();
    for words in [
        "Aktivitet",
        "loggede ind",
        "sendte en kampagne",
        "API token created with the workspace",
    ] {
        assert!(html.contains(words), "{words} missing in {html}");
    }

    // The command line is named as such.
    let csv = std::env::temp_dir().join(format!("optbridge-activity-{}.csv", ws.id));
    std::fs::write(&csv, "email\ncarl@example.dk\n").unwrap();
    let out = crate::helpers::run_cli(
        &app.database.url,
        &["import", "--workspace", &ws.id, csv.to_str().unwrap(), "--json"],
    );
    std::fs::remove_file(&csv).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let page = json(app.get(&ws.token, "/api/v1/activity?limit=1").await).await;
    assert_eq!(page["data"][0]["actor"], "CLI");
    assert_eq!(page["data"][0]["action"], "import");
    assert_eq!(page["data"][0]["detail"], "imported 1, updated 0, rejected 0");

    // Another workspace sees none of it.
    let other = app.create_workspace("Other").await;
    let theirs = json(app.get(&other.token, "/api/v1/activity").await).await;
    assert_eq!(theirs, json!({"data": [], "next": null}));
}

/// A consent text that breaks several rules gets all of them back at once, each with its field.
async fn the_api_lists_every_broken_consent_rule(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Skobutikken").await;
    let res = app
        .post_json(
            &ws.token,
            "/api/v1/consent-texts",
            &json!({"locale": "da", "company_name": "Skobutikken", "privacy_url": "ftp://x",
                    "body": "Få en gratis gave hver uge, direkte i din indbakke."}),
        )
        .await;
    assert_eq!(res.status(), 422);
    let body = json(res).await;
    let fields: Vec<&str> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["body", "body", "body", "privacy_url", "body"], "{body}");
    let error = body["error"].as_str().unwrap();
    for part in ["name the company", "for SMS", "withdraw", "http(s) URL", "'gratis'"] {
        assert!(error.contains(part), "{part} missing in {error}");
    }
}

both_backends!(
    viewers_and_editors_are_refused_and_nothing_changes,
    owners_invite_change_roles_and_remove,
    a_workspace_always_keeps_an_owner,
    the_activity_log_names_who_did_what,
    the_api_lists_every_broken_consent_rule,
);

/// Each command's help shows its own options with a description, not the server settings.
#[test]
fn each_command_help_shows_its_own_options() {
    let help = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_optbridge"))
            .args(args)
            .env_remove("SMTP_URL")
            .output()
            .expect("run optbridge");
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let import = help(&["import", "--help"]);
    assert!(import.contains("--workspace <WORKSPACE>") && import.contains("The workspace's id"));
    for server in ["--smtp-url", "--outbox-workers", "--bind", "--limit-doi-per-ip"] {
        assert!(!import.contains(server), "{server} in import --help:\n{import}");
    }
    let serve = help(&["serve", "--help"]);
    for server in ["--smtp-url", "--outbox-workers", "--bind", "--limit-doi-per-ip"] {
        assert!(serve.contains(server), "{server} missing in serve --help");
    }
    let create = help(&["campaign", "create", "--help"]);
    assert!(create.contains("--frequency") && create.contains("at most 4 times a month"));
    assert!(!create.contains("--smtp-url"));
    assert!(help(&["migrate", "--help"]).contains("--signing-key-encryption-key"));
    assert!(!help(&["--help"]).contains("--smtp-url"));
    // Every option of every command says what it is.
    for args in [
        &["import", "--help"][..],
        &["stats", "--help"],
        &["workspace", "create", "--help"],
        &["campaign", "create", "--help"],
        &["campaign", "send", "--help"],
        &["user", "create", "--help"],
        &["consent-text", "create", "--help"],
    ] {
        let text = help(args);
        for line in text.lines().filter(|l| l.trim_start().starts_with("--")) {
            let described = line.trim().split("  ").filter(|p| !p.trim().is_empty()).count() > 1;
            let next_is_description = text
                .lines()
                .skip_while(|l| *l != line)
                .nth(1)
                .is_some_and(|n| n.starts_with("          "));
            assert!(described || next_is_description, "{args:?}: no description for {line}");
        }
    }
}

/// In headless Chromium, axe-core finds no WCAG 2.1 A/AA violation on the new pages (users,
/// activity, the invitation page), the campaign page, and the landing page of an English
/// recipient with a Danish consent text, also with an invalid phone number; screenshots in
/// target/screenshots/.
// SQLite only: this exercises the pages, not the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_pages_pass_axe() {
    use optbridge::links::LinkPurpose;

    let Some(browser) = crate::browser::Browser::start().await else {
        eprintln!("skipped: no browser");
        return;
    };
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    let app = spawn_app(Backend::Sqlite).await;
    let invited = app.invited().await;
    user(&app, &invited.ws.id, "owner@shop.example", Role::Owner).await;
    let invitation = invited.anna_invitation.clone();
    let campaign: String = app
        .with_db(move |c| {
            use optbridge::db::schema::invitations;
            invitations::table
                .find(invitation)
                .select(invitations::campaign_id)
                .first(c)
                .unwrap()
        })
        .await;

    // An English recipient, a Danish consent text (WCAG 3.1.2), then an invalid number.
    let english = app
        .keyring
        .sign(
            LinkPurpose::Landing,
            &invited.anna_invitation,
            &campaign,
            "en",
            optbridge::db::now(),
        )
        .unwrap();
    browser.goto(&app.url(&format!("/l/{english}"))).await;
    assert!(browser.source().await.contains(r#"id="consent-text" lang="da""#));
    browser.assert_accessible("the landing page").await;
    browser.fill("#phone", "12").await;
    browser.click("input[name=consent]").await;
    browser.submit("form button[type=submit]").await;
    let source = browser.source().await;
    assert!(source.contains(r#"aria-invalid="true""#), "{source}");
    assert!(source.contains(r#"aria-describedby="phone-error phone-hint""#));
    browser
        .assert_accessible("the landing page with an invalid phone")
        .await;

    browser.goto(&app.url("/app/login")).await;
    browser.fill("#email", "owner@shop.example").await;
    browser.fill("#password", PASSWORD).await;
    browser.submit("button[type=submit]").await;
    browser.goto(&app.url(&format!("/app/campaigns/{campaign}"))).await;
    browser.assert_accessible("the campaign page").await;
    // axe's best practice "empty-table-header": every column of the rates table is named.
    assert!(!browser.source().await.contains("<th></th>"));

    browser.goto(&app.url("/app/users")).await;
    browser.fill("#invite-email", "nina@shop.example").await;
    browser.submit("form[action='/app/users/invite'] button").await;
    assert!(browser.text(".notice").await.contains("invitation was sent"));
    assert!(browser.source().await.contains("nina@shop.example"));
    browser.assert_accessible("the users page").await;
    browser.screenshot(&shots.join("dashboard-users.png")).await;

    browser.goto(&app.url("/app/activity")).await;
    assert!(browser.text("table.activity").await.contains("invited a user"));
    browser.assert_accessible("the activity page").await;
    browser.screenshot(&shots.join("dashboard-activity.png")).await;

    let link = invitation_link(&app, "nina@shop.example").await;
    browser.submit("form.logout button").await;
    browser.goto(&app.url(&link)).await;
    browser.assert_accessible("the invitation page").await;
    browser.fill("#password", PASSWORD).await;
    browser.fill("#password2", PASSWORD).await;
    browser.submit("main form button").await;
    assert!(browser.text(".notice").await.contains("password is saved"));
    browser.assert_accessible("the invitation page, done").await;
    browser.quit().await;
}
