//! What can go wrong, in the three ways a caller must tell apart.

/// Why a limiter call gave no decision.
///
/// No variant means "allowed": what to do without a decision (fail closed for caps and credits, perhaps open for rate
/// limits) is the caller's policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimiterError {
    /// Redis is down, unreachable, refusing writes, or did not answer within the limiter's timeout. Retrying later
    /// may succeed: the same [`crate::RedisLimiter`] reconnects by itself.
    ///
    /// A reservation whose call timed out may still have been applied: it is then listed by
    /// [`crate::RedisLimiter::outstanding`] and must be released (or settled) like any other.
    #[error("limiter unavailable: {0}")]
    Unavailable(String),
    /// The caller's input cannot be decided: a page longer than [`crate::MAX_PAGE`], a name with characters outside
    /// the allowed set, a number past the exact range (2^53 - 1), a request id already reserved by this node.
    #[error("invalid limiter input: {0}")]
    Invalid(String),
    /// A value in Redis is not what this crate writes (a malformed number, a record of another shape). Nothing was
    /// changed by the failed call; deleting the key (it is then seeded again from the ledger) repairs it.
    #[error("malformed limiter state: {0}")]
    Corrupt(String),
}

impl LimiterError {
    /// Maps a client error: a reply of the wrong shape is [`LimiterError::Corrupt`], anything else (I/O, refused
    /// connection, server errors such as `LOADING`, `READONLY`, `OOM`, `BUSY`) is [`LimiterError::Unavailable`].
    pub(crate) fn from_redis(what: &str, error: &redis::RedisError) -> LimiterError {
        match error.kind() {
            redis::ErrorKind::UnexpectedReturnType | redis::ErrorKind::Parse => {
                LimiterError::Corrupt(format!("{what}: {error}"))
            }
            _ => LimiterError::Unavailable(format!("{what}: {error}")),
        }
    }
}
