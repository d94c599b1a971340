//! `Pod` (v1) and `Deployment` (apps/v1): what aksnet reads from them is
//! their labels, container ports, node and, for Pods, `status.podIP` and
//! readiness.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::meta::{Extra, IntOrString, LabelSelector, ObjectMeta};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pod {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: PodSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PodStatus>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(default)]
    pub containers: Vec<Container>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_containers: Vec<Container>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdomain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_network: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub container_port: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<i64>,
    #[serde(rename = "hostIP", default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(rename = "podIP", default, skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
    #[serde(rename = "podIPs", default, skip_serializing_if = "Vec::is_empty")]
    pub pod_ips: Vec<PodIp>,
    #[serde(rename = "hostIP", default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<PodCondition>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PodIp {
    pub ip: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// How a Pod counts for its Services' endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    pub terminating: bool,
}

impl Pod {
    /// `status.podIP` (or the first of `status.podIPs`) as IPv4.
    pub fn pod_ipv4(&self) -> Option<Ipv4Addr> {
        let st = self.status.as_ref()?;
        st.pod_ip
            .as_deref()
            .or(st.pod_ips.first().map(|p| p.ip.as_str()))?
            .parse()
            .ok()
    }

    pub fn phase(&self) -> Option<&str> {
        self.status.as_ref()?.phase.as_deref()
    }

    /// Ready as the EndpointSlice controller sees it: the `Ready` condition
    /// is `"True"`. A Pod whose status carries no `Ready` condition at all
    /// (a hand-written status, `{podIP: …}`) counts as ready when its phase
    /// is `Running` or unset: the simple ready flag of a store without a
    /// kubelet. A Pod with `deletionTimestamp` is terminating and never
    /// ready.
    pub fn readiness(&self) -> Readiness {
        let terminating = self.metadata.deletion_timestamp.is_some();
        Readiness {
            ready: self.ready_condition() && !terminating,
            terminating,
        }
    }

    /// The Ready condition alone (whether the Pod serves), before
    /// termination is taken into account; see [`Pod::readiness`].
    pub fn ready_condition(&self) -> bool {
        let cond = self
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
        match cond {
            Some(c) => c.status == "True",
            None => matches!(self.phase(), None | Some("Running")),
        }
    }

    /// Succeeded and Failed pods are gone for their Services.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase(), Some("Succeeded" | "Failed"))
    }

    /// The number a Service's `targetPort` names on this Pod
    /// (`podutil.FindPort`): a number is itself; a name is the container
    /// port of that name and protocol, if any.
    pub fn find_port(&self, target: &IntOrString, protocol: &str) -> Option<u16> {
        match target {
            IntOrString::Int(n) => u16::try_from(*n).ok().filter(|n| *n > 0),
            IntOrString::Str(name) => self
                .spec
                .containers
                .iter()
                .flat_map(|c| c.ports.iter())
                .find(|p| p.name.as_deref() == Some(name) && p.protocol() == protocol)
                .and_then(|p| u16::try_from(p.container_port).ok()),
        }
    }
}

impl ContainerPort {
    pub fn protocol(&self) -> &str {
        self.protocol.as_deref().unwrap_or("TCP")
    }
}

impl PodSpec {
    pub fn set_defaults(&mut self) {
        for c in self
            .containers
            .iter_mut()
            .chain(self.init_containers.iter_mut())
        {
            for p in &mut c.ports {
                if p.protocol.is_none() {
                    p.protocol = Some("TCP".into());
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: DeploymentSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Extra>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    #[serde(default)]
    pub template: PodTemplateSpec,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateSpec {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: PodSpec,
}

impl Deployment {
    /// `spec.replicas`, default 1.
    pub fn replicas(&self) -> i64 {
        self.spec.replicas.unwrap_or(1)
    }

    pub fn set_defaults(&mut self) {
        self.spec.replicas.get_or_insert(1);
        self.spec.template.spec.set_defaults();
    }
}
