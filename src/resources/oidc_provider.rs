//! `oidc_provider`: an IAM OpenID Connect identity provider, made from an EKS cluster's
//! issuer so that IAM roles can trust the cluster's service accounts (IRSA). Its cloud id is
//! the provider's ARN, `arn:aws:iam::ACCOUNT:oidc-provider/HOST/PATH`: IAM names a provider by
//! its URL without `https://`, one per URL and account (IAM API reference,
//! CreateOpenIDConnectProvider).
//!
//! The client ids (audiences) and thumbprints change in place; the URL makes another provider.
//! Thumbprints are optional: IAM trusts an issuer's certificate from its root CA without them,
//! and keeps whatever it holds when the spec gives none, so they are compared only when the
//! spec lists them.

use super::{
    aws_error, iam_tags, req_str, split_tags, str_list, tag_changes, BuildCtx, Change, Ctx,
    FieldRules, ImportId, KindFacts, Lookup, Observed, ResourceError, ResourceKind, Shape, Unique,
};
use crate::base::addr::ResourceAddr;
use crate::base::value::{is_ref, is_unknown};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// The audience IRSA tokens carry (EKS user guide,
/// `enable-iam-roles-for-service-accounts.adoc`): the default client id.
const STS_AUDIENCE: &str = "sts.amazonaws.com";

/// An IAM OIDC identity provider (IRSA), usually of a cluster's issuer.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderConfig {
    /// The issuer URL, `https://…`, usually `${cluster.NAME.oidc_issuer}`.
    pub url: String,
    /// The audiences (client ids) the provider accepts (default `["sts.amazonaws.com"]`, the
    /// audience of IRSA's tokens).
    #[serde(default = "default_client_ids")]
    pub client_ids: Vec<String>,
    /// SHA-1 thumbprints (40 hex digits) of the issuer's certificate; optional: IAM trusts an
    /// issuer whose certificate a root CA signed without them. Removing them leaves IAM's as
    /// they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbprints: Option<Vec<String>>,
    /// The provider's tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

fn default_client_ids() -> Vec<String> {
    vec![STS_AUDIENCE.to_string()]
}

/// `[oidc_provider.NAME]`: see docs/spec.md.
pub struct OidcProviderKind;

const FACTS: KindFacts = KindFacts {
    force_new: &["url"],
    outputs: &["arn", "url"],
    mirrored_outputs: &[],
    identity: &["url"],
    lookup_key: &["url"],
    create_only: &[],
    set_valued: &["client_ids", "thumbprints"],
    // IAM answers at once; nothing is waited for.
    default_timeout: Duration::from_secs(2 * 60),
    kubernetes: false,
    import_id: ImportId::Plain,
    replacement: None,
    compared_when_unset: &[],
    updated_outputs: &[],
    derived: false,
    unique: Some(Unique {
        field: "url",
        one_per: None,
    }),
    output_shapes: &[
        ("arn", Shape::OidcProviderArn),
        ("url", Shape::Other("an OIDC issuer URL")),
    ],
    restricted_tags: Some("IAM"),
    parent: None,
    patches_existing: false,
    checked_only: &[],
    kubernetes_endpoint: false,
    puts_back: &[],
};

/// The URL as IAM keys the provider: without `https://` (and without a trailing `/`).
fn issuer_of(url: &str) -> &str {
    url.strip_prefix("https://")
        .unwrap_or(url)
        .trim_end_matches('/')
}

