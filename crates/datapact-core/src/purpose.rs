//! Purposes: what a licensee's requests are for, in the RSL 1.0 usage vocabulary.

/// Every purpose name, broadest first.
pub const PURPOSES: [&str; 6] = ["all", "ai-all", "ai-train", "ai-input", "ai-index", "search"];

pub fn is_purpose(name: &str) -> bool {
    PURPOSES.contains(&name)
}

/// Whether `granted` covers `requested`: `all` covers everything, `ai-all` covers the three AI
/// uses, and every purpose covers itself.
pub fn covers(granted: &str, requested: &str) -> bool {
    granted == requested
        || granted == "all"
        || (granted == "ai-all" && matches!(requested, "ai-train" | "ai-input" | "ai-index"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hierarchy() {
        assert!(covers("all", "search") && covers("ai-all", "ai-train") && covers("search", "search"));
        assert!(!covers("ai-all", "search") && !covers("ai-train", "ai-all") && !covers("search", "all"));
        assert!(PURPOSES.iter().all(|p| is_purpose(p)) && !is_purpose("training"));
    }
}
