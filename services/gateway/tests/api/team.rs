//! Roles, invitations and the rules that keep an organisation governable.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app};

#[tokio::test(flavor = "multi_thread")]
async fn an_invitation_adds_the_membership_once() {
    let app = spawn_app().await;
    let owner = app.signup("owner@example.com", "Team Co").await;
    let carol = app.signup("carol@example.com", "Carol's own").await;
    let org = owner.org_id;

    let res = app
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            &owner.token,
            json!({ "email": "Carol@Example.com", "role": "member" }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let inv: Value = res.json().await.unwrap();
    let token = inv["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("bii_"));
    assert_eq!(inv["email"], "carol@example.com");
    assert!(inv["accept_url"].as_str().unwrap().contains(&token));

    // A second open invitation for the same address: 409.
    let res = app
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            &owner.token,
            json!({ "email": "carol@example.com", "role": "viewer" }),
        )
        .await;
    assert_eq!(
        error_code(res, StatusCode::CONFLICT).await,
        "invitation_exists"
    );

    // Someone else cannot use Carol's invitation.
    let dave = app.signup("dave@example.com", "Dave's own").await;
    let res = app
        .post(
            "/api/v1/invitations/accept",
            &dave.token,
            json!({ "token": token }),
        )
        .await;
    assert_eq!(
        error_code(res, StatusCode::FORBIDDEN).await,
        "invitation_email_mismatch"
    );

    // Carol accepts: she is now a member, and sees both organisations.
    let res = app
        .post(
            "/api/v1/invitations/accept",
            &carol.token,
            json!({ "token": token }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let joined: Value = res.json().await.unwrap();
    assert_eq!(joined["id"], org.to_string());
    assert_eq!(joined["role"], "member");
    let members: Value = app
        .get(&format!("/api/v1/orgs/{org}/members"), &owner.token)
        .await
        .json()
        .await
        .unwrap();
    let roles: Vec<(String, String)> = members["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["email"].as_str().unwrap().to_owned(),
                m["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        vec![
            ("owner@example.com".into(), "owner".into()),
            ("carol@example.com".into(), "member".into())
        ]
    );
    let me: Value = app
        .get("/api/v1/me", &carol.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["organizations"].as_array().unwrap().len(), 2);

    // The token is spent.
    let res = app
        .post(
            "/api/v1/invitations/accept",
            &carol.token,
            json!({ "token": token }),
        )
        .await;
    assert_eq!(error_code(res, StatusCode::NOT_FOUND).await, "not_found");
    // And no open invitations remain.
    let open: Value = app
        .get(&format!("/api/v1/orgs/{org}/invitations"), &owner.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(open["data"].as_array().unwrap().len(), 0);
    // Inviting an existing member: 409.
    let res = app
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            &owner.token,
            json!({ "email": "carol@example.com", "role": "viewer" }),
        )
        .await;
    assert_eq!(
        error_code(res, StatusCode::CONFLICT).await,
        "already_member"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_and_revoked_invitations_cannot_be_accepted() {
    use diesel_async::RunQueryDsl;
    let app = spawn_app().await;
    let owner = app.signup("owner@example.com", "Team Co").await;
    let erin = app.signup("erin@example.com", "Erin's own").await;
    let org = owner.org_id;
    let inv: Value = app
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            &owner.token,
            json!({ "email": "erin@example.com", "role": "viewer" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let mut conn = biz_core::db::conn(&app.pool).await.unwrap();
    diesel::sql_query("UPDATE invitations SET expires_at = now() - interval '1 minute'")
        .execute(&mut conn)
        .await
        .unwrap();
    let res = app
        .post(
            "/api/v1/invitations/accept",
            &erin.token,
            json!({ "token": inv["token"] }),
        )
        .await;
    assert_eq!(
        error_code(res, StatusCode::GONE).await,
        "invitation_expired"
    );

    // Revoke it, invite again, revoke that one: its token no longer works.
    let res = app
        .delete(
            &format!(
                "/api/v1/orgs/{org}/invitations/{}",
                inv["id"].as_str().unwrap()
            ),
            &owner.token,
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let inv2: Value = app
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            &owner.token,
            json!({ "email": "erin@example.com", "role": "viewer" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let res = app
        .delete(
            &format!(
                "/api/v1/orgs/{org}/invitations/{}",
                inv2["id"].as_str().unwrap()
            ),
            &owner.token,
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app
        .post(
            "/api/v1/invitations/accept",
            &erin.token,
            json!({ "token": inv2["token"] }),
        )
        .await;
    assert_eq!(error_code(res, StatusCode::NOT_FOUND).await, "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn role_rules_viewer_cannot_invite_admin_cannot_delete_last_owner_stays() {
    let app = spawn_app().await;
    let owner = app.signup("owner@example.com", "Rules Co").await;
    let admin = app.signup("admin@example.com", "a").await;
    let member = app.signup("member@example.com", "m").await;
    let viewer = app.signup("viewer@example.com", "v").await;
    let org = owner.org_id;
    app.add_member(&owner, org, &admin, "admin").await;
    app.add_member(&owner, org, &member, "member").await;
    app.add_member(&owner, org, &viewer, "viewer").await;

    // A viewer cannot invite, nor can a member.
    for who in [&viewer, &member] {
        let res = app
            .post(
                &format!("/api/v1/orgs/{org}/invitations"),
                &who.token,
                json!({ "email": "x@example.com", "role": "viewer" }),
            )
            .await;
        assert_eq!(
            error_code(res, StatusCode::FORBIDDEN).await,
            "insufficient_role"
        );
    }
    // But a viewer reads the team.
    assert_eq!(
        app.get(&format!("/api/v1/orgs/{org}/members"), &viewer.token)
            .await
            .status(),
        StatusCode::OK
    );

    // An admin cannot delete the organisation, nor grant or touch ownership.
    let res = app
        .delete(&format!("/api/v1/orgs/{org}"), &admin.token)
        .await;
    assert_eq!(
        error_code(res, StatusCode::FORBIDDEN).await,
        "insufficient_role"
    );
    let res = app
        .patch(
            &format!("/api/v1/orgs/{org}/members/{}", member.user_id),
            &admin.token,
            json!({ "role": "owner" }),
        )
        .await;
    assert_eq!(
        error_code(res, StatusCode::FORBIDDEN).await,
        "insufficient_role"
    );
    let res = app
        .delete(
            &format!("/api/v1/orgs/{org}/members/{}", owner.user_id),
            &admin.token,
        )
        .await;
    assert_eq!(
        error_code(res, StatusCode::FORBIDDEN).await,
        "insufficient_role"
    );
    let res = app
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            &admin.token,
            json!({ "email": "o2@example.com", "role": "owner" }),
        )
        .await;
    assert_eq!(
        error_code(res, StatusCode::FORBIDDEN).await,
        "insufficient_role"
    );
    // An admin manages those below owner.
    let res = app
        .patch(
            &format!("/api/v1/orgs/{org}/members/{}", member.user_id),
            &admin.token,
            json!({ "role": "viewer" }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["role"], "viewer");

    // The last owner can be neither demoted nor removed, not even by themselves.
    let res = app
        .patch(
            &format!("/api/v1/orgs/{org}/members/{}", owner.user_id),
            &owner.token,
            json!({ "role": "admin" }),
        )
        .await;
    assert_eq!(error_code(res, StatusCode::CONFLICT).await, "last_owner");
    let res = app
        .delete(
            &format!("/api/v1/orgs/{org}/members/{}", owner.user_id),
            &owner.token,
        )
        .await;
    assert_eq!(error_code(res, StatusCode::CONFLICT).await, "last_owner");

    // With a second owner, the first may step down.
    let res = app
        .patch(
            &format!("/api/v1/orgs/{org}/members/{}", admin.user_id),
            &owner.token,
            json!({ "role": "owner" }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app
        .delete(
            &format!("/api/v1/orgs/{org}/members/{}", owner.user_id),
            &owner.token,
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // The former owner is now outside: 404, not 403.
    let res = app.get(&format!("/api/v1/orgs/{org}"), &owner.token).await;
    assert_eq!(error_code(res, StatusCode::NOT_FOUND).await, "not_found");

    // A viewer may leave on their own.
    let res = app
        .delete(
            &format!("/api/v1/orgs/{org}/members/{}", viewer.user_id),
            &viewer.token,
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);

    // The new owner deletes the organisation; it is gone for everyone.
    let res = app
        .delete(&format!("/api/v1/orgs/{org}"), &admin.token)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app.get(&format!("/api/v1/orgs/{org}"), &admin.token).await;
    assert_eq!(error_code(res, StatusCode::NOT_FOUND).await, "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_log_records_team_actions_and_cannot_be_changed() {
    use diesel_async::RunQueryDsl;
    let app = spawn_app().await;
    let owner = app.signup("owner@example.com", "Audit Co").await;
    let frank = app.signup("frank@example.com", "f").await;
    let org = owner.org_id;
    app.add_member(&owner, org, &frank, "member").await;
    app.patch(
        &format!("/api/v1/orgs/{org}/members/{}", frank.user_id),
        &owner.token,
        json!({ "role": "viewer" }),
    )
    .await;
    let key: Value = app
        .post(
            &format!("/api/v1/orgs/{org}/api-keys"),
            &owner.token,
            json!({ "name": "k" }),
        )
        .await
        .json()
        .await
        .unwrap();
    app.delete(
        &format!(
            "/api/v1/orgs/{org}/api-keys/{}",
            key["id"].as_str().unwrap()
        ),
        &owner.token,
    )
    .await;

    let log: Value = app
        .get(&format!("/api/v1/orgs/{org}/audit-log"), &owner.token)
        .await
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec![
            "api_key.revoke",
            "api_key.create",
            "member.role_change",
            "invitation.accept",
            "invitation.create",
            "user.signup"
        ]
    );
    // Paged: two at a time, following the cursor.
    let page: Value = app
        .get(
            &format!("/api/v1/orgs/{org}/audit-log?limit=2"),
            &owner.token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let page2: Value = app
        .get(
            &format!("/api/v1/orgs/{org}/audit-log?limit=2&cursor={cursor}"),
            &owner.token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page2["data"][0]["action"], "member.role_change");
    let filtered: Value = app
        .get(
            &format!("/api/v1/orgs/{org}/audit-log?action=api_key.create"),
            &owner.token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(filtered["data"].as_array().unwrap().len(), 1);
    // Viewers cannot read it.
    let res = app
        .get(&format!("/api/v1/orgs/{org}/audit-log"), &frank.token)
        .await;
    assert_eq!(
        error_code(res, StatusCode::FORBIDDEN).await,
        "insufficient_role"
    );

    // The database itself refuses to change or delete entries.
    let mut conn = biz_core::db::conn(&app.pool).await.unwrap();
    for sql in [
        "UPDATE audit_log SET action = 'x'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ] {
        let err = diesel::sql_query(sql).execute(&mut conn).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
}
