//! IAM's AddClientIDToOpenIDConnectProvider and RemoveClientIDFromOpenIDConnectProvider,
//! which moto 5.2 does not implement ("has not been implemented"). The proxy serves them
//! with calls moto has: it reads the provider (GetOpenIDConnectProvider), and when the list
//! changes, makes the provider again with the new list and the same URL, thumbprints and
//! tags (DeleteOpenIDConnectProvider, CreateOpenIDConnectProvider): IAM names a provider by
//! its URL, so the ARN stays the same. As IAM documents (IAM API reference): adding a client
//! id the provider has, or removing one it does not have, succeeds and changes nothing; an
//! unknown provider is `NoSuchEntity` (moto's answer to the read, passed on). The provider's
//! creation date is the new one's: nothing eksnet reads.

use bytes::Bytes;
use hyper::Method;

use crate::core::emulator::{BoxFuture, Call, Emulator};
use crate::core::faults::{self, Reply};
use crate::core::ops::Protocol;
use crate::core::upstream::{is_success, scoped_headers};
use crate::shared::form_encode;

const IAM_VERSION: &str = "2010-05-08";
const ADD: &str = "AddClientIDToOpenIDConnectProvider";
const REMOVE: &str = "RemoveClientIDFromOpenIDConnectProvider";

#[derive(Default)]
pub struct IamOidc {
    /// One change at a time: two concurrent ones would each make the provider again from
    /// the list they read.
    one_at_a_time: tokio::sync::Mutex<()>,
}

/// What the proxy reads of a provider to make it again.
#[derive(Debug, Default, PartialEq)]
struct Provider {
    url: String,
    client_ids: Vec<String>,
    thumbprints: Vec<String>,
    tags: Vec<(String, String)>,
}

/// The text of each `<member>` of the first `<list>…</list>` (whole elements, not parsed
/// further).
fn members<'a>(xml: &'a str, list: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{list}>"), format!("</{list}>"));
    let Some(start) = xml.find(&open).map(|i| i + open.len()) else {
        return Vec::new();
    };
    let end = xml[start..].find(&close).map_or(xml.len(), |i| start + i);
    xml[start..end]
        .split("<member>")
        .skip(1)
        .filter_map(|m| m.split_once("</member>").map(|(inner, _)| inner))
        .collect()
}

/// The text of the first `<tag>…</tag>` in `xml`, unescaped.
fn text(xml: &str, tag: &str) -> Option<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(unescape(&xml[start..end]))
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// GetOpenIDConnectProvider's answer, as the proxy needs it.
fn parse_provider(xml: &str) -> Provider {
    Provider {
        url: text(xml, "Url").unwrap_or_default(),
        client_ids: members(xml, "ClientIDList")
            .into_iter()
            .map(unescape)
            .collect(),
        thumbprints: members(xml, "ThumbprintList")
            .into_iter()
            .map(unescape)
            .collect(),
        tags: members(xml, "Tags")
            .into_iter()
            .filter_map(|m| Some((text(m, "Key")?, text(m, "Value")?)))
            .collect(),
    }
}

/// The CreateOpenIDConnectProvider body that makes `p` again. IAM keeps the URL without
/// `https://`; CreateOpenIDConnectProvider wants it.
fn create_body(p: &Provider) -> String {
    let url = if p.url.contains("://") {
        p.url.clone()
    } else {
        format!("https://{}", p.url)
    };
    let mut body = format!(
        "Action=CreateOpenIDConnectProvider&Version={IAM_VERSION}&Url={}",
        form_encode(&url)
    );
    for (i, id) in p.client_ids.iter().enumerate() {
        body.push_str(&format!(
            "&ClientIDList.member.{}={}",
            i + 1,
            form_encode(id)
        ));
    }
    for (i, t) in p.thumbprints.iter().enumerate() {
        body.push_str(&format!(
            "&ThumbprintList.member.{}={}",
            i + 1,
            form_encode(t)
        ));
    }
    for (i, (k, v)) in p.tags.iter().enumerate() {
        body.push_str(&format!(
            "&Tags.member.{n}.Key={}&Tags.member.{n}.Value={}",
            form_encode(k),
            form_encode(v),
            n = i + 1
        ));
    }
    body
}

/// The client ids after the operation; `None` when they do not change.
fn changed(ids: &[String], op: &str, client_id: &str) -> Option<Vec<String>> {
    let has = ids.iter().any(|i| i == client_id);
    match (op, has) {
        (ADD, false) => Some(ids.iter().cloned().chain([client_id.to_string()]).collect()),
        (REMOVE, true) => Some(ids.iter().filter(|i| *i != client_id).cloned().collect()),
        _ => None,
    }
}

