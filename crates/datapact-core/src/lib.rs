//! The domain model of datapact and the rules that need no I/O.
//!
//! Everything here is deterministic and side-effect free so it can be tested exhaustively:
//! time values and the [`Clock`] seam, [`Post`]s and their authors, the ingest line format,
//! licensee API key formats, and pagination tokens. Storage and HTTP live in other crates.

pub mod endpoint;
pub mod html;
pub mod ingest;
pub mod key;
pub mod licensee;
pub mod pagination;
pub mod post;
pub mod purpose;
pub mod time;

pub use endpoint::Endpoint;
pub use key::{ApiKey, KeyHash, KeyPrefix};
pub use licensee::{KeyRecord, Licensee, LicenseeStatus};
pub use post::{Author, AuthorMetrics, Post, PostId, PublicMetrics, ReferencedPost, UserId};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
