//! Dashboard users and sessions in every store (SQLite and PostgreSQL, `stores::store_tests!`):
//! users are added once (a removed one can be added again), removal disables the user and ends
//! its sessions, sessions expire, follow their user's role, end at logout, and every change and
//! login is audited under the right names without the password hash.

use datapact_core::Timestamp;
use datapact_store::admin_users::{ADMIN_TOKEN_USER, AdminRole, NewAdminSession, NewAdminUser};
use datapact_store::{Change, StoreError};
use stores::TestStore;

mod stores;

const T0: Timestamp = Timestamp(1_790_000_000_000);
const HOUR: i64 = 3_600_000;

fn new_user(name: &str, role: AdminRole) -> NewAdminUser {
    NewAdminUser { name: name.into(), role, password_hash: format!("$argon2id$v=19$fake-hash-of-{name}") }
}

fn session(token: &str, user: &str, role: AdminRole, at: Timestamp) -> NewAdminSession {
    NewAdminSession {
        token_hash: token.into(),
        user: user.into(),
        role,
        csrf_token: format!("csrf-{token}"),
        created_at: at,
        expires_at: Timestamp(at.0 + HOUR),
    }
}

async fn users_are_added_once_and_removal_disables_them(store: &TestStore) {
    let cli = Change::new("cli@host", T0);
    let alice = store.add_admin_user(new_user("alice", AdminRole::Operator), &cli).await.unwrap();
    assert_eq!(
        (alice.name.as_str(), alice.role, alice.created_at, alice.disabled_at),
        ("alice", AdminRole::Operator, T0, None)
    );
    store.add_admin_user(new_user("bob", AdminRole::Viewer), &cli).await.unwrap();
    // An active name is taken; bad names and the admin token's user are refused.
    let again = store.add_admin_user(new_user("alice", AdminRole::Admin), &cli).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    for bad in ["", "has space", ADMIN_TOKEN_USER, &"x".repeat(65)] {
        let refused = store.add_admin_user(new_user(bad, AdminRole::Viewer), &cli).await;
        assert!(matches!(refused, Err(StoreError::Invalid(_))), "{bad:?}: {refused:?}");
    }
    let names: Vec<String> = store.admin_users().await.unwrap().into_iter().map(|u| u.name).collect();
    assert_eq!(names, ["alice", "bob"]);
    let found = store.admin_user("alice").await.unwrap().unwrap();
    assert_eq!(found.password_hash, "$argon2id$v=19$fake-hash-of-alice");
    // Debug output never shows the hash.
    assert!(!format!("{found:?}").contains("fake-hash"), "{found:?}");
    assert!(store.admin_user("carol").await.unwrap().is_none());

    let later = Change::new("cli@host", Timestamp(T0.0 + 10));
    let removed = store.remove_admin_user("alice", &later).await.unwrap();
    assert_eq!(removed.disabled_at, Some(Timestamp(T0.0 + 10)));
    let twice = store.remove_admin_user("alice", &later).await;
    assert!(matches!(twice, Err(StoreError::NotFound(_))), "{twice:?}");
    // A removed name can be given back, with a new role and password.
    let back = store.add_admin_user(new_user("alice", AdminRole::Admin), &later).await.unwrap();
    assert_eq!((back.role, back.disabled_at), (AdminRole::Admin, None));

    let audit = store.audit_log(10).await.unwrap();
    let entries: Vec<(&str, &str, &str)> =
        audit.iter().map(|e| (e.action.as_str(), e.subject.as_str(), e.actor.as_str())).collect();
    assert_eq!(
        entries,
        [
            // Newest first.
            ("admin_user.add", "alice", "cli@host"),
            ("admin_user.remove", "alice", "cli@host"),
            ("admin_user.add", "bob", "cli@host"),
            ("admin_user.add", "alice", "cli@host"),
        ]
    );
    assert!(!format!("{audit:?}").contains("fake-hash"), "the audit log never holds a hash: {audit:?}");
}

