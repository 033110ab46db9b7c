//! `eksnet schema` kept in step with what eksnet reads. The schema the real binary prints is a
//! draft 7 JSON Schema; every spec eksnet accepts in the repository (the examples, the
//! goldens, the valid specs of `tests/bad_specs.rs`) passes it, converted from TOML to JSON as
//! an editor does; what eksnet refuses by key, kind or value it refuses too; it has every
//! section, kind and field eksnet's parser knows (their names taken from the parser's own
//! messages), each with a description; and each of its enumerations is the list the checks
//! use, found by giving eksnet a value outside it.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

#[path = "support/package_dir.rs"]
mod package_dir;
use package_dir::package_dir;

/// The schema as `eksnet schema` prints it, run once: in an empty directory, with no
/// environment (no spec, no state, no AWS).
fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = Command::new(env!("CARGO_BIN_EXE_eksnet"))
            .arg("schema")
            .current_dir(dir.path())
            .env_clear()
            .env("HOME", dir.path())
            .output()
            .expect("run eksnet schema");
        assert_eq!(
            out.status.code(),
            Some(0),
            "stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing: Vec<_> = std::fs::read_dir(dir.path()).expect("list").collect();
        assert!(
            listing.is_empty(),
            "`eksnet schema` wrote files: {listing:?}"
        );
        serde_json::from_slice(&out.stdout).expect("`eksnet schema` prints JSON")
    })
}

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| jsonschema::validator_for(schema()).expect("the schema compiles"))
}

/// A spec's TOML as the JSON an editor checks against the schema.
fn as_json(toml_text: &str) -> Value {
    let table: toml::Table = toml::from_str(toml_text).expect("TOML");
    serde_json::to_value(table).expect("TOML as JSON")
}

/// Why the schema refuses a spec; empty when it accepts it.
fn schema_errors(toml_text: &str) -> Vec<String> {
    validator()
        .iter_errors(&as_json(toml_text))
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// eksnet's own verdict on a spec written at `path`: parse, then `validate` (no call). Each
/// error as (key, message).
fn eksnet_errors(path: &Path, toml_text: &str) -> Vec<(String, String)> {
    let diagnostics = match eksnet::spec::parse(path, toml_text) {
        Ok(spec) => eksnet::validate::validate(&spec),
        Err(d) => d,
    };
    diagnostics
        .errors()
        .map(|d| (d.key.clone().unwrap_or_default(), d.message.clone()))
        .collect()
}

fn examples() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(package_dir().join("examples"))
        .expect("examples/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    found.sort();
    assert!(found.len() >= 2, "examples: {found:?}");
    found
}

fn golden_specs() -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![package_dir().join("tests/golden")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("tests/golden") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|x| x == "toml") {
                found.push(path);
            }
        }
    }
    found.sort();
    assert!(!found.is_empty(), "no spec under tests/golden");
    found
}

/// The first raw string (`r#"…"#`) after `marker` in `source`.
fn raw_string_after<'a>(source: &'a str, marker: &str) -> &'a str {
    let at = source
        .find(marker)
        .unwrap_or_else(|| panic!("`{marker}` not found"));
    let rest = &source[at..];
    let start = rest.find("r#\"").expect("a raw string after the marker") + 3;
    let len = rest[start..].find("\"#").expect("the raw string's end");
    &rest[start..start + len]
}

