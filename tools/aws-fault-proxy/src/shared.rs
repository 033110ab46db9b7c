//! Small helpers every layer may use: the bottom of the module graph, naming nothing else
//! of this crate.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::Value;

/// A poisoned lock only means another handler panicked mid-update; the data
/// is still the best we have, and refusing all later requests would turn one
/// bug into a dead proxy.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The end of a window of `ms` milliseconds starting now.
pub fn deadline(ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(ms)
}

/// Wall-clock seconds with millisecond precision: EKS sends timestamps as epoch-seconds
/// JSON numbers.
pub fn epoch_now() -> f64 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    ms as f64 / 1000.0
}

/// Form-encodes a value for a Query request the proxy makes itself.
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Sets `body[root].status` in an EKS JSON answer. `None` if the body is not
/// the expected shape, in which case the caller passes it on unchanged.
pub fn set_json_status(body: &[u8], root: &str, status: &str) -> Option<Bytes> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let obj = v.get_mut(root)?.as_object_mut()?;
    obj.insert("status".into(), Value::String(status.into()));
    serde_json::to_vec(&v).ok().map(Bytes::from)
}

/// `body[root][field]` as a string.
pub fn json_str(body: &[u8], root: Option<&str>, field: &str) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let obj = match root {
        Some(r) => v.get(r)?,
        None => &v,
    };
    obj.get(field)?.as_str().map(str::to_string)
}

/// Text of the first `<tag>…</tag>` element. moto's Query answers are flat
/// enough for this; a full XML parser would be a heavy dependency for it.
pub fn xml_first(body: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = body.find(&open)? + open.len();
    let len = body[start..].find(&close)?;
    Some(body[start..start + len].to_string())
}

/// Replaces the text of the first `<tag>…</tag>` in `body`.
pub fn xml_replace_first(body: &str, tag: &str, text: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = body.find(&open)? + open.len();
    let len = body[start..].find(&close)?;
    Some(format!(
        "{}{}{}",
        &body[..start],
        text,
        &body[start + len..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_forms() {
        assert_eq!(form_encode("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn json_status_rewrite() {
        let body = br#"{"cluster": {"name": "c", "status": "ACTIVE"}}"#;
        let out = set_json_status(body, "cluster", "CREATING").unwrap();
        assert_eq!(
            json_str(&out, Some("cluster"), "status").as_deref(),
            Some("CREATING")
        );
        assert!(set_json_status(b"not json", "cluster", "X").is_none());
        assert!(set_json_status(br#"{"nodegroup":{}}"#, "cluster", "X").is_none());
    }
}
