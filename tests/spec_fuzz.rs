//! The spec reader and validator under generated input, for a bounded time, on stable Rust
//! (no cargo-fuzz): the examples mutated at random (bytes flipped, lines dropped, doubled or
//! swapped, the text cut short) must never panic or hang; mistakes of known kinds planted in
//! them must always give at least one error; and formatting that changes nothing (CRLF, a
//! byte-order mark, comments, the order of the tables, sub-tables instead of inline tables)
//! must give the same resources and the same dependency graph.
//!
//! The seed is printed; `EKSNET_FUZZ_SEED=N` replays a run, `EKSNET_FUZZ_SECS` sets the time
//! spent on random mutations (default 10).

#[path = "support/package_dir.rs"]
mod package_dir;

use eksnet::plan::graph::DependencyGraph;
use eksnet::spec::{self, Spec};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longer than any spec takes to read; a read still running then is a hang.
const HANG: Duration = Duration::from_secs(10);

fn examples() -> Vec<(PathBuf, String)> {
    let dir = package_dir::package_dir().join("examples");
    [
        "custom-networking.toml",
        "custom-networking-addon.toml",
        "custom-networking-production.toml",
    ]
    .iter()
    .map(|f| {
        let p = dir.join(f);
        let text = std::fs::read_to_string(&p).expect("example");
        (p, text)
    })
    .collect()
}

/// What reading a spec gives: the diagnostics' error count, and for a valid spec its
/// resources' attributes and its graph's edges.
#[derive(Debug, PartialEq)]
enum Outcome {
    Invalid {
        errors: usize,
    },
    Valid {
        resources: String,
        edges: Vec<String>,
    },
}

fn read(path: &Path, text: &str) -> Outcome {
    let spec: Spec = match spec::parse(path, text) {
        Ok(s) => s,
        Err(d) => {
            return Outcome::Invalid {
                errors: d.errors().count(),
            }
        }
    };
    let d = eksnet::validate::validate(&spec);
    if d.has_errors() {
        return Outcome::Invalid {
            errors: d.errors().count(),
        };
    }
    match DependencyGraph::build(&spec, None) {
        Err(d) => Outcome::Invalid {
            errors: d.errors().count(),
        },
        Ok(g) => {
            let mut edges: Vec<String> = g
                .addrs()
                .flat_map(|a| {
                    g.dependencies(a)
                        .into_iter()
                        .map(move |b| format!("{b} -> {a}"))
                })
                .collect();
            edges.sort();
            let resources: std::collections::BTreeMap<String, &serde_json::Value> = spec
                .resources
                .iter()
                .map(|(a, r)| (a.to_string(), &r.attrs))
                .collect();
            Outcome::Valid {
                resources: serde_json::to_string(&resources).unwrap_or_default(),
                edges,
            }
        }
    }
}

/// `read` on another thread: a panic is reported with the input, and so is a hang.
fn read_guarded(path: &Path, text: &str, what: &str) -> Outcome {
    let (tx, rx) = mpsc::channel();
    let (p, t) = (path.to_path_buf(), text.to_string());
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(|| read(&p, &t));
        let _ = tx.send(r);
    });
    match rx.recv_timeout(HANG) {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => panic!("the reader panicked on {what}:\n{text}"),
        Err(_) => panic!("the reader did not return within {HANG:?} on {what}:\n{text}"),
    }
}

fn mutate(rng: &mut fastrand::Rng, text: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    match rng.u8(0..7) {
        0 => {
            // A byte replaced by a character TOML gives meaning to.
            let mut bytes = text.as_bytes().to_vec();
            if !bytes.is_empty() {
                let i = rng.usize(0..bytes.len());
                bytes[i] = *rng
                    .choice(b"[]{}=\"'#,.\n$\\ 0aZ/-".iter())
                    .unwrap_or(&b'x');
            }
            return String::from_utf8_lossy(&bytes).into_owned();
        }
        1 if !lines.is_empty() => {
            let i = rng.usize(0..lines.len());
            lines.remove(i);
        }
        2 if !lines.is_empty() => {
            let i = rng.usize(0..lines.len());
            let l = lines[i].clone();
            lines.insert(i, l);
        }
        3 if lines.len() > 1 => {
            let (i, j) = (rng.usize(0..lines.len()), rng.usize(0..lines.len()));
            lines.swap(i, j);
        }
        4 => {
            let cut = rng.usize(0..=text.len());
            let cut = (0..=cut)
                .rev()
                .find(|c| text.is_char_boundary(*c))
                .unwrap_or(0);
            return text[..cut].to_string();
        }
        5 if !lines.is_empty() => {
            // Random bytes, including invalid UTF-8 turned into replacement characters.
            let i = rng.usize(0..lines.len());
            let junk: Vec<u8> = (0..rng.usize(1..12)).map(|_| rng.u8(..)).collect();
            lines[i].push_str(&String::from_utf8_lossy(&junk));
        }
        _ if !lines.is_empty() => {
            // A value swapped for another line's value.
            let (i, j) = (rng.usize(0..lines.len()), rng.usize(0..lines.len()));
            if let (Some((k, _)), Some((_, v))) = (
                lines[i].clone().split_once(" = "),
                lines[j].clone().split_once(" = "),
            ) {
                lines[i] = format!("{k} = {v}");
            }
        }
        _ => {}
    }
    lines.join("\n")
}

