//! A CloudFormation template as far as `validate` needs it: that it parses (YAML with the
//! short-form intrinsic tags such as `!Ref`, or JSON), its parameters (their types, defaults
//! and constraints), its resources with their types, and its outputs — so that a spec passing
//! a parameter the template does not declare or would refuse, leaving out one without a
//! default, or referring to a subnet the template does not make is refused before any call.
//!
//! The parameter rules are those of CloudFormation's "Parameters section syntax" and
//! "CloudFormation-supplied parameter types" pages; `constraints.rs` applies them to values.

use fancy_regex::Regex;
use serde_yaml::Value as Yaml;
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct Template {
    pub parameters: BTreeMap<String, Parameter>,
    /// Logical id → resource type (`AWS::EC2::Subnet`).
    pub resources: BTreeMap<String, String>,
    pub outputs: Vec<String>,
    /// What CloudFormation refuses in a parameter's declaration (a missing or unknown
    /// `Type`): (parameter, what is wrong, said after its name).
    pub problems: Vec<(String, String)>,
    /// What eksnet cannot check in a declaration (a pattern its regex engine does not take,
    /// a bound that is not a number): (parameter, what), said after its name.
    pub notes: Vec<(String, String)>,
}

/// One entry of the `Parameters` section.
#[derive(Debug, Default)]
pub struct Parameter {
    /// `None` when the `Type` is missing or not one CloudFormation knows (in `problems`).
    pub ty: Option<ParamType>,
    /// The `Type` as written.
    pub type_name: String,
    pub has_default: bool,
    /// The `Default`, when it is a single value.
    pub default: Option<String>,
    pub allowed_values: Option<Vec<String>>,
    pub allowed_pattern: Option<Pattern>,
    /// What CloudFormation shows instead of its own words when a constraint is broken.
    pub constraint_description: Option<String>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub min_value: Option<f64>,
    pub max_value: Option<f64>,
}

/// A parameter type CloudFormation supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    String,
    /// An integer or a float.
    Number,
    /// `List<Number>`: numbers separated by commas.
    NumberList,
    /// `CommaDelimitedList` (or `List<String>`): strings separated by commas, each trimmed.
    StringList,
    /// An AWS-specific type (`AWS::EC2::VPC::Id`), or a `List<…>` of one.
    Aws {
        kind: AwsType,
        list: bool,
    },
    /// `AWS::SSM::Parameter::Name`: the name of a Parameter Store key.
    SsmName,
    /// `AWS::SSM::Parameter::Value<…>`: the value given is a Parameter Store key;
    /// CloudFormation validates the value it holds, which only AWS can read.
    SsmValue,
}

/// The AWS-specific parameter types: identifiers of things that exist in the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsType {
    AvailabilityZoneName,
    ImageId,
    InstanceId,
    KeyPairName,
    SecurityGroupName,
    SecurityGroupId,
    SubnetId,
    VolumeId,
    VpcId,
    HostedZoneId,
}

impl AwsType {
    const ALL: [(&'static str, AwsType); 10] = [
        (
            "AWS::EC2::AvailabilityZone::Name",
            AwsType::AvailabilityZoneName,
        ),
        ("AWS::EC2::Image::Id", AwsType::ImageId),
        ("AWS::EC2::Instance::Id", AwsType::InstanceId),
        ("AWS::EC2::KeyPair::KeyName", AwsType::KeyPairName),
        (
            "AWS::EC2::SecurityGroup::GroupName",
            AwsType::SecurityGroupName,
        ),
        ("AWS::EC2::SecurityGroup::Id", AwsType::SecurityGroupId),
        ("AWS::EC2::Subnet::Id", AwsType::SubnetId),
        ("AWS::EC2::Volume::Id", AwsType::VolumeId),
        ("AWS::EC2::VPC::Id", AwsType::VpcId),
        ("AWS::Route53::HostedZone::Id", AwsType::HostedZoneId),
    ];

    fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, kind)| *kind)
    }
}

/// `List<INNER>` → `INNER`.
fn list_of(t: &str) -> Option<&str> {
    t.strip_prefix("List<")?.strip_suffix('>')
}

