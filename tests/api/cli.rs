use crate::helpers::{Backend, MESSY_REJECTED_LINES, TestDatabase, both_backends, field, run_cli, stdout_json};

/// The path a newcomer takes: migrate, create a workspace, import a messy CSV.
async fn migrate_create_workspace_and_import(backend: Backend) {
    let database = TestDatabase::new(backend);
    let url = database.url.clone();

    // Before migrate, commands refuse rather than guessing.
    let out = run_cli(&url, &["workspace", "list"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("optbridge migrate"));

    let migrated = stdout_json(&run_cli(&url, &["migrate", "--json"]));
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
        .unwrap()
        .count();
    assert_eq!(migrated["applied"].as_array().unwrap().len(), migrations);
    let again = stdout_json(&run_cli(&url, &["migrate", "--json"]));
    assert_eq!(again["applied"].as_array().unwrap().len(), 0);

    let created = stdout_json(&run_cli(
        &url,
        &[
            "workspace",
            "create",
            "--name",
            "Shop",
            "--from",
            "Shop <news@shop.example>",
            "--json",
        ],
    ));
    let workspace_id = created["workspace_id"].as_str().unwrap().to_owned();
    assert!(created["api_token"].as_str().unwrap().starts_with("obk_"));

    let csv = std::env::temp_dir().join(format!("optbridge-cli-{workspace_id}.csv"));
    std::fs::write(&csv, crate::helpers::messy_csv()).unwrap();
    let report = stdout_json(&run_cli(
        &url,
        &["import", "--workspace", &workspace_id, csv.to_str().unwrap(), "--json"],
    ));
    assert_eq!(report["imported"], 2);
    let lines: Vec<u64> = report["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, MESSY_REJECTED_LINES);

    // Text output names the counts and each bad line.
    let out = run_cli(&url, &["import", "--workspace", &workspace_id, csv.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("imported 0, updated 2, rejected 7"), "{text}");
    assert!(
        text.contains("line 11: column 'first_name' is not valid UTF-8"),
        "{text}"
    );
    std::fs::remove_file(&csv).unwrap();

    let out = run_cli(
        &url,
        &["import", "--workspace", "no-such-workspace", "demo/contacts.csv"],
    );
    assert!(!out.status.success());
    let out = run_cli(&url, &["workspace", "create", "--name", "X", "--from", "not a mailbox"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("from address"));
}

async fn keys_rotate_keeps_old_keys(backend: Backend) {
    let database = TestDatabase::new(backend);
    let url = database.url.clone();
    stdout_json(&run_cli(&url, &["migrate", "--json"]));
    let before = stdout_json(&run_cli(&url, &["keys", "list", "--json"]));
    assert_eq!(before.as_array().unwrap().len(), 1);
    let rotated = stdout_json(&run_cli(&url, &["keys", "rotate", "--json"]));
    let keys = stdout_json(&run_cli(&url, &["keys", "list", "--json"]));
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["kid"], rotated["kid"]);
    assert!(keys[0]["retired_at"].is_null());
    assert!(!keys[1]["retired_at"].is_null());
    assert!(
        keys.iter().all(|k| k.get("secret").is_none()),
        "secrets are never printed"
    );
}

/// `optbridge demo`, the README's first command, as a process: it prints its URLs and
/// credentials, sends the campaign to the dev outbox and serves the dashboard. A second run
/// reuses the workspace and gives a new password.
async fn demo_serves_the_dashboard_and_the_dev_outbox(backend: Backend) {
    use std::io::BufRead as _;

    let database = TestDatabase::new(backend);
    let start = || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_optbridge"))
            .args(["--json", "demo"])
            .env("DATABASE_URL", &database.url)
            .env("BIND", "127.0.0.1:0")
            .env("OUTBOX_POLL_MS", "100")
            .env("RUST_LOG", "warn")
            .env_remove("BASE_URL")
            .env_remove("SMTP_URL")
            .env_remove("SMS_PROVIDER")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let printed: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("demo printed no JSON ({e}): {line}"));
        (child, printed)
    };
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = |base: String, email: String, password: String| {
        let client = client.clone();
        async move {
            let page = client.get(format!("{base}/app/login")).send().await.unwrap();
            let cookie = page.headers()["set-cookie"]
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned();
            let csrf = field(&page.text().await.unwrap(), "csrf");
            let res = client
                .post(format!("{base}/app/login"))
                .header("Cookie", cookie)
                .form(&[
                    ("email", email.as_str()),
                    ("password", password.as_str()),
                    ("csrf", csrf.as_str()),
                ])
                .send()
                .await
                .unwrap();
            let session = res
                .headers()
                .get_all("set-cookie")
                .iter()
                .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
                .find(|c| c.starts_with("ob_session="));
            (res.status().as_u16(), session)
        }
    };

    let (mut first, printed) = start();
    let base = printed["base_url"].as_str().unwrap().to_owned();
    let email = printed["dashboard_email"].as_str().unwrap().to_owned();
    let password = printed["dashboard_password"].as_str().unwrap().to_owned();
    let (status, session) = login(base.clone(), email.clone(), password.clone()).await;
    assert_eq!(status, 303, "the printed credentials log in");
    let campaign = client
        .get(format!(
            "{base}/app/campaigns/{}",
            printed["campaign_id"].as_str().unwrap()
        ))
        .header("Cookie", session.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(campaign.status(), 200);
    assert!(campaign.text().await.unwrap().contains("<svg"));
    let mut mails = String::new();
    for _ in 0..100 {
        mails = client
            .get(format!("{base}/dev/mail"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let subjects = [
            "Vil du høre først om vores udsalg?",
            "Vill du höra först om vår rea?",
            "Vil du høre først om salget vårt?",
            "Want to hear about our sale first?",
        ];
        if subjects.iter().all(|s| mails.contains(s)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        mails.contains("Vil du høre først om vores udsalg?"),
        "the invitations reach the dev outbox"
    );
    // Each language its own campaign text (issue 16, item 10), not the Danish one for everyone.
    for subject in [
        "Vill du höra först om vår rea?",
        "Vil du høre først om salget vårt?",
        "Want to hear about our sale first?",
    ] {
        assert!(mails.contains(subject), "{subject} in the dev outbox");
    }
    first.kill().unwrap();
    first.wait().unwrap();

    let (mut second, again) = start();
    assert_eq!(
        again["workspace_id"], printed["workspace_id"],
        "the demo workspace is reused"
    );
    assert_eq!(again["campaign_id"], printed["campaign_id"]);
    let base = again["base_url"].as_str().unwrap().to_owned();
    let new_password = again["dashboard_password"].as_str().unwrap().to_owned();
    assert_ne!(new_password, password);
    assert_eq!(
        login(base.clone(), email.clone(), password).await.0,
        401,
        "the old password is gone"
    );
    assert_eq!(login(base, email, new_password).await.0, 303);
    second.kill().unwrap();
    second.wait().unwrap();
}

both_backends!(
    migrate_create_workspace_and_import,
    keys_rotate_keeps_old_keys,
    demo_serves_the_dashboard_and_the_dev_outbox
);