impl Emulator for IamOidc {
    fn serve<'a>(&'a self, call: &'a Call<'a>) -> BoxFuture<'a, Option<Reply>> {
        Box::pin(async move {
            let info = call.info;
            if info.protocol != Protocol::AwsQuery || (info.op != ADD && info.op != REMOVE) {
                return None;
            }
            Some(self.change(call).await)
        })
    }
}

impl IamOidc {
    async fn change(&self, call: &Call<'_>) -> Reply {
        let info = call.info;
        let (Some(arn), Some(client_id)) = (
            info.param("OpenIDConnectProviderArn"),
            info.param("ClientID"),
        ) else {
            return faults::query_error(
                400,
                "Sender",
                "ValidationError",
                "OpenIDConnectProviderArn and ClientID are required",
            );
        };
        let _one = self.one_at_a_time.lock().await;
        let headers = scoped_headers(call.headers, &info.region, "iam");
        let send = |body: String| {
            call.host
                .upstream
                .forward(&Method::POST, "/", &headers, Bytes::from(body))
        };
        let read = format!(
            "Action=GetOpenIDConnectProvider&Version={IAM_VERSION}&OpenIDConnectProviderArn={}",
            form_encode(arn)
        );
        let got = match send(read).await {
            Ok(r) => r,
            Err(e) => return faults::proxy_error(502, &format!("GetOpenIDConnectProvider: {e}")),
        };
        if !is_success(got.status) {
            return got;
        }
        let mut provider = parse_provider(&String::from_utf8_lossy(&got.body));
        if let Some(ids) = changed(&provider.client_ids, &info.op, client_id) {
            provider.client_ids = ids;
            let delete = format!(
                "Action=DeleteOpenIDConnectProvider&Version={IAM_VERSION}&OpenIDConnectProviderArn={}",
                form_encode(arn)
            );
            for body in [delete, create_body(&provider)] {
                match send(body).await {
                    Ok(r) if is_success(r.status) => {}
                    Ok(r) => return r,
                    Err(e) => return faults::proxy_error(502, &e),
                }
            }
        }
        Reply::new(
            200,
            "text/xml",
            format!(
                "<{op}Response xmlns=\"https://iam.amazonaws.com/doc/{IAM_VERSION}/\"><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{op}Response>",
                faults::request_id(),
                op = info.op
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GET: &str = "<GetOpenIDConnectProviderResponse><GetOpenIDConnectProviderResult>\
        <Url>oidc.eks.us-west-2.amazonaws.com/id/ABC</Url>\
        <ClientIDList><member>sts.amazonaws.com</member></ClientIDList>\
        <ThumbprintList><member>9e99a48a9960b14926bb7f3b02e22da2b0ab7280</member></ThumbprintList>\
        <Tags><member><Key>eksnet:state</Key><Value>a&amp;b</Value></member></Tags>\
        </GetOpenIDConnectProviderResult></GetOpenIDConnectProviderResponse>";

    #[test]
    fn the_provider_is_made_again_as_it_was_with_the_new_list() {
        let p = parse_provider(GET);
        assert_eq!(p.url, "oidc.eks.us-west-2.amazonaws.com/id/ABC");
        assert_eq!(p.client_ids, ["sts.amazonaws.com"]);
        assert_eq!(p.tags, [("eksnet:state".to_string(), "a&b".to_string())]);
        let body = create_body(&p);
        assert!(
            body.contains("Url=https%3A%2F%2Foidc.eks.us-west-2.amazonaws.com%2Fid%2FABC"),
            "{body}"
        );
        assert!(body.contains("ThumbprintList.member.1=9e99a48a9960b14926bb7f3b02e22da2b0ab7280"));
        assert!(body.contains("Tags.member.1.Value=a%26b"), "{body}");
        let ids = vec!["sts.amazonaws.com".to_string()];
        assert_eq!(
            changed(&ids, ADD, "sts.amazonaws.com"),
            None,
            "already there"
        );
        assert_eq!(
            changed(&ids, ADD, "x"),
            Some(vec!["sts.amazonaws.com".into(), "x".into()])
        );
        assert_eq!(changed(&ids, REMOVE, "x"), None, "not there");
        assert_eq!(changed(&ids, REMOVE, "sts.amazonaws.com"), Some(vec![]));
    }
}
