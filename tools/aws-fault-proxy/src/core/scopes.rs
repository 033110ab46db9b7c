//! The credential scopes the proxy has seen: which regions, under which access keys, its
//! clients work in. Work the proxy does on its own, outside any request (the background
//! passes of `background.rs`), goes to moto under these, since moto keeps one backend per
//! region and takes the account from the access key.
//!
//! Every AWS request carrying a SigV4 `Authorization` header is recorded, whatever it is
//! (recording changes nothing else). The scopes are kept until the proxy stops: a region a
//! client worked in stays one to look at after `POST /__proxy/reset`.

use std::collections::BTreeMap;

use hyper::header::{HeaderMap, HeaderName, AUTHORIZATION};

use super::ops::credential_scope;
use super::upstream::scoped_headers;

/// How many (region, access key) pairs are kept: a bound, so that a client making up keys
/// cannot make the background passes grow without end. The oldest is dropped first.
const MAX_SCOPES: usize = 64;

/// One region under one access key, with the client headers to build requests from.
#[derive(Clone, Debug)]
pub struct Scope {
    pub region: String,
    pub access_key: String,
    /// The client's `Authorization`, `x-amz-date` and `x-amz-security-token`, as last seen.
    credentials: HeaderMap,
}

impl Scope {
    /// The scope of one request: its SigV4 credential's region and access key, with the
    /// client's credentials. `None` without a credential scope (unsigned requests).
    pub fn of_request(headers: &HeaderMap) -> Option<Scope> {
        let (region, _service) = credential_scope(headers)?;
        let key = access_key(headers)?;
        if region.is_empty() {
            return None;
        }
        let mut credentials = HeaderMap::new();
        for name in [AUTHORIZATION.as_str(), "x-amz-date", "x-amz-security-token"] {
            if let Some(v) = headers.get(name) {
                credentials.insert(HeaderName::from_static(name), v.clone());
            }
        }
        Some(Scope {
            region,
            access_key: key,
            credentials,
        })
    }

    /// Headers for a request of the proxy's own to `service` (`ec2`, `eks`, `sts`) in this
    /// scope.
    pub fn headers(&self, service: &str) -> HeaderMap {
        scoped_headers(&self.credentials, &self.region, service)
    }
}

/// The scopes seen so far, keyed by (region, access key).
#[derive(Debug, Default)]
pub struct Scopes {
    seen: BTreeMap<(String, String), (u64, Scope)>,
    counter: u64,
}

impl Scopes {
    /// Records the credential scope of a request, if it has one.
    pub fn record(&mut self, headers: &HeaderMap) {
        let Some(scope) = Scope::of_request(headers) else {
            return;
        };
        self.counter += 1;
        let key = (scope.region.clone(), scope.access_key.clone());
        self.seen.insert(key, (self.counter, scope));
        if self.seen.len() > MAX_SCOPES {
            let oldest = self
                .seen
                .iter()
                .min_by_key(|(_, (n, _))| *n)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.seen.remove(&k);
            }
        }
    }

    /// Every scope seen, in (region, access key) order.
    pub fn all(&self) -> Vec<Scope> {
        self.seen.values().map(|(_, s)| s.clone()).collect()
    }
}

/// The access key of a SigV4 `Authorization` credential.
fn access_key(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let cred = auth.split("Credential=").nth(1)?;
    let key = cred.split('/').next()?;
    (!key.is_empty()).then(|| key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn auth(key: &str, region: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = format!(
            "AWS4-HMAC-SHA256 Credential={key}/20260101/{region}/eks/aws4_request, \
             SignedHeaders=host, Signature=0"
        );
        h.insert(AUTHORIZATION, HeaderValue::from_str(&v).unwrap());
        h
    }

    #[test]
    fn scopes_are_kept_per_region_and_key() {
        let mut s = Scopes::default();
        s.record(&HeaderMap::new());
        assert!(s.all().is_empty(), "no credential, no scope");
        s.record(&auth("AK1", "us-east-1"));
        s.record(&auth("AK1", "us-east-1"));
        s.record(&auth("AK1", "eu-west-1"));
        s.record(&auth("AK2", "us-east-1"));
        let all = s.all();
        assert_eq!(all.len(), 3);
        let ec2 = all[0].headers("ec2");
        assert_eq!(
            credential_scope(&ec2),
            Some(("eu-west-1".to_string(), "ec2".to_string()))
        );
        for i in 0..(MAX_SCOPES + 5) {
            s.record(&auth(&format!("K{i}"), "us-east-1"));
        }
        assert_eq!(s.all().len(), MAX_SCOPES);
    }
}
