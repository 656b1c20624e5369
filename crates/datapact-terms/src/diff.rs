//! What `datapact apply` changes: pure data the CLI prints for `--dry-run` and the store applies.

use std::fmt::Write as _;

use datapact_core::LicenseeStatus;
use serde::Serialize;

use crate::agreement::Agreement;
use crate::model::{LicenseeRecord, Plan, Terms, TermsFile};
use crate::parse::{TermsError, TermsProblem};

/// One field that differs, both sides rendered as text (`(none)` when unset).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// Dotted for nested values: `rate_limits.search`, `overrides.monthly_records`.
    pub field: String,
    /// The old value (`(none)` when unset).
    pub before: String,
    /// The new value (`(none)` when unset).
    pub after: String,
}

/// A change to one plan or licensee.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Change<T> {
    /// Created by this apply.
    Create {
        /// The new state.
        after: T,
    },
    /// Changed by this apply.
    Update {
        /// The stored state.
        before: T,
        /// The new state.
        after: T,
        /// The fields that differ.
        fields: Vec<FieldChange>,
    },
    /// Only with `prune`.
    Remove {
        /// The stored state.
        before: T,
    },
}

impl<T> Change<T> {
    /// The state after the change (`None` for a removal).
    pub fn after(&self) -> Option<&T> {
        match self {
            Change::Create { after } | Change::Update { after, .. } => Some(after),
            Change::Remove { .. } => None,
        }
    }

    /// The state before the change (`None` for a creation).
    pub fn before(&self) -> Option<&T> {
        match self {
            Change::Update { before, .. } | Change::Remove { before } => Some(before),
            Change::Create { .. } => None,
        }
    }
}

/// A licensee whose status changes, for the audit log and the violation/blocking records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatusChange {
    /// The licensee's name.
    pub licensee: String,
    /// `None` when the licensee is created by this apply.
    pub from: Option<LicenseeStatus>,
    /// The new status.
    pub to: LicenseeStatus,
    /// The new reason (empty when none).
    pub reason: String,
}

/// Everything an apply changes. Plans come first in application order: create/update plans, then create/update
/// licensees, then remove licensees, then remove plans (so no licensee ever points at a missing plan).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TermsDiff {
    /// Plan changes: creations and updates in file order, then removals.
    pub plans: Vec<Change<Plan>>,
    /// Licensee changes: creations and updates in file order, then removals.
    pub licensees: Vec<Change<LicenseeRecord>>,
    /// Plans in the file equal to the stored ones.
    pub unchanged_plans: usize,
    /// Licensees in the file equal to the stored ones.
    pub unchanged_licensees: usize,
    /// Whether entries missing from the file are removed.
    pub prune: bool,
}

/// Computes what applying `file` to `current` changes.
///
/// Rules: plans and licensees in the file are created or updated (an update only when something differs); those
/// missing from the file are left alone unless `prune`, then removed. A licensee's `status` changes only when the
/// file sets `status`; when it does, `reason` becomes the file's (empty if the file has none). A licensee created
/// without `status` is `active`. Fails if the result would leave a licensee whose agreement does not resolve (e.g. a
/// plan update removes a rate limit that a licensee outside the file relies on).
pub fn diff_terms(current: &Terms, file: &TermsFile, prune: bool) -> Result<TermsDiff, TermsError> {
    let mut plans = Vec::new();
    let mut unchanged_plans = 0;
    for plan in &file.plans {
        match current.plan(&plan.name) {
            None => plans.push(Change::Create { after: plan.clone() }),
            Some(before) if before == plan => unchanged_plans += 1,
            Some(before) => plans.push(Change::Update {
                fields: field_changes(before, plan),
                before: before.clone(),
                after: plan.clone(),
            }),
        }
    }
    let mut licensees = Vec::new();
    let mut unchanged_licensees = 0;
    for spec in &file.licensees {
        let before = current.licensee(&spec.terms.name);
        let (status, reason) = match (spec.status, before) {
            (Some(status), _) => (status, spec.reason.clone().unwrap_or_default()),
            (None, Some(before)) => (before.status, before.reason.clone()),
            (None, None) => (LicenseeStatus::Active, String::new()),
        };
        let after = LicenseeRecord { terms: spec.terms.clone(), status, reason };
        match before {
            None => licensees.push(Change::Create { after }),
            Some(before) if *before == after => unchanged_licensees += 1,
            Some(before) => {
                licensees.push(Change::Update { fields: field_changes(before, &after), before: before.clone(), after })
            }
        }
    }
    if prune {
        for before in &current.licensees {
            if !file.licensees.iter().any(|l| l.terms.name == before.terms.name) {
                licensees.push(Change::Remove { before: before.clone() });
            }
        }
        for before in &current.plans {
            if !file.plans.iter().any(|p| p.name == before.name) {
                plans.push(Change::Remove { before: before.clone() });
            }
        }
    }
    let diff = TermsDiff { plans, licensees, unchanged_plans, unchanged_licensees, prune };
    check_result(&diff.apply_to(current))?;
    Ok(diff)
}

