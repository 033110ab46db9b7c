//! The plan: a plain, serialisable value — what will change, per resource, with before and
//! after, why, and which attributes force a replacement. Produced by the pure planner, saved by
//! `plan --out`, carried out unchanged by the executor. Rendering is the caller's job (see
//! `render`).

pub mod graph;
pub mod inventory;
pub mod nodes;
pub mod planner;
pub mod render;
pub mod routes;

use crate::base::addr::ResourceAddr;
use crate::base::diag::Diagnostic;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The format of saved plans. 2: reasons are codes (1: their English text).
pub const PLAN_FORMAT: u32 = 2;

// The action vocabulary sits below the domain rules, which judge planned changes by it.
pub use crate::base::action::Action;

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
    /// A removal that hands over to these resources: their apply steps wait for this change's
    /// destroy step, and it waits for no other deletion (the `aws_node` patch undone before
    /// the `vpc-cni` add-on takes its settings over; see `domain::cni::handovers`). Written
    /// by the planner, so the executor makes no ordering decision of its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hands_over_to: Vec<ResourceAddr>,
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
    pub sizing: Option<crate::nodes::sizing::Sizing>,
    /// For each pod subnet: the route table it uses once applied, what of it leaves the VPC,
    /// and how pods' traffic leaves the VPC (see `routes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pod_subnet_routes: Vec<routes::PodSubnetRoute>,
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
            // Putting an object made elsewhere back as it was changes it in place.
            n(Action::Update) + n(Action::PutBack),
            n(Action::Replace),
            // Old objects an interrupted replacement left are destroyed too.
            n(Action::Delete) + self.changes.iter().map(|c| c.deposed.len()).sum::<usize>(),
        )
    }
}

/// Why a resource is only recorded in or dropped from the state, with no change in AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Forgotten {
    /// An adopted VPC: eksnet never deletes it.
    Adopted,
    /// It no longer exists.
    AlreadyGone,
}

/// Why a change is planned, when its attributes alone do not say it. Saved plans and `--json`
/// carry it as a code (`{"code": "removed_from_spec", "forgotten": "adopted"}`); only the
/// renderer words it (`render::reason`), so rewording a message never breaks a saved plan.
/// Plans of format 1 carried the English text, read back by `legacy::reason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Reason {
    /// In the state but no longer in the spec; `forgotten` when it is only forgotten.
    RemovedFromSpec {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        forgotten: Option<Forgotten>,
    },
    /// Destroy only forgets it.
    Forgotten {
        forgotten: Forgotten,
    },
    /// A cluster or nodegroup whose deletion is under way is created again after it.
    StillBeingDeleted,
    /// The state has it, AWS does not.
    DeletedOutsideEksnet,
    /// `--replace ADDR`.
    ReplaceRequested,
    AdoptingExistingVpc,
    /// A cluster with `existing = true`: read and recorded, never changed.
    ReadingExistingCluster,
    /// `aws_node` settings found in place on the DaemonSet, or an existing add-on's
    /// configuration values already as the spec has them.
    SettingsAlreadyInPlace,
    /// Created by a run that was interrupted before recording it.
    FoundAfterInterruptedRun,
    /// A subnet inside a secondary block that is replaced goes (and comes back) with it.
    InReplacedBlock {
        block: ResourceAddr,
    },
    /// A create-before-destroy replacement was interrupted before its new object existed:
    /// it is created now, and the old one deleted after.
    ResumesReplacement,
}

/// Why a saved plan cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    /// Not JSON, or not the shape of a plan of its format.
    #[error("not a valid eksnet plan file: {source}")]
    Invalid {
        #[source]
        source: serde_json::Error,
    },
    /// Written by an eksnet whose plan format this one does not read.
    #[error("plan format {found} is not supported by this eksnet (it reads formats {oldest} to {PLAN_FORMAT})")]
    UnsupportedFormat { found: u64, oldest: u32 },
}

