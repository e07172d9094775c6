//! Faults: what can be injected (a failing or hanging call, a lost host), and how an armed fault decides
//! the fate of each call.

use serde::{Deserialize, Serialize};

use crate::{DriverError, Operation};

use super::{SimDriver, State};

/// A fault to inject, from configuration (`{ kind = "fail_nth", operation = "create_instance", nth = 2 }`)
/// or a test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// The `nth` call of `operation` counted from injection (1-based) fails, transiently unless
    /// `permanent`; then the fault is spent.
    FailNth {
        operation: Operation,
        nth: u32,
        #[serde(default)]
        permanent: bool,
    },
    /// The next `count` calls of `operation` never return, like requests lost on the way, so callers'
    /// timeouts and leases get exercised.
    Hang {
        operation: Operation,
        #[serde(default = "one")]
        count: u32,
    },
    /// The host is gone for good: its instances fail and its GPUs are never offered again.
    LoseHost { host: String },
}

fn one() -> u32 {
    1
}

/// Why a request's fault was refused: the field at fault and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFault {
    pub field: String,
    pub message: String,
}

impl Fault {
    /// A fault from a request's JSON, refused on the field at fault: an unknown kind or operation, a
    /// missing or mistyped field, or a count of calls below one (`nth` 1 is the next call).
    pub fn from_request(body: &serde_json::Value) -> Result<Fault, BadFault> {
        let fault = serde_json::from_value::<Fault>(body.clone()).map_err(|e| {
            let message = e.to_string();
            // serde names a missing or unknown field in backquotes; an unknown variant quotes the value,
            // which names the field that holds it.
            let quoted = message.split('`').nth(1).unwrap_or_default();
            let named = ["kind", "operation", "nth", "permanent", "count", "host"]
                .into_iter()
                .find(|field| {
                    *field == quoted || body.get(field).and_then(|v| v.as_str()) == Some(quoted)
                });
            // Else a mistyped value: the field whose value is not of the JSON kind it takes.
            let mistyped = || {
                ["nth", "count", "permanent"].into_iter().find(|field| {
                    body.get(field).is_some_and(|v| match *field {
                        "permanent" => !v.is_boolean(),
                        _ => !v.is_u64(),
                    })
                })
            };
            let field = named.or_else(mistyped).unwrap_or("kind");
            // Said as the API says a missing member elsewhere.
            let message = if message.starts_with("missing field ") {
                "This field is required".to_string()
            } else {
                message
            };
            BadFault {
                field: field.to_string(),
                message,
            }
        })?;
        let below_one = match &fault {
            Fault::FailNth { nth: 0, .. } => Some("nth"),
            Fault::Hang { count: 0, .. } => Some("count"),
            _ => None,
        };
        if let Some(field) = below_one {
            return Err(BadFault {
                field: field.to_string(),
                message: "Must be 1 or more (1 is the next call)".to_string(),
            });
        }
        Ok(fault)
    }
}

impl SimDriver {
    /// Arms a call fault, or loses a host at once. A host the simulator does not have is an error
    /// (`UnknownHost`), and nothing changes.
    pub fn inject(&self, fault: Fault) -> Result<(), UnknownHost> {
        let mut state = self.state();
        match fault {
            Fault::FailNth {
                operation,
                nth,
                permanent,
            } => {
                let at_call = state.calls(operation) + u64::from(nth);
                state.faults.push(ArmedFault::Fail {
                    operation,
                    at_call,
                    permanent,
                });
            }
            Fault::Hang { operation, count } if count > 0 => {
                state.faults.push(ArmedFault::Hang {
                    operation,
                    remaining: count,
                });
            }
            Fault::Hang { .. } => {}
            Fault::LoseHost { host } => {
                if !state.lose_host(&host) {
                    return Err(UnknownHost(host));
                }
            }
        }
        Ok(())
    }
}

/// A fault named a host the simulated data centre does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no simulated host is named '{0}'")]
pub struct UnknownHost(pub String);

/// A [`Fault`] waiting for the calls it applies to.
pub(super) enum ArmedFault {
    Fail {
        operation: Operation,
        /// The call number (as counted in `State::calls`) that fails.
        at_call: u64,
        permanent: bool,
    },
    Hang {
        operation: Operation,
        remaining: u32,
    },
}

impl ArmedFault {
    /// A failure whose call was taken by an earlier fault fires on the next call instead of never.
    fn applies(&self, operation: Operation, call: u64) -> bool {
        match *self {
            ArmedFault::Fail {
                operation: armed,
                at_call,
                ..
            } => armed == operation && call >= at_call,
            ArmedFault::Hang {
                operation: armed, ..
            } => armed == operation,
        }
    }
}

/// What a call does once faults have had their say.
pub(super) enum Verdict {
    Proceed,
    Fail(DriverError),
    Hang,
}

impl State {
    pub(super) fn calls(&self, operation: Operation) -> u64 {
        self.calls.get(&operation).copied().unwrap_or(0)
    }

