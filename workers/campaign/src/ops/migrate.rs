//! Postgres migrations (`shared/migrations`), with sqlx's bookkeeping table kept out of the
//! schemas Supabase exposes.
//!
//! sqlx keeps `_sqlx_migrations` in `public` by default, where Supabase's default privileges
//! grant `anon` and `authenticated` everything: anyone holding the public anon key could read
//! it, or insert a row that makes a future migration be skipped. It lives in
//! `igflow_private` instead, a schema no API role may use.
//!
//! Migrating needs the tables' owner (IGFLOW_ADMIN_DATABASE_URL); it also (re)grants the
//! worker's own role, `igflow_worker`, what the worker needs (`shared/roles/worker.sql`).

use sqlx::PgPool;
use sqlx::migrate::{MigrateError, Migrator};

/// The migrations compiled into the binary.
static MIGRATIONS: Migrator = sqlx::migrate!("../../shared/migrations");

/// The schema of igflow's bookkeeping: not exposed, no grants to anyone but its owner.
pub const PRIVATE_SCHEMA: &str = "igflow_private";

/// Creates the private schema and moves a bookkeeping table left in `public` by an older
/// igflow into it, so that its migrations are not run again. One implicit transaction under
/// an advisory lock: two `migrate` runs at once do not race on the schema.
const PREPARE: &str = r#"
select pg_advisory_xact_lock(hashtext('igflow_private schema'));
create schema if not exists igflow_private;
revoke all on schema igflow_private from public;
do $$
begin
    if to_regclass('public._sqlx_migrations') is not null
       and to_regclass('igflow_private._sqlx_migrations') is null then
        alter table public._sqlx_migrations set schema igflow_private;
    end if;
end
$$;
"#;

/// The worker's role and its grants, for the schema as migrated (see the file).
const WORKER_ROLE: &str = include_str!("../../../../shared/roles/worker.sql");

/// Applies every migration not applied yet, then the worker role's grants.
pub async fn run(pool: &PgPool) -> Result<(), MigrateError> {
    sqlx::raw_sql(PREPARE).execute(pool).await?;
    let mut migrator = Migrator::with_migrations(MIGRATIONS.iter().cloned().collect());
    migrator.dangerous_set_table_name(format!("{PRIVATE_SCHEMA}._sqlx_migrations"));
    migrator.run(pool).await?;
    sqlx::raw_sql(WORKER_ROLE).execute(pool).await?;
    Ok(())
}
