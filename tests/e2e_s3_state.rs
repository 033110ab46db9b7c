//! The shared state in S3, end to end against moto's S3 behind the fault proxy: two working
//! directories stand for two machines (CI runners, engineers) that share nothing but the
//! bucket. The lock and every state write are conditional requests; the proxy loses answers
//! and kills eksnet where the tests say.

mod common;
#[path = "common/proxy.rs"]
mod proxy;
use common::*;
use serde_json::json;
use std::path::Path;
use std::process::{Command, Stdio};

const SPEC: &str = "examples/custom-networking.toml";
const BUCKET: &str = "team-eksnet-state";
const KEY: &str = "clusters/tutorial.json";
/// Stack, 2 roles, cluster, block, 2 pod subnets, aws_node, 2 ENIConfigs, nodegroup.
const RESOURCES: usize = 11;

struct World {
    _guard: MotoGuard,
    /// moto itself, for writes that must not wait behind the proxy's latency.
    moto_url: String,
    proxy: proxy::Proxy,
    kube: &'static FakeKube,
    /// Two machines: each a copy of the examples, nothing shared on disk.
    a: tempfile::TempDir,
    b: tempfile::TempDir,
}

/// moto behind the proxy, a versioned bucket, and the example spec in two directories with
/// its state in the bucket (a short lease, so that an expired lock is seen within a test).
async fn world() -> World {
    let (guard, moto_url, kube) = moto_and_kube();
    let proxy = proxy::Proxy::start(&moto_url);
    proxy.config(json!({"eks_cluster_fields": true}));
    let s3 = s3(&proxy.url).await;
    create_bucket(&s3).await;
    s3.put_bucket_versioning()
        .bucket(BUCKET)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("versioning");
    let (a, b) = (example_dir(), example_dir());
    for d in [a.path(), b.path()] {
        let spec = d.join(SPEC);
        let text = std::fs::read_to_string(&spec).expect("spec");
        let text = format!(
            "[state]\nbackend = \"s3\"\nbucket = \"{BUCKET}\"\nkey = \"{KEY}\"\nlease_seconds = 5\n\n{text}"
        );
        std::fs::write(&spec, text).expect("write spec");
    }
    World {
        _guard: guard,
        moto_url,
        proxy,
        kube,
        a,
        b,
    }
}

async fn create_bucket(s3: &aws_sdk_s3::Client) {
    s3.create_bucket()
        .bucket(BUCKET)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::UsWest2)
                .build(),
        )
        .send()
        .await
        .expect("create bucket");
}

async fn s3(endpoint: &str) -> aws_sdk_s3::Client {
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(eksnet::cloud::aws::http_client())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-west-2"))
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .load()
        .await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    )
}

impl World {
    fn eksnet(&self, dir: &Path) -> Command {
        let mut c = eksnet(&self.proxy.url, dir);
        c.env("EKSNET_KUBECONFIG", &self.kube.kubeconfig);
        c.env("EKSNET_KUBE_CONTEXT", "fake");
        c
    }

    async fn lock_object(&self) -> Option<serde_json::Value> {
        let got = s3(&self.proxy.url)
            .await
            .get_object()
            .bucket(BUCKET)
            .key(format!("{KEY}.lock"))
            .send()
            .await
            .ok()?;
        let bytes = got.body.collect().await.ok()?.into_bytes();
        serde_json::from_slice(&bytes).ok()
    }

    async fn state_object(&self) -> serde_json::Value {
        let got = s3(&self.proxy.url)
            .await
            .get_object()
            .bucket(BUCKET)
            .key(KEY)
            .send()
            .await
            .expect("state object");
        let bytes = got.body.collect().await.expect("body").into_bytes();
        serde_json::from_slice(&bytes).expect("state JSON")
    }
}

