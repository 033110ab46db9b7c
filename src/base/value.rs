//! Attribute values and references between resources.
//!
//! A spec attribute is plain JSON. A string of the form `${kind.name.path}` refers to an output
//! of another resource; a reference may also sit inside a longer string
//! (`"${cluster.main.name}-pods"`). Until the producer exists a reference stays in the value
//! verbatim: that is how the plan carries "known after apply" without a second value type, and
//! why the executor can resolve it later from the state.

use crate::base::addr::ResourceAddr;
use serde_json::Value;

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

/// Where one `${...}` sits in a string: the whole text and the part between the braces.
struct Span<'a> {
    start: usize,
    end: usize,
    raw: &'a str,
    inner: &'a str,
}

/// Every `${kind.…}` in `s`, left to right, not overlapping. Only a `${` followed by a
/// lowercase word and a dot is ours: CloudFormation's `${AWS::Region}` or `${Resource.Arn}`
/// in stack parameters must pass through untouched. The reference runs to the first `}`.
fn spans(s: &str) -> Vec<Span<'_>> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(pos) = s[from..].find("${").map(|p| p + from) {
        let body = pos + 2;
        let word = bytes[body..]
            .iter()
            .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || **b == b'_')
            .count();
        let starts_ok = bytes
            .get(body)
            .is_some_and(|b| b.is_ascii_lowercase() || *b == b'_');
        let dot = body + word;
        let close = (starts_ok && bytes.get(dot) == Some(&b'.'))
            .then(|| s[dot..].find('}').map(|c| c + dot))
            .flatten();
        match close {
            Some(close) => {
                out.push(Span {
                    start: pos,
                    end: close + 1,
                    raw: &s[pos..=close],
                    inner: &s[body..close],
                });
                from = close + 1;
            }
            // `$` and `{` are single bytes, so the next candidate starts one byte on.
            None => from = pos + 1,
        }
    }
    out
}

/// The first `${kind.…` that never closes, from its `${` to the end of the string: almost
/// certainly a reference with its `}` missing, which would otherwise reach AWS as literal text.
pub fn unterminated_reference(s: &str) -> Option<&str> {
    let after_last = spans(s).last().map_or(0, |sp| sp.end);
    let rest = &s[after_last..];
    let pos = rest.find("${")?;
    let body = &rest[pos + 2..];
    let word = body
        .bytes()
        .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
        .count();
    let starts_ok = body
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    (starts_ok && body[word..].starts_with('.')).then_some(&rest[pos..])
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
    spans(s)
        .into_iter()
        .map(|sp| parse_reference(sp.raw, sp.inner))
        .collect()
}

