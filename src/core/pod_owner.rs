//! Which workload a pod belongs to: the one its controller owner chain leads to, as the
//! controllers themselves decide (a label selector alone may overlap another workload's pods: a
//! `web-canary` whose pods also carry `app: web` is allowed, and the ReplicaSet controller goes by
//! owner references).
//!
//! A StatefulSet owns its pods directly. A Deployment or a Rollout owns a ReplicaSet that owns
//! the pods; the ReplicaSet is not watched (a second cache of every ReplicaSet of the cluster for
//! one link), its owner is read from its name instead: both controllers name the ReplicaSet
//! `<workload>-<hash>` and stamp the pods with `<revision label>: <hash>`, and the hash has no
//! `-`, so the name and the label together say which workload made it. A ReplicaSet created by
//! hand under exactly such a name is taken for the workload's: the one shape this reading cannot
//! tell apart.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use crate::core::topology::{Labels, PodOwner};
use crate::core::workload::kinds;

/// The controller reference among a pod's owner references (at most one has `controller: true`).
pub fn controller_of(references: &[OwnerReference]) -> Option<&OwnerReference> {
    references.iter().find(|r| r.controller == Some(true))
}

/// The workload a pod with these owner references and labels belongs to (`None`: no supported
/// kind's, e.g. a bare pod, a Job's, or a ReplicaSet made by hand under another name).
pub fn owner_of(references: &[OwnerReference], labels: &Labels) -> Option<PodOwner> {
    let controller = controller_of(references)?;
    kinds().find_map(|kind| {
        if kind.scales_through_replicasets {
            let hash = labels.get(kind.revision_label?)?;
            let name = (controller.kind == "ReplicaSet" && controller.api_version == "apps/v1")
                .then_some(controller.name.as_str())?
                .strip_suffix(hash.as_str())?
                .strip_suffix('-')?;
            (!name.is_empty() && !hash.is_empty()).then(|| PodOwner {
                kind: kind.kind,
                name: name.to_string(),
            })
        } else {
            (controller.kind == kind.name() && controller.api_version == kind.api_version()).then(
                || PodOwner {
                    kind: kind.kind,
                    name: controller.name.clone(),
                },
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::WorkloadKind;

    fn reference(api_version: &str, kind: &str, name: &str, controller: bool) -> OwnerReference {
        OwnerReference {
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
            controller: Some(controller),
            ..Default::default()
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn owner(kind: WorkloadKind, name: &str) -> Option<PodOwner> {
        Some(PodOwner {
            kind,
            name: name.into(),
        })
    }

    #[test]
    fn a_replicaset_leads_to_the_deployment_its_name_and_hash_say() {
        let web = labels(&[("app", "web"), ("pod-template-hash", "5d8f9")]);
        let rs = |name: &str| [reference("apps/v1", "ReplicaSet", name, true)];
        assert_eq!(
            owner_of(&rs("web-5d8f9"), &web),
            owner(WorkloadKind::Deployment, "web")
        );
        // The canary's pods carry `app: web` too, but their ReplicaSet is the canary's.
        let canary = labels(&[("app", "web"), ("pod-template-hash", "77c4b")]);
        assert_eq!(
            owner_of(&rs("web-canary-77c4b"), &canary),
            owner(WorkloadKind::Deployment, "web-canary")
        );
        // A ReplicaSet whose name does not end in the pod's hash was made by hand: no workload's.
        assert_eq!(owner_of(&rs("web-by-hand"), &web), None);
        assert_eq!(owner_of(&rs("5d8f9"), &web), None);
        // No hash label, a reference that is not the controller: no workload's.
        assert_eq!(owner_of(&rs("web-5d8f9"), &labels(&[("app", "web")])), None);
        let not_controller = [reference("apps/v1", "ReplicaSet", "web-5d8f9", false)];
        assert_eq!(owner_of(&not_controller, &web), None);
    }

    #[test]
    fn rollouts_and_statefulsets_are_read_by_their_own_marks() {
        let rollout_pod = labels(&[("app", "was"), ("rollouts-pod-template-hash", "6b9c")]);
        assert_eq!(
            owner_of(
                &[reference("apps/v1", "ReplicaSet", "was-6b9c", true)],
                &rollout_pod
            ),
            owner(WorkloadKind::Rollout, "was")
        );
        let sts = [reference("apps/v1", "StatefulSet", "db", true)];
        assert_eq!(
            owner_of(&sts, &labels(&[("app", "db")])),
            owner(WorkloadKind::StatefulSet, "db")
        );
        let job = [reference("batch/v1", "Job", "db", true)];
        assert_eq!(owner_of(&job, &labels(&[("app", "db")])), None);
        assert_eq!(owner_of(&[], &labels(&[("app", "db")])), None);
    }
}
