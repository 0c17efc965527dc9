//! Shared by the in-process `bench-*` examples (`links.rs`, `render.rs`): timing a call, and a
//! scratch SQLite database holding a current link-signing key.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use optbridge::config::DatabaseUrl;
use optbridge::db::Db;

/// The mean time of one call of `f` over `iterations` calls, after a tenth as many to warm up.
pub fn per_call(iterations: u32, mut f: impl FnMut()) -> Duration {
    for _ in 0..iterations / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    start.elapsed() / iterations
}

/// A migrated SQLite database `name` with a current signing key, in a new temporary folder
/// (returned, for the caller to remove).
pub fn scratch_db(name: &str) -> Result<(PathBuf, Db), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("optbridge-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = Db::connect(
        &DatabaseUrl::Sqlite(dir.join(format!("{name}.db")).display().to_string()),
        1,
        Duration::from_secs(1),
    )?;
    db.migrate()?;
    {
        let mut conn = db.get()?;
        optbridge::signing::ensure_current(&mut conn, &optbridge::signing::KeyEncryption::default())?;
    }
    Ok((dir, db))
}