impl ParamType {
    /// A `Type` as a template writes it. The documented types, and those AWS's own template
    /// linter (cfn-lint) also takes (`List<String>`, `AWS::SSM::Parameter::Value<Number>`),
    /// so that no template CloudFormation runs is refused here.
    pub fn parse(t: &str) -> Option<Self> {
        Some(match t {
            "String" => ParamType::String,
            "Number" => ParamType::Number,
            "List<Number>" => ParamType::NumberList,
            "CommaDelimitedList" | "List<String>" => ParamType::StringList,
            "AWS::SSM::Parameter::Name" => ParamType::SsmName,
            _ => {
                if let Some(inner) = t
                    .strip_prefix("AWS::SSM::Parameter::Value<")
                    .and_then(|r| r.strip_suffix('>'))
                {
                    // The value's type: a plain type or an AWS-specific one, or a list of
                    // one; never another SSM type.
                    let plain = matches!(
                        inner,
                        "String"
                            | "Number"
                            | "CommaDelimitedList"
                            | "List<String>"
                            | "List<Number>"
                            | "AWS::SSM::Parameter::Name"
                    );
                    let aws = AwsType::parse(list_of(inner).unwrap_or(inner)).is_some();
                    return (plain || aws).then_some(ParamType::SsmValue);
                }
                match list_of(t) {
                    // Every AWS-specific type has a list form but the key pair's.
                    Some(inner) => ParamType::Aws {
                        kind: AwsType::parse(inner).filter(|k| *k != AwsType::KeyPairName)?,
                        list: true,
                    },
                    None => ParamType::Aws {
                        kind: AwsType::parse(t)?,
                        list: false,
                    },
                }
            }
        })
    }

    /// A value of the type is a comma-separated list.
    pub fn is_list(self) -> bool {
        matches!(
            self,
            ParamType::NumberList | ParamType::StringList | ParamType::Aws { list: true, .. }
        )
    }
}

/// A parameter's `AllowedPattern`.
#[derive(Debug)]
pub struct Pattern {
    /// As the template writes it.
    pub source: String,
    /// Anchored at both ends, as CloudFormation matches the whole value; `None` when
    /// eksnet's engine does not take it (CloudFormation's is Java's).
    regex: Option<Regex>,
}

impl Pattern {
    /// The pattern, and why eksnet's engine does not take it when it does not.
    fn new(source: String) -> (Self, Option<String>) {
        match Regex::new(&format!("^(?:{source})$")) {
            Ok(re) => (
                Pattern {
                    source,
                    regex: Some(re),
                },
                None,
            ),
            Err(e) => (
                Pattern {
                    source,
                    regex: None,
                },
                Some(e.to_string()),
            ),
        }
    }

    /// Whether the whole of `s` matches; `None` when that cannot be told here (the pattern
    /// did not compile, or the engine gave up on it).
    pub fn matches(&self, s: &str) -> Option<bool> {
        self.regex.as_ref()?.is_match(s).ok()
    }
}

/// A number as a `Number` parameter takes it: an integer or a decimal fraction, with an
/// optional sign and exponent (`42`, `-1.5`, `.5`, `2e3`); surrounding spaces are ignored.
pub fn number(s: &str) -> Option<f64> {
    let s = s.trim();
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match body.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (body, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |d: &str| d.chars().all(|c| c.is_ascii_digit());
    let ok = (!int.is_empty() || !frac.is_empty())
        && digits(int)
        && digits(frac)
        && exponent.is_none_or(|e| {
            let e = e.strip_prefix(['+', '-']).unwrap_or(e);
            !e.is_empty() && digits(e)
        });
    if !ok {
        return None;
    }
    s.parse().ok().filter(|n: &f64| n.is_finite())
}

/// The elements of a list parameter's value: split at commas, each trimmed (CloudFormation
/// trims a `CommaDelimitedList`'s members, and its own examples put spaces after commas).
pub fn elements(v: &str) -> Vec<&str> {
    v.split(',').map(str::trim).collect()
}

fn scalar(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn section<'a>(doc: &'a Yaml, name: &str) -> Option<&'a serde_yaml::Mapping> {
    doc.get(name).and_then(Yaml::as_mapping)
}

