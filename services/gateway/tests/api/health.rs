use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::spawn_app;
use crate::helpers::spawn_app_with;

#[tokio::test(flavor = "multi_thread")]
async fn healthz_and_readyz_answer_ok_with_both_dependencies_up() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().contains_key("x-request-id"));
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["redis"], "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_is_503_when_redis_is_unreachable() {
    // Nothing listens on port 1.
    let app = spawn_app_with(&[("BIZ__REDIS__URL", "redis://127.0.0.1:1")]).await;
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["database"], "ok");
    assert_eq!(body["redis"], "unavailable");
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_is_503_and_api_calls_503_when_the_database_is_unreachable() {
    let app = spawn_app().await;
    // A second gateway over the same settings, but pointed at a port where no PostgreSQL listens.
    let settings = crate::helpers::test_settings(
        "postgres://postgres@127.0.0.1:1/nothing",
        &[("BIZ__DATABASE__ACQUIRE_TIMEOUT_MS", "500")],
    );
    let down = gateway::startup::Application::build(settings).unwrap();
    let address = format!("http://127.0.0.1:{}", down.port());
    tokio::spawn(down.run());
    let res = app
        .client
        .get(format!("{address}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["database"], "unavailable");
    assert_eq!(body["redis"], "ok");
    let res = app
        .client
        .post(format!("{address}/api/v1/auth/login"))
        .json(&serde_json::json!({"email": "a@example.com", "password": "whatever password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        crate::helpers::error_code(res, StatusCode::SERVICE_UNAVAILABLE).await,
        "service_unavailable"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn openapi_document_lists_the_routes() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let doc: Value = res.json().await.unwrap();
    let paths = doc["paths"].as_object().unwrap();
    // Every route handler in the source, with its method, must be in the document.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let source = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in source.lines().map(str::trim) {
            let Some(rest) = line.strip_prefix("#[") else {
                continue;
            };
            let Some((method, route)) = rest.split_once("(\"") else {
                continue;
            };
            if !["get", "post", "put", "patch", "delete"].contains(&method) {
                continue;
            }
            let route = route.trim_end_matches("\")]");
            let root = route.starts_with("/webhooks")
                || route.starts_with("/oauth")
                || ["/healthz", "/readyz", "/metrics"].contains(&route);
            let path = if root {
                route.to_owned()
            } else {
                format!("/api/v1{route}")
            };
            assert!(
                paths.get(&path).is_some_and(|p| p.get(method).is_some()),
                "{} {path} is missing from the OpenAPI document",
                method.to_uppercase()
            );
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} routes found in the source");
    assert_eq!(
        paths
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum::<usize>(),
        checked,
        "the document and the source list the same operations"
    );
}
