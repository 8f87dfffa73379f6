//! What scenarios use: the shared [`Env`] (client, fake kubelet, kubeconfig), a per-scenario
//! [`Ctx`] with its own namespace, polling with [`wait_for`], applying YAML, CRDs (the suite's, and
//! those of `../shared/testdata/` a scenario asks for: [`TestdataCrd`]), `kubectl`, the fake
//! autoscaler ([`Ctx::start_autoscaler`]), and running the operator binary ([`OperatorProcess`]).

use std::collections::BTreeMap;
use std::fs;
use std::future::Future;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::pinned_kind;
use kube::runtime::utils::ResetTimerBackoff;
use kube::runtime::watcher::ExponentialBackoff;
use kube::{Client, Resource, ResourceExt};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::control_plane::{ApiServer, find_on_path, free_port, kill_group};
use crate::fake_autoscaler::{AutoscalerConfig, FakeAutoscaler};
use crate::fake_kubelet::{FakeKubelet, count_by_zone, is_ready};

/// Field manager of everything the tests themselves apply.
pub const TEST_MANAGER: &str = "e2e-test";

/// Everything a scenario may need that is shared by the whole suite. Cheap to clone.
#[derive(Clone)]
pub struct Env {
    pub client: Client,
    pub kubelet: FakeKubelet,
    pub kubeconfig: PathBuf,
    /// A directory for this run's files (operator logs); kept with `SKEWGUARD_E2E_KEEP=1`.
    pub work_dir: PathBuf,
    /// `kubectl` from the control-plane binaries, else from `PATH`.
    pub kubectl: Option<PathBuf>,
    /// The repository root (the operator's `CARGO_MANIFEST_DIR`).
    pub repo: PathBuf,
    /// Whether the Argo Rollouts `Rollout` CRD is installed (its YAML was found).
    pub rollout_crd: bool,
    /// Stops and starts our own kube-apiserver (`None` against an existing cluster).
    pub apiserver: Option<ApiServer>,
    /// The `skewguard` binary [`OperatorProcess`] runs.
    pub operator_bin: PathBuf,
}

/// One scenario's view: the shared [`Env`] plus its own namespace (deleted after the scenario).
#[derive(Clone)]
pub struct Ctx {
    pub env: Env,
    pub ns: String,
}

impl Deref for Ctx {
    type Target = Env;
    fn deref(&self) -> &Env {
        &self.env
    }
}

pub fn client_from(kubeconfig: &Path) -> impl Future<Output = Client> + use<> {
    let kubeconfig = kubeconfig.to_path_buf();
    async move {
        let kc = Kubeconfig::read_from(&kubeconfig)
            .unwrap_or_else(|e| panic!("read kubeconfig {}: {e}", kubeconfig.display()));
        let mut config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("kubeconfig to client config");
        config.read_timeout = Some(Duration::from_secs(60));
        Client::try_from(config).expect("build kube client")
    }
}

/// How the testbed's own watches (the fake kubelet's, PodChurn's) retry after an error: from half
/// a second, at most 2 s apart, reset after 30 s without one. kube's default waits up to 30 s, so
/// after an API server outage the fake kubelet missed for half a minute that the node-lifecycle
/// controller had marked its pods NotReady: longer than any kubelet leaves a pod's status wrong.
pub fn watch_backoff() -> ResetTimerBackoff<ExponentialBackoff> {
    ResetTimerBackoff::new(
        backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(500))
            .with_max_delay(Duration::from_secs(2))
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .into(),
        Duration::from_secs(30),
    )
}

/// Polls `check` every 250 ms until it returns `Some`, and returns that. Panics after `timeout`,
/// naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The `ApiResource` of a custom resource: its group, version, kind and plural.
pub fn custom_resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// The `ApiResource` of `HAPolicy` (skewguard.dev/v1alpha1).
pub fn hapolicy_resource() -> ApiResource {
    custom_resource("skewguard.dev", "v1alpha1", "HAPolicy", "hapolicies")
}