/// The oldest plan format this eksnet still reads.
pub const OLDEST_PLAN_FORMAT: u32 = 1;

impl Plan {
    /// Reads a saved plan (`plan --out`) of any supported format; the format is checked
    /// before the rest, so a plan from a newer eksnet is refused by its number, not by the
    /// first field it does not know.
    pub fn from_json(text: &str) -> Result<Plan, PlanFileError> {
        let value: Value =
            serde_json::from_str(text).map_err(|source| PlanFileError::Invalid { source })?;
        let found = value.get("format").and_then(Value::as_u64).unwrap_or(0);
        if found < u64::from(OLDEST_PLAN_FORMAT) || found > u64::from(PLAN_FORMAT) {
            return Err(PlanFileError::UnsupportedFormat {
                found,
                oldest: OLDEST_PLAN_FORMAT,
            });
        }
        let mut value = value;
        if found == 1 {
            legacy::upgrade(&mut value);
        }
        // `format` stays as found: `planner::upgrade` fills in what an older format leaves out.
        serde_json::from_value(value).map_err(|source| PlanFileError::Invalid { source })
    }
}

/// Plans of format 1 (before December 2026): reasons were saved as their English text. The
/// texts are frozen here, apart from the renderer, which may word reasons as it likes.
mod legacy {
    use super::{Forgotten, Reason};
    use serde_json::Value;

    const IN_BLOCK_PREFIX: &str = "it lies in ";
    const IN_BLOCK_SUFFIX: &str =
        ", which is replaced, and AWS cannot disassociate a block that still has subnets";

    fn forgotten(text: &str) -> Option<Forgotten> {
        match text {
            "adopted, so never deleted by eksnet" => Some(Forgotten::Adopted),
            "already gone" => Some(Forgotten::AlreadyGone),
            _ => None,
        }
    }

    /// A format-1 reason text as the reason it stood for.
    pub(super) fn reason(text: &str) -> Option<Reason> {
        if let Some(block) = text
            .strip_prefix(IN_BLOCK_PREFIX)
            .and_then(|r| r.strip_suffix(IN_BLOCK_SUFFIX))
        {
            return block
                .parse()
                .ok()
                .map(|block| Reason::InReplacedBlock { block });
        }
        if let Some(rest) = text.strip_prefix("removed from the spec; ") {
            return forgotten(rest).map(|f| Reason::RemovedFromSpec { forgotten: Some(f) });
        }
        if let Some(f) = forgotten(text) {
            return Some(Reason::Forgotten { forgotten: f });
        }
        Some(match text {
            "removed from the spec" => Reason::RemovedFromSpec { forgotten: None },
            "it is still being deleted; it is created again once that has finished" => {
                Reason::StillBeingDeleted
            }
            "deleted outside eksnet" => Reason::DeletedOutsideEksnet,
            "replacement requested with --replace" => Reason::ReplaceRequested,
            "adopting existing VPC" => Reason::AdoptingExistingVpc,
            "an existing cluster, only read" => Reason::ReadingExistingCluster,
            "the settings are already in place" => Reason::SettingsAlreadyInPlace,
            "found in AWS after an interrupted run" => Reason::FoundAfterInterruptedRun,
            "it finishes an interrupted replacement; the old one is deleted once this one is ready" => {
                Reason::ResumesReplacement
            }
            _ => return None,
        })
    }

