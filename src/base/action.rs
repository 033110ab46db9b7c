//! What a plan does with one resource. A plain vocabulary, below every stage, so that the
//! domain rules can read planned changes (`domain::ChangeView`) without the plan itself.

use serde::{Deserialize, Serialize};

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
    /// Put back what eksnet changed on an object made elsewhere (an existing add-on's
    /// configuration values, as they were before eksnet first changed them), then drop it
    /// from the state: on destroy, or when its block is removed. The object stays.
    PutBack,
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
            // An update in place of the object, the last one eksnet makes.
            Action::PutBack => "~",
        }
    }

    pub fn is_change(self) -> bool {
        !matches!(self, Action::NoOp)
    }
}
