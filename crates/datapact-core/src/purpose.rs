//! Purposes of use, in the RSL 1.0 usage vocabulary, and which grant covers which request.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A purpose of use (RSL 1.0 vocabulary). A key carries one; an agreement grants a set.
///
/// The vocabulary is a hierarchy: `all` covers every purpose, `ai-all` covers `ai-train`, `ai-input` and `ai-index`.
/// A grant covers a request when every leaf purpose (`ai-train`, `ai-input`, `ai-index`, `search`) the request
/// stands for is granted, so granting `ai-train`, `ai-input` and `ai-index` separately also allows an `ai-all` key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    /// `all`: every use.
    All,
    /// `ai-all`: every AI use (`ai-train`, `ai-input`, `ai-index`).
    AiAll,
    /// `ai-train`: training models.
    AiTrain,
    /// `ai-input`: input to a model at inference (grounding, RAG).
    AiInput,
    /// `ai-index`: building AI search indexes.
    AiIndex,
    /// `search`: classic search indexing.
    Search,
}

impl Purpose {
    /// Every purpose, broadest first.
    pub const ALL: [Purpose; 6] =
        [Purpose::All, Purpose::AiAll, Purpose::AiTrain, Purpose::AiInput, Purpose::AiIndex, Purpose::Search];

    /// The purposes that cover nothing but themselves.
    pub const LEAVES: [Purpose; 4] = [Purpose::AiTrain, Purpose::AiInput, Purpose::AiIndex, Purpose::Search];

    /// The RSL name.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::All => "all",
            Purpose::AiAll => "ai-all",
            Purpose::AiTrain => "ai-train",
            Purpose::AiInput => "ai-input",
            Purpose::AiIndex => "ai-index",
            Purpose::Search => "search",
        }
    }

    /// Parses the RSL name (`ai-train`); case-sensitive like the rest of the terms file.
    pub fn parse(name: &str) -> Option<Purpose> {
        Purpose::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// Every name, comma-separated, for error messages.
    pub fn names() -> String {
        Purpose::ALL.map(Purpose::as_str).join(", ")
    }

    /// The leaf purposes this one stands for.
    pub fn leaves(self) -> &'static [Purpose] {
        match self {
            Purpose::All => &Purpose::LEAVES,
            Purpose::AiAll => &[Purpose::AiTrain, Purpose::AiInput, Purpose::AiIndex],
            Purpose::AiTrain => &[Purpose::AiTrain],
            Purpose::AiInput => &[Purpose::AiInput],
            Purpose::AiIndex => &[Purpose::AiIndex],
            Purpose::Search => &[Purpose::Search],
        }
    }

    /// Whether granting `self` alone allows a key with purpose `requested`.
    pub fn covers(self, requested: Purpose) -> bool {
        requested.leaves().iter().all(|leaf| self.leaves().contains(leaf))
    }
}

impl Purpose {
    /// Whether the two purposes share a use: for author opt-outs, a post of an author who opted out of `self` is
    /// withheld from a key with purpose `other` exactly when they overlap (an `ai-train` opt-out hides the post from
    /// `ai-train`, `ai-all` and `all` keys, not from `ai-input` or `search` keys; an `ai-all` opt-out hides it from
    /// every `ai-*` key).
    pub fn overlaps(self, other: Purpose) -> bool {
        self.leaves().iter().any(|leaf| other.leaves().contains(leaf))
    }
}

/// Whether a set of granted purposes allows a key with purpose `requested` (see [`Purpose`] for the hierarchy).
pub fn purposes_cover(granted: &BTreeSet<Purpose>, requested: Purpose) -> bool {
    requested.leaves().iter().all(|leaf| granted.iter().any(|g| g.leaves().contains(leaf)))
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[Purpose]) -> BTreeSet<Purpose> {
        items.iter().copied().collect()
    }

    #[test]
    fn names_round_trip() {
        for p in Purpose::ALL {
            assert_eq!(Purpose::parse(p.as_str()), Some(p));
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{p}\""));
        }
        assert_eq!(Purpose::parse("AI-train"), None);
        assert_eq!(Purpose::parse("train"), None);
    }

    #[test]
    fn hierarchy() {
        use Purpose::*;
        for p in Purpose::ALL {
            assert!(All.covers(p));
            assert!(p.covers(p));
            assert!(purposes_cover(&set(&[All]), p));
        }
        assert!(AiAll.covers(AiTrain) && AiAll.covers(AiInput) && AiAll.covers(AiIndex));
        assert!(!AiAll.covers(Search) && !AiAll.covers(All));
        assert!(!AiTrain.covers(AiAll) && !Search.covers(AiInput));
        assert!(purposes_cover(&set(&[AiTrain, AiInput, AiIndex]), AiAll));
        assert!(!purposes_cover(&set(&[AiTrain, AiInput]), AiAll));
        assert!(purposes_cover(&set(&[AiAll, Search]), All));
        assert!(!purposes_cover(&set(&[AiAll]), All));
        assert!(purposes_cover(&set(&[Search, AiInput]), AiInput));
        assert!(!purposes_cover(&set(&[Search, AiInput]), AiTrain));
        assert!(!purposes_cover(&set(&[]), Search));
    }

    #[test]
    fn opt_out_overlap() {
        use Purpose::*;
        for key in [AiTrain, AiAll, All] {
            assert!(AiTrain.overlaps(key), "{key}");
        }
        for key in [AiInput, AiIndex, Search] {
            assert!(!AiTrain.overlaps(key), "{key}");
        }
        assert!(AiAll.overlaps(AiInput) && AiAll.overlaps(All) && !AiAll.overlaps(Search));
        assert!(All.overlaps(Search) && Search.overlaps(All));
        for a in Purpose::ALL {
            for b in Purpose::ALL {
                assert_eq!(a.overlaps(b), b.overlaps(a));
            }
        }
    }
}
