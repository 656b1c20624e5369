//! # datapact-mark
//!
//! Invisible per-licensee fingerprints in post text, and a rigorous way to trace a leak.
//!
//! Every licensee receives a copy of each post that differs from the public text only in
//! typographic details a reader does not see (' vs ’, "…" vs “…”, ... vs …, - vs –, space vs
//! no-break space in French punctuation, precomposed vs decomposed accents). Each such
//! *site* carries one bit of a binary symmetric Tardos code:
//!
//! * the site's identity is a keyed PRF (BLAKE3) over the post id, the digest of the
//!   post's folded text, the channel and the site's ordinal within its channel, so
//!   subsets, reordering and re-serialisation of a leak do not matter;
//! * its bias `p` is drawn from the arcsine density with cutoff `t` set by the maximum
//!   coalition size `c` recorded in the [`Secret`];
//! * a licensee's symbol is `SipHash-1-3(site key, licensee id) < p·2^64`, so nothing is
//!   stored per licensee and a copy is the same on every render;
//! * the public text is the all-zero codeword.
//!
//! Tracing reads a leaked text back into symbols ([`PreparedPost::read`]), collects them
//! in [`Evidence`] (dropping channels normalised away), scores candidate licensees with
//! the symmetric Tardos score and accuses those whose score exceeds a threshold proven by
//! a Chernoff bound computed exactly per site ([`bound`]), with the false-accusation
//! probability ε split over all candidates. The crate does no I/O.
//!
//! ```
//! use datapact_mark::{AccusationParams, Evidence, PreparedPost, Secret, fold};
//! let secret = Secret::new(1, [7; 32]).with_max_coalition(2);
//! let text = "It's \"fine\"... really - isn't it ? « Oui » dit l'élève.";
//! let post = PreparedPost::new(&secret, 42, text);
//! let copy = post.render(1001);
//! assert_eq!(fold(&copy), fold(text));
//! let mut ev = Evidence::new();
//! ev.add_post(&post, &copy);
//! let verdict = ev.accuse(&(1000..2000).collect::<Vec<_>>(), &AccusationParams::default());
//! // One short post is far too little evidence: nobody is accused.
//! assert!(verdict.accused.is_empty());
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bound;
mod channel;
mod detect;
mod fold;
mod mark;
mod secret;
mod trace;

pub use channel::{Channel, ChannelSet, Form};
pub use detect::{DetectedSite, SiteSpans, detect_sites, protected_spans};
pub use fold::{PostIndex, fold, post_fingerprint};
pub use mark::{MarkSite, Observation, PostReading, PreparedPost, SiteCode, render};
pub use secret::{DEFAULT_MAX_COALITION, Secret, default_cutoff_ppm};
pub use trace::{
    Accusation, AccusationParams, ChannelEvidence, Evidence, EvidenceSite, Outcome, ScoringSites, Verdict,
};
