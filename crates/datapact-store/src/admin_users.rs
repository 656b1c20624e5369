//! Dashboard users and their sessions (issue 12): named users with a role, an argon2 password
//! hash (made and checked by the gateway; the store only keeps the PHC string), and sessions
//! keyed by the SHA-256 of a random cookie token, each with its CSRF token.
//!
//! Adding and removing users is audited; so is every login (`dashboard.login`, under the user's
//! name). A removed user is disabled, not deleted (audit entries name it), and its sessions end
//! at once; the name can be added again. A session reads its user's role as it is now, so a
//! role change or a removal takes effect on the next request.

use datapact_core::Timestamp;
use serde::Serialize;

use crate::shared::AuditDraft;
use crate::{StoreError, StoreResult};

/// The user a login with the admin token acts as (role admin). No stored user may take the name.
pub const ADMIN_TOKEN_USER: &str = "admin-token";

/// What a dashboard user may do; each role can do everything the ones before it can.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminRole {
    /// Reads every page.
    Viewer,
    /// Also blocks and unblocks licensees, revokes keys and runs traces.
    Operator,
    /// Also sees (and, later, manages) everything an operator cannot: the dashboard users.
    Admin,
}

impl AdminRole {
    pub fn as_str(self) -> &'static str {
        match self {
            AdminRole::Viewer => "viewer",
            AdminRole::Operator => "operator",
            AdminRole::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<AdminRole> {
        match text {
            "viewer" => Some(AdminRole::Viewer),
            "operator" => Some(AdminRole::Operator),
            "admin" => Some(AdminRole::Admin),
            _ => None,
        }
    }
}

impl std::fmt::Display for AdminRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AdminRole {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        AdminRole::parse(text).ok_or_else(|| format!("unknown role {text:?}: viewer, operator or admin"))
    }
}

/// A user to add ([`crate::Store::add_admin_user`]).
#[derive(Clone, PartialEq, Eq)]
pub struct NewAdminUser {
    pub name: String,
    pub role: AdminRole,
    /// An argon2 PHC string (`$argon2id$...`), never the password.
    pub password_hash: String,
}

/// A stored dashboard user.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct AdminUser {
    pub name: String,
    pub role: AdminRole,
    /// Never printed or serialized.
    #[serde(skip)]
    pub password_hash: String,
    pub created_at: Timestamp,
    /// Set when the user was removed: it can no longer log in, and its sessions ended.
    pub disabled_at: Option<Timestamp>,
}

impl std::fmt::Debug for AdminUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminUser")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("created_at", &self.created_at)
            .field("disabled_at", &self.disabled_at)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for NewAdminUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewAdminUser").field("name", &self.name).field("role", &self.role).finish_non_exhaustive()
    }
}

/// A session to record at login ([`crate::Store::create_admin_session`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAdminSession {
    /// Hex SHA-256 of the cookie's token: the token itself is never stored.
    pub token_hash: String,
    pub user: String,
    /// The role at login; for stored users the role read at each request wins.
    pub role: AdminRole,
    /// The token every change made in this session must carry.
    pub csrf_token: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A live session, as a request finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminSession {
    pub user: String,
    pub role: AdminRole,
    pub csrf_token: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A user name: 1–64 of `a-z A-Z 0-9 . _ - @`, and not the admin token's own user.
pub fn check_user_name(name: &str) -> StoreResult<()> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if !valid {
        return Err(StoreError::Invalid(format!(
            "invalid user name {name:?}: 1 to 64 letters, digits, '.', '_', '-' or '@'"
        )));
    }
    if name == ADMIN_TOKEN_USER {
        return Err(StoreError::Invalid(format!("{ADMIN_TOKEN_USER:?} is the admin token's own user")));
    }
    Ok(())
}

pub(crate) fn parse_role(text: &str) -> StoreResult<AdminRole> {
    AdminRole::parse(text).ok_or_else(|| StoreError::Unavailable(format!("stored role {text:?} does not read")))
}

pub(crate) fn add_audit(user: &AdminUser) -> AuditDraft {
    AuditDraft::after("admin_user.add", &user.name, serde_json::json!({ "role": user.role }))
}

pub(crate) fn remove_audit(user: &AdminUser) -> AuditDraft {
    AuditDraft {
        action: "admin_user.remove",
        subject: user.name.clone(),
        before: Some(serde_json::json!({ "role": user.role })),
        after: None,
    }
}

pub(crate) fn login_audit(session: &NewAdminSession) -> AuditDraft {
    AuditDraft::after(
        "dashboard.login",
        &session.user,
        serde_json::json!({ "role": session.role, "expires_at": session.expires_at }),
    )
}

pub(crate) fn taken(name: &str) -> StoreError {
    StoreError::Conflict(format!("a dashboard user named {name:?} exists (remove it first)"))
}

pub(crate) fn no_user(name: &str) -> StoreError {
    StoreError::NotFound(format!("no dashboard user named {name:?}"))
}

pub(crate) mod sql {
    /// A new user, or a removed one given back; an active user of that name is left alone.
    pub(crate) const ADD_USER: &str = "INSERT INTO admin_users (name, role, password_hash, created_at)
        VALUES (?1, ?2, ?3, ?4)
        ON CONFLICT (name) DO UPDATE SET role = excluded.role, password_hash = excluded.password_hash,
            created_at = excluded.created_at, disabled_at = NULL
        WHERE admin_users.disabled_at IS NOT NULL";
    pub(crate) const USERS: &str =
        "SELECT name, role, password_hash, created_at, disabled_at FROM admin_users ORDER BY name";
    pub(crate) const USER: &str =
        "SELECT name, role, password_hash, created_at, disabled_at FROM admin_users WHERE name = ?1";
    pub(crate) const DISABLE_USER: &str =
        "UPDATE admin_users SET disabled_at = ?2 WHERE name = ?1 AND disabled_at IS NULL";
    pub(crate) const END_USER_SESSIONS: &str = "DELETE FROM admin_sessions WHERE user_name = ?1";
    pub(crate) const END_EXPIRED_SESSIONS: &str = "DELETE FROM admin_sessions WHERE expires_at <= ?1";
    pub(crate) const INSERT_SESSION: &str = "INSERT INTO admin_sessions
        (token_hash, user_name, role, csrf_token, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    /// A live session: unexpired, and its user still there and enabled (or the admin token's),
    /// and made since the user was (re)created: a login that raced a removal cannot come back to
    /// life when the name is added again.
    pub(crate) const SESSION: &str = "SELECT s.user_name, COALESCE(u.role, s.role), s.csrf_token, s.created_at,
            s.expires_at
        FROM admin_sessions s LEFT JOIN admin_users u ON u.name = s.user_name
        WHERE s.token_hash = ?1 AND s.expires_at > ?2
          AND ((u.name IS NULL AND s.user_name = 'admin-token')
               OR (u.name IS NOT NULL AND u.disabled_at IS NULL AND s.created_at >= u.created_at))";
    pub(crate) const END_SESSION: &str = "DELETE FROM admin_sessions WHERE token_hash = ?1";
}
