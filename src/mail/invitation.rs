//! The invitation email: subject, text and HTML parts rendered from
//! `templates/email/invite/`, in the recipient's locale.

use askama::Template;
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};

use super::{EmailError, OutgoingEmail};
use crate::domain::Locale;
use crate::i18n::{self, EmailStrings};

/// Everything the invitation says; links are already signed.
#[derive(Debug, Clone)]
pub struct InvitationContent<'a> {
    pub invitation_id: &'a str,
    /// Assigned when the invitation was queued; derived from the id and the From domain if not.
    pub message_id: Option<&'a str>,
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

/// Writes every non-ASCII character as a numeric character reference. The HTML part is then
/// 7-bit clean and travels without quoted-printable (smaller, and no `=3D` in every attribute).
fn ascii_html(html: String) -> String {
    if html.is_ascii() {
        return html;
    }
    let mut out = String::with_capacity(html.len() + 64);
    for c in html.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("&#{};", u32::from(c)));
        }
    }
    out
}

/// The HTML part as a ready 7-bit body (CRLF line ends, as SMTP wants them), built in one pass
/// instead of lettre's encoding scan and conversion; or lettre's own choice when a line is
/// longer than SMTP allows (RFC 5321 4.5.3.1.6: 998 octets), e.g. a very long intro paragraph.
fn html_body(html: &str) -> Body {
    let longest = html.split('\n').map(str::len).max().unwrap_or(0);
    if !html.is_ascii() || longest > 990 {
        return Body::new(html.to_owned());
    }
    let mut buf = Vec::with_capacity(html.len() + html.len() / 40);
    for line in html.split_inclusive('\n') {
        match line.strip_suffix('\n') {
            Some(content) => {
                buf.extend_from_slice(content.strip_suffix('\r').unwrap_or(content).as_bytes());
                buf.extend_from_slice(b"\r\n");
            }
            None => buf.extend_from_slice(line.as_bytes()),
        }
    }
    Body::dangerous_pre_encoded(buf, ContentTransferEncoding::SevenBit)
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
    .render()
    .map(ascii_html)?;

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
    let message_id = content
        .message_id
        .map_or_else(|| format!("<{}@{}>", content.invitation_id, domain), str::to_owned);

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
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html_body(&html)),
                ),
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
            message_id: None,
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
        assert!(html.contains("&#60;f&#248;rst&#62;"), "subject escaped in title");
        assert!(html.contains("<p style=\"margin:0 0 16px 0;\">Du v&#230;lger selv emnerne.</p>"));
        assert!(html.is_ascii(), "the HTML part is 7-bit clean");
        assert_eq!(email.message_id, "<inv-1@nordlys.example>");
        let raw = String::from_utf8(email.message.formatted()).expect("utf8");
        assert!(raw.contains("List-Unsubscribe: <https://optin.example/u/TOKEN-U>"));
        assert!(raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
        assert!(raw.contains("multipart/alternative"));
    }

    #[test]
    fn html_part_is_seven_bit_with_crlf_and_long_lines_fall_back() {
        let cats = vec![];
        let email = render(&content(Locale::Da, &cats)).expect("renders");
        let raw = String::from_utf8(email.message.formatted()).expect("utf8");
        let html_part = raw.split("Content-Type: text/html").nth(1).expect("html part");
        assert!(html_part.contains("Content-Transfer-Encoding: 7bit"), "{html_part}");
        assert!(!html_part.contains("=3D"));
        assert!(raw.lines().all(|l| l.len() <= 998));
        assert!(!raw.replace("\r\n", "").contains('\n'), "CRLF only");

        // Real links carry a ~400-character token and appear twice in the fallback paragraph.
        let long_link = format!("https://optin.example/l/{}", "t".repeat(420));
        let mut c = content(Locale::Da, &cats);
        c.landing_url = &long_link;
        let raw = String::from_utf8(render(&c).expect("renders").message.formatted()).expect("utf8");
        let html_part = raw.split("Content-Type: text/html").nth(1).expect("html part");
        assert!(
            html_part.contains("Content-Transfer-Encoding: 7bit"),
            "long links stay 7bit"
        );

        let long_intro = "ord ".repeat(400);
        let mut c = content(Locale::En, &cats);
        c.intro = &long_intro;
        let raw = String::from_utf8(render(&c).expect("renders").message.formatted()).expect("utf8");
        assert!(
            raw.lines().all(|l| l.len() <= 998),
            "a 1600-character paragraph is still sendable"
        );
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
