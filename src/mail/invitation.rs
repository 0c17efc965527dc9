//! The invitation email: subject, text and HTML parts rendered from
//! `templates/email/invite/`, in the recipient's locale.

use askama::Template;
use lettre::address::Envelope;
use lettre::message::header::{self, HeaderName, HeaderValue, Headers};
use lettre::message::{Mailbox, Mailboxes};
use std::sync::{Mutex, PoisonError};

use super::{EmailError, OutgoingEmail};
use crate::domain::Locale;
use crate::i18n::{self, EmailStrings};
use crate::slots::Slotted;

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
    use std::fmt::Write as _;
    let mut out = String::with_capacity(html.len() + 256);
    let mut rest = html.as_str();
    // A byte scan: `str::find` with a char predicate decodes every character of the page.
    while let Some(at) = rest.bytes().position(|b| !b.is_ascii()) {
        out.push_str(&rest[..at]);
        let c = rest[at..].chars().next().unwrap_or_default();
        let _ = write!(out, "&#{};", u32::from(c));
        rest = &rest[at + c.len_utf8()..];
    }
    out.push_str(rest);
    out
}

/// A MIME part's body and its transfer encoding: 7-bit with CRLF line ends when the text is
/// ASCII with lines SMTP can carry (RFC 5321 4.5.3.1.6: 998 octets), otherwise quoted-printable
/// (RFC 2045 6.7), which wraps long lines and encodes everything else.
fn push_part_body(out: &mut Vec<u8>, text: &str) -> &'static str {
    let seven_bit = is_seven_bit(text);
    push_part_headers(out, seven_bit);
    if seven_bit {
        push_crlf_lines(out, text);
    } else {
        push_quoted_printable(out, text);
    }
    transfer_encoding(seven_bit)
}

/// Whether a part can travel as it is (see [`push_part_body`]).
fn is_seven_bit(text: &str) -> bool {
    text.is_ascii() && text.split('\n').all(|line| line.len() <= 990)
}

fn transfer_encoding(seven_bit: bool) -> &'static str {
    if seven_bit { "7bit" } else { "quoted-printable" }
}

/// The end of a part's headers: its transfer encoding and the blank line.
fn push_part_headers(out: &mut Vec<u8>, seven_bit: bool) {
    for piece in ["Content-Transfer-Encoding: ", transfer_encoding(seven_bit), "\r\n\r\n"] {
        out.extend_from_slice(piece.as_bytes());
    }
}

