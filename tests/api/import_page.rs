//! The dashboard's import page: the upload's limits and form token, and the import job's life
//! across a worker killed part-way (SIGKILL), which resumes after its last batch.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use diesel::prelude::*;
use optbridge::db::schema::{contacts, import_jobs, import_refusals};

use crate::helpers::{Backend, both_backends, metric, spawn_app_with};

/// A directory of its own for each test's uploads, so that what is left in it can be checked.
fn import_dir(test: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("optbridge-test-imports-{test}-{}", optbridge::db::new_id()))
}

fn files_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

async fn uploads_are_limited_and_need_the_form_token(backend: Backend) {
    let dir = import_dir("limits");
    let spool = dir.clone();
    let app = spawn_app_with(backend, move |a| {
        a.import_max_bytes = 1000;
        a.import_dir = Some(spool);
    })
    .await;
    let ws = app.create_workspace("Skobutikken").await;
    let (cookie, csrf) = app.dashboard_session(&ws.id, "marketer@skobutikken.example").await;

    // Larger than IMPORT_MAX_BYTES (the same limit as the API's): 413, said on the page.
    let mut big = b"email\n".to_vec();
    while big.len() <= 1000 {
        big.extend_from_slice(b"someone@example.dk\n");
    }
    let res = app.upload_import(&cookie, &csrf, "big.csv", &big).await;
    assert_eq!(res.status(), 413);
    let page = res.text().await.unwrap();
    assert!(page.contains("The file is too large: at most"), "{page}");
    assert!(page.contains("aria-invalid=\"true\""), "{page}");

    // A wrong form token stores nothing.
    let res = app
        .upload_import(&cookie, "not-the-token", "ok.csv", b"email\na@example.dk\n")
        .await;
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("The form had expired"));

    // No file chosen.
    let res = app.upload_import(&cookie, &csrf, "empty.csv", b"").await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("Choose a CSV file"));

    // Not logged in: refused before anything is read.
    let res = app
        .upload_import("ob_session=forged", &csrf, "ok.csv", b"email\na@example.dk\n")
        .await;
    assert_eq!(res.status(), 403);

    let jobs: i64 = app.with_db(|c| import_jobs::table.count().get_result(c).unwrap()).await;
    assert_eq!(jobs, 0, "no job for a refused upload");
    assert_eq!(files_in(&dir), 0, "no file left behind");

    // A file whose header has no email column: the job fails with the reason, in Danish for a
    // Danish browser.
    let res = app
        .upload_import(&cookie, &csrf, "names.csv", b"name,phone\nAnna,1234\n")
        .await;
    assert_eq!(res.status(), 303);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let page = app.page_in(&cookie, &location, "da").await;
    assert!(page.contains("Stop opdateringen"), "a queued job refreshes: {page}");
    assert!(page.contains("i kø"), "{page}");
    app.drain_outbox(Duration::from_secs(10)).await;
    let page = app.page_in(&cookie, &location, "en").await;
    assert!(page.contains("data-status=\"failed\""), "{page}");
    assert!(
        page.contains("has no &#39;email&#39; column (found: name, phone)"),
        "{page}"
    );
    // A Danish browser reads why in Danish.
    let page = app.page_in(&cookie, &location, "da").await;
    assert!(
        page.contains("Overskriften har ingen email-kolonne (fandt: name, phone)."),
        "{page}"
    );
    assert!(!page.contains("has no &#39;email&#39; column"), "{page}");
    assert_eq!(files_in(&dir), 0, "the file is deleted when the job ends");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A worker process, SIGKILLed when dropped (also when the test fails).
