//! Name, label and port-name syntax as apimachinery checks it
//! (`k8s.io/apimachinery/pkg/util/validation`). Each check returns the
//! problems it found, worded as the API server words them, so an error
//! tells the user the rule as well as the value.

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";

pub const DNS1123_LABEL_MAX: usize = 63;
pub const DNS1123_SUBDOMAIN_MAX: usize = 253;
pub const LABEL_VALUE_MAX: usize = 63;
pub const QUALIFIED_NAME_MAX: usize = 63;

fn alnum_lower(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn is_label_shape(s: &str, first: fn(char) -> bool) -> bool {
    let mut chars = s.chars();
    let Some(f) = chars.next() else { return false };
    if !first(f) {
        return false;
    }
    if !s.chars().all(|c| alnum_lower(c) || c == '-') {
        return false;
    }
    s.chars().last().is_some_and(alnum_lower)
}

/// A lowercase RFC 1123 label: most namespaced names, namespaces, port names.
pub fn dns1123_label(s: &str) -> Vec<String> {
    let mut out = vec![];
    if s.len() > DNS1123_LABEL_MAX {
        out.push(format!(
            "must be no more than {DNS1123_LABEL_MAX} characters"
        ));
    }
    if !is_label_shape(s, alnum_lower) {
        out.push(format!(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
             and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc', \
             regex used for validation is '{DNS1123_LABEL_FMT}')"
        ));
    }
    out
}

/// A lowercase RFC 1123 subdomain: Pod, Deployment, EndpointSlice and
/// NetworkPolicy names, label-key prefixes, node names.
pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut out = vec![];
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        out.push(format!(
            "must be no more than {DNS1123_SUBDOMAIN_MAX} characters"
        ));
    }
    if s.is_empty() || !s.split('.').all(|l| is_label_shape(l, alnum_lower)) {
        out.push(format!(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' \
             or '.', and must start and end with an alphanumeric character (e.g. 'example.com', \
             regex used for validation is '{DNS1123_SUBDOMAIN_FMT}')"
        ));
    }
    out
}

/// An RFC 1035 label (starts with a letter): Service names, which become DNS
/// labels of their own (`web.default.svc.cluster.local`).
pub fn dns1035_label(s: &str) -> Vec<String> {
    let mut out = vec![];
    if s.len() > DNS1123_LABEL_MAX {
        out.push(format!(
            "must be no more than {DNS1123_LABEL_MAX} characters"
        ));
    }
    if !is_label_shape(s, |c| c.is_ascii_lowercase()) {
        out.push(format!(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with \
             an alphabetic character, and end with an alphanumeric character (e.g. 'my-name', or \
             'abc-123', regex used for validation is '{DNS1035_LABEL_FMT}')"
        ));
    }
    out
}