/// Copies `text` with every line ending as CRLF.
fn push_crlf_lines(out: &mut Vec<u8>, text: &str) {
    for line in text.split_inclusive('\n') {
        match line.strip_suffix('\n') {
            Some(content) => {
                out.extend_from_slice(content.strip_suffix('\r').unwrap_or(content).as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            None => out.extend_from_slice(line.as_bytes()),
        }
    }
}

/// Whether a byte may stand for itself in quoted-printable: printable ASCII but `=`, space and
/// tab (these two not at the end of a line).
const fn qp_literal(b: u8) -> bool {
    (b >= b'!' && b <= b'~' && b != b'=') || b == b' ' || b == b'\t'
}

/// Quoted-printable (RFC 2045 6.7): line breaks stay hard CRLF breaks, `=` and bytes outside
/// printable ASCII become `=XX`, spaces and tabs at the end of a line are encoded, and soft
/// breaks (`=` CRLF) keep every encoded line at 76 characters or fewer.
fn push_quoted_printable(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    const MAX: usize = 76;
    out.reserve(text.len() + text.len() / 8);
    let mut lines = text.split('\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix('\r').unwrap_or(line).as_bytes();
        let trailing_space = line.iter().rev().take_while(|b| matches!(b, b' ' | b'\t')).count();
        let plain_end = line.len() - trailing_space;
        // Invariant at the top of the loop: column <= MAX - 1.
        let mut column = 0;
        let mut i = 0;
        while i < line.len() {
            // Copy a run of literal bytes at once, leaving room for the `=` of a soft break.
            let room = MAX - 1 - column;
            let run = line[i..plain_end.max(i)]
                .iter()
                .take(room)
                .take_while(|&&b| qp_literal(b))
                .count();
            if run > 0 {
                out.extend_from_slice(&line[i..i + run]);
                column += run;
                i += run;
                continue;
            }
            let b = line[i];
            let literal = i < plain_end && qp_literal(b);
            let width = if literal { 1 } else { 3 };
            // The line's last character may use the column a soft break's `=` would need.
            let limit = if i + 1 == line.len() { MAX } else { MAX - 1 };
            if column + width > limit {
                out.extend_from_slice(b"=\r\n");
                column = 0;
            }
            if literal {
                out.push(b);
            } else {
                out.extend_from_slice(&[b'=', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0x0f)]]);
            }
            column += width;
            i += 1;
        }
        if lines.peek().is_some() {
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Blank-line separated paragraphs of the marketer's intro.
fn paragraphs(intro: &str) -> Vec<&str> {
    intro.split("\n\n").map(str::trim).filter(|p| !p.is_empty()).collect()
}

/// Renders the three parts and assembles the message: `multipart/alternative`, a stable
/// `Message-ID` per invitation (a retry is the same message, so receivers can drop a duplicate),
/// and one-click unsubscribe headers (RFC 8058).
pub fn render(content: &InvitationContent<'_>) -> Result<OutgoingEmail, EmailError> {
    let (subject, text, html) = render_parts(content)?;
    let from = parse_from(content.from)?;
    let fixed_headers = fixed_headers(&from, &subject);
    finish(content, from, subject, &fixed_headers, text, html)
}

/// Subject, text part and HTML part (7-bit, see [`ascii_html`]).
fn render_parts(content: &InvitationContent<'_>) -> Result<(String, String, String), EmailError> {
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
    Ok((subject, text, html))
}

fn parse_from(from: &str) -> Result<Mailbox, EmailError> {
    from.parse()
        .map_err(|e| EmailError::Address(format!("from '{from}': {e}")))
}

/// The headers every recipient of one campaign variant shares: From and Subject, encoded.
fn fixed_headers(from: &Mailbox, subject: &str) -> String {
    let mut headers = Headers::new();
    headers.set(header::From::from(Mailboxes::from(from.clone())));
    if subject.contains("=?") {
        headers.insert_raw(subject_as_encoded_words(subject));
    } else {
        headers.set(header::Subject::from(subject.to_owned()));
    }
    headers.to_string()
}

/// A Subject header that arrives as typed although it contains `=?`: lettre leaves ASCII words
/// as they are, and mail clients would decode a typed `=?utf-8?q?…?=` (RFC 2047 section 6), so
/// the whole subject becomes encoded words (base64 UTF-8, folded at 76 columns, section 2).
fn subject_as_encoded_words(subject: &str) -> HeaderValue {
    let name = HeaderName::new_from_ascii_str("Subject");
    let mut encoded = String::with_capacity(subject.len() * 2);
    {
        let mut writer = email_encoding::headers::writer::EmailWriter::new(&mut encoded, "Subject: ".len(), 0, false);
        // Writing into a String cannot fail.
        let _ = email_encoding::headers::rfc2047::encode(subject, &mut writer);
    }
    // Only ASCII encoded words and folds (CRLF + space) come out of the encoder.
    HeaderValue::dangerous_new_pre_encoded(name, subject.to_owned(), encoded)
}

/// The recipient's part of the message: addresses, Message-ID, and the assembled MIME message.
fn finish(
    content: &InvitationContent<'_>,
    from: Mailbox,
    subject: String,
    fixed_headers: &str,
    text: String,
    html: String,
) -> Result<OutgoingEmail, EmailError> {
    let (to, message_id, envelope) = addressing(content, &from)?;
    // `=_` cannot occur in quoted-printable text, and the random part not in the HTML.
    let boundary = format!("=_{}", crate::crypto::hex(&crate::crypto::random_bytes::<16>()));
    let raw = assemble(
        &Heading {
            fixed_headers,
            to: &to,
            message_id: &message_id,
            unsubscribe_url: content.unsubscribe_url,
            boundary: &boundary,
        },
        text.len() + html.len(),
        [
            ("text/plain", &mut |out| {
                push_part_body(out, &text);
            }),
            ("text/html", &mut |out| {
                push_part_body(out, &html);
            }),
        ],
    );
    Ok(OutgoingEmail {
        from,
        to,
        subject,
        text,
        html: Some(html),
        message_id,
        envelope,
        raw,
    })
}

/// The recipient's mailbox, the Message-ID and the envelope.
fn addressing(content: &InvitationContent<'_>, from: &Mailbox) -> Result<(Mailbox, String, Envelope), EmailError> {
    let to_address = content
        .to_email
        .parse()
        .map_err(|e| EmailError::Address(format!("to '{}': {e}", content.to_email)))?;
    let to = Mailbox::new(content.to_name.clone(), to_address);
    let message_id = match content.message_id {
        Some(id) => id.to_owned(),
        None => format!("<{}@{}>", content.invitation_id, from.email.domain()),
    };
    let envelope = Envelope::new(Some(from.email.clone()), vec![to.email.clone()])
        .map_err(|e| EmailError::Build(e.to_string()))?;
    Ok((to, message_id, envelope))
}

/// A MIME part: its content type, and a writer of its transfer encoding header and body.
type Part<'a> = (&'a str, &'a mut dyn FnMut(&mut Vec<u8>));

/// What a message says before its parts.
struct Heading<'a> {
    /// The campaign's: From and Subject.
    fixed_headers: &'a str,
    to: &'a Mailbox,
    message_id: &'a str,
    unsubscribe_url: &'a str,
    boundary: &'a str,
}

/// The whole message: the headers and the two parts of a `multipart/alternative`, each given as
/// its content type and a writer of its transfer encoding header and encoded body; `size`: about
/// how long the parts are.
fn assemble(heading: &Heading<'_>, size: usize, parts: [Part<'_>; 2]) -> Vec<u8> {
    let Heading {
        fixed_headers,
        to,
        message_id,
        unsubscribe_url,
        boundary,
    } = *heading;
    let mut raw = Vec::with_capacity(fixed_headers.len() + size + size / 8 + 1024);
    raw.extend_from_slice(fixed_headers.as_bytes());
    let mut headers = Headers::new();
    headers.set(header::To::from(Mailboxes::from(to.clone())));
    raw.extend_from_slice(headers.to_string().as_bytes());
    push_date_header(&mut raw);
    push_header(&mut raw, "Message-ID", message_id);
    push_header(&mut raw, "List-Unsubscribe", &format!("<{unsubscribe_url}>"));
    raw.extend_from_slice(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nMIME-Version: 1.0\r\n");
    for piece in [
        "Content-Type: multipart/alternative;\r\n boundary=\"",
        boundary,
        "\"\r\n\r\n",
    ] {
        raw.extend_from_slice(piece.as_bytes());
    }
    for (content_type, write_body) in parts {
        for piece in [
            "--",
            boundary,
            "\r\nContent-Type: ",
            content_type,
            "; charset=utf-8\r\n",
        ] {
            raw.extend_from_slice(piece.as_bytes());
        }
        write_body(&mut raw);
        if !raw.ends_with(b"\r\n") {
            raw.extend_from_slice(b"\r\n");
        }
    }
    for piece in ["--", boundary, "--\r\n"] {
        raw.extend_from_slice(piece.as_bytes());
    }
    raw
}

/// Writes a header as lettre's encoder would: a value of ASCII words lettre leaves alone and
/// cannot fold (no space) is copied; any other goes through lettre (RFC 2047, folding).
fn push_header(out: &mut Vec<u8>, name: &'static str, value: &str) {
    // lettre's `allowed_char`: every byte but NUL, CR, LF and non-ASCII stands for itself.
    let plain = |b: u8| b != 0 && b != b'\r' && b != b'\n' && b != b' ' && b.is_ascii();
    if value.bytes().all(plain) {
        for piece in [name, ": ", value, "\r\n"] {
            out.extend_from_slice(piece.as_bytes());
        }
    } else {
        let mut headers = Headers::new();
        headers.insert_raw(HeaderValue::new(HeaderName::new_from_ascii_str(name), value.to_owned()));
        out.extend_from_slice(headers.to_string().as_bytes());
    }
}

/// The `Date` header of this second, formatted once a second rather than per message.
fn push_date_header(out: &mut Vec<u8>) {
    static LAST: Mutex<(u64, String)> = Mutex::new((0, String::new()));
    let now = std::time::SystemTime::now();
    let second = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut last = LAST.lock().unwrap_or_else(PoisonError::into_inner);
    if last.0 != second || last.1.is_empty() {
        let mut headers = Headers::new();
        headers.set(header::Date::new(now));
        *last = (second, headers.to_string());
    }
    out.extend_from_slice(last.1.as_bytes());
}

/// Stand-ins for the recipient's values while a prepared invitation renders: letters only, which
/// HTML escaping leaves as they are. In the order of [`Slotted`]'s values.
const SLOTS: [&str; 4] = [
    "optbridgeSLOTfirstNAMEq7",
    "optbridgeSLOTlandingURLq7",
    "optbridgeSLOTpixelURLq7",
    "optbridgeSLOTunsubscribeURLq7",
];

/// An invitation rendered once for every recipient of one campaign variant in one locale (with
/// or without a first name), with the recipient's values left open: filling them in costs a copy
/// instead of the templates, the escaping, the From and Subject headers and, but for the few
/// lines holding a recipient's value, the transfer encoding of the two parts.
#[derive(Debug)]
pub struct PreparedInvitation {
    subject: String,
    from: Mailbox,
    fixed_headers: String,
    text: Slotted<{ SLOTS.len() }>,
    html: Slotted<{ SLOTS.len() }>,
    text_body: PreparedBody,
    html_body: PreparedBody,
    /// Every message's MIME boundary: `=_`, random hex of this preparation, and the count of
    /// messages made from it (so each has its own). Neither part can contain it: `=_` does not
    /// occur in quoted-printable, and the random hex not in the 7-bit text by chance.
    boundary_prefix: String,
    made: std::sync::atomic::AtomicU64,
    /// How long the prepared parts are, as a message's size hint.
    size: usize,
}

/// A part's body, transfer-encoded once ([`push_part_body`]) but for its lines with slots, which
/// are filled and encoded per message. Both encodings work line by line, so encoding the lines
/// apart and joining them with CRLF gives what encoding the whole text gives.
#[derive(Debug)]
struct PreparedBody {
    /// In order, joined by CRLF.
    runs: Vec<BodyRun>,
    /// Whether the lines without slots allow 7-bit: ASCII, none longer than 990 octets.
    fixed_seven_bit: bool,
}

#[derive(Debug)]
enum BodyRun {
    /// Lines without slots, encoded both ways.
    Fixed {
        seven_bit: Vec<u8>,
        quoted_printable: Vec<u8>,
    },
    /// One line with slots.
    Line(Slotted<{ SLOTS.len() }>),
}

impl PreparedBody {
    fn new(text: &str) -> Self {
        let lines: Vec<&str> = text.split('\n').collect();
        let mut runs = Vec::new();
        let mut fixed_seven_bit = true;
        let mut fixed: Vec<&str> = Vec::new();
        // `ends_text`: the run holds the text's last line, which 7-bit copies as it is.
        let flush = |fixed: &mut Vec<&str>, runs: &mut Vec<BodyRun>, ends_text: bool| {
            if fixed.is_empty() {
                return;
            }
            let joined = fixed.join("\n");
            let mut seven_bit = Vec::with_capacity(joined.len() + fixed.len());
            if ends_text {
                push_crlf_lines(&mut seven_bit, &joined);
            } else {
                push_crlf_lines(&mut seven_bit, &(joined.clone() + "\n"));
                seven_bit.truncate(seven_bit.len() - 2);
            }
            let mut quoted_printable = Vec::new();
            push_quoted_printable(&mut quoted_printable, &joined);
            runs.push(BodyRun::Fixed {
                seven_bit,
                quoted_printable,
            });
            fixed.clear();
        };
        for line in lines {
            if SLOTS.iter().any(|slot| line.contains(slot)) {
                flush(&mut fixed, &mut runs, false);
                runs.push(BodyRun::Line(Slotted::split(line, &SLOTS)));
            } else {
                fixed_seven_bit &= line.is_ascii() && line.len() <= 990;
                fixed.push(line);
            }
        }
        flush(&mut fixed, &mut runs, true);
        Self { runs, fixed_seven_bit }
    }

    /// Writes the part's transfer encoding header and its body with `values` in the slots (none
    /// may hold a line break), encoded as [`push_part_body`] would encode the filled text.
    fn write(&self, values: &[&str; SLOTS.len()], out: &mut Vec<u8>) {
        let filled: Vec<String> = self
            .runs
            .iter()
            .filter_map(|run| match run {
                BodyRun::Line(line) => Some(line.fill(values)),
                BodyRun::Fixed { .. } => None,
            })
            .collect();
        let seven_bit = self.fixed_seven_bit && filled.iter().all(|line| line.is_ascii() && line.len() <= 990);
        push_part_headers(out, seven_bit);
        let mut filled = filled.iter();
        let last = self.runs.len().saturating_sub(1);
        for (i, run) in self.runs.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b"\r\n");
            }
            match run {
                BodyRun::Fixed {
                    seven_bit: as_is,
                    quoted_printable,
                } => out.extend_from_slice(if seven_bit { as_is } else { quoted_printable }),
                BodyRun::Line(_) => {
                    let line = filled.next().map_or("", String::as_str);
                    if !seven_bit {
                        push_quoted_printable(out, line);
                    } else if i == last {
                        out.extend_from_slice(line.as_bytes());
                    } else {
                        out.extend_from_slice(line.strip_suffix('\r').unwrap_or(line).as_bytes());
                    }
                }
            }
        }
    }
}