fn check_result(terms: &Terms) -> Result<(), TermsError> {
    let mut problems = Vec::new();
    for licensee in &terms.licensees {
        let at = format!("licensee {:?} (kept from the current terms)", licensee.terms.name);
        match terms.plan(&licensee.terms.plan) {
            None => problems.push(TermsProblem {
                at,
                message: format!(
                    "its plan {:?} would no longer exist: keep the plan in the file, or prune or move the licensee",
                    licensee.terms.plan
                ),
            }),
            Some(plan) => {
                if let Err(message) = Agreement::resolve(plan, &licensee.terms) {
                    problems.push(TermsProblem { at, message });
                }
            }
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(TermsError { problems }) }
}

impl TermsDiff {
    /// Whether the apply changes nothing.
    pub fn is_empty(&self) -> bool {
        self.plans.is_empty() && self.licensees.is_empty()
    }

    /// The terms after this diff (what the store must hold once it has applied it).
    pub fn apply_to(&self, current: &Terms) -> Terms {
        let mut terms = current.clone();
        for change in &self.plans {
            match change {
                Change::Create { after } => terms.plans.push(after.clone()),
                Change::Update { after, .. } => {
                    if let Some(slot) = terms.plans.iter_mut().find(|p| p.name == after.name) {
                        *slot = after.clone();
                    }
                }
                Change::Remove { before } => terms.plans.retain(|p| p.name != before.name),
            }
        }
        for change in &self.licensees {
            match change {
                Change::Create { after } => terms.licensees.push(after.clone()),
                Change::Update { after, .. } => {
                    if let Some(slot) = terms.licensees.iter_mut().find(|l| l.terms.name == after.terms.name) {
                        *slot = after.clone();
                    }
                }
                Change::Remove { before } => terms.licensees.retain(|l| l.terms.name != before.terms.name),
            }
        }
        terms
    }

    /// Licensees whose status this diff sets to something new (including created ones), for the audit log.
    pub fn status_changes(&self) -> Vec<StatusChange> {
        self.licensees
            .iter()
            .filter_map(|change| {
                let after = change.after()?;
                let from = change.before().map(|b| b.status);
                (from != Some(after.status) || change.before().is_some_and(|b| b.reason != after.reason)).then(|| {
                    StatusChange {
                        licensee: after.terms.name.clone(),
                        from,
                        to: after.status,
                        reason: after.reason.clone(),
                    }
                })
            })
            .collect()
    }

    /// A human-readable summary, one line per change, for `apply --dry-run` and `apply`'s report.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if self.is_empty() {
            let _ = writeln!(
                out,
                "no changes ({} plan(s) and {} licensee(s) unchanged)",
                self.unchanged_plans, self.unchanged_licensees
            );
            return out;
        }
        render_group(&mut out, "plan", &self.plans, |p| &p.name, self.unchanged_plans);
        render_group(&mut out, "licensee", &self.licensees, |l| &l.terms.name, self.unchanged_licensees);
        if !self.prune {
            out.push_str("(plans and licensees missing from the file are kept; --prune removes them)\n");
        }
        out
    }
}

fn render_group<T>(out: &mut String, kind: &str, changes: &[Change<T>], name: impl Fn(&T) -> &str, unchanged: usize) {
    let count = |f: fn(&Change<T>) -> bool| changes.iter().filter(|c| f(c)).count();
    let _ = writeln!(
        out,
        "{kind}s: {} to create, {} to update, {} to remove, {unchanged} unchanged",
        count(|c| matches!(c, Change::Create { .. })),
        count(|c| matches!(c, Change::Update { .. })),
        count(|c| matches!(c, Change::Remove { .. })),
    );
    for change in changes {
        match change {
            Change::Create { after } => {
                let _ = writeln!(out, "  + {kind} {:?}", name(after));
            }
            Change::Remove { before } => {
                let _ = writeln!(out, "  - {kind} {:?}", name(before));
            }
            Change::Update { after, fields, .. } => {
                let _ = writeln!(out, "  ~ {kind} {:?}", name(after));
                for f in fields {
                    let _ = writeln!(out, "      {}: {} → {}", f.field, f.before, f.after);
                }
            }
        }
    }
}

/// Field-by-field differences of two serializable values (one level of nesting is expanded).
pub fn field_changes<T: Serialize>(before: &T, after: &T) -> Vec<FieldChange> {
    let before = serde_json::to_value(before).unwrap_or_default();
    let after = serde_json::to_value(after).unwrap_or_default();
    let mut out = Vec::new();
    compare("", &before, &after, 0, &mut out);
    out
}

fn compare(
    path: &str,
    before: &serde_json::Value,
    after: &serde_json::Value,
    depth: usize,
    out: &mut Vec<FieldChange>,
) {
    use serde_json::Value;
    if before == after {
        return;
    }
    let empty = serde_json::Map::new();
    match (before, after) {
        (Value::Object(_) | Value::Null, Value::Object(_) | Value::Null)
            if depth < 2 && !(before.is_null() && after.is_null()) =>
        {
            let b = before.as_object().unwrap_or(&empty);
            let a = after.as_object().unwrap_or(&empty);
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let field = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                compare(&field, b.get(key).unwrap_or(&Value::Null), a.get(key).unwrap_or(&Value::Null), depth + 1, out);
            }
        }
        _ => out.push(FieldChange { field: path.to_owned(), before: show(before), after: show(after) }),
    }
}

fn show(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "(none)".into(),
        serde_json::Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}
