//! The network plugin AKS picks when a cluster names none, by its
//! Kubernetes version.
//!
//! The facts (documented sources):
//! - AKS defaults `networkProfile.networkPlugin` by the cluster's
//!   Kubernetes version, not by API version: "The default value in k8s <
//!   1.30 will remain kubenet while in 1.30+ it will be CNI Overlay"
//!   (Azure/azure-rest-api-specs PR #30844 and #30845, 2024-10-03, which
//!   removed the API's `"default": "kubenet"` from the schema).
//! - The AKS release of 2024-10-25 (Azure/AKS CHANGELOG, PR #4760): "Azure
//!   CNI Overlay is now the default networking configuration for AKS
//!   clusters"; `az aks create` sends no plugin and leaves the choice to
//!   AKS (Azure/azure-cli issue #29946, closed as not needed).
//! - `az aks show` on a 1.30 cluster created without `--network-plugin`
//!   reports `azure` with mode `overlay` (Azure/AKS issue #4897).
//!
//! Before that change every API version's schema defaulted to kubenet,
//! which is what a template written for a pre-1.30 cluster still gets.

use super::NetworkPlugin;

/// The first minor version whose default is Azure CNI Overlay.
pub const OVERLAY_DEFAULT_FROM: (u32, u32) = (1, 30);

/// `1.29`, `1.29.7`, `v1.30.0`, `1.31.1-hotfix.2024` → (major, minor).
pub fn parse(version: &str) -> Option<(u32, u32)> {
    let v = version.trim();
    let v = v.strip_prefix(['v', 'V']).unwrap_or(v);
    let mut parts = v.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// What AKS uses for a cluster that names no plugin, and why (for the
/// `network-plugin-defaulted` warning). An unknown or unreadable version is
/// planned as today's default: AKS's supported versions are all past 1.30.
pub fn default_plugin(version: Option<&str>) -> (NetworkPlugin, String) {
    let (maj, min) = OVERLAY_DEFAULT_FROM;
    match version.map(|v| (v, parse(v))) {
        Some((v, Some(mm))) if mm < OVERLAY_DEFAULT_FROM => (
            NetworkPlugin::Kubenet,
            format!("planned as kubenet, AKS's default for Kubernetes {v} (before {maj}.{min}; Azure CNI Overlay from {maj}.{min})"),
        ),
        Some((v, Some(_))) => (
            NetworkPlugin::Overlay,
            format!("planned as Azure CNI Overlay, AKS's default for Kubernetes {v} (from {maj}.{min}; kubenet before)"),
        ),
        Some((v, None)) => (
            NetworkPlugin::Overlay,
            format!("the Kubernetes version '{v}' is not MAJOR.MINOR, so planned as Azure CNI Overlay, AKS's default from {maj}.{min} (kubenet before); give --kubernetes-version"),
        ),
        None => (
            NetworkPlugin::Overlay,
            format!("planned as Azure CNI Overlay, AKS's default from Kubernetes {maj}.{min} (kubenet before; give --kubernetes-version for an older cluster)"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(parse("1.29"), Some((1, 29)));
        assert_eq!(parse("1.29.7"), Some((1, 29)));
        assert_eq!(parse("v1.30.0"), Some((1, 30)));
        assert_eq!(parse(" 1.31.1-hotfix.20240101 "), Some((1, 31)));
        assert_eq!(parse("1"), None);
        assert_eq!(parse("${KUBERNETES_VERSION}"), None);
        assert_eq!(parse("latest"), None);
    }

    #[test]
    fn kubenet_before_1_30_overlay_from_1_30() {
        assert_eq!(default_plugin(Some("1.29.9")).0, NetworkPlugin::Kubenet);
        assert_eq!(default_plugin(Some("1.19.7")).0, NetworkPlugin::Kubenet);
        assert_eq!(default_plugin(Some("1.30")).0, NetworkPlugin::Overlay);
        assert_eq!(default_plugin(Some("1.33.2")).0, NetworkPlugin::Overlay);
        assert_eq!(default_plugin(Some("2.0")).0, NetworkPlugin::Overlay);
        assert_eq!(default_plugin(None).0, NetworkPlugin::Overlay);
        let (p, why) = default_plugin(Some("soon"));
        assert_eq!(p, NetworkPlugin::Overlay);
        assert!(why.contains("'soon'") && why.contains("--kubernetes-version"));
        assert!(default_plugin(Some("1.29")).1.contains("Kubernetes 1.29"));
    }
}