impl PreparedInvitation {
    /// Prepares the invitation `content` belongs to. `None` when the prepared form does not give
    /// exactly what [`render`] gives for `content` (the campaign's own text containing a slot
    /// marker, say): the caller then renders every message in full.
    pub fn new(content: &InvitationContent<'_>) -> Result<Option<Self>, EmailError> {
        let (subject, text, html) = render_parts(&InvitationContent {
            first_name: content.first_name.map(|_| SLOTS[0]),
            landing_url: SLOTS[1],
            pixel_url: SLOTS[2],
            unsubscribe_url: SLOTS[3],
            ..content.clone()
        })?;
        let from = parse_from(content.from)?;
        let prepared = Self {
            fixed_headers: fixed_headers(&from, &subject),
            subject,
            from,
            text_body: PreparedBody::new(&text),
            html_body: PreparedBody::new(&html),
            text: Slotted::split(&text, &SLOTS),
            html: Slotted::split(&html, &SLOTS),
            boundary_prefix: format!("=_{}", crate::crypto::hex(&crate::crypto::random_bytes::<8>())),
            made: std::sync::atomic::AtomicU64::new(0),
            size: text.len() + html.len(),
        };
        let full = render(content)?;
        let filled = prepared.render(content)?;
        let same = full.subject == filled.subject
            && full.text == filled.text
            && full.html == filled.html
            && body_of(&full.raw) == body_of(&filled.raw);
        Ok(same.then_some(prepared))
    }

