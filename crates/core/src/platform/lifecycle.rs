//! The instance lifecycle of `spec/API.md` §3: states, the actions each allows, and what each action
//! passes through. Pure functions, so the rules live in one place and are tested exhaustively.

use std::fmt;

use barrack_compute::{PowerState, RecordedPower};
use barrack_store::instances::InstanceRow;

use crate::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InstanceState {
    Creating,
    Active,
    Starting,
    Stopping,
    Shutoff,
    Rebooting,
    Hibernating,
    Hibernated,
    Restoring,
    Deleting,
    Deleted,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Start,
    Stop,
    Reboot,
    Hibernate,
    Restore,
    Delete,
}

/// How an instance is billed while in a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillingClass {
    /// GPUs and OS volume at the full rate.
    Full,
    /// The reduced hibernation rate.
    Hibernated,
    Free,
}

impl InstanceState {
    pub const ALL: [InstanceState; 12] = [
        InstanceState::Creating,
        InstanceState::Active,
        InstanceState::Starting,
        InstanceState::Stopping,
        InstanceState::Shutoff,
        InstanceState::Rebooting,
        InstanceState::Hibernating,
        InstanceState::Hibernated,
        InstanceState::Restoring,
        InstanceState::Deleting,
        InstanceState::Deleted,
        InstanceState::Error,
    ];

