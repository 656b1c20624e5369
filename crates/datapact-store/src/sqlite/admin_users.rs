//! Dashboard users and sessions in SQLite (see [`crate::admin_users`]).

use datapact_core::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::append_draft;
use crate::admin_users::{
    AdminSession, AdminUser, NewAdminSession, NewAdminUser, add_audit, check_user_name, login_audit, no_user,
    parse_role, remove_audit, sql, taken,
};
use crate::{Change, StoreResult};

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<(String, String, String, i64, Option<i64>)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
}

fn user(parts: (String, String, String, i64, Option<i64>)) -> StoreResult<AdminUser> {
    let (name, role, password_hash, created_at, disabled_at) = parts;
    Ok(AdminUser {
        name,
        role: parse_role(&role)?,
        password_hash,
        created_at: Timestamp(created_at),
        disabled_at: disabled_at.map(Timestamp),
    })
}

fn find(conn: &Connection, name: &str) -> StoreResult<Option<AdminUser>> {
    conn.prepare_cached(sql::USER)?.query_row([name], user_from_row).optional()?.map(user).transpose()
}

pub(super) fn add_user(conn: &mut Connection, new: NewAdminUser, change: &Change) -> StoreResult<AdminUser> {
    check_user_name(&new.name)?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let added = tx.execute(sql::ADD_USER, params![new.name, new.role.as_str(), new.password_hash, change.at.0])?;
    if added == 0 {
        return Err(taken(&new.name));
    }
    let stored = find(&tx, &new.name)?.ok_or_else(|| no_user(&new.name))?;
    append_draft(&tx, change, add_audit(&stored))?;
    tx.commit()?;
    Ok(stored)
}

pub(super) fn users(conn: &Connection) -> StoreResult<Vec<AdminUser>> {
    let rows = conn.prepare_cached(sql::USERS)?.query_map([], user_from_row)?.collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(user).collect()
}

pub(super) fn user_named(conn: &Connection, name: &str) -> StoreResult<Option<AdminUser>> {
    find(conn, name)
}

pub(super) fn remove_user(conn: &mut Connection, name: &str, change: &Change) -> StoreResult<AdminUser> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    if tx.execute(sql::DISABLE_USER, params![name, change.at.0])? == 0 {
        return Err(no_user(name));
    }
    tx.execute(sql::END_USER_SESSIONS, [name])?;
    let stored = find(&tx, name)?.ok_or_else(|| no_user(name))?;
    append_draft(&tx, change, remove_audit(&stored))?;
    tx.commit()?;
    Ok(stored)
}

pub(super) fn create_session(conn: &mut Connection, session: NewAdminSession, change: &Change) -> StoreResult<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute(sql::END_EXPIRED_SESSIONS, [change.at.0])?;
    tx.execute(
        sql::INSERT_SESSION,
        params![
            session.token_hash,
            session.user,
            session.role.as_str(),
            session.csrf_token,
            session.created_at.0,
            session.expires_at.0
        ],
    )?;
    append_draft(&tx, change, login_audit(&session))?;
    tx.commit()?;
    Ok(())
}

pub(super) fn session(conn: &Connection, token_hash: &str, now: Timestamp) -> StoreResult<Option<AdminSession>> {
    let row = conn
        .prepare_cached(sql::SESSION)?
        .query_row(params![token_hash, now.0], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, i64>(4)?,
            ))
        })
        .optional()?;
    row.map(|(user, role, csrf_token, created_at, expires_at)| {
        Ok(AdminSession {
            user,
            role: parse_role(&role)?,
            csrf_token,
            created_at: Timestamp(created_at),
            expires_at: Timestamp(expires_at),
        })
    })
    .transpose()
}

pub(super) fn end_sessions_of(conn: &mut Connection, user: &str) -> StoreResult<u64> {
    Ok(conn.execute(sql::END_USER_SESSIONS, [user])? as u64)
}

pub(super) fn end_session(conn: &mut Connection, token_hash: &str) -> StoreResult<()> {
    conn.execute(sql::END_SESSION, [token_hash])?;
    Ok(())
}
