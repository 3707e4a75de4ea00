//! What a scaling group is on Kubernetes: a workload with the `scale` subresource or a Cluster
//! API node group, addressed as `KIND/NAMESPACE/NAME`.
//!
//! `KIND` is a kind or plural name, case-insensitive, optionally followed by `.` and the API
//! group: `deployment/default/web`, `statefulsets/db/pg`, `replicaset/default/rs-1`,
//! `machinedeployment/capi/workers`, `scaledjobs.example.com/ns/job`. Without an API group the
//! built-in kinds are found in `apps` (Deployment, StatefulSet, ReplicaSet) and
//! `cluster.x-k8s.io` (MachineDeployment, MachineSet); any other kind needs its group. The
//! resource is looked up in the API server's discovery, which also says whether it has the
//! `scale` subresource.

use std::fmt;

use hoist_api::{Error, Result};
use kube::core::{ApiResource, DynamicObject};
use kube::{Api, Client};

use crate::errors::{PROVIDER, from_kube};

/// The Cluster API's group.
pub const CLUSTER_API_GROUP: &str = "cluster.x-k8s.io";

/// What a group's instances are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    /// A workload: its instances are Pods.
    Workload,
    /// A Cluster API node group (MachineDeployment, MachineSet): its instances are Machines.
    NodeGroup,
}

/// A group's address as written in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRef {
    /// Kind or plural name, lower case.
    pub kind: String,
    /// The API group, when given.
    pub api_group: Option<String>,
    /// The namespace.
    pub namespace: String,
    /// The object's name.
    pub name: String,
}

impl fmt::Display for GroupRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.api_group {
            Some(group) => write!(f, "{}.{group}/{}/{}", self.kind, self.namespace, self.name),
            None => write!(f, "{}/{}/{}", self.kind, self.namespace, self.name),
        }
    }
}

impl GroupRef {
    /// Parses `KIND[.GROUP]/NAMESPACE/NAME`.
    pub fn parse(text: &str) -> Result<GroupRef> {
        let bad = |why: &str| {
            Error::invalid_input(format!(
                "group `{text}`: {why}; a Kubernetes group is KIND/NAMESPACE/NAME, e.g. deployment/default/web or machinedeployment/capi/workers"
            ))
            .with_provider(PROVIDER)
        };
        let parts: Vec<&str> = text.split('/').collect();
        let [kind, namespace, name] = parts[..] else {
            return Err(bad("expected three parts separated by `/`"));
        };
        for (what, part) in [("kind", kind), ("namespace", namespace), ("name", name)] {
            if part.is_empty() {
                return Err(bad(&format!("the {what} is empty")));
            }
        }
        let (kind, api_group) = match kind.split_once('.') {
            Some((kind, group)) => (kind, Some(group.to_ascii_lowercase())),
            None => (kind, None),
        };
        Ok(GroupRef {
            kind: kind.to_ascii_lowercase(),
            api_group,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The API group to look the kind up in.
    fn api_group(&self) -> Result<&str> {
        if let Some(group) = &self.api_group {
            return Ok(group);
        }
        match self.kind.as_str() {
            "deployment" | "deployments" | "statefulset" | "statefulsets" | "replicaset"
            | "replicasets" => Ok("apps"),
            "machinedeployment" | "machinedeployments" | "machineset" | "machinesets" => {
                Ok(CLUSTER_API_GROUP)
            }
            other => Err(Error::invalid_input(format!(
                "group `{self}`: `{other}` is not a built-in scalable kind; write it with its API group, e.g. {other}.example.com/{}/{}",
                self.namespace, self.name
            ))
            .with_provider(PROVIDER)),
        }
    }
}

/// A group resolved against the API server.
#[derive(Debug, Clone)]
pub struct Target {
    /// As written.
    pub reference: GroupRef,
    /// The resource.
    pub resource: ApiResource,
    /// Pods or Machines.
    pub kind: GroupKind,
}

impl Target {
    /// The API of the group's object.
    pub fn api(&self, client: &Client) -> Api<DynamicObject> {
        Api::namespaced_with(client.clone(), &self.reference.namespace, &self.resource)
    }

    /// The group's id, as written in the policy file.
    pub fn id(&self) -> String {
        self.reference.to_string()
    }
}

/// Looks `reference` up in the API server's discovery: the resource must exist, be namespaced
/// and have the `scale` subresource.
pub async fn resolve(client: &Client, reference: GroupRef) -> Result<Target> {
    let group = reference.api_group()?.to_owned();
    let discovered = kube::discovery::oneshot::group(client, &group)
        .await
        .map_err(|e| {
            let e = from_kube(e, "discover API group", &group);
            if e.kind() == hoist_api::ErrorKind::NotFound {
                Error::not_found(format!(
                    "group `{reference}`: the API server does not serve the API group `{group}`{}",
                    if group == CLUSTER_API_GROUP {
                        " (install Cluster API, or its CRDs)"
                    } else {
                        ""
                    }
                ))
                .with_provider(PROVIDER)
            } else {
                e
            }
        })?;
    let found = discovered
        .recommended_resources()
        .into_iter()
        .find(|(ar, _)| {
            ar.kind.eq_ignore_ascii_case(&reference.kind)
                || ar.plural.eq_ignore_ascii_case(&reference.kind)
        });
    let Some((resource, capabilities)) = found else {
        return Err(Error::not_found(format!(
            "group `{reference}`: the API group `{group}` has no kind `{}`",
            reference.kind
        ))
        .with_provider(PROVIDER));
    };
    if !capabilities
        .subresources
        .iter()
        .any(|(sub, _)| sub.plural == "scale")
    {
        return Err(Error::invalid_input(format!(
            "group `{reference}`: {} has no `scale` subresource, so it cannot be scaled",
            resource.kind
        ))
        .with_provider(PROVIDER));
    }
    let kind = if resource.group == CLUSTER_API_GROUP {
        GroupKind::NodeGroup
    } else {
        GroupKind::Workload
    };
    Ok(Target {
        reference,
        resource,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kind_namespace_and_name() {
        let r = GroupRef::parse("Deployment/default/web").unwrap();
        assert_eq!(
            (
                r.kind.as_str(),
                r.api_group.clone(),
                r.namespace.as_str(),
                r.name.as_str()
            ),
            ("deployment", None, "default", "web")
        );
        assert_eq!(r.to_string(), "deployment/default/web");
        let r = GroupRef::parse("scaledwidgets.example.com/ns/w").unwrap();
        assert_eq!(r.api_group.as_deref(), Some("example.com"));
        assert_eq!(r.api_group().unwrap(), "example.com");
        assert_eq!(
            GroupRef::parse("machinedeployment/capi/md")
                .unwrap()
                .api_group()
                .unwrap(),
            CLUSTER_API_GROUP
        );
    }

    #[test]
    fn a_malformed_address_says_the_form() {
        for bad in ["web", "deployment/web", "deployment//web", "a/b/c/d"] {
            let e = GroupRef::parse(bad).unwrap_err();
            assert!(e.to_string().contains("KIND/NAMESPACE/NAME"), "{bad}: {e}");
        }
        let e = GroupRef::parse("widget/ns/w")
            .unwrap()
            .api_group()
            .unwrap_err();
        assert!(e.to_string().contains("API group"), "{e}");
    }
}
