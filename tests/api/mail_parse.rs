//! Reading received mail in tests: header values decoded (RFC 2047 encoded words, unfolded) and
//! the text and HTML bodies decoded from their transfer encoding and charset.

use mailparse::DispositionType;

#[derive(Debug, Clone)]
pub struct ParsedMail {
    /// Every top-level header in order, values decoded.
    pub headers: Vec<(String, String)>,
    /// The top-level MIME type, lowercased, e.g. `multipart/alternative`.
    pub content_type: String,
    /// The first `text/plain` part that is not an attachment.
    pub text: Option<String>,
    /// The first `text/html` part that is not an attachment.
    pub html: Option<String>,
}

impl ParsedMail {
    /// Parses a message as the SMTP sink received it; panics, showing it, when it is not MIME.
    pub fn parse(raw: &[u8]) -> Self {
        let mail = mailparse::parse_mail(raw)
            .unwrap_or_else(|e| panic!("received mail does not parse ({e}):\n{}", String::from_utf8_lossy(raw)));
        let body = |mimetype: &str| {
            mail.parts()
                .find(|part| {
                    part.ctype.mimetype == mimetype
                        && part.get_content_disposition().disposition != DispositionType::Attachment
                })
                .map(|part| {
                    part.get_body()
                        .unwrap_or_else(|e| panic!("the {mimetype} part does not decode ({e})"))
                })
        };
        Self {
            headers: mail.headers.iter().map(|h| (h.get_key(), h.get_value())).collect(),
            content_type: mail.ctype.mimetype.clone(),
            text: body("text/plain"),
            html: body("text/html"),
        }
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}
