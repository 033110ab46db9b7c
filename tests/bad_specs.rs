//! Bad specs through the real binary: every command that reads a spec (`validate`, `plan`,
//! `apply`, `destroy`, `import`, `verify`, `graph`).
//!
//! Every case writes one small spec (`bad.toml`) holding exactly the intended problem and
//! checks, for each command:
//! - exit code 1 and nothing on stdout;
//! - each expected diagnostic on one stderr line, together with `bad.toml:LINE:`, the key in
//!   backticks and a distinctive part of the message, and no other `error:` line;
//! - no API call: `AWS_ENDPOINT_URL` points at a `TcpListener` that never accepts while the
//!   process runs; after it exits, a non-blocking accept must find no queued connection;
//! - nothing written: the directory holds only the files the test wrote (no state file).
//!
//! `plan_on_a_good_spec_does_reach_the_endpoint` is the control showing that the listener does
//! see the calls `plan` makes when the spec is fine.

use std::io::{ErrorKind, Read};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};

#[path = "support/package_dir.rs"]
mod package_dir;
use package_dir::package_dir;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_eksnet");
const SPEC: &str = "bad.toml";
/// A process still running after this long is assumed to be waiting on an API call.
const DEADLINE: Duration = Duration::from_secs(90);

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// Connections that reached the fake endpoint.
    connections: usize,
}

