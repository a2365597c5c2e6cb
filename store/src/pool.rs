//! How every connection pool of the server hands out connections.

use std::time::Duration;

use sqlx::Connection;
use sqlx::pool::PoolOptions;

/// A pooled connection idle this long is pinged before it is handed out, and replaced when the
/// server or the network dropped it meanwhile. One in steady use is not: sqlx's default pings
/// on every acquire, a round trip of its own before each statement or transaction (on SQLite a
/// hop to the connection's thread and back).
pub const PING_IF_IDLE: Duration = Duration::from_secs(1);

/// Options for a pool of the server's, of either database: a connection is pinged before it
/// is handed out only when idle for [`PING_IF_IDLE`] or longer.
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