/// `eksnet apply` on machine A through `sh`, which writes its pid to `pid_file` and then
/// `exec`s eksnet (same pid), so the proxy's kill hook can never miss it.
fn apply_writing_pid(w: &World, pid_file: &Path) -> std::process::Output {
    let cmd = w.eksnet(w.a.path());
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(r#"echo $$ > "$0"; exec "$@""#)
        .arg(pid_file)
        .arg(cmd.get_program())
        .args(["apply", SPEC, "--auto-approve"])
        .current_dir(w.a.path());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    sh.stdin(Stdio::null()).output().expect("apply on A")
}

fn lock_id(stderr: &str) -> Option<String> {
    let rest = stderr.split("eksnet force-unlock ").nth(1)?;
    rest.split_whitespace()
        .next()
        .map(|s| s.trim_matches('`').to_string())
}

fn rows(w: &World, d: &Path) -> Vec<String> {
    let out = run_ok(w.eksnet(d).args(["state", "list", "--spec", SPEC]), 0);
    out.stdout.lines().map(str::to_string).collect()
}

/// Machine A applies (slowly: the nodegroup takes seconds); machine B's apply meanwhile is
/// refused, naming A's command and host; B's later apply finds nothing to do, from the state
/// A left in the bucket. Neither has a state file on disk.
#[tokio::test]
async fn two_machines_one_lock_and_the_second_sees_the_firsts_work() {
    let w = world().await;
    w.proxy.config(json!({"nodegroup_create_ms": 4000}));
    let a = w
        .eksnet(w.a.path())
        .args(["apply", SPEC, "--auto-approve"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("apply on A");
    let mut held = None;
    for _ in 0..200 {
        if let Some(l) = w.lock_object().await {
            held = Some(l);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let held = held.expect("A's lock object appears in the bucket");
    assert_eq!(held["command"], format!("eksnet apply {SPEC}"), "{held}");
    let refused = run(w.eksnet(w.b.path()).args(["apply", SPEC, "--auto-approve"]));
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains(&format!("is locked by `eksnet apply {SPEC}`"))
            && refused.stderr.contains("probably still running"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        lock_id(&refused.stderr).as_deref(),
        held["id"].as_str(),
        "{}",
        refused.stderr
    );
    let a = a.wait_with_output().expect("A ends");
    assert!(
        a.status.success(),
        "A: {}",
        String::from_utf8_lossy(&a.stderr)
    );
    assert!(w.lock_object().await.is_none(), "A released its lock");
    for d in [w.a.path(), w.b.path()] {
        assert!(
            !d.join("state").exists(),
            "no local state at {}",
            d.display()
        );
    }
    let plan = run_ok(
        w.eksnet(w.b.path())
            .args(["plan", SPEC, "--detailed-exitcode"]),
        0,
    );
    assert!(plan.stdout.contains("No changes"), "{}", plan.stdout);
    assert_eq!(rows(&w, w.b.path()).len(), RESOURCES);
    // A plan saved on B is applied on A against the same state; once the state moved, a
    // plan saved before is refused on either.
    std::fs::write(
        w.b.path().join(SPEC),
        std::fs::read_to_string(w.b.path().join(SPEC))
            .expect("spec")
            .replace(
                "instance_types = [\"t3.medium\"]",
                "instance_types = [\"t3.medium\"]\nscaling = { min_size = 1, max_size = 3, desired_size = 3 }",
            ),
    )
    .expect("edit");
    run_ok(
        w.eksnet(w.b.path()).args(["plan", SPEC, "--out", "p.json"]),
        0,
    );
    run_ok(
        w.eksnet(w.b.path())
            .args(["plan", SPEC, "--out", "old.json"]),
        0,
    );
    let md = run_ok(
        w.eksnet(w.b.path())
            .args(["show", "p.json", "--format", "markdown"]),
        0,
    );
    assert!(
        md.stdout.contains("| `~` | `nodegroup.main` | update |")
            && md.stdout.contains("| scaling |"),
        "{}",
        md.stdout
    );
    std::fs::copy(w.b.path().join("p.json"), w.a.path().join("p.json")).expect("copy plan");
    std::fs::copy(w.b.path().join("old.json"), w.a.path().join("old.json")).expect("copy");
    run_ok(w.eksnet(w.a.path()).args(["apply", "p.json"]), 0);
    let stale = run_ok(w.eksnet(w.a.path()).args(["apply", "old.json"]), 1);
    assert!(
        stale.stderr.contains("the saved plan is stale"),
        "{}",
        stale.stderr
    );
    // Every write is a version: history lists them, an earlier one can be read.
    let history = run_ok(
        w.eksnet(w.a.path())
            .args(["state", "history", "--spec", SPEC, "--json"]),
        0,
    );
    let versions: Vec<serde_json::Value> =
        serde_json::from_str(&history.stdout).expect("history JSON");
    let serials: Vec<i64> = versions
        .iter()
        .filter_map(|v| v["serial"].as_i64())
        .collect();
    assert!(
        serials.len() >= 3 && serials.windows(2).all(|p| p[0] > p[1]),
        "{serials:?}"
    );
    assert!(versions[0]["command"]
        .as_str()
        .is_some_and(|c| c.contains("saved plan")));
    let oldest = serials[serials.len() - 1];
    let old = run_ok(
        w.eksnet(w.a.path()).args([
            "state",
            "pull",
            "--spec",
            SPEC,
            "--serial",
            &oldest.to_string(),
        ]),
        0,
    );
    let old: serde_json::Value = serde_json::from_str(&old.stdout).expect("old version");
    assert_eq!(old["serial"].as_i64(), Some(oldest));
}

/// The answer to the lock's create is lost and the SDK retries it: the retry meets our own
/// lock (412), recognises it by its id, and the apply goes on; the lock is released at the
/// end, not orphaned. A lost answer to a state write is recognised the same way.
#[tokio::test]
async fn a_lost_answer_to_the_lock_write_keeps_our_lock() {
    let w = world().await;
    w.proxy
        .config(json!({"lose_answer_op": "PutObject", "lose_answer_count": 2}));
    run_ok(
        w.eksnet(w.a.path()).args(["apply", SPEC, "--auto-approve"]),
        0,
    );
    let stats = w.proxy.stats();
    assert_eq!(stats.faulted("lost_answer").len(), 2, "two answers lost");
    assert!(w.lock_object().await.is_none(), "the lock is not orphaned");
    assert_eq!(rows(&w, w.b.path()).len(), RESOURCES);
    let state = w.state_object().await;
    assert_eq!(
        state["resources"].as_object().map(|r| r.len()),
        Some(RESOURCES)
    );
}

/// kill -9 in the middle of an apply: the lock stays; once its lease runs out another machine
/// is told so, with its age, frees it with `force-unlock`, and its apply converges with
/// nothing created twice.
#[tokio::test]
async fn a_killed_holders_lease_expires_and_force_unlock_elsewhere_frees_it() {
    let w = world().await;
    let pid_file = w.a.path().join("eksnet.pid");
    w.proxy.config(
        json!({"kill_after_mutating": 1, "kill_op": "CreateCluster", "kill_pid_file": pid_file}),
    );
    let out = apply_writing_pid(&w, &pid_file);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(9), "A was killed");
    w.proxy
        .config(json!({"kill_after_mutating": null, "kill_op": null, "kill_pid_file": null}));
    w.proxy.wait_idle();
    // The dead run's intents are in the bucket: the cluster was announced before its create.
    let state = w.state_object().await;
    assert_eq!(state["resources"]["cluster.main"]["status"], "creating");
    std::thread::sleep(std::time::Duration::from_secs(6));
    let refused = run(w.eksnet(w.b.path()).args(["apply", SPEC, "--auto-approve"]));
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("its lease expired"),
        "{}",
        refused.stderr
    );
    let id = lock_id(&refused.stderr).expect("lock id");
    run_ok(
        w.eksnet(w.b.path())
            .args(["force-unlock", &id, "--spec", SPEC]),
        0,
    );
    run_ok(
        w.eksnet(w.b.path()).args(["apply", SPEC, "--auto-approve"]),
        0,
    );
    let aws = sdk(&w.proxy.url).await;
    let clusters = aws.eks.list_clusters().send().await.expect("clusters");
    assert_eq!(clusters.clusters().len(), 1, "one cluster, not two");
    let rows = rows(&w, w.b.path());
    assert_eq!(rows.len(), RESOURCES, "{rows:?}");
    assert!(rows.iter().all(|r| r.contains("present")), "{rows:?}");
}

/// Two writers of one state object: the one that writes second, from the version it read
/// before the first wrote, is refused and stores nothing; the first's write stands.
#[tokio::test]
async fn a_state_write_racing_another_writer_is_refused() {
    let w = world().await;
    // The library's S3 client reads the endpoint from the environment as eksnet does.
    std::env::set_var("AWS_ENDPOINT_URL", &w.proxy.url);
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    use eksnet::state::{Durability, Location, StateStore};
    let loc = Location::parse_flag(&format!("s3://{BUCKET}/{KEY}")).expect("location");
    let row = |id: &str| eksnet::state::StateResource {
        status: eksnet::state::ResourceStatus::Present,
        cloud_id: Some(id.into()),
        attrs: json!({}),
        outputs: json!({}),
        dependencies: vec![],
        prevent_destroy: false,
        deposed: vec![],
    };
    let first = StateStore::open(&loc, Some("us-west-2"))
        .await
        .expect("open");
    let a: eksnet::base::addr::ResourceAddr = "subnet.a".parse().expect("addr");
    first
        .put(&a, &row("subnet-1"), Durability::Now)
        .await
        .expect("create");
    let (one, two) = (
        StateStore::open(&loc, Some("us-west-2"))
            .await
            .expect("open"),
        StateStore::open(&loc, Some("us-west-2"))
            .await
            .expect("open"),
    );
    one.put(&a, &row("subnet-2"), Durability::Now)
        .await
        .expect("first writer");
    let lost = two.put(&a, &row("subnet-3"), Durability::Now).await;
    let e = lost.expect_err("the second writer is refused").to_string();
    assert!(e.contains("was changed by another writer"), "{e}");
    // Refused for good: a later write from the same stale reader is refused too.
    assert!(two.remove(&a, Durability::Now).await.is_err());
    let state = w.state_object().await;
    assert_eq!(state["resources"]["subnet.a"]["cloud_id"], "subnet-2");
    assert_eq!(state["serial"], 2);
}

/// The state is read together with the lock's create. A write by the previous holder that
/// lands after that read (here: straight to moto while the proxy holds eksnet's requests
/// back) is caught by the check after the lock, before this command writes anything or
/// apply sends a request: nothing stale is planned or stored.
#[tokio::test]
async fn a_state_read_overtaken_while_taking_the_lock_is_refused_before_any_write() {
    let w = world().await;
    std::env::set_var("AWS_ENDPOINT_URL", &w.proxy.url);
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    use eksnet::state::{Durability, Location, StateStore};
    let loc = Location::parse_flag(&format!("s3://{BUCKET}/{KEY}")).expect("location");
    let row = eksnet::state::StateResource {
        status: eksnet::state::ResourceStatus::Present,
        cloud_id: Some("subnet-1".into()),
        attrs: json!({}),
        outputs: json!({}),
        dependencies: vec![],
        prevent_destroy: false,
        deposed: vec![],
    };
    let a: eksnet::base::addr::ResourceAddr = "subnet.a".parse().expect("addr");
    // Unraced, the check passes and the write goes through.
    let (store, id) = StateStore::open_locked(&loc, Some("us-west-2"), "first")
        .await
        .expect("lock");
    store.verified().await.expect("nothing raced");
    store.put(&a, &row, Durability::Now).await.expect("write");
    store.unlock(&id).await.expect("unlock");

    w.proxy.config(json!({"latency_ms": 400}));
    let (store, _id) = StateStore::open_locked(&loc, Some("us-west-2"), "second")
        .await
        .expect("lock");
    // The check's HEAD is now waiting in the proxy; the other writer's object lands first.
    let direct = s3(&w.moto_url).await;
    direct
        .put_object()
        .bucket(BUCKET)
        .key(KEY)
        .body(aws_sdk_s3::primitives::ByteStream::from(
            serde_json::to_vec(
                &json!({"format": 1, "lineage": "other", "serial": 9, "resources": {}}),
            )
            .expect("json"),
        ))
        .send()
        .await
        .expect("other writer");
    let e = store
        .put(
            &a,
            &eksnet::state::StateResource {
                cloud_id: Some("subnet-2".into()),
                ..row.clone()
            },
            Durability::Now,
        )
        .await
        .expect_err("a write from the stale read is refused")
        .to_string();
    assert!(e.contains("was changed by another writer"), "{e}");
    // Refused for good: no later write of this command goes through either.
    assert!(store.remove(&a, Durability::Now).await.is_err());
    w.proxy.config(json!({"latency_ms": null}));
    let state = w.state_object().await;
    assert_eq!(state["lineage"], "other", "the other writer's state stands");
    assert_eq!(state["serial"], 9);
}

/// A local state moved to S3 and back keeps every resource, its lineage and its serial
/// order; a target that already holds a state is refused.
#[tokio::test]
async fn migrate_to_s3_and_back_keeps_every_resource() {
    let w = world().await;
    let d = w.a.path();
    // Applied with a local state first (the flag wins over the spec's `[state]`).
    run_ok(
        w.eksnet(d)
            .args(["apply", SPEC, "--auto-approve", "--state", "state/local.db"]),
        0,
    );
    // A roll under way keeps its progress as records next to the resources: they travel
    // with the state.
    let record = json!({"node": "ip-10-0-0-1", "phase": "draining"});
    rusqlite::Connection::open(d.join("state/local.db"))
        .expect("open local.db")
        .execute(
            "INSERT INTO records (key, value) VALUES ('roll/c/ip-10-0-0-1', ?1)",
            [record.to_string()],
        )
        .expect("insert a record");
    let local = run_ok(
        w.eksnet(d)
            .args(["state", "pull", "--state", "state/local.db"]),
        0,
    );
    let local: serde_json::Value = serde_json::from_str(&local.stdout).expect("doc");
    assert_eq!(local["records"]["roll/c/ip-10-0-0-1"], record, "{local}");
    let url = format!("s3://{BUCKET}/{KEY}");
    run_ok(
        w.eksnet(d).args([
            "state",
            "migrate",
            "--from",
            "state/local.db",
            "--to",
            &url,
            "--spec",
            SPEC,
        ]),
        0,
    );
    let remote = w.state_object().await;
    assert_eq!(remote["lineage"], local["lineage"]);
    assert_eq!(remote["resources"], local["resources"]);
    assert_eq!(remote["records"], local["records"]);
    // The spec now points at S3: a plan there has nothing to do.
    let plan = run_ok(w.eksnet(d).args(["plan", SPEC, "--detailed-exitcode"]), 0);
    assert!(plan.stdout.contains("No changes"), "{}", plan.stdout);
    // Not over a state that holds resources.
    let refused = run_ok(
        w.eksnet(d).args([
            "state",
            "migrate",
            "--from",
            &url,
            "--to",
            "state/local.db",
            "--spec",
            SPEC,
        ]),
        1,
    );
    assert!(
        refused
            .stderr
            .contains("refuses to overwrite a state that is not empty"),
        "{}",
        refused.stderr
    );
    run_ok(
        w.eksnet(d).args([
            "state",
            "migrate",
            "--from",
            &url,
            "--to",
            "state/back.db",
            "--spec",
            SPEC,
        ]),
        0,
    );
    let back = run_ok(
        w.eksnet(d)
            .args(["state", "pull", "--state", "state/back.db"]),
        0,
    );
    let back: serde_json::Value = serde_json::from_str(&back.stdout).expect("doc");
    assert_eq!(back["lineage"], local["lineage"]);
    assert_eq!(back["resources"], local["resources"]);
    assert_eq!(back["records"], local["records"]);
    // A migration keeps the serial: plans saved before it still match.
    assert_eq!(back["serial"], local["serial"]);
    // push: an older document is refused unless forced; another lineage too.
    std::fs::write(
        d.join("old.json"),
        serde_json::to_string(&local).expect("json"),
    )
    .expect("write");
    let mut newer = back.clone();
    newer["lineage"] = json!("another-lineage");
    std::fs::write(d.join("other.json"), newer.to_string()).expect("write");
    // The pulled document, pushed back as it is (the repair flow: pull, edit, push), goes in
    // at the next serial; pushing it again is then pushing an older document.
    let repaired = run_ok(
        w.eksnet(d)
            .args(["state", "push", "old.json", "--state", "state/back.db"]),
        0,
    );
    assert!(
        repaired.stderr.contains("Pushed 11 resources"),
        "{}",
        repaired.stderr
    );
    let older = run_ok(
        w.eksnet(d)
            .args(["state", "push", "old.json", "--state", "state/back.db"]),
        1,
    );
    assert!(
        older.stderr.contains("older than the state"),
        "{}",
        older.stderr
    );
    let other = run_ok(
        w.eksnet(d)
            .args(["state", "push", "other.json", "--state", "state/back.db"]),
        1,
    );
    assert!(
        other.stderr.contains("of another state"),
        "{}",
        other.stderr
    );
    run_ok(
        w.eksnet(d).args([
            "state",
            "push",
            "old.json",
            "--state",
            "state/back.db",
            "--force",
        ]),
        0,
    );
}

/// Puts the world back to empty between crash points: moto (through the proxy, which also
/// clears its windows and hooks), the fake cluster, and the versioned bucket.
async fn reset_world(w: &World) {
    w.proxy.reset();
    w.proxy.config(json!({"eks_cluster_fields": true}));
    let (status, body) = http(
        w.kube.url.trim_start_matches("http://"),
        "POST",
        "/__fake/reset",
        "",
    );
    assert_eq!(status, 200, "fake kube reset: {body}");
    create_bucket(&s3(&w.proxy.url).await).await;
    w.proxy.reset_stats();
}

/// The resilience suite's crash loop with the state in S3: kill -9 right after the first
/// request of each mutating operation of an apply (AWS's and S3's own: the lock's create and
/// the state writes), then, from the other machine, `force-unlock` the dead run's lock and
/// apply again: it converges with exactly one of everything.
#[tokio::test]
async fn crash_after_each_kind_of_request_with_the_state_in_s3_then_reapply_converges() {
    let w = world().await;
    w.proxy.reset_stats();
    run_ok(
        w.eksnet(w.a.path()).args(["apply", SPEC, "--auto-approve"]),
        0,
    );
    let mut points: Vec<(String, u64)> = Vec::new();
    let mut puts = 0;
    for r in w
        .proxy
        .stats()
        .requests()
        .into_iter()
        .filter(|r| r.mutating)
    {
        if r.op == "PutObject" {
            puts += 1;
        }
        if !points.iter().any(|(op, _)| *op == r.op) {
            points.push((r.op.clone(), 1));
        }
    }
    // Beside the lock's create: the announcement of every create (the first state write),
    // and the first write of results. How results group depends on timing, so only these
    // three writes are sure to happen in every run.
    assert!(puts >= 3, "lock, announcement, results: {puts} PutObject");
    points.push(("PutObject".into(), 2));
    points.push(("PutObject".into(), 3));
    assert!(
        points.iter().any(|(op, _)| op == "CreateCluster")
            && points.iter().any(|(op, _)| op == "PutObject"),
        "{points:?}"
    );
    for (op, n) in points {
        let ctx = format!("killed after {op} #{n}");
        eprintln!("crash point: {ctx}");
        reset_world(&w).await;
        let pid_file = w.a.path().join("eksnet.pid");
        w.proxy
            .config(json!({"kill_after_mutating": n, "kill_op": op, "kill_pid_file": pid_file}));
        let out = apply_writing_pid(&w, &pid_file);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(9),
            "{ctx}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        w.proxy
            .config(json!({"kill_after_mutating": null, "kill_op": null, "kill_pid_file": null}));
        w.proxy.wait_idle();
        let again = run(w.eksnet(w.b.path()).args(["apply", SPEC, "--auto-approve"]));
        if again.code != 0 {
            // The dead run's lock (none when it died before the lock was stored).
            let id = lock_id(&again.stderr)
                .unwrap_or_else(|| panic!("{ctx}: no lock id in {}", again.stderr));
            run_ok(
                w.eksnet(w.b.path())
                    .args(["force-unlock", &id, "--spec", SPEC]),
                0,
            );
            let r = run(w.eksnet(w.b.path()).args(["apply", SPEC, "--auto-approve"]));
            assert_eq!(r.code, 0, "{ctx}: re-apply\n{}", r.stderr);
        }
        let aws = sdk(&w.proxy.url).await;
        let clusters = aws.eks.list_clusters().send().await.expect("clusters");
        assert_eq!(clusters.clusters().len(), 1, "{ctx}: one cluster");
        let stacks = aws
            .cloudformation
            .list_stacks()
            .send()
            .await
            .expect("stacks");
        let live = stacks
            .stack_summaries()
            .iter()
            .filter(|s| {
                s.stack_status()
                    .is_some_and(|st| st.as_str() != "DELETE_COMPLETE")
            })
            .count();
        assert_eq!(live, 1, "{ctx}: one stack");
        let rows = rows(&w, w.b.path());
        assert_eq!(rows.len(), RESOURCES, "{ctx}: {rows:?}");
        assert!(
            rows.iter().all(|r| r.contains("present")),
            "{ctx}: {rows:?}"
        );
        let plan = run_ok(
            w.eksnet(w.b.path())
                .args(["plan", SPEC, "--detailed-exitcode"]),
            0,
        );
        assert!(plan.stdout.contains("No changes"), "{ctx}: {}", plan.stdout);
    }
}
