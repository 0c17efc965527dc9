//! Ledger checkpoints: someone with write access to the database deletes the newest entries of
//! a chain, deletes a workspace's whole chain, or edits a payload and recomputes every hash after
//! it. Each leaves a chain that is consistent in itself, so `ledger verify` alone passes; with a
//! checkpoint taken before, `ledger verify --checkpoint FILE` must fail and name each one.

use std::path::{Path, PathBuf};
use std::process::Output;

use diesel::prelude::*;
use optbridge::db::DbConn;
use optbridge::db::schema::consent_ledger;
use serde_json::Value;

use crate::helpers::{Backend, TestApp, both_backends, run_cli, spawn_app, stdout_json};

const KEY: &str = "a checkpoint key of at least thirty-two characters";

/// `optbridge ledger …` with LEDGER_CHECKPOINT_KEY set to `key` (or removed).
fn ledger_cli(app: &TestApp, key: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_optbridge"));
    cmd.arg("ledger")
        .args(args)
        .env("DATABASE_URL", &app.database.url)
        .env("RUST_LOG", "warn");
    match key {
        Some(key) => cmd.env("LEDGER_CHECKPOINT_KEY", key),
        None => cmd.env_remove("LEDGER_CHECKPOINT_KEY"),
    };
    cmd.output().expect("run optbridge binary")
}

