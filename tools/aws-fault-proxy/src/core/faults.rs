//! Error answers in the exact shapes the AWS SDKs parse.
//!
//! What matters to the Rust SDK: for EC2 the `<Response><Errors><Error><Code>`
//! path; for IAM/CloudFormation/STS `<ErrorResponse><Error><Code>`; for EKS
//! (REST-JSON) the `x-amzn-ErrorType` header, which `aws-sdk-eks` prefers
//! over `code`/`__type` in the body; for S3 `<Error><Code>` (a bare root, no
//! envelope). The retry classifier of `aws-runtime` then treats
//! `RequestLimitExceeded`, `Throttling`, `ThrottlingException` and `SlowDown` as
//! throttling errors and HTTP 500/502/503/504 as transient.

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};

use super::ops::Protocol;

/// A complete answer built by the proxy itself, or an upstream answer after
/// any rewriting. The body is always fully buffered: answers are small and
/// several of them are edited before they are sent on.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn new(status: u16, content_type: &'static str, body: String) -> Reply {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        Reply {
            status,
            headers,
            body: Bytes::from(body),
        }
    }

    /// Adds a header; values that are not valid header text are dropped
    /// (only the proxy's own constants and generated ids pass through here).
    fn with_header(mut self, name: &'static str, value: &str) -> Reply {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.append(HeaderName::from_static(name), v);
        }
        self
    }

    /// A JSON answer for the control API.
    pub fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply::new(status, "application/json", value.to_string())
    }
}

/// A fresh request id in the UUID layout AWS uses.
pub fn request_id() -> String {
    let a = fastrand::u64(..);
    let b = fastrand::u64(..);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// Escapes text content; quotes need no escaping there, and leaving them
/// keeps messages such as `The subnet 'subnet-1' ...` readable.
pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// EC2 Query error.
pub fn ec2_error(status: u16, code: &str, message: &str) -> Reply {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{}</Code>\
         <Message>{}</Message></Error></Errors><RequestID>{}</RequestID></Response>",
        xml_escape(code),
        xml_escape(message),
        request_id()
    );
    Reply::new(status, "text/xml;charset=UTF-8", body)
}

/// IAM / CloudFormation / STS Query error. `kind` is `Sender` or `Receiver`.
pub fn query_error(status: u16, kind: &str, code: &str, message: &str) -> Reply {
    let body = format!(
        "<ErrorResponse><Error><Type>{}</Type><Code>{}</Code><Message>{}</Message></Error>\
         <RequestId>{}</RequestId></ErrorResponse>",
        kind,
        xml_escape(code),
        xml_escape(message),
        request_id()
    );
    Reply::new(status, "text/xml", body)
}

/// A fresh S3 request id: 16 upper-case hex digits, as S3's `x-amz-request-id`.
fn s3_request_id() -> String {
    format!("{:016X}", fastrand::u64(..))
}

/// S3 REST-XML error. The request id goes in the body and in `x-amz-request-id`, where
/// aws-sdk-s3 reads it; `x-amz-id-2` (S3's host id) is its extended request id.
pub fn s3_error(status: u16, code: &str, message: &str) -> Reply {
    let id = s3_request_id();
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message>\
         <RequestId>{id}</RequestId></Error>",
        xml_escape(code),
        xml_escape(message),
    );
    Reply::new(status, "application/xml", body)
        .with_header("x-amz-request-id", &id)
        .with_header("x-amz-id-2", &request_id())
}

/// EKS REST-JSON error.
pub fn eks_error(status: u16, error_type: &str, message: &str) -> Reply {
    eks_error_with(status, error_type, message, &[])
}

/// EKS REST-JSON error whose body also names the resources it is about, as EKS's do
/// (`{"clusterName": "c1", "addonName": "vpc-cni", "message": ...}`); `None` fields are
/// left out.
pub fn eks_error_with(
    status: u16,
    error_type: &str,
    message: &str,
    fields: &[(&str, Option<&str>)],
) -> Reply {
    let mut body = serde_json::Map::new();
    for (name, value) in fields {
        if let Some(value) = value {
            body.insert((*name).to_string(), serde_json::Value::from(*value));
        }
    }
    body.insert("message".into(), serde_json::Value::from(message));
    // HeaderName::from_static needs lowercase; HTTP/1 header names are
    // case-insensitive and the SDK looks them up that way.
    Reply::new(
        status,
        "application/json",
        serde_json::Value::Object(body).to_string(),
    )
    .with_header("x-amzn-errortype", error_type)
    .with_header("x-amzn-requestid", &request_id())
}

