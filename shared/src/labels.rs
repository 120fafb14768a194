//! Staging-label logic, as pure functions over a secret's version → labels map.
//!
//! Everything a step decides about labels (is this version current or pending,
//! what finishSecret must move, whether another rotation is in flight) is decided
//! here, from the `VersionIdsToStages` of one DescribeSecret, with no I/O, so that
//! it can be tested exhaustively. Nothing here ever sees a secret value.

use std::collections::BTreeMap;

/// The label of the version in use.
pub const AWSCURRENT: &str = "AWSCURRENT";
/// The label of the version being rotated to.
pub const AWSPENDING: &str = "AWSPENDING";
/// The label Secrets Manager gives the version that was current before the last rotation.
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";

/// A secret's versions and their staging labels (DescribeSecret's `VersionIdsToStages`).
///
/// ```
/// use rotor_core::labels::{AWSCURRENT, AWSPENDING, Precheck, Refusal, Versions};
///
/// // A rotation to v2 is staged; v1 is current.
/// let versions = Versions::new([
///     ("v1".to_owned(), vec![AWSCURRENT.to_owned()]),
///     ("v2".to_owned(), vec![AWSPENDING.to_owned()]),
/// ]);
/// assert_eq!(versions.current(), Some("v1"));
/// assert_eq!(versions.precheck("v2", AWSPENDING), Ok(Precheck::Pending));
/// assert_eq!(versions.precheck("v9", AWSPENDING), Err(Refusal::UnknownVersion));
///
/// // finishSecret: AWSCURRENT moves from v1 to v2, then AWSPENDING comes off v2.
/// let plan = versions.finish_plan("v2", AWSPENDING);
/// assert_eq!(plan.len(), 2);
/// assert_eq!((plan[0].label.as_str(), plan[0].to.as_deref()), (AWSCURRENT, Some("v2")));
/// assert_eq!((plan[1].label.as_str(), plan[1].from.as_deref()), (AWSPENDING, Some("v2")));
///
/// // Once finished, the plan is empty: a replayed finishSecret moves nothing.
/// let finished = Versions::new([
///     ("v1".to_owned(), vec!["AWSPREVIOUS".to_owned()]),
///     ("v2".to_owned(), vec![AWSCURRENT.to_owned()]),
/// ]);
/// assert!(finished.finish_plan("v2", AWSPENDING).is_empty());
/// assert_eq!(finished.precheck("v2", AWSPENDING), Ok(Precheck::AlreadyCurrent));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Versions(BTreeMap<String, Vec<String>>);

/// What the service's pre-checks conclude about the event's version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precheck {
    /// The version already is AWSCURRENT: the step has nothing left to do (except
    /// finishSecret tidying a stale pending label, see [`Versions::finish_plan`]).
    AlreadyCurrent,
    /// The version is pending: run the step.
    Pending,
}

/// Why the service's pre-checks refuse the event's version; the rotation core
/// turns it into an error that names the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The token is not a version of the secret.
    UnknownVersion,
    /// The version is neither current nor pending; these are its labels.
    NotPending(Vec<String>),
}

/// One UpdateSecretVersionStage call: put `label` on `to` and take it off `from`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelMove {
    /// The staging label to move.
    pub label: String,
    /// The version that gets the label, if any.
    pub to: Option<String>,
    /// The version that loses the label, if any.
    pub from: Option<String>,
}

impl Versions {
    /// Builds the map from (version id, labels) pairs.
    pub fn new<I, L>(versions: I) -> Self
    where
        I: IntoIterator<Item = (String, L)>,
        L: IntoIterator<Item = String>,
    {
        Versions(
            versions
                .into_iter()
                .map(|(id, labels)| (id, labels.into_iter().collect()))
                .collect(),
        )
    }

    /// The labels of a version, or `None` if the secret has no such version.
    pub fn labels_of(&self, version: &str) -> Option<&[String]> {
        self.0.get(version).map(Vec::as_slice)
    }

    /// Whether the version carries the label.
    pub fn has_label(&self, version: &str, label: &str) -> bool {
        self.labels_of(version)
            .is_some_and(|labels| labels.iter().any(|l| l == label))
    }