fn write_checkpoint(dir: &Path, name: &str, out: &Output) -> PathBuf {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let path = dir.join(name);
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

fn verify_with(app: &TestApp, key: Option<&str>, checkpoint: &Path) -> Output {
    ledger_cli(
        app,
        key,
        &["verify", "--json", "--checkpoint", checkpoint.to_str().unwrap()],
    )
}

/// The problems a failed `verify --json` reported, as (workspace, problem) pairs.
fn problems(out: &Output) -> Vec<(String, String)> {
    assert!(!out.status.success(), "verify should have failed");
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["workspace_id"].as_str().unwrap().to_owned(),
                p["problem"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Runs `attack` with the append-only triggers out of the way, as an attacker with the
/// database file or the table owner's rights would.
async fn tamper(app: &TestApp, backend: Backend, attack: impl FnOnce(&mut DbConn) + Send + 'static) {
    app.with_db(move |conn| {
        let (off, on): (&[&str], &[&str]) = match backend {
            Backend::Sqlite => (
                &[
                    "DROP TRIGGER IF EXISTS consent_ledger_no_update",
                    "DROP TRIGGER IF EXISTS consent_ledger_no_delete",
                ],
                &[],
            ),
            Backend::Postgres => (
                &["ALTER TABLE consent_ledger DISABLE TRIGGER consent_ledger_no_update"],
                &["ALTER TABLE consent_ledger ENABLE TRIGGER consent_ledger_no_update"],
            ),
        };
        for sql in off {
            diesel::sql_query(*sql).execute(conn).unwrap();
        }
        attack(conn);
        for sql in on {
            diesel::sql_query(*sql).execute(conn).unwrap();
        }
    })
    .await
}

/// Edits the payload of entry `seq` and recomputes every hash from there on, the way the
/// ledger computes them (the format is public in the source).
fn rechain_after_edit(conn: &mut DbConn, workspace: &str, seq: i64) {
    let rows: Vec<(i64, String, chrono::NaiveDateTime, Option<String>, String, String)> = consent_ledger::table
        .filter(consent_ledger::workspace_id.eq(workspace))
        .order(consent_ledger::seq.asc())
        .select((
            consent_ledger::seq,
            consent_ledger::kind,
            consent_ledger::at,
            consent_ledger::payload,
            consent_ledger::payload_hash,
            consent_ledger::prev_hash,
        ))
        .load(conn)
        .unwrap();
    let mut prev = rows[usize::try_from(seq - 1).unwrap()].5.clone();
    for (s, kind, at, payload, payload_hash, _) in rows.into_iter().filter(|r| r.0 >= seq) {
        let (payload, payload_hash) = if s == seq {
            let forged = r#"{"email":"someone-else@example.dk","source":"forged"}"#.to_owned();
            let hash = optbridge::crypto::sha256_hex(forged.as_bytes());
            (Some(forged), hash)
        } else {
            (payload, payload_hash)
        };
        let canonical = format!(
            "{prev}\n{s}\n{kind}\n{}\n{payload_hash}",
            at.format("%Y-%m-%dT%H:%M:%S%.6f")
        );
        let hash = optbridge::crypto::sha256_hex(canonical.as_bytes());
        diesel::update(
            consent_ledger::table
                .filter(consent_ledger::workspace_id.eq(workspace))
                .filter(consent_ledger::seq.eq(s)),
        )
        .set((
            consent_ledger::payload.eq(payload),
            consent_ledger::payload_hash.eq(payload_hash),
            consent_ledger::prev_hash.eq(&prev),
            consent_ledger::hash.eq(&hash),
        ))
        .execute(conn)
        .unwrap();
        prev = hash;
    }
}

async fn a_checkpoint_catches_truncated_deleted_and_rechained_chains(backend: Backend) {
    let app = spawn_app(backend).await;
    let (shortened, deleted, rewritten, untouched) = (
        app.create_workspace("Shortened").await,
        app.create_workspace("Deleted").await,
        app.create_workspace("Rewritten").await,
        app.create_workspace("Untouched").await,
    );
    for ws in [&shortened, &deleted, &rewritten, &untouched] {
        app.import(&ws.token, "email\na@x.dk\nb@x.dk\nc@x.dk\nd@x.dk\n").await;
    }
    let dir = tempfile_dir();
    let checkpoint = write_checkpoint(&dir, "checkpoint.json", &ledger_cli(&app, None, &["checkpoint"]));
    let saved: Value = serde_json::from_slice(&std::fs::read(&checkpoint).unwrap()).unwrap();
    assert_eq!(saved["format"], "optbridge-ledger-checkpoint/1");
    assert_eq!(saved["heads"].as_array().unwrap().len(), 4, "{saved}");
    assert!(
        saved["heads"].as_array().unwrap().iter().all(|h| h["seq"] == 4),
        "{saved}"
    );
    assert!(saved.get("signature").is_none(), "no key, no signature");

    // Chains that grew since the checkpoint still verify against it.
    app.import(&untouched.token, "email\ne@x.dk\n").await;
    app.import(&shortened.token, "email\ne@x.dk\n").await;
    let report = stdout_json(&verify_with(&app, None, &checkpoint));
    assert_eq!(report["problems"], serde_json::json!([]), "{report}");

    let (s, d, r) = (shortened.id.clone(), deleted.id.clone(), rewritten.id.clone());
    tamper(&app, backend, move |conn| {
        diesel::delete(
            consent_ledger::table
                .filter(consent_ledger::workspace_id.eq(&s))
                .filter(consent_ledger::seq.ge(4)),
        )
        .execute(conn)
        .unwrap();
        diesel::delete(consent_ledger::table.filter(consent_ledger::workspace_id.eq(&d)))
            .execute(conn)
            .unwrap();
        rechain_after_edit(conn, &r, 2);
    })
    .await;

    // Each chain is consistent in itself: the plain check cannot see what happened.
    let plain = stdout_json(&run_cli(&app.database.url, &["ledger", "verify", "--json"]));
    assert_eq!(plain["problems"], serde_json::json!([]), "{plain}");

    let found = problems(&verify_with(&app, None, &checkpoint));
    assert_eq!(found.len(), 3, "{found:?}");
    let about = |ws: &str| {
        found
            .iter()
            .find(|(w, _)| w == ws)
            .map(|(_, p)| p.as_str())
            .unwrap_or("")
    };
    assert!(about(&shortened.id).contains("deleted from its end"), "{found:?}");
    assert!(about(&deleted.id).contains("whole chain is gone"), "{found:?}");
    assert!(about(&rewritten.id).contains("rewritten"), "{found:?}");
    assert_eq!(about(&untouched.id), "");

    // --workspace narrows the check to one chain.
    let one = ledger_cli(
        &app,
        None,
        &[
            "verify",
            "--json",
            "--workspace",
            &untouched.id,
            "--checkpoint",
            checkpoint.to_str().unwrap(),
        ],
    );
    assert!(one.status.success(), "{}", String::from_utf8_lossy(&one.stdout));
}

async fn a_signed_checkpoint_refuses_edits_and_a_missing_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Shop").await;
    app.import(&ws.token, "email\na@x.dk\nb@x.dk\n").await;
    let dir = tempfile_dir();

    let short = ledger_cli(&app, Some("too short"), &["checkpoint"]);
    assert!(!short.status.success());
    assert!(
        String::from_utf8_lossy(&short.stderr).contains("at least 32"),
        "{short:?}"
    );

    let signed = write_checkpoint(&dir, "signed.json", &ledger_cli(&app, Some(KEY), &["checkpoint"]));
    let text = std::fs::read_to_string(&signed).unwrap();
    assert!(text.contains("\"signature\""), "{text}");
    assert!(verify_with(&app, Some(KEY), &signed).status.success());

    let refused = |out: Output, why: &str| {
        assert!(!out.status.success(), "{why}");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(stderr.contains(why), "expected {why:?} in {stderr}");
    };
    refused(verify_with(&app, None, &signed), "set LEDGER_CHECKPOINT_KEY");
    refused(
        verify_with(&app, Some("another key of at least thirty-two characters"), &signed),
        "signature does not match",
    );

    // Someone lowers the recorded head to hide deletions: the signature no longer matches.
    let mut edited: Value = serde_json::from_str(&text).unwrap();
    edited["heads"][0]["seq"] = serde_json::json!(1);
    let edited_path = dir.join("edited.json");
    std::fs::write(&edited_path, edited.to_string()).unwrap();
    refused(verify_with(&app, Some(KEY), &edited_path), "signature does not match");

    // With a key configured, an unsigned file is not trusted either.
    let unsigned = write_checkpoint(&dir, "unsigned.json", &ledger_cli(&app, None, &["checkpoint"]));
    refused(verify_with(&app, Some(KEY), &unsigned), "not signed");

    let not_a_checkpoint = dir.join("other.json");
    std::fs::write(
        &not_a_checkpoint,
        r#"{"format":"something else","created_at":"2026-01-01T00:00:00Z","heads":[]}"#,
    )
    .unwrap();
    refused(verify_with(&app, None, &not_a_checkpoint), "not a ledger checkpoint");
}

/// A fresh directory under the system's temp dir.
fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("optbridge-ledger-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

both_backends!(
    a_checkpoint_catches_truncated_deleted_and_rechained_chains,
    a_signed_checkpoint_refuses_edits_and_a_missing_key,
);
