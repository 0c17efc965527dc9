//! `optbridge demo`: the newcomer's one command. Migrates the configured database (a local
//! SQLite file by default), creates a demo workspace with sample contacts, a consent text and a
//! campaign, sends the campaign (to the dev outbox unless SMTP_URL is set), and serves with the
//! outbox workers, printing the URLs and an API token.

use crate::activity::Actor;
use serde_json::json;

use crate::campaigns::{self, AudienceRequest, CampaignRequest};
use crate::config::Settings;
use crate::consent::texts::{self, ConsentText, ConsentTextRequest};
use crate::contacts::import;
use crate::startup::{self, Application};
use crate::workspace::{self, NewWorkspace};

const DEMO_NAME: &str = "Nordlys Sko (demo)";
const DEMO_CAMPAIGN: &str = "Forårets SMS-klub (demo)";
const DEMO_CONTACTS: &str = include_str!("../demo/contacts.csv");
const DEMO_USER: &str = "demo@nordlys-sko.example";

pub async fn run(settings: Settings, json_output: bool) -> anyhow::Result<()> {
    let db = startup::open_db(&settings).await?;
    startup::prepare_db(&db, &settings.signing_key_encryption).await?;

    let seeded = db
        .run(|conn| -> anyhow::Result<_> {
            let existing = workspace::list(conn)?.into_iter().find(|w| w.name == DEMO_NAME);
            let (ws, token) = match existing {
                Some(ws) => {
                    let token = workspace::create_token(conn, &ws.id, "demo run")?;
                    (ws, token)
                }
                None => {
                    let new = NewWorkspace::parse(DEMO_NAME, "Nordlys Sko <nyheder@nordlys-sko.example>", "DK", "da", Some("DK,NO,SE"))?;
                    workspace::create(conn, new)?
                }
            };
            let report = import::import_csv(conn, &ws.id, DEMO_CONTACTS.as_bytes(), |_| {})?;
            let text = ConsentText::parse(&ConsentTextRequest {
                locale: "da".into(),
                company_name: "Nordlys Sko".into(),
                body: "Ja tak, Nordlys Sko må sende mig nyheder, tilbud og invitationer til events på SMS, højst 4 gange om måneden. \
                       Jeg kan til enhver tid trække mit samtykke tilbage ved at svare STOP på en SMS fra Nordlys Sko."
                    .into(),
                categories: vec!["Nyheder".into(), "Tilbud".into(), "Events".into()],
                privacy_url: "https://nordlys-sko.example/privatliv".into(),
            })?;
            let (version, _) = texts::create_version(conn, &ws.id, &text, &Actor::Cli)?;
            let existing = campaigns::list(conn, &ws.id)?.into_iter().find(|c| c.name == DEMO_CAMPAIGN);
            let campaign = match existing {
                Some(c) => c,
                None => {
                    let req = CampaignRequest {
                        name: DEMO_CAMPAIGN.into(),
                        consent_text_id: version.id.clone(),
                        subject: "Vil du høre først om vores udsalg?".into(),
                        intro: "Som medlem af Nordlys Sko SMS-klub hører du om udsalg, nye kollektioner og events før alle andre.\n\n\
                                Du vælger selv, hvad du vil høre om, og du kan altid framelde dig igen."
                            .into(),
                        frequency: Some("højst 4 gange om måneden".into()),
                        variants: Vec::new(),
                        audience: Some(AudienceRequest {
                            locales: vec!["da".into(), "nb".into(), "sv".into(), "en".into()],
                        }),
                    };
                    let view = campaigns::create(conn, &ws.id, &req, &Actor::Cli)?;
                    campaigns::request_send(conn, &ws.id, &view.campaign.id, &Actor::Cli)?
                }
            };
            // A dashboard login with a fresh password each run, printed like the API token.
            let password: String = crate::crypto::random_secret().chars().take(16).collect();
            if !crate::accounts::set_password(conn, DEMO_USER, &password)? {
                crate::accounts::create_user(conn, &ws.id, DEMO_USER, &password)?;
            }
            Ok((ws, token, report, version, campaign, password))
        })
        .await?;
    let (ws, token, report, version, campaign, password) = seeded;

    let dev_sms = settings.sms == crate::config::SmsProviderSettings::DevOutbox;
    let app = Application::build(settings, true).await?;
    let base = app.base_url().as_str().trim_end_matches('/').to_owned();
    if json_output {
        println!(
            "{}",
            json!({
                "base_url": base,
                "workspace_id": ws.id,
                "api_token": token.0,
                "contacts_imported": report.imported,
                "consent_text_id": version.id,
                "campaign_id": campaign.id,
                "dashboard": format!("{base}/app"),
                "dashboard_email": DEMO_USER,
                "dashboard_password": password,
                "dev_mail": format!("{base}/dev/mail"),
                "dev_sms": format!("{base}/dev/sms"),
            })
        );
    } else {
        println!(
            "\noptbridge demo is running at {base}\n\n\
             workspace   {name} ({id})\n\
             api token   {token}\n\
             contacts    {imported} new, {updated} already there, {rejected} rejected\n\
             consent     text version {version} (da), sha256 {sha}\n\
             campaign    {campaign_name} ({campaign_id}): sent to the dev outbox\n\
             dashboard   {base}/app  (log in as {user}, password {password})\n\n\
             1. open an invitation:  {base}/dev/mail  (its button leads to the landing page)\n\
             2. sign up with a Danish, Norwegian or Swedish mobile number (e.g. +45 20 12 34 56)\n\
             3. {sms_step}\n\
             4. watch the funnel move on the campaign's page in the dashboard\n\n\
             try:\n  curl -H 'Authorization: Bearer {token}' {base}/api/v1/workspace\n  \
             curl -H 'Authorization: Bearer {token}' {base}/api/v1/consent-texts\n  \
             curl {base}/healthz\n\nCtrl-C stops the server.",
            name = ws.name,
            id = ws.id,
            token = token.0,
            imported = report.imported,
            updated = report.updated,
            rejected = report.rejected_total(),
            version = version.version,
            sha = version.sha256,
            sms_step = if dev_sms {
                format!("answer the SMS as the phone would:  {base}/dev/sms  (reply JA, or type the code on the page)")
            } else {
                "answer the SMS on the phone (reply JA), or type its code on the page".to_owned()
            },
            user = DEMO_USER,
            campaign_name = campaign.name,
            campaign_id = campaign.id,
        );
    }
    app.run_until_stopped().await?;
    Ok(())
}
