//! Every dashboard query runs as PostgREST runs it: in a transaction, as role `authenticated`,
//! with the verified JWT's claims in `request.jwt.claims`. Row Level Security alone decides
//! what the user sees and may change; this API holds no tenant logic of its own.

use sqlx::{PgPool, Postgres, Transaction};

use crate::auth::User;
use crate::error::ApiError;

pub async fn as_user(
    pool: &PgPool,
    user: &User,
) -> Result<Transaction<'static, Postgres>, ApiError> {
    as_claims(pool, &user.claims_json).await
}

pub async fn as_claims(
    pool: &PgPool,
    claims_json: &str,
) -> Result<Transaction<'static, Postgres>, ApiError> {
    let mut tx = pool.begin().await?;
    sqlx::query("select set_config('role', 'authenticated', true), set_config('request.jwt.claims', $1, true)")
        .bind(claims_json)
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}
