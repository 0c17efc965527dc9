//! One binary, two backends: the connection enum, the pool, migrations and transactions.
//!
//! Shared code talks to [`DbConn`] through portable diesel queries. Queries diesel compiles only
//! for one backend at a time (batch inserts, upserts) are written once in [`on_each_backend!`];
//! what really differs (COPY, `SKIP LOCKED`, SQLite's `BEGIN IMMEDIATE`) matches on the variant
//! here or in the module that needs it.

pub mod schema;
pub mod text_enum;

use std::sync::Arc;
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection, R2D2Connection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::DatabaseUrl;

#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Sqlite(diesel::SqliteConnection),
    Pg(diesel::PgConnection),
}

/// Runs one piece of code on the backend connection inside a [`DbConn`], for diesel queries that
/// compile only on a concrete backend (multi-row `.values(&rows)`, `.on_conflict()`): written
/// once, compiled once per backend (vaultwarden's `db_run!`). Code that really differs per
/// backend (COPY, `SKIP LOCKED`) matches on the variant instead, with a comment saying why.
///
/// ```ignore
/// db::on_each_backend!(conn, |c| diesel::insert_into(t::table).values(&rows).execute(c))?;
/// ```
macro_rules! on_each_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Sqlite($c) => $body,
            $crate::db::DbConn::Pg($c) => $body,
        }
    };
}

pub(crate) use on_each_backend;

pub type PooledConn = r2d2::PooledConnection<ConnectionManager>;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("could not connect to the database: {0}")]
    Connect(String),
    #[error("no database connection available: {0}")]
    Pool(#[from] r2d2::PoolError),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("no database connection became free within {} s", POOL_WAIT.as_secs())]
    Busy,
    #[error("database task was cancelled")]
    Cancelled,
    #[error("database task panicked (a bug; the panic is in the log)")]
    Panicked,
}

impl DbError {
    /// The database gave up on this transaction to let another one through; running it again
    /// is the fix.
    pub fn is_conflict(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            Self::Query(Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _)) => true,
            Self::Query(Error::DatabaseError(_, info)) => {
                let msg = info.message();
                msg.contains("deadlock detected") || msg.contains("database is locked")
            }
            _ => false,
        }
    }

    /// The input held text the database cannot store (PostgreSQL refuses NUL characters in
    /// text, SQLSTATE 22021): the request's fault, not the server's.
    pub fn is_invalid_text(&self) -> bool {
        use diesel::result::Error;
        matches!(self, Self::Query(Error::DatabaseError(_, info))
            if info.message().starts_with("invalid byte sequence for encoding"))
    }

    /// The connection to the database was lost (server restarted, backend terminated, network
    /// cut): nothing of the transaction was committed and a later attempt gets a new connection.
    pub fn is_connection_lost(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            Self::Connect(_) | Self::Pool(_) | Self::Busy => true,
            Self::Query(Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _)) => true,
            Self::Query(Error::DatabaseError(_, info)) => {
                let msg = info.message();
                msg.contains("terminating connection")
                    || msg.contains("server closed the connection")
                    || msg.contains("no connection to the server")
                    || msg.contains("connection to server")
            }
            _ => false,
        }
    }

    /// True when the error is a unique-constraint violation (a lost race with another writer).
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            Self::Query(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }
}

/// Opens connections for the r2d2 pool, choosing the backend from the URL (diesel's own
/// `MultiConnection::establish` tries each backend and hides the real error).
#[derive(Debug)]
pub struct ConnectionManager {
    url: DatabaseUrl,
    busy_timeout: Duration,
}

impl ConnectionManager {
    fn open(&self) -> Result<DbConn, DbError> {
        match &self.url {
            DatabaseUrl::Sqlite(path) => {
                let mut conn = diesel::SqliteConnection::establish(path)
                    .map_err(|e| DbError::Connect(format!("SQLite file '{path}': {e}")))?;
                // WAL lets readers run beside the one writer; NORMAL sync is durable across process
                // crashes in WAL mode (only an OS crash can lose the last commits).
                // cache_size/mmap_size: keep hot pages in memory instead of a pread per page
                // (SQLite's default cache is 2 MB per connection).
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {};
                     PRAGMA journal_mode = WAL;
                     PRAGMA synchronous = NORMAL;
                     PRAGMA foreign_keys = ON;
                     PRAGMA cache_size = -32768;
                     PRAGMA mmap_size = 268435456;",
                    self.busy_timeout.as_millis()
                ))?;
                Ok(DbConn::Sqlite(conn))
            }
            DatabaseUrl::Postgres(url) => {
                let conn =
                    diesel::PgConnection::establish(url).map_err(|e| DbError::Connect(format!("PostgreSQL: {e}")))?;
                Ok(DbConn::Pg(conn))
            }
        }
    }
}