    /// The version that carries a label (a label is on at most one version).
    pub fn with_label(&self, label: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(_, labels)| labels.iter().any(|l| l == label))
            .map(|(id, _)| id.as_str())
    }

    /// The AWSCURRENT version.
    pub fn current(&self) -> Option<&str> {
        self.with_label(AWSCURRENT)
    }

    /// The AWSPREVIOUS version.
    pub fn previous(&self) -> Option<&str> {
        self.with_label(AWSPREVIOUS)
    }

    /// All versions, in version-id order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.0
            .iter()
            .map(|(id, labels)| (id.as_str(), labels.as_slice()))
    }

    /// The service's checks before any step: the token must be a version of the
    /// secret, and either already current (nothing to do) or pending.
    pub fn precheck(&self, token: &str, pending_label: &str) -> Result<Precheck, Refusal> {
        let Some(labels) = self.labels_of(token) else {
            return Err(Refusal::UnknownVersion);
        };
        if labels.iter().any(|l| l == AWSCURRENT) {
            Ok(Precheck::AlreadyCurrent)
        } else if labels.iter().any(|l| l == pending_label) {
            Ok(Precheck::Pending)
        } else {
            Err(Refusal::NotPending(labels.to_vec()))
        }
    }

    /// The label moves that finish a rotation to `token`, in order: AWSCURRENT moves
    /// to the token (Secrets Manager then puts AWSPREVIOUS on the old current
    /// version by itself), then the pending label comes off the token. Replaying
    /// the plan after a partial run yields only what is left to do, and nothing
    /// once the rotation is finished.
    pub fn finish_plan(&self, token: &str, pending_label: &str) -> Vec<LabelMove> {
        let mut moves = Vec::new();
        match self.current() {
            Some(current) if current == token => {}
            current => moves.push(LabelMove {
                label: AWSCURRENT.to_owned(),
                to: Some(token.to_owned()),
                from: current.map(str::to_owned),
            }),
        }
        if self.has_label(token, pending_label) {
            moves.push(stale_pending_removal(token, pending_label));
        }
        moves
    }

    /// A rotation in flight on another version: the pending label sits on a
    /// version that is neither `token` nor current. Starting a second rotation
    /// then would strand the first one's credential.
    pub fn rotation_in_progress(&self, token: &str, pending_label: &str) -> Option<&str> {
        self.with_label(pending_label)
            .filter(|version| *version != token && !self.has_label(version, AWSCURRENT))
    }
}

/// The move that takes a stale pending label off the version that is now current.
fn stale_pending_removal(version: &str, pending_label: &str) -> LabelMove {
    LabelMove {
        label: pending_label.to_owned(),
        to: None,
        from: Some(version.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions(entries: &[(&str, &[&str])]) -> Versions {
        Versions::new(entries.iter().map(|(id, labels)| {
            (
                id.to_string(),
                labels.iter().map(|l| l.to_string()).collect::<Vec<_>>(),
            )
        }))
    }

    #[test]
    fn finds_current_previous_and_pending() {
        let v = versions(&[
            ("a", &[AWSPREVIOUS]),
            ("b", &[AWSCURRENT]),
            ("c", &[AWSPENDING]),
        ]);
        assert_eq!(v.current(), Some("b"));
        assert_eq!(v.previous(), Some("a"));
        assert_eq!(v.with_label(AWSPENDING), Some("c"));
        assert_eq!(v.with_label("nope"), None);
    }

    #[test]
    fn precheck_follows_the_service_contract() {
        let v = versions(&[
            ("cur", &[AWSCURRENT]),
            ("pend", &[AWSPENDING]),
            ("old", &[]),
        ]);
        assert_eq!(v.precheck("pend", AWSPENDING), Ok(Precheck::Pending));
        assert_eq!(v.precheck("cur", AWSPENDING), Ok(Precheck::AlreadyCurrent));
        assert_eq!(v.precheck("zzz", AWSPENDING), Err(Refusal::UnknownVersion));
        assert_eq!(
            v.precheck("old", AWSPENDING),
            Err(Refusal::NotPending(vec![]))
        );
    }

    #[test]
    fn custom_pending_label() {
        let v = versions(&[("cur", &[AWSCURRENT]), ("new", &["MyPendingLabel"])]);
        assert_eq!(
            v.precheck("new", "MyPendingLabel").unwrap(),
            Precheck::Pending
        );
        assert!(v.precheck("new", AWSPENDING).is_err());
        assert_eq!(
            v.finish_plan("new", "MyPendingLabel"),
            vec![
                LabelMove {
                    label: AWSCURRENT.into(),
                    to: Some("new".into()),
                    from: Some("cur".into())
                },
                LabelMove {
                    label: "MyPendingLabel".into(),
                    to: None,
                    from: Some("new".into())
                },
            ]
        );
    }

    #[test]
    fn finish_plan_is_idempotent_across_partial_runs() {
        let start = versions(&[("old", &[AWSCURRENT]), ("new", &[AWSPENDING])]);
        assert_eq!(start.finish_plan("new", AWSPENDING).len(), 2);
        // AWSCURRENT moved, then the function died before tidying AWSPENDING.
        let half = versions(&[("old", &[AWSPREVIOUS]), ("new", &[AWSCURRENT, AWSPENDING])]);
        assert_eq!(
            half.finish_plan("new", AWSPENDING),
            vec![LabelMove {
                label: AWSPENDING.into(),
                to: None,
                from: Some("new".into())
            }]
        );
        let done = versions(&[("old", &[AWSPREVIOUS]), ("new", &[AWSCURRENT])]);
        assert!(done.finish_plan("new", AWSPENDING).is_empty());
    }

    #[test]
    fn finish_plan_without_a_current_version_only_adds_the_label() {
        let v = versions(&[("new", &[AWSPENDING])]);
        assert_eq!(v.finish_plan("new", AWSPENDING)[0].from, None);
    }

    #[test]
    fn detects_a_rotation_in_progress_elsewhere() {
        let v = versions(&[("cur", &[AWSCURRENT]), ("other", &[AWSPENDING])]);
        assert_eq!(v.rotation_in_progress("mine", AWSPENDING), Some("other"));
        assert_eq!(v.rotation_in_progress("other", AWSPENDING), None);
        // AWSPENDING left on the current version is not a rotation in flight.
        let tidy = versions(&[("cur", &[AWSCURRENT, AWSPENDING])]);
        assert_eq!(tidy.rotation_in_progress("mine", AWSPENDING), None);
    }
}
