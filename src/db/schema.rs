//! Table definitions shared by both backends (only portable types: Text, Integer, BigInt, Bool,
//! Timestamp). Kept by hand in step with `migrations/sqlite` and `migrations/postgres`.

diesel::table! {
    workspaces (id) {
        id -> Text,
        name -> Text,
        from_address -> Text,
        country -> Text,
        locale -> Text,
        allowed_countries -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    activity (id) {
        id -> Text,
        workspace_id -> Text,
        at -> Timestamp,
        actor -> Text,
        action -> Text,
        subject -> Nullable<Text>,
        detail -> Text,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Text,
        workspace_id -> Text,
        token_sha256 -> Text,
        label -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    contacts (id) {
        id -> Text,
        workspace_id -> Text,
        email -> Text,
        email_normalized -> Text,
        first_name -> Nullable<Text>,
        last_name -> Nullable<Text>,
        locale -> Nullable<Text>,
        external_id -> Nullable<Text>,
        email_consent_at -> Nullable<Timestamp>,
        email_consent_source -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    suppressions (id) {
        id -> Text,
        workspace_id -> Text,
        channel -> Text,
        address -> Text,
        reason -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    consent_texts (id) {
        id -> Text,
        workspace_id -> Text,
        locale -> Text,
        version -> Integer,
        company_name -> Text,
        body -> Text,
        categories -> Text,
        privacy_url -> Text,
        rendered -> Text,
        sha256 -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        secret -> Text,
        created_at -> Timestamp,
        retired_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    campaigns (id) {
        id -> Text,
        workspace_id -> Text,
        name -> Text,
        consent_text_id -> Text,
        subject -> Text,
        intro -> Text,
        frequency -> Nullable<Text>,
        audience_locales -> Text,
        status -> Text,
        created_at -> Timestamp,
        send_requested_at -> Nullable<Timestamp>,
        expanded_at -> Nullable<Timestamp>,
        scheduled_at -> Nullable<Timestamp>,
        definition -> Nullable<Text>,
        parent_campaign_id -> Nullable<Text>,
        audience -> Nullable<Text>,
    }
}

diesel::table! {
    campaign_locales (campaign_id, locale) {
        campaign_id -> Text,
        locale -> Text,
        consent_text_id -> Text,
        subject -> Text,
        intro -> Text,
        frequency -> Nullable<Text>,
    }
}

diesel::table! {
    campaign_variant_locales (campaign_id, variant, locale) {
        campaign_id -> Text,
        variant -> Text,
        locale -> Text,
        subject -> Text,
        intro -> Text,
    }
}

diesel::table! {
    campaign_test_sends (id) {
        id -> Text,
        campaign_id -> Text,
        email -> Text,
        locale -> Text,
        variant -> Text,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
    }
}

diesel::table! {
    campaign_variants (campaign_id, name) {
        campaign_id -> Text,
        name -> Text,
        subject -> Text,
        intro -> Text,
        weight -> Integer,
    }
}

diesel::table! {
    invitations (id) {
        id -> Text,
        workspace_id -> Text,
        campaign_id -> Text,
        contact_id -> Text,
        variant -> Text,
        locale -> Text,
        email -> Text,
        status -> Text,
        message_id -> Nullable<Text>,
        attempts -> Integer,
        last_error -> Nullable<Text>,
        queued_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
        bounced_at -> Nullable<Timestamp>,
        opened_at -> Nullable<Timestamp>,
        human_opened_at -> Nullable<Timestamp>,
        open_count -> Integer,
        clicked_at -> Nullable<Timestamp>,
        click_count -> Integer,
        submitted_at -> Nullable<Timestamp>,
        confirmed_at -> Nullable<Timestamp>,
        opted_out_at -> Nullable<Timestamp>,
        unsubscribed_at -> Nullable<Timestamp>,
        bounce_token -> Nullable<Text>,
    }
}

diesel::table! {
    outbox_jobs (id) {
        id -> Text,
        workspace_id -> Nullable<Text>,
        kind -> Text,
        ref_id -> Text,
        cursor -> Nullable<Text>,
        attempts -> Integer,
        run_after -> Timestamp,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        payload -> Nullable<Text>,
        scope -> Nullable<Text>,
    }
}

diesel::table! {
    funnel_events (id) {
        id -> Text,
        workspace_id -> Text,
        campaign_id -> Text,
        invitation_id -> Text,
        kind -> Text,
        at -> Timestamp,
        human -> Nullable<Bool>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        detail -> Nullable<Text>,
    }
}

diesel::table! {
    funnel_counts (campaign_id, variant, locale, metric, hour) {
        campaign_id -> Text,
        variant -> Text,
        locale -> Text,
        metric -> Text,
        hour -> Timestamp,
        count -> BigInt,
    }
}

diesel::table! {
    dev_messages (id) {
        id -> Text,
        workspace_id -> Nullable<Text>,
        channel -> Text,
        direction -> Text,
        sender -> Text,
        recipient -> Text,
        subject -> Nullable<Text>,
        body_text -> Text,
        body_html -> Nullable<Text>,
        raw -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    consent_requests (id) {
        id -> Text,
        workspace_id -> Text,
        contact_id -> Text,
        invitation_id -> Nullable<Text>,
        campaign_id -> Nullable<Text>,
        variant -> Nullable<Text>,
        locale -> Text,
        phone -> Text,
        country -> Text,
        consent_text_id -> Text,
        consent_text_sha256 -> Text,
        categories -> Text,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        token_jti -> Nullable<Text>,
        code_hash -> Text,
        code_attempts -> Integer,
        status -> Text,
        sms_sent -> Integer,
        last_sms_at -> Nullable<Timestamp>,
        hint_sent -> Bool,
        submitted_at -> Timestamp,
        expires_at -> Timestamp,
        confirmed_at -> Nullable<Timestamp>,
        confirmed_via -> Nullable<Text>,
        closed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sms_subscriptions (id) {
        id -> Text,
        workspace_id -> Text,
        contact_id -> Text,
        phone -> Text,
        status -> Text,
        consent_request_id -> Text,
        categories -> Text,
        confirmed_at -> Timestamp,
        withdrawn_at -> Nullable<Timestamp>,
        withdrawn_via -> Nullable<Text>,
        last_used_at -> Timestamp,
    }
}

diesel::table! {
    consent_ledger (id) {
        id -> Text,
        workspace_id -> Text,
        seq -> BigInt,
        contact_id -> Nullable<Text>,
        kind -> Text,
        at -> Timestamp,
        payload -> Nullable<Text>,
        payload_hash -> Text,
        prev_hash -> Text,
        hash -> Text,
        redacted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sms_messages (id) {
        id -> Text,
        workspace_id -> Text,
        consent_request_id -> Nullable<Text>,
        kind -> Text,
        phone -> Text,
        country -> Text,
        body -> Text,
        status -> Text,
        provider_sid -> Nullable<Text>,
        error -> Nullable<Text>,
        attempts -> Integer,
        not_before -> Timestamp,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
        status_at -> Nullable<Timestamp>,
        doi_code -> Nullable<Text>,
        provider -> Nullable<Text>,
    }
}

diesel::table! {
    inbound_messages (id) {
        id -> Text,
        message_sid -> Text,
        phone -> Text,
        to_number -> Text,
        body -> Text,
        received_at -> Timestamp,
        processed_at -> Nullable<Timestamp>,
        outcome -> Nullable<Text>,
        provider -> Nullable<Text>,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        workspace_id -> Text,
        email -> Text,
        password_hash -> Text,
        failed_logins -> Integer,
        locked_until -> Nullable<Timestamp>,
        created_at -> Timestamp,
        last_login_at -> Nullable<Timestamp>,
        role -> Text,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        token_sha256 -> Text,
        user_id -> Text,
        csrf -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    esp_webhook_tokens (token) {
        token -> Text,
        body_sha256 -> Text,
        received_at -> Timestamp,
    }
}

diesel::table! {
    login_attempts (id) {
        id -> Text,
        client -> Text,
        at -> Timestamp,
    }
}

diesel::table! {
    landing_views (id) {
        id -> Text,
        workspace_id -> Text,
        invitation_id -> Text,
        campaign_id -> Text,
        consent_text_id -> Text,
        consent_text_sha256 -> Text,
        locale -> Text,
        link_jti -> Text,
        tap_number -> Text,
        tap_code_hash -> Text,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        shown_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        used_message_sid -> Nullable<Text>,
        consent_request_id -> Nullable<Text>,
        reply_sent -> Bool,
    }
}

diesel::table! {
    doi_reminders (invitation_id) {
        invitation_id -> Text,
        workspace_id -> Text,
        campaign_id -> Text,
        consent_request_id -> Text,
        status -> Text,
        message_id -> Text,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    user_invites (id) {
        id -> Text,
        workspace_id -> Text,
        email -> Text,
        role -> Text,
        locale -> Text,
        invited_by -> Text,
        token_sha256 -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    webhook_endpoints (id) {
        id -> Text,
        workspace_id -> Text,
        url -> Text,
        events -> Text,
        secret -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Text,
        workspace_id -> Text,
        endpoint_id -> Text,
        event_type -> Text,
        body -> Text,
        status -> Text,
        attempts -> Integer,
        last_error -> Nullable<Text>,
        response_status -> Nullable<Integer>,
        created_at -> Timestamp,
        last_attempt_at -> Nullable<Timestamp>,
        delivered_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(api_tokens -> workspaces (workspace_id));
diesel::joinable!(user_invites -> workspaces (workspace_id));
diesel::joinable!(users -> workspaces (workspace_id));
diesel::joinable!(activity -> workspaces (workspace_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(contacts -> workspaces (workspace_id));
diesel::joinable!(suppressions -> workspaces (workspace_id));
diesel::joinable!(consent_texts -> workspaces (workspace_id));
diesel::joinable!(campaigns -> workspaces (workspace_id));
diesel::joinable!(campaigns -> consent_texts (consent_text_id));
diesel::joinable!(campaign_variants -> campaigns (campaign_id));
diesel::joinable!(invitations -> campaigns (campaign_id));
diesel::joinable!(invitations -> contacts (contact_id));
diesel::joinable!(consent_requests -> contacts (contact_id));
diesel::joinable!(consent_requests -> consent_texts (consent_text_id));
diesel::joinable!(sms_subscriptions -> consent_requests (consent_request_id));
diesel::joinable!(sms_messages -> consent_requests (consent_request_id));
diesel::joinable!(webhook_deliveries -> webhook_endpoints (endpoint_id));
diesel::joinable!(campaign_locales -> campaigns (campaign_id));
diesel::joinable!(campaign_locales -> consent_texts (consent_text_id));
diesel::joinable!(campaign_variant_locales -> campaigns (campaign_id));
diesel::joinable!(campaign_test_sends -> campaigns (campaign_id));

diesel::allow_tables_to_appear_in_same_query!(
    workspaces,
    user_invites,
    api_tokens,
    contacts,
    suppressions,
    consent_texts,
    signing_keys,
    campaigns,
    campaign_variants,
    invitations,
    outbox_jobs,
    funnel_events,
    funnel_counts,
    dev_messages,
    consent_requests,
    sms_subscriptions,
    consent_ledger,
    sms_messages,
    inbound_messages,
    users,
    sessions,
    login_attempts,
    webhook_endpoints,
    webhook_deliveries,
    campaign_locales,
    campaign_variant_locales,
    campaign_test_sends,
    landing_views,
    doi_reminders,
    activity,
);

diesel::table! {
    import_jobs (id) {
        id -> Text,
        workspace_id -> Text,
        status -> Text,
        file_name -> Text,
        spool_path -> Text,
        bytes -> BigInt,
        format -> Nullable<Text>,
        header -> Nullable<Text>,
        records -> BigInt,
        imported -> BigInt,
        updated -> BigInt,
        refused -> BigInt,
        error -> Nullable<Text>,
        problem -> Nullable<Text>,
        created_by -> Text,
        created_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    import_refusals (id) {
        id -> Text,
        job_id -> Text,
        line -> BigInt,
        cells -> Text,
        reason -> Text,
        problem -> Nullable<Text>,
    }
}