/// Sorted, without repeats: client ids and thumbprints are sets. Thumbprints are hex, which
/// IAM takes in either case; compared in lower case.
fn set_of(items: &[String], lower: bool) -> Vec<String> {
    let mut v: Vec<String> = items
        .iter()
        .map(|s| {
            if lower {
                s.to_ascii_lowercase()
            } else {
                s.clone()
            }
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

fn attrs_of(c: &OidcProviderConfig) -> Value {
    let mut attrs = json!({
        "url": c.url,
        "client_ids": set_of(&c.client_ids, false),
        "tags": c.tags,
    });
    if let (Some(t), Some(m)) = (&c.thumbprints, attrs.as_object_mut()) {
        m.insert("thumbprints".into(), json!(set_of(t, true)));
    }
    attrs
}

async fn read(ctx: &Ctx, arn: &str) -> Result<Option<Observed>, ResourceError> {
    let got = match ctx
        .aws
        .iam
        .get_open_id_connect_provider()
        .open_id_connect_provider_arn(arn)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) => {
            let err = aws_error("GetOpenIDConnectProvider", e);
            return if err.code() == Some("NoSuchEntity") {
                Ok(None)
            } else {
                Err(err)
            };
        }
    };
    let issuer = got
        .url()
        .map(issuer_of)
        .or_else(|| arn.split_once(":oidc-provider/").map(|(_, i)| i))
        .unwrap_or_default();
    let url = format!("https://{issuer}");
    let (tags, managed_by) = split_tags(
        got.tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string())),
    );
    Ok(Some(Observed {
        cloud_id: arn.to_string(),
        attrs: json!({
            "url": url,
            "client_ids": set_of(got.client_id_list(), false),
            "thumbprints": set_of(got.thumbprint_list(), true),
            "tags": tags,
        }),
        outputs: json!({"arn": arn, "url": url}),
        managed_by,
    }))
}

/// Every provider of the account, by ARN: IAM has no lookup by URL.
async fn list(ctx: &Ctx) -> Result<Vec<String>, ResourceError> {
    let out = ctx
        .aws
        .iam
        .list_open_id_connect_providers()
        .send()
        .await
        .map_err(|e| aws_error("ListOpenIDConnectProviders", e))?;
    Ok(out
        .open_id_connect_provider_list()
        .iter()
        .filter_map(|p| p.arn().map(String::from))
        .collect())
}

/// The URL's check: IAM takes `https://` and a host, at most 255 characters, with no query
/// or fragment (IAM API reference, CreateOpenIDConnectProvider).
fn url_problem(url: &str) -> Option<String> {
    if is_ref(url) {
        return None;
    }
    let Some(rest) = url.strip_prefix("https://") else {
        return Some(format!("`{url}` must begin with `https://` (the issuer's URL, like `https://oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE`)"));
    };
    if rest.split('/').next().unwrap_or_default().is_empty() {
        return Some(format!("`{url}` has no host"));
    }
    if url.len() > 255 {
        return Some(format!(
            "`{url}` is longer than the 255 characters IAM takes"
        ));
    }
    if rest.contains(['?', '#']) || !rest.chars().all(|c| c.is_ascii_graphic()) {
        return Some(format!(
            "`{url}` must be a plain URL: no query, fragment or spaces"
        ));
    }
    None
}

impl ResourceKind for OidcProviderKind {
    const FACTS: &'static KindFacts = &FACTS;
    type Config = OidcProviderConfig;

    /// The URL, and the lists' sizes.
    fn check_shape(c: &Self::Config, rules: &mut dyn FieldRules) {
        if let Some(problem) = url_problem(&c.url) {
            rules.error("url", problem);
        }
        if c.client_ids.len() > 100 {
            rules.error(
                "client_ids",
                format!("{} client ids: IAM takes at most 100", c.client_ids.len()),
            );
        }
        if let Some(t) = c.thumbprints.as_ref().filter(|t| t.len() > 5) {
            rules.error(
                "thumbprints",
                format!("{} thumbprints: IAM takes at most 5", t.len()),
            );
        }
    }

