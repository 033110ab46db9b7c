//! Run-time configuration of the injected faults.
//!
//! The same merge function serves the command line (`--latency-ms 50` becomes
//! the patch `{"latency_ms": 50}`) and `POST /__proxy/config`, so both accept
//! exactly the same fields with the same validation.

use serde::Serialize;
use serde_json::{Map, Value};

/// Default signal for the kill hook: SIGKILL, because a crash test wants the
/// client to die without running any cleanup.
pub const DEFAULT_KILL_SIGNAL: i32 = libc::SIGKILL;

/// Every knob of the proxy. Durations are milliseconds; `0` disables a fault.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Config {
    pub latency_ms: u64,
    pub throttle_fraction: f64,
    pub throttle_seed: Option<u64>,
    pub server_error_fraction: f64,
    pub cluster_create_ms: u64,
    pub cluster_delete_ms: u64,
    pub nodegroup_create_ms: u64,
    pub nodegroup_delete_ms: u64,
    /// UPDATING window after UpdateNodegroupVersion (answered by the proxy itself).
    pub nodegroup_update_ms: u64,
    pub stack_create_ms: u64,
    pub stack_delete_ms: u64,
    /// CREATING / UPDATING / DELETING windows of EKS add-ons (answered by the proxy itself).
    pub addon_create_ms: u64,
    pub addon_update_ms: u64,
    pub addon_delete_ms: u64,
    pub iam_propagation_ms: u64,
    pub dependency_violation_count: u64,
    /// Every request of this EKS operation (`CreateCluster`…) is refused for good with 400
    /// `InvalidParameterException`: a failure that is not retried and that no check of the
    /// request's shape can foresee (what a real account's policy or quota refuses).
    pub reject_op: Option<String>,
    /// Requests of this operation (any protocol: `PutObject`, `CreateVpc`…) are carried
    /// out in moto, and then their answer is lost: the proxy closes the connection without
    /// answering, so the client sees the change it made fail with an I/O error.
    pub lose_answer_op: Option<String>,
    /// How many more answers of `lose_answer_op` to lose. The live count: each lost answer
    /// decrements it (`GET /__proxy/config` shows what is left), and setting it again
    /// re-arms it.
    pub lose_answer_count: u64,
    pub kill_after_mutating: Option<u64>,
    /// Count only the mutating requests of this operation (e.g. `DeleteSubnet`), so a test
    /// can name its crash point whatever order concurrent requests arrive in.
    pub kill_op: Option<String>,
    pub kill_pid: Option<i32>,
    pub kill_pid_file: Option<String>,
    pub kill_signal: i32,
    /// Opt-in: give EKS cluster answers the `resourcesVpcConfig` fields moto
    /// leaves out (`clusterSecurityGroupId`, `vpcId`), backed by a real
    /// security group in moto (see `cluster_sg`).
    pub eks_cluster_fields: bool,
    /// Base URL (`http://host:port`, no trailing slash) of a Kubernetes API server standing
    /// in for every cluster: EKS add-ons with a workload (`vpc-cni`) apply it there. Unset:
    /// add-ons have no Kubernetes side.
    pub kube_url: Option<String>,
    /// Opt-in: the data plane. A background loop launches the instances of managed
    /// nodegroups in moto and has instances join the API server of `kube_url` as Nodes
    /// (see the emulator `data_plane`). Needs `kube_url`.
    pub data_plane: bool,
    /// How long an ENI the VPC CNI created stays `available` after its instance ended
    /// before the data plane deletes it (the CNI's leaked-ENI cleanup).
    pub eni_cleanup_ms: u64,
    /// How long the data plane's drain before an instance ends may keep failing (a
    /// PodDisruptionBudget answering 429) before the pods are deleted anyway: EKS forces
    /// after 15 minutes (`nodes/managed-node-update-behavior.adoc`); for a deleted
    /// nodegroup the smaller of this and 5 minutes (`delete-managed-node-group`).
    pub drain_force_ms: u64,
    /// How long the data plane's VPC resource controller keeps the branch interface of a pod
    /// that is gone before deleting it: the controller's cool-down, 60 s by default
    /// (amazon-vpc-resource-controller-k8s `pkg/provider/branch/cooldown`).
    pub branch_cooldown_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            latency_ms: 0,
            throttle_fraction: 0.0,
            throttle_seed: None,
            server_error_fraction: 0.0,
            cluster_create_ms: 0,
            cluster_delete_ms: 0,
            nodegroup_create_ms: 0,
            nodegroup_delete_ms: 0,
            nodegroup_update_ms: 0,
            stack_create_ms: 0,
            stack_delete_ms: 0,
            addon_create_ms: 0,
            addon_update_ms: 0,
            addon_delete_ms: 0,
            iam_propagation_ms: 0,
            dependency_violation_count: 0,
            reject_op: None,
            lose_answer_op: None,
            lose_answer_count: 0,
            kill_after_mutating: None,
            kill_op: None,
            kill_pid: None,
            kill_pid_file: None,
            kill_signal: DEFAULT_KILL_SIGNAL,
            eks_cluster_fields: false,
            kube_url: None,
            data_plane: false,
            eni_cleanup_ms: 30_000,
            drain_force_ms: 900_000,
            branch_cooldown_ms: 60_000,
        }
    }
}

