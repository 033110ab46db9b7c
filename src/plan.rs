//! The plan: a plain, serialisable value — what will change, per resource, with before and
//! after, why, and which attributes force a replacement. Produced by the pure planner, saved by
//! `plan --out`, carried out unchanged by the executor. Rendering is the caller's job (see
//! `render`).

use crate::addr::ResourceAddr;
use crate::diag::Diagnostic;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

pub const PLAN_FORMAT: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    NoOp,
    Create,
    Update,
    Replace,
    Delete,
    /// Record an existing resource in the state without touching it (adopted VPC, or a
    /// resource created by an interrupted run that carries this state's tag).
    Adopt,
    /// Drop from the state without an API call (adopted VPC on destroy, or already gone).
    Forget,
}

impl Action {
    pub fn symbol(self) -> &'static str {
        match self {
            Action::NoOp => " ",
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
            Action::Adopt => "<=",
            Action::Forget => "x",
        }
    }

    pub fn is_change(self) -> bool {
        !matches!(self, Action::NoOp)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedChange {
    pub addr: ResourceAddr,
    pub action: Action,
    pub cloud_id: Option<String>,
    /// Live (or last recorded) attributes; `None` when the resource does not exist.
    pub before: Option<Value>,
    /// Desired attributes; `${...}` strings are "known after apply".
    pub after: Option<Value>,
    /// Changed attributes that force the replacement.
    #[serde(default)]
    pub replace_because: Vec<String>,
    /// Attributes whose live value differs from what eksnet last applied.
    #[serde(default)]
    pub drift: Vec<String>,
    /// Why the action is what it is, when the attributes alone do not say.
    pub reason: Option<Reason>,
    /// What this resource depends on (recorded in the state for later destroys).
    #[serde(default)]
    pub dependencies: Vec<ResourceAddr>,
    /// Outputs read during refresh, written to the state for adopt and no-op changes.
    #[serde(default)]
    pub observed_outputs: Option<Value>,
    /// `lifecycle.prevent_destroy` as the spec has it, written to the state with the row.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prevent_destroy: bool,
    /// A replacement that creates the new object, and waits for it to be usable, before it
    /// deletes the old one (nodegroups: the cluster keeps its nodes throughout).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create_before_destroy: bool,
    /// Cloud ids of objects an interrupted create-before-destroy replacement left to delete
    /// (the state's `deposed`): deleted after this change's own step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deposed: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub format: u32,
    pub destroy: bool,
    /// The spec exactly as planned, so a saved plan applies that spec and not a later edit.
    pub spec_path: String,
    pub spec_source: String,
    pub state_lineage: String,
    pub state_serial: i64,
    /// In dependency order (reverse order for destroy).
    pub changes: Vec<PlannedChange>,
    #[serde(default)]
    pub warnings: Vec<Diagnostic>,
    /// Max pods and pod subnet capacity per cluster (`capacity`), when it could be assessed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sizing: Option<crate::sizing::Sizing>,
}

impl PlannedChange {
    /// Anything to do: the action, or old objects left to delete.
    pub fn is_change(&self) -> bool {
        self.action.is_change() || !self.deposed.is_empty()
    }

    /// `+/-` for a replacement that creates first, as Terraform shows it.
    pub fn symbol(&self) -> &'static str {
        if self.action == Action::Replace && self.create_before_destroy {
            "+/-"
        } else {
            self.action.symbol()
        }
    }
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(PlannedChange::is_change)
    }

    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let n = |a: Action| self.changes.iter().filter(|c| c.action == a).count();
        (
            n(Action::Create),
            n(Action::Update),
            n(Action::Replace),
            // Old objects an interrupted replacement left are destroyed too.
            n(Action::Delete) + self.changes.iter().map(|c| c.deposed.len()).sum::<usize>(),
        )
    }
}

/// Why a resource is only recorded in or dropped from the state, with no change in AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgotten {
    /// An adopted VPC: eksnet never deletes it.
    Adopted,
    /// It no longer exists.
    AlreadyGone,
}

/// Why a change is planned, when its attributes alone do not say it. Saved plans and `--json`
/// carry it as its text, which `FromStr` reads back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Reason {
    /// In the state but no longer in the spec; `Some` when it is only forgotten.
    RemovedFromSpec(Option<Forgotten>),
    /// Destroy only forgets it.
    Forgotten(Forgotten),
    /// A cluster or nodegroup whose deletion is under way is created again after it.
    StillBeingDeleted,
    /// The state has it, AWS does not.
    DeletedOutsideEksnet,
    /// `--replace ADDR`.
    ReplaceRequested,
    AdoptingExistingVpc,
    /// `aws_node` settings found in place on the DaemonSet.
    SettingsAlreadyInPlace,
    /// Created by a run that was interrupted before recording it.
    FoundAfterInterruptedRun,
    /// A subnet inside a secondary block that is replaced goes (and comes back) with it.
    InReplacedBlock(ResourceAddr),
    /// A create-before-destroy replacement was interrupted before its new object existed:
    /// it is created now, and the old one deleted after.
    ResumesReplacement,
}

