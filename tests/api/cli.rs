use crate::helpers::{Backend, MESSY_REJECTED_LINES, TestDatabase, both_backends, run_cli, stdout_json};

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

both_backends!(migrate_create_workspace_and_import, keys_rotate_keeps_old_keys);
