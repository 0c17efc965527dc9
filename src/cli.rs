//! The `optbridge` command line. Every command prints machine-readable JSON with `--json`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Arg, CommandFactory, FromArgMatches, Parser, Subcommand};
use serde_json::json;

use crate::config::{ConfigArgs, DatabaseUrl, Settings};
use crate::consent::{ledger, texts};
use crate::contacts::import;
use crate::db::{self, Db};
use crate::funnel::report;
use crate::startup::{self, Application};
use crate::workspace::{self, NewWorkspace};
use crate::{campaigns, demo, outbox, signing, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "optbridge",
    version,
    about = "Turns email marketing permissions into documented SMS permissions"
)]
pub struct Cli {
    #[command(flatten)]
    pub config: ConfigArgs,

    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// Settings every command reads; the others (SMTP, SMS provider, outbox, limits …) run the
/// server and show up only in the help of the commands that use them ([`command`]).
const SHARED_SETTINGS: &[&str] = &["json", "database_url"];

/// The server settings a command besides `serve`, `worker` and `demo` reads.
fn settings_of(subcommand: &str) -> &'static [&'static str] {
    match subcommand {
        "migrate" | "keys" => &[
            "database_pool_size",
            "sqlite_busy_timeout_ms",
            "signing_key_encryption_key",
            "signing_key_encryption_key_old",
            "log_format",
        ],
        "user" => &["base_url"],
        _ => &[],
    }
}

/// The command line, with each command's `--help` showing its own options and the settings it
/// reads, not the ~45 server settings: those stay accepted everywhere (flag or environment,
/// as before) but are listed only by `serve`, `worker`, `demo` and, where they matter, others.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    let server: Vec<Arg> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set() && !SHARED_SETTINGS.contains(&a.get_id().as_str()))
        .cloned()
        .collect();
    let names: Vec<String> = cmd.get_subcommands().map(|c| c.get_name().to_owned()).collect();
    for name in names {
        let all = matches!(name.as_str(), "serve" | "worker" | "demo");
        let own = settings_of(&name);
        cmd = cmd.mut_subcommand(&name, |mut sub| {
            // A global argument a subcommand has already is not propagated to it again
            // (clap's `_propagate_global_args`), so these copies are the ones it shows.
            for arg in &server {
                let shown = all || own.contains(&arg.get_id().as_str());
                sub = sub.arg(arg.clone().hide(arg.is_hide_set() || !shown));
            }
            sub
        });
    }
    for arg in &server {
        cmd = cmd.mut_arg(arg.get_id().clone(), |a| a.hide(true));
    }
    cmd.after_help("Server settings (SMTP, SMS provider, outbox, limits …): optbridge serve --help")
}

/// Parses the process's arguments (see [`command`]); exits with clap's message on bad input.
pub fn parse() -> Cli {
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or upgrade the database schema (and the first link-signing key).
    Migrate,
    /// Run the HTTP server and the outbox workers (migrates first).
    Serve {
        /// HTTP only; run `optbridge worker` separately for the outbox.
        #[arg(long)]
        no_workers: bool,
    },
    /// Run outbox workers only (sending invitations), no HTTP server.
    Worker {
        /// Process everything that is due, then exit (instead of running until stopped).
        #[arg(long)]
        drain: bool,
    },
    /// Try optbridge locally: a demo workspace with sample contacts, served on $BIND.
    Demo,
    /// Manage workspaces (one per retailer) and their API tokens.
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// Import contacts with email permission from a CSV file.
    Import {
        /// The workspace's id (from `optbridge workspace create` or `workspace list`).
        #[arg(long)]
        workspace: String,
        /// CSV with a header row; columns: email (required), first_name, last_name, locale,
        /// external_id, email_consent_at, email_consent_source.
        file: PathBuf,
    },
    /// Create consent-text versions.
    #[command(subcommand, name = "consent-text")]
    ConsentText(ConsentTextCommand),
    /// Create, list and send invitation campaigns.
    #[command(subcommand)]
    Campaign(CampaignCommand),
    /// Manage the keys that sign links in invitations.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print the funnel of a campaign (or a line per campaign of the workspace).
    Stats {
        /// The workspace's id.
        #[arg(long)]
        workspace: String,
        /// One campaign's id: its whole funnel, per variant too (default: a line per campaign).
        #[arg(long)]
        campaign: Option<String>,
    },
    /// Dashboard users.
    #[command(subcommand)]
    User(UserCommand),
    /// Data rights: erase a contact.
    #[command(subcommand)]
    Contact(ContactCommand),
    /// Purge SMS evidence older than the retention period (two years after last use).
    Purge {
        /// Count what would be purged without changing anything.
        #[arg(long)]
        dry_run: bool,
        /// Days after an SMS consent was last used before its evidence is purged.
        #[arg(long, default_value_t = crate::consent::retention::DEFAULT_RETENTION_DAYS)]
        retention_days: i64,
    },
    /// Check the consent ledger.
    #[command(subcommand)]
    Ledger(LedgerCommand),
}