    /// The states a list of instances is narrowed to: every state but DELETED (deleted instances are
    /// not listed), in [`Self::ALL`]'s order.
    pub const LISTED: [InstanceState; 11] = {
        let mut listed = [InstanceState::Creating; 11];
        let (mut from, mut to) = (0, 0);
        while from < Self::ALL.len() {
            if !matches!(Self::ALL[from], InstanceState::Deleted) {
                listed[to] = Self::ALL[from];
                to += 1;
            }
            from += 1;
        }
        listed
    };

    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Creating => "CREATING",
            InstanceState::Active => "ACTIVE",
            InstanceState::Starting => "STARTING",
            InstanceState::Stopping => "STOPPING",
            InstanceState::Shutoff => "SHUTOFF",
            InstanceState::Rebooting => "REBOOTING",
            InstanceState::Hibernating => "HIBERNATING",
            InstanceState::Hibernated => "HIBERNATED",
            InstanceState::Restoring => "RESTORING",
            InstanceState::Deleting => "DELETING",
            InstanceState::Deleted => "DELETED",
            InstanceState::Error => "ERROR",
        }
    }

    /// Parses a state name; `BUILD` is the documented alias of `CREATING`.
    pub fn parse(s: &str) -> Option<InstanceState> {
        match s {
            "BUILD" => Some(InstanceState::Creating),
            _ => InstanceState::ALL
                .into_iter()
                .find(|state| state.as_str() == s),
        }
    }

    /// A state the instance rests in, as opposed to one it passes through while an operation runs.
    pub fn is_stable(self) -> bool {
        matches!(
            self,
            InstanceState::Active
                | InstanceState::Shutoff
                | InstanceState::Hibernated
                | InstanceState::Deleted
                | InstanceState::Error
        )
    }

    pub fn billing(self) -> BillingClass {
        match self {
            InstanceState::Active | InstanceState::Shutoff => BillingClass::Full,
            InstanceState::Hibernated => BillingClass::Hibernated,
            _ => BillingClass::Free,
        }
    }

    /// Whether the instance holds GPUs from the region's capacity in this state.
    pub fn holds_gpus(self) -> bool {
        !matches!(
            self,
            InstanceState::Hibernated | InstanceState::Deleted | InstanceState::Error
        )
    }

    pub fn allowed_actions(self) -> Vec<Action> {
        Action::ALL
            .into_iter()
            .filter(|a| a.transition(self).is_some())
            .collect()
    }
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Action {
    pub const ALL: [Action; 6] = [
        Action::Start,
        Action::Stop,
        Action::Reboot,
        Action::Hibernate,
        Action::Restore,
        Action::Delete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Reboot => "reboot",
            Action::Hibernate => "hibernate",
            Action::Restore => "restore",
            Action::Delete => "delete",
        }
    }

    /// From `state`, the transitional state this action enters and the stable state it ends in; `None` when
    /// the action is not allowed there.
    pub fn transition(self, state: InstanceState) -> Option<(InstanceState, InstanceState)> {
        use InstanceState::*;
        match (self, state) {
            (Action::Start, Shutoff) => Some((Starting, Active)),
            (Action::Stop, Active) => Some((Stopping, Shutoff)),
            (Action::Reboot, Active) => Some((Rebooting, Active)),
            (Action::Hibernate, Active | Shutoff) => Some((Hibernating, Hibernated)),
            // The documented Start of a hibernated instance is its restore.
            (Action::Start | Action::Restore, Hibernated) => Some((Restoring, Active)),
            (Action::Delete, Active | Shutoff | Hibernated | Error) => Some((Deleting, Deleted)),
            _ => None,
        }
    }

    /// The action that runs when this one is asked for in `state`: starting a hibernated instance restores it.
    pub fn resolve(self, state: InstanceState) -> Action {
        match (self, state) {
            (Action::Start, InstanceState::Hibernated) => Action::Restore,
            _ => self,
        }
    }

    /// The transition, or the 409 `INVALID_STATE` error naming the state and what is allowed in it.
    pub fn begin(self, state: InstanceState) -> Result<(InstanceState, InstanceState), Error> {
        self.transition(state).ok_or_else(|| {
            let allowed: Vec<&str> = state
                .allowed_actions()
                .into_iter()
                .map(Action::as_str)
                .collect();
            let allowed = if allowed.is_empty() {
                "none until the current operation finishes".to_string()
            } else {
                allowed.join(", ")
            };
            Error::conflict(
                "INVALID_STATE",
                format!(
                    "Cannot {} an instance in state {state}; allowed actions: {allowed}",
                    self.as_str()
                ),
            )
        })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The power state a machine has if the database's record of the instance is right, and where the
/// operation under way takes it; `None` when there is no machine to speak of (not created yet, failed,
/// deleted).
pub fn recorded_power(row: &InstanceRow) -> Option<RecordedPower> {
    power_on_record(&row.status, row.host.is_some())
}

/// [`recorded_power`] from an instance's status and whether it has a host.
pub fn power_on_record(status: &str, placed: bool) -> Option<RecordedPower> {
    use InstanceState::*;
    let state = InstanceState::parse(status)?;
    let (now, next) = match (state, placed) {
        (Hibernated, _) => (PowerState::Hibernated, None),
        (Restoring, _) => (PowerState::Hibernated, Some(PowerState::Running)),
        (Creating | Error | Deleted, _) | (_, false) => return None,
        (Shutoff, true) => (PowerState::Stopped, None),
        (Starting, true) => (PowerState::Stopped, Some(PowerState::Running)),
        (Stopping, true) => (PowerState::Running, Some(PowerState::Stopped)),
        (Hibernating, true) => (PowerState::Running, Some(PowerState::Hibernated)),
        (Deleting, true) => (PowerState::Running, Some(PowerState::Missing)),
        (Active | Rebooting, true) => (PowerState::Running, None),
    };
    Some(RecordedPower { now, next })
}

#[cfg(test)]
mod tests {
    use super::InstanceState::*;
    use super::*;

    #[test]
    fn every_action_in_every_state_follows_the_documented_lifecycle() {
        let expected = |action: Action, state: InstanceState| match (action, state) {
            (Action::Start, Shutoff) => Some((Starting, Active)),
            (Action::Stop, Active) => Some((Stopping, Shutoff)),
            (Action::Reboot, Active) => Some((Rebooting, Active)),
            (Action::Hibernate, Active) | (Action::Hibernate, Shutoff) => {
                Some((Hibernating, Hibernated))
            }
            (Action::Start | Action::Restore, Hibernated) => Some((Restoring, Active)),
            (Action::Delete, s) if s.is_stable() && s != Deleted => Some((Deleting, Deleted)),
            _ => None,
        };
        for state in InstanceState::ALL {
            for action in Action::ALL {
                assert_eq!(
                    action.transition(state),
                    expected(action, state),
                    "{action} from {state}"
                );
                if let Some((through, to)) = action.transition(state) {
                    assert!(!through.is_stable() && to.is_stable());
                }
            }
        }
    }

    #[test]
    fn transitional_states_allow_nothing_and_say_so() {
        for state in InstanceState::ALL.into_iter().filter(|s| !s.is_stable()) {
            assert!(state.allowed_actions().is_empty(), "{state}");
        }
        let err = Action::Start.begin(Stopping).unwrap_err();
        assert_eq!(err.code(), "INVALID_STATE");
        assert_eq!(err.status(), 409);
        assert!(err.public_message().contains("STOPPING"));
        let err = Action::Stop.begin(Shutoff).unwrap_err().public_message();
        assert_eq!(
            err,
            "Cannot stop an instance in state SHUTOFF; allowed actions: start, hibernate, delete"
        );
    }

    #[test]
    fn start_restores_a_hibernated_instance() {
        assert_eq!(Action::Start.resolve(Hibernated), Action::Restore);
        assert_eq!(Action::Start.resolve(Shutoff), Action::Start);
        assert_eq!(Action::Stop.resolve(Hibernated), Action::Stop);
        assert_eq!(
            Hibernated.allowed_actions(),
            vec![Action::Start, Action::Restore, Action::Delete]
        );
    }

    #[test]
    fn billing_and_gpu_holding_by_state() {
        assert_eq!(Active.billing(), BillingClass::Full);
        assert_eq!(Shutoff.billing(), BillingClass::Full);
        assert_eq!(Hibernated.billing(), BillingClass::Hibernated);
        for free in [
            Creating,
            Starting,
            Stopping,
            Rebooting,
            Hibernating,
            Restoring,
            Deleting,
            Deleted,
            Error,
        ] {
            assert_eq!(free.billing(), BillingClass::Free, "{free}");
        }
        assert!(Shutoff.holds_gpus() && Active.holds_gpus() && Restoring.holds_gpus());
        assert!(!Hibernated.holds_gpus() && !Deleted.holds_gpus() && !Error.holds_gpus());
    }

    #[test]
    fn names_round_trip_and_build_is_creating() {
        for state in InstanceState::ALL {
            assert_eq!(InstanceState::parse(state.as_str()), Some(state));
        }
        assert_eq!(InstanceState::parse("BUILD"), Some(Creating));
        assert_eq!(InstanceState::parse("active"), None);
    }
}
