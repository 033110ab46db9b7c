//! S3 (path-style) as moto answers it, repaired where aws-sdk-s3 would refuse the answer.
//! Everything else about S3 (naming its operations, its error shapes) is the core's, as
//! for any service.

use bytes::Bytes;

use crate::core::emulator::{ready, Answer, BoxFuture, Call, Emulator};
use crate::core::ops::Protocol;

#[derive(Default)]
pub struct S3;

impl Emulator for S3 {
    fn rewrite<'a>(&'a self, call: &'a Call<'a>, answer: &'a mut Answer) -> BoxFuture<'a, ()> {
        if call.info.protocol == Protocol::S3 && call.info.op == "GetBucketVersioning" {
            // moto 5.2 serializes this answer with the root `GetBucketVersioningResponse`
            // (boto3 ignores the root's name); S3's is `VersioningConfiguration`, and
            // aws-sdk-s3 refuses any other. A repair of moto's answer, not a fault: no label.
            let text = String::from_utf8_lossy(&answer.reply.body);
            if let Some(fixed) = xml_rename_root(
                &text,
                "GetBucketVersioningResponse",
                "VersioningConfiguration",
            ) {
                answer.reply.body = Bytes::from(fixed);
            }
        }
        ready(())
    }
}

/// Renames the root element `from` of an XML document to `to` (its attributes kept);
/// `None` if the root is not `from`.
fn xml_rename_root(body: &str, from: &str, to: &str) -> Option<String> {
    // The root is the first element after the declaration.
    let mut rest = body.trim_start();
    let mut prefix_len = body.len() - rest.len();
    if rest.starts_with("<?") {
        let end = rest.find("?>")? + 2;
        let after = rest[end..].trim_start();
        prefix_len += rest.len() - after.len();
        rest = after;
    }
    let name = rest.strip_prefix('<')?.strip_prefix(from)?;
    // `<fromX` is another element; `<from>`, `<from ...>` and `<from/>` are it.
    if !name.starts_with(['>', ' ', '/', '\n', '\t', '\r']) {
        return None;
    }
    let close = format!("</{from}>");
    let mut out = format!("{}<{to}{name}", &body[..prefix_len]);
    if let Some(at) = out.rfind(&close) {
        out.replace_range(at..at + close.len(), &format!("</{to}>"));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_root_is_renamed() {
        let body = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<GetBucketVersioningResponse \
                    xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>Enabled</Status>\
                    </GetBucketVersioningResponse>";
        assert_eq!(
            xml_rename_root(
                body,
                "GetBucketVersioningResponse",
                "VersioningConfiguration"
            )
            .as_deref(),
            Some(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<VersioningConfiguration \
                 xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>Enabled</Status>\
                 </VersioningConfiguration>"
            )
        );
        assert_eq!(xml_rename_root("<A/>", "A", "B").as_deref(), Some("<B/>"));
        assert_eq!(xml_rename_root("<AB></AB>", "A", "B"), None);
        assert_eq!(xml_rename_root("<X><A></A></X>", "A", "B"), None);
    }
}