impl ManageConnection for ConnectionManager {
    type Connection = DbConn;
    type Error = DbError;

    fn connect(&self) -> Result<DbConn, DbError> {
        self.open()
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), DbError> {
        conn.ping().map_err(DbError::Query)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        conn.is_broken()
    }
}

/// How long a caller waits for a pooled connection (and [`Db::run`] for its turn) before giving up.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// The database handle the whole application shares: a pool plus the backend it talks to.
#[derive(Clone)]
pub struct Db {
    pool: r2d2::Pool<ConnectionManager>,
    backend: Backend,
    /// One permit per pooled connection: [`Db::run`] starts a blocking thread only with one,
    /// the rest wait here as futures (1,000 concurrent sign-ups had 512 threads parked in
    /// `pool.get()`, 568 MB RSS; BENCHMARKS.md, "Concurrent sign-ups").
    turns: Arc<tokio::sync::Semaphore>,
    /// SQLite: this process's write transactions take turns here, first come first served
    /// ([`write_tx`]). `None` on PostgreSQL.
    write_gate: Option<WriteGate>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("backend", &self.backend).finish()
    }
}

impl Db {
    /// Builds the pool and checks that one connection can be opened, so a wrong URL fails at
    /// start with the real reason.
    pub fn connect(url: &DatabaseUrl, pool_size: u32, busy_timeout: Duration) -> Result<Self, DbError> {
        let manager = ConnectionManager {
            url: url.clone(),
            busy_timeout,
        };
        // Surface the real connect error before r2d2 wraps it in a timeout.
        drop(manager.open()?);
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            .min_idle(Some(1))
            .connection_timeout(POOL_WAIT)
            .build(manager)
            .map_err(|e| DbError::Connect(e.to_string()))?;
        let backend = match url {
            DatabaseUrl::Sqlite(_) => Backend::Sqlite,
            DatabaseUrl::Postgres(_) => Backend::Postgres,
        };
        let turns = Arc::new(tokio::sync::Semaphore::new(pool_size as usize));
        let write_gate = (backend == Backend::Sqlite).then(WriteGate::default);
        Ok(Self {
            pool,
            backend,
            turns,
            write_gate,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A pooled connection for blocking code (CLI, workers already off the executor).
    pub fn get(&self) -> Result<PooledConn, DbError> {
        Ok(self.pool.get()?)
    }

    /// Runs blocking database work on the blocking thread pool, off the async executor: at most
    /// one task per pooled connection at a time, the others queue (as futures, not threads).
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let pool = self.pool.clone();
        let turn = match self.turns.clone().try_acquire_owned() {
            Ok(turn) => turn,
            // Every connection is at work: queue, as long as the pool would wait for one.
            Err(_) => tokio::time::timeout(POOL_WAIT, self.turns.clone().acquire_owned())
                .await
                .map_err(|_| E::from(DbError::Busy))?
                .map_err(|_| E::from(DbError::Cancelled))?,
        };
        // A panic in `f` ends only this task: it comes back as an error (500/503 to the request),
        // never re-raised. A connection it left inside a transaction counts as broken and is not
        // returned to the pool. The turn goes with the task: a caller that stops waiting (a client
        // gone) does not free it while the work still runs.
        let gate = self.write_gate.clone();
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            let _gate = gate.map(WriteGateScope::enter);
            let mut conn = pool.get().map_err(DbError::from)?;
            f(&mut conn)
        })
        .await
        .map_err(|e| match e.try_into_panic() {
            Ok(payload) => {
                tracing::error!(
                    panic = crate::telemetry::panic_message(payload.as_ref()),
                    "database task panicked"
                );
                E::from(DbError::Panicked)
            }
            Err(_) => E::from(DbError::Cancelled),
        })?
    }

    /// Runs pending migrations for this backend; returns the versions applied.
    pub fn migrate(&self) -> Result<Vec<String>, DbError> {
        let mut conn = self.get()?;
        run_migrations(&mut conn)
    }

