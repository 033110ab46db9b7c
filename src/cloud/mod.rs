//! The clients eksnet talks through: AWS (one client per service, paced, with `AwsError`) and
//! each cluster's Kubernetes API (an EKS token made from the AWS credentials, or a kubeconfig).

pub mod aws;
pub mod kube;
pub mod kube_token;
