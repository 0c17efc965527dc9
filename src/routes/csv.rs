//! CSV downloads, streamed: an export producer (`crate::exports`) runs on a blocking thread and
//! its chunks go to the client as they are written.

use actix_web::HttpResponse;
use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Bytes;

use crate::db::{Db, DbConn, DbError};
use crate::exports::CsvSink;

/// A `200 text/csv` attachment named `filename` whose body is what `produce` writes, sent chunk
/// by chunk. A failure part-way ends the file with a `# EXPORT FAILED` line.
pub fn stream_csv<F>(db: &Db, filename: &str, produce: F) -> HttpResponse
where
    F: FnOnce(&mut DbConn, &mut CsvSink<'_>) -> Result<(), DbError> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let db = db.clone();
    tokio::task::spawn_blocking(move || {
        let mut sink = |chunk: Vec<u8>| tx.blocking_send(Bytes::from(chunk)).is_ok();
        // A panic part-way must end the file like any other failure: unwinding would otherwise
        // just close the stream, and a cut-off export would look complete.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            db.get().and_then(|mut conn| produce(&mut conn, &mut sink))
        }))
        .unwrap_or_else(|payload| {
            tracing::error!(
                panic = crate::telemetry::panic_message(payload.as_ref()),
                "CSV export panicked"
            );
            Err(DbError::Panicked)
        });
        if let Err(e) = result {
            tracing::error!(error = %e, "CSV export failed part-way");
            // The status is sent already: end with a line no CSV reader takes for data, so a
            // cut-off export is never mistaken for a complete one.
            let _ = sink(format!("\n# EXPORT FAILED: {e}\n").into_bytes());
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (Ok::<_, actix_web::Error>(chunk), rx))
    });
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        ))
        .insert_header((
            header::CONTENT_DISPOSITION,
            HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
                .unwrap_or(HeaderValue::from_static("attachment")),
        ))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .streaming(body)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn an_export_that_panics_part_way_ends_with_the_failure_line() {
        let url = crate::config::DatabaseUrl::Sqlite(":memory:".into());
        let db = Db::connect(&url, 1, Duration::from_millis(100)).expect("in-memory db");
        let res = stream_csv(&db, "x.csv", |_conn, sink| {
            sink(b"phone,email\n+4520123456,anna@example.dk\n".to_vec());
            panic!("bug while reading the second page");
        });
        let body = actix_web::body::to_bytes(res.into_body()).await.expect("body");
        assert_eq!(
            std::str::from_utf8(&body).expect("UTF-8"),
            "phone,email\n+4520123456,anna@example.dk\n\n# EXPORT FAILED: database task panicked (a bug; the panic is in the log)\n"
        );
    }
}
