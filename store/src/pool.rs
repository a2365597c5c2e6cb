//! How the server's PostgreSQL pools hand out connections.

use std::time::Duration;

use sqlx::Connection;
use sqlx::pool::PoolOptions;

/// A pooled connection idle this long is pinged before it is handed out, and replaced when the
/// server or the network dropped it meanwhile. One in steady use is not: sqlx's default pings
/// on every acquire, a round trip of its own before each statement or transaction.
const PING_IF_IDLE: Duration = Duration::from_secs(1);

/// Options for a PostgreSQL pool of the server's: a connection is pinged before it is handed
/// out only when idle for a second or longer.
///
/// Not for SQLite: there sqlx's ping on every acquire also flushes the rollback of a
/// transaction whose caller went away, and without it the next `BEGIN` on that connection
/// failed (`store/tests/group_commit.rs`, callers that give up).
pub fn pool_options<DB: sqlx::Database>() -> PoolOptions<DB> {
    PoolOptions::<DB>::new().test_before_acquire(false).before_acquire(|conn, meta| {
        Box::pin(async move {
            if meta.idle_for >= PING_IF_IDLE {
                conn.ping().await?;
            }
            Ok(true)
        })
    })
}