/// The `ApiResource` of Argo Rollouts' `Rollout` (argoproj.io/v1alpha1).
pub fn rollout_resource() -> ApiResource {
    custom_resource("argoproj.io", "v1alpha1", "Rollout", "rollouts")
}

impl Env {
    /// Applies every CRD in `crds/` and, when present, `../shared/testdata/argo-rollouts-rollout-crd.yaml`;
    /// returns once all are Established. Returns whether the Rollout CRD was installed.
    pub async fn install_crds(client: &Client, repo: &Path) -> bool {
        let mut files: Vec<PathBuf> = fs::read_dir(repo.join("crds"))
            .expect("read crds/")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        let rollout = repo.join("../shared/testdata/argo-rollouts-rollout-crd.yaml");
        let has_rollout = rollout.is_file();
        if has_rollout {
            files.push(rollout);
        } else {
            eprintln!(
                "e2e: note: {} is missing; Rollout scenarios will be skipped",
                rollout.display()
            );
        }
        apply_crd_files(client, &files).await;
        has_rollout
    }

    /// Where `crd`'s YAML is, if it is there.
    pub fn testdata_crd(&self, crd: TestdataCrd) -> Option<PathBuf> {
        let path = self.repo.join("../shared/testdata").join(crd.file());
        path.is_file().then_some(path)
    }

    /// Installs `crd` from `../shared/testdata/` (a no-op when it is installed already) and
    /// returns once it is Established. Panics when the file is missing (see [`Env::testdata_crd`]).
    pub async fn install_testdata_crd(&self, crd: TestdataCrd) {
        let path = self
            .testdata_crd(crd)
            .unwrap_or_else(|| panic!("no {} in ../shared/testdata", crd.file()));
        apply_crd_files(&self.client, &[path]).await;
    }

    /// Deletes `crd` (and with it every object of its kind) and returns once the API no longer
    /// serves it: a test of a cluster without that API. The CRDs stay for the rest of the run
    /// otherwise, so a test that needs an API absent removes it.
    pub async fn remove_testdata_crd(&self, crd: TestdataCrd) {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        match crds.delete(crd.name(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return,
            Err(e) => panic!("delete CRD {}: {e}", crd.name()),
        }
        wait_for(
            &format!("CRD {} gone", crd.name()),
            Duration::from_secs(60),
            || {
                let crds = crds.clone();
                async move { matches!(crds.get_opt(crd.name()).await, Ok(None)).then_some(()) }
            },
        )
        .await;
    }

    /// `kubectl --kubeconfig <ours> args...`; panics when there is no kubectl.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        let kubectl = self
            .kubectl
            .as_ref()
            .expect("no kubectl in the control-plane binaries or PATH");
        Command::new(kubectl)
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .args(args)
            .output()
            .expect("run kubectl")
    }

    /// Finds `kubectl` next to the control-plane binaries or on `PATH`.
    pub fn find_kubectl(assets_dir: Option<&Path>) -> Option<PathBuf> {
        assets_dir
            .map(|d| d.join("kubectl"))
            .filter(|p| p.is_file())
            .or_else(|| find_on_path("kubectl"))
    }
}

/// A CRD from `../shared/testdata/` that tests install when they need its API
/// ([`Env::install_testdata_crd`], [`Env::remove_testdata_crd`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestdataCrd {
    /// Karpenter's `NodePool` (karpenter.sh/v1), read by the fake autoscaler.
    NodePool,
    /// SIG Autoscaling's `CapacityBuffer` (autoscaling.x-k8s.io/v1beta1), served by the fake autoscaler.
    CapacityBuffer,
}