/// The valid specs `tests/bad_specs.rs` writes inline, read from that file: its
/// `unusual_but_valid_values_are_accepted` spec and `good_spec_dir`'s `good.toml` (its
/// `with_block!` block and its subnet).
fn bad_specs_valid_specs() -> Vec<(String, String)> {
    let path = package_dir().join("tests/bad_specs.rs");
    let source = std::fs::read_to_string(&path).expect("tests/bad_specs.rs");
    let unusual = raw_string_after(&source, "fn unusual_but_valid_values_are_accepted()");
    let good_fn = &source[source.find("fn good_spec_dir()").expect("fn good_spec_dir")..];
    let body_end = good_fn.find("\n}\n").expect("the end of good_spec_dir");
    assert!(
        good_fn[..body_end].contains("with_block!("),
        "good_spec_dir no longer writes `with_block!(…)`: read good.toml anew here"
    );
    let good = format!(
        "{}{}",
        raw_string_after(&source, "macro_rules! with_block"),
        raw_string_after(good_fn, "fn good_spec_dir()")
    );
    let mut specs = vec![
        (
            "unusual_but_valid_values_are_accepted".into(),
            unusual.to_string(),
        ),
        ("good.toml".into(), good),
    ];
    // Every raw string of the second round's valid cases is a whole spec.
    let marker = "fn valid_specs_of_the_second_round_are_accepted()";
    let round = &source[source.find(marker).expect(marker)..];
    let mut body = &round[..round.find("\n}\n").expect("the end of the function")];
    let mut n = 0;
    while let Some(start) = body.find("r#\"") {
        let rest = &body[start + 3..];
        let len = rest.find("\"#").expect("the raw string's end");
        n += 1;
        specs.push((
            format!("valid_specs_of_the_second_round_{n}"),
            rest[..len].to_string(),
        ));
        body = &rest[len + 2..];
    }
    assert!(n >= 4, "only {n} specs in `{marker}`");
    specs
}

#[test]
fn eksnet_schema_prints_a_draft_7_json_schema() {
    let s = schema();
    assert_eq!(s["$schema"], "http://json-schema.org/draft-07/schema#");
    assert_eq!(s["title"], "eksnet spec");
    assert!(s["description"].as_str().is_some_and(|d| !d.is_empty()));
    if let Err(e) = jsonschema::meta::validate(s) {
        panic!("not a valid draft 7 schema: {e} at {}", e.instance_path());
    }
    // The library's value is the binary's.
    assert_eq!(&eksnet::spec::schema::spec_schema(), s);
}

/// Every spec in the repository that eksnet accepts passes the schema.
#[test]
fn every_example_and_valid_test_spec_passes() {
    let mut specs: Vec<(PathBuf, String)> = examples()
        .into_iter()
        .chain(golden_specs())
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read spec");
            (p, text)
        })
        .collect();
    for (name, text) in bad_specs_valid_specs() {
        specs.push((package_dir().join("tests").join(name), text));
    }
    for (path, text) in &specs {
        let refused = eksnet_errors(path, text);
        assert!(
            refused.is_empty(),
            "{}: eksnet refuses it: {refused:?}",
            path.display()
        );
        let errors = schema_errors(text);
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    }
}

/// What no spec above writes: `#:schema` on the first line (Taplo's directive, a comment to
/// TOML), `[settings.timeouts]`, both `[state]` backends, `lifecycle` as a sub-table and
/// inline, and the enumerated fields.
#[test]
fn the_other_sections_and_fields_pass_and_eksnet_reads_them_too() {
    let s3 = r#"#:schema ./eksnet.schema.json
[settings]
region = "us-west-2"
timeouts = { cluster = 3600, nodegroup = 5400 }

[state]
backend = "s3"
bucket = "team-eksnet-state"
key = "eksnet/prod.json"
region = "us-east-1"
lease_seconds = 60
force_path_style = false

[iam_role.node]
name = "node"
assume_role_service = ["ec2.amazonaws.com"]
managed_policies = ["AmazonEKSWorkerNodePolicy"]
path = "/eks/"
lifecycle = { prevent_destroy = true }

[cluster.main]
name = "demo"
role_arn = "arn:aws:iam::111122223333:role/cluster"
subnet_ids = ["subnet-0000000a", "subnet-0000000b"]
ip_family = "ipv4"
bootstrap_self_managed_addons = false

[addon.vpc_cni]
cluster_name = "${cluster.main.name}"
name = "vpc-cni"
resolve_conflicts_on_create = "NONE"
resolve_conflicts_on_update = "PRESERVE"
preserve_on_delete = false
eni_config_selection = "annotation"
custom_network = false
configuration_values = { env = { WARM_IP_TARGET = "5" } }

[nodegroup.main]
cluster_name = "${cluster.main.name}"
name = "main"
node_role_arn = "${iam_role.node.arn}"
subnet_ids = ["subnet-0000000a"]
ami_type = "AL2023_x86_64_STANDARD"
capacity_type = "SPOT"
disk_size = 40
max_pods = 20
scaling = { min_size = 1, max_size = 3, desired_size = 2 }

[nodegroup.main.lifecycle]
ignore_changes = ["scaling.desired_size"]
"#;
    let local = r#"#:schema ./eksnet.schema.json
[state]
backend = "local"
path = "state/prod.db"

[iam_role.node]
name = "node"
assume_role_service = "ec2.amazonaws.com"
"#;
    for text in [s3, local] {
        let path = package_dir().join("tests/schema-spec.toml");
        assert_eq!(eksnet_errors(&path, text), vec![], "{text}");
        assert_eq!(schema_errors(text), Vec::<String>::new(), "{text}");
    }
}

