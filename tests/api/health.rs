use crate::helpers::{Backend, both_backends, json, spawn_app};

async fn healthz_reports_the_database(backend: Backend) {
    let app = spawn_app(backend).await;
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body = json(res).await;
    assert_eq!(body["database"], "ok");
    let expected = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(body["backend"], expected);
}

both_backends!(healthz_reports_the_database);
