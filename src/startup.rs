//! Builds the application: database, signing keys, mail transport, HTTP server and outbox
//! workers.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;
use actix_web::{App, HttpServer, web};
use tokio::sync::Notify;

use crate::campaigns::expand::ExpansionHandler;
use crate::config::{Settings, SmsProviderSettings};
use crate::db::{Db, DbError};
use crate::funnel::tracking::TrackingBuffer;
use crate::links::Keyring;
use crate::mail::bounce::{BouncePoller, PollerHandle};
use crate::mail::deliver::{InvitationSender, InvitationSenderParts};
use crate::mail::dkim::DkimSigner;
use crate::mail::{Mailer, SmtpMailer};
use crate::outbox::worker::{JobHandler, Queue, Worker, WorkerPool};
use crate::signing::{KeyEncryption, Sealing, SigningKeyError};
use crate::sms::elks::ElksClient;
use crate::sms::inmobile::InMobileClient;
use crate::sms::provider::{DevOutbox, SmsSender, TwilioClient};
use crate::{routes, signing, sms};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    SigningKeys(#[from] SigningKeyError),
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

/// Runs migrations, brings the stored link-signing keys under `SIGNING_KEY_ENCRYPTION_KEY`
/// (failing when a stored key cannot be opened) and makes sure a current key exists.
pub async fn prepare_db(db: &Db, encryption: &KeyEncryption) -> Result<Vec<String>, SigningKeyError> {
    let db = db.clone();
    let encryption = encryption.clone();
    tokio::task::spawn_blocking(move || {
        let applied = db.migrate()?;
        let mut conn = db.get()?;
        let sealed = signing::seal_stored(&mut conn, &encryption)?;
        if sealed != Sealing::default() {
            tracing::info!(
                encrypted = sealed.encrypted,
                reencrypted = sealed.reencrypted,
                "link-signing keys now stored under SIGNING_KEY_ENCRYPTION_KEY"
            );
        }
        let webhook_secrets = crate::webhooks::seal_stored_secrets(&mut conn, &encryption)?;
        if webhook_secrets > 0 {
            tracing::info!(
                sealed = webhook_secrets,
                "webhook secrets now stored under SIGNING_KEY_ENCRYPTION_KEY"
            );
        }
        if let Some(kid) = signing::ensure_current(&mut conn, &encryption)? {
            tracing::info!(kid, "created the first link-signing key");
        }
        Ok(applied)
    })
    .await
    .map_err(|_| DbError::Cancelled)?
}

pub async fn load_keyring(db: &Db, settings: &Settings) -> Result<Arc<Keyring>, SigningKeyError> {
    let db = db.clone();
    let ttl = settings.link_ttl;
    let encryption = settings.signing_key_encryption.clone();
    let keyring = tokio::task::spawn_blocking(move || Keyring::load(db, ttl, encryption).map(Arc::new))
        .await
        .map_err(|_| DbError::Cancelled)??;
    Keyring::spawn_reload(&keyring, settings.signing_key_reload);
    Ok(keyring)
}

/// The mail transport `SMTP_URL` asks for, or the dev outbox.
pub fn build_mailer(settings: &Settings, db: &Db) -> Result<Mailer, StartupError> {
    match &settings.smtp_url {
        None => Ok(Mailer::DevOutbox(db.clone())),
        Some(url) => {
            let connections = (settings.outbox.send_concurrency * settings.outbox.workers.max(1)) as u32;
            SmtpMailer::new(url, connections, settings.smtp_timeout, settings.base_url.host_str())
                .map(Mailer::Smtp)
                .map_err(StartupError::Config)
        }
    }
}

/// The SMS provider `SMS_PROVIDER` asks for, or the dev outbox.
pub fn build_sms_sender(settings: &Settings, db: &Db) -> Result<SmsSender, StartupError> {
    let (base, timeout) = (&settings.base_url, settings.sms_timeout);
    match &settings.sms {
        SmsProviderSettings::DevOutbox => Ok(SmsSender::new(DevOutbox(db.clone()))),
        SmsProviderSettings::Twilio(t) => TwilioClient::new(t.clone(), base, timeout).map(SmsSender::new),
        SmsProviderSettings::Elks(e) => {
            if !e.from.starts_with('+') {
                tracing::warn!(
                    from = e.from,
                    "ELKS_FROM is a text sender: phones cannot reply to it (no JA, no STOP by SMS); people confirm with the code on the page"
                );
            }
            ElksClient::new(e.clone(), base, timeout).map(SmsSender::new)
        }
        SmsProviderSettings::InMobile(i) => InMobileClient::new(i.clone(), base, timeout).map(SmsSender::new),
    }
    .map_err(StartupError::Config)
}

/// What the HTTP side and the outbox handlers share, built once from the settings.
pub struct Services {
    pub keyring: Arc<Keyring>,
    /// Sends the webhooks out (its HTTP client is built once).
    pub webhooks: crate::webhooks::delivery::WebhookSender,
    pub mailer: Mailer,
    pub dkim: Option<Arc<DkimSigner>>,
    pub sms: SmsSender,
}

/// Loads the link keys and builds the mail and SMS transports `settings` ask for.
pub async fn services(settings: &Settings, db: &Db) -> Result<Services, StartupError> {
    let dkim = match &settings.dkim {
        None => None,
        Some(d) => Some(Arc::new(
            DkimSigner::from_pem_file(&d.key_path, &d.domain, &d.selector)
                .map_err(|e| StartupError::Config(format!("DKIM: {e}")))?,
        )),
    };
    Ok(Services {
        keyring: load_keyring(db, settings).await?,
        webhooks: crate::webhooks::delivery::WebhookSender::new(
            settings.webhook_allow_private,
            settings.signing_key_encryption.clone(),
        )
        .map_err(StartupError::Config)?,
        mailer: build_mailer(settings, db)?,
        dkim,
        sms: build_sms_sender(settings, db)?,
    })
}

/// The outbox worker: the queue with every module's job handlers. Each round runs the handlers
/// in this order: campaign expansion, SMS replies, SMS sends, invitation email, webhooks.
pub fn worker(settings: &Settings, db: &Db, services: &Services, wake: Arc<Notify>) -> Arc<Worker> {
    let breaker = settings.outbox.breaker;
    let mut handlers: Vec<Box<dyn JobHandler>> = vec![Box::new(ExpansionHandler {
        verp: settings.bounces.address.is_some(),
    })];
    handlers.extend(sms::dispatch::handlers(
        services.sms.clone(),
        settings.quiet_hours,
        breaker,
    ));
    handlers.push(Box::new(InvitationSender::new(InvitationSenderParts {
        mailer: services.mailer.clone(),
        dkim: services.dkim.clone(),
        keyring: services.keyring.clone(),
        base_url: settings.base_url.clone(),
        breaker,
        bounce_address: settings.bounces.address.clone(),
    })));
    handlers.push(Box::new(crate::mail::preview::TestSendHandler {
        mailer: services.mailer.clone(),
        dkim: services.dkim.clone(),
        keyring: services.keyring.clone(),
        base_url: settings.base_url.clone(),
    }));
    handlers.push(Box::new(crate::mail::reminder::ReminderSender {
        mailer: services.mailer.clone(),
        dkim: services.dkim.clone(),
        keyring: services.keyring.clone(),
        base_url: settings.base_url.clone(),
    }));
    handlers.push(Box::new(crate::team::invite_mail::UserInviteSender {
        mailer: services.mailer.clone(),
        dkim: services.dkim.clone(),
        base_url: settings.base_url.clone(),
    }));
    handlers.push(Box::new(services.webhooks.clone()));
    handlers.push(Box::new(crate::contacts::import_jobs::ImportJobHandler));
    let queue = Queue {
        db: db.clone(),
        settings: settings.outbox.clone(),
        wake,
    };
    Arc::new(Worker::new(queue, handlers))
}

/// The reader of `BOUNCE_MAILBOX`, when one is configured; the workers run it every
/// `BOUNCE_POLL_SECS` ([`BouncePoller::spawn`]).
pub fn bounce_poller(settings: &Settings, db: &Db) -> Option<Arc<BouncePoller>> {
    let mailbox = settings.bounces.mailbox.clone()?;
    let address = settings.bounces.address.clone()?;
    Some(Arc::new(BouncePoller::new(db.clone(), mailbox, address)))
}

/// The dev outboxes show every workspace's invitations (each a signed link) and SMS codes, and
/// let anyone answer as any phone: they run on a public address only when the operator says so
/// (`DEV_OUTBOXES=true`), and then with a warning.
fn guard_dev_outboxes(settings: &Settings) -> Result<(), StartupError> {
    let mut dev = Vec::new();
    if settings.smtp_url.is_none() {
        dev.push("mail (SMTP_URL is not set)");
    }
    if settings.sms == SmsProviderSettings::DevOutbox {
        dev.push("SMS (SMS_PROVIDER is not set)");
    }
    if dev.is_empty() {
        return Ok(());
    }
    let local_url = match settings.base_url.host() {
        Some(url::Host::Domain(name)) => name == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if settings.bind.ip().is_loopback() && local_url && settings.base_url.scheme() != "https" {
        return Ok(());
    }
    let outboxes = dev.join(" and ");
    if !settings.dev_outboxes {
        return Err(StartupError::Config(format!(
            "the dev outboxes for {outboxes} would be public (BIND {}, BASE_URL {}): anyone could read every \
             invitation link and SMS code at /dev/mail and /dev/sms and reply as any phone. Configure \
             SMTP_URL and SMS_PROVIDER, bind to 127.0.0.1, or set DEV_OUTBOXES=true (--dev-outboxes) if this \
             is really a test instance",
            settings.bind, settings.base_url
        )));
    }
    tracing::warn!(
        bind = %settings.bind,
        base_url = %settings.base_url,
        "DEV OUTBOXES ON A PUBLIC ADDRESS (DEV_OUTBOXES=true): /dev/mail and /dev/sms show every invitation \
         link and SMS code of {outboxes} to anyone, and anyone can reply as any phone. Never do this with real recipients"
    );
    Ok(())
}

pub struct Application {
    server: Server,
    port: u16,
    settings: Arc<Settings>,
    workers: Option<WorkerPool>,
    /// Beside the workers: reads the bounce mailbox.
    bounce_poller: Option<PollerHandle>,
    tracking_writer: tokio::task::JoinHandle<()>,
    /// Closed (QUIT to the relay) once the workers stopped.
    mailer: Mailer,
}

impl Application {
    /// Connects to and migrates the database, binds the listener, prepares the server and
    /// (with `run_workers`) starts the outbox workers.
    pub async fn build(mut settings: Settings, run_workers: bool) -> Result<Self, StartupError> {
        guard_dev_outboxes(&settings)?;
        if settings.metrics_token.is_none() && !settings.bind.ip().is_loopback() {
            tracing::warn!(
                bind = %settings.bind,
                "/metrics is open to anyone who reaches this address and counts across workspaces: set METRICS_TOKEN"
            );
        }
        if settings.signing_key_encryption.current.is_none() && !settings.bind.ip().is_loopback() {
            tracing::warn!(
                "link-signing keys are stored in clear in the database (a copy of it can forge links): set SIGNING_KEY_ENCRYPTION_KEY"
            );
        }
        let db = open_db(&settings).await?;
        let applied = prepare_db(&db, &settings.signing_key_encryption).await?;
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
        let wake = Arc::new(Notify::new());
        let services = services(&settings, &db).await?;
        let worker = worker(&settings, &db, &services, wake.clone());
        let mailer = services.mailer.clone();
        let job_kinds = worker.kinds().into();
        let run_workers = run_workers && settings.outbox.workers > 0;
        let bounce_poller = bounce_poller(&settings, &db)
            .filter(|_| run_workers)
            .map(|poller| poller.spawn(settings.bounces.poll));
        let workers = run_workers.then(|| WorkerPool::spawn(worker));
        let (tracking, tracking_writer) = TrackingBuffer::spawn(db.clone());
        let dev_mail = settings.smtp_url.is_none();
        let dev_sms = settings.sms == SmsProviderSettings::DevOutbox;
        let sms_provider = !dev_sms;
        let state = web::Data::new(routes::AppState {
            db,
            settings: settings.clone(),
            keyring: services.keyring,
            tracking,
            campaigns: Default::default(),
            wake,
            sms_sender: services.sms.sender(),
            tap_to_text_number: services.sms.inbound_number(settings.sms_inbound_number.as_deref()),
            sms: services.sms.clone(),
            job_kinds,
        });
        let https = settings.base_url.scheme() == "https";
        let mut server = HttpServer::new(move || {
            // On every response: no MIME sniffing; and behind https, HSTS so that browsers never
            // send a link token or session cookie over plain http again.
            let mut headers = DefaultHeaders::new().add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
            if https {
                headers = headers.add((header::STRICT_TRANSPORT_SECURITY, crate::telemetry::HSTS));
            }
            // Outermost last: the headers go on every answer. The middlewares inside answer with
            // responses, never errors (an error passes DefaultHeaders by and is rendered later).
            App::new()
                .wrap(actix_web::middleware::from_fn(routes::reject_nul_in_url))
                .wrap(actix_web::middleware::from_fn(routes::request_body::limit_body_time))
                .wrap(crate::telemetry::RequestLog { hsts: https })
                .wrap(headers)
                .app_data(state.clone())
                .configure(|cfg| routes::configure(cfg, dev_mail, dev_sms, sms_provider))
        });
        if let Some(n) = settings.http_workers {
            server = server.workers(n);
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
            workers,
            bounce_poller,
            tracking_writer,
            mailer,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn base_url(&self) -> &url::Url {
        &self.settings.base_url
    }

    /// Serves until SIGINT/SIGTERM, then stops in order: HTTP (finishing requests), workers
    /// (finishing or releasing their batch), and the tracking buffer (writing what it holds).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        if let Some(poller) = self.bounce_poller {
            poller.shutdown().await;
        }
        if let Some(workers) = self.workers {
            workers.shutdown().await;
        }
        self.mailer.close().await;
        if tokio::time::timeout(Duration::from_secs(10), self.tracking_writer)
            .await
            .is_err()
        {
            tracing::warn!("tracking buffer did not flush within 10 s");
        }
        served
    }
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
