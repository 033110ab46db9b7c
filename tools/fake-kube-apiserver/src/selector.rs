//! Label and field selectors, parsed with the same syntax the real server accepts.

use serde_json::Value;

#[derive(Debug, PartialEq)]
enum Op {
    Eq,
    NotEq,
    In,
    NotIn,
    Exists,
    NotExists,
}

#[derive(Debug)]
struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

/// A parsed `labelSelector` + `fieldSelector` pair; an empty one matches everything.
#[derive(Debug, Default)]
pub struct Selector {
    labels: Vec<Requirement>,
    fields: Vec<Requirement>,
}

/// Splits on commas that are not inside `in (...)` value sets.
fn split_terms(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0i32, 0usize, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 316
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn parse_label_term(t: &str) -> Result<Requirement, String> {
    let err = |why: &str| format!("unable to parse requirement: {why}: {t:?}");
    let req = if let Some(key) = t.strip_prefix('!') {
        Requirement {
            key: key.trim().into(),
            op: Op::NotExists,
            values: vec![],
        }
    } else if let Some(open) = t.find('(') {
        let close = t
            .rfind(')')
            .filter(|c| *c > open && t[c + 1..].trim().is_empty())
            .ok_or_else(|| err("expected ')'"))?;
        let head: Vec<&str> = t[..open].split_whitespace().collect();
        let op = match head.get(1) {
            Some(&"in") => Op::In,
            Some(&"notin") => Op::NotIn,
            _ => return Err(err("expected 'in' or 'notin'")),
        };
        if head.len() != 2 {
            return Err(err("expected key followed by set operator"));
        }
        let values = t[open + 1..close]
            .split(',')
            .map(|v| v.trim().to_string())
            .collect();
        Requirement {
            key: head[0].into(),
            op,
            values,
        }
    } else if let Some((k, v)) = t.split_once("!=") {
        Requirement {
            key: k.trim().into(),
            op: Op::NotEq,
            values: vec![v.trim().into()],
        }
    } else if let Some((k, v)) = t.split_once('=') {
        // `==` and `=` are synonyms.
        let v = v.strip_prefix('=').unwrap_or(v);
        Requirement {
            key: k.trim().into(),
            op: Op::Eq,
            values: vec![v.trim().into()],
        }
    } else {
        Requirement {
            key: t.into(),
            op: Op::Exists,
            values: vec![],
        }
    };
    if !valid_key(&req.key) {
        return Err(err("invalid label key"));
    }
    if let Some(v) = req.values.iter().find(|v| !valid_value(v)) {
        return Err(format!(
            "unable to parse requirement: invalid label value: {v:?}"
        ));
    }
    Ok(req)
}

impl Selector {
    /// `allowed_fields` lists the resource-specific field labels (the real server
    /// rejects anything else with `field label not supported`).
    pub fn parse(labels: &str, fields: &str, allowed_fields: &[&str]) -> Result<Self, String> {
        let labels = split_terms(labels)
            .into_iter()
            .map(parse_label_term)
            .collect::<Result<_, _>>()?;
        let mut out = Vec::new();
        for t in split_terms(fields) {
            let (key, op, val) = if let Some((k, v)) = t.split_once("!=") {
                (k, Op::NotEq, v)
            } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                (k, Op::Eq, v)
            } else {
                return Err(format!("invalid selector: '{t}'; can't understand '{t}'"));
            };
            let key = key.trim();
            if !(key == "metadata.name"
                || key == "metadata.namespace"
                || allowed_fields.contains(&key))
            {
                return Err(format!("field label not supported: {key}"));
            }
            out.push(Requirement {
                key: key.into(),
                op,
                values: vec![val.trim().into()],
            });
        }
        Ok(Selector {
            labels,
            fields: out,
        })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        let label_ok = self.labels.iter().all(|r| {
            let got = labels.and_then(|l| l.get(&r.key)).and_then(Value::as_str);
            let in_set = got.is_some_and(|g| r.values.iter().any(|v| v == g));
            match r.op {
                Op::Eq | Op::In => in_set,
                Op::NotEq | Op::NotIn => !in_set,
                Op::Exists => got.is_some(),
                Op::NotExists => got.is_none(),
            }
        });
        label_ok
            && self.fields.iter().all(|r| {
                let got = field_value(obj, &r.key);
                (got == r.values[0]) == (r.op == Op::Eq)
            })
    }
}

/// Field values compare as strings; a missing field is "" (so `spec.nodeName=`
/// selects unscheduled pods) except Go booleans, whose zero value prints "false".
fn field_value(obj: &Value, path: &str) -> String {
    let pointer = format!("/{}", path.replace('.', "/"));
    match obj.pointer(&pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ if path == "spec.hostNetwork" || path == "spec.unschedulable" => "false".into(),
        _ => String::new(),
    }
}