/// A key, kind, section or value eksnet refuses before any call is refused by the schema
/// too (each case is checked against eksnet first, so the two cannot drift apart unseen).
#[test]
fn the_schema_refuses_what_eksnet_refuses() {
    let role = "[iam_role.node]\nname = \"node\"\nassume_role_service = \"ec2.amazonaws.com\"\n";
    let existing_addon =
        "[addon.vpc_cni]\ncluster_name = \"demo\"\nname = \"vpc-cni\"\nexisting = true\n";
    let nodegroup = |extra: &str| {
        format!(
            "[nodegroup.main]\ncluster_name = \"demo\"\nname = \"main\"\nnode_role_arn = \"arn:aws:iam::111122223333:role/node\"\nsubnet_ids = [\"subnet-0000000a\"]\n{extra}\n"
        )
    };
    let cases: Vec<(&str, String)> = vec![
        ("an unknown key in a resource", format!("{role}colour = \"blue\"\n")),
        ("an unknown kind", "[load_balancer.main]\nname = \"x\"\n".into()),
        (
            "a launch_template section",
            "[launch_template.main]\nname = \"x\"\nmax_pods = 20\nami_family = \"al2023\"\n"
                .into(),
        ),
        ("a wrong capacity_type", nodegroup("capacity_type = \"SPOTTY\"")),
        ("a wrong ami_type", nodegroup("ami_type = \"AL2025\"")),
        ("a disk too large", nodegroup("disk_size = 20000")),
        ("max_pods 0", nodegroup("max_pods = 0\nami_type = \"AL2023_x86_64_STANDARD\"")),
        ("a string for a number", nodegroup("disk_size = \"20\"")),
        ("a scaling table missing a count", nodegroup("scaling = { min_size = 1, max_size = 2 }")),
        ("a missing required field", "[cluster.main]\nname = \"demo\"\n".into()),
        ("a bad resource name", "[iam_role.\"no.dots\"]\nname = \"node\"\nassume_role_service = \"ec2.amazonaws.com\"\n".into()),
        ("an unknown lifecycle key", format!("{role}lifecycle = {{ create_before_destroy = true }}\n")),
        ("a timeout for no kind", "[settings.timeouts]\naws-node = 600\n".into()),
        ("a timeout of 0", "[settings.timeouts]\ncluster = 0\n".into()),
        ("an unknown setting", "[settings]\nprofile = \"dev\"\n".into()),
        ("an unknown state backend", "[state]\nbackend = \"gcs\"\n".into()),
        ("a lease out of range", "[state]\nbackend = \"s3\"\nbucket = \"b-state\"\nkey = \"k.json\"\nlease_seconds = 1\n".into()),
        ("a kind that is not a table", "vpc = \"vpc-0123abcd\"\n".into()),
        ("an ip_family that is not one", "[cluster.main]\nname = \"demo\"\nrole_arn = \"arn:aws:iam::111122223333:role/c\"\nsubnet_ids = [\"subnet-0000000a\", \"subnet-0000000b\"]\nip_family = \"IPv4\"\n".into()),
        ("a tag value that is not a string", format!("{role}tags = {{ team = 7 }}\n")),
        ("a version on an existing add-on", format!("{existing_addon}version = \"v1.19.2-eksbuild.1\"\n")),
        ("preserve_on_delete on an existing add-on, even EKS's default", format!("{existing_addon}preserve_on_delete = true\n")),
        ("tags on an existing add-on", format!("{existing_addon}tags = {{}}\n")),
        ("a security group policy selecting nothing", "[security_group_policy.web]\ncluster_name = \"demo\"\nsecurity_group_ids = [\"sg-0000000a\"]\n".into()),
        ("a security group policy with six groups", "[security_group_policy.web]\ncluster_name = \"demo\"\npod_selector = { app = \"web\" }\nsecurity_group_ids = [\"sg-0000000a\", \"sg-0000000b\", \"sg-0000000c\", \"sg-0000000d\", \"sg-0000000e\", \"sg-0000000f\"]\n".into()),
    ];
    let path = package_dir().join("tests/schema-spec.toml");
    for (what, text) in &cases {
        assert!(
            !eksnet_errors(&path, text).is_empty(),
            "{what}: eksnet accepts it, so the schema should too:\n{text}"
        );
        assert!(
            !schema_errors(text).is_empty(),
            "{what}: the schema accepts what eksnet refuses:\n{text}"
        );
    }
}

