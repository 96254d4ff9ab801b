//! The embedded catalog: one SQLite file.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Sqlite;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::Result;
use super::queries;
use super::sql::{Backend, SqlCatalog};

/// One SQLite file in WAL mode with `synchronous=FULL`, so a committed row survives
/// power loss (an ack depends on it).
pub type SqliteCatalog = SqlCatalog<Sqlite>;

impl Backend for Sqlite {
    const BACKEND: &'static str = "sqlite";
    const WAL_VOLUME: &'static str = queries::sqlite::WAL_VOLUME;

    fn rows_affected(done: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        done.rows_affected()
    }
}

impl SqliteCatalog {
    pub async fn open(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
        Ok(SqlCatalog { pool })
    }
}
