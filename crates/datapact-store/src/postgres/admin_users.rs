//! Dashboard users and sessions in PostgreSQL (see [`crate::admin_users`]).

use datapact_core::Timestamp;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::append_audit;
use crate::admin_users::{
    AdminSession, AdminUser, NewAdminSession, NewAdminUser, add_audit, check_user_name, login_audit, no_user,
    parse_role, remove_audit, sql, taken,
};
use crate::postgres::pg;
use crate::{Change, StoreResult};

fn user(row: &PgRow) -> StoreResult<AdminUser> {
    let role: String = row.try_get(1)?;
    Ok(AdminUser {
        name: row.try_get(0)?,
        role: parse_role(&role)?,
        password_hash: row.try_get(2)?,
        created_at: Timestamp(row.try_get(3)?),
        disabled_at: row.try_get::<Option<i64>, _>(4)?.map(Timestamp),
    })
}

pub(super) async fn user_named(conn: &mut PgConnection, name: &str) -> StoreResult<Option<AdminUser>> {
    sqlx::query(pg!(sql::USER)).bind(name).fetch_optional(conn).await?.as_ref().map(user).transpose()
}

pub(super) async fn users(conn: &mut PgConnection) -> StoreResult<Vec<AdminUser>> {
    sqlx::query(pg!(sql::USERS)).fetch_all(conn).await?.iter().map(user).collect()
}

/// In the caller's write transaction.
pub(super) async fn add_user(tx: &mut PgConnection, new: NewAdminUser, change: &Change) -> StoreResult<AdminUser> {
    check_user_name(&new.name)?;
    let added = sqlx::query(pg!(sql::ADD_USER))
        .bind(&new.name)
        .bind(new.role.as_str())
        .bind(&new.password_hash)
        .bind(change.at.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if added == 0 {
        return Err(taken(&new.name));
    }
    let stored = user_named(tx, &new.name).await?.ok_or_else(|| no_user(&new.name))?;
    append_audit(tx, change, add_audit(&stored)).await?;
    Ok(stored)
}

/// In the caller's write transaction.
pub(super) async fn remove_user(tx: &mut PgConnection, name: &str, change: &Change) -> StoreResult<AdminUser> {
    let disabled =
        sqlx::query(pg!(sql::DISABLE_USER)).bind(name).bind(change.at.0).execute(&mut *tx).await?.rows_affected();
    if disabled == 0 {
        return Err(no_user(name));
    }
    sqlx::query(pg!(sql::END_USER_SESSIONS)).bind(name).execute(&mut *tx).await?;
    let stored = user_named(tx, name).await?.ok_or_else(|| no_user(name))?;
    append_audit(tx, change, remove_audit(&stored)).await?;
    Ok(stored)
}

/// In the caller's write transaction.
pub(super) async fn create_session(
    tx: &mut PgConnection,
    session: NewAdminSession,
    change: &Change,
) -> StoreResult<()> {
    sqlx::query(pg!(sql::END_EXPIRED_SESSIONS)).bind(change.at.0).execute(&mut *tx).await?;
    sqlx::query(pg!(sql::INSERT_SESSION))
        .bind(&session.token_hash)
        .bind(&session.user)
        .bind(session.role.as_str())
        .bind(&session.csrf_token)
        .bind(session.created_at.0)
        .bind(session.expires_at.0)
        .execute(&mut *tx)
        .await?;
    append_audit(tx, change, login_audit(&session)).await
}

pub(super) async fn session(
    conn: &mut PgConnection,
    token_hash: &str,
    now: Timestamp,
) -> StoreResult<Option<AdminSession>> {
    let row = sqlx::query(pg!(sql::SESSION)).bind(token_hash).bind(now.0).fetch_optional(conn).await?;
    row.map(|row| {
        let role: String = row.try_get(1)?;
        Ok(AdminSession {
            user: row.try_get(0)?,
            role: parse_role(&role)?,
            csrf_token: row.try_get(2)?,
            created_at: Timestamp(row.try_get(3)?),
            expires_at: Timestamp(row.try_get(4)?),
        })
    })
    .transpose()
}

pub(super) async fn end_sessions_of(conn: &mut PgConnection, user: &str) -> StoreResult<u64> {
    Ok(sqlx::query(pg!(sql::END_USER_SESSIONS)).bind(user).execute(conn).await?.rows_affected())
}

pub(super) async fn end_session(conn: &mut PgConnection, token_hash: &str) -> StoreResult<()> {
    sqlx::query(pg!(sql::END_SESSION)).bind(token_hash).execute(conn).await?;
    Ok(())
}