impl TestdataCrd {
    pub fn file(self) -> &'static str {
        match self {
            TestdataCrd::NodePool => "karpenter-nodepool-crd.yaml",
            TestdataCrd::CapacityBuffer => "capacitybuffer-crd.yaml",
        }
    }

    /// The CustomResourceDefinition's name.
    pub fn name(self) -> &'static str {
        match self {
            TestdataCrd::NodePool => "nodepools.karpenter.sh",
            TestdataCrd::CapacityBuffer => "capacitybuffers.autoscaling.x-k8s.io",
        }
    }
}

/// Server-side applies every CustomResourceDefinition in `files` (other documents are skipped)
/// and waits until each is Established.
async fn apply_crd_files(client: &Client, files: &[PathBuf]) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for file in files {
        let text = fs::read_to_string(file).unwrap();
        // Only the CRDs (crds/ also holds e.g. a kustomization.yaml).
        let docs: Vec<CustomResourceDefinition> = serde_yaml::Deserializer::from_str(&text)
            .map(|doc| {
                serde_json::Value::deserialize(doc)
                    .unwrap_or_else(|e| panic!("parse {}: {e}", file.display()))
            })
            .filter(|v| v["kind"] == "CustomResourceDefinition")
            .map(|v| {
                serde_json::from_value(v)
                    .unwrap_or_else(|e| panic!("parse {}: {e}", file.display()))
            })
            .collect();
        for crd in docs {
            let name = crd.name_any();
            crds.patch(
                &name,
                &PatchParams::apply(TEST_MANAGER).force(),
                &Patch::Apply(&crd),
            )
            .await
            .unwrap_or_else(|e| panic!("install CRD {name}: {e}"));
            names.push(name);
        }
    }
    for name in names {
        wait_for(
            &format!("CRD {name} Established"),
            Duration::from_secs(30),
            || {
                let crds = crds.clone();
                let name = name.clone();
                async move {
                    let crd = crds.get(&name).await.ok()?;
                    let established = crd
                        .status?
                        .conditions?
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True");
                    established.then_some(())
                }
            },
        )
        .await;
    }
}

