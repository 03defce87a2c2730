//! Tenant isolation, walked from the OpenAPI document rather than a hand-kept list: every
//! operation under `/api/v1/orgs/{org_id}` is called by another organisation's user and API key
//! with organisation A's ids, and must answer 404. Operations with a sub-resource are also called
//! in the intruder's own organisation with A's sub-resource ids, and must answer 404 too.
//! A new route with a path parameter this test has no fixture for fails the test until one is
//! added below.

use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};

use crate::helpers::{error_code, spawn_app};

/// A request body that passes deserialisation, built from the operation's schema, so that what
/// answers is the access check and not the body parser.
fn sample(schema: &Value, doc: &Value) -> Value {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap();
        return sample(&doc["components"]["schemas"][name], doc);
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(|e| e.as_array())
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let pick = options
                .iter()
                .find(|o| o.get("type") != Some(&json!("null")))
                .unwrap_or(&options[0]);
            return sample(pick, doc);
        }
    }
    let ty = match schema.get("type") {
        Some(Value::Array(types)) => types
            .iter()
            .find(|t| *t != "null")
            .cloned()
            .unwrap_or(Value::Null),
        Some(t) => t.clone(),
        None => Value::Null,
    };
    match ty.as_str() {
        Some("object") => {
            let mut out = Map::new();
            let props = schema.get("properties").cloned().unwrap_or(json!({}));
            for req in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = req.as_str().unwrap();
                out.insert(name.to_owned(), sample(&props[name], doc));
            }
            Value::Object(out)
        }
        Some("string") => json!("intruder@example.com"),
        Some("integer") | Some("number") => json!(1),
        Some("boolean") => json!(false),
        Some("array") => json!([]),
        _ => Value::Null,
    }
}

fn fill(path: &str, ids: &[(&str, String)]) -> String {
    let mut out = path.to_owned();
    for (param, value) in ids {
        out = out.replace(&format!("{{{param}}}"), value);
    }
    assert!(
        !out.contains('{'),
        "no fixture for a path parameter in {path}; add one to the isolation test"
    );
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_org_scoped_route_is_404_for_another_organisation() {
    let app = spawn_app().await;
    // Organisation A with one of everything.
    let alice = app.signup("alice@example.com", "A Corp").await;
    let bob = app.signup("bob@example.com", "Bob's own").await;
    app.add_member(&alice, alice.org_id, &bob, "member").await;
    let inv: Value = app
        .post(
            &format!("/api/v1/orgs/{}/invitations", alice.org_id),
            &alice.token,
            json!({ "email": "carol@example.com", "role": "viewer" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let key: Value = app
        .post(
            &format!("/api/v1/orgs/{}/api-keys", alice.org_id),
            &alice.token,
            json!({ "name": "A key", "role": "admin" }),
        )
        .await
        .json()
        .await
        .unwrap();
    // The intruder owns organisation B and has an admin key for it.
    let mallory = app.signup("mallory@example.com", "B Corp").await;
    let mallory_key: Value = app
        .post(
            &format!("/api/v1/orgs/{}/api-keys", mallory.org_id),
            &mallory.token,
            json!({ "name": "B key", "role": "admin" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let mallory_key = mallory_key["key"].as_str().unwrap().to_owned();

    let connected: Value = app
        .post(
            &format!("/api/v1/orgs/{}/integrations", alice.org_id),
            &alice.token,
            json!({ "provider": "stripe", "credentials": { "api_key": "sk_test_isolation_0000000001" } }),
        )
        .await
        .json()
        .await
        .unwrap();

    let a_resources = [
        (
            "integration_id",
            connected["id"].as_str().unwrap().to_owned(),
        ),
        (
            "sync_run_id",
            connected["sync_run_id"].as_str().unwrap().to_owned(),
        ),
        ("user_id", bob.user_id.to_string()),
        ("invitation_id", inv["id"].as_str().unwrap().to_owned()),
        ("key_id", key["id"].as_str().unwrap().to_owned()),
        // Not a resource of A's: a name every organisation shares.
        ("metric_key", "stripe_revenue".to_owned()),
    ];

    let doc: Value = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut walked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/api/v1/orgs/{org_id}") {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let body = op
                .get("requestBody")
                .map(|b| sample(&b["content"]["application/json"]["schema"], &doc));
            let has_sub_resource = path.matches('{').count() > 1 && !path.ends_with("{metric_key}");

            let mut in_a = vec![("org_id", alice.org_id.to_string())];
            in_a.extend(a_resources.iter().cloned());
            let url = fill(path, &in_a);
            for token in [&mallory.token, &mallory_key] {
                let res = app
                    .request(method.clone(), &url, Some(token), body.clone())
                    .await;
                let code = error_code(res, StatusCode::NOT_FOUND).await;
                assert_eq!(code, "not_found", "{method} {url}");
            }
            if has_sub_resource {
                let mut in_b = vec![("org_id", mallory.org_id.to_string())];
                in_b.extend(a_resources.iter().cloned());
                let url = fill(path, &in_b);
                let res = app
                    .request(method.clone(), &url, Some(&mallory.token), body.clone())
                    .await;
                assert_eq!(
                    error_code(res, StatusCode::NOT_FOUND).await,
                    "not_found",
                    "{method} {url} (own org, A's ids)"
                );
            }
            walked += 1;
        }
    }
    // organisation show/update/delete, members list/patch/delete, invitations list/create/delete,
    // api-keys list/create/delete, audit-log: at least these.
    assert!(walked >= 13, "walked only {walked} org-scoped operations");
    eprintln!("isolation: walked {walked} org-scoped operations");

    // And A's data is intact after all that.
    let members: Value = app
        .get(
            &format!("/api/v1/orgs/{}/members", alice.org_id),
            &alice.token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(members["data"].as_array().unwrap().len(), 2);
    let keys: Value = app
        .get(
            &format!("/api/v1/orgs/{}/api-keys", alice.org_id),
            &alice.token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(keys["data"].as_array().unwrap().len(), 1);
    let invs: Value = app
        .get(
            &format!("/api/v1/orgs/{}/invitations", alice.org_id),
            &alice.token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(invs["data"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn unauthenticated_calls_to_org_routes_are_401() {
    let app = spawn_app().await;
    let alice = app.signup("alice@example.com", "A Corp").await;
    let doc: Value = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/api/v1/orgs") {
            continue;
        }
        for (method, _) in item.as_object().unwrap() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let url = path
                .replace("{org_id}", &alice.org_id.to_string())
                .replace("{user_id}", &alice.user_id.to_string())
                .replace("{invitation_id}", &uuid::Uuid::new_v4().to_string())
                .replace("{key_id}", &uuid::Uuid::new_v4().to_string())
                .replace("{integration_id}", &uuid::Uuid::new_v4().to_string())
                .replace("{sync_run_id}", &uuid::Uuid::new_v4().to_string())
                .replace("{metric_key}", "stripe_revenue");
            let res = app
                .request(method.clone(), &url, None, Some(json!({})))
                .await;
            assert_eq!(
                error_code(res, StatusCode::UNAUTHORIZED).await,
                "unauthenticated",
                "{method} {url}"
            );
            let res = app
                .request(
                    method.clone(),
                    &url,
                    Some("bis_not_a_real_token"),
                    Some(json!({})),
                )
                .await;
            assert_eq!(
                error_code(res, StatusCode::UNAUTHORIZED).await,
                "unauthenticated",
                "{method} {url}"
            );
        }
    }
}
