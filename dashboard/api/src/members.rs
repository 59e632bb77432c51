//! Workspaces (tenants) and their members: owners invite by e-mail, change roles and remove,
//! under the rules Postgres keeps (a workspace always keeps an owner).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::auth::{User, dev_user_id};
use crate::db::as_user;
use crate::error::ApiError;

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Workspace {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    /// The caller's role in it.
    pub role: String,
}

#[derive(Debug, Serialize)]
pub struct Me {
    pub user_id: Uuid,
    pub email: Option<String>,
    pub workspaces: Vec<Workspace>,
}

pub async fn me(State(state): State<Arc<AppState>>, user: User) -> Result<Json<Me>, ApiError> {
    let mut tx = as_user(&state.pool, &user).await?;
    let workspaces = sqlx::query_as(
        "select t.id, t.slug, t.name, m.role from tenants t
         join memberships m on m.tenant_id = t.id and m.user_id = $1 order by t.name",
    )
    .bind(user.id)
    .fetch_all(&mut *tx)
    .await?;
    Ok(Json(Me {
        user_id: user.id,
        email: user.email,
        workspaces,
    }))
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Member {
    pub user_id: Uuid,
    pub email: Option<String>,
    pub role: String,
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    user: User,
    Path(tenant): Path<Uuid>,
) -> Result<Json<Vec<Member>>, ApiError> {
    let mut tx = as_user(&state.pool, &user).await?;
    let members: Vec<Member> = sqlx::query_as(
        "select user_id, email, role from memberships where tenant_id = $1 order by role, email",
    )
    .bind(tenant)
    .fetch_all(&mut *tx)
    .await?;
    if members.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok(Json(members))
}

#[derive(Debug, Deserialize)]
pub struct InviteBody {
    pub email: String,
    pub role: String,
}

/// Adds a member by e-mail: Supabase Auth invites the address (or finds its account) and
/// gives its user id; with only the development sign-in, the id that sign-in gives the address.
pub async fn invite(
    State(state): State<Arc<AppState>>,
    user: User,
    Path(tenant): Path<Uuid>,
    Json(body): Json<InviteBody>,
) -> Result<(StatusCode, Json<Member>), ApiError> {
    let email = body.email.trim().to_lowercase();
    if !email.contains('@') {
        return Err(ApiError::BadRequest(format!(
            "{email:?} is not an e-mail address"
        )));
    }
    let mut tx = as_user(&state.pool, &user).await?;
    // Checked before any e-mail goes out: only the workspace's owners invite.
    if let Some(refused) = owner_refusal(&mut tx, tenant).await? {
        return Err(refused);
    }
    let invited = match &state.supabase_admin {
        Some(admin) => admin.invite(&email).await?,
        None if state.verifier.dev_sign_in_enabled() => dev_user_id(&email),
        None => {
            return Err(ApiError::Unavailable(
                "invitations need Supabase's admin API: set IGFLOW_SUPABASE_URL and IGFLOW_SUPABASE_SERVICE_ROLE_SECRET".into(),
            ));
        }
    };
    let member: Option<Member> = sqlx::query_as(
        "insert into memberships (tenant_id, user_id, role, email) values ($1, $2, $3, $4)
         returning user_id, email, role",
    )
    .bind(tenant)
    .bind(invited)
    .bind(&body.role)
    .bind(&email)
    .fetch_optional(&mut *tx)
    .await?;
    let member = member.ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(member)))
}

#[derive(Debug, Deserialize)]
pub struct RoleBody {
    pub role: String,
}

pub async fn set_role(
    State(state): State<Arc<AppState>>,
    user: User,
    Path((tenant, member)): Path<(Uuid, Uuid)>,
    Json(body): Json<RoleBody>,
) -> Result<Json<Member>, ApiError> {
    let mut tx = as_user(&state.pool, &user).await?;
    let updated: Option<Member> = sqlx::query_as(
        "update memberships set role = $3 where tenant_id = $1 and user_id = $2
         returning user_id, email, role",
    )
    .bind(tenant)
    .bind(member)
    .bind(&body.role)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(updated) = updated else {
        return Err(refusal(&mut tx, tenant).await);
    };
    tx.commit().await?;
    Ok(Json(updated))
}

pub async fn remove(
    State(state): State<Arc<AppState>>,
    user: User,
    Path((tenant, member)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let mut tx = as_user(&state.pool, &user).await?;
    let removed = sqlx::query("delete from memberships where tenant_id = $1 and user_id = $2")
        .bind(tenant)
        .bind(member)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if removed == 0 {
        return Err(refusal(&mut tx, tenant).await);
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Nothing changed: a workspace the caller is not in, or a member it does not have, looks
/// like none; in it, only owners manage members.
async fn refusal(tx: &mut sqlx::Transaction<'static, sqlx::Postgres>, tenant: Uuid) -> ApiError {
    match owner_refusal(tx, tenant).await {
        Ok(Some(refused)) => refused,
        Ok(None) => ApiError::NotFound,
        Err(e) => e,
    }
}

/// Why the caller may not manage the workspace's members, if they may not.
async fn owner_refusal(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    tenant: Uuid,
) -> Result<Option<ApiError>, ApiError> {
    let (member, owner) =
        sqlx::query_as::<_, (bool, bool)>("select igflow_is_member($1), igflow_is_owner($1)")
            .bind(tenant)
            .fetch_one(&mut **tx)
            .await?;
    Ok(match (member, owner) {
        (_, true) => None,
        (true, false) => Some(ApiError::Forbidden("only owners manage members".into())),
        (false, _) => Some(ApiError::NotFound),
    })
}
