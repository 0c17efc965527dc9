//! Enums stored as fixed strings in TEXT columns (statuses, kinds, channels), the same on both
//! backends: `db_enum!` gives a Rust enum the diesel mapping, so queries compare with a variant
//! and a misspelt status does not compile.

/// A value in a TEXT column that is none of its enum's strings (a row written by hand or by a
/// newer version): a clear query error, never a panic.
#[derive(Debug, thiserror::Error)]
#[error("unknown {type_name} in the database: {value:?}")]
pub struct UnknownValue {
    pub type_name: &'static str,
    pub value: String,
}

/// Declares an enum whose variants are stored as the given strings in a `Text` column:
/// `ToSql`/`FromSql` for every backend (SQLite, PostgreSQL and the `DbConn` multi-backend, which
/// all store `str`), `as_str`, `parse`, `ALL`, `Display` and `Serialize` (as the string).
///
/// ```ignore
/// db_enum! {
///     /// Where an invitation is in its life.
///     pub enum InvitationStatus {
///         Queued = "queued",
///         Sent = "sent",
///     }
/// }
/// ```
macro_rules! db_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, diesel::expression::AsExpression, diesel::deserialize::FromSqlRow)]
        #[diesel(sql_type = diesel::sql_types::Text)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The string stored in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }

            /// The variant stored as `raw`, if any.
            pub fn parse(raw: &str) -> Option<Self> {
                match raw {
                    $($text => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<DB> diesel::serialize::ToSql<diesel::sql_types::Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut diesel::serialize::Output<'b, '_, DB>) -> diesel::serialize::Result {
                <str as diesel::serialize::ToSql<diesel::sql_types::Text, DB>>::to_sql(self.as_str(), out)
            }
        }

        impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
                let raw = <String as diesel::deserialize::FromSql<diesel::sql_types::Text, DB>>::from_sql(bytes)?;
                Self::parse(&raw).ok_or_else(|| {
                    Box::new($crate::db::text_enum::UnknownValue {
                        type_name: stringify!($name),
                        value: raw,
                    }) as Box<dyn std::error::Error + Send + Sync>
                })
            }
        }
    };
}

pub(crate) use db_enum;

#[cfg(test)]
mod tests {
    use diesel::prelude::*;

    use crate::accounts::Role;
    use crate::activity::Action;
    use crate::campaigns::{CampaignStatus, InvitationStatus};
    use crate::consent::doi::{ConfirmedVia, ConsentRequestStatus};
    use crate::consent::ledger::LedgerKind;
    use crate::consent::{SubscriptionStatus, WithdrawnVia};
    use crate::db::{DbConn, on_each_backend};
    use crate::domain::{Channel, Direction};
    use crate::funnel::{EventKind, Metric};
    use crate::sms::outbound::{SmsKind, SmsStatus};

    diesel::table! {
        enum_round_trip (id) {
            id -> Integer,
            value -> Text,
        }
    }

    fn create_table(conn: &mut DbConn) {
        diesel::sql_query("CREATE TEMPORARY TABLE enum_round_trip (id INTEGER PRIMARY KEY, value TEXT NOT NULL)")
            .execute(conn)
            .expect("create table");
    }

    fn clear(conn: &mut DbConn) {
        diesel::delete(enum_round_trip::table).execute(conn).expect("clear");
    }

