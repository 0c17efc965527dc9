//! What an HTML page answers when it cannot show itself, as `api::error` is for the JSON API:
//! the one 404 page, a 503 page with `Retry-After` while the database is unavailable, a 500 page
//! for anything else; each in the visitor's language and with the headers of every page.
//! Handlers return `Result<HttpResponse, PageError>`; domain errors become a [`PageFailure`]
//! through `From`, and the failure a [`PageError`] once the page's language is known.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use askama::Template;

use super::pages::{self, preferred_locale};
use crate::accounts::AccountError;
use crate::consent::doi::DoiError;
use crate::db::DbError;
use crate::domain::Locale;
use crate::i18n::{self, PageStrings};

/// Seconds a visitor (or a client honouring it) should wait before trying a 503 page again.
const RETRY_AFTER_SECS: &str = "30";

/// Why a page could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum PageFailure {
    /// A bad link (forged, expired, used up…) or an unknown address: the same page whatever the
    /// reason, which is logged where it is known.
    #[error("not found")]
    NotFound,
    /// A dashboard action the user's role does not allow: nothing was changed.
    #[error("forbidden for this role")]
    Forbidden,
    /// The database cannot be reached or is busy: the same request works again shortly.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] DbError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<DbError> for PageFailure {
    fn from(e: DbError) -> Self {
        // A lost connection, or a lock another writer kept past the busy timeout: nothing was
        // written, and trying again works.
        if e.is_connection_lost() || e.is_conflict() {
            Self::Unavailable(e)
        } else {
            Self::Internal(e.to_string())
        }
    }
}

impl From<askama::Error> for PageFailure {
    fn from(e: askama::Error) -> Self {
        Self::Internal(format!("page template failed: {e}"))
    }
}

impl From<AccountError> for PageFailure {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Db(e) => e.into(),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<DoiError> for PageFailure {
    fn from(e: DoiError) -> Self {
        match e {
            DoiError::Gone => Self::NotFound,
            DoiError::Db(e) => e.into(),
            // Form errors and limits are pages of their own; the handler shows them.
            other @ (DoiError::Form(_) | DoiError::Limited(_)) => Self::Internal(other.to_string()),
        }
    }
}

/// A [`PageFailure`] and the language of the page that tells it.
#[derive(Debug, thiserror::Error)]
#[error("{failure}")]
pub struct PageError {
    failure: PageFailure,
    locale: Locale,
    /// Told on a dashboard page (`/app/…`): a 404 is the dashboard's own page, not the one for
    /// bad links.
    dashboard: bool,
}

impl PageError {
    /// `failure` on a public page, told in the browser's language (`Accept-Language`), as the
    /// 404 page always is: a bad link says nothing trustworthy about its recipient.
    pub fn public(req: &HttpRequest, failure: impl Into<PageFailure>) -> Self {
        Self {
            failure: failure.into(),
            locale: preferred_locale(req),
            dashboard: false,
        }
    }

    /// `failure` on a dashboard page: in Danish or English, like the dashboard.
    pub fn dashboard(req: &HttpRequest, failure: impl Into<PageFailure>) -> Self {
        Self {
            failure: failure.into(),
            locale: super::app::locale(req),
            dashboard: true,
        }
    }

    /// The one 404 page, for every bad link and unknown address; under `/app` the dashboard's
    /// own 404 page.
    pub fn not_found(req: &HttpRequest) -> Self {
        if req.path() == "/app" || req.path().starts_with("/app/") {
            return Self::dashboard(req, PageFailure::NotFound);
        }
        Self::public(req, PageFailure::NotFound)
    }
}

#[derive(Template)]
#[template(path = "app/not_found.html")]
struct DashboardNotFoundPage {
    lang: &'static str,
    s: &'static i18n::MarketerStrings,
}

#[derive(Template)]
#[template(path = "pages/not_found.html")]
struct NotFoundPage {
    t: &'static PageStrings,
}

#[derive(Template)]
#[template(path = "pages/error.html")]
struct ErrorPage {
    t: &'static PageStrings,
    title: &'static str,
    body: &'static str,
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self.failure {
            PageFailure::NotFound => StatusCode::NOT_FOUND,
            PageFailure::Forbidden => StatusCode::FORBIDDEN,
            PageFailure::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            PageFailure::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let t = i18n::page(self.locale);
        if self.dashboard && matches!(self.failure, PageFailure::NotFound) {
            let page = DashboardNotFoundPage {
                lang: t.lang,
                s: i18n::marketer(self.locale),
            };
            return pages::render(self.status_code(), &page);
        }
        let (title, body) = match &self.failure {
            PageFailure::NotFound => return pages::render(self.status_code(), &NotFoundPage { t }),
            PageFailure::Forbidden => (t.forbidden_title, t.forbidden_body),
            PageFailure::Unavailable(source) => {
                tracing::error!(error = %source, "page: database unavailable");
                (t.unavailable_title, t.unavailable_body)
            }
            PageFailure::Internal(detail) => {
                tracing::error!(error = %detail, "page failed");
                (t.internal_title, t.internal_body)
            }
        };
        let mut res = pages::render(self.status_code(), &ErrorPage { t, title, body });
        if matches!(self.failure, PageFailure::Unavailable(_)) {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    async fn body(res: HttpResponse) -> String {
        let bytes = actix_web::body::to_bytes(res.into_body()).await.unwrap_or_default();
        String::from_utf8(bytes.to_vec()).unwrap_or_default()
    }

    #[tokio::test]
    async fn an_unavailable_database_is_a_localized_503_page_with_retry_after() {
        let req = TestRequest::default()
            .insert_header(("Accept-Language", "sv-SE, en;q=0.5"))
            .to_http_request();
        let lost = DbError::Connect("connection refused".into());
        let res = PageError::public(&req, lost).error_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let value = |name| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
        };
        assert_eq!(value(header::RETRY_AFTER), "30");
        assert!(value(header::CONTENT_SECURITY_POLICY).contains("default-src 'none'"));
        let page = body(res).await;
        assert!(page.contains("<html lang=\"sv\">"), "{page}");
        assert!(page.contains(i18n::page(Locale::Sv).unavailable_title), "{page}");
    }

    #[tokio::test]
    async fn other_database_errors_are_a_500_page_without_retry_after() {
        let req = TestRequest::default().to_http_request();
        let res = PageError::dashboard(&req, DbError::Panicked).error_response();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(res.headers().get(header::RETRY_AFTER).is_none());
        assert!(body(res).await.contains(i18n::page(Locale::En).internal_title));
    }

    #[tokio::test]
    async fn a_gone_invitation_is_the_one_404_page() {
        let req = TestRequest::default()
            .insert_header(("Accept-Language", "da"))
            .to_http_request();
        let gone = PageError::public(&req, DoiError::Gone).error_response();
        let bad_link = PageError::not_found(&req).error_response();
        assert_eq!(gone.status(), StatusCode::NOT_FOUND);
        assert_eq!(body(gone).await, body(bad_link).await);
    }
}