/// A successful EKS answer the proxy makes itself (the add-on API).
pub fn eks_json(value: &serde_json::Value) -> Reply {
    Reply::new(200, "application/json", value.to_string())
        .with_header("x-amzn-requestid", &request_id())
}

/// The throttling answer each service gives.
pub fn throttle(protocol: Protocol) -> Reply {
    match protocol {
        Protocol::Ec2Query => ec2_error(503, "RequestLimitExceeded", "Request limit exceeded."),
        Protocol::AwsQuery => query_error(400, "Sender", "Throttling", "Rate exceeded"),
        Protocol::RestJson => eks_error(429, "ThrottlingException", "Rate exceeded"),
        Protocol::S3 => s3_error(503, "SlowDown", "Please reduce your request rate."),
    }
}

/// A server-side failure; `unavailable` picks 503 over 500. EKS names these
/// `ServerException` and `ServiceUnavailableException` in its model; S3's messages are
/// those of its error-code table.
pub fn server_error(protocol: Protocol, unavailable: bool) -> Reply {
    match (protocol, unavailable) {
        (Protocol::Ec2Query, false) => {
            ec2_error(500, "InternalError", "An internal error has occurred")
        }
        (Protocol::Ec2Query, true) => ec2_error(
            503,
            "ServiceUnavailable",
            "The service is unavailable. Please try again shortly.",
        ),
        (Protocol::AwsQuery, false) => query_error(
            500,
            "Receiver",
            "InternalError",
            "An internal error has occurred",
        ),
        (Protocol::AwsQuery, true) => query_error(
            503,
            "Receiver",
            "ServiceUnavailable",
            "Service is unavailable",
        ),
        (Protocol::RestJson, false) => eks_error(500, "ServerException", "Internal server error"),
        (Protocol::RestJson, true) => {
            eks_error(503, "ServiceUnavailableException", "Service unavailable")
        }
        (Protocol::S3, false) => s3_error(
            500,
            "InternalError",
            "We encountered an internal error. Please try again.",
        ),
        (Protocol::S3, true) => s3_error(
            503,
            "ServiceUnavailable",
            "Service is unable to handle request.",
        ),
    }
}

/// An error of the proxy itself (control API, moto unreachable), not in any AWS shape.
pub fn proxy_error(status: u16, message: &str) -> Reply {
    Reply::json(status, &serde_json::json!({ "error": message }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: &Reply) -> String {
        String::from_utf8_lossy(&r.body).into_owned()
    }

    #[test]
    fn throttle_shapes() {
        let r = throttle(Protocol::Ec2Query);
        assert_eq!(r.status, 503);
        assert!(text(&r).contains(
            "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit \
             exceeded.</Message></Error></Errors><RequestID>"
        ));
        let r = throttle(Protocol::AwsQuery);
        assert_eq!(r.status, 400);
        assert!(text(&r).starts_with(
            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate \
             exceeded</Message></Error><RequestId>"
        ));
        let r = throttle(Protocol::RestJson);
        assert_eq!(r.status, 429);
        assert_eq!(text(&r), r#"{"message":"Rate exceeded"}"#);
        assert_eq!(
            r.headers
                .get("x-amzn-ErrorType")
                .and_then(|v| v.to_str().ok()),
            Some("ThrottlingException")
        );
    }

    #[test]
    fn s3_shapes() {
        let r = throttle(Protocol::S3);
        assert_eq!(r.status, 503);
        let body = text(&r);
        let header = |name: &str| r.headers.get(name).and_then(|v| v.to_str().ok());
        let id = header("x-amz-request-id").unwrap_or_default().to_string();
        assert_eq!(id.len(), 16);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()));
        assert!(body.ends_with(&format!(
            "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>\
             <RequestId>{id}</RequestId></Error>"
        )));
        assert_eq!(header("content-type"), Some("application/xml"));
        assert!(header("x-amz-id-2").is_some());
        let r = server_error(Protocol::S3, false);
        assert_eq!(r.status, 500);
        assert!(text(&r).contains("<Error><Code>InternalError</Code>"));
        let r = server_error(Protocol::S3, true);
        assert_eq!(r.status, 503);
        assert!(text(&r).contains("<Error><Code>ServiceUnavailable</Code>"));
    }

    #[test]
    fn messages_are_escaped() {
        let r = ec2_error(
            400,
            "DependencyViolation",
            "The subnet 'a<b' has dependencies",
        );
        assert!(text(&r).contains("The subnet 'a&lt;b' has dependencies"));
        assert_eq!(request_id().len(), 36);
    }
}
