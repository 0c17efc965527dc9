//! `optbridge demo`: the newcomer's one command. Migrates the configured database (a local
//! SQLite file by default), creates a demo workspace with sample contacts, a consent text and a
//! campaign, sends the campaign (to the dev outbox unless SMTP_URL is set), and serves with the
//! outbox workers, printing the URLs and an API token.

use crate::activity::Actor;
use serde_json::json;

use crate::campaigns::{self, AudienceRequest, CampaignRequest, Localized};
use crate::config::Settings;
use crate::consent::texts::{self, ConsentText, ConsentTextRequest};
use crate::contacts::import;
use crate::startup::{self, Application};
use crate::workspace::{self, NewWorkspace};

const DEMO_NAME: &str = "Nordlys Sko (demo)";
const DEMO_CAMPAIGN: &str = "Forårets SMS-klub (demo)";
const DEMO_CONTACTS: &str = include_str!("../demo/contacts.csv");
const DEMO_USER: &str = "demo@nordlys-sko.example";

/// The demo's consent texts: locale, body, categories, privacy policy. Each promises only what
/// the product does (STOP works in every SMS; no message carries a link).
const DEMO_TEXTS: &[(&str, &str, &[&str], &str)] = &[
    (
        "da",
        "Ja tak, Nordlys Sko må sende mig nyheder, tilbud og invitationer til events på SMS, højst 4 gange om måneden. \
         Jeg kan til enhver tid trække mit samtykke tilbage ved at svare STOP på en SMS fra Nordlys Sko.",
        &["Nyheder", "Tilbud", "Events"],
        "https://nordlys-sko.example/privatliv",
    ),
    (
        "nb",
        "Ja takk, Nordlys Sko kan sende meg nyheter, tilbud og invitasjoner til arrangementer på SMS, høyst 4 ganger i måneden. \
         Jeg kan når som helst trekke tilbake samtykket ved å svare STOPP på en SMS fra Nordlys Sko.",
        &["Nyheter", "Tilbud", "Arrangementer"],
        "https://nordlys-sko.example/personvern",
    ),
    (
        "sv",
        "Ja tack, Nordlys Sko får skicka mig nyheter, erbjudanden och inbjudningar till evenemang via SMS, högst 4 gånger i månaden. \
         Jag kan när som helst återkalla mitt samtycke genom att svara STOPP på ett SMS från Nordlys Sko.",
        &["Nyheter", "Erbjudanden", "Evenemang"],
        "https://nordlys-sko.example/integritet",
    ),
    (
        "en",
        "Yes, Nordlys Sko may send me news, offers and event invitations by SMS, at most 4 times a month. \
         I can withdraw my consent at any time by replying STOP to any SMS from Nordlys Sko.",
        &["News", "Offers", "Events"],
        "https://nordlys-sko.example/privacy",
    ),
];

/// The demo campaign's invitation in each language.
struct DemoCopy {
    locale: &'static str,
    subject: &'static str,
    intro: &'static str,
    frequency: &'static str,
}

const DEMO_COPY: &[DemoCopy] = &[
    DemoCopy {
        locale: "da",
        subject: "Vil du høre først om vores udsalg?",
        intro: "Som medlem af Nordlys Sko SMS-klub hører du om udsalg, nye kollektioner og events før alle andre.\n\n\
                Du vælger selv, hvad du vil høre om, og du kan altid framelde dig igen.",
        frequency: "højst 4 gange om måneden",
    },
    DemoCopy {
        locale: "nb",
        subject: "Vil du høre først om salget vårt?",
        intro: "Som medlem av Nordlys Sko SMS-klubb hører du om salg, nye kolleksjoner og arrangementer før alle andre.\n\n\
                Du velger selv hva du vil høre om, og du kan alltid melde deg av igjen.",
        frequency: "høyst 4 ganger i måneden",
    },
    DemoCopy {
        locale: "sv",
        subject: "Vill du höra först om vår rea?",
        intro: "Som medlem i Nordlys Skos SMS-klubb hör du om rea, nya kollektioner och evenemang före alla andra.\n\n\
                Du väljer själv vad du vill höra om, och du kan alltid avregistrera dig igen.",
        frequency: "högst 4 gånger i månaden",
    },
    DemoCopy {
        locale: "en",
        subject: "Want to hear about our sale first?",
        intro: "As a member of the Nordlys Sko SMS club you hear about sales, new collections and events before anyone else.\n\n\
                You choose what you hear about, and you can leave again at any time.",
        frequency: "at most 4 times a month",
    },
];

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
                    let new = NewWorkspace::parse(
                        DEMO_NAME,
                        "Nordlys Sko <nyheder@nordlys-sko.example>",
                        "DK",
                        "da",
                        Some("DK,NO,SE"),
                    )?;
                    workspace::create(conn, new)?
                }
            };
            let report = import::import_csv(conn, &ws.id, DEMO_CONTACTS.as_bytes(), |_| {})?;
            // One consent text per language, each read by that language's contacts only: a
            // consent given on a text the person may not read is weak evidence.
            let mut versions = Vec::new();
            for (locale, body, categories, privacy) in DEMO_TEXTS {
                let text = ConsentText::parse(&ConsentTextRequest {
                    locale: (*locale).into(),
                    company_name: "Nordlys Sko".into(),
                    body: (*body).into(),
                    categories: categories.iter().map(|c| (*c).to_owned()).collect(),
                    privacy_url: (*privacy).into(),
                })?;
                let (version, _) = texts::create_version(conn, &ws.id, &text, &Actor::Cli)?;
                versions.push(((*locale).to_owned(), version));
            }
            let version = versions[0].1.clone();
            let per_locale = |pick: fn(&DemoCopy) -> &'static str| {
                Localized::PerLocale(
                    DEMO_COPY
                        .iter()
                        .map(|c| (c.locale.to_owned(), pick(c).to_owned()))
                        .collect(),
                )
            };
            let existing = campaigns::list(conn, &ws.id)?
                .into_iter()
                .find(|c| c.name == DEMO_CAMPAIGN);
            let campaign = match existing {
                Some(c) => c,
                None => {
                    let req = CampaignRequest {
                        name: DEMO_CAMPAIGN.into(),
                        consent_text_id: None,
                        consent_texts: Some(versions.iter().map(|(l, v)| (l.clone(), v.id.clone())).collect()),
                        subject: per_locale(|c| c.subject),
                        intro: per_locale(|c| c.intro),
                        frequency: Some(per_locale(|c| c.frequency)),
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
