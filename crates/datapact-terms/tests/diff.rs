//! What `apply` changes: create, update, prune, and the status rules.

use datapact_core::LicenseeStatus;
use datapact_terms::*;

const BASE: &str = r#"
[[plan]]
name = "basic"
monthly_records = 10000
rate_limits = { search = "60/15m", lookup = "300/15m" }
endpoints = ["search", "lookup"]
purposes = ["search", "ai-input"]

[[plan]]
name = "pro"
rate_limits = { search = "600/15m" }
endpoints = ["search"]
purposes = ["all"]

[[licensee]]
name = "acme"
plan = "basic"
status = "blocked"
reason = "unpaid invoice"
starts = "2026-01-01"
ends = "2027-01-01"

[[licensee]]
name = "globex"
plan = "pro"
"#;

/// The stored terms after applying `text` to nothing.
fn stored(text: &str) -> Terms {
    let file = parse_terms(text).unwrap();
    let diff = diff_terms(&Terms::default(), &file, false).unwrap();
    diff.apply_to(&Terms::default())
}

fn diff(current: &Terms, text: &str, prune: bool) -> TermsDiff {
    diff_terms(current, &parse_terms(text).unwrap(), prune).unwrap()
}

#[test]
fn first_apply_creates_everything() {
    let d = diff(&Terms::default(), BASE, false);
    assert_eq!(d.plans.len(), 2);
    assert!(d.plans.iter().all(|c| matches!(c, Change::Create { .. })));
    assert_eq!(d.licensees.len(), 2);
    let terms = d.apply_to(&Terms::default());
    let acme = terms.licensee("acme").unwrap();
    assert_eq!((acme.status, acme.reason.as_str()), (LicenseeStatus::Blocked, "unpaid invoice"));
    let globex = terms.licensee("globex").unwrap();
    assert_eq!((globex.status, globex.reason.as_str()), (LicenseeStatus::Active, ""), "created without status: active");
    let statuses = d.status_changes();
    assert_eq!(statuses.len(), 2);
    assert_eq!(statuses[0].from, None);
    let text = d.render();
    assert!(text.contains("plans: 2 to create, 0 to update, 0 to remove, 0 unchanged"), "{text}");
    assert!(text.contains("  + licensee \"acme\""), "{text}");
}

#[test]
fn applying_the_same_file_twice_changes_nothing() {
    let current = stored(BASE);
    let d = diff(&current, BASE, true);
    assert!(d.is_empty(), "{d:#?}");
    assert_eq!((d.unchanged_plans, d.unchanged_licensees), (2, 2));
    assert!(d.render().starts_with("no changes (2 plan(s) and 2 licensee(s) unchanged)"));
    // The stored terms rendered as a file are also a no-op.
    assert!(diff(&current, &current.to_toml(), true).is_empty(), "{}", current.to_toml());
}

#[test]
fn updates_carry_before_after_and_fields() {
    let current = stored(BASE);
    let edited = BASE.replace("monthly_records = 10000", "monthly_records = 20000").replace("60/15m", "120/15m");
    let d = diff(&current, &edited, false);
    assert_eq!(d.plans.len(), 1);
    let Change::Update { before, after, fields } = &d.plans[0] else { panic!("{:?}", d.plans[0]) };
    assert_eq!((before.monthly_records, after.monthly_records), (Some(10_000), Some(20_000)));
    let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(names, ["monthly_records", "rate_limits.search"]);
    assert_eq!((fields[1].before.as_str(), fields[1].after.as_str()), ("\"60/15m\"", "\"120/15m\""));
    assert!(d.licensees.is_empty());
    let text = d.render();
    assert!(text.contains("  ~ plan \"basic\"\n      monthly_records: 10000 → 20000\n"), "{text}");
}