struct WorkerProcess(Child);

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn a_killed_import_job_resumes_after_its_last_batch(backend: Backend) {
    const ROWS: usize = 100_000;
    let dir = import_dir("resume");
    let spool = dir.clone();
    let app = spawn_app_with(backend, move |a| {
        a.import_max_bytes = 64 * 1024 * 1024;
        a.import_dir = Some(spool);
    })
    .await;
    let ws = app.create_workspace("Skobutikken").await;
    let (cookie, csrf) = app.dashboard_session(&ws.id, "marketer@skobutikken.example").await;
    let mut csv = String::from("email,first_name,locale\n");
    for i in 0..ROWS {
        if i % 1000 == 500 {
            csv.push_str(&format!("broken-{i},X,da\n"));
        } else {
            csv.push_str(&format!("person{i}@example.dk,P{i},da\n"));
        }
    }
    let bad = ROWS / 1000;
    let res = app.upload_import(&cookie, &csrf, "big.csv", csv.as_bytes()).await;
    assert_eq!(res.status(), 303);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let job_id = location.rsplit('/').next().unwrap().to_owned();
    assert_eq!(files_in(&dir), 1, "the upload waits on disk");

    // A worker process takes the job; it is killed once some batches are in.
    let worker = WorkerProcess(
        Command::new(env!("CARGO_BIN_EXE_optbridge"))
            .arg("worker")
            .env("DATABASE_URL", &app.database.url)
            .env("BASE_URL", app.settings.base_url.as_str())
            .env("OUTBOX_LEASE_SECS", "2")
            .env("OUTBOX_POLL_MS", "50")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start optbridge worker"),
    );
    let id = job_id.clone();
    let records_at = move |c: &mut optbridge::db::DbConn| -> i64 {
        import_jobs::table
            .find(&id)
            .select(import_jobs::records)
            .first(c)
            .unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let f = records_at.clone();
        if app.with_db(f).await >= 3000 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the worker made no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(worker); // SIGKILL: no cleanup runs
    let f = records_at.clone();
    let killed_at = app.with_db(f).await;
    assert!(
        (killed_at as usize) < ROWS,
        "killed part-way ({killed_at} of {ROWS} rows read)"
    );

    // While it waits for the dead worker's lease, the page shows the progress so far.
    let page = app
        .client
        .get(app.url(&location))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Stop refreshing"), "{page}");
    let res = app
        .client
        .get(app.url(&location))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["refresh"], "2", "a running job's page refreshes itself");
    let res = app
        .client
        .get(app.url(&format!("{location}?refresh=off")))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert!(
        res.headers().get("refresh").is_none(),
        "unless the reader turned it off"
    );
    assert_eq!(metric(&page, "records"), killed_at);

    tokio::time::sleep(Duration::from_millis(2500)).await;
    app.drain_outbox(Duration::from_secs(120)).await;

    let id = job_id.clone();
    let ws_id = ws.id.clone();
    let (status, imported, updated, refused, refusal_rows, contacts) = app
        .with_db(move |c| {
            let (status, imported, updated, refused): (String, i64, i64, i64) = import_jobs::table
                .find(&id)
                .select((
                    import_jobs::status,
                    import_jobs::imported,
                    import_jobs::updated,
                    import_jobs::refused,
                ))
                .first(c)
                .unwrap();
            let refusal_rows: i64 = import_refusals::table
                .filter(import_refusals::job_id.eq(&id))
                .count()
                .get_result(c)
                .unwrap();
            let contacts: i64 = contacts::table
                .filter(contacts::workspace_id.eq(&ws_id))
                .count()
                .get_result(c)
                .unwrap();
            (status, imported, updated, refused, refusal_rows, contacts)
        })
        .await;
    assert_eq!(status, "done");
    assert_eq!(imported as usize, ROWS - bad);
    // Resumed, not started over: no row before the checkpoint was written twice.
    assert_eq!(updated, 0);
    assert_eq!(refused as usize, bad);
    assert_eq!(refusal_rows as usize, bad, "every refused row recorded once");
    assert_eq!(contacts as usize, ROWS - bad);
    assert_eq!(files_in(&dir), 0, "the file is deleted after the job");
    let _ = std::fs::remove_dir_all(&dir);
}

both_backends!(
    uploads_are_limited_and_need_the_form_token,
    a_killed_import_job_resumes_after_its_last_batch,
);