async fn sessions_expire_follow_their_user_and_end(store: &TestStore) {
    let cli = Change::new("cli@host", T0);
    store.add_admin_user(new_user("olga", AdminRole::Operator), &cli).await.unwrap();
    store.add_admin_user(new_user("vic", AdminRole::Viewer), &cli).await.unwrap();
    let login = |user: &str| Change::new(user, T0);
    store.create_admin_session(session("h-olga", "olga", AdminRole::Operator, T0), &login("olga")).await.unwrap();
    store.create_admin_session(session("h-vic", "vic", AdminRole::Viewer, T0), &login("vic")).await.unwrap();
    store
        .create_admin_session(session("h-token", ADMIN_TOKEN_USER, AdminRole::Admin, T0), &login(ADMIN_TOKEN_USER))
        .await
        .unwrap();

    let olga = store.admin_session("h-olga", Timestamp(T0.0 + 1)).await.unwrap().unwrap();
    assert_eq!((olga.user.as_str(), olga.role, olga.csrf_token.as_str()), ("olga", AdminRole::Operator, "csrf-h-olga"));
    let token = store.admin_session("h-token", Timestamp(T0.0 + 1)).await.unwrap().unwrap();
    assert_eq!((token.user.as_str(), token.role), (ADMIN_TOKEN_USER, AdminRole::Admin));
    assert!(store.admin_session("h-unknown", Timestamp(T0.0 + 1)).await.unwrap().is_none());
    // Expired at expires_at.
    assert!(store.admin_session("h-olga", Timestamp(T0.0 + HOUR)).await.unwrap().is_none());

    // Removing a user ends its sessions at once; logout ends one session.
    store.remove_admin_user("olga", &Change::new("cli@host", Timestamp(T0.0 + 2))).await.unwrap();
    assert!(store.admin_session("h-olga", Timestamp(T0.0 + 3)).await.unwrap().is_none());
    store.end_admin_session("h-vic").await.unwrap();
    assert!(store.admin_session("h-vic", Timestamp(T0.0 + 3)).await.unwrap().is_none());
    // A session named after a user that was never stored (but not the admin token's) is no session.
    store.create_admin_session(session("h-ghost", "ghost", AdminRole::Admin, T0), &login("ghost")).await.unwrap();
    assert!(store.admin_session("h-ghost", Timestamp(T0.0 + 3)).await.unwrap().is_none());

    // A login that raced the removal (its password checked before, its session written after)
    // leaves a session no one can use, even once the name is added again with a new password.
    let raced = session("h-raced", "olga", AdminRole::Operator, Timestamp(T0.0 + 1));
    store.create_admin_session(raced, &login("olga")).await.unwrap();
    assert!(store.admin_session("h-raced", Timestamp(T0.0 + 3)).await.unwrap().is_none());
    store
        .add_admin_user(new_user("olga", AdminRole::Viewer), &Change::new("cli@host", Timestamp(T0.0 + 4)))
        .await
        .unwrap();
    assert!(store.admin_session("h-raced", Timestamp(T0.0 + 5)).await.unwrap().is_none(), "came back to life");
    // A session reads its user's role as it is now.
    let after = session("h-olga2", "olga", AdminRole::Operator, Timestamp(T0.0 + 4));
    store.create_admin_session(after, &login("olga")).await.unwrap();
    assert_eq!(store.admin_session("h-olga2", Timestamp(T0.0 + 5)).await.unwrap().unwrap().role, AdminRole::Viewer);

    // Logins are audited under the user's name.
    let logins: Vec<(String, String)> = store
        .audit_log(50)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "dashboard.login")
        .map(|e| (e.actor, e.subject))
        .collect();
    assert!(logins.contains(&("vic".into(), "vic".into())), "{logins:?}");
    assert!(logins.contains(&(ADMIN_TOKEN_USER.into(), ADMIN_TOKEN_USER.into())), "{logins:?}");
    // Expired sessions are swept at the next login.
    store
        .create_admin_session(
            session("h-late", ADMIN_TOKEN_USER, AdminRole::Admin, Timestamp(T0.0 + 2 * HOUR)),
            &Change::new(ADMIN_TOKEN_USER, Timestamp(T0.0 + 2 * HOUR)),
        )
        .await
        .unwrap();
    assert!(store.admin_session("h-token", Timestamp(T0.0 + 1)).await.unwrap().is_none(), "swept");

    // A gateway's start ends the admin token's sessions (the token may have changed), no others.
    let late = Timestamp(T0.0 + 2 * HOUR + 1);
    let olga = session("h-olga3", "olga", AdminRole::Viewer, late);
    store.create_admin_session(olga, &Change::new("olga", late)).await.unwrap();
    assert!(store.admin_session("h-late", late).await.unwrap().is_some());
    assert_eq!(store.end_admin_sessions_of(ADMIN_TOKEN_USER).await.unwrap(), 1);
    assert!(store.admin_session("h-late", late).await.unwrap().is_none());
    assert!(store.admin_session("h-olga3", late).await.unwrap().is_some());
}

store_tests!(users_are_added_once_and_removal_disables_them, sessions_expire_follow_their_user_and_end);
