//! The same binary on PostgreSQL: `serve`, readiness and the admin commands against a fresh
//! database. Ignored unless `MINDSHOP_TEST_POSTGRES_URL` names a server to create it on.

mod support;

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use support::{Launch, Reply, client};

/// A database of this test's own, dropped when the test ends.
struct FreshDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl FreshDatabase {
    async fn create() -> Self {
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

    async fn drop_now(self) {
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
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}_{}", std::process::id())
}

#[tokio::test]
#[ignore = "needs MINDSHOP_TEST_POSTGRES_URL"]
async fn serve_and_admin_run_on_postgresql() {
    let database = FreshDatabase::create().await;
    let server = Launch::serve()
        .env("MINDSHOP_DATABASE_URL", &database.url)
        .start()
        .await;

    let ready = Reply::of(client().get(server.url("/ready"))).await;
    let data = ready.success(200);
    assert_eq!(data["checks"]["database"], "up", "{ready:?}");

    let env = [("MINDSHOP_DATABASE_URL", database.url.as_str())];
    let workdir = server.workdir();
    let merchant = workdir
        .run(
            &[
                "admin", "merchant", "create", "--id", "pgshop", "--name", "PG Shop",
            ],
            &env,
        )
        .json();
    assert_eq!(merchant["id"], "pgshop");
    let key = workdir
        .run(
            &[
                "admin",
                "key",
                "create",
                "--merchant",
                "pgshop",
                "--kind",
                "secret",
            ],
            &env,
        )
        .json();
    let plaintext = key["key"].as_str().expect("the key is shown once");
    assert!(plaintext.starts_with("sk_test_"));

    // The database holds the key's SHA-256 and prefix, never the key.
    let mut connection = PgConnection::connect(&database.url)
        .await
        .expect("connect to the test database");
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT prefix, key_hash, row_to_json(api_keys)::text FROM api_keys")
            .fetch_all(&mut connection)
            .await
            .expect("read the keys");
    assert_eq!(rows.len(), 1);
    let (prefix, hash, whole_row) = &rows[0];
    assert_eq!(*hash, mindshop_wire::api_key::hash(plaintext));
    assert!(plaintext.starts_with(prefix.as_str()));
    assert!(!whole_row.contains(plaintext), "{whole_row}");
    connection.close().await.ok();

    let listed = workdir.run(&["admin", "merchant", "list"], &env).json();
    assert_eq!(listed[0]["id"], "pgshop");

    drop(server);
    database.drop_now().await;
}
