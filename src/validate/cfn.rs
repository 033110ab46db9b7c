//! A CloudFormation template as far as `validate` needs it: that it parses (YAML with the
//! short-form intrinsic tags such as `!Ref`, or JSON), its parameters (and which have a
//! default, or allowed values), its resources with their types, and its outputs — so that a
//! spec passing a parameter the template does not declare, leaving out one without a
//! default, or referring to a subnet the template does not make is refused before any call.

use serde_yaml::Value as Yaml;
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct Template {
    /// Name → (has a default, allowed values).
    pub parameters: BTreeMap<String, Parameter>,
    /// Logical id → resource type (`AWS::EC2::Subnet`).
    pub resources: BTreeMap<String, String>,
    pub outputs: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Parameter {
    pub has_default: bool,
    pub allowed_values: Option<Vec<String>>,
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
        t.parameters.insert(
            name,
            Parameter {
                has_default: v.get("Default").is_some(),
                allowed_values: v
                    .get("AllowedValues")
                    .and_then(Yaml::as_sequence)
                    .map(|s| s.iter().filter_map(scalar).collect()),
            },
        );
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
        assert!(!t.parameters["B"].has_default);
        assert_eq!(
            t.parameters["B"].allowed_values.as_deref(),
            Some(&["one".to_string(), "two".to_string()][..])
        );
        assert_eq!(t.resources["S"], "AWS::EC2::Subnet");
        assert_eq!(t.outputs, vec!["O".to_string()]);
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
}
