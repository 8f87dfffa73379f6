//! One control plane for a whole run: getting it ready ([`setup`]), tearing it down when the run
//! is interrupted ([`teardown_on_signal`]) and showing its logs when it failed ([`print_log_tails`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::control_plane::{ControlPlane, Processes, Target, TempDir};
use crate::fake_kubelet::FakeKubelet;
use crate::harness::{Env, client_from, kill_running_operators, wait_for};

/// Waits for the API server, starts the scheduler and controllers, installs the CRDs (from
/// `repo`'s `crds/` and `../shared/testdata/`) and starts the fake kubelet. `operator_bin` is the
/// `skewguard` binary the run starts.
pub async fn setup(
    target: &Target,
    cp: Option<&ControlPlane>,
    work: &TempDir,
    repo: &Path,
    operator_bin: &Path,
) -> Env {
    let (kubeconfig, assets_dir) = match (target, cp) {
        (_, Some(cp)) => (cp.kubeconfig.clone(), Some(cp.assets.dir.clone())),
        (Target::Existing(path), None) => (path.clone(), None),
        (Target::Binaries(_), None) => unreachable!("binaries always start a control plane"),
    };
    let client = client_from(&kubeconfig).await;
    wait_for("kube-apiserver /readyz", Duration::from_secs(90), || {
        let client = client.clone();
        async move {
            if let Some(cp) = cp {
                cp.assert_alive();
            }
            let req = http::Request::get("/readyz").body(vec![]).unwrap();
            client
                .request_text(req)
                .await
                .ok()
                .filter(|t| t.trim() == "ok")
        }
    })
    .await;
    if let Some(cp) = cp {
        cp.start_controllers();
    }
    let repo = repo.to_path_buf();
    let rollout_crd = Env::install_crds(&client, &repo).await;
    Env {
        kubelet: FakeKubelet::start(client.clone()),
        client,
        kubeconfig,
        work_dir: work.path().to_path_buf(),
        kubectl: Env::find_kubectl(assets_dir.as_deref()),
        repo,
        rollout_crd,
        apiserver: cp.map(|cp| cp.apiserver.clone()),
        operator_bin: operator_bin.to_path_buf(),
    }
}

/// On SIGINT or SIGTERM: kills every process (the running operators too), removes `dirs` (unless `SKEWGUARD_E2E_KEEP` is set)
/// and exits with status 130. `who` prefixes the one line it prints.
pub async fn teardown_on_signal(processes: Processes, dirs: Vec<PathBuf>, who: &str) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    eprintln!("{who}: interrupted; tearing the control plane down");
    kill_running_operators();
    processes.kill_all();
    if std::env::var_os("SKEWGUARD_E2E_KEEP").is_none() {
        for dir in dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    std::process::exit(130);
}

/// The last lines of every control-plane component's log, on stderr.
pub fn print_log_tails(cp: &ControlPlane) {
    for name in [
        "etcd",
        "kube-apiserver",
        "kube-scheduler",
        "kube-controller-manager",
    ] {
        let path = cp.dir.path().join(format!("{name}.log"));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(15)..];
        eprintln!("----- last lines of {name}.log -----\n{}", tail.join("\n"));
    }
}