    /// Client ids of 1 to 255 characters; thumbprints of 40 hex digits (a SHA-1).
    fn check_fields(c: &Self::Config, rules: &mut dyn FieldRules) {
        for (i, id) in c.client_ids.iter().enumerate() {
            if !is_ref(id) && (id.is_empty() || id.len() > 255) {
                rules.error(
                    &format!("client_ids.{i}"),
                    "a client id is 1 to 255 characters".into(),
                );
            }
        }
        for (i, t) in c.thumbprints.iter().flatten().enumerate() {
            let sha1 = t.len() == 40 && t.chars().all(|c| c.is_ascii_hexdigit());
            if !sha1 && !is_ref(t) {
                rules.error(
                    &format!("thumbprints.{i}"),
                    format!("`{t}` is not a thumbprint: the 40 hex digits of the certificate's SHA-1 fingerprint"),
                );
            }
        }
    }

    fn desired_attrs(
        c: &Self::Config,
        _build: &BuildCtx,
    ) -> Result<Value, Vec<(&'static str, String)>> {
        Ok(attrs_of(c))
    }

    /// By ARN (the cloud id); a provider known only by its URL is found in one
    /// ListOpenIDConnectProviders for all of them. Reads run concurrently.
    async fn refresh(ctx: &Ctx, items: &[Lookup]) -> Result<Vec<Option<Observed>>, ResourceError> {
        let by_url: Vec<Option<&str>> = items
            .iter()
            .map(|i| match &i.cloud_id {
                Some(_) => None,
                None => super::str_attr(&i.attrs, "url")
                    .filter(|u| !is_unknown(&json!(u)))
                    .map(issuer_of),
            })
            .collect();
        let listed = if by_url.iter().any(Option::is_some) {
            list(ctx).await?
        } else {
            Vec::new()
        };
        let reads = items.iter().zip(&by_url).map(|(i, issuer)| {
            let arn = i.cloud_id.clone().or_else(|| {
                let issuer = (*issuer)?;
                listed
                    .iter()
                    .find(|a| a.split_once(":oidc-provider/").map(|(_, x)| x) == Some(issuer))
                    .cloned()
            });
            async move {
                match arn {
                    Some(a) => read(ctx, &a).await,
                    None => Ok(None),
                }
            }
        });
        futures::future::try_join_all(reads).await
    }

    async fn create(
        ctx: &Ctx,
        addr: &ResourceAddr,
        attrs: &Value,
    ) -> Result<Observed, ResourceError> {
        let url = req_str(attrs, "url")?;
        let tags = ctx.managed_tags(addr, attrs.get("tags").unwrap_or(&Value::Null));
        let mut req = ctx
            .aws
            .iam
            .create_open_id_connect_provider()
            .url(url)
            .set_client_id_list(Some(str_list(attrs, "client_ids")))
            .set_tags(Some(iam_tags(tags)));
        if attrs.get("thumbprints").is_some() {
            req = req.set_thumbprint_list(Some(str_list(attrs, "thumbprints")));
        }
        let out = req
            .send()
            .await
            .map_err(|e| aws_error("CreateOpenIDConnectProvider", e))?;
        let arn = out
            .open_id_connect_provider_arn()
            .ok_or(ResourceError::IncompleteAnswer {
                operation: "CreateOpenIDConnectProvider",
                lacks: "OpenIDConnectProviderArn",
            })?;
        read(ctx, arn)
            .await?
            .ok_or_else(|| ResourceError::NotReadBack {
                what: format!("OIDC provider {arn}"),
            })
    }

