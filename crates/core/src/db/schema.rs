// @generated automatically by Diesel CLI.

diesel::table! {
    api_keys (id) {
        id -> Uuid,
        organization_id -> Uuid,
        name -> Text,
        role -> Text,
        key_hash -> Text,
        key_prefix -> Text,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
        expires_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Int8,
        organization_id -> Nullable<Uuid>,
        actor_user_id -> Nullable<Uuid>,
        actor_api_key_id -> Nullable<Uuid>,
        action -> Text,
        target_type -> Nullable<Text>,
        target_id -> Nullable<Text>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        details -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    commerce_product_daily (organization_id, source, day, product_id, currency) {
        organization_id -> Uuid,
        source -> Text,
        day -> Date,
        product_id -> Text,
        currency -> Text,
        title -> Text,
        units_sold -> Int8,
        units_returned -> Int8,
        gross -> Numeric,
        discounts -> Numeric,
        returns -> Numeric,
    }
}

diesel::table! {
    fx_rates (id) {
        id -> Int8,
        organization_id -> Nullable<Uuid>,
        day -> Date,
        base -> Text,
        quote -> Text,
        rate -> Numeric,
        loaded_at -> Timestamptz,
    }
}

diesel::table! {
    integrations (id) {
        id -> Uuid,
        organization_id -> Uuid,
        provider -> Text,
        status -> Text,
        display_name -> Text,
        external_account_id -> Nullable<Text>,
        credentials -> Nullable<Text>,
        settings -> Jsonb,
        sync_state -> Jsonb,
        sync_interval_seconds -> Int4,
        next_sync_at -> Nullable<Timestamptz>,
        last_synced_at -> Nullable<Timestamptz>,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    invitations (id) {
        id -> Uuid,
        organization_id -> Uuid,
        email -> Text,
        role -> Text,
        token_hash -> Text,
        invited_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        accepted_at -> Nullable<Timestamptz>,
        accepted_by -> Nullable<Uuid>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    memberships (organization_id, user_id) {
        organization_id -> Uuid,
        user_id -> Uuid,
        role -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    metric_daily (organization_id, metric, day, dimension) {
        organization_id -> Uuid,
        metric -> Text,
        day -> Date,
        dimension -> Text,
        value -> Numeric,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    metric_dirty (organization_id) {
        organization_id -> Uuid,
        dirty_from -> Date,
        marked_at -> Timestamptz,
    }
}

diesel::table! {
    mfa_recovery_codes (id) {
        id -> Uuid,
        user_id -> Uuid,
        code_hash -> Text,
        used_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    oauth_states (id) {
        id -> Uuid,
        state_hash -> Text,
        provider -> Text,
        organization_id -> Uuid,
        user_id -> Nullable<Uuid>,
        context -> Jsonb,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    organizations (id) {
        id -> Uuid,
        name -> Text,
        timezone -> Text,
        reporting_currency -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        mrr_convention -> Jsonb,
        require_mfa -> Bool,
    }
}

diesel::table! {
    password_resets (id) {
        id -> Uuid,
        user_id -> Uuid,
        token_hash -> Text,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    scheduler_ticks (job, slot) {
        job -> Text,
        slot -> Timestamptz,
        claimed_by -> Text,
        claimed_at -> Timestamptz,
    }
}

diesel::table! {
    sessions (id) {
        id -> Uuid,
        user_id -> Uuid,
        token_hash -> Text,
        created_at -> Timestamptz,
        last_seen_at -> Timestamptz,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
    }
}

diesel::table! {
    shopify_data_requests (id) {
        id -> Uuid,
        organization_id -> Uuid,
        integration_id -> Uuid,
        shopify_request_id -> Nullable<Int8>,
        shopify_customer_id -> Int8,
        export -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    shopify_objects (integration_id, kind, shopify_id) {
        organization_id -> Uuid,
        integration_id -> Uuid,
        kind -> Text,
        shopify_id -> Int8,
        updated_at -> Timestamptz,
        processed_at -> Nullable<Timestamptz>,
        customer_id -> Nullable<Int8>,
        last_activity_at -> Nullable<Timestamptz>,
        redacted -> Bool,
        raw -> Jsonb,
        synced_at -> Timestamptz,
    }
}

diesel::table! {
    stripe_objects (integration_id, object_type, stripe_id) {
        organization_id -> Uuid,
        integration_id -> Uuid,
        object_type -> Text,
        stripe_id -> Text,
        customer -> Nullable<Text>,
        status -> Nullable<Text>,
        currency -> Nullable<Text>,
        amount -> Nullable<Int8>,
        created -> Timestamptz,
        deleted -> Bool,
        raw -> Jsonb,
        version -> Int8,
        synced_at -> Timestamptz,
    }
}

diesel::table! {
    sync_runs (id) {
        id -> Uuid,
        organization_id -> Uuid,
        integration_id -> Uuid,
        mode -> Text,
        trigger -> Text,
        status -> Text,
        progress -> Jsonb,
        checkpoint -> Jsonb,
        attempts -> Int4,
        max_attempts -> Int4,
        next_attempt_at -> Timestamptz,
        enqueued_at -> Nullable<Timestamptz>,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<Timestamptz>,
        error_code -> Nullable<Text>,
        error -> Nullable<Text>,
        created_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        email -> Text,
        name -> Text,
        password_hash -> Text,
        email_verified_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        totp_secret -> Nullable<Text>,
        totp_enabled_at -> Nullable<Timestamptz>,
        totp_last_step -> Int8,
    }
}

diesel::table! {
    webhook_events (id) {
        id -> Uuid,
        organization_id -> Uuid,
        integration_id -> Uuid,
        provider -> Text,
        external_id -> Text,
        event_type -> Text,
        payload -> Text,
        status -> Text,
        attempts -> Int4,
        enqueued_at -> Nullable<Timestamptz>,
        received_at -> Timestamptz,
        processed_at -> Nullable<Timestamptz>,
        error -> Nullable<Text>,
    }
}

diesel::joinable!(api_keys -> organizations (organization_id));
diesel::joinable!(api_keys -> users (created_by));
diesel::joinable!(commerce_product_daily -> organizations (organization_id));
diesel::joinable!(fx_rates -> organizations (organization_id));
diesel::joinable!(integrations -> organizations (organization_id));
diesel::joinable!(integrations -> users (created_by));
diesel::joinable!(invitations -> organizations (organization_id));
diesel::joinable!(memberships -> organizations (organization_id));
diesel::joinable!(memberships -> users (user_id));
diesel::joinable!(metric_daily -> organizations (organization_id));
diesel::joinable!(metric_dirty -> organizations (organization_id));
diesel::joinable!(mfa_recovery_codes -> users (user_id));
diesel::joinable!(oauth_states -> organizations (organization_id));
diesel::joinable!(oauth_states -> users (user_id));
diesel::joinable!(password_resets -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(shopify_data_requests -> integrations (integration_id));
diesel::joinable!(shopify_data_requests -> organizations (organization_id));
diesel::joinable!(shopify_objects -> integrations (integration_id));
diesel::joinable!(shopify_objects -> organizations (organization_id));
diesel::joinable!(stripe_objects -> integrations (integration_id));
diesel::joinable!(stripe_objects -> organizations (organization_id));
diesel::joinable!(sync_runs -> integrations (integration_id));
diesel::joinable!(sync_runs -> organizations (organization_id));
diesel::joinable!(webhook_events -> integrations (integration_id));
diesel::joinable!(webhook_events -> organizations (organization_id));

diesel::allow_tables_to_appear_in_same_query!(
    api_keys,
    audit_log,
    commerce_product_daily,
    fx_rates,
    integrations,
    invitations,
    memberships,
    metric_daily,
    metric_dirty,
    mfa_recovery_codes,
    oauth_states,
    organizations,
    password_resets,
    scheduler_ticks,
    sessions,
    shopify_data_requests,
    shopify_objects,
    stripe_objects,
    sync_runs,
    users,
    webhook_events,
);