    /// Writes and reads every variant of each enum: through `DbConn` (the multi-backend every
    /// portable query uses) and through the backend connection inside it (batch inserts, COPY).
    macro_rules! round_trip {
        ($conn:expr, $($enum:ty),+ $(,)?) => {$(
            for (n, &variant) in <$enum>::ALL.iter().enumerate() {
                clear($conn);
                diesel::insert_into(enum_round_trip::table)
                    .values((enum_round_trip::id.eq(n as i32), enum_round_trip::value.eq(variant)))
                    .execute($conn)
                    .expect("insert");
                let read: $enum = enum_round_trip::table
                    .filter(enum_round_trip::value.eq(variant))
                    .select(enum_round_trip::value)
                    .first($conn)
                    .expect("read as the enum");
                assert_eq!(read, variant);
                let stored: String = enum_round_trip::table.select(enum_round_trip::value).first($conn).expect("read as text");
                assert_eq!(stored, variant.as_str(), "stored text of {variant:?}");
                assert_eq!(<$enum>::parse(&stored), Some(variant));
            }
            clear($conn);
            let rows: Vec<_> = <$enum>::ALL
                .iter()
                .enumerate()
                .map(|(n, v)| (enum_round_trip::id.eq(n as i32), enum_round_trip::value.eq(*v)))
                .collect();
            on_each_backend!(&mut *$conn, |c| diesel::insert_into(enum_round_trip::table).values(&rows).execute(c))
                .expect("batch insert");
            let read: Vec<$enum> = on_each_backend!(&mut *$conn, |c| enum_round_trip::table
                .order(enum_round_trip::id.asc())
                .select(enum_round_trip::value)
                .load(c))
            .expect("read on the backend connection");
            assert_eq!(read, <$enum>::ALL);
        )+};
    }

    fn check(conn: &mut DbConn) {
        create_table(conn);
        round_trip!(
            conn,
            Channel,
            Direction,
            CampaignStatus,
            InvitationStatus,
            ConsentRequestStatus,
            ConfirmedVia,
            SubscriptionStatus,
            WithdrawnVia,
            SmsKind,
            SmsStatus,
            LedgerKind,
            EventKind,
            Metric,
            Role,
            Action,
        );

        // A string no variant stores is a query error that names the type and the value.
        clear(conn);
        diesel::insert_into(enum_round_trip::table)
            .values((enum_round_trip::id.eq(1), enum_round_trip::value.eq("queud")))
            .execute(conn)
            .expect("insert");
        let read: Result<InvitationStatus, _> = enum_round_trip::table.select(enum_round_trip::value).first(conn);
        match read {
            Err(diesel::result::Error::DeserializationError(e)) => {
                // diesel wraps it in the name of the field it was reading.
                let mut chain = vec![e.to_string()];
                let mut source = e.source();
                while let Some(inner) = source {
                    chain.push(inner.to_string());
                    source = inner.source();
                }
                assert!(
                    chain
                        .iter()
                        .any(|m| m == r#"unknown InvitationStatus in the database: "queud""#),
                    "{chain:?}"
                );
            }
            other => panic!("expected a deserialization error, got {other:?}"),
        }
        let read: Result<Vec<SmsStatus>, _> = on_each_backend!(&mut *conn, |c| enum_round_trip::table
            .select(enum_round_trip::value)
            .load(c));
        assert!(
            matches!(read, Err(diesel::result::Error::DeserializationError(_))),
            "{read:?}"
        );
    }

    #[test]
    fn every_variant_round_trips_on_sqlite() {
        let mut conn = DbConn::Sqlite(diesel::SqliteConnection::establish(":memory:").expect("in-memory SQLite"));
        check(&mut conn);
    }

    #[test]
    fn every_variant_round_trips_on_postgres() {
        let url =
            std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let required = std::env::var("CI").is_ok_and(|v| v == "true")
            || std::env::var("OPTBRIDGE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
        let pg = match diesel::PgConnection::establish(&url) {
            Ok(pg) => pg,
            Err(e) if required => panic!("PostgreSQL is required for this run but {url} is not reachable: {e}"),
            Err(e) => {
                eprintln!("note: skipping the PostgreSQL round trip, {url} is not reachable: {e}");
                return;
            }
        };
        // A temporary table: this session's own, gone when the connection closes.
        check(&mut DbConn::Pg(pg));
    }

    #[test]
    fn display_pads_like_a_str() {
        assert_eq!(format!("[{:<8}]", CampaignStatus::Draft), "[draft   ]");
        assert_eq!(
            serde_json::to_string(&ConsentRequestStatus::Cancelled).ok().as_deref(),
            Some(r#""cancelled""#)
        );
    }
}