/// What a merge changed that needs action beyond storing the values.
#[derive(Debug, Default, PartialEq)]
pub struct MergeEffects {
    /// The throttle seed was given, so the random generator must be reseeded.
    pub reseed: bool,
    /// A kill field was given, so the mutating-request count restarts: the
    /// k in `kill_after_mutating` counts from the moment the hook is armed.
    pub rearm_kill: bool,
}

/// Field names accepted by [`Config::merge`], for `--help` and error messages.
pub const FIELDS: &[&str] = &[
    "latency_ms",
    "throttle_fraction",
    "throttle_seed",
    "server_error_fraction",
    "transition_ms",
    "cluster_create_ms",
    "cluster_delete_ms",
    "nodegroup_create_ms",
    "nodegroup_delete_ms",
    "nodegroup_update_ms",
    "stack_create_ms",
    "stack_delete_ms",
    "addon_create_ms",
    "addon_update_ms",
    "addon_delete_ms",
    "iam_propagation_ms",
    "dependency_violation_count",
    "reject_op",
    "lose_answer_op",
    "lose_answer_count",
    "kill_after_mutating",
    "kill_op",
    "kill_pid",
    "kill_pid_file",
    "kill_signal",
    "eks_cluster_fields",
    "kube_url",
    "data_plane",
    "eni_cleanup_ms",
    "drain_force_ms",
    "branch_cooldown_ms",
];

/// Fields that are on/off switches: on the command line they take no value
/// (`--eks-cluster-fields`), or an inline one (`--eks-cluster-fields=false`).
pub const BOOL_FIELDS: &[&str] = &["eks_cluster_fields", "data_plane"];

