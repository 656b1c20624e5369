//! The endpoint families an agreement can allow, rate-limit and count separately.

use std::fmt;

/// A family of licensee API endpoints, as agreements name them (`endpoints = ["search", ...]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    /// `GET /2/tweets/search/recent`
    Search,
    /// `GET /2/tweets/:id`, `GET /2/tweets?ids=`
    Lookup,
    /// `GET /2/users/:id/tweets`
    Timeline,
    /// `GET /2/users...`
    Users,
    /// `GET /2/tweets/sample/stream`
    Stream,
    /// `GET /2/usage/tweets`
    Usage,
}

impl Endpoint {
    pub const ALL: [Endpoint; 6] =
        [Endpoint::Search, Endpoint::Lookup, Endpoint::Timeline, Endpoint::Users, Endpoint::Stream, Endpoint::Usage];

    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Search => "search",
            Endpoint::Lookup => "lookup",
            Endpoint::Timeline => "timeline",
            Endpoint::Users => "users",
            Endpoint::Stream => "stream",
            Endpoint::Usage => "usage",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Endpoint::ALL.into_iter().find(|endpoint| endpoint.as_str() == name)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for endpoint in Endpoint::ALL {
            assert_eq!(Endpoint::parse(endpoint.as_str()), Some(endpoint));
        }
        assert_eq!(Endpoint::parse("Search"), None);
    }
}
