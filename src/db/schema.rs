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

diesel::joinable!(api_tokens -> workspaces (workspace_id));
diesel::joinable!(contacts -> workspaces (workspace_id));
diesel::joinable!(suppressions -> workspaces (workspace_id));
diesel::joinable!(consent_texts -> workspaces (workspace_id));

diesel::allow_tables_to_appear_in_same_query!(
    workspaces,
    api_tokens,
    contacts,
    suppressions,
    consent_texts,
    signing_keys,
);