/// Parses a template body. The error says what is wrong and where (line and column).
pub fn parse(text: &str) -> Result<Template, String> {
    // serde_yaml keeps `!Ref X`, `!Sub ...`, `!GetAtt ...` as tagged values rather than
    // refusing them, and reads JSON as the YAML subset it is.
    let doc: Yaml = serde_yaml::from_str(text).map_err(|e| match e.location() {
        Some(l) => format!(
            "line {}, column {}: {}",
            l.line(),
            l.column(),
            e.to_string().split(" at line").next().unwrap_or_default()
        ),
        None => e.to_string(),
    })?;
    if !doc.is_mapping() {
        return Err("a template is a mapping with a `Resources` section".into());
    }
    let mut t = Template::default();
    for (k, v) in section(&doc, "Parameters").into_iter().flatten() {
        let Some(name) = scalar(k) else { continue };
        let p = parameter(&name, v, &mut t);
        t.parameters.insert(name, p);
    }
    let Some(resources) = section(&doc, "Resources") else {
        return Err("the template has no `Resources` section (CloudFormation requires one)".into());
    };
    for (k, v) in resources {
        let Some(id) = scalar(k) else { continue };
        let ty = v.get("Type").and_then(scalar).unwrap_or_default();
        t.resources.insert(id, ty);
    }
    t.outputs = section(&doc, "Outputs")
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| scalar(k))
        .collect();
    Ok(t)
}

