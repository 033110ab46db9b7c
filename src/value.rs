//! Attribute values and references between resources.
//!
//! A spec attribute is plain JSON. A string of the form `${kind.name.path}` refers to an output
//! of another resource; a reference may also sit inside a longer string
//! (`"${cluster.main.name}-pods"`). Until the producer exists a reference stays in the value
//! verbatim: that is how the plan carries "known after apply" without a second value type, and
//! why the executor can resolve it later from the state.

use crate::addr::ResourceAddr;
use regex::Regex;
use serde_json::Value;
use std::sync::OnceLock;

/// The attribute holding a CloudFormation template: never scanned for references.
pub const TEMPLATE_BODY: &str = "template_body";

/// One `${...}` occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The whole `${...}` text.
    pub raw: String,
    pub addr: ResourceAddr,
    /// Output path below the resource, e.g. `["subnets", "PrivateSubnet01", "availability_zone"]`.
    pub path: Vec<String>,
}

impl Reference {
    pub fn path_string(&self) -> String {
        self.path.join(".")
    }
}

fn pattern() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    // The pattern is a literal; failing to compile it would be a bug caught by every test.
    // Only `${lowercase.…}` is ours: CloudFormation's `${AWS::Region}` or `${Resource.Arn}` in
    // stack parameters must pass through untouched.
    RE.get_or_init(|| {
        Regex::new(r"\$\{([a-z_][a-z0-9_]*\.[^}]*)\}").unwrap_or_else(|e| panic!("bad regex: {e}"))
    })
}

/// Parses the inside of `${...}`. Errors are user-facing messages.
pub fn parse_reference(raw: &str, inner: &str) -> Result<Reference, String> {
    let parts: Vec<&str> = inner.trim().split('.').collect();
    if parts.len() < 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(format!(
            "reference `{raw}` must have the form `${{kind.name.attribute}}`"
        ));
    }
    let kind = parts[0]
        .parse()
        .map_err(|e| format!("reference `{raw}`: {e}"))?;
    Ok(Reference {
        raw: raw.to_string(),
        addr: ResourceAddr::new(kind, parts[1]),
        path: parts[2..].iter().map(|s| s.to_string()).collect(),
    })
}

/// Every reference in a string, or the first malformed one.
pub fn references_in_str(s: &str) -> Vec<Result<Reference, String>> {
    pattern()
        .captures_iter(s)
        .map(|c| {
            let raw = c.get(0).map(|m| m.as_str()).unwrap_or_default();
            let inner = c.get(1).map(|m| m.as_str()).unwrap_or_default();
            parse_reference(raw, inner)
        })
        .collect()
}

/// Every reference anywhere in a value (malformed ones are reported by validation).
pub fn references(value: &Value) -> Vec<Reference> {
    let mut out = Vec::new();
    walk_strings(value, &mut |s| {
        out.extend(references_in_str(s).into_iter().flatten());
    });
    out
}

fn walk_strings(value: &Value, f: &mut dyn FnMut(&str)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|v| walk_strings(v, f)),
        // A template body is literal text, never interpolated.
        Value::Object(map) => map
            .iter()
            .filter(|(k, _)| k.as_str() != TEMPLATE_BODY)
            .for_each(|(_, v)| walk_strings(v, f)),
        _ => {}
    }
}

/// True when the value still holds an unresolved reference ("known after apply").
pub fn is_unknown(value: &Value) -> bool {
    let mut unknown = false;
    walk_strings(value, &mut |s| unknown |= pattern().is_match(s));
    unknown
}

/// Substitutes every reference the lookup can answer. A string that is exactly one reference
/// takes the referenced value's type (a list stays a list); inside a longer string the value is
/// spliced in as text. Unanswered references stay verbatim.
pub fn resolve(value: &Value, lookup: &dyn Fn(&Reference) -> Option<Value>) -> Value {
    match value {
        Value::String(s) => resolve_str(s, lookup),
        Value::Array(items) => Value::Array(items.iter().map(|v| resolve(v, lookup)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if k == TEMPLATE_BODY {
                        v.clone()
                    } else {
                        resolve(v, lookup)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn resolve_str(s: &str, lookup: &dyn Fn(&Reference) -> Option<Value>) -> Value {
    let re = pattern();
    if let Some(m) = re.find(s) {
        if m.start() == 0 && m.end() == s.len() {
            return match references_in_str(s).into_iter().next() {
                Some(Ok(r)) => lookup(&r).unwrap_or_else(|| Value::String(s.to_string())),
                _ => Value::String(s.to_string()),
            };
        }
    } else {
        return Value::String(s.to_string());
    }
    let out = re.replace_all(s, |caps: &regex::Captures<'_>| {
        let raw = caps.get(0).map(|m| m.as_str()).unwrap_or_default();
        let inner = caps.get(1).map(|m| m.as_str()).unwrap_or_default();
        match parse_reference(raw, inner).ok().and_then(|r| lookup(&r)) {
            Some(Value::String(v)) => v,
            Some(other) => other.to_string(),
            None => raw.to_string(),
        }
    });
    Value::String(out.into_owned())
}

/// Follows a dotted output path into a resource's outputs object.
pub fn lookup_path(outputs: &Value, path: &[String]) -> Option<Value> {
    let mut cur = outputs;
    for p in path {
        cur = match cur {
            Value::Object(m) => m.get(p)?,
            Value::Array(items) => items.get(p.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn whole_string_reference_keeps_type_and_partial_is_spliced() {
        let v = json!({"ids": "${subnet.a.ids}", "name": "${cluster.c.name}-ng", "n": 3});
        let lookup = |r: &Reference| match r.path_string().as_str() {
            "ids" => Some(json!(["s-1", "s-2"])),
            "name" => Some(json!("demo")),
            _ => None,
        };
        assert_eq!(
            resolve(&v, &lookup),
            json!({"ids": ["s-1", "s-2"], "name": "demo-ng", "n": 3})
        );
    }

    #[test]
    fn unanswered_reference_stays_unknown() {
        let v = json!(["${subnet.a.id}", "subnet-1"]);
        let r = resolve(&v, &|_| None);
        assert!(is_unknown(&r));
        assert_eq!(references(&r).len(), 1);
        assert_eq!(references(&r)[0].addr.to_string(), "subnet.a");
    }

    #[test]
    fn malformed_references_are_errors() {
        assert!(references_in_str("${subnet.a}")[0].is_err());
        assert!(references_in_str("${nope.a.b}")[0].is_err());
        assert!(references_in_str("${AWS::StackName}-VPC").is_empty());
        assert!(references_in_str("${subnet..b}")[0].is_err());
    }

    #[test]
    fn lookup_follows_paths() {
        let o = json!({"subnets": {"P1": {"availability_zone": "us-west-2a"}}, "l": [1, 2]});
        let p = |s: &str| s.split('.').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            lookup_path(&o, &p("subnets.P1.availability_zone")),
            Some(json!("us-west-2a"))
        );
        assert_eq!(lookup_path(&o, &p("l.1")), Some(json!(2)));
        assert_eq!(lookup_path(&o, &p("subnets.P2")), None);
    }
}