fn is_qualified_part(s: &str) -> bool {
    let ok_end = |c: char| c.is_ascii_alphanumeric();
    !s.is_empty()
        && s.chars().next().is_some_and(ok_end)
        && s.chars().last().is_some_and(ok_end)
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A qualified name: label and annotation keys, selector keys
/// (`app`, `app.kubernetes.io/name`): an optional DNS subdomain prefix and
/// `/`, then a name of at most 63 characters.
pub fn qualified_name(s: &str) -> Vec<String> {
    let mut out = vec![];
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if name.contains('/') {
        out.push(format!(
            "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must \
             start and end with an alphanumeric character (e.g. 'MyName', or 'my.name', or \
             '123-abc', regex used for validation is '{QUALIFIED_NAME_FMT}') with an optional DNS \
             subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ));
        return out;
    }
    if let Some(p) = prefix {
        if p.is_empty() {
            out.push("prefix part must be non-empty".into());
        } else {
            out.extend(
                dns1123_subdomain(p)
                    .into_iter()
                    .map(|m| format!("prefix part {m}")),
            );
        }
    }
    if name.is_empty() {
        out.push("name part must be non-empty".into());
    } else {
        if name.len() > QUALIFIED_NAME_MAX {
            out.push(format!(
                "name part must be no more than {QUALIFIED_NAME_MAX} characters"
            ));
        }
        if !is_qualified_part(name) {
            out.push(format!(
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must \
                 start and end with an alphanumeric character (e.g. 'MyName', or 'my.name', or \
                 '123-abc', regex used for validation is '{QUALIFIED_NAME_FMT}')"
            ));
        }
    }
    out
}

/// A label value: empty, or at most 63 characters of the qualified-name
/// alphabet, starting and ending alphanumeric.
pub fn label_value(s: &str) -> Vec<String> {
    let mut out = vec![];
    if s.len() > LABEL_VALUE_MAX {
        out.push(format!("must be no more than {LABEL_VALUE_MAX} characters"));
    }
    if !s.is_empty() && !is_qualified_part(s) {
        out.push(format!(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' \
             or '.', and must start and end with an alphanumeric character (e.g. 'MyValue', or \
             'my_value', or '12345', regex used for validation is '(({QUALIFIED_NAME_FMT})?')"
        ));
    }
    out
}

/// An IANA service name (`IANA_SVC_NAME`): a named container port or a
/// Service's named `targetPort`: 1–15 characters of `[a-z0-9-]`, at least
/// one letter, no leading, trailing or doubled hyphen.
pub fn port_name(s: &str) -> Vec<String> {
    let mut out = vec![];
    if s.is_empty() || s.len() > 15 {
        out.push("must be no more than 15 characters".into());
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        out.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !s.chars().any(|c| c.is_ascii_lowercase()) {
        out.push("must contain at least one letter (a-z)".into());
    }
    if s.contains("--") {
        out.push("must not contain consecutive hyphens".into());
    }
    if s.starts_with('-') || s.ends_with('-') {
        out.push("must not begin or end with a hyphen".into());
    }
    out
}

/// A port number: 1–65535.
pub fn port_number(p: i64) -> Option<String> {
    (!(1..=65535).contains(&p)).then(|| "must be between 1 and 65535, inclusive".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_subdomains() {
        for ok in ["a", "web", "my-app-1", "0abc", &"a".repeat(63)] {
            assert!(dns1123_label(ok).is_empty(), "{ok}");
        }
        for bad in ["", "Web", "-a", "a-", "a_b", "a.b", &"a".repeat(64)] {
            assert!(!dns1123_label(bad).is_empty(), "{bad}");
        }
        assert!(dns1123_subdomain("a.b-c.d").is_empty());
        assert!(!dns1123_subdomain("a..b").is_empty());
        assert!(!dns1123_subdomain(".a").is_empty());
        assert!(!dns1123_subdomain(&"a".repeat(254)).is_empty());
        assert!(dns1035_label("web-1").is_empty());
        assert!(
            !dns1035_label("1web").is_empty(),
            "a Service name starts with a letter"
        );
    }

    #[test]
    fn qualified_names_and_values() {
        for ok in [
            "app",
            "App_1.x",
            "app.kubernetes.io/name",
            "kubernetes.io/metadata.name",
            "a/B",
        ] {
            assert!(
                qualified_name(ok).is_empty(),
                "{ok}: {:?}",
                qualified_name(ok)
            );
        }
        for bad in [
            "",
            "/a",
            "a/",
            "a/b/c",
            "-a",
            "Example.com/a",
            "a b",
            &"a".repeat(64),
        ] {
            assert!(!qualified_name(bad).is_empty(), "{bad}");
        }
        for ok in ["", "v1", "A.b_c-d", &"x".repeat(63)] {
            assert!(label_value(ok).is_empty(), "{ok}");
        }
        for bad in ["-v", "v-", "a/b", "a b", &"x".repeat(64)] {
            assert!(!label_value(bad).is_empty(), "{bad}");
        }
    }

    #[test]
    fn port_names() {
        for ok in ["http", "http-alt", "h2c", "a1", "metrics-port-1"] {
            assert!(port_name(ok).is_empty(), "{ok}");
        }
        for bad in [
            "",
            "80",
            "-http",
            "http-",
            "ht--tp",
            "HTTP",
            "a-very-long-port-name",
        ] {
            assert!(!port_name(bad).is_empty(), "{bad}");
        }
        assert!(port_number(0).is_some());
        assert!(port_number(1).is_none());
        assert!(port_number(65535).is_none());
        assert!(port_number(65536).is_some());
    }
}
