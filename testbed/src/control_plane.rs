//! A throwaway Kubernetes control plane: etcd, kube-apiserver, kube-scheduler and
//! kube-controller-manager on loopback, on free ports, in a temporary directory. Every process is
//! started in its own process group and killed when the [`ControlPlane`] is dropped.

use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where the control-plane binaries are, or why there are none.
#[derive(Debug, Clone)]
pub enum Target {
    /// Start our own control plane from these binaries.
    Binaries(Assets),
    /// Use an existing cluster (`SKEWGUARD_E2E_KUBECONFIG`).
    Existing(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Assets {
    pub dir: PathBuf,
    pub etcd: PathBuf,
}

impl Assets {
    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

const CONTROL_PLANE_BINARIES: [&str; 3] = [
    "kube-apiserver",
    "kube-scheduler",
    "kube-controller-manager",
];

/// Finds a cluster to test against: `SKEWGUARD_E2E_KUBECONFIG`; else the binaries in
/// `KUBEBUILDER_ASSETS`; else the newest directory under `$HOME/.local/share/kubebuilder-envtest/k8s/`
/// (where `setup-envtest use` puts them). `etcd` may also come from `PATH`.
/// `Err` says, in one line, why there is nothing to test against.
pub fn discover() -> Result<Target, String> {
    if let Some(path) = std::env::var_os("SKEWGUARD_E2E_KUBECONFIG").filter(|p| !p.is_empty()) {
        return Ok(Target::Existing(PathBuf::from(path)));
    }
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("KUBEBUILDER_ASSETS").filter(|d| !d.is_empty()) {
        candidates.push(PathBuf::from(dir));
    }
    if let Some(home) = std::env::var_os("HOME") {
        let root = Path::new(&home).join(".local/share/kubebuilder-envtest/k8s");
        if let Ok(entries) = fs::read_dir(&root) {
            let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            dirs.sort_by_key(|d| version_key(d));
            candidates.extend(dirs.into_iter().rev());
        }
    }
    for dir in candidates {
        if !CONTROL_PLANE_BINARIES.iter().all(|b| dir.join(b).is_file()) {
            continue;
        }
        let etcd = if dir.join("etcd").is_file() {
            Some(dir.join("etcd"))
        } else {
            find_on_path("etcd")
        };
        if let Some(etcd) = etcd {
            return Ok(Target::Binaries(Assets { dir, etcd }));
        }
    }
    Err("no control-plane binaries (set KUBEBUILDER_ASSETS or run setup-envtest)".to_string())
}

/// Orders `1.9.0-linux-amd64` before `1.33.13-linux-amd64`.
fn version_key(dir: &Path) -> Vec<u64> {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let version = name.split('-').next().unwrap_or("");
    version.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free loopback port")
}

/// A temporary directory, removed on drop unless `SKEWGUARD_E2E_KEEP` is set.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).expect("create temporary directory");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("SKEWGUARD_E2E_KEEP").is_some() {
            eprintln!("e2e: kept {}", self.0.display());
        } else {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// Child processes started in their own process group; each group is killed on [`Processes::kill_all`].
/// Shared with the signal handler, so an interrupted run still tears down.
#[derive(Clone, Default)]
pub struct Processes(
    Arc<Mutex<Vec<(String, Child)>>>,
    Arc<Mutex<Vec<Restartable>>>,
);

/// How to start a process again that a kubelet would restart (a static pod's container).
#[derive(Clone)]
struct Restartable {
    name: String,
    bin: PathBuf,
    args: Vec<String>,
    dir: PathBuf,
    restarts: u32,
}

impl Processes {
    /// Starts `cmd` in a new process group with stdout and stderr appended to `log`.
    pub fn spawn(&self, name: &str, mut cmd: Command, log: &Path) -> u32 {
        let out = fs::File::create(log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name} ({:?}): {e}", cmd.get_program()));
        let pid = child.id();
        self.0.lock().unwrap().push((name.to_string(), child));
        pid
    }

    /// [`Processes::spawn`], remembering how, so [`Processes::restart_exited`] can start it again.
    pub fn spawn_restartable(&self, name: &str, bin: &Path, args: Vec<String>, dir: &Path) -> u32 {
        let log = dir.join(format!("{name}.log"));
        let pid = self.spawn(name, cmd(bin, &args), &log);
        self.1.lock().unwrap().push(Restartable {
            name: name.to_string(),
            bin: bin.to_path_buf(),
            args,
            dir: dir.to_path_buf(),
            restarts: 0,
        });
        pid
    }

    /// Starts again each restartable process that has exited (its log in
    /// `<name>-restart-<n>.log`), as a kubelet restarts a static pod's container; the names of
    /// those restarted. kube-scheduler exits by design when it finds its cache corrupted, which
    /// an API server restart under load can cause.
    pub fn restart_exited(&self) -> Vec<String> {
        let exited = self.exited();
        let mut restarted = Vec::new();
        for name in exited {
            let again = {
                let mut all = self.1.lock().unwrap();
                let Some(r) = all.iter_mut().find(|r| r.name == name) else {
                    continue;
                };
                r.restarts += 1;
                r.clone()
            };
            {
                let mut procs = self.0.lock().unwrap();
                if let Some(i) = procs.iter().position(|(n, _)| *n == name) {
                    let (_, mut dead) = procs.remove(i);
                    let _ = dead.wait();
                }
            }
            let log = (again.dir).join(format!("{}-restart-{}.log", again.name, again.restarts));
            self.spawn(&again.name, cmd(&again.bin, &again.args), &log);
            restarted.push(name);
        }
        restarted
    }

    /// Names of processes that have exited already.
    pub fn exited(&self) -> Vec<String> {
        let mut procs = self.0.lock().unwrap();
        procs
            .iter_mut()
            .filter_map(|(n, c)| matches!(c.try_wait(), Ok(Some(_))).then(|| n.clone()))
            .collect()
    }

    /// Kills (SIGKILL) the process group of the process named `name` and forgets it; whether
    /// there was one.
    pub fn kill(&self, name: &str) -> bool {
        let child = {
            let mut procs = self.0.lock().unwrap();
            let Some(i) = procs.iter().position(|(n, _)| n == name) else {
                return false;
            };
            procs.remove(i).1
        };
        let mut child = child;
        kill_group(&mut child, "KILL");
        true
    }

    /// Kills every process group, newest first, and reaps the children.
    pub fn kill_all(&self) {
        let mut procs = self.0.lock().unwrap();
        while let Some((_, mut child)) = procs.pop() {
            kill_group(&mut child, "KILL");
        }
    }
}

/// Sends `signal` to the child's whole process group, then reaps it (SIGKILL after 10 s).
pub fn kill_group(child: &mut Child, signal: &str) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let group = format!("-{}", child.id());
    let sent = Command::new("kill")
        .args(["-s", signal, "--", &group])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !sent {
        let _ = child.kill();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// How to stop and start kube-apiserver again, with the same flags, port, certificates and etcd
/// data, so that every client (its kubeconfig unchanged) reconnects by itself. Cheap to clone.
#[derive(Clone)]
pub struct ApiServer {
    processes: Processes,
    bin: PathBuf,
    args: Vec<String>,
    dir: PathBuf,
    restarts: Arc<Mutex<u32>>,
}

impl ApiServer {
    /// Starts kube-scheduler and kube-controller-manager again if they exited
    /// ([`Processes::restart_exited`]); the names of those restarted.
    pub fn restart_exited_controllers(&self) -> Vec<String> {
        self.processes.restart_exited()
    }

    /// Kills kube-apiserver (SIGKILL, as a crash); clients see connections refused.
    pub fn stop(&self) {
        assert!(
            self.processes.kill("kube-apiserver"),
            "kube-apiserver was not running"
        );
    }

    /// Starts kube-apiserver again (its log in `kube-apiserver-restart-<n>.log`); returns at once.
    pub fn start(&self) {
        let n = {
            let mut r = self.restarts.lock().unwrap();
            *r += 1;
            *r
        };
        self.processes.spawn(
            "kube-apiserver",
            cmd(&self.bin, &self.args),
            &self.dir.join(format!("kube-apiserver-restart-{n}.log")),
        );
    }
}

/// A running control plane. Dropping it kills every process and removes the directory.
pub struct ControlPlane {
    pub processes: Processes,
    pub apiserver: ApiServer,
    pub kubeconfig: PathBuf,
    pub apiserver_url: String,
    pub assets: Assets,
    // Declared last: dropped after `processes` are killed (see `Drop`).
    pub dir: TempDir,
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.processes.kill_all();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (is it installed?)");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a serving certificate for 127.0.0.1/localhost signed by it, and the service-account key.
fn make_pki(dir: &Path) {
    openssl(dir, &["genrsa", "-out", "ca.key", "2048"]);
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-subj",
            "/CN=skewguard-e2e-ca",
            "-days",
            "2",
            "-out",
            "ca.crt",
        ],
    );
    openssl(dir, &["genrsa", "-out", "apiserver.key", "2048"]);
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "apiserver.key",
            "-subj",
            "/CN=kube-apiserver",
            "-out",
            "apiserver.csr",
        ],
    );
    fs::write(
        dir.join("apiserver.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\n\
         subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "apiserver.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "apiserver.ext",
            "-out",
            "apiserver.crt",
        ],
    );
    openssl(dir, &["genrsa", "-out", "sa.key", "2048"]);
}

fn kubeconfig_yaml(server: &str, ca_file: &Path, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: {server}\n    \
         certificate-authority: {ca}\nusers:\n- name: admin\n  user:\n    token: {token}\n\
         contexts:\n- name: e2e\n  context:\n    cluster: e2e\n    user: admin\n\
         current-context: e2e\n",
        ca = ca_file.display()
    )
}

