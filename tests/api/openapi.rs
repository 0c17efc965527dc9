//! `GET /api/v1/openapi.json`: served without a token, valid OpenAPI 3.1 for an independent
//! validator (openapi-spec-validator, in the venv scripts/setup-test-deps makes), and listing
//! exactly the routes the API serves.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::{Backend, spawn_app, test_python};

async fn document(backend: Backend) -> Value {
    let app = spawn_app(backend).await;
    let res = app.client.get(app.url("/api/v1/openapi.json")).send().await.unwrap();
    assert_eq!(res.status(), 200, "no token needed");
    assert_eq!(res.headers()["content-type"], "application/json");
    res.json().await.unwrap()
}

#[tokio::test]
async fn the_document_is_valid_openapi_3_1() {
    let doc = document(Backend::Sqlite).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let path = std::env::temp_dir().join(format!("optbridge-openapi-{}.json", uuid::Uuid::now_v7()));
    std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let out = std::process::Command::new(test_python())
        .args(["-m", "openapi_spec_validator", "--schema", "3.1"])
        .arg(&path)
        .output()
        .expect("run openapi-spec-validator");
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "openapi-spec-validator refuses the document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Bearer auth for everything but the document itself; one error shape.
    assert_eq!(doc["components"]["securitySchemes"]["api_token"]["scheme"], "bearer");
    assert!(doc["security"][0].get("api_token").is_some());
    assert_eq!(
        doc["paths"]["/api/v1/openapi.json"]["get"]["security"],
        serde_json::json!([{}])
    );
    assert_eq!(
        doc["components"]["schemas"]["ErrorBody"]["required"],
        serde_json::json!(["error"])
    );
    let list = &doc["paths"]["/api/v1/webhooks"]["get"]["responses"];
    assert_eq!(
        list["401"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    // Request and response schemas are there.
    let create = &doc["paths"]["/api/v1/webhooks"]["post"];
    assert_eq!(
        create["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/NewEndpoint"
    );
    assert!(create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].is_string());
    assert!(doc["components"]["schemas"]["ContactListItem"].is_object());
}

/// The routes as the actix attributes in `src/routes/api/` declare them: `(method, path)`.
fn declared_routes() -> BTreeSet<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/routes/api");
    let mut routes = BTreeSet::new();
    for file in std::fs::read_dir(dir).unwrap() {
        let path = file.unwrap().path();
        let source = std::fs::read_to_string(&path).unwrap();
        // Routes registered by hand would bypass the documented scope.
        for manual in [".route(", "web::resource(", ".to(handler"] {
            assert!(
                !source.contains(manual),
                "{} registers a route with {manual}: use an annotated handler and .service() (see routes/api/mod.rs)",
                path.display()
            );
        }
        for method in ["get", "post", "put", "patch", "delete"] {
            for part in source.split(&format!("#[{method}(\"")).skip(1) {
                let route = part.split('"').next().unwrap();
                let full = if route.starts_with("/api/v1/") {
                    route.to_owned()
                } else {
                    format!("/api/v1{route}")
                };
                routes.insert((method.to_owned(), full));
            }
        }
    }
    routes
}

/// Fails when a route is served but not documented (or documented but not served): the
/// document comes from the same scope the server registers, and this checks it against every
/// actix route attribute in the API's source and against the running server.
#[tokio::test]
async fn the_document_lists_every_route_the_api_serves() {
    let doc = document(Backend::Sqlite).await;
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    let declared = declared_routes();
    assert!(declared.len() >= 20, "{declared:?}");
    let missing: Vec<_> = declared.difference(&documented).collect();
    assert!(missing.is_empty(), "routes without documentation: {missing:?}");
    let extra: Vec<_> = documented.difference(&declared).collect();
    assert!(extra.is_empty(), "documented but not declared: {extra:?}");

    // Each documented operation reaches a handler: none is the API's "route not found".
    let app = spawn_app(Backend::Sqlite).await;
    let ws = app.create_workspace("Routes").await;
    for (method, path) in &documented {
        let concrete = path.replace("{id}", "00000000-0000-0000-0000-000000000000");
        let url = app.url(&concrete);
        let request = match method.as_str() {
            "get" => app.client.get(url),
            "post" => app.client.post(url),
            "put" => app.client.put(url),
            "patch" => app.client.patch(url),
            "delete" => app.client.delete(url),
            other => panic!("unexpected method {other}"),
        }
        .bearer_auth(&ws.token);
        let res = request.send().await.unwrap();
        let status = res.status();
        let body = res.text().await.unwrap();
        assert!(
            !body.contains("route not found"),
            "{method} {path} is documented but not served: {status} {body}"
        );
    }
}
