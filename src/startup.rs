//! Builds the application: database, HTTP server and (later) background workers.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};

use crate::config::Settings;
use crate::db::{Db, DbError};
use crate::{routes, signing};

/// Shared by every request handler.
pub struct AppState {
    pub db: Db,
    pub settings: Arc<Settings>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Opens the database pool off the async executor (connecting is blocking I/O).
pub async fn open_db(settings: &Settings) -> Result<Db, DbError> {
    let url = settings.database_url.clone();
    let size = settings.database_pool_size;
    let busy = settings.sqlite_busy_timeout;
    tokio::task::spawn_blocking(move || Db::connect(&url, size, busy))
        .await
        .map_err(|_| DbError::Cancelled)?
}

/// Runs migrations and makes sure a link-signing key exists.
pub async fn prepare_db(db: &Db) -> Result<Vec<String>, DbError> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || {
        let applied = db.migrate()?;
        let mut conn = db.get()?;
        if let Some(kid) = signing::ensure_current(&mut conn)? {
            tracing::info!(kid, "created the first link-signing key");
        }
        Ok(applied)
    })
    .await
    .map_err(|_| DbError::Cancelled)?
}

pub struct Application {
    server: Server,
    port: u16,
    settings: Arc<Settings>,
}

impl Application {
    /// Connects to and migrates the database, binds the listener and prepares the server.
    pub async fn build(mut settings: Settings) -> Result<Self, StartupError> {
        let db = open_db(&settings).await?;
        let applied = prepare_db(&db).await?;
        if !applied.is_empty() {
            tracing::info!(migrations = ?applied, "database migrated");
        }
        let listener = TcpListener::bind(settings.bind).map_err(|source| StartupError::Bind {
            addr: settings.bind,
            source,
        })?;
        let local = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: settings.bind,
            source,
        })?;
        // BASE_URL defaults to the bind address; with port 0 it must name the port actually bound.
        if settings.base_url.port() == Some(0) {
            let _ = settings.base_url.set_port(Some(local.port()));
        }
        let settings = Arc::new(settings);
        let state = web::Data::new(AppState {
            db,
            settings: settings.clone(),
        });
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(crate::telemetry::RequestLog)
                .app_data(state.clone())
                .configure(routes::configure)
        });
        if let Some(workers) = settings.http_workers {
            server = server.workers(workers);
        }
        let server = server
            .listen(listener)
            .map_err(|source| StartupError::Bind {
                addr: settings.bind,
                source,
            })?
            .run();
        Ok(Self {
            server,
            port: local.port(),
            settings,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn base_url(&self) -> &url::Url {
        &self.settings.base_url
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
