//! The crash-test kill hook (`/__fake/kill`) over real HTTP, against a real process.

mod common;

use common::{request, start, Fake, DS, ENI};
use serde_json::{json, Value};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

const SMP: &str = "application/strategic-merge-patch+json";

/// A `sleep 60` to be killed, with its pid in a file; killed and reaped on drop whatever
/// happens, so a failing test leaves no process behind.
struct Victim {
    child: Child,
    pid_file: PathBuf,
}

impl Victim {
    fn spawn(tag: &str) -> Victim {
        let child = Command::new("sleep")
            .arg("60")
            .spawn()
            .expect("spawn sleep");
        let pid_file =
            std::env::temp_dir().join(format!("fake-kube-kill-{tag}-{}.pid", std::process::id()));
        std::fs::write(&pid_file, format!("{}\n", child.id())).expect("write pid file");
        Victim { child, pid_file }
    }

    fn pid(&self) -> i64 {
        i64::from(self.child.id())
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Waits (bounded) for the process to end.
    fn exit_status(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the process was not killed"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

fn eni(name: &str) -> Value {
    json!({"apiVersion": "crd.k8s.amazonaws.com/v1alpha1", "kind": "ENIConfig",
        "metadata": {"name": name}, "spec": {"securityGroups": ["sg-1"], "subnet": "subnet-1"}})
}

fn arm(f: &Fake, config: &Value) -> Value {
    let r = f.post("/__fake/kill", config);
    assert_eq!(r.code, 200, "{}", r.body);
    r.body
}

fn hook(f: &Fake) -> Value {
    let r = f.get("/__fake/kill");
    assert_eq!(r.code, 200, "{}", r.body);
    r.body
}

#[test]
fn kills_after_the_kth_write_once_it_is_stored() {
    let f = start();
    let mut v = Victim::spawn("kth");
    let armed = arm(
        &f,
        &json!({"after_writes": 2, "pid_file": v.pid_file, "signal": "KILL"}),
    );
    assert_eq!(armed["armed"], true, "{armed}");
    assert_eq!(armed["killed"], false);
    assert_eq!(armed["writes"], 0);

    // Reads, dry runs and test-support requests are not writes.
    assert_eq!(f.get(DS).code, 200);
    assert_eq!(f.get(ENI).code, 200);
    let dry = f.post(&format!("{ENI}?dryRun=All"), &eni("dry"));
    assert_eq!(dry.code, 201);
    let dry_delete = request(
        f.addr,
        "DELETE",
        &format!("{ENI}/dry"),
        &[("Content-Type", "application/json")],
        r#"{"dryRun": ["All"]}"#,
    );
    assert_eq!(dry_delete.code, 404, "{}", dry_delete.body);
    assert_eq!(f.post("/__fake/seed", &json!({"objects": []})).code, 200);
    assert_eq!(hook(&f)["writes"], 0, "{}", hook(&f));

    // First write: counted, nobody signalled.
    assert_eq!(f.post(ENI, &eni("us-west-2a")).code, 201);
    assert_eq!(hook(&f)["writes"], 1);
    assert!(v.alive(), "killed after one write of two");

    // Second write: the signal is sent before the answer, which still reaches this client
    // (it is not the process killed).
    let env = json!([{"name": "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "value": "true"}]);
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "aws-node", "env": env}]}}}});
    let patched = f.patch(DS, SMP, &patch);
    assert_eq!(patched.code, 200, "{}", patched.body);
    let status = v.exit_status();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");

    let h = hook(&f);
    assert_eq!(h["killed"], true, "{h}");
    assert_eq!(h["fired"], true, "{h}");
    assert_eq!(h["armed"], false, "spent: {h}");
    assert_eq!(h["pid"].as_i64(), Some(v.pid()), "{h}");
    assert_eq!(h["error"], Value::Null, "{h}");
    let log = f.requests();
    let second = log
        .iter()
        .find(|r| r["seq"] == h["after_seq"])
        .unwrap_or_else(|| panic!("after_seq {} not in the log {log:?}", h["after_seq"]));
    assert_eq!(second["method"], "PATCH");
    assert_eq!(second["path"], DS);
    assert_eq!(second["code"], 200);
    // The write the client never saw an answer for is in the store.
    let env = common::env_of(&f.get(DS).body);
    assert!(
        env.contains(&("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG".into(), "true".into())),
        "{env:?}"
    );
    assert_eq!(f.get(&format!("{ENI}/us-west-2a")).code, 200);

    // Fires once per arming: later writes are counted only.
    assert_eq!(f.delete(&format!("{ENI}/us-west-2a")).code, 200);
    let h = hook(&f);
    assert_eq!(h["writes"], 3);
    assert_eq!(h["after_seq"], second["seq"]);
}

