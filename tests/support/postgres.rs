//! A PostgreSQL database of a test's own, on the server `MINDSHOP_TEST_POSTGRES_URL` names;
//! tests that need one are `#[ignore = "needs MINDSHOP_TEST_POSTGRES_URL"]`.

use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// A database of this test's own, dropped by [`FreshDatabase::drop_now`].
pub struct FreshDatabase {
    admin_url: String,
    name: String,
    /// The URL of the new database, for `MINDSHOP_DATABASE_URL` or `database.url`.
    pub url: String,
}

impl FreshDatabase {
    pub async fn create() -> Self {
        let admin_url = std::env::var("MINDSHOP_TEST_POSTGRES_URL").expect(
            "MINDSHOP_TEST_POSTGRES_URL is not set, e.g. postgres://postgres@127.0.0.1:5432/test",
        );
        let name = format!("mindshop_e2e_{}", uuid_like());
        let mut connection = PgConnection::connect(&admin_url)
            .await
            .expect("connect to MINDSHOP_TEST_POSTGRES_URL");
        // The name is ours: letters, digits and `_` only.
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut connection)
            .await
            .expect("create the test database");
        // Same server and credentials, other database: replace the path of the URL.
        let (base, query) = admin_url
            .split_once('?')
            .map_or((admin_url.as_str(), None), |(b, q)| (b, Some(q)));
        let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
        let url = match query {
            Some(query) => format!("{server}/{name}?{query}"),
            None => format!("{server}/{name}"),
        };
        Self {
            admin_url,
            name,
            url,
        }
    }

    pub async fn drop_now(self) {
        if let Ok(mut connection) = PgConnection::connect(&self.admin_url).await {
            let _ = sqlx::query(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .execute(&mut connection)
            .await;
        }
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};
    // Two databases of one test process in the same nanosecond still differ.
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{nanos:x}_{}_{n}", std::process::id())
}