    /// The message for one recipient: `content`'s recipient fields (address, names, Message-ID,
    /// links) in the prepared parts. The campaign fields must be the ones it was prepared with.
    pub fn render(&self, content: &InvitationContent<'_>) -> Result<OutgoingEmail, EmailError> {
        self.fill(content, true)
    }

    /// [`Self::render`] for a transport that reads only `raw` and the envelope (SMTP): the parts
    /// are not also kept as text, so `text` is empty and `html` is `None`.
    pub fn render_raw(&self, content: &InvitationContent<'_>) -> Result<OutgoingEmail, EmailError> {
        self.fill(content, false)
    }

    fn fill(&self, content: &InvitationContent<'_>, keep_parts: bool) -> Result<OutgoingEmail, EmailError> {
        use std::fmt::Write as _;
        let plain = [
            content.first_name.unwrap_or_default(),
            content.landing_url,
            content.pixel_url,
            content.unsubscribe_url,
        ];
        // Escaped as the HTML template escapes them, then 7-bit like the rest of the part.
        let escape = |value: &str| {
            let mut out = String::with_capacity(value.len() + 16);
            let _ = write!(
                out,
                "{}",
                askama::filters::escape(value, askama::filters::Html).unwrap_or_else(|e| match e {})
            );
            ascii_html(out)
        };
        let (name, landing, pixel, unsubscribe) =
            (escape(plain[0]), escape(plain[1]), escape(plain[2]), escape(plain[3]));
        let escaped = [name.as_str(), &landing, &pixel, &unsubscribe];
        // A value with a line break would end its line early: the whole text is encoded then.
        if plain.iter().any(|value| value.contains(['\r', '\n'])) {
            return finish(
                content,
                self.from.clone(),
                self.subject.clone(),
                &self.fixed_headers,
                self.text.fill(&plain),
                self.html.fill(&escaped),
            );
        }
        let (to, message_id, envelope) = addressing(content, &self.from)?;
        let made = self.made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let boundary = format!("{}{made:x}", self.boundary_prefix);
        let raw = assemble(
            &Heading {
                fixed_headers: &self.fixed_headers,
                to: &to,
                message_id: &message_id,
                unsubscribe_url: content.unsubscribe_url,
                boundary: &boundary,
            },
            self.size,
            [
                ("text/plain", &mut |out| self.text_body.write(&plain, out)),
                ("text/html", &mut |out| self.html_body.write(&escaped, out)),
            ],
        );
        let (text, html) = if keep_parts {
            (self.text.fill(&plain), Some(self.html.fill(&escaped)))
        } else {
            (String::new(), None)
        };
        Ok(OutgoingEmail {
            from: self.from.clone(),
            to,
            subject: self.subject.clone(),
            text,
            html,
            message_id,
            envelope,
            raw,
        })
    }
}