impl Ctx {
    /// A namespaced API in this scenario's namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// A dynamic API (e.g. [`hapolicy_resource`], [`rollout_resource`]) in this scenario's namespace.
    pub fn dynamic(&self, ar: &ApiResource) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.ns, ar)
    }

    /// Creates the namespace.
    pub async fn create_namespace(&self) {
        let ns: Api<Namespace> = Api::all(self.client.clone());
        let obj: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": self.ns, "labels": {"skewguard.dev/e2e": "true"}}
        }))
        .unwrap();
        ns.create(&PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("create namespace {}: {e}", self.ns));
    }

    /// Deletes the namespace without waiting (the namespace controller and the fake kubelet finish it).
    pub async fn delete_namespace(&self) {
        let ns: Api<Namespace> = Api::all(self.client.clone());
        let _ = ns.delete(&self.ns, &DeleteParams::default()).await;
    }

    /// Server-side applies every document of `yaml` (field manager [`TEST_MANAGER`]) into this
    /// namespace (unless a document names another) and returns the applied objects.
    pub async fn apply(&self, yaml: &str) -> Vec<DynamicObject> {
        let docs: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(yaml)
            .map(|doc| serde::Deserialize::deserialize(doc).expect("parse YAML"))
            .filter(|v: &serde_json::Value| !v.is_null())
            .collect();
        let mut applied = Vec::new();
        for value in docs {
            let mut obj: DynamicObject =
                serde_json::from_value(value).expect("a Kubernetes object");
            let gvk = GroupVersionKind::try_from(obj.types.as_ref().expect("apiVersion and kind"))
                .expect("apiVersion and kind");
            let (ar, caps) = pinned_kind(&self.client, &gvk)
                .await
                .unwrap_or_else(|e| panic!("discover {gvk:?}: {e}"));
            let api: Api<DynamicObject> = if caps.scope == kube::discovery::Scope::Namespaced {
                let ns = obj.namespace().unwrap_or_else(|| self.ns.clone());
                obj.metadata.namespace = Some(ns.clone());
                Api::namespaced_with(self.client.clone(), &ns, &ar)
            } else {
                Api::all_with(self.client.clone(), &ar)
            };
            let name = obj.name_any();
            let out = api
                .patch(
                    &name,
                    &PatchParams::apply(TEST_MANAGER).force(),
                    &Patch::Apply(&obj),
                )
                .await
                .unwrap_or_else(|e| panic!("apply {} {name}: {e}", gvk.kind));
            applied.push(out);
        }
        applied
    }

    /// The pods of this namespace matching `selector` (a label selector string, e.g. `app=web`).
    pub async fn pods(&self, selector: &str) -> Vec<Pod> {
        self.api::<Pod>()
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap_or_else(|e| panic!("list pods {selector}: {e}"))
            .items
    }

    /// Running-and-Ready, not terminating pods matching `selector`, counted per zone.
    pub async fn ready_pods_by_zone(&self, selector: &str) -> BTreeMap<String, usize> {
        let pods = self.pods(selector).await;
        let ready = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p));
        count_by_zone(&self.kubelet, ready)
    }

    /// Waits until exactly the `expected` per-zone counts of Ready pods match `selector`.
    pub async fn wait_ready_pods_by_zone(
        &self,
        selector: &str,
        expected: &BTreeMap<String, usize>,
        timeout: Duration,
    ) {
        let mut last = BTreeMap::new();
        let start = Instant::now();
        while start.elapsed() < timeout {
            last = self.ready_pods_by_zone(selector).await;
            if &last == expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let pods: Vec<String> = self
            .pods(selector)
            .await
            .iter()
            .map(|p| {
                let spec = p.spec.as_ref();
                let node = spec.and_then(|s| s.node_name.clone()).unwrap_or_default();
                let phase = p.status.as_ref().and_then(|s| s.phase.clone());
                let unscheduled = p
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .and_then(|cs| {
                        cs.iter()
                            .find(|c| c.type_ == "PodScheduled" && c.status != "True")
                    })
                    .and_then(|c| c.message.clone())
                    .unwrap_or_default();
                format!(
                    "{} node={node} phase={} ready={} terminating={} {unscheduled}",
                    p.metadata.name.as_deref().unwrap_or(""),
                    phase.unwrap_or_default(),
                    is_ready(p),
                    p.metadata.deletion_timestamp.is_some()
                )
            })
            .collect();
        let nodes: Vec<String> = Api::<Node>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
            .iter()
            .map(|n| {
                let taints: Vec<String> = n
                    .spec
                    .as_ref()
                    .and_then(|s| s.taints.as_ref())
                    .map(|ts| {
                        ts.iter()
                            .map(|t| format!("{}:{}", t.key, t.effect))
                            .collect()
                    })
                    .unwrap_or_default();
                let ready = n
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
                    .map(|c| c.status.clone())
                    .unwrap_or_default();
                format!(
                    "{} ready={ready} taints={taints:?}",
                    n.metadata.name.as_deref().unwrap_or("")
                )
            })
            .collect();
        panic!(
            "ready pods {selector} per zone: wanted {expected:?}, still {last:?} after {timeout:?}; \
             pods: {pods:#?}; nodes: {nodes:#?}"
        );
    }

    /// Reads a namespaced object of type `K` by name.
    pub async fn get<K>(&self, name: &str) -> K
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        <K as Resource>::DynamicType: Default,
    {
        self.api::<K>()
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("get {} {name}: {e}", K::kind(&Default::default())))
    }

    /// Starts the fake autoscaler against the suite's cluster, launching and removing nodes through
    /// the suite's fake kubelet; it stops when the returned handle is dropped (with the scenario).
    /// Lay the scenario's nodes out first: [`FakeKubelet::ensure_nodes`] removes every node not in
    /// its layout, autoscaled ones too. Install [`TestdataCrd::NodePool`] (and
    /// [`TestdataCrd::CapacityBuffer`] to have buffers served) before applying their objects.
    pub async fn start_autoscaler(&self, config: AutoscalerConfig) -> FakeAutoscaler {
        FakeAutoscaler::start(self.client.clone(), self.kubelet.clone(), config).await
    }

    /// Starts the operator binary with `args` (see [`OperatorProcess::start`]).
    pub fn operator(&self, args: &[&str]) -> OperatorProcess {
        OperatorProcess::start(&self.env, args)
    }
}