/// A reference may stand in any string field, an enumerated one too where its check waits
/// for the value (`ami_type`, `capacity_type`), but not where eksnet needs the literal
/// (`ip_family`).
#[test]
fn a_reference_stands_in_for_a_string() {
    let base = |extra: &str| {
        format!(
            "[iam_role.node]\nname = \"node\"\nassume_role_service = \"ec2.amazonaws.com\"\n\n[nodegroup.main]\ncluster_name = \"demo\"\nname = \"main\"\nnode_role_arn = \"${{iam_role.node.arn}}\"\nsubnet_ids = [\"subnet-0000000a\"]\n{extra}\n"
        )
    };
    let path = package_dir().join("tests/schema-spec.toml");
    for extra in ["", "capacity_type = \"${iam_role.node.name}\""] {
        let text = base(extra);
        assert_eq!(eksnet_errors(&path, &text), vec![], "{text}");
        assert_eq!(schema_errors(&text), Vec::<String>::new(), "{text}");
    }
    let cluster = "[cluster.main]\nname = \"demo\"\nrole_arn = \"${iam_role.node.arn}\"\nsubnet_ids = [\"subnet-0000000a\", \"subnet-0000000b\"]\nip_family = \"${iam_role.node.name}\"\n";
    let text = format!("{}\n{cluster}", base(""));
    assert!(!eksnet_errors(&path, &text).is_empty());
    assert!(!schema_errors(&text).is_empty());
}

/// The names eksnet's parser lists when it meets `__unknown__` in a table: serde's field
/// names of the table's struct, or the parser's own list of sections.
fn names_eksnet_expects(toml_text: &str) -> Vec<String> {
    let path = package_dir().join("tests/schema-spec.toml");
    let errors = eksnet_errors(&path, toml_text);
    let message = errors
        .iter()
        .map(|(_, m)| m.as_str())
        .find(|m| m.contains("`__unknown__`"))
        .unwrap_or_else(|| panic!("no unknown-key error for:\n{toml_text}\n{errors:?}"));
    let (_, expected) = message
        .split_once("expected")
        .unwrap_or_else(|| panic!("no list in `{message}`"));
    let ticked: Vec<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect();
    if !ticked.is_empty() {
        return ticked;
    }
    let (_, list) = expected
        .split_once(':')
        .unwrap_or_else(|| panic!("no list in `{message}`"));
    list.split(',').map(|s| s.trim().to_string()).collect()
}