    /// Client ids added before others are removed (the provider never lacks the audience it
    /// keeps), then the thumbprints when the spec lists them, then tags.
    async fn update(
        ctx: &Ctx,
        _addr: &ResourceAddr,
        cloud_id: &str,
        change: Change<'_>,
    ) -> Result<Observed, ResourceError> {
        let (before, after) = (change.before, change.after);
        let old = str_list(before, "client_ids");
        let new = str_list(after, "client_ids");
        for id in new.iter().filter(|i| !old.contains(i)) {
            ctx.aws
                .iam
                .add_client_id_to_open_id_connect_provider()
                .open_id_connect_provider_arn(cloud_id)
                .client_id(id)
                .send()
                .await
                .map_err(|e| aws_error("AddClientIDToOpenIDConnectProvider", e))?;
        }
        for id in old.iter().filter(|i| !new.contains(i)) {
            ctx.aws
                .iam
                .remove_client_id_from_open_id_connect_provider()
                .open_id_connect_provider_arn(cloud_id)
                .client_id(id)
                .send()
                .await
                .map_err(|e| aws_error("RemoveClientIDFromOpenIDConnectProvider", e))?;
        }
        if after.get("thumbprints").is_some()
            && before.get("thumbprints") != after.get("thumbprints")
        {
            ctx.aws
                .iam
                .update_open_id_connect_provider_thumbprint()
                .open_id_connect_provider_arn(cloud_id)
                .set_thumbprint_list(Some(str_list(after, "thumbprints")))
                .send()
                .await
                .map_err(|e| aws_error("UpdateOpenIDConnectProviderThumbprint", e))?;
        }
        let (removed, set) = tag_changes(before, after);
        if !removed.is_empty() {
            ctx.aws
                .iam
                .untag_open_id_connect_provider()
                .open_id_connect_provider_arn(cloud_id)
                .set_tag_keys(Some(removed))
                .send()
                .await
                .map_err(|e| aws_error("UntagOpenIDConnectProvider", e))?;
        }
        if !set.is_empty() {
            ctx.aws
                .iam
                .tag_open_id_connect_provider()
                .open_id_connect_provider_arn(cloud_id)
                .set_tags(Some(iam_tags(set)))
                .send()
                .await
                .map_err(|e| aws_error("TagOpenIDConnectProvider", e))?;
        }
        read(ctx, cloud_id)
            .await?
            .ok_or_else(|| ResourceError::Disappeared {
                what: format!("OIDC provider {cloud_id}"),
            })
    }

    /// A provider already gone counts as deleted.
    async fn delete(
        ctx: &Ctx,
        _addr: &ResourceAddr,
        cloud_id: &str,
        _attrs: &Value,
        _prior_outputs: &Value,
    ) -> Result<(), ResourceError> {
        match ctx
            .aws
            .iam
            .delete_open_id_connect_provider()
            .open_id_connect_provider_arn(cloud_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = aws_error("DeleteOpenIDConnectProvider", e);
                if err.code() == Some("NoSuchEntity") {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(v: Value) -> OidcProviderConfig {
        serde_json::from_value(v).expect("config")
    }

    /// The audience defaults to IRSA's; sets are sorted (thumbprints in lower case); no
    /// thumbprints in the spec: none compared.
    #[test]
    fn attributes_default_the_audience_and_compare_thumbprints_only_when_given() {
        let a = attrs_of(&config(json!({"url": "${cluster.main.oidc_issuer}"})));
        assert_eq!(a["client_ids"], json!(["sts.amazonaws.com"]));
        assert!(a.get("thumbprints").is_none(), "{a}");
        let b = attrs_of(&config(json!({
            "url": "https://oidc.example.com",
            "client_ids": ["b", "a", "b"],
            "thumbprints": ["9E99A48A9960B14926BB7F3B02E22DA2B0AB7280"],
        })));
        assert_eq!(b["client_ids"], json!(["a", "b"]));
        assert_eq!(
            b["thumbprints"],
            json!(["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"])
        );
    }

    #[test]
    fn the_url_is_an_https_issuer() {
        assert_eq!(
            issuer_of("https://oidc.eks.us-west-2.amazonaws.com/id/AB/"),
            "oidc.eks.us-west-2.amazonaws.com/id/AB"
        );
        assert!(url_problem("https://oidc.eks.us-west-2.amazonaws.com/id/AB").is_none());
        assert!(url_problem("${cluster.main.oidc_issuer}").is_none());
        assert!(url_problem("http://oidc.example.com").is_some_and(|p| p.contains("https://")));
        assert!(url_problem("https://").is_some_and(|p| p.contains("no host")));
        assert!(url_problem("https://x.example.com/?a=b").is_some());
    }
}
