//! YAML for the workloads the scenarios create, shaped like the field reports' (petclinic) ones.

/// `matchLabels` / `labels` YAML flow map from pairs, e.g. `{app: petclinic, tier: web}`.
pub fn flow_map(labels: &[(&str, &str)]) -> String {
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}: \"{v}\""))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

fn pod_template(labels: &[(&str, &str)], extra_labels: &[(&str, &str)]) -> String {
    let all: Vec<(&str, &str)> = labels.iter().chain(extra_labels).copied().collect();
    format!(
        "  template:\n    metadata:\n      labels: {}\n    spec:\n      terminationGracePeriodSeconds: 5\n      \
         containers:\n      - name: app\n        image: nginx:1.27\n        \
         resources: {{requests: {{cpu: 100m, memory: 128Mi}}}}\n",
        flow_map(&all)
    )
}

/// A Deployment whose object and pods carry `labels`.
pub fn deployment(name: &str, replicas: u32, labels: &[(&str, &str)]) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  labels: {l}\nspec:\n  \
         replicas: {replicas}\n  selector:\n    matchLabels: {l}\n{t}",
        l = flow_map(labels),
        t = pod_template(labels, &[])
    )
}

/// A StatefulSet (no volumes) whose object and pods carry `labels`.
pub fn statefulset(name: &str, replicas: u32, labels: &[(&str, &str)]) -> String {
    format!(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: {name}\n  labels: {l}\nspec:\n  \
         replicas: {replicas}\n  serviceName: {name}\n  selector:\n    matchLabels: {l}\n{t}",
        l = flow_map(labels),
        t = pod_template(labels, &[])
    )
}

/// An Argo Rollouts `Rollout` (argoproj.io/v1alpha1) with a canary strategy. No Argo controller
/// runs in the suite: pair it with [`rollout_replicaset`] to get pods.
pub fn rollout(name: &str, replicas: u32, labels: &[(&str, &str)]) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: {name}\n  labels: {l}\nspec:\n  \
         replicas: {replicas}\n  selector:\n    matchLabels: {l}\n  strategy:\n    canary:\n      steps:\n      \
         - setWeight: 10\n      - setWeight: 50\n      - setWeight: 90\n{t}",
        l = flow_map(labels),
        t = pod_template(labels, &[])
    )
}

/// The ReplicaSet Argo Rollouts would create for a Rollout (`rollout_name`, `rollout_uid`): owned by
/// it (controller: true), its selector and pods carrying `rollouts-pod-template-hash: <hash>`.
pub fn rollout_replicaset(
    rollout_name: &str,
    rollout_uid: &str,
    hash: &str,
    replicas: u32,
    labels: &[(&str, &str)],
) -> String {
    let with_hash: Vec<(&str, &str)> = labels
        .iter()
        .copied()
        .chain([("rollouts-pod-template-hash", hash)])
        .collect();
    format!(
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: {rollout_name}-{hash}\n  labels: {l}\n  \
         ownerReferences:\n  - apiVersion: argoproj.io/v1alpha1\n    kind: Rollout\n    name: {rollout_name}\n    \
         uid: {rollout_uid}\n    controller: true\n    blockOwnerDeletion: true\nspec:\n  replicas: {replicas}\n  \
         selector:\n    matchLabels: {l}\n{t}",
        l = flow_map(&with_hash),
        t = pod_template(labels, &[("rollouts-pod-template-hash", hash)])
    )
}
