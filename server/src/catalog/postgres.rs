//! The production catalog, shared by every gateway replica pointed at it.

use std::time::Duration;

use sqlx::Postgres;
use sqlx::postgres::PgPoolOptions;

use super::Result;
use super::queries;
use super::sql::{Backend, SqlCatalog};

/// A PostgreSQL database, shared by every gateway replica pointed at it.
pub type PostgresCatalog = SqlCatalog<Postgres>;

impl Backend for Postgres {
    const BACKEND: &'static str = "postgres";
    const WAL_VOLUME: &'static str = queries::postgres::WAL_VOLUME;

    fn rows_affected(done: &sqlx::postgres::PgQueryResult) -> u64 {
        done.rows_affected()
    }
}

impl PostgresCatalog {
    pub async fn open(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        Ok(SqlCatalog { pool })
    }
}
