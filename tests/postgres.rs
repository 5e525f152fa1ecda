//! The same binary on PostgreSQL: `serve`, readiness and the admin commands against a fresh
//! database. Ignored unless `MINDSHOP_TEST_POSTGRES_URL` names a server to create it on.

mod support;

use sqlx::{Connection, PgConnection};
use support::postgres::FreshDatabase;
use support::{Launch, Reply, client};

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