/// Process ids (and process groups) of the operators running now: an interrupted run kills them
/// ([`kill_running_operators`]), since it exits without dropping their [`OperatorProcess`].
static RUNNING_OPERATORS: std::sync::Mutex<std::collections::BTreeSet<u32>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// SIGKILLs the process group of every operator still running.
pub fn kill_running_operators() {
    for pid in std::mem::take(&mut *RUNNING_OPERATORS.lock().unwrap()) {
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{pid}")])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// The `skewguard` binary, running against the suite's cluster. Killed on drop; its log is printed
/// when the scenario panics (or always with `SKEWGUARD_E2E_LOGS=1`).
pub struct OperatorProcess {
    child: Option<Child>,
    pub log: PathBuf,
    pub metrics_addr: String,
    pub health_addr: String,
    /// Never print the log on drop (a soak's logs run to many megabytes; it keeps their paths).
    pub quiet: bool,
}

impl OperatorProcess {
    /// Runs `skewguard <args>` with `KUBECONFIG` set to the suite's kubeconfig,
    /// `RUST_LOG=info,skewguard=debug` unless set, stdout and stderr in a log file. Returns at once.
    /// For `run`, pass e.g. `["run", "--metrics-addr", &op_metrics]`; [`OperatorProcess::addrs`] gives free ports.
    pub fn start(env: &Env, args: &[&str]) -> OperatorProcess {
        let (metrics_addr, health_addr) = Self::addrs();
        Self::start_with_addrs(env, args, metrics_addr, health_addr)
    }

    /// Two free loopback addresses (for `--metrics-addr` and `--health-addr`).
    pub fn addrs() -> (String, String) {
        (
            format!("127.0.0.1:{}", free_port()),
            format!("127.0.0.1:{}", free_port()),
        )
    }

    /// Like [`OperatorProcess::start`], recording the addresses the caller passed in `args`.
    pub fn start_with_addrs(
        env: &Env,
        args: &[&str],
        metrics_addr: String,
        health_addr: String,
    ) -> OperatorProcess {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let log = env.work_dir.join(format!("operator-{n}.log"));
        let out = fs::File::create(&log).expect("create operator log");
        let err = out.try_clone().unwrap();
        let mut cmd = Command::new(&env.operator_bin);
        cmd.args(args)
            .env("KUBECONFIG", &env.kubeconfig)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info,skewguard=debug".into()),
            )
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().expect("start the skewguard binary");
        RUNNING_OPERATORS.lock().unwrap().insert(child.id());
        OperatorProcess {
            child: Some(child),
            log,
            metrics_addr,
            health_addr,
            quiet: false,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits up to `timeout` for the process to exit by itself; its exit status, or `None`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// Everything the operator has logged so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops gracefully (SIGTERM, SIGKILL after 10 s), e.g. to hand over leadership.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child, "TERM");
            RUNNING_OPERATORS.lock().unwrap().remove(&child.id());
        }
    }

    /// Kills at once (SIGKILL), like a crashed pod.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child, "KILL");
            RUNNING_OPERATORS.lock().unwrap().remove(&child.id());
        }
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.kill();
        if self.quiet {
            return;
        }
        if std::thread::panicking() || std::env::var_os("SKEWGUARD_E2E_LOGS").is_some() {
            eprintln!(
                "----- operator log {} -----\n{}\n----- end of operator log -----",
                self.log.display(),
                self.log_text()
            );
        }
    }
}