    /// Pings the database (for /healthz).
    pub async fn ping(&self) -> Result<(), DbError> {
        self.run(|conn| conn.ping().map_err(DbError::from)).await
    }
}

pub fn run_migrations(conn: &mut DbConn) -> Result<Vec<String>, DbError> {
    // Each backend has its own migrations (its own SQL dialect), under the same names.
    let applied = match conn {
        DbConn::Sqlite(c) => c
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map(|v| v.iter().map(ToString::to_string).collect()),
        DbConn::Pg(c) => c
            .run_pending_migrations(POSTGRES_MIGRATIONS)
            .map(|v| v.iter().map(ToString::to_string).collect()),
    };
    applied.map_err(|e| DbError::Migration(e.to_string()))
}

/// Whether the schema is behind this binary's migrations.
pub fn has_pending_migrations(conn: &mut DbConn) -> Result<bool, DbError> {
    let pending = match conn {
        DbConn::Sqlite(c) => c.has_pending_migration(SQLITE_MIGRATIONS),
        DbConn::Pg(c) => c.has_pending_migration(POSTGRES_MIGRATIONS),
    };
    pending.map_err(|e| DbError::Migration(e.to_string()))
}

impl DbConn {
    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Pg(_) => Backend::Postgres,
        }
    }
}

type Deferred = Vec<Box<dyn FnOnce()>>;

