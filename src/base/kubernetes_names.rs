//! Kubernetes object names, as the API server validates them (kubernetes
//! `staging/src/k8s.io/apimachinery/pkg/util/validation/validation.go`): most objects are
//! named by a DNS subdomain, namespaces by a DNS label.

/// RFC 1123 subdomain: at most 253 characters of lowercase letters, digits, `-` and `.`,
/// starting and ending with a letter or digit (`IsDNS1123Subdomain`).
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// RFC 1123 label: at most 63 characters of lowercase letters, digits and `-`, starting and
/// ending with a letter or digit (`IsDNS1123Label`).
pub fn is_dns_label(s: &str) -> bool {
    s.len() <= 63 && !s.contains('.') && is_dns_subdomain(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains_and_labels() {
        assert!(is_dns_subdomain("web") && is_dns_subdomain("us-west-2a.pods"));
        assert!(!is_dns_subdomain("Web") && !is_dns_subdomain("web_1") && !is_dns_subdomain("-a"));
        assert!(!is_dns_subdomain("") && !is_dns_subdomain(&"a".repeat(254)));
        assert!(is_dns_label("kube-system") && !is_dns_label("a.b"));
        assert!(!is_dns_label(&"a".repeat(64)));
    }
}