    /// Rewrites a format-1 plan's reasons as codes. A text no eksnet ever wrote is left as
    /// it is, and the plan then fails to load with serde's message naming it.
    pub(super) fn upgrade(plan: &mut Value) {
        let Some(changes) = plan.get_mut("changes").and_then(Value::as_array_mut) else {
            return;
        };
        for change in changes {
            let Some(slot) = change.get_mut("reason") else {
                continue;
            };
            if let Some(r) = slot.as_str().and_then(reason) {
                if let Ok(v) = serde_json::to_value(r) {
                    *slot = v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::addr::Kind;

    fn every_reason() -> Vec<Reason> {
        vec![
            Reason::RemovedFromSpec { forgotten: None },
            Reason::RemovedFromSpec {
                forgotten: Some(Forgotten::Adopted),
            },
            Reason::RemovedFromSpec {
                forgotten: Some(Forgotten::AlreadyGone),
            },
            Reason::Forgotten {
                forgotten: Forgotten::Adopted,
            },
            Reason::Forgotten {
                forgotten: Forgotten::AlreadyGone,
            },
            Reason::StillBeingDeleted,
            Reason::DeletedOutsideEksnet,
            Reason::ReplaceRequested,
            Reason::AdoptingExistingVpc,
            Reason::ReadingExistingCluster,
            Reason::SettingsAlreadyInPlace,
            Reason::FoundAfterInterruptedRun,
            Reason::InReplacedBlock {
                block: ResourceAddr::new(Kind::CidrBlock, "pods"),
            },
            Reason::ResumesReplacement,
        ]
    }

    /// Saved plans carry reasons as codes: every reason reads back as itself.
    #[test]
    fn every_reason_round_trips_through_its_code() {
        for r in every_reason() {
            let json = serde_json::to_value(&r).unwrap();
            assert!(json["code"].is_string(), "{json}");
            assert_eq!(serde_json::from_value::<Reason>(json).unwrap(), r);
        }
        assert!(serde_json::from_value::<Reason>(serde_json::json!({"code": "nope"})).is_err());
    }

    fn plan_json(format: u32, reason: Value) -> String {
        serde_json::json!({
            "format": format, "destroy": false, "spec_path": "s.toml", "spec_source": "",
            "state_lineage": "", "state_serial": 0,
            "changes": [{
                "addr": "subnet.a", "action": "delete", "cloud_id": "subnet-1",
                "before": null, "after": null, "reason": reason,
            }],
        })
        .to_string()
    }

    /// The texts format 1 saved, as eksnet 0.1 worded them, still load as their reasons.
    #[test]
    fn format_one_plans_load_with_their_texts() {
        let texts = [
            ("removed from the spec", Reason::RemovedFromSpec { forgotten: None }),
            (
                "removed from the spec; adopted, so never deleted by eksnet",
                Reason::RemovedFromSpec {
                    forgotten: Some(Forgotten::Adopted),
                },
            ),
            (
                "already gone",
                Reason::Forgotten {
                    forgotten: Forgotten::AlreadyGone,
                },
            ),
            (
                "it lies in cidr_block.pods, which is replaced, and AWS cannot disassociate a block that still has subnets",
                Reason::InReplacedBlock {
                    block: ResourceAddr::new(Kind::CidrBlock, "pods"),
                },
            ),
            (
                "it finishes an interrupted replacement; the old one is deleted once this one is ready",
                Reason::ResumesReplacement,
            ),
        ];
        for (text, want) in texts {
            let plan = Plan::from_json(&plan_json(1, Value::from(text))).unwrap();
            assert_eq!(plan.changes[0].reason, Some(want), "{text}");
            assert_eq!(plan.format, 1);
        }
        assert!(Plan::from_json(&plan_json(1, Value::from("no such reason"))).is_err());
        // Every reason has a format-1 text or is new since then.
        for r in every_reason() {
            let code = serde_json::to_value(&r).unwrap();
            let plan = Plan::from_json(&plan_json(2, code)).unwrap();
            assert_eq!(plan.changes[0].reason, Some(r));
        }
    }

    #[test]
    fn other_formats_are_refused_by_number() {
        let err = Plan::from_json(&plan_json(3, Value::Null)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plan format 3 is not supported by this eksnet (it reads formats 1 to 2)"
        );
        assert!(matches!(
            Plan::from_json("{").unwrap_err(),
            PlanFileError::Invalid { .. }
        ));
    }
}