const IN_BLOCK_PREFIX: &str = "it lies in ";
const IN_BLOCK_SUFFIX: &str =
    ", which is replaced, and AWS cannot disassociate a block that still has subnets";

impl fmt::Display for Forgotten {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Forgotten::Adopted => "adopted, so never deleted by eksnet",
            Forgotten::AlreadyGone => "already gone",
        })
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::RemovedFromSpec(None) => f.write_str("removed from the spec"),
            Reason::RemovedFromSpec(Some(why)) => write!(f, "removed from the spec; {why}"),
            Reason::Forgotten(why) => write!(f, "{why}"),
            Reason::StillBeingDeleted => {
                f.write_str("it is still being deleted; it is created again once that has finished")
            }
            Reason::DeletedOutsideEksnet => f.write_str("deleted outside eksnet"),
            Reason::ReplaceRequested => f.write_str("replacement requested with --replace"),
            Reason::AdoptingExistingVpc => f.write_str("adopting existing VPC"),
            Reason::SettingsAlreadyInPlace => f.write_str("the settings are already in place"),
            Reason::FoundAfterInterruptedRun => {
                f.write_str("found in AWS after an interrupted run")
            }
            Reason::InReplacedBlock(block) => {
                write!(f, "{IN_BLOCK_PREFIX}{block}{IN_BLOCK_SUFFIX}")
            }
            Reason::ResumesReplacement => f.write_str(
                "it finishes an interrupted replacement; the old one is deleted once this one is ready",
            ),
        }
    }
}

impl std::str::FromStr for Reason {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let forgotten = |t: &str| {
            [Forgotten::Adopted, Forgotten::AlreadyGone]
                .into_iter()
                .find(|f| f.to_string() == t)
        };
        if let Some(block) = s
            .strip_prefix(IN_BLOCK_PREFIX)
            .and_then(|r| r.strip_suffix(IN_BLOCK_SUFFIX))
        {
            return Ok(Reason::InReplacedBlock(block.parse()?));
        }
        if let Some(rest) = s.strip_prefix("removed from the spec; ") {
            return forgotten(rest)
                .map(|f| Reason::RemovedFromSpec(Some(f)))
                .ok_or_else(|| format!("unknown reason `{s}`"));
        }
        if let Some(f) = forgotten(s) {
            return Ok(Reason::Forgotten(f));
        }
        [
            Reason::RemovedFromSpec(None),
            Reason::StillBeingDeleted,
            Reason::DeletedOutsideEksnet,
            Reason::ReplaceRequested,
            Reason::AdoptingExistingVpc,
            Reason::SettingsAlreadyInPlace,
            Reason::FoundAfterInterruptedRun,
            Reason::ResumesReplacement,
        ]
        .into_iter()
        .find(|r| r.to_string() == s)
        .ok_or_else(|| format!("unknown reason `{s}`"))
    }
}

impl From<Reason> for String {
    fn from(r: Reason) -> String {
        r.to_string()
    }
}

impl TryFrom<String> for Reason {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::Kind;

    /// Saved plans carry reasons as text: every reason reads back as itself.
    #[test]
    fn every_reason_round_trips_through_its_text() {
        let all = [
            Reason::RemovedFromSpec(None),
            Reason::RemovedFromSpec(Some(Forgotten::Adopted)),
            Reason::RemovedFromSpec(Some(Forgotten::AlreadyGone)),
            Reason::Forgotten(Forgotten::Adopted),
            Reason::Forgotten(Forgotten::AlreadyGone),
            Reason::StillBeingDeleted,
            Reason::DeletedOutsideEksnet,
            Reason::ReplaceRequested,
            Reason::AdoptingExistingVpc,
            Reason::SettingsAlreadyInPlace,
            Reason::FoundAfterInterruptedRun,
            Reason::InReplacedBlock(ResourceAddr::new(Kind::CidrBlock, "pods")),
            Reason::ResumesReplacement,
        ];
        for r in all {
            let json = serde_json::to_value(&r).unwrap();
            assert!(json.is_string(), "{json}");
            assert_eq!(serde_json::from_value::<Reason>(json).unwrap(), r);
        }
        assert!("no such reason".parse::<Reason>().is_err());
    }
}