impl Config {
    /// Applies a partial update. Either every field of `patch` is applied or,
    /// on the first invalid one, none is (the caller's config is untouched),
    /// so a typo in a control request cannot leave a half-applied setup.
    /// `null` resets a field to its default.
    pub fn merge(&mut self, patch: &Value) -> Result<MergeEffects, String> {
        let obj: &Map<String, Value> = patch
            .as_object()
            .ok_or_else(|| "config patch must be a JSON object".to_string())?;
        let mut next = self.clone();
        let mut effects = MergeEffects::default();
        let defaults = Config::default();
        // The shorthand goes first so that a per-kind field given in the same
        // patch overrides it whatever order the object's keys come in.
        if let Some(value) = obj.get("transition_ms") {
            let v = ms("transition_ms", value, 0)?;
            next.cluster_create_ms = v;
            next.cluster_delete_ms = v;
            next.nodegroup_create_ms = v;
            next.nodegroup_delete_ms = v;
            next.nodegroup_update_ms = v;
            next.stack_create_ms = v;
            next.stack_delete_ms = v;
            next.addon_create_ms = v;
            next.addon_update_ms = v;
            next.addon_delete_ms = v;
        }
        for (key, value) in obj {
            let null = value.is_null();
            match key.as_str() {
                "latency_ms" => next.latency_ms = ms(key, value, defaults.latency_ms)?,
                "throttle_fraction" => next.throttle_fraction = fraction(key, value)?,
                "throttle_seed" => {
                    next.throttle_seed = if null { None } else { Some(uint(key, value)?) };
                    effects.reseed = true;
                }
                "server_error_fraction" => next.server_error_fraction = fraction(key, value)?,
                "transition_ms" => {}
                "cluster_create_ms" => next.cluster_create_ms = ms(key, value, 0)?,
                "cluster_delete_ms" => next.cluster_delete_ms = ms(key, value, 0)?,
                "nodegroup_create_ms" => next.nodegroup_create_ms = ms(key, value, 0)?,
                "nodegroup_delete_ms" => next.nodegroup_delete_ms = ms(key, value, 0)?,
                "nodegroup_update_ms" => next.nodegroup_update_ms = ms(key, value, 0)?,
                "stack_create_ms" => next.stack_create_ms = ms(key, value, 0)?,
                "stack_delete_ms" => next.stack_delete_ms = ms(key, value, 0)?,
                "addon_create_ms" => next.addon_create_ms = ms(key, value, 0)?,
                "addon_update_ms" => next.addon_update_ms = ms(key, value, 0)?,
                "addon_delete_ms" => next.addon_delete_ms = ms(key, value, 0)?,
                "iam_propagation_ms" => next.iam_propagation_ms = ms(key, value, 0)?,
                "eni_cleanup_ms" => next.eni_cleanup_ms = ms(key, value, defaults.eni_cleanup_ms)?,
                "drain_force_ms" => next.drain_force_ms = ms(key, value, defaults.drain_force_ms)?,
                "branch_cooldown_ms" => {
                    next.branch_cooldown_ms = ms(key, value, defaults.branch_cooldown_ms)?
                }
                "dependency_violation_count" => {
                    next.dependency_violation_count = ms(key, value, 0)?
                }
                "kill_after_mutating" => {
                    next.kill_after_mutating = if null {
                        None
                    } else {
                        let k = uint(key, value)?;
                        if k == 0 {
                            return Err("kill_after_mutating must be >= 1".into());
                        }
                        Some(k)
                    };
                    effects.rearm_kill = true;
                }
                "reject_op" => {
                    next.reject_op = match value {
                        Value::Null => None,
                        Value::String(s) if !s.is_empty() => Some(s.clone()),
                        _ => return Err("reject_op must be an EKS operation name".into()),
                    };
                }
                "lose_answer_op" => {
                    next.lose_answer_op = match value {
                        Value::Null => None,
                        Value::String(s) if !s.is_empty() => Some(s.clone()),
                        _ => return Err("lose_answer_op must be an operation name".into()),
                    };
                }
                "lose_answer_count" => next.lose_answer_count = ms(key, value, 0)?,
                "kill_op" => {
                    next.kill_op = match value {
                        Value::Null => None,
                        Value::String(s) if !s.is_empty() => Some(s.clone()),
                        _ => return Err("kill_op must be an operation name".into()),
                    };
                    effects.rearm_kill = true;
                }
                "kill_pid" => {
                    next.kill_pid = if null {
                        None
                    } else {
                        let pid = uint(key, value)?;
                        // pid 0 or a negative value would signal a whole
                        // process group (possibly our own): refuse them.
                        let pid = i32::try_from(pid)
                            .ok()
                            .filter(|p| *p > 0)
                            .ok_or_else(|| format!("kill_pid out of range: {pid}"))?;
                        Some(pid)
                    };
                    effects.rearm_kill = true;
                }
                "kill_pid_file" => {
                    next.kill_pid_file = match value {
                        Value::Null => None,
                        Value::String(s) if !s.is_empty() => Some(s.clone()),
                        _ => return Err("kill_pid_file must be a non-empty string".into()),
                    };
                    effects.rearm_kill = true;
                }
                "kill_signal" => {
                    next.kill_signal = if null {
                        DEFAULT_KILL_SIGNAL
                    } else {
                        parse_signal(value)?
                    };
                }
                "eks_cluster_fields" => next.eks_cluster_fields = boolean(key, value)?,
                "kube_url" => next.kube_url = base_url(key, value)?,
                "data_plane" => next.data_plane = boolean(key, value)?,
                other => {
                    return Err(format!(
                        "unknown config field {other:?}; known: {}",
                        FIELDS.join(", ")
                    ))
                }
            }
        }
        // Checked on the result, so that a patch giving both fields works in any key order,
        // and unsetting `kube_url` under a running data plane is refused.
        if next.data_plane && next.kube_url.is_none() {
            return Err("data_plane needs kube_url (the Kubernetes API server nodes join)".into());
        }
        *self = next;
        Ok(effects)
    }