#[test]
fn status_changes_only_when_the_file_sets_it() {
    let current = stored(BASE);
    // No status in the file: the stored blocked status and its reason stay, even when other fields change.
    let without_status = BASE.replace("status = \"blocked\"\nreason = \"unpaid invoice\"\n", "monthly_records = 5\n");
    let d = diff(&current, &without_status, false);
    let Change::Update { after, fields, .. } = &d.licensees[0] else { panic!() };
    assert_eq!((after.status, after.reason.as_str()), (LicenseeStatus::Blocked, "unpaid invoice"));
    assert_eq!(fields.iter().map(|f| f.field.as_str()).collect::<Vec<_>>(), ["overrides.monthly_records"]);
    assert!(d.status_changes().is_empty());

    // Setting status: it changes, with the file's reason.
    let unblocked = BASE.replace("status = \"blocked\"\nreason = \"unpaid invoice\"", "status = \"active\"");
    let d = diff(&current, &unblocked, false);
    let Change::Update { before, after, .. } = &d.licensees[0] else { panic!() };
    assert_eq!(before.status, LicenseeStatus::Blocked);
    assert_eq!((after.status, after.reason.as_str()), (LicenseeStatus::Active, ""), "status without reason clears it");
    let changes = d.status_changes();
    assert_eq!(changes.len(), 1);
    assert_eq!((changes[0].from, changes[0].to), (Some(LicenseeStatus::Blocked), LicenseeStatus::Active));

    // A licensee blocked in the store (e.g. by `licensee block`) and absent status in the file stays blocked.
    let mut blocked = stored(BASE);
    blocked.licensees[1].status = LicenseeStatus::Blocked;
    blocked.licensees[1].reason = "abuse".into();
    assert!(diff(&blocked, &without_status.replace("monthly_records = 5\n", ""), false).licensees.is_empty());
}

#[test]
fn missing_entries_are_kept_unless_pruned() {
    let current = stored(BASE);
    let only_basic = r#"
[[plan]]
name = "basic"
monthly_records = 10000
rate_limits = { search = "60/15m", lookup = "300/15m" }
endpoints = ["search", "lookup"]
purposes = ["search", "ai-input"]
"#;
    let kept = diff(&current, only_basic, false);
    assert!(kept.is_empty(), "{kept:#?}");
    assert!(kept.render().contains("unchanged"));

    let pruned = diff(&current, only_basic, true);
    let removed: Vec<&str> =
        pruned.licensees.iter().filter_map(|c| c.before()).map(|l| l.terms.name.as_str()).collect();
    assert_eq!(removed, ["acme", "globex"]);
    assert!(matches!(&pruned.plans[..], [Change::Remove { before }] if before.name == "pro"));
    let after = pruned.apply_to(&current);
    assert_eq!(after.plans.len(), 1);
    assert!(after.licensees.is_empty());
    assert!(pruned.render().contains("  - plan \"pro\""));
}

#[test]
fn a_result_that_breaks_a_kept_licensee_is_refused() {
    let mut current = stored(BASE);
    // A stored licensee (not in the next file) that allows lookup on "pro" through its own rate limit...
    current.licensees[1].terms.overrides.endpoints = Some([datapact_core::Endpoint::Lookup].into_iter().collect());
    current.licensees[1].terms.overrides.rate_limits.insert(datapact_core::Endpoint::Lookup, "5/s".parse().unwrap());
    // ...survives a plan update; but one that names a plan the file does not have and prune removes is refused.
    let file = parse_terms(
        r#"
[[plan]]
name = "basic"
rate_limits = { search = "60/15m" }
endpoints = ["search"]
purposes = ["search"]
[[licensee]]
name = "acme"
plan = "basic"
"#,
    )
    .unwrap();
    assert!(diff_terms(&current, &file, false).is_ok(), "globex keeps plan pro");
    // Pruning removes globex and pro together: fine.
    assert!(diff_terms(&current, &file, true).is_ok());
    // A stored licensee whose plan loses a rate limit it needs is refused.
    let mut current = stored(BASE);
    current.licensees[1].terms.plan = "basic".into();
    current.licensees[1].terms.overrides.endpoints = Some([datapact_core::Endpoint::Lookup].into_iter().collect());
    let error = diff_terms(&current, &file, false).unwrap_err();
    assert!(error.to_string().contains("licensee \"globex\" (kept from the current terms)"), "{error}");
    assert!(error.to_string().contains("lookup"), "{error}");
}

#[test]
fn diffs_serialize_for_dry_run_json() {
    let d = diff(&Terms::default(), BASE, false);
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["plans"][0]["action"], "create");
    assert_eq!(json["licensees"][0]["after"]["status"], "blocked");
    assert_eq!(json["licensees"][0]["after"]["starts"], "2026-01-01");
}
