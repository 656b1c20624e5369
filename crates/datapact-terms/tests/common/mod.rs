//! What the terms-file tests share: the problems a refused file gets.

use datapact_terms::parse_terms;

/// The problems `text` is refused with (panics if it is accepted).
pub fn errors(text: &str) -> Vec<String> {
    match parse_terms(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.problems.iter().map(|p| p.to_string()).collect(),
    }
}

/// Asserts the file is refused with one problem containing every needle.
#[track_caller]
pub fn refused(text: &str, needles: &[&str]) {
    let problems = errors(text);
    assert!(
        problems.iter().any(|p| needles.iter().all(|n| p.contains(n))),
        "expected a problem with {needles:?}, got {problems:#?}"
    );
}
