//! The dashboard's contact list (search, filters, pages), its 404 page, and where `/` leads.

use crate::helpers::{Backend, both_backends, spawn_app};

async fn get(app: &crate::helpers::TestApp, cookie: &str, path: &str) -> (u16, String) {
    let res = app
        .client
        .get(app.url(path))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// The emails listed on a contacts page, in order.
fn listed(page: &str) -> Vec<String> {
    page.split("<td><a href=\"/app/contacts/")
        .skip(1)
        .map(|part| part.split('>').nth(1).unwrap().split('<').next().unwrap().to_owned())
        .collect()
}

async fn contacts_are_listed_filtered_and_paged(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Skobutikken").await;
    let other = app.create_workspace("Other shop").await;
    let mut csv = String::from("email,first_name,locale\n");
    for i in 0..60 {
        let locale = if i % 3 == 0 { "sv" } else { "da" };
        csv.push_str(&format!("p{i:02}@example.dk,Person{i},{locale}\n"));
    }
    app.import(&ws.token, &csv).await;
    app.import(&other.token, "email\nsecret@other.example\n").await;
    let id = ws.id.clone();
    app.with_db(move |c| {
        optbridge::contacts::suppress(c, &id, optbridge::domain::Channel::Email, "p05@example.dk", "test").unwrap()
    })
    .await;
    let (cookie, _) = app.dashboard_session(&ws.id, "marketer@skobutikken.example").await;

    // Without a search, the list pages through every contact of the workspace in email order.
    let (status, page) = get(&app, &cookie, "/app/contacts").await;
    assert_eq!(status, 200);
    let first = listed(&page);
    assert_eq!(first.len(), 50);
    assert_eq!(first[0], "p00@example.dk");
    assert!(!page.contains("secret@other.example"));
    let next = page
        .split("rel=\"next\"")
        .next()
        .unwrap()
        .rsplit("href=\"")
        .next()
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    let (_, page) = get(&app, &cookie, &next).await;
    assert_eq!(
        listed(&page),
        (50..60).map(|i| format!("p{i}@example.dk")).collect::<Vec<_>>()
    );
    assert!(!page.contains("rel=\"next\""), "the last page has no next");

    // Filters: language, suppression.
    let (_, page) = get(&app, &cookie, "/app/contacts?locale=sv").await;
    assert_eq!(listed(&page).len(), 20);
    let (_, page) = get(&app, &cookie, "/app/contacts?suppressed=yes").await;
    assert_eq!(listed(&page), ["p05@example.dk"]);
    assert!(page.contains("data-suppressed=\"true\""));
    let (_, page) = get(&app, &cookie, "/app/contacts?sms=active").await;
    assert!(listed(&page).is_empty(), "nobody has an SMS consent yet");
    let (_, page) = get(
        &app,
        &cookie,
        "/app/contacts?q=person1&locale=da&suppressed=no&sms=none",
    )
    .await;
    // Person1, Person10..19 minus the Swedish ones (multiples of 3: 12, 15, 18).
    assert_eq!(listed(&page).len(), 8, "{:?}", listed(&page));
    let (_, page) = get(&app, &cookie, "/app/contacts?q=secret").await;
    assert!(listed(&page).is_empty());
    let (_, page) = get(&app, &cookie, "/app/contacts?q=%25").await;
    assert!(listed(&page).is_empty(), "a % is matched literally");
}

async fn the_dashboard_has_its_own_404_and_the_root_leads_to_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Skobutikken").await;
    let (cookie, _) = app.dashboard_session(&ws.id, "marketer@skobutikken.example").await;
    for path in [
        "/app/no-such-page",
        "/app/campaigns/no-such-campaign",
        "/app/import/no-such-job",
    ] {
        let (status, page) = get(&app, &cookie, path).await;
        assert_eq!(status, 404, "{path}");
        assert!(page.contains("Page not found"), "{path}: {page}");
        assert!(page.contains("href=\"/app\""));
    }
    let res = app
        .client
        .get(app.url("/app/nowhere"))
        .header("Accept-Language", "da")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert!(res.text().await.unwrap().contains("Siden findes ikke"));
    // Bad public links keep their one page.
    let (status, page) = app.page("/l/not-a-token").await;
    assert_eq!(status, 404);
    assert!(!page.contains("Page not found"));
    let res = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/app");
}

both_backends!(
    contacts_are_listed_filtered_and_paged,
    the_dashboard_has_its_own_404_and_the_root_leads_to_it,
);