/// One parameter's declaration; what CloudFormation refuses in it goes to `t.problems`, what
/// eksnet cannot check to `t.notes`.
fn parameter(name: &str, v: &Yaml, t: &mut Template) -> Parameter {
    let text = |key: &str| v.get(key).and_then(scalar);
    let type_name = text("Type").unwrap_or_default();
    let ty = ParamType::parse(&type_name);
    if ty.is_none() {
        let what = if v.get("Type").is_none() {
            "has no `Type`, which CloudFormation requires".to_string()
        } else {
            format!("has `Type: {type_name}`, which is not a CloudFormation parameter type (`String`, `Number`, `List<Number>`, `CommaDelimitedList`, an AWS-specific type such as `AWS::EC2::VPC::Id` or `List<AWS::EC2::Subnet::Id>`, or `AWS::SSM::Parameter::Name` or `AWS::SSM::Parameter::Value<…>`)")
        };
        t.problems.push((name.to_string(), what));
    }
    let mut bound = |key: &str, what: &str, ok: &dyn Fn(&str) -> bool| -> Option<String> {
        let s = text(key)?;
        if ok(&s) {
            return Some(s);
        }
        t.notes.push((
            name.to_string(),
            format!("has `{key}: {s}`, which is not {what}: eksnet does not check it"),
        ));
        None
    };
    let whole = |s: &str| s.trim().parse::<u64>().is_ok();
    let numeric = |s: &str| number(s).is_some();
    let min_length = bound("MinLength", "a whole number", &whole);
    let max_length = bound("MaxLength", "a whole number", &whole);
    let min_value = bound("MinValue", "a number", &numeric);
    let max_value = bound("MaxValue", "a number", &numeric);
    let allowed_pattern = text("AllowedPattern").map(|source| {
        let (pattern, error) = Pattern::new(source);
        if let Some(e) = error {
            t.notes.push((
                name.to_string(),
                format!(
                    "has an `AllowedPattern` eksnet's regular expressions do not take (`{}`: {}): values are not checked against it here, CloudFormation will check them",
                    pattern.source,
                    e.lines().last().unwrap_or_default().trim()
                ),
            ));
        }
        pattern
    });
    Parameter {
        ty,
        type_name,
        has_default: v.get("Default").is_some(),
        default: text("Default"),
        allowed_values: v
            .get("AllowedValues")
            .and_then(Yaml::as_sequence)
            .map(|s| s.iter().filter_map(scalar).collect()),
        allowed_pattern,
        constraint_description: text("ConstraintDescription"),
        min_length: min_length.and_then(|s| s.trim().parse().ok()),
        max_length: max_length.and_then(|s| s.trim().parse().ok()),
        min_value: min_value.as_deref().and_then(number),
        max_value: max_value.as_deref().and_then(number),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_form_tags_parameters_resources_outputs() {
        let t = parse(
            "Parameters:\n  A: {Type: String, Default: x}\n  B: {Type: String, AllowedValues: [one, two]}\nResources:\n  S:\n    Type: AWS::EC2::Subnet\n    Properties: {VpcId: !Ref V, CidrBlock: !Select [0, !GetAZs '']}\nOutputs:\n  O: {Value: !GetAtt S.Arn}\n",
        )
        .expect("parses");
        assert!(t.parameters["A"].has_default);
        assert_eq!(t.parameters["A"].default.as_deref(), Some("x"));
        assert!(!t.parameters["B"].has_default);
        assert_eq!(
            t.parameters["B"].allowed_values.as_deref(),
            Some(&["one".to_string(), "two".to_string()][..])
        );
        assert_eq!(t.resources["S"], "AWS::EC2::Subnet");
        assert_eq!(t.outputs, vec!["O".to_string()]);
        assert!(t.problems.is_empty() && t.notes.is_empty());
        let json = parse(r#"{"Resources": {"V": {"Type": "AWS::EC2::VPC"}}}"#).expect("JSON");
        assert_eq!(json.resources["V"], "AWS::EC2::VPC");
    }

    #[test]
    fn errors_say_where() {
        let e = parse("Resources:\n  S: [unclosed\n").expect_err("bad YAML");
        assert!(e.starts_with("line "), "{e}");
        assert!(parse("Parameters: {}\n")
            .expect_err("no resources")
            .contains("Resources"));
        assert!(parse("- a list\n").is_err());
    }

    #[test]
    fn every_documented_type_is_known() {
        use AwsType::*;
        use ParamType::*;
        let cases = [
            ("String", String),
            ("Number", Number),
            ("List<Number>", NumberList),
            ("CommaDelimitedList", StringList),
            ("List<String>", StringList),
            ("AWS::SSM::Parameter::Name", SsmName),
            ("AWS::SSM::Parameter::Value<String>", SsmValue),
            ("AWS::SSM::Parameter::Value<List<String>>", SsmValue),
            ("AWS::SSM::Parameter::Value<CommaDelimitedList>", SsmValue),
            ("AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>", SsmValue),
            (
                "AWS::SSM::Parameter::Value<List<AWS::EC2::KeyPair::KeyName>>",
                SsmValue,
            ),
            (
                "AWS::EC2::VPC::Id",
                Aws {
                    kind: VpcId,
                    list: false,
                },
            ),
            (
                "List<AWS::EC2::Subnet::Id>",
                Aws {
                    kind: SubnetId,
                    list: true,
                },
            ),
            (
                "AWS::EC2::KeyPair::KeyName",
                Aws {
                    kind: KeyPairName,
                    list: false,
                },
            ),
            (
                "List<AWS::Route53::HostedZone::Id>",
                Aws {
                    kind: HostedZoneId,
                    list: true,
                },
            ),
        ];
        for (name, ty) in cases {
            assert_eq!(ParamType::parse(name), Some(ty), "{name}");
        }
        for (name, _) in AwsType::ALL {
            assert!(ParamType::parse(name).is_some(), "{name}");
            assert!(
                ParamType::parse(&format!("AWS::SSM::Parameter::Value<{name}>")).is_some(),
                "{name}"
            );
        }
        for bad in [
            "string",
            "Integer",
            "List<Strings>",
            "AWS::EC2::VPC::ID",
            "AWS::EC2::AvailabiltyZone::Name",
            // Documented as unsupported: a list of SSM types; the key pair has no list form.
            "List<AWS::SSM::Parameter::Value<String>>",
            "List<AWS::EC2::KeyPair::KeyName>",
            "AWS::SSM::Parameter::Value<Strings>",
            "AWS::SSM::Parameter::Value<AWS::SSM::Parameter::Value<String>>",
            "",
        ] {
            assert_eq!(ParamType::parse(bad), None, "{bad}");
        }
        assert!(ParamType::parse("List<AWS::EC2::VPC::Id>").is_some_and(ParamType::is_list));
        assert!(ParamType::parse("CommaDelimitedList").is_some_and(ParamType::is_list));
        assert!(!ParamType::parse("AWS::EC2::VPC::Id").is_some_and(ParamType::is_list));
    }

    #[test]
    fn a_missing_or_unknown_type_is_a_problem() {
        let t = parse(
            "Parameters:\n  A: {Type: Strng}\n  B: {Default: x}\n  C: {Type: Number}\nResources: {}\n",
        )
        .expect("parses");
        assert_eq!(t.problems.len(), 2, "{:?}", t.problems);
        assert_eq!(t.problems[0].0, "A");
        assert!(
            t.problems[0].1.contains("`Type: Strng`"),
            "{:?}",
            t.problems
        );
        assert_eq!(t.problems[1].0, "B");
        assert!(
            t.problems[1].1.contains("has no `Type`"),
            "{:?}",
            t.problems
        );
        assert_eq!(t.parameters["A"].ty, None);
        assert_eq!(t.parameters["C"].ty, Some(ParamType::Number));
    }

    #[test]
    fn constraints_are_read_in_yaml_and_json() {
        let yaml = "Parameters:
  Port: {Type: Number, Default: 3306, MinValue: 1150, MaxValue: '65535'}
  Pwd:
    Type: String
    MinLength: 1
    MaxLength: 41
    AllowedPattern: ^[a-zA-Z0-9]*$
    ConstraintDescription: letters and digits only
Resources: {}
";
        let json = r#"{"Parameters": {
  "Port": {"Type": "Number", "Default": "3306", "MinValue": "1150", "MaxValue": 65535},
  "Pwd": {"Type": "String", "MinLength": "1", "MaxLength": "41",
          "AllowedPattern": "^[a-zA-Z0-9]*$", "ConstraintDescription": "letters and digits only"}},
  "Resources": {}}"#;
        for text in [yaml, json] {
            let t = parse(text).expect("parses");
            assert!(t.problems.is_empty() && t.notes.is_empty(), "{t:?}");
            let port = &t.parameters["Port"];
            assert_eq!(port.default.as_deref(), Some("3306"));
            assert_eq!(
                (port.min_value, port.max_value),
                (Some(1150.0), Some(65535.0))
            );
            let pwd = &t.parameters["Pwd"];
            assert_eq!((pwd.min_length, pwd.max_length), (Some(1), Some(41)));
            assert_eq!(
                pwd.constraint_description.as_deref(),
                Some("letters and digits only")
            );
            let pattern = pwd.allowed_pattern.as_ref().expect("a pattern");
            assert_eq!(pattern.source, "^[a-zA-Z0-9]*$");
            assert_eq!(pattern.matches("abc123"), Some(true));
            assert_eq!(pattern.matches("abc 123"), Some(false));
        }
    }

    #[test]
    fn a_pattern_matches_the_whole_value() {
        let (p, e) = Pattern::new("[a-z]+".into());
        assert!(e.is_none());
        assert_eq!(p.matches("abc"), Some(true));
        // Unanchored in the template, anchored as CloudFormation matches it.
        assert_eq!(p.matches("abc1"), Some(false));
        assert_eq!(p.matches("1abc"), Some(false));
        // An alternation is anchored as a whole.
        let (p, _) = Pattern::new("a|b".into());
        assert_eq!(p.matches("ab"), Some(false));
        assert_eq!(p.matches("b"), Some(true));
        // Lookaround and backreferences, which Java's regular expressions have.
        let (p, e) = Pattern::new(r"(?!default)[a-z]+".into());
        assert!(e.is_none(), "{e:?}");
        assert_eq!(p.matches("default"), Some(false));
        assert_eq!(p.matches("prod"), Some(true));
        let (p, _) = Pattern::new(r"(\w)\1".into());
        assert_eq!(p.matches("aa"), Some(true));
        assert_eq!(p.matches("ab"), Some(false));
    }

    #[test]
    fn what_cannot_be_checked_is_a_note_not_a_problem() {
        let t = parse(
            "Parameters:\n  A: {Type: String, AllowedPattern: '[a-z'}\n  B: {Type: String, MinLength: one}\n  C: {Type: Number, MaxValue: lots}\nResources: {}\n",
        )
        .expect("parses");
        assert!(t.problems.is_empty(), "{:?}", t.problems);
        let notes: Vec<&str> = t.notes.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(notes, ["A", "B", "C"], "{:?}", t.notes);
        assert!(t.notes[0].1.contains("`[a-z`"), "{:?}", t.notes);
        let a = t.parameters["A"].allowed_pattern.as_ref().expect("kept");
        assert_eq!(a.matches("x"), None);
        assert_eq!(t.parameters["B"].min_length, None);
        assert_eq!(t.parameters["C"].max_value, None);
        // Java's quoting, which eksnet's engine does not have.
        let (p, e) = Pattern::new(r"v\Q.\E\d+".into());
        assert!(e.is_some());
        assert_eq!(p.matches("v.1"), None);
    }

    #[test]
    fn numbers_are_integers_or_floats() {
        for (s, n) in [
            ("42", 42.0),
            ("-1.5", -1.5),
            ("+7", 7.0),
            (".5", 0.5),
            ("5.", 5.0),
            ("2e3", 2000.0),
            ("1.5E-1", 0.15),
            (" 8 ", 8.0),
        ] {
            assert_eq!(number(s), Some(n), "{s}");
        }
        for s in [
            "", "ten", "1,000", "0x10", "1e", "--1", "1.2.3", ".", "NaN", "inf", "1_000",
        ] {
            assert_eq!(number(s), None, "{s}");
        }
        assert_eq!(elements("a, b ,c"), ["a", "b", "c"]);
        assert_eq!(elements("a,,b"), ["a", "", "b"]);
    }
}
