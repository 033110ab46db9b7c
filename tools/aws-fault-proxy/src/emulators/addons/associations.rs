//! EKS Pod Identity associations that add-ons own (EKS user guide,
//! `workloads/add-ons-iam.adoc`): CreateAddon and UpdateAddon take `podIdentityAssociations`
//! (`[{serviceAccount, roleArn}]`); an update's list replaces the add-on's ("all previous pod
//! identity associations are overwritten", `update-addon-role.adoc`; `[]` removes them,
//! `remove-addon-role.adoc`); they are deleted with the add-on unless it is deleted with
//! `preserve`. DescribeAddon lists their ARNs; ListPodIdentityAssociations and
//! DescribePodIdentityAssociation show them (EKS API reference), with the add-on's ARN as
//! `ownerArn`. The pure parts: the request's shape, the answers' shapes.

use serde_json::{json, Map, Value};

/// One association, in the namespace of its add-on.
#[derive(Clone, Debug, PartialEq)]
pub struct Association {
    pub region: String,
    pub cluster: String,
    pub id: String,
    pub arn: String,
    pub namespace: String,
    pub service_account: String,
    pub role_arn: String,
    /// The add-on's ARN while an add-on owns it.
    pub owner_arn: Option<String>,
    pub created_at: f64,
    pub modified_at: f64,
}

/// What a request asks for: (service account, role ARN) pairs.
pub type Wanted = Vec<(String, String)>;

/// `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`.
fn is_role_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", partition, "iam", "", account, resource]
        if partition.starts_with("aws")
            && account.len() == 12
            && account.chars().all(|c| c.is_ascii_digit())
            && resource.strip_prefix("role/").is_some_and(|n| !n.is_empty()))
}

/// The request's `podIdentityAssociations`: `Ok(None)` when absent (an update keeps the
/// add-on's), else the pairs; `Err` is EKS's `InvalidParameterException` message.
pub fn parse(req: &Map<String, Value>) -> Result<Option<Wanted>, String> {
    let items = match req.get("podIdentityAssociations") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => return Err("podIdentityAssociations must be a list".into()),
    };
    let mut out: Wanted = Vec::new();
    for item in items {
        let (Some(sa), Some(role)) = (
            item.get("serviceAccount").and_then(Value::as_str),
            item.get("roleArn").and_then(Value::as_str),
        ) else {
            return Err("each pod identity association needs serviceAccount and roleArn".into());
        };
        if sa.is_empty() {
            return Err("serviceAccount must not be empty".into());
        }
        if !is_role_arn(role) {
            return Err(format!("Invalid role ARN: {role}"));
        }
        if out.iter().any(|(s, _)| s == sa) {
            return Err(format!(
                "Multiple pod identity associations for service account {sa}"
            ));
        }
        out.push((sa.to_string(), role.to_string()));
    }
    Ok(Some(out))
}

/// An association id as EKS makes them: `a-` and 17 lowercase letters and digits.
pub fn new_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let tail: String = (0..17)
        .map(|_| char::from(ALPHABET[fastrand::usize(..ALPHABET.len())]))
        .collect();
    format!("a-{tail}")
}

impl Association {
    /// The `PodIdentityAssociationSummary` of ListPodIdentityAssociations.
    pub fn summary_json(&self) -> Value {
        let mut v = json!({
            "clusterName": self.cluster,
            "namespace": self.namespace,
            "serviceAccount": self.service_account,
            "associationArn": self.arn,
            "associationId": self.id,
        });
        if let Some(owner) = &self.owner_arn {
            v["ownerArn"] = json!(owner);
        }
        v
    }

    /// The `PodIdentityAssociation` of DescribePodIdentityAssociation.
    pub fn json(&self) -> Value {
        let mut v = self.summary_json();
        v["roleArn"] = json!(self.role_arn);
        v["tags"] = json!({});
        v["createdAt"] = json!(self.created_at);
        v["modifiedAt"] = json!(self.modified_at);
        v["disableSessionTags"] = json!(false);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn requests_are_pairs_with_a_role_arn_and_one_per_service_account() {
        assert_eq!(parse(&req(json!({}))), Ok(None));
        assert_eq!(
            parse(&req(json!({"podIdentityAssociations": []}))),
            Ok(Some(vec![]))
        );
        let one = json!({"podIdentityAssociations": [
            {"serviceAccount": "aws-node", "roleArn": "arn:aws:iam::111122223333:role/cni"}]});
        assert_eq!(
            parse(&req(one)),
            Ok(Some(vec![(
                "aws-node".into(),
                "arn:aws:iam::111122223333:role/cni".into()
            )]))
        );
        let bad_role =
            json!({"podIdentityAssociations": [{"serviceAccount": "a", "roleArn": "cni"}]});
        assert!(parse(&req(bad_role))
            .unwrap_err()
            .contains("Invalid role ARN"));
        let twice = json!({"podIdentityAssociations": [
            {"serviceAccount": "a", "roleArn": "arn:aws:iam::111122223333:role/x"},
            {"serviceAccount": "a", "roleArn": "arn:aws:iam::111122223333:role/y"}]});
        assert!(parse(&req(twice)).unwrap_err().contains("Multiple"));
        let id = new_id();
        assert!(id.starts_with("a-") && id.len() == 19, "{id}");
    }
}