#[test]
fn refused_writes_count_and_the_signal_is_configurable() {
    let f = start();
    let mut v = Victim::spawn("term");
    // A direct pid and a signal by number.
    arm(
        &f,
        &json!({"after_writes": 1, "pid": v.child.id(), "signal": libc::SIGTERM}),
    );
    // 404: nothing to delete, but the client sent a write and may crash right after it.
    let refused = f.delete(&format!("{ENI}/missing"));
    assert_eq!(refused.code, 404);
    let status = v.exit_status();
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    let h = hook(&f);
    assert_eq!(
        (h["killed"].clone(), h["signal"].clone()),
        (json!(true), json!(libc::SIGTERM))
    );
}

#[test]
fn the_pid_file_is_read_when_the_hook_fires() {
    let f = start();
    let pid_file =
        std::env::temp_dir().join(format!("fake-kube-kill-late-{}.pid", std::process::id()));
    let _ = std::fs::remove_file(&pid_file);
    arm(&f, &json!({"after_writes": 1, "pid_file": pid_file}));
    // The process (and its pid file) only appear after arming, as with eksnet in a crash test.
    let mut v = Victim::spawn("late");
    std::fs::rename(&v.pid_file, &pid_file).expect("move pid file");
    v.pid_file = pid_file;
    assert_eq!(f.post(ENI, &eni("late")).code, 201);
    assert_eq!(v.exit_status().signal(), Some(libc::SIGKILL));
    assert_eq!(hook(&f)["pid"].as_i64(), Some(v.pid()));
}

#[test]
fn disarm_reset_and_bad_configs() {
    let f = start();
    let mut v = Victim::spawn("disarm");
    for off in [json!(null), json!({})] {
        arm(&f, &json!({"after_writes": 1, "pid_file": v.pid_file}));
        let h = arm(&f, &off);
        assert_eq!(h["armed"], false, "{off}: {h}");
        assert_eq!(f.post(ENI, &eni("kept")).code, 201);
        assert_eq!(f.delete(&format!("{ENI}/kept")).code, 200);
        assert!(v.alive(), "{off} disarms");
    }

    // Reset disarms and forgets the outcome.
    arm(&f, &json!({"after_writes": 1, "pid_file": v.pid_file}));
    assert_eq!(request(f.addr, "POST", "/__fake/reset", &[], "").code, 200);
    let h = hook(&f);
    assert_eq!(
        (
            h["armed"].clone(),
            h["writes"].clone(),
            h["after_writes"].clone()
        ),
        (json!(false), json!(0), Value::Null),
        "{h}"
    );
    assert_eq!(f.post(ENI, &eni("after-reset")).code, 201);
    assert!(v.alive(), "reset disarms");

    // A bad config is a 400 Status and leaves the hook as it was.
    arm(&f, &json!({"after_writes": 5, "pid_file": v.pid_file}));
    for bad in [
        json!({"after_writes": 0, "pid_file": v.pid_file}),
        json!({"after_writes": 1}),
        json!({"after_writes": 1, "pid_file": v.pid_file, "signal": "NOPE"}),
        json!({"after_writes": 1, "pid_file": v.pid_file, "kill_after": 1}),
        json!([1, 2]),
    ] {
        let r = f.post("/__fake/kill", &bad);
        assert_eq!(r.code, 400, "{bad}: {}", r.body);
        assert_eq!(r.body["reason"], "BadRequest", "{bad}");
        assert_eq!(hook(&f)["after_writes"], 5, "{bad}");
    }

    // A pid file that does not name a process: reported, not fatal to the server.
    let missing = std::env::temp_dir().join("fake-kube-kill-nonexistent/eksnet.pid");
    arm(&f, &json!({"after_writes": 1, "pid_file": missing}));
    assert_eq!(f.post(ENI, &eni("no-target")).code, 201);
    let h = hook(&f);
    assert_eq!(
        (h["fired"].clone(), h["killed"].clone()),
        (json!(true), json!(false))
    );
    assert!(
        h["error"]
            .as_str()
            .is_some_and(|e| e.contains("eksnet.pid")),
        "{h}"
    );
    assert!(v.alive());
}

#[test]
fn a_path_filter_picks_out_one_write_among_concurrent_ones() {
    let f = start();
    let mut v = Victim::spawn("path");
    let armed = arm(
        &f,
        &json!({"after_writes": 1, "pid_file": v.pid_file, "path": DS}),
    );
    assert_eq!(armed["path"], DS);
    // Writes elsewhere do not count, whatever their number.
    for name in ["a", "b", "c"] {
        assert_eq!(f.post(ENI, &eni(name)).code, 201);
    }
    assert!(v.alive());
    assert_eq!(hook(&f)["writes"], 0);
    let patch = json!({"metadata": {"annotations": {"touched": "yes"}}});
    assert_eq!(f.patch(DS, SMP, &patch).code, 200);
    assert_eq!(v.exit_status().signal(), Some(libc::SIGKILL));
    let h = hook(&f);
    let log = f.requests();
    let fired_after = log.iter().find(|r| r["seq"] == h["after_seq"]);
    assert_eq!(
        fired_after.map(|r| r["path"].clone()),
        Some(json!(DS)),
        "{h}"
    );
}
