//! The invitation email: subject, text and HTML parts rendered from
//! `templates/email/invite/`, in the recipient's locale.

use askama::Template;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};

use super::{EmailError, OutgoingEmail};
use crate::domain::Locale;
use crate::i18n::{self, EmailStrings};

/// Everything the invitation says; links are already signed.
#[derive(Debug, Clone)]
pub struct InvitationContent<'a> {
    pub invitation_id: &'a str,
    pub locale: Locale,
    pub from: &'a str,
    pub to_email: &'a str,
    pub to_name: Option<String>,
    pub first_name: Option<&'a str>,
    pub company: &'a str,
    pub subject: &'a str,
    pub intro: &'a str,
    pub categories: &'a [String],
    pub frequency: Option<&'a str>,
    pub privacy_url: &'a str,
    pub landing_url: &'a str,
    pub pixel_url: &'a str,
    pub unsubscribe_url: &'a str,
}

#[derive(Template)]
#[template(path = "email/invite/subject.txt")]
struct SubjectTemplate<'a> {
    subject: &'a str,
}

#[derive(Template)]
#[template(path = "email/invite/body.txt")]
struct TextTemplate<'a> {
    t: &'a EmailStrings,
    first_name: Option<&'a str>,
    paragraphs: Vec<&'a str>,
    landing_url: &'a str,
    categories: &'a [String],
    frequency: Option<&'a str>,
    why_received: String,
    unsubscribe_url: &'a str,
    privacy_url: &'a str,
}

#[derive(Template)]
#[template(path = "email/invite/body.html")]
struct HtmlTemplate<'a> {
    t: &'a EmailStrings,
    lang: &'a str,
    subject: &'a str,
    company: &'a str,
    first_name: Option<&'a str>,
    paragraphs: Vec<&'a str>,
    landing_url: &'a str,
    pixel_url: &'a str,
    categories: &'a [String],
    frequency: Option<&'a str>,
    why_received: String,
    unsubscribe_url: &'a str,
    privacy_url: &'a str,
}

/// Blank-line separated paragraphs of the marketer's intro.
fn paragraphs(intro: &str) -> Vec<&str> {
    intro.split("\n\n").map(str::trim).filter(|p| !p.is_empty()).collect()
}

/// Renders the three parts and assembles the message: `multipart/alternative`, a stable
/// `Message-ID` per invitation (a retry is the same message, so receivers can drop a duplicate),
/// and one-click unsubscribe headers (RFC 8058).
pub fn render(content: &InvitationContent<'_>) -> Result<OutgoingEmail, EmailError> {
    let t = i18n::email(content.locale);
    let why = i18n::why_received(content.locale, content.company);
    let subject = SubjectTemplate {
        subject: content.subject,
    }
    .render()?
    .trim()
    .to_owned();
    let text = TextTemplate {
        t,
        first_name: content.first_name,
        paragraphs: paragraphs(content.intro),
        landing_url: content.landing_url,
        categories: content.categories,
        frequency: content.frequency,
        why_received: why.clone(),
        unsubscribe_url: content.unsubscribe_url,
        privacy_url: content.privacy_url,
    }
    .render()?;
    let html = HtmlTemplate {
        t,
        lang: content.locale.as_str(),
        subject: &subject,
        company: content.company,
        first_name: content.first_name,
        paragraphs: paragraphs(content.intro),
        landing_url: content.landing_url,
        pixel_url: content.pixel_url,
        categories: content.categories,
        frequency: content.frequency,
        why_received: why,
        unsubscribe_url: content.unsubscribe_url,
        privacy_url: content.privacy_url,
    }
    .render()?;

    let from: Mailbox = content
        .from
        .parse()
        .map_err(|e| EmailError::Address(format!("from '{}': {e}", content.from)))?;
    let to_address = content
        .to_email
        .parse()
        .map_err(|e| EmailError::Address(format!("to '{}': {e}", content.to_email)))?;
    let to = Mailbox::new(content.to_name.clone(), to_address);
    let domain = from.email.domain().to_owned();
    let message_id = format!("<{}@{}>", content.invitation_id, domain);

    let message = lettre::Message::builder()
        .from(from.clone())
        .to(to.clone())
        .subject(subject.clone())
        .message_id(Some(message_id.clone()))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe"),
            format!("<{}>", content.unsubscribe_url),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click".to_owned(),
        ))
        .multipart(
            MultiPart::alternative()
                .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(text.clone()))
                .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(html.clone())),
        )
        .map_err(|e| EmailError::Build(e.to_string()))?;

    Ok(OutgoingEmail {
        from,
        to,
        subject,
        text,
        html: Some(html),
        message_id,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content<'a>(locale: Locale, categories: &'a [String]) -> InvitationContent<'a> {
        InvitationContent {
            invitation_id: "inv-1",
            locale,
            from: "Nordlys Sko <nyheder@nordlys.example>",
            to_email: "anna@example.dk",
            to_name: Some("Anna Jensen".into()),
            first_name: Some("Anna"),
            company: "Nordlys Sko",
            subject: "Få vores tilbud på SMS <først>",
            intro: "Som SMS-medlem hører du først om udsalg.\n\nDu vælger selv emnerne.",
            categories,
            frequency: Some("højst 4 gange om måneden"),
            privacy_url: "https://nordlys.example/privatliv",
            landing_url: "https://optin.example/l/TOKEN-L",
            pixel_url: "https://optin.example/o/TOKEN-O",
            unsubscribe_url: "https://optin.example/u/TOKEN-U",
        }
    }

    #[test]
    fn renders_both_parts_with_links_and_escapes_html() {
        let cats = vec!["Nyheder".to_owned(), "Tilbud & events".to_owned()];
        let email = render(&content(Locale::Da, &cats)).expect("renders");
        assert_eq!(email.subject, "Få vores tilbud på SMS <først>");
        assert!(email.text.starts_with("Hej Anna,"));
        assert!(email.text.contains("https://optin.example/l/TOKEN-L"));
        assert!(email.text.contains("Det får du: Nyheder, Tilbud & events"));
        assert!(!email.text.contains("TOKEN-O"), "no pixel in the text part");
        let html = email.html.as_deref().expect("html");
        assert!(html.contains("href=\"https://optin.example/l/TOKEN-L\""));
        assert!(html.contains("src=\"https://optin.example/o/TOKEN-O\""));
        assert!(
            html.contains("Tilbud &#38; events") || html.contains("Tilbud &amp; events"),
            "escaped"
        );
        assert!(
            html.contains("&#60;først&#62;") || html.contains("&lt;først&gt;"),
            "subject escaped in title"
        );
        assert!(html.contains("<p style=\"margin:0 0 16px 0;\">Du vælger selv emnerne.</p>"));
        assert_eq!(email.message_id, "<inv-1@nordlys.example>");
        let raw = String::from_utf8(email.message.formatted()).expect("utf8");
        assert!(raw.contains("List-Unsubscribe: <https://optin.example/u/TOKEN-U>"));
        assert!(raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
        assert!(raw.contains("multipart/alternative"));
    }

    #[test]
    fn every_locale_renders() {
        for locale in Locale::ALL {
            let email = render(&content(locale, &[])).expect("renders");
            assert!(email.text.contains(i18n::email(locale).button));
            assert!(
                email
                    .html
                    .as_deref()
                    .is_some_and(|h| h.contains(&format!("lang=\"{locale}\"")))
            );
        }
    }
}