/// A clean environment: only fake credentials, a region and an endpoint nobody answers on.
fn command(dir: &Path, port: u16, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .current_dir(dir)
        .env_clear()
        .env("HOME", dir)
        .env("AWS_CONFIG_FILE", dir.join("no-such-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.join("no-such-aws-credentials"),
        )
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_REGION", "us-west-2")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn read_all(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

/// Runs eksnet against a listener that never accepts while the process runs; counts the
/// connections queued on it afterwards.
fn run(dir: &Path, args: &[&str]) -> Run {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    let port = listener.local_addr().expect("local addr").port();
    let mut child = command(dir, port, args).spawn().expect("start eksnet");
    let out = read_all(child.stdout.take().expect("stdout"));
    let err = read_all(child.stderr.take().expect("stderr"));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for eksnet") {
            break Some(s);
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let mut connections = 0;
    loop {
        match listener.accept() {
            Ok(_) => connections += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("accept on the fake endpoint failed: {e}"),
        }
    }
    let (stdout, stderr) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    assert!(
        status.is_some(),
        "eksnet {args:?} still running after {DEADLINE:?} ({connections} connection(s) to the endpoint); stderr:\n{stderr}"
    );
    Run {
        code: status.and_then(|s| s.code()),
        stdout,
        stderr,
        connections,
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list temp dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

struct Expect {
    line: usize,
    key: Option<&'static str>,
    /// Fragments that must all be on the diagnostic's line.
    msg: Vec<&'static str>,
}

struct Case {
    spec: &'static str,
    files: Vec<(&'static str, &'static str)>,
    expect: Vec<Expect>,
}

fn bad(spec: &'static str) -> Case {
    Case {
        spec,
        files: Vec::new(),
        expect: Vec::new(),
    }
}

impl Case {
    /// Another file next to the spec (e.g. a template).
    fn file(mut self, name: &'static str, text: &'static str) -> Self {
        self.files.push((name, text));
        self
    }

    /// An error at `bad.toml:LINE:` for `key`, whose message contains `msg`.
    fn err(self, line: usize, key: &'static str, msg: &'static str) -> Self {
        self.err_parts(line, key, &[msg])
    }

    /// An error whose line contains every one of `parts`.
    fn err_parts(mut self, line: usize, key: &'static str, parts: &[&'static str]) -> Self {
        self.expect.push(Expect {
            line,
            key: Some(key),
            msg: parts.to_vec(),
        });
        self
    }

    /// An error with a location but no key (TOML syntax errors).
    fn err_no_key(mut self, line: usize, msg: &'static str) -> Self {
        self.expect.push(Expect {
            line,
            key: None,
            msg: vec![msg],
        });
        self
    }

    fn check(self) {
        assert!(
            !self.expect.is_empty(),
            "a case needs at least one expected error"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(SPEC), self.spec).expect("write spec");
        for (name, text) in &self.files {
            std::fs::write(dir.path().join(name), text).expect("write extra file");
        }
        let before = listing(dir.path());
        let state = dir.path().join("s.db");
        let state_arg = state.display().to_string();
        // Every command that reads a spec stops the same way: same errors, no call, no file.
        let runs: [Vec<&str>; 7] = [
            vec!["validate", SPEC],
            vec!["plan", SPEC, "--state", &state_arg],
            vec!["apply", SPEC, "--auto-approve", "--state", &state_arg],
            vec!["destroy", SPEC, "--auto-approve", "--state", &state_arg],
            vec![
                "import",
                SPEC,
                "vpc.main",
                "vpc-0123456789abcdef0",
                "--state",
                &state_arg,
            ],
            vec!["verify", SPEC],
            vec!["graph", SPEC],
        ];
        for args in runs {
            let r = run(dir.path(), &args);
            let ctx = format!(
                "eksnet {}\n--- stderr:\n{}--- stdout:\n{}",
                args.join(" "),
                r.stderr,
                r.stdout
            );
            assert_eq!(r.code, Some(1), "exit code of {ctx}");
            assert_eq!(r.connections, 0, "an API call was made by {ctx}");
            assert!(r.stdout.is_empty(), "nothing should go to stdout: {ctx}");
            assert!(!state.exists(), "the state file was created by {ctx}");
            assert_eq!(listing(dir.path()), before, "files were written by {ctx}");
            let expected = &self.expect;
            for e in expected {
                // The spec is passed by its relative name, so the line starts with it.
                let at = format!("error: {SPEC}:{}:", e.line);
                let key = e.key.map(|k| format!("`{k}`: "));
                let found = r.stderr.lines().any(|l| {
                    l.starts_with(&at)
                        && key.as_deref().is_none_or(|k| l.contains(k))
                        && e.msg.iter().all(|m| l.contains(m))
                });
                assert!(
                    found,
                    "no stderr line with `{at}`, key {:?} and message {:?} from {ctx}",
                    e.key, e.msg
                );
            }
            let errors = r
                .stderr
                .lines()
                .filter(|l| l.starts_with("error: "))
                .count();
            assert_eq!(errors, expected.len(), "number of errors reported by {ctx}");
        }
    }
}

const TEMPLATE: &str = "AWSTemplateFormatVersion: '2010-09-09'\nResources: {}\n";

#[test]
fn toml_syntax_error() {
    bad(r#"[vpc.main]
id = "vpc-0123abcd"
cidr_block = "10.0.0.0/16

[cidr_block.pods]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/16"
"#)
    .err_no_key(3, "TOML syntax: invalid basic string")
    .check();
}

#[test]
fn duplicate_key_and_duplicate_table_are_named() {
    bad(r#"[iam_role.a]
name = "a"
name = "b"
assume_role_service = "eks.amazonaws.com"

[iam_role.a]
"#)
    .err_no_key(3, "TOML syntax: duplicate key `name`")
    .err_no_key(6, "TOML syntax: duplicate table `[iam_role.a]`")
    .check();
}

#[test]
fn a_saved_plan_given_as_a_spec_is_one_error() {
    bad("{\n  \"format\": 1,\n  \"changes\": [\n    1,\n    2\n  ]\n}\n")
        .err_no_key(1, "this is JSON, not a TOML spec")
        .check();
}

#[test]
fn many_syntax_errors_are_cut_after_ten() {
    bad("a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\nm\n")
        .err_no_key(1, "key with no value")
        .err_no_key(2, "key with no value")
        .err_no_key(3, "key with no value")
        .err_no_key(4, "key with no value")
        .err_no_key(5, "key with no value")
        .err_no_key(6, "key with no value")
        .err_no_key(7, "key with no value")
        .err_no_key(8, "key with no value")
        .err_no_key(9, "key with no value")
        .err_no_key(10, "key with no value")
        .err_no_key(11, "3 more TOML syntax errors from here on, not shown")
        .check();
}

#[test]
fn a_negative_timeout_is_named_in_toml_terms() {
    bad(r#"[settings]
timeouts = { cluster = -1 }
"#)
    .err(
        2,
        "settings.timeouts.cluster",
        "invalid value: integer `-1`, expected a whole number, 0 or more",
    )
    .check();
}

#[test]
fn unknown_top_level_section() {
    bad(r#"[vpc.main]
id = "vpc-0123abcd"

[subnets.pod_a]
vpc_id = "${vpc.main.id}"
"#)
    .err(
        4,
        "subnets",
        "unknown section `subnets`; expected one of: settings, state, vpc, cidr_block, subnet",
    )
    .check();
}

#[test]
fn a_state_backend_s3_refuses_bad_names_and_unknown_keys() {
    bad(r#"[state]
backend = "s3"
bucket = "Team_State"
key = "prod/"
lease_seconds = 1

[vpc.main]
id = "vpc-0123abcd"
"#)
    .err(3, "state.bucket", "is not an S3 bucket name")
    .err(4, "state.key", "is not a state object key")
    .err(5, "state.lease_seconds", "give 5 to 3600 seconds")
    .check();
    bad(r#"[state]
backend = "s3"
bucket = "team-state"
key = "prod.json"
table = "locks"

[vpc.main]
id = "vpc-0123abcd"
"#)
    .err(5, "state.table", "unknown field `table`")
    .check();
    bad(r#"[state]
backend = "dynamodb"

[vpc.main]
id = "vpc-0123abcd"
"#)
    .err(2, "state.backend", "unknown variant `dynamodb`")
    .check();
    bad(r#"[state]
backend = "s3"
key = "prod.json"

[vpc.main]
id = "vpc-0123abcd"
"#)
    .err(2, "state.backend", "needs `bucket`")
    .check();
}

#[test]
fn unknown_key_in_a_resource() {
    // The key names the resource; the message names the field.
    bad(r#"[vpc.main]
id = "vpc-0123abcd"
cidr_block = "10.0.0.0/16"

[cidr_block.pods]
vpc_id = "${vpc.main.id}"
cidr = "100.64.0.0/16"
"#)
    .err(
        7,
        "cidr_block.pods.cidr",
        "unknown field `cidr`, expected `vpc_id` or `cidr_block`",
    )
    .check();
}

#[test]
fn wrong_type_string_for_min_size() {
    bad(r#"[nodegroup.main]
cluster_name = "demo"
name = "ng"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]

[nodegroup.main.scaling]
min_size = "1"
max_size = 3
desired_size = 2
"#)
    .err(
        8,
        "nodegroup.main.scaling.min_size",
        "invalid type: string \"1\", expected a whole number",
    )
    .check();
}

#[test]
fn missing_required_key() {
    bad(r#"[vpc.main]
id = "vpc-0123abcd"
cidr_block = "10.0.0.0/16"

[cidr_block.pods]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/16"

[subnet.pod_a]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/19"
"#)
    .err(
        9,
        "subnet.pod_a.availability_zone",
        "missing field `availability_zone`",
    )
    .check();
}

/// A VPC with a known primary block and one secondary block, then the given pod subnets.
macro_rules! with_block {
    ($subnets:literal) => {
        concat!(
            r#"[vpc.main]
id = "vpc-0123abcd"
cidr_block = "10.0.0.0/16"

[cidr_block.pods]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/16"
"#,
            $subnets
        )
    };
}

#[test]
fn bad_cidr_syntax() {
    bad(with_block!(
        r#"
[subnet.pod_a]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0/19"
availability_zone = "us-west-2a"
"#
    ))
    .err(
        11,
        "subnet.pod_a.cidr_block",
        "`100.64.0/19` is not an IPv4 CIDR block",
    )
    .check();
}

#[test]
fn cidr_with_host_bits_set() {
    bad(with_block!(
        r#"
[subnet.pod_a]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.5/19"
availability_zone = "us-west-2a"
"#
    ))
    .err(
        11,
        "subnet.pod_a.cidr_block",
        "has host bits set; did you mean `100.64.0.0/19`?",
    )
    .check();
}

/// A wrong secondary block is reported once; its subnets are not also told that no block
/// is declared.
#[test]
fn a_bad_secondary_block_is_one_error_not_one_per_subnet() {
    bad(r#"[vpc.main]
id = "vpc-0123abcd"
cidr_block = "10.0.0.0/16"

[cidr_block.pods]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.1.5/16"

[subnet.pod_a]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/19"
availability_zone = "us-west-2a"
"#)
    .err(
        7,
        "cidr_block.pods.cidr_block",
        "has host bits set; did you mean `100.64.0.0/16`?",
    )
    .check();
}

/// Host bits and a size AWS refuses: the size is what to fix (the suggestion without host
/// bits would be refused too).
#[test]
fn host_bits_on_a_block_of_the_wrong_size_reports_the_size() {
    bad(r#"[vpc.main]
id = "vpc-0123abcd"
cidr_block = "10.0.0.0/16"

[cidr_block.pods]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/8"
"#)
    .err(
        7,
        "cidr_block.pods.cidr_block",
        "`100.64.0.0/8`: AWS allows VPC and subnet blocks from /16 to /28",
    )
    .check();
}

#[test]
fn prefix_outside_16_to_28() {
    bad(with_block!(
        r#"
[subnet.pod_a]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/29"
availability_zone = "us-west-2a"
"#
    ))
    .err(
        11,
        "subnet.pod_a.cidr_block",
        "AWS allows VPC and subnet blocks from /16 to /28",
    )
    .check();
}

#[test]
fn secondary_block_overlaps_the_vpc_block() {
    bad(r#"[vpc.main]
id = "vpc-0123abcd"
cidr_block = "10.0.0.0/16"

[cidr_block.pods]
vpc_id = "${vpc.main.id}"
cidr_block = "10.0.128.0/17"
"#)
    .err(
        7,
        "cidr_block.pods.cidr_block",
        "secondary block 10.0.128.0/17 overlaps the VPC's block 10.0.0.0/16",
    )
    .check();
}

#[test]
fn two_secondary_blocks_overlap() {
    bad(with_block!(
        r#"
[cidr_block.more]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.128.0/17"
"#
    ))
    // Resources are checked in address order: `more` first, so `pods` is the one reported.
    .err(
        7,
        "cidr_block.pods.cidr_block",
        "100.64.0.0/16 overlaps 100.64.128.0/17 of `cidr_block.more`",
    )
    .check();
}

#[test]
fn pod_subnet_outside_every_secondary_block() {
    bad(with_block!(
        r#"
[subnet.pod_a]
vpc_id = "${vpc.main.id}"
cidr_block = "100.65.0.0/19"
availability_zone = "us-west-2a"
"#
    ))
    .err(
        11,
        "subnet.pod_a.cidr_block",
        "pod subnet 100.65.0.0/19 is not inside a secondary CIDR block declared for its VPC; declared: 100.64.0.0/16 (cidr_block.pods)",
    )
    .check();
}

#[test]
fn two_pod_subnets_overlap() {
    bad(with_block!(
        r#"
[subnet.pod_a]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/19"
availability_zone = "us-west-2a"

[subnet.pod_b]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.16.0/20"
availability_zone = "us-west-2b"
"#
    ))
    .err(
        16,
        "subnet.pod_b.cidr_block",
        "pod subnet 100.64.16.0/20 overlaps 100.64.0.0/19 of `subnet.pod_a`",
    )
    .check();
}

#[test]
fn dangling_reference() {
    bad(with_block!(
        r#"
[subnet.pod_a]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/19"
availability_zone = "us-west-2a"

[subnet.pod_b]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.32.0/19"
availability_zone = "${subnet.nope.id}"
"#
    ))
    .err(
        17,
        "subnet.pod_b.availability_zone",
        "dangling reference `${subnet.nope.id}`: `subnet.nope` is not declared (declared: subnet.pod_a, subnet.pod_b)",
    )
    .check();
}

#[test]
fn reference_to_an_unknown_output() {
    bad(r#"[cluster.main]
name = "demo"
role_arn = "arn:aws:iam::111122223333:role/cluster"
subnet_ids = ["subnet-0000000a", "subnet-0000000b"]

[nodegroup.main]
cluster_name = "${cluster.main.bogus}"
name = "ng"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]
"#)
    .err(
        7,
        "nodegroup.main.cluster_name",
        "`${cluster.main.bogus}`: a cluster has no output `bogus`; available: name, arn, endpoint",
    )
    .check();
}

#[test]
fn reference_without_its_closing_brace() {
    bad(r#"[iam_role.a]
name = "a"
assume_role_service = "eks.amazonaws.com"

[iam_role.b]
name = "${iam_role.a.name"
assume_role_service = "eks.amazonaws.com"
"#)
    .err(
        6,
        "iam_role.b.name",
        "`${iam_role.a.name` looks like a reference but has no closing `}`",
    )
    .check();
}

#[test]
fn malformed_reference() {
    bad(with_block!(
        r#"
[subnet.a]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/19"
availability_zone = "us-west-2a"

[subnet.b]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.32.0/19"
availability_zone = "${subnet.a}"
"#
    ))
    .err(
        17,
        "subnet.b.availability_zone",
        "reference `${subnet.a}` must have the form `${kind.name.attribute}`",
    )
    .check();
}

#[test]
fn self_reference() {
    bad(with_block!(
        r#"
[subnet.a]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/19"
availability_zone = "${subnet.a.availability_zone}"
"#
    ))
    .err(
        12,
        "subnet.a.availability_zone",
        "`${subnet.a.availability_zone}` refers to the resource itself",
    )
    // The graph's view of the same problem: a one-member cycle.
    .err(9, "subnet.a", "dependency cycle between subnet.a")
    .check();
}

#[test]
fn dependency_cycle_names_both_members() {
    bad(r#"[cluster.main]
name = "${nodegroup.main.name}"
role_arn = "arn:aws:iam::111122223333:role/cluster"
subnet_ids = ["subnet-0000000a", "subnet-0000000b"]

[nodegroup.main]
cluster_name = "${cluster.main.name}"
name = "ng"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]
"#)
    .err(
        1,
        "cluster.main",
        "dependency cycle between cluster.main → nodegroup.main",
    )
    .check();
}

#[test]
fn ipv6_cluster_with_pod_subnets() {
    bad(with_block!(
        r#"
[subnet.pod_a]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/19"
availability_zone = "us-west-2a"

[cluster.main]
name = "demo"
role_arn = "arn:aws:iam::111122223333:role/cluster"
subnet_ids = ["subnet-0000000a", "subnet-0000000b"]
ip_family = "ipv6"
"#
    ))
    .err(
        18,
        "cluster.main.ip_family",
        "custom networking (pod subnets and ENIConfigs) cannot be used with an IPv6 cluster",
    )
    .check();
}

#[test]
fn vpc_with_both_id_and_stack_name() {
    bad(r#"[vpc.main]
id = "vpc-0123abcd"
stack_name = "net"
template_file = "vpc.yaml"
"#)
    .file("vpc.yaml", TEMPLATE)
    .err(
        1,
        "vpc.main",
        "set either `id` (adopt an existing VPC) or `stack_name`",
    )
    .check();
}

#[test]
fn stack_without_template() {
    bad(r#"[vpc.main]
stack_name = "net"
cidr_block = "10.0.0.0/16"
"#)
    .err(
        2,
        "vpc.main.stack_name",
        "a stack needs `template_file` or `template_url`",
    )
    .check();
}

#[test]
fn template_file_that_does_not_exist() {
    bad(r#"[vpc.main]
stack_name = "net"
cidr_block = "10.0.0.0/16"
template_file = "missing.yaml"
"#)
    .err_parts(
        4,
        "vpc.main.template_file",
        &["cannot read template `", "missing.yaml`: "],
    )
    .check();
}

#[test]
fn iam_role_with_both_trust_forms() {
    bad(r#"[iam_role.cluster]
name = "demo-cluster"
assume_role_service = "eks.amazonaws.com"
assume_role_policy = '{"Version": "2012-10-17", "Statement": []}'
"#)
    .err(
        4,
        "iam_role.cluster.assume_role_policy",
        "is a whole trust policy: set it, or `assume_role_service` and/or `assume_role_web_identity`, not both",
    )
    .check();
}

#[test]
fn invalid_json_in_assume_role_policy() {
    bad(r#"[iam_role.cluster]
name = "demo-cluster"
assume_role_policy = '{"Version": "2012-10-17", "Statement": [}'
"#)
    .err(
        3,
        "iam_role.cluster.assume_role_policy",
        "assume_role_policy is not valid JSON",
    )
    .check();
}

#[test]
fn duplicate_cluster_names() {
    bad(r#"[cluster.a]
name = "demo"
role_arn = "arn:aws:iam::111122223333:role/cluster"
subnet_ids = ["subnet-0000000a", "subnet-0000000b"]

[cluster.b]
name = "demo"
role_arn = "arn:aws:iam::111122223333:role/cluster"
subnet_ids = ["subnet-0000000a", "subnet-0000000b"]
"#)
    .err(
        7,
        "cluster.b.name",
        "`demo` is also the name of `cluster.a`; names must be unique",
    )
    .check();
}

#[test]
fn nodegroup_named_after_anothers_replacement() {
    bad(r#"[nodegroup.a]
cluster_name = "demo"
name = "workers"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]

[nodegroup.b]
cluster_name = "demo"
name = "workers-cbd"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]
"#)
    .err(
        9,
        "nodegroup.b.name",
        "`workers-cbd` is the name `nodegroup.a` takes while it is replaced",
    )
    .check();
}

#[test]
fn reserved_eksnet_tag_prefix() {
    bad(with_block!(
        r#"
[subnet.pod_a]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/19"
availability_zone = "us-west-2a"
tags = { Name = "pod-a", "eksnet:owner" = "me" }
"#
    ))
    .err(
        13,
        "subnet.pod_a.tags",
        "tag key `eksnet:owner`: the `eksnet:` prefix is reserved",
    )
    .check();
}

#[test]
fn nodegroup_scaling_min_greater_than_max() {
    bad(r#"[nodegroup.main]
cluster_name = "demo"
name = "ng"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]
scaling = { min_size = 3, max_size = 2, desired_size = 2 }
"#)
    .err(6, "nodegroup.main.scaling", "(got min 3, desired 2, max 2)")
    .check();
}

#[test]
fn cluster_with_one_subnet() {
    bad(r#"[cluster.main]
name = "demo"
role_arn = "arn:aws:iam::111122223333:role/cluster"
subnet_ids = ["subnet-0000000a"]
"#)
    .err(
        4,
        "cluster.main.subnet_ids",
        "EKS needs subnets in at least two availability zones",
    )
    .check();
}

#[test]
fn invalid_resource_name() {
    bad(r#"[vpc.main]
id = "vpc-0123abcd"

[subnet."a b"]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/19"
availability_zone = "us-west-2a"
"#)
    .err(
        4,
        "subnet.a b",
        "resource name `a b` may only contain letters, digits, `_` and `-`",
    )
    .check();
}

const THREE_ERRORS: &str = r#"[vpc.main]
id = "vpc-0123abcd"
cidr_block = "10.0.0.0/16"

[cidr_block.pods]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/16"

[subnet.pod_a]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.1/19"
availability_zone = "us-west-2a"

[cluster.main]
name = "demo"
role_arn = "${iam_role.nope.arn}"
subnet_ids = ["subnet-0000000a"]
"#;

#[test]
fn three_errors_in_one_file_are_all_reported() {
    bad(THREE_ERRORS)
        .err(11, "subnet.pod_a.cidr_block", "`100.64.0.1/19` has host bits set")
        .err(16, "cluster.main.role_arn", "dangling reference `${iam_role.nope.arn}`: `iam_role.nope` is not declared (no `iam_role` is declared)")
        .err(17, "cluster.main.subnet_ids", "give at least two subnet ids")
        .check();
}

#[test]
fn validate_json_lists_every_diagnostic() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join(SPEC), THREE_ERRORS).expect("write spec");
    let r = run(dir.path(), &["validate", "--json", SPEC]);
    assert_eq!(r.code, Some(1), "stderr: {}", r.stderr);
    assert_eq!(r.connections, 0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", r.stdout));
    let items = v
        .as_array()
        .unwrap_or_else(|| panic!("not a JSON array: {v}"));
    let mut got: Vec<(u64, String, String)> = items
        .iter()
        .map(|d| {
            assert_eq!(d["severity"], "error", "{d}");
            let file = d["location"]["file"]
                .as_str()
                .unwrap_or_else(|| panic!("no location.file: {d}"));
            assert!(file.ends_with(SPEC), "{d}");
            (
                d["location"]["line"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("no location.line: {d}")),
                d["key"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no key: {d}"))
                    .to_string(),
                d["message"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no message: {d}"))
                    .to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got.len(), 3, "{v}");
    assert_eq!(
        (got[0].0, got[0].1.as_str()),
        (11, "subnet.pod_a.cidr_block")
    );
    assert!(got[0].2.contains("has host bits set"), "{}", got[0].2);
    assert_eq!((got[1].0, got[1].1.as_str()), (16, "cluster.main.role_arn"));
    assert!(
        got[1]
            .2
            .starts_with("dangling reference `${iam_role.nope.arn}`"),
        "{}",
        got[1].2
    );
    assert_eq!(
        (got[2].0, got[2].1.as_str()),
        (17, "cluster.main.subnet_ids")
    );
    assert!(got[2].2.contains("at least two subnet ids"), "{}", got[2].2);
}

/// The pod subnets of `with_block!` and a route table for them, written as given.
macro_rules! with_route_table {
    ($table:literal) => {
        concat!(
            with_block!(
                r#"
[subnet.pod_a]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/19"
availability_zone = "us-west-2a"
"#
            ),
            $table
        )
    };
}

#[test]
fn a_route_with_two_targets() {
    bad(with_route_table!(
        r#"
[route_table.pods]
vpc_id = "${vpc.main.id}"
routes = [
  { destination = "0.0.0.0/0", nat_gateway_id = "nat-0123abcd", transit_gateway_id = "tgw-0123abcd" },
]
subnet_ids = ["${subnet.pod_a.id}"]
"#
    ))
    .err_parts(
        17,
        "route_table.pods.routes.0",
        &["the route to `0.0.0.0/0` has 2 targets (nat_gateway_id, transit_gateway_id)", "exactly one"],
    )
    .check();
}

#[test]
fn a_route_to_a_bad_destination() {
    bad(with_route_table!(
        r#"
[route_table.pods]
vpc_id = "${vpc.main.id}"
routes = [
  { destination = "0.0.0.0", nat_gateway_id = "nat-0123abcd" },
  { destination = "10.0.1.0/24", transit_gateway_id = "tgw-0123abcd" },
]
"#
    ))
    .err(
        17,
        "route_table.pods.routes.0.destination",
        "`0.0.0.0` is not an IPv4 CIDR block",
    )
    // Inside the VPC's own block: its `local` route covers it.
    .err(
        18,
        "route_table.pods.routes.1.destination",
        "10.0.1.0/24 is inside the VPC's block 10.0.0.0/16 (`vpc.main`)",
    )
    .check();
}

#[test]
fn one_subnet_in_two_route_tables() {
    bad(with_route_table!(
        r#"
[route_table.pods]
vpc_id = "${vpc.main.id}"
subnet_ids = ["${subnet.pod_a.id}"]

[route_table.nodes]
existing = true
id = "rtb-0123abcd"
subnet_ids = ["${subnet.pod_a.id}"]
"#
    ))
    .err(
        16,
        "route_table.pods.subnet_ids.0",
        "`${subnet.pod_a.id}` is also associated by `route_table.nodes`",
    )
    .check();
}

#[test]
fn unknown_key_in_a_route() {
    bad(with_route_table!(
        r#"
[route_table.pods]
vpc_id = "${vpc.main.id}"
routes = [{ destination = "0.0.0.0/0", nat_gateway = "nat-0123abcd" }]
"#
    ))
    .err(
        16,
        "route_table.pods.routes.0.nat_gateway",
        "unknown field `nat_gateway`, expected one of `destination`, `nat_gateway_id`",
    )
    .check();
}

#[test]
fn an_existing_route_table_takes_no_routes() {
    bad(with_route_table!(
        r#"
[route_table.nodes]
existing = true
id = "rtb-0123abcd"
routes = [{ destination = "0.0.0.0/0", gateway_id = "igw-0123abcd" }]
subnet_ids = ["${subnet.pod_a.id}"]
"#
    ))
    .err(
        17,
        "route_table.nodes.routes",
        "eksnet never changes the routes of an existing route table",
    )
    .check();
}

#[test]
fn the_example_spec_is_valid() {
    let example = package_dir().join("examples/custom-networking.toml");
    let dir = tempfile::tempdir().expect("temp dir");
    let r = run(dir.path(), &["validate", &example.display().to_string()]);
    assert_eq!(r.code, Some(0), "stderr: {}", r.stderr);
    assert_eq!(r.connections, 0);
    assert!(!r.stderr.contains("error"), "{}", r.stderr);
    assert!(
        r.stderr
            .trim_end()
            .ends_with("custom-networking.toml: valid"),
        "{}",
        r.stderr
    );
}

/// A temp dir holding `good.toml`: a valid spec with one pod subnet.
fn good_spec_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("good.toml"),
        with_block!(
            r#"
[subnet.pod_a]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/19"
availability_zone = "us-west-2a"
"#
        ),
    )
    .expect("write spec");
    dir
}

/// `--replace` is checked like the spec: before the state is touched or AWS is called.
#[test]
fn replace_of_a_resource_not_in_the_spec_fails_before_any_call() {
    let dir = good_spec_dir();
    let before = listing(dir.path());
    for args in [
        vec!["plan", "good.toml", "--replace", "subnet.nope"],
        vec![
            "apply",
            "good.toml",
            "--auto-approve",
            "--replace",
            "subnet.nope",
        ],
    ] {
        let r = run(dir.path(), &args);
        assert_eq!(r.code, Some(1), "{args:?}: {}", r.stderr);
        assert_eq!(r.connections, 0, "{args:?} called AWS: {}", r.stderr);
        assert!(
            r.stderr
                .contains("--replace subnet.nope: no such resource in the spec"),
            "{args:?}: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("Refreshing"), "{args:?}: {}", r.stderr);
        assert_eq!(listing(dir.path()), before, "{args:?} wrote files");
    }
    // Not an address at all: a usage error (exit 1: 2 would read as "changes present").
    let r = run(
        dir.path(),
        &["plan", "good.toml", "--replace", "subnet.pod_a.x"],
    );
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("`subnet.pod_a.x` is not a resource address"),
        "{}",
        r.stderr
    );
}

/// Control for the "no API call" assertions: on a valid spec `plan` does call the endpoint.
/// Connections are accepted and dropped at once so the SDK fails fast instead of waiting.
#[test]
fn plan_on_a_good_spec_does_reach_the_endpoint() {
    let dir = good_spec_dir();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("non-blocking");
    let seen = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicUsize::new(0));
    let acceptor = {
        let (seen, stop) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            while stop.load(Ordering::SeqCst) == 0 {
                match listener.accept() {
                    Ok((conn, _)) => {
                        seen.fetch_add(1, Ordering::SeqCst);
                        drop(conn);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        })
    };
    let state = dir.path().join("s.db");
    let out = command(
        dir.path(),
        port,
        &["plan", "good.toml", "--state", &state.display().to_string()],
    )
    .output()
    .expect("run eksnet");
    stop.store(1, Ordering::SeqCst);
    acceptor.join().expect("acceptor thread");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the endpoint never answers, so plan fails: {stderr}"
    );
    assert!(stderr.contains("refreshing vpc resources"), "{stderr}");
    assert!(
        seen.load(Ordering::SeqCst) > 0,
        "the listener saw no connection: {stderr}"
    );
    assert!(!state.exists(), "plan must not create the state file");
}

// ---- The Kubernetes side: `aws_node` (VPC CNI settings) and `eni_config` (ENIConfigs) ----

/// One cluster (lines 1–4), then the given Kubernetes resources from line 6 on.
macro_rules! with_cluster {
    ($rest:literal) => {
        concat!(
            r#"[cluster.main]
name = "demo"
role_arn = "arn:aws:iam::111122223333:role/cluster"
subnet_ids = ["subnet-0000000a", "subnet-0000000b"]
"#,
            $rest
        )
    };
}

#[test]
fn aws_node_bogus_eni_config_selection() {
    bad(with_cluster!(
        r#"
[aws_node.main]
cluster_name = "${cluster.main.name}"
eni_config_selection = "bogus"
"#
    ))
    .err(
        8,
        "aws_node.main.eni_config_selection",
        "eni_config_selection must be \"label\" or \"annotation\", not `bogus`",
    )
    .check();
}

#[test]
fn aws_node_env_sets_the_custom_network_variable_directly() {
    bad(with_cluster!(
        r#"
[aws_node.main]
cluster_name = "${cluster.main.name}"

[aws_node.main.env]
WARM_IP_TARGET = "5"
AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG = "true"
"#
    ))
    .err(
        11,
        "aws_node.main.env.AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG",
        "`AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG` is set by `custom_network` / `eni_config_label`; remove it from `env`",
    )
    .check();
}

#[test]
fn aws_node_inline_env_sets_the_label_variable_directly() {
    bad(with_cluster!(
        r#"
[aws_node.main]
cluster_name = "${cluster.main.name}"
env = { ENI_CONFIG_LABEL_DEF = "topology.kubernetes.io/zone" }
"#
    ))
    .err(
        8,
        "aws_node.main.env.ENI_CONFIG_LABEL_DEF",
        "`ENI_CONFIG_LABEL_DEF` is set by `custom_network` / `eni_config_label`; remove it from `env`",
    )
    .check();
}

#[test]
fn aws_node_custom_network_of_the_wrong_type() {
    bad(with_cluster!(
        r#"
[aws_node.main]
cluster_name = "${cluster.main.name}"
custom_network = "yes"
"#
    ))
    .err(
        8,
        "aws_node.main.custom_network",
        "invalid type: string \"yes\", expected true or false",
    )
    .check();
}

#[test]
fn nodegroup_with_custom_networking_but_no_eni_config() {
    bad(with_cluster!(
        r#"
[aws_node.main]
cluster_name = "${cluster.main.name}"

[nodegroup.main]
cluster_name = "${cluster.main.name}"
name = "ng"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]
"#
    ))
    .err_parts(
        9,
        "nodegroup.main",
        &[
            "custom networking is on for this cluster (`aws_node.main`) but no `eni_config` is declared for it",
            "nodes of `nodegroup.main` would have no ENIConfig for their AZ",
        ],
    )
    .check();
}

/// Control for the case above: with `custom_network = false` no ENIConfig is needed.
#[test]
fn nodegroup_with_custom_networking_off_needs_no_eni_config() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join(SPEC),
        with_cluster!(
            r#"
[aws_node.main]
cluster_name = "${cluster.main.name}"
custom_network = false

[nodegroup.main]
cluster_name = "${cluster.main.name}"
name = "ng"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]
"#
        ),
    )
    .expect("write spec");
    let r = run(dir.path(), &["validate", SPEC]);
    assert_eq!(r.code, Some(0), "stderr: {}", r.stderr);
    assert_eq!(r.connections, 0);
    assert!(!r.stderr.contains("error"), "{}", r.stderr);
}

#[test]
fn eni_config_without_name_on_a_literal_subnet_id() {
    // `name` is not written, so the diagnostic points at the resource's header.
    bad(with_cluster!(
        r#"
[eni_config.pod_a]
cluster_name = "${cluster.main.name}"
subnet_id = "subnet-0123456789abcdef0"
"#
    ))
    .err(
        6,
        "eni_config.pod_a.name",
        "set `name`: it can only default to the subnet's AZ when `subnet_id` is a reference like \"${subnet.pod_a.id}\"",
    )
    .check();
}

#[test]
fn eni_config_with_literal_cluster_name_and_no_security_groups() {
    bad(with_cluster!(
        r#"
[eni_config.pod_a]
cluster_name = "demo"
name = "us-west-2a"
subnet_id = "subnet-0123456789abcdef0"
"#
    ))
    .err(
        6,
        "eni_config.pod_a.security_group_ids",
        "set `security_group_ids`: they can only default to the cluster security group when `cluster_name` is a reference like \"${cluster.main.name}\"",
    )
    .check();
}

#[test]
fn two_aws_node_for_one_cluster() {
    bad(with_cluster!(
        r#"
[aws_node.first]
cluster_name = "${cluster.main.name}"

[aws_node.second]
cluster_name = "${cluster.main.name}"
env = { WARM_IP_TARGET = "5" }
"#
    ))
    .err(
        10,
        "aws_node.second.cluster_name",
        "cluster `demo` is already configured by `aws_node.first`; declare one aws_node per cluster",
    )
    .check();
}

#[test]
fn two_eni_configs_with_one_name_in_one_cluster() {
    bad(with_cluster!(
        r#"
[eni_config.a]
cluster_name = "${cluster.main.name}"
name = "us-west-2a"
subnet_id = "subnet-0aaaaaaaaaaaaaaaa"

[eni_config.b]
cluster_name = "${cluster.main.name}"
name = "us-west-2a"
subnet_id = "subnet-0bbbbbbbbbbbbbbbb"
"#
    ))
    .err(
        13,
        "eni_config.b.name",
        "`demo/us-west-2a` is also the name of `eni_config.a`; names must be unique",
    )
    .check();
}

/// The default name is the subnet's AZ; when the subnet writes its AZ out, the clash is
/// known before any call.
#[test]
fn an_eni_config_named_after_an_az_another_defaults_to() {
    bad(with_cluster!(
        r#"
[cidr_block.pods]
vpc_id = "vpc-0123456789abcdef0"
cidr_block = "100.64.0.0/16"

[subnet.pod_a]
vpc_id = "vpc-0123456789abcdef0"
cidr_block = "100.64.0.0/19"
availability_zone = "us-west-2a"

[eni_config.a]
cluster_name = "${cluster.main.name}"
subnet_id = "${subnet.pod_a.id}"

[eni_config.b]
cluster_name = "${cluster.main.name}"
name = "us-west-2a"
subnet_id = "subnet-0bbbbbbbbbbbbbbbb"
security_group_ids = ["sg-0123456789abcdef0"]
"#
    ))
    .err(
        21,
        "eni_config.b.name",
        "`demo/us-west-2a` is also the name of `eni_config.a`; names must be unique",
    )
    .check();
}

#[test]
fn eni_config_with_an_invalid_kubernetes_name() {
    bad(with_cluster!(
        r#"
[eni_config.pod_a]
cluster_name = "${cluster.main.name}"
name = "US_West"
subnet_id = "subnet-0123456789abcdef0"
"#
    ))
    .err(
        8,
        "eni_config.pod_a.name",
        "`US_West` is not a valid Kubernetes object name (lowercase letters, digits, `-` and `.`)",
    )
    .check();
}

#[test]
fn eni_config_on_an_ipv6_cluster() {
    bad(r#"[cluster.main]
name = "demo"
role_arn = "arn:aws:iam::111122223333:role/cluster"
subnet_ids = ["subnet-0000000a", "subnet-0000000b"]
ip_family = "ipv6"

[eni_config.pod_a]
cluster_name = "${cluster.main.name}"
name = "us-west-2a"
subnet_id = "subnet-0123456789abcdef0"
"#)
    .err(
        5,
        "cluster.main.ip_family",
        "custom networking (pod subnets and ENIConfigs) cannot be used with an IPv6 cluster",
    )
    .check();
}

#[test]
fn unknown_key_in_an_eni_config() {
    bad(with_cluster!(
        r#"
[eni_config.pod_a]
cluster_name = "${cluster.main.name}"
name = "us-west-2a"
subnet_id = "subnet-0123456789abcdef0"
security_groups = ["sg-0123456789abcdef0"]
"#
    ))
    .err_parts(
        10,
        "eni_config.pod_a.security_groups",
        &["unknown field `security_groups`", "`security_group_ids`"],
    )
    .check();
}

#[test]
fn eni_config_missing_subnet_id() {
    bad(with_cluster!(
        r#"
[eni_config.pod_a]
cluster_name = "${cluster.main.name}"
name = "us-west-2a"
security_group_ids = ["sg-0123456789abcdef0"]
"#
    ))
    .err(6, "eni_config.pod_a.subnet_id", "missing field `subnet_id`")
    .check();
}

// --- What AWS, Kubernetes and the VPC CNI would refuse (src/constraints.rs) ---

#[test]
fn fields_that_need_an_id_or_arn_take_only_that_shape_and_references_that_give_it() {
    bad(r#"[iam_role.node]
name = "node"
assume_role_service = "ec2.amazonaws.com"

[cluster.main]
name = "demo"
role_arn = "${iam_role.node.name}"
subnet_ids = ["subnet-0000000a", "subnet-XYZ"]
security_group_ids = ["sg-12"]
"#)
    .err_parts(
        7,
        "cluster.main.role_arn",
        &[
            "needs an IAM role ARN",
            "`${iam_role.node.name}` gives an IAM role name",
        ],
    )
    .err(
        8,
        "cluster.main.subnet_ids.1",
        "needs a subnet id (`subnet-` and 8 or 17 hex digits), not `subnet-XYZ`",
    )
    .err(
        9,
        "cluster.main.security_group_ids.0",
        "needs a security group id",
    )
    .check();
}

#[test]
fn nodegroup_enumerations_names_sizes_and_labels() {
    bad(r#"[nodegroup.main]
cluster_name = "demo"
name = "ng 1"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]
instance_types = ["t3.medium", "t3-medium"]
capacity_type = "SPOTTY"
ami_type = "AL2023_x86_64"
disk_size = 0
labels = { team = "a b", "-x" = "y" }
"#)
    .err(3, "nodegroup.main.name", "must be 1–63 letters, digits")
    .err(
        6,
        "nodegroup.main.instance_types.1",
        "`t3-medium` is not an EC2 instance type name",
    )
    .err_parts(
        7,
        "nodegroup.main.capacity_type",
        &["`SPOTTY` is not one of EKS's values", "ON_DEMAND", "SPOT"],
    )
    .err_parts(
        8,
        "nodegroup.main.ami_type",
        &[
            "`AL2023_x86_64` is not one of EKS's values",
            "AL2023_x86_64_STANDARD",
        ],
    )
    .err(9, "nodegroup.main.disk_size", "1 to 16384")
    .err(
        10,
        "nodegroup.main.labels.team",
        "`a b` is not a Kubernetes label value",
    )
    .err(
        10,
        "nodegroup.main.labels.-x",
        "`-x` is not a Kubernetes label key",
    )
    .check();
}

#[test]
fn tag_rules_of_aws() {
    bad(r#"[iam_role.node]
name = "node"
assume_role_service = "ec2.amazonaws.com"
tags = { "aws:owner" = "me", team = "a;b" }
"#)
    .err(
        4,
        "iam_role.node.tags",
        "tag key `aws:owner`: the `aws:` prefix is reserved for AWS",
    )
    .err(
        4,
        "iam_role.node.tags",
        "tag `team`: IAM tags take only letters, digits, spaces and `_ . : / = + - @`, not `;`",
    )
    .check();
}

#[test]
fn an_availability_zone_of_another_region() {
    bad(with_block!(
        r#"
[settings]
region = "us-west-2"

[subnet.pod_a]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/19"
availability_zone = "us-east-1a"
"#
    ))
    .err(
        15,
        "subnet.pod_a.availability_zone",
        "not `us-east-1a`; `us-east-1a` is not in the spec's region us-west-2",
    )
    .check();
}

#[test]
fn a_region_that_is_not_a_region_name() {
    bad("[settings]\nregion = \"uswest2\"\n\n[vpc.main]\nid = \"vpc-0123abcd\"\n")
        .err(2, "settings.region", "`uswest2` is not an AWS region name")
        .check();
}

#[test]
fn iam_path_policy_names_and_trust_policy_shape() {
    bad(r#"[iam_role.r]
name = "r"
path = "eks"
managed_policies = ["Amazon EKS Policy"]
assume_role_policy = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole"}]}'
"#)
    .err(3, "iam_role.r.path", "must be `/` or start and end with `/`")
    .err(4, "iam_role.r.managed_policies.0", "is neither an AWS managed policy name")
    .err(5, "iam_role.r.assume_role_policy", "statement 1: a trust policy statement needs a `Principal`")
    .check();
}

#[test]
fn vpc_cni_settings_of_the_wrong_type() {
    bad(r#"[aws_node.main]
cluster_name = "demo"
env = { WARM_IP_TARGET = "five", ENABLE_PREFIX_DELEGATION = "yes", AWS_VPC_K8S_CNI_LOGLEVEL = "verbose" }
"#)
    .err(3, "aws_node.main.env.WARM_IP_TARGET", "`WARM_IP_TARGET` must be an integer ≥ 0 for the VPC CNI, not `five`")
    .err(3, "aws_node.main.env.ENABLE_PREFIX_DELEGATION", "must be a boolean (\"true\" or \"false\")")
    .err(3, "aws_node.main.env.AWS_VPC_K8S_CNI_LOGLEVEL", "must be one of DEBUG, INFO, WARN, ERROR, FATAL")
    .check();
}

/// Valid but slow (some Multus set-ups use it): a warning, and the spec is accepted.
#[test]
fn vpc_cni_settings_that_leave_no_warm_pool_are_a_warning() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join(SPEC),
        "[aws_node.main]\ncluster_name = \"demo\"\nenv = { WARM_ENI_TARGET = \"0\" }\n",
    )
    .expect("write spec");
    let r = run(dir.path(), &["validate", SPEC]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr
            .lines()
            .any(|l| l.starts_with("warning: bad.toml:3:")
                && l.contains("leaves the CNI no warm pool")),
        "{}",
        r.stderr
    );
    assert_eq!(r.connections, 0);
}

/// A spec path that is a pipe, a device or a directory, or a file far larger than any spec,
/// and a template larger than CloudFormation takes: an error at once, no read without a
/// bound, no call.
#[test]
fn spec_and_template_files_are_read_with_a_bound() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let fifo = d.join("pipe.toml");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    std::fs::write(d.join("huge.toml"), "# padding\n".repeat(200_000)).expect("write");
    std::fs::create_dir(d.join("dir.toml")).expect("mkdir");
    std::fs::write(
        d.join("big-template.toml"),
        "[vpc.main]\nstack_name = \"s\"\ntemplate_file = \"big.yaml\"\ncidr_block = \"10.0.0.0/16\"\n",
    )
    .expect("write");
    std::fs::write(
        d.join("big.yaml"),
        format!(
            "AWSTemplateFormatVersion: '2010-09-09'\n{}",
            "# x\n".repeat(20_000)
        ),
    )
    .expect("write");
    for (spec, want) in [
        (
            "pipe.toml",
            "is not a regular file (a device, a pipe or a socket)",
        ),
        ("/dev/zero", "is not a regular file"),
        ("dir.toml", "it is a directory"),
        ("huge.toml", "eksnet reads at most 1048576 bytes for a spec"),
        (
            "big-template.toml",
            "eksnet reads at most 51200 bytes for a template",
        ),
    ] {
        for cmd in ["validate", "plan"] {
            let r = run(d, &[cmd, spec]);
            let ctx = format!("eksnet {cmd} {spec}: {}", r.stderr);
            assert_eq!(r.code, Some(1), "{ctx}");
            assert!(r.stderr.contains(want), "{ctx}");
            assert_eq!(r.connections, 0, "{ctx}");
        }
    }
}

/// A state none of whose resources is in the spec was made for another spec: refused before
/// any call, instead of a plan that destroys all it holds.
#[test]
fn a_state_written_for_another_spec_is_refused() {
    let dir = good_spec_dir();
    let state = dir.path().join("other.db");
    {
        let mut s = eksnet::state::LocalStore::open(&state).expect("state");
        let row = eksnet::state::StateResource {
            status: eksnet::state::ResourceStatus::Present,
            cloud_id: Some("demo".into()),
            attrs: serde_json::json!({"name": "demo"}),
            outputs: serde_json::json!({}),
            dependencies: vec![],
            prevent_destroy: false,
            deposed: vec![],
        };
        s.put(&"cluster.other".parse().expect("addr"), &row)
            .expect("put");
    }
    let state_arg = state.display().to_string();
    for args in [
        vec!["plan", "good.toml", "--state", &state_arg],
        vec![
            "apply",
            "good.toml",
            "--auto-approve",
            "--state",
            &state_arg,
        ],
        vec![
            "destroy",
            "good.toml",
            "--auto-approve",
            "--state",
            &state_arg,
        ],
    ] {
        let r = run(dir.path(), &args);
        let ctx = format!("eksnet {}: {}", args.join(" "), r.stderr);
        assert_eq!(r.code, Some(1), "{ctx}");
        assert!(
            r.stderr.contains("was written for another spec") && r.stderr.contains("cluster.other"),
            "{ctx}"
        );
        assert_eq!(r.connections, 0, "{ctx}");
    }
}

const PARAM_TEMPLATE: &str = "AWSTemplateFormatVersion: '2010-09-09'
Parameters:
  VpcBlock: {Type: String, Default: 10.0.0.0/16}
  Zone: {Type: String}
  Size: {Type: String, Default: small, AllowedValues: [small, large]}
Resources:
  VPC:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: !Ref VpcBlock}
  PrivateSubnet01:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref VPC, AvailabilityZone: !Ref Zone, CidrBlock: !Select [0, !Cidr [!Ref VpcBlock, 4, 8]]}
Outputs:
  SubnetIds: {Value: !Ref PrivateSubnet01}
";

#[test]
fn stack_parameters_and_references_are_checked_against_the_template() {
    bad(r#"[vpc.main]
stack_name = "net"
template_file = "t.yaml"
cidr_block = "10.0.0.0/16"
parameters = { VpcBlok = "10.0.0.0/16", Size = "huge" }

[cluster.main]
name = "demo"
role_arn = "arn:aws:iam::111122223333:role/cluster"
subnet_ids = ["${vpc.main.subnets.PrivateSubnet01.id}", "${vpc.main.subnets.PrivateSubnet02.id}"]
tags = { out = "${vpc.main.outputs.SubnetId}" }
"#)
    .file("t.yaml", PARAM_TEMPLATE)
    .err(5, "vpc.main.parameters.VpcBlok", "`t.yaml` declares no parameter `VpcBlok` (it declares Size, VpcBlock, Zone)")
    .err(5, "vpc.main.parameters.Size", "`huge` is not one of the values `t.yaml` allows for `Size`: small, large")
    .err(5, "vpc.main.parameters", "`t.yaml`'s parameter `Zone` has no default")
    .err(10, "cluster.main.subnet_ids.1", "the template of `vpc.main` has no subnet (an `AWS::EC2::Subnet` resource) `PrivateSubnet02` (it has PrivateSubnet01)")
    .err(11, "cluster.main.tags.out", "has no output `SubnetId` (it has SubnetIds)")
    .check();
}

#[test]
fn a_template_that_does_not_parse() {
    bad(r#"[vpc.main]
stack_name = "net"
template_file = "t.yaml"
cidr_block = "10.0.0.0/16"
"#)
    .file("t.yaml", "Resources:\n  VPC: {Type: AWS::EC2::VPC\n")
    .err(
        3,
        "vpc.main.template_file",
        "`t.yaml` is not a CloudFormation template: line",
    )
    .check();
}

#[test]
fn custom_networking_with_ipv6_in_the_cni_settings() {
    bad(r#"[aws_node.main]
cluster_name = "demo"
env = { ENABLE_IPv6 = "true", ENABLE_IPv4 = "false" }
"#)
    .err(
        3,
        "aws_node.main.env",
        "custom networking does not work with IPv6",
    )
    .check();
}

/// Real values that look unusual are accepted: a managed policy with a path, a metal size
/// with a suffix, a Wavelength Zone, a lower-case CNI log level, a trust policy without
/// `Version` (a warning), six ENIConfig security groups (a warning).
#[test]
fn unusual_but_valid_values_are_accepted() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join(SPEC),
        r#"[settings]
region = "us-east-1"

[vpc.main]
id = "vpc-0123abcd"
cidr_block = "10.0.0.0/16"

[cidr_block.pods]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/16"

[subnet.pod_a]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/19"
availability_zone = "us-east-1-wl1-bos-wlz-1"

[iam_role.csi]
name = "csi"
managed_policies = ["service-role/AmazonEBSCSIDriverPolicy"]
assume_role_policy = '{"Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}'

[nodegroup.main]
cluster_name = "demo"
name = "ng"
node_role_arn = "arn:aws:iam::111122223333:role/eks/node"
subnet_ids = ["subnet-0000000a"]
instance_types = ["m7i.metal-24xl"]

[aws_node.main]
cluster_name = "demo"
custom_network = false
env = { AWS_VPC_K8S_CNI_LOGLEVEL = "debug" }

[eni_config.pod_a]
cluster_name = "demo"
subnet_id = "${subnet.pod_a.id}"
name = "pod-a"
security_group_ids = ["sg-0000000a", "sg-0000000b", "sg-0000000c", "sg-0000000d", "sg-0000000e", "sg-0000000f"]
"#,
    )
    .expect("write spec");
    let r = run(dir.path(), &["validate", SPEC]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("has no `Version`"), "{}", r.stderr);
    assert!(r.stderr.contains("6 security groups"), "{}", r.stderr);
    assert!(!r.stderr.contains("error:"), "{}", r.stderr);
}

#[test]
fn max_pods_without_an_ami_type_says_which_to_set() {
    bad(r#"[nodegroup.main]
cluster_name = "demo"
name = "ng"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]
max_pods = 20
"#)
    .err(6, "nodegroup.main.max_pods", "`max_pods` needs `ami_type`")
    .check();
}

#[test]
fn max_pods_on_al2_is_refused_with_the_reason() {
    bad(r#"[nodegroup.main]
cluster_name = "demo"
name = "ng"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]
ami_type = "AL2_x86_64"
max_pods = 20
"#)
    .err_parts(
        6,
        "nodegroup.main.ami_type",
        &[
            "cannot be set on `ami_type = \"AL2_x86_64\"`",
            "its own `--max-pods`",
        ],
    )
    .check();
}

#[test]
fn max_pods_zero_or_not_a_number() {
    bad(r#"[nodegroup.a]
cluster_name = "demo"
name = "a"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]
ami_type = "AL2023_x86_64_STANDARD"
max_pods = 0

[nodegroup.b]
cluster_name = "demo"
name = "b"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]
ami_type = "AL2023_x86_64_STANDARD"
max_pods = -3
"#)
    .err(7, "nodegroup.a.max_pods", "must be 1 or more")
    .err(
        15,
        "nodegroup.b.max_pods",
        "expected a whole number, 0 or more",
    )
    .check();
}

#[test]
fn a_launch_template_block_is_refused_it_is_eksnets_own() {
    bad(r#"[launch_template.mine]
name = "x"
"#)
    .err(
        1,
        "launch_template",
        "is not written in a spec: eksnet makes and versions",
    )
    .check();
}

// What AWS refuses, second round: partitions, instance and AMI types, CIDR association,
// S3 names, node labels, ENIConfig selection, cluster subnets and versions.

#[test]
fn arns_and_principals_follow_the_regions_partition() {
    bad(r#"[settings]
region = "cn-north-1"

[iam_role.node]
name = "node"
assume_role_service = "ec2.amazonaws.co"
managed_policies = ["AmazonEKSWorkerNodePolicy", "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"]

[iam_role.trust]
name = "trust"
assume_role_policy = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.c2s.ic.gov", "AWS": "arn:aws:iam::111122223333:root"}, "Action": "sts:AssumeRole"}]}'

[nodegroup.main]
cluster_name = "demo"
name = "ng"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]
"#)
    .err(6, "iam_role.node.assume_role_service", "`ec2.amazonaws.co` is not a service principal")
    .err_parts(
        7,
        "iam_role.node.managed_policies.1",
        &["partition, but the spec's region is in `aws-cn`", "arn:aws-cn:iam::aws:policy/AmazonEKS_CNI_Policy"],
    )
    .err(11, "iam_role.trust.assume_role_policy", "`ec2.c2s.ic.gov` is a service principal of the `aws-iso` partition")
    .err(11, "iam_role.trust.assume_role_policy", "`arn:aws:iam::111122223333:root` is an ARN of the `aws` partition")
    .err(16, "nodegroup.main.node_role_arn", "did you mean `arn:aws-cn:iam::111122223333:role/node`?")
    .check();
    bad(r#"[settings]
region = "us-gov-west-1"

[cluster.main]
name = "demo"
role_arn = "arn:aws:iam::111122223333:role/cluster"
subnet_ids = ["subnet-0000000a", "subnet-0000000b"]
"#)
    .err(
        6,
        "cluster.main.role_arn",
        "but the spec's region is in `aws-us-gov`",
    )
    .check();
}

#[test]
fn ipv6_clusters_where_eks_has_none() {
    bad(r#"[settings]
region = "cn-northwest-1"

[cluster.main]
name = "demo"
role_arn = "arn:aws-cn:iam::111122223333:role/cluster"
subnet_ids = ["subnet-0000000a", "subnet-0000000b"]
ip_family = "ipv6"
version = "1.20"
"#)
    .err(
        8,
        "cluster.main.ip_family",
        "EKS does not offer IPv6 clusters in the `aws-cn` partition",
    )
    .err(
        8,
        "cluster.main.ip_family",
        "from Kubernetes 1.21, not on 1.20",
    )
    .check();
}

#[test]
fn instance_types_that_do_not_fit_the_ami_type() {
    bad(r#"[nodegroup.graviton_default]
cluster_name = "demo"
name = "a"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]
instance_types = ["m5.large", "m7g.large"]

[nodegroup.x86_on_arm]
cluster_name = "demo"
name = "b"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]
instance_types = ["t3.medium"]
ami_type = "AL2023_ARM_64_STANDARD"

[nodegroup.gpu]
cluster_name = "demo"
name = "c"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]
instance_types = ["m5.xlarge"]
ami_type = "AL2023_x86_64_NVIDIA"

[nodegroup.neuron]
cluster_name = "demo"
name = "d"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]
instance_types = ["g5.xlarge"]
ami_type = "AL2023_x86_64_NEURON"
"#)
    .err_parts(6, "nodegroup.graviton_default.instance_types.1", &["`m7g.large` is an arm64 instance type", "with no `ami_type`, EKS picks an x86_64 AMI"])
    .err(13, "nodegroup.x86_on_arm.instance_types.0", "`t3.medium` is an x86_64 instance type but `ami_type = \"AL2023_ARM_64_STANDARD\"` is an arm64 AMI")
    .err(21, "nodegroup.gpu.instance_types.0", "`m5.xlarge` has no NVIDIA GPU")
    .err(29, "nodegroup.neuron.instance_types.0", "has no AWS Inferentia or Trainium (Neuron) accelerator")
    .check();
}

#[test]
fn capacity_blocks_and_max_pods_beyond_any_eni() {
    bad(r#"[nodegroup.ml]
cluster_name = "demo"
name = "ml"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]
instance_types = ["p5.48xlarge"]
capacity_type = "CAPACITY_BLOCK"

[nodegroup.dense]
cluster_name = "demo"
name = "dense"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]
instance_types = ["t3.small", "t3.medium"]
ami_type = "AL2023_x86_64_STANDARD"
max_pods = 300
"#)
    .err(
        7,
        "nodegroup.ml.capacity_type",
        "CAPACITY_BLOCK needs a launch template",
    )
    .err_parts(
        16,
        "nodegroup.dense.max_pods",
        &[
            "max_pods = 300 is more than any of the instance types (the largest, t3.medium)",
            "it holds 242 pods",
        ],
    )
    .check();
}

#[test]
fn secondary_blocks_the_vpc_guide_does_not_allow() {
    bad(r#"[vpc.main]
id = "vpc-0123abcd"
cidr_block = "10.0.0.0/16"

[cidr_block.benchmark]
vpc_id = "${vpc.main.id}"
cidr_block = "198.19.0.0/16"

[vpc.other]
id = "vpc-0123abce"
cidr_block = "172.16.0.0/16"

[cidr_block.default_range]
vpc_id = "${vpc.other.id}"
cidr_block = "172.31.0.0/16"
"#)
    .err(
        7,
        "cidr_block.benchmark.cidr_block",
        "AWS does not associate a block from 198.19.0.0/16 beside a primary block in 10.0.0.0/8",
    )
    .err(
        15,
        "cidr_block.default_range.cidr_block",
        "from 172.31.0.0/16 beside a primary block in 172.16.0.0/12",
    )
    .check();
}

#[test]
fn s3_reserved_bucket_names_are_refused_before_any_request() {
    bad(r#"[state]
backend = "s3"
bucket = "xn--state"
key = "prod.json"

[vpc.main]
id = "vpc-0123abcd"
"#)
    .err(3, "state.bucket", "the prefix `xn--` is reserved")
    .check();
    bad(r#"[state]
backend = "s3"
bucket = "state--x-s3"
key = "prod.json"

[vpc.main]
id = "vpc-0123abcd"
"#)
    .err(3, "state.bucket", "the suffix `--x-s3` is reserved")
    .check();
}

#[test]
fn node_labels_the_kubelet_refuses() {
    bad(r#"[nodegroup.main]
cluster_name = "demo"
name = "ng"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]
labels = { "node-role.kubernetes.io/worker" = "", "team.k8s.io/owner" = "a", "node.kubernetes.io/pool" = "ok", "example.com/role" = "ok" }
"#)
    .err(6, "nodegroup.main.labels.node-role.kubernetes.io/worker", "the kubelet refuses to set `node-role.kubernetes.io/worker`")
    .err(6, "nodegroup.main.labels.team.k8s.io/owner", "the kubelet refuses to set `team.k8s.io/owner`")
    .check();
}

const LABEL_MODE_BASE: &str = r#"[settings]
region = "us-west-2"

[vpc.main]
id = "vpc-0123abcd"
cidr_block = "10.0.0.0/16"

[cidr_block.pods]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/16"

[subnet.pod_a]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/19"
availability_zone = "us-west-2a"
"#;

#[test]
fn a_custom_eni_config_label_no_node_source_sets() {
    let spec = format!(
        "{LABEL_MODE_BASE}{}",
        r#"
[aws_node.main]
cluster_name = "demo"
eni_config_label = "example.com/eni"

[eni_config.pod_a]
cluster_name = "demo"
subnet_id = "${subnet.pod_a.id}"
name = "pods-a"
security_group_ids = ["sg-0000000a"]

[nodegroup.unlabelled]
cluster_name = "demo"
name = "a"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]

[nodegroup.mislabelled]
cluster_name = "demo"
name = "b"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]
labels = { "example.com/eni" = "pods-b" }
"#
    );
    bad(Box::leak(spec.into_boxed_str()))
        .err(
            27,
            "nodegroup.unlabelled.labels",
            "do not get the label `example.com/eni`",
        )
        .err(
            38,
            "nodegroup.mislabelled.labels.example.com/eni",
            "`example.com/eni` = `pods-b` names no ENIConfig of cluster `demo` (it has pods-a)",
        )
        .check();
}

#[test]
fn an_eni_config_named_after_another_az_than_its_subnet() {
    let spec = format!(
        "{LABEL_MODE_BASE}{}",
        r#"
[aws_node.main]
cluster_name = "demo"

[eni_config.pod_a]
cluster_name = "demo"
subnet_id = "${subnet.pod_a.id}"
name = "us-west-2b"
security_group_ids = ["sg-0000000a"]
"#
    );
    bad(Box::leak(spec.into_boxed_str()))
        .err(
            23,
            "eni_config.pod_a.name",
            "the ENIConfig `us-west-2b` is named after an AZ but its subnet is in us-west-2a",
        )
        .check();
}

#[test]
fn cluster_subnets_listed_twice_or_in_a_local_zone_and_versions_eks_never_had() {
    bad(r#"[vpc.main]
id = "vpc-0123abcd"
cidr_block = "10.0.0.0/16"

[cidr_block.pods]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/16"

[subnet.lax]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/19"
availability_zone = "us-west-2-lax-1a"

[cluster.main]
name = "demo"
role_arn = "arn:aws:iam::111122223333:role/cluster"
subnet_ids = ["subnet-0000000a", "subnet-0000000a", "${subnet.lax.id}"]
version = "1.9"

[cluster.future]
name = "future"
role_arn = "arn:aws:iam::111122223333:role/cluster"
subnet_ids = ["subnet-0000000a", "subnet-0000000b"]
version = "1.99"
"#)
    .err(
        17,
        "cluster.main.subnet_ids.1",
        "`subnet-0000000a` is listed twice",
    )
    .err(
        17,
        "cluster.main.subnet_ids.2",
        "is in us-west-2-lax-1a, a Local Zone",
    )
    .err(
        18,
        "cluster.main.version",
        "EKS never offered Kubernetes 1.9",
    )
    .err(
        24,
        "cluster.future.version",
        "Kubernetes 1.99 does not exist yet",
    )
    .check();
}

/// Valid specs of each new rule's kind stay accepted: a China region with its own ARNs and
/// principal, an ARM nodegroup with its AMI type, GPU types with GPU AMIs, 100.64.0.0/10
/// beside each private primary range, a custom ENIConfig label set by the nodegroup, an
/// account-regional bucket name, a Local Zone for nodes.
#[test]
fn valid_specs_of_the_second_round_are_accepted() {
    let cases: &[(&str, &str)] = &[
        (
            "china",
            r#"[settings]
region = "cn-north-1"

[state]
backend = "s3"
bucket = "state-111122223333-cn-north-1-an"
key = "demo.json"

[iam_role.node]
name = "node"
assume_role_service = "ec2.amazonaws.com.cn"
managed_policies = ["AmazonEKSWorkerNodePolicy", "arn:aws-cn:iam::aws:policy/AmazonEKS_CNI_Policy"]

[iam_role.cluster]
name = "cluster"
assume_role_policy = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "eks.amazonaws.com", "AWS": "arn:aws-cn:iam::111122223333:root"}, "Action": ["sts:AssumeRole", "sts:TagSession"]}]}'

[cluster.main]
name = "demo"
role_arn = "${iam_role.cluster.arn}"
subnet_ids = ["subnet-0000000a", "subnet-0000000b"]
version = "1.33"

[nodegroup.arm]
cluster_name = "${cluster.main.name}"
name = "arm"
node_role_arn = "arn:aws-cn:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]
instance_types = ["m7g.large", "c7g.large", "t4g.medium"]
ami_type = "AL2023_ARM_64_STANDARD"
max_pods = 110
"#,
        ),
        (
            "accelerators",
            r#"[nodegroup.gpu]
cluster_name = "demo"
name = "gpu"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]
instance_types = ["g5.xlarge", "p4d.24xlarge"]
ami_type = "AL2023_x86_64_NVIDIA"

[nodegroup.arm_gpu]
cluster_name = "demo"
name = "arm-gpu"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]
instance_types = ["g5g.xlarge"]
ami_type = "AL2023_ARM_64_NVIDIA"

[nodegroup.inferentia]
cluster_name = "demo"
name = "inf"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]
instance_types = ["inf2.xlarge", "trn1.2xlarge"]
ami_type = "AL2023_x86_64_NEURON"

[nodegroup.bottlerocket_arm]
cluster_name = "demo"
name = "br"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]
instance_types = ["a1.large", "newfamily99g.large"]
ami_type = "BOTTLEROCKET_ARM_64"
labels = { "node.kubernetes.io/pool" = "br", "example.com/team" = "a", "kubernetes.io/arch" = "arm64" }
"#,
        ),
        (
            "cgnat beside each private range",
            r#"[vpc.ten]
id = "vpc-0000000a"
cidr_block = "10.0.0.0/16"

[cidr_block.ten]
vpc_id = "${vpc.ten.id}"
cidr_block = "100.64.0.0/16"

[cidr_block.ten_more]
vpc_id = "${vpc.ten.id}"
cidr_block = "10.2.0.0/16"

[vpc.one_seven_two]
id = "vpc-0000000b"
cidr_block = "172.16.0.0/16"

[cidr_block.one_seven_two]
vpc_id = "${vpc.one_seven_two.id}"
cidr_block = "100.64.0.0/16"

[cidr_block.one_seven_two_more]
vpc_id = "${vpc.one_seven_two.id}"
cidr_block = "172.20.0.0/16"

[vpc.one_nine_two]
id = "vpc-0000000c"
cidr_block = "192.168.0.0/20"

[cidr_block.one_nine_two]
vpc_id = "${vpc.one_nine_two.id}"
cidr_block = "100.100.0.0/16"

[vpc.public]
id = "vpc-0000000d"
cidr_block = "100.64.0.0/16"

[cidr_block.public]
vpc_id = "${vpc.public.id}"
cidr_block = "100.65.0.0/16"
"#,
        ),
        (
            "custom label set by the nodegroup",
            r#"[settings]
region = "us-west-2"

[vpc.main]
id = "vpc-0123abcd"
cidr_block = "10.0.0.0/16"

[cidr_block.pods]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/16"

[subnet.pod_a]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/19"
availability_zone = "us-west-2-lax-1a"

[aws_node.main]
cluster_name = "demo"
eni_config_label = "example.com/eni"

[eni_config.pod_a]
cluster_name = "demo"
subnet_id = "${subnet.pod_a.id}"
name = "lax-pods"
security_group_ids = ["sg-0000000a"]

[nodegroup.lax]
cluster_name = "demo"
name = "lax"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]
labels = { "example.com/eni" = "lax-pods" }
"#,
        ),
        (
            "unlabelled nodes take the ENIConfig `default`",
            r#"[aws_node.main]
cluster_name = "demo"
eni_config_label = "example.com/eni"

[eni_config.fallback]
cluster_name = "demo"
subnet_id = "subnet-0000000a"
name = "default"
security_group_ids = ["sg-0000000a"]

[nodegroup.plain]
cluster_name = "demo"
name = "plain"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000b"]
"#,
        ),
        (
            "a cluster and its vpc-cni add-on made elsewhere",
            r#"[cluster.main]
name = "prod"
existing = true

[addon.vpc_cni]
cluster_name = "${cluster.main.name}"
name = "vpc-cni"
existing = true
custom_network = true
resolve_conflicts_on_update = "PRESERVE"
configuration_values = { env = { WARM_IP_TARGET = "5" } }

[eni_config.pod_a]
cluster_name = "${cluster.main.name}"
subnet_id = "subnet-0000000a"
name = "us-west-2a"
security_group_ids = ["sg-0000000a"]
"#,
        ),
    ];
    for (what, spec) in cases {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(SPEC), spec).expect("write spec");
        let r = run(dir.path(), &["validate", SPEC]);
        assert_eq!(r.code, Some(0), "{what}: {}", r.stderr);
        assert!(!r.stderr.contains("error:"), "{what}: {}", r.stderr);
    }
}

// CloudFormation parameter constraints

/// A template with one VPC and the given `Parameters` section.
macro_rules! template_with_parameters {
    ($params:literal) => {
        concat!(
            "AWSTemplateFormatVersion: '2010-09-09'\nParameters:\n",
            $params,
            "Resources:\n  VPC:\n    Type: AWS::EC2::VPC\n    Properties: {CidrBlock: 10.0.0.0/16}\n"
        )
    };
}

#[test]
fn stack_parameter_numbers_and_their_range() {
    bad(r#"[vpc.main]
stack_name = "net"
template_file = "t.yaml"
cidr_block = "10.0.0.0/16"
parameters = { Port = "80", Weight = "1.5e3", Count = "ten", Sizes = "1, 2, x" }
"#)
    .file(
        "t.yaml",
        template_with_parameters!(
            "  Port: {Type: Number, MinValue: 1024, MaxValue: 65535}
  Weight: {Type: Number, MaxValue: 100}
  Count: {Type: Number}
  Sizes: {Type: List<Number>}
"
        ),
    )
    .err(
        5,
        "vpc.main.parameters.Count",
        "`ten` is not a number, and `t.yaml` declares `Count` as `Number`",
    )
    .err(
        5,
        "vpc.main.parameters.Port",
        "`80` is less than the `MinValue` 1024 that `t.yaml` sets for `Port`",
    )
    .err(
        5,
        "vpc.main.parameters.Weight",
        "`1.5e3` is more than the `MaxValue` 100 that `t.yaml` sets for `Weight`",
    )
    .err(
        5,
        "vpc.main.parameters.Sizes",
        "`x` (in `1, 2, x`) is not a number, and `t.yaml` declares `Sizes` as `List<Number>`",
    )
    .check();
}

#[test]
fn stack_parameter_patterns_and_lengths() {
    bad(r#"[vpc.main]
stack_name = "net"
template_file = "t.yaml"
cidr_block = "10.0.0.0/16"
parameters = { Env = "Prod", Short = "ab", Long = "abcdefghij", Names = "alpha, Beta" }
"#)
    .file(
        "t.yaml",
        template_with_parameters!(
            "  Env:
    Type: String
    AllowedPattern: '[a-z][a-z0-9-]*'
    ConstraintDescription: must start with a lower-case letter
  Short: {Type: String, MinLength: 3}
  Long: {Type: String, MaxLength: 8}
  Names: {Type: CommaDelimitedList, AllowedPattern: '[a-z]+'}
"
        ),
    )
    .err(
        5,
        "vpc.main.parameters.Env",
        "`Prod` does not match the `AllowedPattern` `[a-z][a-z0-9-]*` that `t.yaml` sets for `Env` (the whole value must match); `t.yaml` says: must start with a lower-case letter",
    )
    .err(
        5,
        "vpc.main.parameters.Short",
        "`ab` is 2 characters long, shorter than the `MinLength` 3 that `t.yaml` sets for `Short`",
    )
    .err(
        5,
        "vpc.main.parameters.Long",
        "`abcdefghij` is 10 characters long, longer than the `MaxLength` 8 that `t.yaml` sets for `Long`",
    )
    .err(
        5,
        "vpc.main.parameters.Names",
        "`Beta` (in `alpha, Beta`) does not match the `AllowedPattern` `[a-z]+`",
    )
    .check();
}

#[test]
fn stack_parameter_of_an_aws_type_with_a_bad_element() {
    bad(r#"[vpc.main]
stack_name = "net"
template_file = "t.yaml"
cidr_block = "10.0.0.0/16"
parameters = { Subnets = "subnet-0123abcd, subnet-12345", Zone = "us-west-2" }
"#)
    .file(
        "t.yaml",
        template_with_parameters!(
            "  Subnets: {Type: 'List<AWS::EC2::Subnet::Id>'}
  Zone: {Type: 'AWS::EC2::AvailabilityZone::Name'}
"
        ),
    )
    .err(
        5,
        "vpc.main.parameters.Subnets",
        "`subnet-12345` (in `subnet-0123abcd, subnet-12345`) is not a subnet id (`subnet-` and 8 or 17 hex digits), and `t.yaml` declares `Subnets` as `List<AWS::EC2::Subnet::Id>`",
    )
    .err(
        5,
        "vpc.main.parameters.Zone",
        "`us-west-2` is not an availability zone name",
    )
    .check();
}

#[test]
fn an_unknown_parameter_type_in_the_template() {
    bad(r#"[vpc.main]
stack_name = "net"
template_file = "t.yaml"
cidr_block = "10.0.0.0/16"
parameters = { Zone = "us-west-2a" }
"#)
    .file(
        "t.yaml",
        template_with_parameters!("  Zone: {Type: 'AWS::EC2::AvailabiltyZone::Name'}\n"),
    )
    .err(
        3,
        "vpc.main.template_file",
        "`t.yaml`'s parameter `Zone` has `Type: AWS::EC2::AvailabiltyZone::Name`, which is not a CloudFormation parameter type",
    )
    .check();
}

#[test]
fn a_default_the_stack_gets_meets_its_own_constraints() {
    bad(r#"[vpc.main]
stack_name = "net"
template_file = "t.yaml"
cidr_block = "10.0.0.0/16"
parameters = { Given = "2000" }
"#)
    .file(
        "t.yaml",
        template_with_parameters!(
            "  Port: {Type: Number, Default: 80, MinValue: 1024}
  Given: {Type: Number, Default: 80, MinValue: 1024}
"
        ),
    )
    .err_parts(
        3,
        "vpc.main.template_file",
        &[
            "the `Default` of `Port` does not meet the parameter's own constraints",
            "`80` is less than the `MinValue` 1024 that `t.yaml` sets for `Port`",
        ],
    )
    .check();
}

/// Values CloudFormation takes that look unusual: a float `Number`, a `CommaDelimitedList`
/// with spaces (CloudFormation trims its members), a Parameter Store key for an SSM type, a
/// pattern with character classes and counts, AZ lists with spaces, a Java-only pattern
/// (a warning: not checked here), a default given over.
#[test]
fn unusual_but_valid_stack_parameters_are_accepted() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join(SPEC),
        r#"[settings]
region = "us-west-2"

[vpc.main]
stack_name = "net"
template_file = "t.yaml"
cidr_block = "10.0.0.0/16"
parameters = { Ratio = "0.75", Envs = "dev, test , prod", Ami = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64", Code = "AB-123", Zones = "us-west-2a, us-west-2b", Version = "v.2", Port = "8443" }
"#,
    )
    .expect("write spec");
    std::fs::write(
        dir.path().join("t.yaml"),
        template_with_parameters!(
            r"  Ratio: {Type: Number, MinValue: 0.5, MaxValue: 1}
  Envs: {Type: CommaDelimitedList, AllowedValues: [dev, test, prod], AllowedPattern: '[a-z]+'}
  Ami: {Type: 'AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>'}
  Code: {Type: String, AllowedPattern: '[A-Z]{2}-\d{3}', MinLength: 6, MaxLength: 6}
  Zones: {Type: 'List<AWS::EC2::AvailabilityZone::Name>'}
  Version: {Type: String, AllowedPattern: 'v\Q.\E\d+'}
  Port: {Type: Number, Default: 80, MinValue: 1024}
  Replicas: {Type: Number, Default: 3, MinValue: 1}
"
        ),
    )
    .expect("write template");
    let r = run(dir.path(), &["validate", SPEC]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(!r.stderr.contains("error:"), "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "`t.yaml`'s parameter `Version` has an `AllowedPattern` eksnet's regular expressions do not take"
        ),
        "{}",
        r.stderr
    );
    // Port's default breaks its own `MinValue` but is not used: a warning.
    assert!(
        r.stderr.contains("the `Default` of `Port` does not meet")
            && r.stderr.contains("not used here"),
        "{}",
        r.stderr
    );
}

/// An existing cluster is only read: what it is set to belongs to whoever made it, and a
/// made one still needs its role and subnets.
#[test]
fn an_existing_cluster_takes_only_its_name_and_a_made_one_needs_its_role() {
    bad(r#"[cluster.main]
name = "prod"
existing = true
version = "1.31"
subnet_ids = ["subnet-0000000a", "subnet-0000000b"]

[cluster.other]
name = "other"
subnet_ids = ["subnet-0000000a", "subnet-0000000b"]
"#)
    .err(4, "cluster.main.version", "only read, never changed")
    .err(5, "cluster.main.subnet_ids", "remove `subnet_ids`")
    .err(7, "cluster.other.role_arn", "a cluster needs `role_arn`")
    .check();
}

/// An existing add-on takes only what eksnet changes on it (its configuration values, and how
/// conflicts are resolved on that update): its version, role, tags and what create and delete
/// would do belong to whoever made it, each refused at its key; a made one keeps them all.
#[test]
fn an_existing_addon_takes_only_its_configuration_values() {
    bad(r#"[cluster.main]
name = "prod"
existing = true

[addon.vpc_cni]
cluster_name = "${cluster.main.name}"
name = "vpc-cni"
existing = true
version = "v1.19.2-eksbuild.1"
service_account_role_arn = "arn:aws:iam::111122223333:role/cni"
tags = { team = "net" }
preserve_on_delete = true
resolve_conflicts_on_create = "OVERWRITE"
resolve_conflicts_on_update = "PRESERVE"
custom_network = true
configuration_values = { env = { WARM_IP_TARGET = "5" } }

[addon.coredns]
cluster_name = "${cluster.main.name}"
name = "coredns"
version = "v1.11.4-eksbuild.2"
preserve_on_delete = false
tags = { team = "net" }
"#)
    .err_parts(
        9,
        "addon.vpc_cni.version",
        &[
            "existing add-on",
            "takes no `version`",
            "upgraded where it was made",
        ],
    )
    .err_parts(
        10,
        "addon.vpc_cni.service_account_role_arn",
        &[
            "takes no `service_account_role_arn`",
            "IAM role is set where it was made",
        ],
    )
    .err_parts(
        11,
        "addon.vpc_cni.tags",
        &["takes no `tags`", "tagged where it was made"],
    )
    .err_parts(
        12,
        "addon.vpc_cni.preserve_on_delete",
        &["takes no `preserve_on_delete`", "never deletes it"],
    )
    .err_parts(
        13,
        "addon.vpc_cni.resolve_conflicts_on_create",
        &["takes no `resolve_conflicts_on_create`", "never creates it"],
    )
    .check();
}

// ---- Security groups for pods: `security_group_policy` and `pod_security_groups` ----

/// A nodegroup of a type that cannot have a trunk interface (the burstable `t3`) on a cluster
/// that turns security groups for pods on: refused at its instance type, not the good one.
#[test]
fn a_t3_nodegroup_on_a_cluster_with_security_groups_for_pods() {
    bad(with_cluster!(
        r#"
[aws_node.main]
cluster_name = "${cluster.main.name}"
custom_network = false
pod_security_groups = true

[nodegroup.main]
cluster_name = "${cluster.main.name}"
name = "ng"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]
instance_types = ["m5.large", "t3.medium"]
"#
    ))
    .err_parts(
        16,
        "nodegroup.main.instance_types.1",
        &[
            "`t3.medium` cannot have a trunk interface",
            "`aws_node.main.pod_security_groups`",
            "Nitro types outside the burstable t families",
        ],
    )
    .check();
}

/// A SecurityGroupPolicy on a cluster whose CNI settings do not turn pod ENIs on: the error
/// names the policy and the key that would.
#[test]
fn a_security_group_policy_without_pod_enis() {
    bad(with_cluster!(
        r#"
[aws_node.main]
cluster_name = "${cluster.main.name}"
custom_network = false

[security_group_policy.web]
cluster_name = "${cluster.main.name}"
pod_selector = { app = "web" }
security_group_ids = ["sg-0123456789abcdef0"]
"#
    ))
    .err_parts(
        10,
        "security_group_policy.web",
        &[
            "the policy would do nothing",
            "set `aws_node.main.pod_security_groups = true` (ENABLE_POD_ENI)",
        ],
    )
    .check();
}

/// The cluster role in the spec lacks AmazonEKSVPCResourceController, and ENABLE_POD_ENI is
/// written twice on the add-on.
#[test]
fn pod_enis_with_a_cluster_role_lacking_the_controller_policy() {
    bad(r#"[iam_role.cluster]
name = "cluster"
assume_role_service = "eks.amazonaws.com"
managed_policies = ["AmazonEKSClusterPolicy"]

[cluster.main]
name = "demo"
role_arn = "${iam_role.cluster.arn}"
subnet_ids = ["subnet-0000000a", "subnet-0000000b"]

[addon.vpc_cni]
cluster_name = "${cluster.main.name}"
name = "vpc-cni"
pod_security_groups = true
configuration_values = { env = { ENABLE_POD_ENI = "true" } }
"#)
    .err_parts(
        4,
        "iam_role.cluster.managed_policies",
        &[
            "lacks the managed policy AmazonEKSVPCResourceController",
            "`addon.vpc_cni.pod_security_groups`",
            "trunk and branch ENIs",
        ],
    )
    .err(
        15,
        "addon.vpc_cni.configuration_values.env.ENABLE_POD_ENI",
        "`ENABLE_POD_ENI` is set by `pod_security_groups`; remove it from `configuration_values.env`",
    )
    .check();
}

/// What the policy itself gets wrong: no selector, six groups, a group that is no id, a label
/// that is no label, a namespace that is no namespace name.
#[test]
fn a_security_group_policy_of_the_wrong_shape() {
    bad(with_cluster!(
        r#"
[aws_node.main]
cluster_name = "${cluster.main.name}"
custom_network = false
pod_security_groups = true

[security_group_policy.web]
cluster_name = "${cluster.main.name}"
namespace = "Shop"
security_group_ids = ["sg-0000000a", "sg-0000000b", "sg-0000000c", "sg-0000000d", "sg-0000000e", "web"]

[security_group_policy.api]
cluster_name = "${cluster.main.name}"
service_account_selector = { "team/" = "api" }
security_group_ids = ["sg-0000000a"]
"#
    ))
    .err(
        11,
        "security_group_policy.web",
        "a SecurityGroupPolicy selects pods by `pod_selector`",
    )
    .err(
        14,
        "security_group_policy.web.security_group_ids",
        "6 security groups: a SecurityGroupPolicy takes at most 5",
    )
    .err(
        13,
        "security_group_policy.web.namespace",
        "`Shop` is not a Kubernetes namespace name",
    )
    .err(
        14,
        "security_group_policy.web.security_group_ids.5",
        "needs a security group id (`sg-` and 8 or 17 hex digits), not `web`",
    )
    .err(
        18,
        "security_group_policy.api.service_account_selector.team/",
        "`team/` is not a Kubernetes label key",
    )
    .check();
}

/// The name defaults to the table's key, which must then be a Kubernetes name.
#[test]
fn a_security_group_policy_keyed_by_no_kubernetes_name() {
    bad(with_cluster!(
        r#"
[security_group_policy.Web_1]
cluster_name = "${cluster.main.name}"
pod_selector = { app = "web" }
security_group_ids = ["sg-0000000a"]
"#
    ))
    .err(
        6,
        "security_group_policy.Web_1.name",
        "set `name`: the policy's name defaults to the table's key, and `Web_1` is not a Kubernetes object name",
    )
    .check();
}

/// Control for the cases above: `ENABLE_POD_ENI` written in the env turns pod ENIs on as the
/// field does, so the policy is valid; the cluster role, not in the spec, is only warned about.
#[test]
fn pod_enis_by_the_raw_env_need_no_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join(SPEC),
        with_cluster!(
            r#"
[aws_node.main]
cluster_name = "${cluster.main.name}"
custom_network = false
env = { ENABLE_POD_ENI = "true" }

[security_group_policy.web]
cluster_name = "${cluster.main.name}"
pod_selector = { app = "web" }
security_group_ids = ["sg-0123456789abcdef0"]
"#
        ),
    )
    .expect("write spec");
    let r = run(dir.path(), &["validate", SPEC]);
    assert_eq!(r.code, Some(0), "stderr: {}", r.stderr);
    assert_eq!(r.connections, 0);
    assert!(!r.stderr.contains("error"), "{}", r.stderr);
    assert!(
        r.stderr.contains("`cluster.main.role_arn`: not checked: whether the role `arn:aws:iam::111122223333:role/cluster`")
            && r.stderr.contains("AmazonEKSVPCResourceController"),
        "{}",
        r.stderr
    );
}

/// The CNI's own role, IRSA's half: the web identity's provider must be an OIDC provider's
/// ARN (a role's ARN given instead is refused, and so is a reference to a role), the service
/// account `NAMESPACE:NAME`; a whole trust policy does not go with the fields that build one;
/// the OIDC provider's URL is an `https://` issuer, its thumbprints SHA-1s.
#[test]
fn web_identity_trust_and_oidc_provider_shapes() {
    bad(r#"[iam_role.a]
name = "a"
assume_role_web_identity = { provider_arn = "arn:aws:iam::111122223333:role/cni", service_account = "aws-node" }

[iam_role.b]
name = "b"
assume_role_web_identity = { provider_arn = "${iam_role.a.arn}", service_account = "kube-system:aws_node" }

[oidc_provider.main]
url = "http://oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
thumbprints = ["9e99a48a"]
"#)
    .err_parts(
        3,
        "iam_role.a.assume_role_web_identity.provider_arn",
        &["needs an IAM OIDC provider ARN", "not `arn:aws:iam::111122223333:role/cni`"],
    )
    .err_parts(
        3,
        "iam_role.a.assume_role_web_identity.service_account",
        &["`aws-node` is not a service account as `NAMESPACE:NAME`", "no `:`"],
    )
    .err_parts(
        7,
        "iam_role.b.assume_role_web_identity.provider_arn",
        &["needs an IAM OIDC provider ARN", "`${iam_role.a.arn}` gives an IAM role ARN"],
    )
    .err_parts(
        7,
        "iam_role.b.assume_role_web_identity.service_account",
        &["the name `aws_node` is not a Kubernetes object name"],
    )
    .err_parts(
        10,
        "oidc_provider.main.url",
        &["must begin with `https://`"],
    )
    .err_parts(
        11,
        "oidc_provider.main.thumbprints.0",
        &["`9e99a48a` is not a thumbprint", "40 hex digits"],
    )
    .check();
}

/// The CNI's own role, Pod Identity's half: an association's role must trust
/// `pods.eks.amazonaws.com` (naming the association's key and the role's); a cluster of the
/// spec needs the Pod Identity Agent add-on; an association's service account is a
/// Kubernetes name and has one role; an existing add-on takes no associations.
#[test]
fn pod_identity_associations_need_a_trusting_role_and_the_agent() {
    bad(r#"[iam_role.cluster]
name = "c"
assume_role_service = "eks.amazonaws.com"

[iam_role.cni]
name = "cni"
assume_role_service = "ec2.amazonaws.com"

[cluster.main]
name = "demo"
role_arn = "${iam_role.cluster.arn}"
subnet_ids = ["subnet-0aa11111111111111", "subnet-0bb22222222222222"]

[addon.vpc_cni]
cluster_name = "${cluster.main.name}"
name = "vpc-cni"
pod_identity_associations = [{ service_account = "aws-node", role_arn = "${iam_role.cni.arn}" }, { service_account = "aws-node", role_arn = "arn:aws:iam::111122223333:role/other" }, { service_account = "Aws_Node", role_arn = "nope" }]

[cluster.prod]
name = "prod"
existing = true

[addon.ebs]
cluster_name = "${cluster.prod.name}"
name = "aws-ebs-csi-driver"
existing = true
pod_identity_associations = [{ service_account = "ebs-csi-controller-sa", role_arn = "arn:aws:iam::111122223333:role/ebs" }]
"#)
    .err_parts(
        17,
        "addon.vpc_cni.pod_identity_associations.0.role_arn",
        &["`iam_role.cni` does not let EKS Pod Identity assume it", "`iam_role.cni.assume_role_service`"],
    )
    .err_parts(
        17,
        "addon.vpc_cni.pod_identity_associations.1.service_account",
        &["`aws-node` has an association already"],
    )
    .err_parts(
        17,
        "addon.vpc_cni.pod_identity_associations.2.service_account",
        &["`Aws_Node` is not a Kubernetes service account name"],
    )
    .err_parts(
        17,
        "addon.vpc_cni.pod_identity_associations.2.role_arn",
        &["needs an IAM role ARN", "not `nope`"],
    )
    .err_parts(
        17,
        "addon.vpc_cni.pod_identity_associations",
        &["has no `eks-pod-identity-agent` add-on", "crash-loops", "#3840"],
    )
    .err_parts(
        27,
        "addon.ebs.pod_identity_associations",
        &["takes no `pod_identity_associations`", "IAM roles are set where it was made"],
    )
    .check();
}

/// IRSA's role beside Pod Identity associations: EKS ignores it while the agent runs, a
/// warning; the spec is accepted.
#[test]
fn a_service_account_role_beside_associations_is_a_warning() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join(SPEC),
        r#"[addon.agent]
cluster_name = "demo"
name = "eks-pod-identity-agent"

[addon.vpc_cni]
cluster_name = "demo"
name = "vpc-cni"
service_account_role_arn = "arn:aws:iam::111122223333:role/irsa"
pod_identity_associations = [{ service_account = "aws-node", role_arn = "arn:aws:iam::111122223333:role/cni" }]
"#,
    )
    .expect("write spec");
    let r = run(dir.path(), &["validate", SPEC]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr
            .lines()
            .any(|l| l.starts_with("warning: bad.toml:8:")
                && l.contains("`addon.vpc_cni.service_account_role_arn`")
                && l.contains("EKS ignores `service_account_role_arn`")),
        "{}",
        r.stderr
    );
    assert_eq!(r.connections, 0);
}

// ---- Karpenter: `karpenter_node_class` and `karpenter_node_pool` ----

/// A node class that selects a pod subnet (an ENIConfig's), a pool naming no node class of
/// its cluster, an operator Karpenter does not have: each refused at its key.
#[test]
fn karpenter_node_class_on_a_pod_subnet_and_a_pool_without_its_class() {
    bad(with_cluster!(
        r#"
[eni_config.pod_a]
cluster_name = "${cluster.main.name}"
subnet_id = "subnet-0000000c"
name = "us-west-2a"

[karpenter_node_class.default]
cluster_name = "${cluster.main.name}"
role = "node"
subnet_ids = ["subnet-0000000a", "subnet-0000000c"]

[karpenter_node_pool.default]
cluster_name = "${cluster.main.name}"
node_class = "other"
instance_types = ["m5.large"]
requirements = [{ key = "karpenter.sh/capacity-type", operator = "Has", values = ["spot"] }]
"#
    ))
    .err_parts(
        14,
        "karpenter_node_class.default.subnet_ids.1",
        &[
            "`subnet-0000000c` is a pod subnet",
            "`eni_config.pod_a` uses it for pods",
        ],
    )
    .err_parts(
        18,
        "karpenter_node_pool.default.node_class",
        &[
            "no `karpenter_node_class` of cluster `demo` in the spec is named `other`",
            "(the cluster's: `default`)",
        ],
    )
    .err(
        20,
        "karpenter_node_pool.default.requirements.0.operator",
        "`Has` is not a Karpenter requirement operator",
    )
    .check();
}

/// A node class on a subnet of the spec inside its secondary block (kept for pods), with no
/// ENIConfig yet: refused all the same, naming the block.
#[test]
fn karpenter_node_class_on_a_subnet_of_the_pod_block() {
    bad(with_cluster!(
        r#"
[cidr_block.pods]
vpc_id = "vpc-0000000a"
cidr_block = "100.64.0.0/16"

[subnet.pod_a]
vpc_id = "vpc-0000000a"
cidr_block = "100.64.0.0/19"
availability_zone = "us-west-2a"

[karpenter_node_class.default]
cluster_name = "${cluster.main.name}"
role = "node"
subnet_ids = ["${subnet.pod_a.id}"]
"#
    ))
    .err_parts(
        18,
        "karpenter_node_class.default.subnet_ids.0",
        &[
            "is a pod subnet",
            "it lies in `cidr_block.pods` (100.64.0.0/16)",
        ],
    )
    .check();
}

// ---- EKS Auto Mode: `auto_mode` on a cluster, `auto_mode_node_class` ----

/// An Auto Mode cluster whose role lacks three of the Auto Mode policies and the
/// `sts:TagSession` trust, naming a pool Auto Mode does not have and pools without a node role.
#[test]
fn an_auto_mode_cluster_with_a_role_lacking_its_policies() {
    bad(r#"[iam_role.cluster]
name = "cluster"
assume_role_service = "eks.amazonaws.com"
managed_policies = ["AmazonEKSClusterPolicy", "AmazonEKSComputePolicy"]

[cluster.main]
name = "demo"
role_arn = "${iam_role.cluster.arn}"
subnet_ids = ["subnet-0000000a", "subnet-0000000b"]
auto_mode = true
auto_mode_node_pools = ["general-purpose", "gpu"]
"#)
    .err_parts(4, "iam_role.cluster.managed_policies", &["lacks AmazonEKSBlockStoragePolicy, AmazonEKSLoadBalancingPolicy, AmazonEKSNetworkingPolicy", "auto-cluster-iam-role"])
    .err_parts(1, "iam_role.cluster", &["must trust eks.amazonaws.com with both sts:AssumeRole and sts:TagSession"])
    .err(11, "cluster.main.auto_mode_node_pools.1", "not `gpu`")
    .err(11, "cluster.main.auto_mode_node_pools", "the built-in node pools need `auto_mode_node_role_arn`")
    .check();
}

/// Custom networking on an Auto Mode cluster: an ENIConfig, `aws_node` and the add-on's
/// `custom_network` are each refused with the equivalent (the `aws_node` patch also with the
/// add-on rule that was there before).
#[test]
fn custom_networking_on_an_auto_mode_cluster() {
    bad(r#"[cluster.main]
name = "demo"
role_arn = "arn:aws:iam::111122223333:role/cluster"
subnet_ids = ["subnet-0000000a", "subnet-0000000b"]
auto_mode = true

[eni_config.pod_a]
cluster_name = "${cluster.main.name}"
subnet_id = "subnet-0000000c"
name = "us-west-2a"

[aws_node.main]
cluster_name = "${cluster.main.name}"
custom_network = true

[addon.vpc_cni]
cluster_name = "${cluster.main.name}"
name = "vpc-cni"
custom_network = true
"#)
    .err_parts(
        7,
        "eni_config.pod_a",
        &[
            "has `auto_mode = true`",
            "an ENIConfig would do nothing",
            "[auto_mode_node_class.NAME]",
        ],
    )
    .err_parts(
        12,
        "aws_node.main",
        &[
            "has `auto_mode = true`",
            "the `aws-node` settings would do nothing",
        ],
    )
    .err(
        12,
        "aws_node.main",
        "runs the VPC CNI as the managed add-on",
    )
    .err_parts(
        19,
        "addon.vpc_cni.custom_network",
        &[
            "has `auto_mode = true`",
            "custom networking would do nothing",
            "pod_subnet_ids",
        ],
    )
    .check();
}

/// `default` is EKS's own NodeClass: refused as the table's key.
#[test]
fn a_node_class_named_default() {
    bad(r#"[cluster.main]
name = "demo"
role_arn = "arn:aws:iam::111122223333:role/cluster"
subnet_ids = ["${subnet.node_a.id}", "${subnet.node_b.id}"]

[subnet.node_a]
vpc_id = "vpc-0123456789abcdef0"
cidr_block = "10.0.0.0/24"
availability_zone = "us-west-2a"

[subnet.node_b]
vpc_id = "vpc-0123456789abcdef0"
cidr_block = "10.0.1.0/24"
availability_zone = "us-west-2b"

[subnet.pod_a]
vpc_id = "vpc-0123456789abcdef0"
cidr_block = "10.0.2.0/24"
availability_zone = "us-west-2a"

[auto_mode_node_class.default]
cluster_name = "${cluster.main.name}"
role = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["${subnet.node_a.id}", "${subnet.node_b.id}"]
pod_subnet_ids = ["${subnet.pod_a.id}"]
pod_security_group_ids = ["sg-0123456789abcdef0"]
"#)
    .err(
        21,
        "auto_mode_node_class.default.name",
        "the NodeClass EKS Auto Mode keeps for its built-in pools",
    )
    .check();
}

/// A NodeClass on a cluster without Auto Mode, a zone of its nodes without a pod subnet, and
/// its role given as an ARN.
#[test]
fn a_node_class_on_a_cluster_without_auto_mode_and_a_zone_without_pod_subnet() {
    bad(r#"[cluster.main]
name = "demo"
role_arn = "arn:aws:iam::111122223333:role/cluster"
subnet_ids = ["${subnet.node_a.id}", "${subnet.node_b.id}"]

[vpc.main]
id = "vpc-0123abcd"
cidr_block = "10.0.0.0/16"

[cidr_block.pods]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/16"

[subnet.node_a]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.0.0/24"
availability_zone = "us-west-2a"

[subnet.node_b]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.1.0/24"
availability_zone = "us-west-2b"

[subnet.pod_a]
vpc_id = "${vpc.main.id}"
cidr_block = "100.64.2.0/24"
availability_zone = "us-west-2a"

[auto_mode_node_class.pods]
cluster_name = "${cluster.main.name}"
role = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["${subnet.node_a.id}", "${subnet.node_b.id}"]
pod_subnet_ids = ["${subnet.pod_a.id}"]
pod_security_group_ids = ["sg-0123456789abcdef0"]
"#)
    .err(
        30,
        "auto_mode_node_class.pods.cluster_name",
        "does not have `auto_mode = true`",
    )
    .err_parts(
        33,
        "auto_mode_node_class.pods.pod_subnet_ids",
        &[
            "no pod subnet in `us-west-2b`",
            "failed to assign an IP address",
        ],
    )
    .err(
        31,
        "auto_mode_node_class.pods.role",
        "takes the role's name, not its ARN",
    )
    .check();
}

// ---- Cluster access: `access_entry`, `authentication_mode` ----

/// Access entries on a cluster whose authentication mode leaves the API out (none set: EKS's
/// CONFIG_MAP), an `EC2` entry on a cluster without Auto Mode, Kubernetes groups and access
/// policies on a node entry, and an entry for a managed nodegroup's role: each refused.
#[test]
fn access_entries_on_a_config_map_cluster_and_of_the_wrong_type() {
    bad(with_cluster!(
        r#"
[access_entry.admins]
cluster_name = "${cluster.main.name}"
principal_arn = "arn:aws:iam::111122223333:role/admins"
access_policies = [{ policy = "AmazonEKSClusterAdminPolicy" }, { policy = "AmazonEKSClusterAdminPolicy", namespaces = ["Web"] }]

[access_entry.auto]
cluster_name = "${cluster.main.name}"
principal_arn = "arn:aws:iam::111122223333:role/auto"
type = "EC2"

[access_entry.nodes]
cluster_name = "${cluster.main.name}"
principal_arn = "arn:aws:iam::111122223333:role/node"
type = "EC2_LINUX"
kubernetes_groups = ["system:masters"]
access_policies = [{ policy = "AmazonEKSViewPolicy" }]

[nodegroup.main]
cluster_name = "${cluster.main.name}"
name = "ng"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]
"#
    ))
    .err_parts(
        7,
        "access_entry.admins.cluster_name",
        &[
            "needs the cluster's authentication mode to include the EKS API",
            "EKS's default through the API is CONFIG_MAP",
            "authentication_mode = \"API_AND_CONFIG_MAP\"",
        ],
    )
    .err(
        9,
        "access_entry.admins.access_policies.1.policy",
        "`AmazonEKSClusterAdminPolicy` is listed twice",
    )
    .err(
        9,
        "access_entry.admins.access_policies.1.namespaces.0",
        "`Web` is not a Kubernetes namespace name",
    )
    .err(12, "access_entry.auto.cluster_name", "EKS refuses access entries under CONFIG_MAP")
    .err(14, "access_entry.auto.type", "type `EC2` is for the nodes of an EKS Auto Mode NodeClass")
    .err(17, "access_entry.nodes.cluster_name", "EKS refuses access entries under CONFIG_MAP")
    .err(
        20,
        "access_entry.nodes.kubernetes_groups",
        "an access entry of type `EC2_LINUX` takes no Kubernetes groups",
    )
    .err(
        21,
        "access_entry.nodes.access_policies",
        "access policies go only with types STANDARD and EC2",
    )
    .err_parts(
        18,
        "access_entry.nodes.principal_arn",
        &["EKS makes the access entry of this role itself, for `nodegroup.main`"],
    )
    .check();
}

/// A self-managed group (which makes its role's entry) on a cluster at `CONFIG_MAP`.
#[test]
fn a_self_managed_group_on_a_config_map_cluster() {
    bad(r#"[cluster.main]
name = "demo"
role_arn = "arn:aws:iam::111122223333:role/cluster"
subnet_ids = ["subnet-0000000a", "subnet-0000000b"]
authentication_mode = "CONFIG_MAP"

[self_managed_node_group.main]
cluster_name = "${cluster.main.name}"
name = "ng"
node_role_arn = "arn:aws:iam::111122223333:role/node"
subnet_ids = ["subnet-0000000a"]
instance_type = "m5.large"
ami_type = "AL2023_x86_64_STANDARD"
ami_id = "ami-12c6146b"
max_pods = 20
"#)
    .err_parts(
        8,
        "self_managed_node_group.main.cluster_name",
        &[
            "a self-managed group makes an access entry for its role",
            "has `CONFIG_MAP`",
        ],
    )
    .check();
}
