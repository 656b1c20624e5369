//! The page every dashboard view is drawn in: navigation, who is logged in, the log-out button.

use datapact_store::admin_users::{AdminRole, AdminSession};
use maud::{DOCTYPE, Markup, html};

use super::assets;

const NAV: &[(&str, &str, &str)] = &[
    ("overview", "/dashboard", "Overview"),
    ("price-books", "/dashboard/price-books", "Price books"),
    ("trace", "/dashboard/trace", "Trace a leak"),
    ("audit", "/dashboard/audit", "Audit log"),
];

/// A whole page. `active`: the navigation entry to mark as current.
pub fn page(title: &str, session: Option<&AdminSession>, active: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · datapact" }
                link rel="stylesheet" href=(assets::css_path());
                script src=(assets::js_path()) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "datapact" }
                    @if let Some(session) = session {
                        nav aria-label="Main" {
                            ul {
                                @for (key, href, label) in NAV {
                                    li { a href=(href) aria-current=[(active == *key).then_some("page")] { (label) } }
                                }
                                @if session.role >= AdminRole::Admin {
                                    li { a href="/dashboard/users" aria-current=[(active == "users").then_some("page")] { "Users" } }
                                }
                            }
                        }
                        div.who {
                            span { (session.user) " · " (session.role.as_str()) }
                            form method="post" action="/dashboard/logout" {
                                input type="hidden" name="csrf" value=(session.csrf_token);
                                button.link type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main #main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The hidden CSRF field every form of a logged-in page carries.
pub fn csrf(session: &AdminSession) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf_token); }
}