#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// Create a workspace and print its id and a new API token (shown once).
    Create {
        /// The retailer's name, as the dashboard shows it.
        #[arg(long)]
        name: String,
        /// Sender of invitation emails, e.g. "Shop <news@shop.example>".
        #[arg(long)]
        from: String,
        /// The retailer's country (ISO 3166 code): phone numbers without a calling code are read
        /// as this country's.
        #[arg(long, default_value = "DK")]
        country: String,
        /// Language for contacts whose CSV row names none: da, nb, sv or en.
        #[arg(long, default_value = "da")]
        locale: String,
        /// Countries whose mobile numbers are accepted, comma-separated (default: --country).
        #[arg(long)]
        allowed_countries: Option<String>,
    },
    /// List workspaces.
    List,
    /// Issue another API token for a workspace (shown once).
    Token {
        /// The workspace's id.
        #[arg(long)]
        workspace: String,
        /// A name for the token, shown in the activity log for what it does.
        #[arg(long, default_value = "issued by the CLI")]
        label: String,
    },
    /// Revoke an API token of a workspace.
    RevokeToken {
        /// The workspace's id.
        #[arg(long)]
        workspace: String,
        /// The token itself; read from stdin when omitted.
        #[arg(long)]
        token: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConsentTextCommand {
    /// Store a version from a JSON file shaped like the API body
    /// (`{"locale","company_name","body","categories","privacy_url"}`).
    Create {
        /// The workspace's id.
        #[arg(long)]
        workspace: String,
        /// The JSON file, e.g. {"locale": "da", "company_name": "Shop", "body": "… SMS … STOP …",
        /// "categories": ["News"], "privacy_url": "https://shop.example/privacy"}.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum CampaignCommand {
    /// Create a draft campaign, from flags or from a JSON file shaped like the API body.
    Create {
        /// The workspace's id.
        #[arg(long)]
        workspace: String,
        /// JSON body as for POST /api/v1/campaigns (variants, audience …); replaces the flags.
        #[arg(long, conflicts_with_all = ["name", "consent_text", "subject", "intro"])]
        from_json: Option<PathBuf>,
        /// The campaign's name (for you; recipients do not see it).
        #[arg(long, required_unless_present = "from_json")]
        name: Option<String>,
        /// The id of the consent-text version the landing page shows (`optbridge consent-text
        /// create` prints it).
        #[arg(long, required_unless_present = "from_json")]
        consent_text: Option<String>,
        /// The invitation email's subject line.
        #[arg(long, required_unless_present = "from_json")]
        subject: Option<String>,
        /// The invitation's opening text, in the email and on the landing page; a blank line
        /// starts a new paragraph.
        #[arg(long, required_unless_present = "from_json")]
        intro: Option<String>,
        /// How often you will send SMS, in the recipients' words, e.g. "at most 4 times a month"
        /// (shown in the email and on the landing page).
        #[arg(long)]
        frequency: Option<String>,
        /// Audience locales, comma-separated (default: the consent text's language).
        #[arg(long)]
        locales: Option<String>,
    },
    /// List a workspace's campaigns.
    List {
        /// The workspace's id.
        #[arg(long)]
        workspace: String,
    },
    /// Start sending a campaign (the workers in `serve` or `worker` deliver it).
    Send {
        /// The workspace's id.
        #[arg(long)]
        workspace: String,
        /// The campaign's id (`optbridge campaign create` prints it).
        #[arg(long)]
        campaign: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a dashboard login; the password is read from standard input.
    Create {
        /// The workspace's id.
        #[arg(long)]
        workspace: String,
        /// The login: the user's email address.
        #[arg(long)]
        email: String,
        /// owner (also manages users), editor (everything else) or viewer (reads only).
        #[arg(long, default_value = "owner", value_parser = parse_role)]
        role: crate::accounts::Role,
    },
    /// Set a new password (read from standard input); lifts a lockout and ends the user's sessions.
    SetPassword {
        /// The user's email address.
        #[arg(long)]
        email: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ContactCommand {
    /// Erase a contact's personal data (GDPR art. 17).
    Erase {
        /// The workspace's id.
        #[arg(long)]
        workspace: String,
        /// The contact's id (from the dashboard or the API).
        #[arg(long)]
        contact: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Recompute every hash chain; exit 1 when an entry was edited, deleted or reordered, or,
    /// with --checkpoint, when a chain no longer reaches the head the checkpoint recorded.
    Verify {
        /// Check only this workspace's chain (default: every workspace).
        #[arg(long)]
        workspace: Option<String>,
        /// A file written by `optbridge ledger checkpoint`.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Checks the checkpoint's signature (required when the file is signed).
        #[arg(long, env = "LEDGER_CHECKPOINT_KEY", hide_env_values = true)]
        checkpoint_key: Option<String>,
    },
    /// Print every workspace's chain head (workspace, sequence, hash) as JSON, to be stored
    /// outside the database; signed when LEDGER_CHECKPOINT_KEY is set.
    Checkpoint {
        /// Signs the checkpoint (HMAC) so that an edited file is noticed.
        #[arg(long, env = "LEDGER_CHECKPOINT_KEY", hide_env_values = true)]
        checkpoint_key: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new current signing key; older keys keep verifying the links they signed.
    Rotate,
    /// List signing keys (ids and dates only).
    List,
}

/// Prints results as text or JSON.
struct Output {
    json: bool,
}

impl Output {
    fn emit(&self, text: impl std::fmt::Display, value: serde_json::Value) {
        if self.json {
            println!("{value}");
        } else {
            println!("{text}");
        }
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::from_args(&cli.config)?;
    telemetry::init(&settings.log_format);
    let out = Output { json: cli.json };
    match cli.command {
        Command::Migrate => migrate(&settings, &out).await,
        Command::Serve { no_workers } => serve(settings, !no_workers).await,
        Command::Worker { drain } => worker(settings, drain).await,
        Command::Demo => demo::run(settings, cli.json).await,
        Command::Workspace(cmd) => workspace_command(&settings, &out, cmd).await,
        Command::Import { workspace, file } => import_file(&settings, &out, &workspace, &file).await,
        Command::ConsentText(cmd) => consent_text_command(&settings, &out, cmd).await,
        Command::Campaign(cmd) => campaign_command(&settings, &out, cmd).await,
        Command::Keys(cmd) => keys_command(&settings, &out, cmd).await,
        Command::Ledger(LedgerCommand::Verify {
            workspace,
            checkpoint,
            checkpoint_key,
        }) => ledger_verify(&settings, &out, workspace, checkpoint, checkpoint_key).await,
        Command::Ledger(LedgerCommand::Checkpoint { checkpoint_key }) => {
            ledger_checkpoint(&settings, checkpoint_key).await
        }
        Command::Stats { workspace, campaign } => stats(&settings, &out, workspace, campaign).await,
        Command::User(UserCommand::Create { workspace, email, role }) => {
            user_create(&settings, &out, workspace, email, role).await
        }
        Command::User(UserCommand::SetPassword { email }) => user_set_password(&settings, &out, email).await,
        Command::Contact(ContactCommand::Erase { workspace, contact }) => {
            contact_erase(&settings, &out, workspace, contact).await
        }
        Command::Purge {
            dry_run,
            retention_days,
        } => purge(&settings, &out, dry_run, retention_days).await,
    }
}

async fn migrate(settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let db = startup::open_db(settings).await?;
    let applied = startup::prepare_db(&db, &settings.signing_key_encryption).await?;
    let backend = db.backend().name();
    let text = if applied.is_empty() {
        format!("{backend} database is up to date")
    } else {
        format!("{backend} database migrated: {}", applied.join(", "))
    };
    out.emit(text, json!({"backend": backend, "applied": applied}));
    Ok(())
}

async fn serve(settings: Settings, run_workers: bool) -> anyhow::Result<()> {
    let app = Application::build(settings, run_workers).await?;
    tracing::info!(port = app.port(), base_url = %app.base_url(), "optbridge is serving");
    app.run_until_stopped().await?;
    Ok(())
}

async fn worker(settings: Settings, drain: bool) -> anyhow::Result<()> {
    let db = open_migrated_db(&settings).await?;
    let services = startup::services(&settings, &db).await?;
    let worker = startup::worker(&settings, &db, &services, Default::default());
    let bounce_poller = startup::bounce_poller(&settings, &db);
    if drain {
        let drained = outbox::worker::dispatch_all_pending(&worker).await;
        services.mailer.close().await;
        drained?;
        tracing::info!("outbox drained");
        // Everything pending includes the bounce mailbox: read it once.
        if let Some(poller) = bounce_poller {
            let summary = poller.poll_once().await?;
            tracing::info!(?summary, "bounce mailbox read");
        }
        return Ok(());
    }
    if settings.outbox.workers == 0 {
        bail!("OUTBOX_WORKERS is 0: nothing to run");
    }
    tracing::info!(
        workers = settings.outbox.workers,
        mailer = services.mailer.name(),
        "outbox workers running"
    );
    let pool = outbox::worker::WorkerPool::spawn(worker);
    let bounce_poller = bounce_poller.map(|poller| poller.spawn(settings.bounces.poll));
    startup::shutdown_signal().await;
    tracing::info!("stopping: finishing in-flight batches");
    if let Some(poller) = bounce_poller {
        poller.shutdown().await;
    }
    pool.shutdown().await;
    services.mailer.close().await;
    Ok(())
}

/// Opens a database that must already be migrated (commands other than migrate/serve/demo
/// never create schema, so a mistyped DATABASE_URL fails instead of creating an empty file).
pub async fn open_migrated_db(settings: &Settings) -> anyhow::Result<Db> {
    if let DatabaseUrl::Sqlite(path) = &settings.database_url
        && !std::path::Path::new(path).exists()
    {
        bail!("no SQLite database at '{path}': run `optbridge migrate` first (or set DATABASE_URL)");
    }
    let db = startup::open_db(settings).await?;
    let pending = blocking(&db, |conn| Ok(db::has_pending_migrations(conn)?)).await?;
    if pending {
        bail!("the database schema is not up to date: run `optbridge migrate` first");
    }
    Ok(db)
}

/// Runs blocking database work for the CLI.
async fn blocking<T: Send + 'static>(
    db: &Db,
    f: impl FnOnce(&mut db::DbConn) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = db.get()?;
        f(&mut conn)
    })
    .await
    .context("database task failed")?
}

async fn workspace_command(settings: &Settings, out: &Output, cmd: WorkspaceCommand) -> anyhow::Result<()> {
    let db = open_migrated_db(settings).await?;
    match cmd {
        WorkspaceCommand::Create {
            name,
            from,
            country,
            locale,
            allowed_countries,
        } => {
            let new = NewWorkspace::parse(&name, &from, &country, &locale, allowed_countries.as_deref())?;
            let (ws, token) = blocking(&db, move |conn| Ok(workspace::create(conn, new)?)).await?;
            out.emit(
                format!(
                    "workspace created\n  id:        {}\n  name:      {}\n  api token: {}\n(the token is shown only now; store it safely)",
                    ws.id, ws.name, token.0
                ),
                json!({"workspace_id": ws.id, "api_token": token.0}),
            );
        }
        WorkspaceCommand::List => {
            let list = blocking(&db, |conn| Ok(workspace::list(conn)?)).await?;
            let text = list
                .iter()
                .map(|w| format!("{}  {}  {}  {}", w.id, w.country, w.locale, w.name))
                .collect::<Vec<_>>()
                .join("\n");
            out.emit(if text.is_empty() { "no workspaces".into() } else { text }, json!(list));
        }
        WorkspaceCommand::Token { workspace, label } => {
            let ws = workspace.clone();
            let token = blocking(&db, move |conn| Ok(workspace::create_token(conn, &ws, &label)?)).await?;
            out.emit(
                format!("api token: {}\n(shown only now; store it safely)", token.0),
                json!({"workspace_id": workspace, "api_token": token.0}),
            );
        }
        WorkspaceCommand::RevokeToken { workspace, token } => {
            let token = match token {
                Some(t) => t,
                None => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim().to_owned()
                }
            };
            let ws = workspace.clone();
            let revoked = blocking(&db, move |conn| Ok(workspace::revoke_token(conn, &ws, &token)?)).await?;
            if !revoked {
                bail!("no active token like that in workspace {workspace}");
            }
            out.emit("token revoked", json!({"workspace_id": workspace, "revoked": true}));
        }
    }
    Ok(())
}

async fn import_file(
    settings: &Settings,
    out: &Output,
    workspace_id: &str,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let db = open_migrated_db(settings).await?;
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let ws = workspace_id.to_owned();
    let exists = blocking(&db, move |conn| Ok(workspace::find(conn, &ws)?.is_some())).await?;
    if !exists {
        bail!("no workspace with id {workspace_id}");
    }

    let bar = if out.json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(size)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg} ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let ws = workspace_id.to_owned();
    let progress = bar.clone();
    let started = std::time::Instant::now();
    let report = blocking(&db, move |conn| {
        let report = import::import_csv(conn, &ws, file, |p| {
            progress.set_position(p.bytes);
            progress.set_message(format!("{} rows", p.rows));
        })?;
        crate::activity::record(
            conn,
            &ws,
            &crate::activity::Actor::Cli,
            crate::activity::Action::Import,
            None,
            &format!(
                "imported {}, updated {}, rejected {}",
                report.imported,
                report.updated,
                report.rejected_total()
            ),
        )?;
        Ok(report)
    })
    .await?;
    bar.finish_and_clear();

    let mut text = match report.format {
        import::formats::ExportFormat::Optbridge => String::new(),
        format => format!("{}: ", format.label()),
    };
    text.push_str(&format!(
        "imported {}, updated {}, rejected {} ({:.1} s)",
        report.imported,
        report.updated,
        report.rejected_total(),
        started.elapsed().as_secs_f64()
    ));
    for row in &report.rejected {
        text.push_str(&format!("\n  line {}: {}", row.line, row.error));
    }
    if report.rejected_not_listed > 0 {
        text.push_str(&format!("\n  … and {} more rejected rows", report.rejected_not_listed));
    }
    out.emit(text, serde_json::to_value(&report)?);
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> anyhow::Result<T> {
    let raw = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&raw).with_context(|| format!("{} is not a valid body", path.display()))
}

async fn consent_text_command(settings: &Settings, out: &Output, cmd: ConsentTextCommand) -> anyhow::Result<()> {
    let db = open_migrated_db(settings).await?;
    let ConsentTextCommand::Create { workspace, file } = cmd;
    let req: texts::ConsentTextRequest = read_json(&file)?;
    let text = texts::ConsentText::parse(&req)?;
    let (version, created) = blocking(&db, move |conn| {
        Ok(texts::create_version(
            conn,
            &workspace,
            &text,
            &crate::activity::Actor::Cli,
        )?)
    })
    .await?;
    out.emit(
        format!(
            "consent text {} version {} ({}){}\n  id:     {}\n  sha256: {}",
            version.locale,
            version.version,
            version.company_name,
            if created {
                ""
            } else {
                ", identical to an existing version"
            },
            version.id,
            version.sha256
        ),
        serde_json::to_value(&version)?,
    );
    Ok(())
}

async fn campaign_command(settings: &Settings, out: &Output, cmd: CampaignCommand) -> anyhow::Result<()> {
    let db = open_migrated_db(settings).await?;
    match cmd {
        CampaignCommand::Create {
            workspace,
            from_json,
            name,
            consent_text,
            subject,
            intro,
            frequency,
            locales,
        } => {
            let req: campaigns::CampaignRequest = match from_json {
                Some(path) => read_json(&path)?,
                None => campaigns::CampaignRequest {
                    name: name.unwrap_or_default(),
                    consent_text_id: consent_text,
                    consent_texts: None,
                    subject: campaigns::Localized::One(subject.unwrap_or_default()),
                    intro: campaigns::Localized::One(intro.unwrap_or_default()),
                    frequency: frequency.map(campaigns::Localized::One),
                    variants: Vec::new(),
                    audience: locales.map(|l| campaigns::AudienceRequest {
                        locales: l.split(',').map(|s| s.trim().to_owned()).collect(),
                    }),
                },
            };
            let view = blocking(&db, move |conn| {
                Ok(campaigns::create(conn, &workspace, &req, &crate::activity::Actor::Cli)?)
            })
            .await?;
            out.emit(
                format!(
                    "campaign created (draft)\n  id:       {}\n  name:     {}\n  variants: {}\n  audience: {}",
                    view.campaign.id,
                    view.campaign.name,
                    view.variants
                        .iter()
                        .map(|v| v.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    view.campaign.audience_locales
                ),
                serde_json::to_value(&view)?,
            );
        }
        CampaignCommand::List { workspace } => {
            let list = blocking(&db, move |conn| Ok(campaigns::list(conn, &workspace)?)).await?;
            let text = list
                .iter()
                .map(|c| format!("{}  {:<8} {}", c.id, c.status, c.name))
                .collect::<Vec<_>>()
                .join("\n");
            out.emit(if text.is_empty() { "no campaigns".into() } else { text }, json!(list));
        }
        CampaignCommand::Send { workspace, campaign } => {
            let c = blocking(&db, move |conn| {
                Ok(campaigns::request_send(
                    conn,
                    &workspace,
                    &campaign,
                    &crate::activity::Actor::Cli,
                )?)
            })
            .await?;
            out.emit(
                format!("campaign {} is {}: the outbox workers deliver it", c.id, c.status),
                json!({"id": c.id, "status": c.status}),
            );
        }
    }
    Ok(())
}

/// The first line of standard input, without its line ending.
fn password_from_stdin() -> anyhow::Result<String> {
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .context("reading the password from standard input")?;
    Ok(password.trim_end_matches(['\n', '\r']).to_owned())
}

async fn user_set_password(settings: &Settings, out: &Output, email: String) -> anyhow::Result<()> {
    let db = open_migrated_db(settings).await?;
    let password = password_from_stdin()?;
    let mail = email.clone();
    let found = blocking(&db, move |conn| {
        Ok(crate::accounts::set_password(conn, &mail, &password)?)
    })
    .await?;
    if !found {
        bail!("no dashboard user {email}");
    }
    out.emit(
        format!("password of {email} changed; its sessions ended"),
        json!({"email": email, "changed": true}),
    );
    Ok(())
}

fn parse_role(raw: &str) -> Result<crate::accounts::Role, String> {
    crate::accounts::Role::parse(raw).ok_or_else(|| format!("{raw:?} is not a role: owner, editor or viewer"))
}

async fn user_create(
    settings: &Settings,
    out: &Output,
    workspace: String,
    email: String,
    role: crate::accounts::Role,
) -> anyhow::Result<()> {
    let db = open_migrated_db(settings).await?;
    let password = password_from_stdin()?;
    let (ws, mail) = (workspace.clone(), email.clone());
    let id = blocking(&db, move |conn| {
        Ok(crate::accounts::create_user_with_role(
            conn, &ws, &mail, &password, role,
        )?)
    })
    .await?;
    // The address as stored (and as typed at login, in any case).
    let email = crate::domain::EmailAddress::parse(&email).map_or(email, |e| e.normalized());
    out.emit(
        format!(
            "dashboard user {email} ({role}) created for workspace {workspace}; log in at {}app",
            settings.base_url
        ),
        json!({"user_id": id, "workspace_id": workspace, "email": email, "role": role}),
    );
    Ok(())
}

async fn contact_erase(settings: &Settings, out: &Output, workspace: String, contact: String) -> anyhow::Result<()> {
    let db = open_migrated_db(settings).await?;
    let (ws, c) = (workspace.clone(), contact.clone());
    let erased = blocking(&db, move |conn| {
        Ok(crate::contacts::erase::erase(
            conn,
            &ws,
            &c,
            "cli",
            &crate::activity::Actor::Cli,
        )?)
    })
    .await?;
    if !erased {
        bail!("no contact {contact} in workspace {workspace}");
    }
    out.emit(
        format!("contact {contact} erased"),
        json!({"contact_id": contact, "erased": true}),
    );
    Ok(())
}

async fn purge(settings: &Settings, out: &Output, dry_run: bool, retention_days: i64) -> anyhow::Result<()> {
    if retention_days < 1 {
        bail!("--retention-days must be at least 1");
    }
    let db = open_migrated_db(settings).await?;
    let report = blocking(&db, move |conn| {
        Ok(crate::consent::retention::purge(
            conn,
            chrono::Duration::days(retention_days),
            dry_run,
        )?)
    })
    .await?;
    out.emit(
        format!(
            "{} {} contact(s): {} sign-up(s), {} ledger entr(y/ies) with SMS activity before {}",
            if dry_run { "would purge" } else { "purged" },
            report.contacts,
            report.consent_requests,
            report.ledger_entries,
            report.cutoff.map(|c| c.to_string()).unwrap_or_default()
        ),
        serde_json::to_value(&report)?,
    );
    Ok(())
}

async fn stats(settings: &Settings, out: &Output, workspace: String, campaign: Option<String>) -> anyhow::Result<()> {
    let db = open_migrated_db(settings).await?;
    let reports = blocking(&db, move |conn| {
        let list = match &campaign {
            Some(id) => vec![
                campaigns::find(conn, &workspace, id)?
                    .ok_or_else(|| anyhow::anyhow!("no campaign {id} in workspace {workspace}"))?,
            ],
            None => {
                let all = campaigns::list(conn, &workspace)?;
                let mut views = Vec::with_capacity(all.len());
                for c in all {
                    if let Some(v) = campaigns::find(conn, &workspace, &c.id)? {
                        views.push(v);
                    }
                }
                views
            }
        };
        let mut reports = Vec::new();
        for view in list {
            let order: Vec<String> = view.variants.iter().map(|v| v.name.clone()).collect();
            reports.push(report::campaign_funnel(conn, &view.campaign, &order)?);
        }
        Ok(reports)
    })
    .await?;
    match reports.as_slice() {
        [one] if out.json => out.emit("", serde_json::to_value(one)?),
        [one] => out.emit(funnel_table(one), json!(null)),
        many => {
            let mut text = format!(
                "{:<38} {:<28} {:>10} {:>9} {:>9} {:>10} {:>11}",
                "campaign", "name", "recipients", "sent", "opened", "confirmed", "conversion"
            );
            for r in many {
                text.push_str(&format!(
                    "\n{:<38} {:<28} {:>10} {:>9} {:>9} {:>10} {:>10.1}%",
                    r.campaign_id,
                    r.name.chars().take(28).collect::<String>(),
                    r.counts.recipients,
                    r.counts.sent,
                    r.counts.opened,
                    r.counts.confirmed,
                    r.rates.conversion_rate * 100.0
                ));
            }
            // In total, by path (issue 17), with KAiKU's conversion beside.
            let mut total = report::Counts::default();
            for r in many {
                let (p, q) = (&mut total.confirmed_by_path, &r.counts.confirmed_by_path);
                p.form_reply += q.form_reply;
                p.form_code += q.form_code;
                p.tap_to_text += q.tap_to_text;
                p.after_reminder += q.after_reminder;
                total.sent += r.counts.sent;
                total.confirmed += r.counts.confirmed;
                total.reminded += r.counts.reminded;
            }
            let p = &total.confirmed_by_path;
            text.push_str(&format!(
                "\n\nin total: {} confirmed of {} sent ({:.1} %, KAiKU {:.1} %): form + reply {}, form + code {}, \
                 tap-to-text {}, after the reminder {} (of {} reminded)",
                total.confirmed,
                total.sent,
                total.rates().conversion_rate * 100.0,
                report::KAIKU.conversion_rate * 100.0,
                p.form_reply,
                p.form_code,
                p.tap_to_text,
                p.after_reminder,
                total.reminded
            ));
            out.emit(
                if many.is_empty() { "no campaigns".into() } else { text },
                serde_json::to_value(many)?,
            );
        }
    }
    Ok(())
}

fn funnel_table(r: &report::FunnelReport) -> String {
    let c = &r.counts;
    let pct = |x: f64| format!("{:.1} %", x * 100.0);
    let share = |n: i64| if c.sent > 0 { n as f64 / c.sent as f64 } else { 0.0 };
    let mut t = format!(
        "{} ({}, {})\n\n{:<22}{:>10}  {:>9}  {:>9}\n",
        r.name, r.campaign_id, r.status, "", "count", "rate", "KAiKU"
    );
    let rows: [(&str, i64, Option<f64>, Option<f64>); 17] = [
        ("recipients", c.recipients, None, None),
        ("sent", c.sent, None, None),
        ("delivered", c.delivered, None, None),
        ("bounced", c.bounced, None, None),
        ("failed", c.failed, None, None),
        ("opened", c.opened, Some(r.rates.open_rate), Some(r.benchmark.open_rate)),
        ("opened (human)", c.opened_human, Some(r.rates.human_open_rate), None),
        ("clicked", c.clicked, Some(r.rates.click_rate), None),
        ("submitted", c.submitted, None, None),
        (
            "confirmed",
            c.confirmed,
            Some(r.rates.conversion_rate),
            Some(r.benchmark.conversion_rate),
        ),
        ("opted out", c.opted_out, None, None),
        ("unsubscribed (email)", c.unsubscribed, None, None),
        // Issue 17: confirmations by path, as shares of the emails sent.
        ("reminded (email)", c.reminded, None, None),
        (
            "  form + reply",
            c.confirmed_by_path.form_reply,
            Some(share(c.confirmed_by_path.form_reply)),
            None,
        ),
        (
            "  form + code",
            c.confirmed_by_path.form_code,
            Some(share(c.confirmed_by_path.form_code)),
            None,
        ),
        (
            "  tap-to-text",
            c.confirmed_by_path.tap_to_text,
            Some(share(c.confirmed_by_path.tap_to_text)),
            None,
        ),
        (
            "  after reminder",
            c.confirmed_by_path.after_reminder,
            Some(share(c.confirmed_by_path.after_reminder)),
            None,
        ),
    ];
    for (label, n, rate, bench) in rows {
        t.push_str(&format!(
            "{label:<22}{n:>10}  {:>9}  {:>9}\n",
            rate.map(pct).unwrap_or_default(),
            bench.map(pct).unwrap_or_default()
        ));
    }
    t.push_str(&format!(
        "{:<22}{:>10}  {:>9}  {:>9}\n",
        "sign-ups of openers",
        "",
        pct(r.rates.signup_rate_of_openers),
        pct(r.benchmark.signup_rate_of_openers)
    ));
    if r.variants.len() > 1 {
        t.push_str("\nvariant      sent  opened  confirmed  conversion\n");
        for v in &r.variants {
            t.push_str(&format!(
                "{:<8}{:>9}{:>8}{:>11}{:>11.1}%\n",
                v.key,
                v.counts.sent,
                v.counts.opened,
                v.counts.confirmed,
                v.rates.conversion_rate * 100.0
            ));
        }
        for ab in &r.ab_tests {
            t.push_str(&format!("{}\n", ab.verdict));
        }
    }
    t.trim_end().to_owned()
}

async fn ledger_verify(
    settings: &Settings,
    out: &Output,
    workspace: Option<String>,
    checkpoint: Option<PathBuf>,
    checkpoint_key: Option<String>,
) -> anyhow::Result<()> {
    let checkpoint = match checkpoint {
        Some(path) => {
            let raw = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let checkpoint: ledger::Checkpoint = serde_json::from_slice(&raw)
                .with_context(|| format!("{} is not a ledger checkpoint", path.display()))?;
            checkpoint
                .authenticate(checkpoint_key.as_deref())
                .with_context(|| format!("checkpoint {}", path.display()))?;
            Some(checkpoint)
        }
        None => None,
    };
    let db = open_migrated_db(settings).await?;
    let report = blocking(&db, move |conn| {
        let mut report = ledger::verify(conn, workspace.as_deref())?;
        if let Some(checkpoint) = &checkpoint {
            let behind = ledger::check_against(conn, checkpoint, workspace.as_deref())?;
            report.problems.extend(behind);
        }
        Ok(report)
    })
    .await?;
    let mut text = format!(
        "{} entries in {} workspace(s), {} redacted: {}",
        report.entries,
        report.workspaces,
        report.redacted,
        if report.ok() {
            "the ledger verifies"
        } else {
            "THE LEDGER DOES NOT VERIFY"
        }
    );
    for p in &report.problems {
        text.push_str(&format!(
            "\n  workspace {} entry {}: {}",
            p.workspace_id, p.seq, p.problem
        ));
    }
    out.emit(text, serde_json::to_value(&report)?);
    if !report.ok() {
        bail!("{} problem(s) found in the consent ledger", report.problems.len());
    }
    Ok(())
}

/// Prints the checkpoint as JSON whatever the output mode: it is a file to keep, not a report.
async fn ledger_checkpoint(settings: &Settings, checkpoint_key: Option<String>) -> anyhow::Result<()> {
    let db = open_migrated_db(settings).await?;
    let mut checkpoint = blocking(&db, |conn| Ok(ledger::Checkpoint::take(conn)?)).await?;
    if let Some(key) = checkpoint_key.as_deref() {
        checkpoint.sign(key)?;
    }
    println!("{}", serde_json::to_string_pretty(&checkpoint)?);
    Ok(())
}

async fn keys_command(settings: &Settings, out: &Output, cmd: KeysCommand) -> anyhow::Result<()> {
    let db = open_migrated_db(settings).await?;
    match cmd {
        KeysCommand::Rotate => {
            let encryption = settings.signing_key_encryption.clone();
            let kid = blocking(&db, move |conn| Ok(signing::rotate(conn, &encryption)?)).await?;
            out.emit(
                format!("new signing key {kid} is current; older keys still verify the links they signed"),
                json!({"kid": kid}),
            );
        }
        KeysCommand::List => {
            let keys = blocking(&db, |conn| Ok(signing::list(conn)?)).await?;
            let text = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}  created {}  {}  {}",
                        k.kid,
                        k.created_at,
                        k.retired_at.map_or("current".to_owned(), |r| format!("retired {r}")),
                        if k.encrypted { "encrypted" } else { "stored in clear" }
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            out.emit(text, json!(keys));
        }
    }
    Ok(())
}