    /// Takes one lost answer for a request of `op` that moto has answered: true if its
    /// answer is to be lost. Called on the shared config, so that concurrent requests
    /// never lose more answers than were asked for.
    pub fn take_lost_answer(&mut self, op: &str) -> bool {
        let armed = self.lose_answer_count > 0 && self.lose_answer_op.as_deref() == Some(op);
        if armed {
            self.lose_answer_count -= 1;
        }
        armed
    }

    /// Clears the kill hook (used by `POST /__proxy/reset`).
    pub fn clear_kill(&mut self) {
        self.kill_after_mutating = None;
        self.kill_op = None;
        self.kill_pid = None;
        self.kill_pid_file = None;
        self.kill_signal = DEFAULT_KILL_SIGNAL;
    }
}

fn uint(key: &str, value: &Value) -> Result<u64, String> {
    value
        .as_u64()
        .ok_or_else(|| format!("{key} must be a non-negative integer, got {value}"))
}

fn ms(key: &str, value: &Value, default: u64) -> Result<u64, String> {
    if value.is_null() {
        Ok(default)
    } else {
        uint(key, value)
    }
}

/// A switch; `null` turns it off (every switch defaults to off).
fn boolean(key: &str, value: &Value) -> Result<bool, String> {
    match value {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(*b),
        _ => Err(format!("{key} must be true or false, got {value}")),
    }
}

/// A plain `http://` base URL (the proxy speaks no TLS); `null` unsets it. A trailing
/// slash is dropped so that paths can be appended.
fn base_url(key: &str, value: &Value) -> Result<Option<String>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s.starts_with("http://") && s.len() > "http://".len() => {
            Ok(Some(s.trim_end_matches('/').to_string()))
        }
        _ => Err(format!(
            "{key} must be a plain http:// URL (no TLS) or null, got {value}"
        )),
    }
}

fn fraction(key: &str, value: &Value) -> Result<f64, String> {
    if value.is_null() {
        return Ok(0.0);
    }
    match value.as_f64() {
        Some(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("{key} must be a number in 0..=1, got {value}")),
    }
}

