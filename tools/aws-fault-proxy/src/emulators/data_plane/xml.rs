//! moto's EC2 Query answers as a small element tree: the data plane reads nested lists
//! (reservations, instances, their tags) that the flat helpers of `shared` cannot.
//! Attributes, namespaces and comments are dropped; text is unescaped.

/// One XML element: its local name, its child elements and its own text.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Element {
    pub name: String,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    /// Parses a whole document; `Err` says why it is not well-formed.
    pub fn parse(text: &str) -> Result<Element, String> {
        let mut stack: Vec<Element> = Vec::new();
        let mut root = None;
        for token in xmlparser::Tokenizer::from(text) {
            let token = token.map_err(|e| format!("not XML: {e}"))?;
            match token {
                xmlparser::Token::ElementStart { local, .. } => stack.push(Element {
                    name: local.as_str().to_string(),
                    ..Element::default()
                }),
                xmlparser::Token::ElementEnd { end, .. } => match end {
                    xmlparser::ElementEnd::Open => {}
                    xmlparser::ElementEnd::Close(..) | xmlparser::ElementEnd::Empty => {
                        let done = stack.pop().ok_or("unbalanced XML")?;
                        match stack.last_mut() {
                            Some(parent) => parent.children.push(done),
                            None => root = Some(done),
                        }
                    }
                },
                xmlparser::Token::Text { text } => {
                    if let Some(open) = stack.last_mut() {
                        open.text.push_str(&unescape(text.as_str()));
                    }
                }
                xmlparser::Token::Cdata { text, .. } => {
                    if let Some(open) = stack.last_mut() {
                        open.text.push_str(text.as_str());
                    }
                }
                _ => {}
            }
        }
        root.ok_or_else(|| "no root element".to_string())
    }

    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The element at a path of child names.
    pub fn at(&self, path: &[&str]) -> Option<&Element> {
        path.iter().try_fold(self, |e, name| e.child(name))
    }

    /// The trimmed text at a path of child names; `None` if absent or empty.
    pub fn text_at(&self, path: &[&str]) -> Option<&str> {
        self.at(path)
            .map(|e| e.text.trim())
            .filter(|t| !t.is_empty())
    }

    /// The `<item>` children of the child list `set` (EC2's list shape).
    pub fn items<'a>(&'a self, set: &str) -> impl Iterator<Item = &'a Element> + 'a {
        self.list(set, "item")
    }

    /// The `<member>` children of the child list `set` (the AWS Query list shape, as
    /// Auto Scaling answers).
    pub fn members<'a>(&'a self, set: &str) -> impl Iterator<Item = &'a Element> + 'a {
        self.list(set, "member")
    }

    fn list<'a>(
        &'a self,
        set: &str,
        entry: &'static str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.child(set)
            .into_iter()
            .flat_map(move |s| s.children.iter().filter(move |c| c.name == entry))
    }
}

/// Replaces XML's predefined entities and character references; anything unknown is kept.
fn unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';') else {
            break;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nested_lists_and_entities() {
        let doc = r#"<?xml version="1.0"?>
<R xmlns="http://ec2"><set><item><k>a&amp;b</k><v/></item><item><k>&#x41;&#66;</k></item></set>
<n>  7 </n></R>"#;
        let root = Element::parse(doc).unwrap();
        assert_eq!(root.name, "R");
        let items: Vec<_> = root.items("set").collect();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].text_at(&["k"]), Some("a&b"));
        assert_eq!(items[0].text_at(&["v"]), None, "empty text is absent");
        assert_eq!(items[1].text_at(&["k"]), Some("AB"));
        assert_eq!(root.text_at(&["n"]), Some("7"));
        assert_eq!(root.items("none").count(), 0);
        let doc = "<R><Groups><member><N>g</N></member><member><N>h</N></member></Groups></R>";
        let root = Element::parse(doc).unwrap();
        let names: Vec<_> = root
            .members("Groups")
            .filter_map(|m| m.text_at(&["N"]))
            .collect();
        assert_eq!(names, ["g", "h"]);
        assert_eq!(root.items("Groups").count(), 0);
        assert_eq!(unescape("x &bogus; y"), "x &bogus; y");
        assert!(Element::parse("<a><b></a>").is_err());
        assert!(Element::parse("").is_err());
    }
}