fn cmd(bin: &Path, args: &[String]) -> Command {
    let mut c = Command::new(bin);
    c.args(args);
    c
}

fn arg(s: impl Into<String>) -> String {
    s.into()
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver; call [`ControlPlane::start_controllers`] once the API
    /// server is ready.
    pub fn start(assets: &Assets) -> ControlPlane {
        let dir = TempDir::new("skewguard-e2e");
        let d = dir.path().to_path_buf();
        let processes = Processes::default();
        make_pki(&d);
        let token = format!("e2e-{}", std::process::id());
        fs::write(
            d.join("tokens.csv"),
            format!("{token},admin,admin,system:masters\n"),
        )
        .unwrap();

        let (etcd_port, peer_port) = (free_port(), free_port());
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd_args = [
            format!("--data-dir={}", d.join("etcd").display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=default={peer_url}"),
        ];
        processes.spawn("etcd", cmd(&assets.etcd, &etcd_args), &d.join("etcd.log"));

        let api_port = free_port();
        let server = format!("https://127.0.0.1:{api_port}");
        let p = |name: &str| d.join(name).display().to_string();
        let mut apiserver_args = vec![
            format!("--etcd-servers={etcd_url}"),
            format!("--secure-port={api_port}"),
            arg("--bind-address=127.0.0.1"),
            arg("--advertise-address=127.0.0.1"),
            format!("--cert-dir={}", p("certs")),
            format!("--tls-cert-file={}", p("apiserver.crt")),
            format!("--tls-private-key-file={}", p("apiserver.key")),
            format!("--client-ca-file={}", p("ca.crt")),
            format!("--token-auth-file={}", p("tokens.csv")),
            arg("--authorization-mode=RBAC"),
            arg("--service-account-issuer=https://kubernetes.default.svc"),
            format!("--service-account-key-file={}", p("sa.key")),
            format!("--service-account-signing-key-file={}", p("sa.key")),
            arg("--service-cluster-ip-range=10.0.0.0/24"),
            arg("--disable-admission-plugins=ServiceAccount"),
            arg("--allow-privileged=true"),
        ];
        // E.g. `--runtime-config=admissionregistration.k8s.io/v1/mutatingadmissionpolicies=false`
        // to run the suite as on a server without MutatingAdmissionPolicies.
        apiserver_args.extend(
            std::env::var("SKEWGUARD_E2E_APISERVER_ARGS")
                .unwrap_or_default()
                .split_whitespace()
                .map(arg),
        );
        processes.spawn(
            "kube-apiserver",
            cmd(&assets.bin("kube-apiserver"), &apiserver_args),
            &d.join("kube-apiserver.log"),
        );
        let apiserver = ApiServer {
            processes: processes.clone(),
            bin: assets.bin("kube-apiserver"),
            args: apiserver_args.clone(),
            dir: d.clone(),
            restarts: Arc::default(),
        };

        let kubeconfig = d.join("kubeconfig");
        fs::write(
            &kubeconfig,
            kubeconfig_yaml(&server, &d.join("ca.crt"), &token),
        )
        .unwrap();
        ControlPlane {
            processes,
            apiserver,
            kubeconfig,
            apiserver_url: server,
            assets: assets.clone(),
            dir,
        }
    }

    /// Starts kube-scheduler and kube-controller-manager against the running API server.
    pub fn start_controllers(&self) {
        let d = self.dir.path();
        let p = |name: &str| d.join(name).display().to_string();
        let kc = self.kubeconfig.display().to_string();
        let common = |certs: &str| {
            vec![
                format!("--kubeconfig={kc}"),
                format!("--authentication-kubeconfig={kc}"),
                format!("--authorization-kubeconfig={kc}"),
                arg("--leader-elect=false"),
                arg("--bind-address=127.0.0.1"),
                format!("--secure-port={}", free_port()),
                format!("--cert-dir={}", p(certs)),
            ]
        };
        self.processes.spawn_restartable(
            "kube-scheduler",
            &self.assets.bin("kube-scheduler"),
            {
                let mut s = common("scheduler-certs");
                // The scale scenario binds thousands of pods (the default is 50 requests/s).
                s.extend([arg("--kube-api-qps=200"), arg("--kube-api-burst=400")]);
                s
            },
            d,
        );
        let mut kcm = common("kcm-certs");
        kcm.extend([
            arg(CONTROLLERS),
            format!("--service-account-private-key-file={}", p("sa.key")),
            format!("--root-ca-file={}", p("ca.crt")),
            arg("--use-service-account-credentials=false"),
            arg("--node-monitor-period=2s"),
            arg("--node-monitor-grace-period=20s"),
            arg("--concurrent-deployment-syncs=10"),
            arg("--concurrent-replicaset-syncs=10"),
            arg("--kube-api-qps=200"),
            arg("--kube-api-burst=400"),
        ]);
        self.processes.spawn_restartable(
            "kube-controller-manager",
            &self.assets.bin("kube-controller-manager"),
            kcm,
            d,
        );
    }

    /// Panics (pointing at the logs) when a control-plane process has died.
    pub fn assert_alive(&self) {
        let exited = self.processes.exited();
        assert!(
            exited.is_empty(),
            "control plane process(es) exited: {exited:?}; logs in {}",
            self.dir.path().display()
        );
    }
}

/// The controllers the suite needs; `node-lifecycle-controller` turns cordons and NotReady
/// conditions into the taints kube-scheduler and skewguard honour, `pod-garbage-collector-controller`
/// removes pods left on deleted nodes, `validatingadmissionpolicy-status-controller` type-checks
/// admission policies (skewguard reads it for its admission mode).
pub const CONTROLLERS: &str = "--controllers=deployment-controller,replicaset-controller,\
statefulset-controller,disruption-controller,garbage-collector-controller,namespace-controller,\
serviceaccount-token-controller,serviceaccount-controller,node-lifecycle-controller,\
pod-garbage-collector-controller,validatingadmissionpolicy-status-controller";