/// Accepts a signal number or a name with or without the `SIG` prefix, so a
/// test can write either `9` or `"SIGTERM"`.
fn parse_signal(value: &Value) -> Result<i32, String> {
    if let Some(n) = value.as_i64() {
        return i32::try_from(n)
            .ok()
            .filter(|n| *n > 0 && *n < 65)
            .ok_or_else(|| format!("kill_signal out of range: {n}"));
    }
    let name = value
        .as_str()
        .ok_or_else(|| format!("kill_signal must be a number or a name, got {value}"))?;
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let sig = match bare {
        "KILL" => libc::SIGKILL,
        "TERM" => libc::SIGTERM,
        "INT" => libc::SIGINT,
        "HUP" => libc::SIGHUP,
        "QUIT" => libc::SIGQUIT,
        "ABRT" => libc::SIGABRT,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        _ => return Err(format!("unknown signal name {name:?}")),
    };
    Ok(sig)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn partial_merge_keeps_other_fields() {
        let mut c = Config::default();
        c.merge(&json!({"latency_ms": 20})).unwrap();
        c.merge(&json!({"throttle_fraction": 0.5})).unwrap();
        assert_eq!(c.latency_ms, 20);
        assert_eq!(c.throttle_fraction, 0.5);
    }

    #[test]
    fn transition_ms_sets_all_kinds_and_kind_overrides() {
        let mut c = Config::default();
        c.merge(&json!({"transition_ms": 300, "stack_delete_ms": 5}))
            .unwrap();
        assert_eq!(c.cluster_create_ms, 300);
        assert_eq!(c.nodegroup_delete_ms, 300);
        assert_eq!(c.nodegroup_update_ms, 300);
        assert_eq!(c.addon_create_ms, 300);
        assert_eq!(c.addon_update_ms, 300);
        assert_eq!(c.addon_delete_ms, 300);
        // The per-kind field wins although it sorts before the shorthand.
        assert_eq!(c.stack_delete_ms, 5);
        c.merge(&json!({"nodegroup_update_ms": 7, "transition_ms": 1}))
            .unwrap();
        assert_eq!((c.nodegroup_update_ms, c.cluster_create_ms), (7, 1));
        c.merge(&json!({"nodegroup_update_ms": null})).unwrap();
        assert_eq!(c.nodegroup_update_ms, 0);
    }

    #[test]
    fn invalid_patch_is_atomic() {
        let mut c = Config::default();
        let err = c.merge(&json!({"latency_ms": 7, "throttle_fraction": 2.0}));
        assert!(err.is_err());
        assert_eq!(c, Config::default());
        assert!(c.merge(&json!({"no_such": 1})).is_err());
        assert!(c.merge(&json!({"kill_pid": 0})).is_err());
    }

    #[test]
    fn signals_by_name_and_number() {
        let mut c = Config::default();
        let eff = c
            .merge(&json!({"kill_signal": "term", "kill_after_mutating": 2}))
            .unwrap();
        assert_eq!(c.kill_signal, libc::SIGTERM);
        assert!(eff.rearm_kill);
        c.merge(&json!({"kill_signal": 2})).unwrap();
        assert_eq!(c.kill_signal, libc::SIGINT);
        c.merge(&json!({"kill_signal": null})).unwrap();
        assert_eq!(c.kill_signal, libc::SIGKILL);
    }

    #[test]
    fn kube_url_is_a_plain_http_base() {
        let mut c = Config::default();
        assert_eq!(c.kube_url, None);
        c.merge(&json!({"kube_url": "http://127.0.0.1:6443/"}))
            .unwrap();
        assert_eq!(c.kube_url.as_deref(), Some("http://127.0.0.1:6443"));
        for bad in [json!("https://k"), json!("http://"), json!(5), json!("")] {
            assert!(c.merge(&json!({"kube_url": bad})).is_err(), "{bad}");
        }
        assert_eq!(c.kube_url.as_deref(), Some("http://127.0.0.1:6443"));
        c.merge(&json!({"kube_url": null})).unwrap();
        assert_eq!(c.kube_url, None);
    }

    #[test]
    fn lost_answers_count_down_and_rearm() {
        let mut c = Config::default();
        assert!(!c.take_lost_answer("PutObject"), "off by default");
        c.merge(&json!({"lose_answer_op": "PutObject", "lose_answer_count": 2}))
            .unwrap();
        assert!(!c.take_lost_answer("DeleteObject"));
        assert!(c.take_lost_answer("PutObject"));
        assert_eq!(c.lose_answer_count, 1);
        assert!(c.take_lost_answer("PutObject"));
        assert!(!c.take_lost_answer("PutObject"));
        assert_eq!(c.lose_answer_count, 0);
        c.merge(&json!({"lose_answer_count": 1})).unwrap();
        assert!(c.take_lost_answer("PutObject"));
        for bad in [json!(""), json!(3)] {
            assert!(c.merge(&json!({"lose_answer_op": bad})).is_err(), "{bad}");
        }
        assert!(c.merge(&json!({"lose_answer_count": -1})).is_err());
        c.merge(&json!({"lose_answer_op": null, "lose_answer_count": 5}))
            .unwrap();
        assert_eq!(c.lose_answer_op, None);
        assert!(!c.take_lost_answer("PutObject"));
        c.merge(&json!({"lose_answer_count": null})).unwrap();
        assert_eq!(c.lose_answer_count, 0);
    }

    #[test]
    fn data_plane_switch_needs_kube_url() {
        let mut c = Config::default();
        assert!(!c.data_plane, "off by default");
        assert!(c.merge(&json!({"data_plane": true})).is_err());
        assert!(!c.data_plane);
        c.merge(&json!({"data_plane": true, "kube_url": "http://127.0.0.1:1"}))
            .unwrap();
        assert!(c.data_plane);
        assert!(c.merge(&json!({"kube_url": null})).is_err(), "still needed");
        assert!(c.merge(&json!({"data_plane": "yes"})).is_err());
        c.merge(&json!({"data_plane": null})).unwrap();
        assert!(!c.data_plane);
        c.merge(&json!({"kube_url": null})).unwrap();
    }

    #[test]
    fn eks_cluster_fields_switch() {
        let mut c = Config::default();
        assert!(!c.eks_cluster_fields);
        c.merge(&json!({"eks_cluster_fields": true})).unwrap();
        assert!(c.eks_cluster_fields);
        assert!(c.merge(&json!({"eks_cluster_fields": 1})).is_err());
        assert!(c.merge(&json!({"eks_cluster_fields": "yes"})).is_err());
        assert!(c.eks_cluster_fields);
        c.merge(&json!({"eks_cluster_fields": null})).unwrap();
        assert!(!c.eks_cluster_fields);
    }
}