/// The reference when the whole string (spaces aside) is exactly one, as in
/// `"${subnet.pod_a.id}"`.
pub fn whole_reference(s: &str) -> Option<Reference> {
    match references_in_str(s).as_slice() {
        [Ok(r)] if r.raw == s.trim() => Some(r.clone()),
        _ => None,
    }
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
    walk_strings(value, &mut |s| unknown |= !spans(s).is_empty());
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
    let found = spans(s);
    // A string that is exactly one reference takes the referenced value itself.
    if let [only] = found.as_slice() {
        if only.start == 0 && only.end == s.len() {
            return parse_reference(only.raw, only.inner)
                .ok()
                .and_then(|r| lookup(&r))
                .unwrap_or_else(|| Value::String(s.to_string()));
        }
    }
    let mut out = String::with_capacity(s.len());
    let mut at = 0;
    for sp in found {
        out.push_str(&s[at..sp.start]);
        match parse_reference(sp.raw, sp.inner)
            .ok()
            .and_then(|r| lookup(&r))
        {
            Some(Value::String(v)) => out.push_str(&v),
            Some(other) => out.push_str(&other.to_string()),
            None => out.push_str(sp.raw),
        }
        at = sp.end;
    }
    out.push_str(&s[at..]);
    Value::String(out)
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

/// Resolves references against the outputs known so far; the rest stay `${...}`.
pub fn resolve_known(
    attrs: &Value,
    known: &std::collections::HashMap<ResourceAddr, Value>,
) -> Value {
    resolve(attrs, &|r| {
        known.get(&r.addr).and_then(|o| lookup_path(o, &r.path))
    })
}

/// Short digest for display and change detection of large text values.
pub fn digest(text: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(text.as_bytes());
    d.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// A regular expression that matches exactly the strings `is_ref` is true for: a `${`, a
/// lowercase word and a dot somewhere in the text (the spec's JSON Schema lets such a value
/// stand in for one of a field's fixed values, as `validate` does).
pub const REFERENCE_PATTERN: &str = r"\$\{[a-z_][a-z0-9_]*\.";

/// Whether a string holds a reference (or the start of one): such a value is checked once it
/// is known, not by its shape.
pub fn is_ref(s: &str) -> bool {
    !references_in_str(s).is_empty() || unterminated_reference(s).is_some()
}

/// Every string in attributes with its dotted key path below `prefix` (a template body
/// left out).
pub fn keyed_strings<'a>(prefix: &str, v: &'a Value, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::String(s) => out.push((prefix.to_string(), s)),
        Value::Array(items) => {
            for (i, it) in items.iter().enumerate() {
                keyed_strings(&format!("{prefix}.{i}"), it, out);
            }
        }
        Value::Object(m) => {
            for (k, it) in m.iter().filter(|(k, _)| k.as_str() != TEMPLATE_BODY) {
                keyed_strings(&format!("{prefix}.{k}"), it, out);
            }
        }
        _ => {}
    }
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
    fn scanner_finds_what_the_syntax_allows_and_nothing_else() {
        fn raws(s: &str) -> Vec<&str> {
            spans(s).iter().map(|sp| sp.raw).collect()
        }
        // Not ours: CloudFormation's own substitutions, an upper-case start, no dot, no close.
        assert!(raws("${AWS::Region} ${Res.Arn} ${Abc.d.e} ${abc} ${a.b.c").is_empty());
        // A failed `${` does not hide a reference right after it.
        assert_eq!(raws("${${a.b.c}"), ["${a.b.c}"]);
        assert_eq!(raws("x${a_1.b.c}y${d.e.f}"), ["${a_1.b.c}", "${d.e.f}"]);
        // The reference runs to the first `}` (what was there before is kept verbatim).
        assert_eq!(raws("${a.b${c}}"), ["${a.b${c}"]);
        assert_eq!(raws("é${a.b.c}é"), ["${a.b.c}"]);
        let lookup = |r: &Reference| (r.addr.to_string() == "cluster.c").then(|| json!(7));
        assert_eq!(
            resolve(&json!("é${cluster.c.n}-${subnet.s.id}!"), &lookup),
            json!("é7-${subnet.s.id}!")
        );
        assert_eq!(resolve(&json!("${cluster.c.n}"), &lookup), json!(7));
    }

    #[test]
    fn the_scanner_copes_with_any_text() {
        // Cut-off and multi-byte input must never panic, whatever it finds.
        for s in [
            "",
            "$",
            "${",
            "${a",
            "${a.",
            "${a.}",
            "}${",
            "é${é.b}",
            "${é",
            "${a.bé",
            "€${a.b.c}€",
            "${a.b.c}}",
            "$${a.b.c}",
            "${_.x",
            "${a_.é}",
        ] {
            let _ = spans(s);
            let _ = unterminated_reference(s);
            let _ = resolve(&Value::from(s), &|_| Some(Value::from("v")));
        }
        assert_eq!(
            resolve(&json!("€${subnet.b.c}€"), &|_| Some(json!("x"))),
            json!("€x€")
        );
    }

    #[test]
    fn a_reference_without_its_brace_is_found() {
        assert_eq!(
            unterminated_reference("${iam_role.a.name"),
            Some("${iam_role.a.name")
        );
        assert_eq!(unterminated_reference("${a.b.c}-${d.e"), Some("${d.e"));
        assert_eq!(unterminated_reference("${a.b.c}"), None);
        assert_eq!(unterminated_reference("${AWS::Region"), None);
        assert_eq!(unterminated_reference("cost ${5"), None);
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