/// A message's MIME parts, boundaries taken out: what two renderings of one message share.
fn body_of(raw: &[u8]) -> Vec<u8> {
    let raw = String::from_utf8_lossy(raw);
    let Some((_, rest)) = raw.split_once("boundary=\"") else {
        return raw.as_bytes().to_vec();
    };
    let boundary = rest.split('"').next().unwrap_or_default();
    rest.replace(boundary, "").into_bytes()
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
        let raw = String::from_utf8(email.raw.clone()).expect("utf8");
        assert!(raw.contains("List-Unsubscribe: <https://optin.example/u/TOKEN-U>"));
        assert!(raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
        assert!(raw.contains("multipart/alternative"));
    }

    #[test]
    fn html_part_is_seven_bit_with_crlf_and_long_lines_fall_back() {
        let cats = vec![];
        let email = render(&content(Locale::Da, &cats)).expect("renders");
        let raw = String::from_utf8(email.raw.clone()).expect("utf8");
        let html_part = raw.split("Content-Type: text/html").nth(1).expect("html part");
        assert!(html_part.contains("Content-Transfer-Encoding: 7bit"), "{html_part}");
        assert!(!html_part.contains("=3D"));
        assert!(raw.lines().all(|l| l.len() <= 998));
        assert!(!raw.replace("\r\n", "").contains('\n'), "CRLF only");

        // Real links carry a ~400-character token and appear twice in the fallback paragraph.
        let long_link = format!("https://optin.example/l/{}", "t".repeat(420));
        let mut c = content(Locale::Da, &cats);
        c.landing_url = &long_link;
        let raw = String::from_utf8(render(&c).expect("renders").raw).expect("utf8");
        let html_part = raw.split("Content-Type: text/html").nth(1).expect("html part");
        assert!(
            html_part.contains("Content-Transfer-Encoding: 7bit"),
            "long links stay 7bit"
        );

        let long_intro = "ord ".repeat(400);
        let mut c = content(Locale::En, &cats);
        c.intro = &long_intro;
        let raw = String::from_utf8(render(&c).expect("renders").raw).expect("utf8");
        assert!(
            raw.lines().all(|l| l.len() <= 998),
            "a 1600-character paragraph is still sendable"
        );
    }

    fn decode_part(raw: &[u8]) -> String {
        let part = mailparse::parse_mail(raw).expect("parses");
        String::from_utf8(part.get_body_raw().expect("decodes")).expect("utf8")
    }

    #[test]
    fn the_message_parses_back_to_what_was_rendered() {
        let cats = vec!["Nyheder".to_owned()];
        let mut c = content(Locale::Sv, &cats);
        c.to_name = Some("Åsa Öberg, \"VIP\"".into());
        c.from = "Nordlys Skö <nyheder@nordlys.example>";
        let email = render(&c).expect("renders");
        let parsed = mailparse::parse_mail(&email.raw).expect("parses");
        let header = |name: &str| {
            parsed
                .headers
                .iter()
                .find(|h| h.get_key_ref().eq_ignore_ascii_case(name))
                .map(|h| h.get_value())
        };
        assert_eq!(header("Subject").as_deref(), Some(email.subject.as_str()));
        assert_eq!(header("Message-ID").as_deref(), Some("<inv-1@nordlys.example>"));
        assert_eq!(header("MIME-Version").as_deref(), Some("1.0"));
        assert!(header("Date").is_some());
        let to = mailparse::addrparse_header(parsed.headers.iter().find(|h| h.get_key_ref() == "To").expect("To"))
            .expect("address");
        let mailparse::MailAddr::Single(to) = &to[0] else {
            panic!("one mailbox")
        };
        assert_eq!(
            (to.display_name.as_deref(), to.addr.as_str()),
            (Some("Åsa Öberg, \"VIP\""), "anna@example.dk")
        );
        assert_eq!(parsed.ctype.mimetype, "multipart/alternative");
        assert_eq!(parsed.subparts.len(), 2);
        let text = parsed.subparts[0].get_body().expect("text");
        assert_eq!(text.replace("\r\n", "\n"), email.text);
        assert_eq!(parsed.subparts[1].ctype.mimetype, "text/html");
        let html = parsed.subparts[1].get_body().expect("html");
        assert_eq!(
            html.replace("\r\n", "\n").trim_end(),
            email.html.as_deref().expect("html").trim_end()
        );
        assert_eq!(email.envelope.to()[0].to_string(), "anna@example.dk");
        let (last, lines) = email
            .raw
            .split(|&b| b == b'\n')
            .collect::<Vec<_>>()
            .split_last()
            .map(|(l, r)| (l.to_vec(), r.len()))
            .expect("lines");
        assert!(last.is_empty(), "ends with a line break");
        assert!(
            email
                .raw
                .split(|&b| b == b'\n')
                .take(lines)
                .all(|l| l.len() <= 998 && l.ends_with(b"\r")),
            "CRLF only"
        );
    }

    #[test]
    fn quoted_printable_edges() {
        let encode = |text: &str| {
            let mut out = Vec::new();
            push_quoted_printable(&mut out, text);
            String::from_utf8(out).expect("ascii")
        };
        assert_eq!(encode("a=b æ"), "a=3Db =C3=A6");
        assert_eq!(encode("trailing  \nnext\t"), "trailing=20=20\r\nnext=09");
        assert_eq!(encode(&"x".repeat(76)), "x".repeat(76));
        assert_eq!(encode(&"x".repeat(77)), format!("{}=\r\nxx", "x".repeat(75)));
        assert_eq!(
            encode(&format!("{}æ", "x".repeat(74))),
            format!("{}=\r\n=C3=A6", "x".repeat(74))
        );
    }

    proptest::proptest! {
        #[test]
        fn quoted_printable_round_trips(text in "[a-zæøå =\t.\n\u{1F600}-]{0,300}") {
            let mut encoded = Vec::new();
            push_quoted_printable(&mut encoded, &text);
            for line in encoded.split(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                proptest::prop_assert!(line.len() <= 76, "{:?}", String::from_utf8_lossy(line));
                proptest::prop_assert!(!line.ends_with(b" ") && !line.ends_with(b"\t"));
                proptest::prop_assert!(line.is_ascii());
            }
            let mut message = b"Content-Transfer-Encoding: quoted-printable\r\n\r\n".to_vec();
            message.extend_from_slice(&encoded);
            proptest::prop_assert_eq!(decode_part(&message), text.replace('\n', "\r\n"));
        }
    }

    /// The Subject header as a mail client shows it.
    fn decoded_subject(raw: &[u8]) -> String {
        let parsed = mailparse::parse_mail(raw).expect("parses");
        parsed
            .headers
            .iter()
            .find(|h| h.get_key_ref().eq_ignore_ascii_case("Subject"))
            .map(|h| h.get_value())
            .expect("a Subject header")
    }

    #[test]
    fn typed_encoded_words_arrive_as_typed() {
        let cats = vec![];
        let long = format!("=?utf-8?q?Gratis?= {}", "æøå =?x?B?eA==?= ".repeat(12).trim_end());
        for subject in [
            "=?utf-8?q?Gratis?=",
            "=?iso-8859-1?B?R3JhdGlz?=",
            "Tilbud =?utf-8?b?R3JhdGlz?= på sko",
            "Få vores nyheder på SMS – æøå ÆØÅ",
            "a=?b",
            long.as_str(),
        ] {
            let email = render(&InvitationContent {
                subject,
                ..content(Locale::Da, &cats)
            })
            .expect("renders");
            assert_eq!(decoded_subject(&email.raw), subject);
            assert!(email.raw.split(|&b| b == b'\n').all(|l| l.len() <= 998));
            let prepared = PreparedInvitation::new(&InvitationContent {
                subject,
                ..content(Locale::Da, &cats)
            })
            .expect("prepares")
            .expect("usable");
            let filled = prepared
                .render(&InvitationContent {
                    subject,
                    ..content(Locale::Da, &cats)
                })
                .expect("fills");
            assert_eq!(decoded_subject(&filled.raw), subject);
        }
        // An ordinary subject keeps its plain header.
        let email = render(&InvitationContent {
            subject: "Spring news by SMS",
            ..content(Locale::Da, &cats)
        })
        .expect("renders");
        assert!(
            String::from_utf8_lossy(&email.raw).contains("\r\nSubject: Spring news by SMS\r\n"),
            "{}",
            String::from_utf8_lossy(&email.raw)
        );
    }

    proptest::proptest! {
        #[test]
        fn any_subject_arrives_as_typed(subject in "[a-zA-Z0-9æøå =?_.\u{1F600}-]{1,120}") {
            let subject = subject.trim().to_owned();
            proptest::prop_assume!(!subject.is_empty() && !subject.contains("  "));
            let cats = vec![];
            let email = render(&InvitationContent {
                subject: &subject,
                ..content(Locale::En, &cats)
            })
            .expect("renders");
            proptest::prop_assert_eq!(decoded_subject(&email.raw), subject);
        }
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

    /// The parts of a message that differ from message to message anyway.
    fn without_date_and_boundary(raw: &[u8]) -> String {
        let raw = String::from_utf8_lossy(raw);
        let boundary = raw
            .split("boundary=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default()
            .to_owned();
        raw.lines()
            .filter(|line| !line.starts_with("Date: "))
            .collect::<Vec<_>>()
            .join("\n")
            .replace(&boundary, "BOUNDARY")
    }

    fn assert_prepared_matches_full(content: &InvitationContent<'_>) {
        let prepared = PreparedInvitation::new(content).expect("prepares").expect("usable");
        let full = render(content).expect("renders");
        let filled = prepared.render(content).expect("fills");
        assert_eq!(filled.subject, full.subject);
        assert_eq!(filled.text, full.text);
        assert_eq!(filled.html, full.html);
        assert_eq!(filled.message_id, full.message_id);
        assert_eq!(filled.envelope, full.envelope);
        assert_eq!(
            without_date_and_boundary(&filled.raw),
            without_date_and_boundary(&full.raw)
        );
    }

    #[test]
    fn prepared_invitations_are_the_full_render() {
        let cats = vec!["Nyheder".to_owned(), "Tilbud & events".to_owned()];
        for locale in Locale::ALL {
            assert_prepared_matches_full(&content(locale, &cats));
            assert_prepared_matches_full(&InvitationContent {
                first_name: None,
                to_name: None,
                ..content(locale, &cats)
            });
        }
        // Prepared with one recipient, filled for another whose values need escaping.
        let base = content(Locale::Da, &cats);
        let prepared = PreparedInvitation::new(&base).expect("prepares").expect("usable");
        let other = InvitationContent {
            first_name: Some("Åse <b>&\"'"),
            to_name: Some("Åse Ødegård".into()),
            to_email: "aase@example.no",
            landing_url: "https://optin.example/l/A.B-C_D?x=1&y=<2>",
            ..base.clone()
        };
        let filled = prepared.render(&other).expect("fills");
        let full = render(&other).expect("renders");
        assert_eq!((&filled.text, &filled.html), (&full.text, &full.html));
        assert!(
            filled
                .html
                .as_deref()
                .is_some_and(|h| h.contains("Hej &#197;se &#60;b&#62;&#38;&#34;&#39;,"))
        );
    }

    proptest::proptest! {
        /// Differential: the prepared message (parts encoded once, the lines with a recipient's
        /// value encoded per message) against the full render, for names and links of any
        /// characters and lengths: 7-bit and quoted-printable, lines past 990 octets.
        #[test]
        fn prepared_messages_are_the_full_render_for_any_recipient(
            locale in proptest::sample::select(Locale::ALL.to_vec()),
            name in proptest::option::of("[a-zA-ZæøåÅ &<>\"'=.\t\r\n-]{0,40}"),
            token in "[A-Za-z0-9_.=-]{0,1200}",
            to_name in proptest::option::of("[a-zA-Zæ ,\"]{0,30}"),
        ) {
            let cats = vec!["Nyheder".to_owned()];
            let landing = format!("https://optin.example/l/{token}");
            let base = content(locale, &cats);
            let prepared = PreparedInvitation::new(&InvitationContent {
                first_name: name.as_ref().map(|_| "Anna"),
                ..base.clone()
            })
            .expect("prepares")
            .expect("usable");
            let recipient = InvitationContent {
                first_name: name.as_deref(),
                to_name,
                landing_url: &landing,
                unsubscribe_url: &landing,
                ..base
            };
            let full = render(&recipient).expect("renders");
            let filled = prepared.render(&recipient).expect("fills");
            proptest::prop_assert_eq!(
                without_date_and_boundary(&filled.raw),
                without_date_and_boundary(&full.raw)
            );
            proptest::prop_assert_eq!(&filled.text, &full.text);
            proptest::prop_assert_eq!(&filled.html, &full.html);
        }
    }

    #[test]
    fn campaign_text_with_a_slot_marker_is_rendered_in_full() {
        let cats = vec![];
        let intro = format!("Hello {}", SLOTS[1]);
        let c = InvitationContent {
            intro: &intro,
            ..content(Locale::En, &cats)
        };
        assert!(PreparedInvitation::new(&c).expect("prepares").is_none());
    }
}