    /// Counts the call; the first armed fault (in injection order) that applies decides it.
    pub(super) fn begin(&mut self, operation: Operation) -> Verdict {
        let calls = self.calls.entry(operation).or_default();
        *calls += 1;
        let call = *calls;
        let Some(index) = self
            .faults
            .iter()
            .position(|fault| fault.applies(operation, call))
        else {
            return Verdict::Proceed;
        };
        match &mut self.faults[index] {
            ArmedFault::Fail { permanent, .. } => {
                // The number counts the simulator's calls of the operation since it started (what
                // `nth` counts), not the attempts of the job that made it.
                let name = crate::deadline::operation_name(operation);
                let message =
                    format!("injected failure of {name} (the simulator's call #{call} of {name})");
                let error = if *permanent {
                    DriverError::Permanent(message)
                } else {
                    DriverError::Transient(message)
                };
                self.faults.remove(index);
                Verdict::Fail(error)
            }
            ArmedFault::Hang { remaining, .. } => {
                *remaining -= 1;
                if *remaining == 0 {
                    self.faults.remove(index);
                }
                Verdict::Hang
            }
        }
    }
}

/// Scenarios every server shares through the database (see `ComputeDriver::recognize_simulation`).
impl State {
    /// Follows the shared state: a new count of resets wipes the machines, volumes, snapshots and faults
    /// (the records they belonged to are gone) and brings lost hosts back, as on a first start; then the
    /// hosts lost since (through any server) are lost here too, failing the machines on them.
    pub(super) fn follow_simulation(
        &mut self,
        resets: i64,
        slow_hosts: &[(String, f64)],
        lost_hosts: &[String],
    ) {
        if self.resets != Some(resets) {
            if self.resets.is_some() {
                self.instances.clear();
                self.rules.clear();
                self.booting.clear();
                self.powered_off.clear();
                self.volumes.clear();
                self.snapshots.clear();
                self.faults.clear();
                self.hosts.revive_all();
            }
            self.resets = Some(resets);
        }
        self.slow_hosts = slow_hosts.iter().cloned().collect();
        // A host lost through another server, or before this one started: lost here too.
        for name in lost_hosts {
            if self
                .hosts
                .slot_of(name)
                .is_some_and(|slot| !self.hosts.get(slot).lost)
            {
                self.lose_host(name);
            }
        }
    }

    /// The factor on the delays of an instance's machine: its host's slowness, 1 elsewhere.
    pub(super) fn slowness(&self, instance_id: &str) -> f64 {
        self.instances
            .get(instance_id)
            .and_then(|instance| instance.host)
            .and_then(|host| self.slow_hosts.get(&self.hosts.get(host).spec.name))
            .copied()
            .unwrap_or(1.0)
    }

    /// Stretches the boot that just started by its host's slowness (`delay` is the boot time).
    pub(super) fn slow_boot(&mut self, instance_id: &str, delay: std::time::Duration) {
        let factor = self.slowness(instance_id);
        if factor > 1.0
            && let Some(key) = self.instances.key(instance_id)
            && let Some(at) = self.booting.get_mut(&key)
        {
            *at += delay.mul_f64(factor - 1.0);
        }
    }
}

#[cfg(test)]
mod request_tests {
    use serde_json::json;

    use super::Fault;

    fn refused_on(body: serde_json::Value) -> String {
        Fault::from_request(&body).unwrap_err().field
    }

    #[test]
    fn a_bad_fault_is_refused_on_its_field() {
        let create = "create_instance";
        assert_eq!(
            refused_on(json!({"kind": "fail_nth", "operation": create, "nth": 0})),
            "nth"
        );
        assert_eq!(
            refused_on(json!({"kind": "hang", "operation": create, "count": 0})),
            "count"
        );
        assert_eq!(
            refused_on(json!({"kind": "fail_nth", "operation": "make_coffee", "nth": 1})),
            "operation"
        );
        assert_eq!(
            refused_on(json!({"kind": "explode", "operation": create})),
            "kind"
        );
        assert_eq!(
            refused_on(json!({"kind": "fail_nth", "operation": create})),
            "nth"
        );
        assert_eq!(
            refused_on(json!({"kind": "fail_nth", "operation": create, "nth": "x"})),
            "nth"
        );
        assert_eq!(
            refused_on(json!({"kind": "fail_nth", "operation": create, "nth": 1, "permanent": 3})),
            "permanent"
        );
        assert_eq!(refused_on(json!({"kind": "lose_host"})), "host");
        let missing = Fault::from_request(&json!({"kind": "lose_host"})).unwrap_err();
        assert_eq!(missing.message, "This field is required");
        assert_eq!(
            refused_on(json!({"kind": "lose_host", "host": "h", "nth": 1})),
            "nth"
        );
        assert!(
            Fault::from_request(&json!({"kind": "fail_nth", "operation": create, "nth": 1}))
                .is_ok()
        );
    }
}