thread_local! {
    /// What runs once the current [`write_tx`] on this thread commits; `None` outside one.
    static AFTER_COMMIT: std::cell::RefCell<Option<Deferred>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` once the current [`write_tx`] on this thread has committed, and not at all if it
/// rolls back (a transaction run again by [`write_tx_retrying`] registers `f` again); outside a
/// `write_tx`, at once. For effects outside the database that must agree with what was
/// committed, such as the Prometheus counters.
pub fn after_commit(f: impl FnOnce() + 'static) {
    let inside = AFTER_COMMIT.with(|slot| slot.borrow().is_some());
    if inside {
        AFTER_COMMIT.with(|slot| {
            if let Some(pending) = slot.borrow_mut().as_mut() {
                pending.push(Box::new(f));
            }
        });
    } else {
        f();
    }
}

/// The span of one `write_tx` for [`after_commit`]: what was registered is dropped unless
/// [`AfterCommitScope::committed`] takes it, also when the transaction's closure panics.
struct AfterCommitScope {
    outer: Option<Deferred>,
}

impl AfterCommitScope {
    fn enter() -> Self {
        Self {
            outer: AFTER_COMMIT.with(|slot| slot.replace(Some(Vec::new()))),
        }
    }

    /// Leaves the scope after a commit and runs what was registered in it (or hands it to an
    /// enclosing scope, whose commit decides).
    fn committed(mut self) {
        let pending = AFTER_COMMIT.with(|slot| slot.borrow_mut().take()).unwrap_or_default();
        match self.outer.as_mut() {
            Some(outer) => outer.extend(pending),
            None => {
                // Restored first: what runs now is outside any transaction.
                AFTER_COMMIT.with(|slot| *slot.borrow_mut() = self.outer.take());
                pending.into_iter().for_each(|f| f());
            }
        }
    }
}

impl Drop for AfterCommitScope {
    fn drop(&mut self) {
        let outer = self.outer.take();
        AFTER_COMMIT.with(|slot| *slot.borrow_mut() = outer);
    }
}

/// SQLite's writers in this process, in the order they asked. SQLite lets one transaction write
/// at a time and makes the others poll: its busy handler sleeps 1, 2, 5, 10 … 100 ms between
/// tries, so a writer that commits and begins again at once (a campaign's expansion, a page of
/// 1,000 invitations every ~11 ms) kept the lock for itself. With 100,000 invitations, the
/// sending worker waited 80 – 340 ms for each claim and group commit and sent about 1,000
/// invitations during the 1.1 s of the expansion (BENCHMARKS.md, "sixth session"). Here the
/// waiters queue (tokio's mutex is fair) and each gets the lock the moment it is free. Writers
/// in other processes (a `worker` beside `serve`, the CLI) still meet SQLite's busy handler.
type WriteGate = Arc<tokio::sync::Mutex<()>>;

thread_local! {
    /// The gate of the database whose [`Db::run`] runs on this thread, and whether a
    /// [`write_tx`] on this thread holds it already (a nested one must not wait for itself).
    static WRITE_GATE: std::cell::RefCell<(Option<WriteGate>, bool)> = const { std::cell::RefCell::new((None, false)) };
}

/// While it lives, [`write_tx`] on this thread takes the gate it entered.
struct WriteGateScope;

impl WriteGateScope {
    fn enter(gate: WriteGate) -> Self {
        WRITE_GATE.with(|slot| *slot.borrow_mut() = (Some(gate), false));
        Self
    }
}

impl Drop for WriteGateScope {
    fn drop(&mut self) {
        WRITE_GATE.with(|slot| *slot.borrow_mut() = (None, false));
    }
}

/// This thread's turn at the write gate, held for one outermost SQLite write transaction.
struct WriteTurn {
    _held: tokio::sync::OwnedMutexGuard<()>,
}

impl WriteTurn {
    /// Waits for the turn, or returns `None` when there is no gate here (PostgreSQL, code outside
    /// [`Db::run`]) or this thread holds it already.
    fn take() -> Option<Self> {
        let gate = WRITE_GATE.with(|slot| {
            let mut slot = slot.borrow_mut();
            let gate = slot.0.clone().filter(|_| !slot.1)?;
            slot.1 = true;
            Some(gate)
        })?;
        Some(Self {
            _held: gate.blocking_lock_owned(),
        })
    }
}

impl Drop for WriteTurn {
    fn drop(&mut self) {
        WRITE_GATE.with(|slot| slot.borrow_mut().1 = false);
    }
}

/// Runs `f` in a write transaction: `BEGIN IMMEDIATE` on SQLite (take the write lock up front, so
/// two writers never deadlock upgrading read locks; this process's writers queue for it at its
/// [`WriteGate`] first), a plain `BEGIN` on PostgreSQL. Nested `conn.transaction(..)` calls
/// inside `f` become savepoints.
pub fn write_tx<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<DbError>,
{
    let _turn = match conn {
        DbConn::Sqlite(_) => WriteTurn::take(),
        DbConn::Pg(_) => None,
    };
    let begin = match conn {
        DbConn::Sqlite(c) => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE"),
        DbConn::Pg(c) => AnsiTransactionManager::begin_transaction(c),
    };
    begin.map_err(|e| E::from(DbError::from(e)))?;
    let scope = AfterCommitScope::enter();
    match f(conn) {
        Ok(value) => {
            let committed = on_each_backend!(conn, |c| AnsiTransactionManager::commit_transaction(c));
            committed.map_err(|e| E::from(DbError::from(e)))?;
            scope.committed();
            Ok(value)
        }
        Err(err) => {
            let rolled_back = on_each_backend!(conn, |c| AnsiTransactionManager::rollback_transaction(c));
            if let Err(rollback_err) = rolled_back {
                tracing::error!(error = %rollback_err, "rollback failed");
            }
            Err(err)
        }
    }
}

/// [`write_tx`], run again (up to `attempts` times, with a short pause) when the database
/// aborted it to resolve a conflict: a PostgreSQL deadlock or serialization failure, or SQLite
/// still busy after `busy_timeout`. The closure must be safe to repeat from the start.
pub fn write_tx_retrying<T, E, F>(conn: &mut DbConn, attempts: u32, mut f: F) -> Result<T, E>
where
    F: FnMut(&mut DbConn) -> Result<T, E>,
    E: From<DbError> + AsDbError,
{
    let mut attempt = 1;
    loop {
        match write_tx(conn, &mut f) {
            Err(e) if attempt < attempts && e.as_db_error().is_some_and(DbError::is_conflict) => {
                tracing::info!(attempt, "transaction lost a conflict; running it again");
                std::thread::sleep(std::time::Duration::from_millis(10 * u64::from(attempt)));
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Errors that may wrap a database error (for [`write_tx_retrying`]).
pub trait AsDbError {
    fn as_db_error(&self) -> Option<&DbError>;
}

impl AsDbError for DbError {
    fn as_db_error(&self) -> Option<&DbError> {
        Some(self)
    }
}

/// Serializes writers that share `key` until the current transaction ends: a PostgreSQL advisory
/// lock. On SQLite the `BEGIN IMMEDIATE` of [`write_tx`] already serializes every writer.
pub fn lock_for_transaction(conn: &mut DbConn, key: &str) -> Result<(), DbError> {
    if let DbConn::Pg(pg) = conn {
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind::<diesel::sql_types::Text, _>(key)
            .execute(pg)?;
    }
    Ok(())
}

/// A new time-ordered id (UUIDv7) as text, the primary key type of every table.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Current time as stored: UTC, microsecond precision (what both backends keep).
pub fn now() -> chrono::NaiveDateTime {
    use chrono::{SubsecRound, Utc};
    Utc::now().naive_utc().trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create_table(conn: &mut DbConn) -> Result<(), DbError> {
        diesel::sql_query("CREATE TABLE IF NOT EXISTS t (x INTEGER)").execute(conn)?;
        Ok(())
    }

    fn insert(conn: &mut DbConn) -> Result<(), DbError> {
        diesel::sql_query("INSERT INTO t (x) VALUES (1)").execute(conn)?;
        Ok(())
    }

    /// A writer that begins again the moment it commits (a campaign's expansion, page after
    /// page) lets a writer that asked meanwhile go next. Left to SQLite's busy handler, which
    /// polls after sleeping 1, 2, 5 … ms, the second writer found the lock taken again each time
    /// and waited for the whole run of transactions.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_writers_in_one_process_take_turns() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        const RUN: usize = 60;
        let dir = std::env::temp_dir().join(format!("optbridge-db-turns-{}", new_id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let url = DatabaseUrl::Sqlite(dir.join("t.db").to_string_lossy().into_owned());
        let db = Db::connect(&url, 4, Duration::from_secs(10)).expect("connect");
        db.run(create_table).await.expect("table");

        let done = Arc::new(AtomicUsize::new(0));
        let hog = {
            let (db, done) = (db.clone(), done.clone());
            tokio::spawn(async move {
                db.run(move |conn| -> Result<(), DbError> {
                    for _ in 0..RUN {
                        write_tx(conn, |conn| -> Result<(), DbError> {
                            insert(conn)?;
                            std::thread::sleep(Duration::from_millis(2));
                            done.fetch_add(1, Ordering::SeqCst);
                            Ok(())
                        })?;
                    }
                    Ok(())
                })
                .await
            })
        };
        while done.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let d = done.clone();
        // Counted where the second writer asks for the lock, not before its thread starts: on
        // a busy machine starting it took the first writer three more transactions (CI).
        let (asked, got_in) = db
            .run(move |conn| {
                let asked = d.load(Ordering::SeqCst);
                write_tx(conn, |conn| -> Result<(usize, usize), DbError> {
                    insert(conn)?;
                    Ok((asked, d.load(Ordering::SeqCst)))
                })
            })
            .await
            .expect("second writer");
        hog.await.expect("join").expect("first writer");
        assert!(
            got_in <= asked + 2,
            "asked after {asked} of {RUN} transactions, got in after {got_in}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_panic_in_database_work_is_an_error_and_the_pool_recovers() {
        let dir = std::env::temp_dir().join(format!("optbridge-db-panic-{}", new_id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let url = DatabaseUrl::Sqlite(dir.join("t.db").to_string_lossy().into_owned());
        // One connection: a connection left inside the panicked transaction would be reused.
        let db = Db::connect(&url, 1, Duration::from_millis(200)).expect("connect");
        db.run(create_table).await.expect("table");

        let panicked: Result<(), DbError> = db
            .run(|conn| {
                write_tx(conn, |conn| {
                    insert(conn)?;
                    panic!("bug in the middle of a write transaction");
                })
            })
            .await;
        assert!(matches!(panicked, Err(DbError::Panicked)), "{panicked:?}");

        // The write lock is free and the half-done insert was rolled back.
        db.run(|conn| write_tx(conn, insert))
            .await
            .expect("write after the panic");
        let rows: i64 = db
            .run(|conn| {
                diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                    "(SELECT COUNT(*) FROM t)",
                ))
                .get_result(conn)
                .map_err(DbError::from)
            })
            .await
            .expect("count");
        assert_eq!(rows, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Work beyond the pool queues without holding a thread: with both connections at work, 20
    /// more `run`s leave the blocking threads free for other work, and never run more than two
    /// at once. Before, each of them parked a thread in `pool.get()` and the rest of the
    /// blocking work waited behind them.
    #[test]
    fn work_beyond_the_pool_queues_without_taking_threads() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        use std::sync::{Condvar, Mutex};
        // Four blocking threads: the two connections' work holds two, two stay for other work.
        let rt = tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(4)
            .enable_all()
            .build()
            .expect("runtime");
        /// Lets the held work finish when dropped, also when an assertion fails (the runtime
        /// waits for its blocking threads before it goes).
        struct Release(Arc<(Mutex<bool>, Condvar)>);
        impl Drop for Release {
            fn drop(&mut self) {
                let (lock, go) = &*self.0;
                *lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = true;
                go.notify_all();
            }
        }
        rt.block_on(async {
            let db =
                Db::connect(&DatabaseUrl::Sqlite(":memory:".into()), 2, Duration::from_millis(200)).expect("connect");
            let release = Arc::new((Mutex::new(false), Condvar::new()));
            let releaser = Release(release.clone());
            let inside = Arc::new(AtomicUsize::new(0));
            let most = Arc::new(AtomicUsize::new(0));
            let tasks: Vec<_> = (0..22)
                .map(|_| {
                    let (db, release, inside, most) = (db.clone(), release.clone(), inside.clone(), most.clone());
                    tokio::spawn(async move {
                        db.run(move |_conn| -> Result<(), DbError> {
                            most.fetch_max(inside.fetch_add(1, SeqCst) + 1, SeqCst);
                            let (lock, go) = &*release;
                            let mut released = lock.lock().expect("lock");
                            while !*released {
                                released = go.wait(released).expect("lock");
                            }
                            inside.fetch_sub(1, SeqCst);
                            Ok(())
                        })
                        .await
                    })
                })
                .collect();
            // The spawned tasks run in order on this thread whenever it yields.
            while inside.load(SeqCst) < 2 {
                tokio::task::yield_now().await;
            }
            for _ in 0..100 {
                tokio::task::yield_now().await;
            }
            let other_work = tokio::time::timeout(Duration::from_secs(10), tokio::task::spawn_blocking(|| 42)).await;
            assert_eq!(
                other_work.ok().and_then(Result::ok),
                Some(42),
                "queued database work held the blocking threads"
            );

            drop(releaser);
            for task in tasks {
                task.await
                    .expect("task")
                    .expect("queued work runs once a connection is free");
            }
            assert_eq!(
                most.load(SeqCst),
                2,
                "at most one piece of work per connection at a time"
            );
        });
    }

    #[test]
    fn after_commit_runs_only_what_was_committed() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static RAN: AtomicUsize = AtomicUsize::new(0);
        let count = || RAN.load(Ordering::SeqCst);
        let url = DatabaseUrl::Sqlite(":memory:".into());
        let db = Db::connect(&url, 1, Duration::from_millis(200)).expect("connect");
        let mut conn = db.get().expect("connection");
        create_table(&mut conn).expect("table");

        // Committed: runs after the commit, not before.
        write_tx(&mut conn, |conn| -> Result<(), DbError> {
            insert(conn)?;
            after_commit(|| {
                RAN.fetch_add(1, Ordering::SeqCst);
            });
            assert_eq!(count(), 0, "not before the commit");
            Ok(())
        })
        .expect("commit");
        assert_eq!(count(), 1);

        // Rolled back: never runs.
        let failed: Result<(), DbError> = write_tx(&mut conn, |conn| {
            insert(conn)?;
            after_commit(|| {
                RAN.fetch_add(100, Ordering::SeqCst);
            });
            Err(DbError::Migration("gave up".into()))
        });
        assert!(failed.is_err());
        assert_eq!(count(), 1);

        // Run again after a conflict: only the attempt that committed counts.
        let mut attempt = 0;
        write_tx_retrying(&mut conn, 3, |conn| -> Result<(), DbError> {
            attempt += 1;
            after_commit(|| {
                RAN.fetch_add(10, Ordering::SeqCst);
            });
            insert(conn)?;
            if attempt == 1 {
                return Err(DbError::Query(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::SerializationFailure,
                    Box::new(String::from("could not serialize access")),
                )));
            }
            Ok(())
        })
        .expect("second attempt commits");
        assert_eq!(count(), 11);

        // A panic inside leaves no scope behind: outside a transaction it runs at once.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _: Result<(), DbError> = write_tx(&mut conn, |_| panic!("bug"));
        }));
        after_commit(|| {
            RAN.fetch_add(1000, Ordering::SeqCst);
        });
        assert_eq!(count(), 1011);
    }
}