fn keys(object: &Value) -> Vec<String> {
    let mut k: Vec<String> = object
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Each section eksnet reads is in the schema with exactly the fields eksnet reads, the kinds
/// being `Kind::ALL` less the derived ones; so a field added to a kind without the schema
/// knowing, or a kind added, fails here.
#[test]
fn every_section_kind_and_field_is_in_the_schema() {
    let props = &schema()["properties"];
    let sections = names_eksnet_expects("[__unknown__]\n");
    assert_eq!(keys(props), sorted(sections.clone()));
    let writable: Vec<String> = eksnet::base::addr::Kind::ALL
        .iter()
        .filter(|k| !eksnet::spec::derived_kind(**k))
        .map(|k| k.as_str().to_string())
        .collect();
    let mut expected = vec!["settings".to_string(), "state".to_string()];
    expected.extend(writable.iter().cloned());
    assert_eq!(sorted(sections), sorted(expected));
    assert!(props.get("launch_template").is_none());

    for section in ["settings", "state"] {
        let fields = names_eksnet_expects(&format!("[{section}]\n__unknown__ = 1\n"));
        assert_eq!(
            keys(&props[section]["properties"]),
            sorted(fields),
            "[{section}]"
        );
        assert_eq!(props[section]["additionalProperties"], json!(false));
    }
    for kind in &writable {
        let fields = names_eksnet_expects(&format!("[{kind}.x]\n__unknown__ = 1\n"));
        let resource = &props[kind]["additionalProperties"];
        let mut with_lifecycle = fields;
        with_lifecycle.push("lifecycle".into());
        assert_eq!(
            keys(&resource["properties"]),
            sorted(with_lifecycle),
            "[{kind}.NAME]"
        );
        assert_eq!(resource["additionalProperties"], json!(false), "{kind}");
        assert_eq!(
            props[kind]["propertyNames"]["pattern"],
            json!(eksnet::base::addr::RESOURCE_NAME_PATTERN)
        );
    }
    let lifecycle_fields = names_eksnet_expects("[vpc.x]\nlifecycle = { __unknown__ = 1 }\n");
    assert_eq!(
        keys(&schema()["definitions"]["Lifecycle"]["properties"]),
        sorted(lifecycle_fields)
    );
}

/// Every property, at any depth, says what it is: an editor shows it on hover.
#[test]
fn every_property_has_a_description() {
    fn walk(at: &str, v: &Value, missing: &mut Vec<String>, seen: &mut usize) {
        match v {
            Value::Object(m) => {
                if let Some(Value::Object(props)) = m.get("properties") {
                    for (name, p) in props {
                        *seen += 1;
                        let ok = p
                            .get("description")
                            .and_then(Value::as_str)
                            .is_some_and(|d| !d.trim().is_empty());
                        if !ok {
                            missing.push(format!("{at}/{name}"));
                        }
                    }
                }
                for (k, child) in m {
                    walk(&format!("{at}/{k}"), child, missing, seen);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(&format!("{at}/{i}"), child, missing, seen);
                }
            }
            _ => {}
        }
    }
    let mut missing = Vec::new();
    let mut seen = 0;
    walk("", schema(), &mut missing, &mut seen);
    assert!(seen > 80, "only {seen} properties seen");
    assert!(
        missing.is_empty(),
        "properties without a description: {missing:#?}"
    );
}

/// The fixed values of each field whose schema has an `enum` (found in the schema, so a new
/// one is covered too): eksnet refuses a value outside the list with a message that names
/// every value of the schema's list, and takes each value of the list without that message.
/// Checked on the examples' resources of the kind.
#[test]
fn each_enumeration_is_the_one_eksnet_checks() {
    const BOGUS: &str = "NOT_ONE_OF_THEM";
    let examples: Vec<(PathBuf, toml::Table)> = examples()
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read example");
            (p, toml::from_str(&text).expect("TOML"))
        })
        .collect();
    let mut checked = Vec::new();
    for (kind, kind_schema) in schema()["properties"].as_object().expect("properties") {
        let Some(fields) = kind_schema["additionalProperties"]["properties"].as_object() else {
            continue;
        };
        for (field, field_schema) in fields {
            let choices: Vec<&Value> = match field_schema.get("anyOf") {
                Some(Value::Array(c)) => c.iter().collect(),
                _ => vec![field_schema],
            };
            let Some(values) = choices.iter().find_map(|c| c.get("enum")) else {
                continue;
            };
            let values: Vec<&str> = values
                .as_array()
                .expect("enum")
                .iter()
                .map(|v| v.as_str().expect("string values"))
                .collect();
            let takes_reference = choices.iter().any(|c| c.get("pattern").is_some());
            // A resource of the kind where eksnet checks the field: a value outside the
            // list is refused at its key, naming the list.
            let with = |path: &Path, table: &toml::Table, name: &str, value: &str| {
                let mut t = table.clone();
                let resource = t
                    .get_mut(kind)
                    .and_then(|k| k.get_mut(name))
                    .and_then(|r| r.as_table_mut())
                    .expect("resource");
                resource.insert(field.clone(), toml::Value::String(value.into()));
                let text = toml::to_string(&t).expect("TOML");
                let key = format!("{kind}.{name}.{field}");
                let at_key: Vec<String> = eksnet_errors(path, &text)
                    .into_iter()
                    .filter(|(k, _)| *k == key)
                    .map(|(_, m)| m)
                    .collect();
                (text, at_key)
            };
            let names_all = |m: &str| {
                values.iter().all(|v| {
                    m.match_indices(v).any(|(i, _)| {
                        let before = m[..i].chars().next_back();
                        let after = m[i + v.len()..].chars().next();
                        let edge =
                            |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
                        edge(before) && edge(after)
                    })
                })
            };
            let found = examples.iter().find_map(|(path, table)| {
                let names: Vec<String> = table.get(kind)?.as_table()?.keys().cloned().collect();
                names.into_iter().find_map(|name| {
                    let (text, at_key) = with(path, table, &name, BOGUS);
                    let refusal = at_key
                        .into_iter()
                        .find(|m| m.contains(BOGUS) && names_all(m))?;
                    Some((path.clone(), table.clone(), name, text, refusal))
                })
            });
            let Some((path, table, name, text, refusal)) = found else {
                panic!("no resource of `{kind}` in the examples where eksnet refuses `{field} = \"{BOGUS}\"` naming {values:?}");
            };
            assert!(
                !schema_errors(&text).is_empty(),
                "{kind}.{field}: the schema takes {BOGUS}"
            );
            for v in &values {
                let (text, at_key) = with(&path, &table, &name, v);
                let again = refusal.replace(BOGUS, v);
                assert!(!at_key.contains(&again), "{kind}.{field} = {v:?}: {again}");
                assert!(
                    schema_errors(&text).is_empty(),
                    "{kind}.{field} = {v:?}: {:?}",
                    schema_errors(&text)
                );
            }
            let reference = "${iam_role.node.name}";
            let (text, at_key) = with(&path, &table, &name, reference);
            let refused = at_key.contains(&refusal.replace(BOGUS, reference));
            assert_eq!(
                refused, !takes_reference,
                "{kind}.{field} with a reference: {at_key:?}"
            );
            assert_eq!(
                schema_errors(&text).is_empty(),
                takes_reference,
                "{kind}.{field} with a reference"
            );
            checked.push(format!("{kind}.{field}"));
        }
    }
    checked.sort();
    assert_eq!(
        checked,
        vec![
            "access_entry.type",
            "addon.eni_config_selection",
            "addon.resolve_conflicts_on_create",
            "addon.resolve_conflicts_on_update",
            "aws_node.eni_config_selection",
            "cluster.authentication_mode",
            "cluster.ip_family",
            "nodegroup.ami_type",
            "nodegroup.capacity_type",
        ]
    );
}