#[test]
fn random_mutations_never_panic_or_hang() {
    let seed = std::env::var("EKSNET_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let secs = std::env::var("EKSNET_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    eprintln!("spec fuzz: seed {seed} (EKSNET_FUZZ_SEED={seed} replays it), {secs} s");
    let mut rng = fastrand::Rng::with_seed(seed);
    let inputs = examples();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let (mut runs, mut invalid) = (0u64, 0u64);
    while Instant::now() < deadline {
        let (path, text) = &inputs[rng.usize(0..inputs.len())];
        let mut t = text.clone();
        for _ in 0..rng.usize(1..4) {
            t = mutate(&mut rng, &t);
        }
        if let Outcome::Invalid { errors } = read_guarded(path, &t, "a mutated example") {
            // Refused means: said why.
            assert!(errors > 0, "refused without an error:\n{t}");
            invalid += 1;
        }
        runs += 1;
    }
    eprintln!("spec fuzz: {runs} inputs, {invalid} refused");
    assert!(runs > 100, "only {runs} inputs in {secs} s");
}

/// Mistakes of known kinds, each planted in each example: never accepted.
#[test]
fn planted_mistakes_always_give_an_error() {
    // The examples' template declares its parameters `String` without constraints, so no
    // value breaks one. A copy of it with the AZ parameter typed as CloudFormation allows
    // (`AWS::EC2::AvailabilityZone::Name`) gives the value a rule to break; the copy alone,
    // with the example's values, is accepted.
    let typed_dir = tempfile::tempdir().expect("temp dir");
    let template_path = package_dir::package_dir().join("examples/vpc-private-subnets.yaml");
    let template = std::fs::read_to_string(&template_path).expect("example template");
    let typed = template.replacen(
        "  AvailabilityZone01:\n    Type: String\n",
        "  AvailabilityZone01:\n    Type: AWS::EC2::AvailabilityZone::Name\n",
        1,
    );
    assert_ne!(
        typed, template,
        "the example template declares AvailabilityZone01 a String"
    );
    let typed_path = typed_dir.path().join("vpc-typed.yaml");
    std::fs::write(&typed_path, &typed).expect("write the typed template");
    let typed_file = format!("template_file = '{}'", typed_path.display());
    let on_typed_template = |t: &str| {
        t.replacen(
            "template_file = \"vpc-private-subnets.yaml\"",
            &typed_file,
            1,
        )
    };
    for (path, text) in examples() {
        assert!(
            text.contains("AvailabilityZone01 = \"us-west-2a\""),
            "{}",
            path.display()
        );
        let t = on_typed_template(&text);
        assert_ne!(t, text, "{} has no stack from the template", path.display());
        let got = read_guarded(&path, &t, "the typed template");
        assert!(matches!(got, Outcome::Valid { .. }), "{got:?}");
    }
    type Plant<'a> = (&'a str, &'a dyn Fn(&str) -> String);
    let plants: &[Plant] = &[
        ("an unknown key", &|t| {
            t.replacen("[cluster.main]\n", "[cluster.main]\nnmae = \"x\"\n", 1)
        }),
        ("a bad CIDR", &|t| {
            t.replacen(
                "cidr_block = \"192.168.1.0/24\"",
                "cidr_block = \"192.168.1.0/33\"",
                1,
            )
        }),
        ("a dangling reference", &|t| {
            t.replacen("${subnet.pod_a.id}", "${subnet.pod_z.id}", 1)
        }),
        ("a reference cycle", &|t| {
            t.replacen(
                "[iam_role.cluster]\n",
                "[iam_role.cluster]\ndescription = \"${cluster.main.arn}\"\n",
                1,
            )
        }),
        ("a required key removed", &|t| {
            t.replacen("node_role_arn = \"${iam_role.node.arn}\"\n", "", 1)
        }),
        ("a syntax error", &|t| {
            t.replacen("[cluster.main]", "[cluster.main", 1)
        }),
        ("overlapping pod subnets", &|t| {
            t.replacen("192.168.1.32/27", "192.168.1.16/28", 1)
        }),
        ("a mistyped reference", &|t| {
            t.replacen(
                "role_arn = \"${iam_role.cluster.arn}\"",
                "role_arn = \"${iam_role.cluster.name}\"",
                1,
            )
        }),
        ("a region that is not one", &|t| {
            t.replacen("region = \"us-west-2\"", "region = \"us-west\"", 1)
        }),
        ("an undeclared stack parameter", &|t| {
            t.replacen("VpcBlock =", "VpcBlok =", 1)
        }),
        ("an ARN of another partition", &|t| {
            t.replacen(
                "node_role_arn = \"${iam_role.node.arn}\"",
                "node_role_arn = \"arn:aws-cn:iam::111122223333:role/node\"",
                1,
            )
        }),
        ("a service principal that is not one", &|t| {
            t.replacen("\"ec2.amazonaws.com\"", "\"ec2.amazonaws.co\"", 1)
        }),
        ("an instance type of the wrong architecture", &|t| {
            t.replacen("[\"t3.medium\"]", "[\"t4g.medium\"]", 1)
        }),
        ("a secondary block AWS does not associate", &|t| {
            t.replacen(
                "cidr_block = \"192.168.1.0/24\"",
                "cidr_block = \"10.64.0.0/16\"",
                1,
            )
        }),
        ("a node label the kubelet refuses", &|t| {
            t.replacen(
                "instance_types = [\"t3.medium\"]",
                "instance_types = [\"t3.medium\"]\nlabels = { \"node-role.kubernetes.io/worker\" = \"\" }",
                1,
            )
        }),
        ("a Kubernetes version EKS never had", &|t| {
            if t.contains("version = \"1.33\"") {
                t.replacen("version = \"1.33\"", "version = \"1.8\"", 1)
            } else {
                t.replacen("[cluster.main]\n", "[cluster.main]\nversion = \"1.8\"\n", 1)
            }
        }),
        ("a stack parameter its template's type refuses", &|t| {
            on_typed_template(t).replacen(
                "AvailabilityZone01 = \"us-west-2a\"",
                "AvailabilityZone01 = \"us-west-2\"",
                1,
            )
        }),
        ("the tables cut short", &|t| {
            t[..t.len() / 2].to_string() + "\n[subnet"
        }),
    ];
    // The plants are written against the tutorial's text (its CIDRs, its t3.medium), which
    // the production example does not share; the other tests here read it too.
    let tutorial = examples()
        .into_iter()
        .filter(|(p, _)| !p.ends_with("custom-networking-production.toml"));
    for (path, text) in tutorial {
        for (what, plant) in plants {
            let t = plant(&text);
            assert_ne!(t, text, "{what}: the plant must change {}", path.display());
            match read_guarded(&path, &t, what) {
                Outcome::Invalid { errors } => assert!(errors > 0, "{what}"),
                Outcome::Valid { .. } => panic!("{what} was accepted in {}:\n{t}", path.display()),
            }
        }
    }
}

/// TOML that says the same thing written differently: same resources, same graph.
#[test]
fn formatting_changes_nothing() {
    let mut rng = fastrand::Rng::with_seed(7);
    for (path, text) in examples() {
        let base = read_guarded(&path, &text, "the example");
        assert!(matches!(base, Outcome::Valid { .. }), "{base:?}");
        let table: toml::Table = toml::from_str(&text).expect("the example is TOML");
        let blocks = |t: &str| -> Vec<String> {
            let mut out: Vec<String> = Vec::new();
            for line in t.lines() {
                if line.starts_with('[') || out.is_empty() {
                    out.push(String::new());
                }
                if let Some(last) = out.last_mut() {
                    last.push_str(line);
                    last.push('\n');
                }
            }
            out
        };
        let variants: Vec<(&str, String)> = vec![
            ("CRLF line ends", text.replace('\n', "\r\n")),
            ("a byte-order mark", format!("\u{feff}{text}")),
            ("comments everywhere", {
                text.lines()
                    .map(|l| {
                        if l.starts_with('[') {
                            format!("# before\n{l} # after")
                        } else {
                            l.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            }),
            ("tables in another order", {
                let mut b = blocks(&text);
                rng.shuffle(&mut b);
                b.concat()
            }),
            (
                "sub-tables instead of inline tables",
                toml::to_string(&table).expect("re-serialise"),
            ),
        ];
        for (what, t) in variants {
            let got = read_guarded(&path, &t, what);
            assert_eq!(got, base, "{what} changed {}:\n{t}", path.display());
        }
    }
}
