//! Which clusters a report reads, and a client for each: kube's own kubeconfig handling (the file
//! from `--kubeconfig`, else `$KUBECONFIG`, else `~/.kube/config`; a context from `--context`,
//! every one with `--all-contexts`, else the current one), or the in-cluster config when there is
//! no kubeconfig at all.

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};

use super::ReportError;
use crate::shell::cli::ReportArgs;

/// Where the clusters are described.
#[derive(Clone, Debug)]
pub enum Source {
    Kubeconfig(Box<Kubeconfig>),
    /// No kubeconfig: the pod's own service account and the cluster it runs in.
    InCluster,
}

/// One cluster to read: the context named (`None`: the kubeconfig's current one), and the name
/// the report shows for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub context: Option<String>,
    pub name: String,
}

/// Reads the kubeconfig as kubectl does. `explicit` is `--kubeconfig`; without it `$KUBECONFIG`
/// (its files merged) or `~/.kube/config`, and when neither exists the in-cluster config.
pub fn source(explicit: Option<&Path>) -> Result<Source, ReportError> {
    let unreadable = |e: KubeconfigError| match e {
        KubeconfigError::ReadConfig(source, path) => ReportError::Kubeconfig {
            path,
            reason: source.to_string(),
        },
        other => ReportError::Kubeconfig {
            path: explicit.map(Path::to_path_buf).unwrap_or_default(),
            reason: other.to_string(),
        },
    };
    if let Some(path) = explicit {
        return Kubeconfig::read_from(path)
            .map(|k| Source::Kubeconfig(Box::new(k)))
            .map_err(unreadable);
    }
    if let Some(config) = Kubeconfig::from_env().map_err(unreadable)? {
        return Ok(Source::Kubeconfig(Box::new(config)));
    }
    let default = default_path();
    match default.as_deref().filter(|p| p.exists()) {
        Some(path) => Kubeconfig::read_from(path)
            .map(|k| Source::Kubeconfig(Box::new(k)))
            .map_err(unreadable),
        None if in_cluster() => Ok(Source::InCluster),
        None => Err(ReportError::NoCluster { looked_at: default }),
    }
}

fn default_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".kube").join("config"))
}

/// A pod's environment: the API server's address and the mounted service-account token.
fn in_cluster() -> bool {
    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
        && Path::new("/var/run/secrets/kubernetes.io/serviceaccount/token").exists()
}

/// The clusters `args` asks for, in the order given (`--all-contexts`: the kubeconfig's order).
/// Pure: every named context must exist.
pub fn targets(args: &ReportArgs, source: &Source) -> Result<Vec<Target>, ReportError> {
    let kubeconfig = match source {
        Source::Kubeconfig(k) => Some(k),
        Source::InCluster => None,
    };
    let known: Vec<&str> = kubeconfig
        .map(|k| k.contexts.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    let named = |name: &str| Target {
        context: Some(name.to_string()),
        name: name.to_string(),
    };
    if args.all_contexts {
        if known.is_empty() {
            return Err(ReportError::NoContexts);
        }
        return Ok(known.into_iter().map(named).collect());
    }
    if !args.contexts.is_empty() {
        let mut out: Vec<Target> = Vec::new();
        for name in &args.contexts {
            if !known.contains(&name.as_str()) {
                return Err(ReportError::UnknownContext {
                    name: name.clone(),
                    known: known.join(", "),
                });
            }
            if !out.iter().any(|t| &t.name == name) {
                out.push(named(name));
            }
        }
        return Ok(out);
    }
    let name = kubeconfig
        .and_then(|k| k.current_context.clone())
        .unwrap_or_else(|| "in-cluster".to_string());
    Ok(vec![Target {
        context: None,
        name,
    }])
}

/// A client for one target.
pub async fn client(source: &Source, target: &Target) -> Result<Client, ReportError> {
    let config = match source {
        Source::Kubeconfig(kubeconfig) => {
            let options = KubeConfigOptions {
                context: target.context.clone(),
                ..KubeConfigOptions::default()
            };
            Config::from_custom_kubeconfig((**kubeconfig).clone(), &options)
                .await
                .map_err(|e| ReportError::ClientConfig(e.to_string()))?
        }
        Source::InCluster => {
            Config::incluster().map_err(|e| ReportError::ClientConfig(e.to_string()))?
        }
    };
    Client::try_from(config).map_err(ReportError::Connect)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn kubeconfig(contexts: &[&str], current: Option<&str>) -> Source {
        let yaml = serde_json::json!({
            "apiVersion": "v1", "kind": "Config",
            "current-context": current,
            "clusters": contexts.iter().map(|c| serde_json::json!(
                {"name": c, "cluster": {"server": format!("https://{c}.example:6443")}})).collect::<Vec<_>>(),
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": contexts.iter().map(|c| serde_json::json!(
                {"name": c, "context": {"cluster": c, "user": "u"}})).collect::<Vec<_>>(),
        });
        Source::Kubeconfig(Box::new(serde_json::from_value(yaml).unwrap()))
    }

    fn args(flags: &[&str]) -> ReportArgs {
        let cli =
            crate::shell::cli::Cli::try_parse_from(["skewguard", "report"].iter().chain(flags))
                .unwrap();
        match cli.command {
            crate::shell::cli::Command::Report(a) => a,
            other => panic!("{other:?}"),
        }
    }

    fn names(targets: Vec<Target>) -> Vec<(Option<String>, String)> {
        targets.into_iter().map(|t| (t.context, t.name)).collect()
    }

    #[test]
    fn the_current_context_by_default() {
        let source = kubeconfig(&["prod-eu", "prod-us"], Some("prod-us"));
        assert_eq!(
            names(targets(&args(&[]), &source).unwrap()),
            [(None, "prod-us".to_string())]
        );
        assert_eq!(
            names(targets(&args(&[]), &Source::InCluster).unwrap()),
            [(None, "in-cluster".to_string())]
        );
    }

    #[test]
    fn contexts_named_once_each_or_all_of_them() {
        let source = kubeconfig(&["prod-eu", "prod-us", "staging"], Some("staging"));
        let some = args(&[
            "--context",
            "prod-us",
            "--context",
            "prod-eu",
            "--context",
            "prod-us",
        ]);
        assert_eq!(
            names(targets(&some, &source).unwrap()),
            [
                (Some("prod-us".into()), "prod-us".to_string()),
                (Some("prod-eu".into()), "prod-eu".to_string())
            ]
        );
        let all: Vec<String> = targets(&args(&["--all-contexts"]), &source)
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(all, ["prod-eu", "prod-us", "staging"]);
    }

    #[test]
    fn an_unknown_context_or_none_at_all_is_an_error() {
        let source = kubeconfig(&["prod-eu"], None);
        let err = targets(&args(&["--context", "prod-us"]), &source).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no context prod-us in the kubeconfig (its contexts: prod-eu)"
        );
        assert!(matches!(
            targets(&args(&["--all-contexts"]), &Source::InCluster),
            Err(ReportError::NoContexts)
        ));
    }

    #[test]
    fn a_missing_kubeconfig_names_its_path_plainly() {
        let err = source(Some(Path::new("/nonexistent/kubeconfig"))).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("cannot read kubeconfig /nonexistent/kubeconfig: "),
            "{text}"
        );
        assert!(!text.contains('"'), "{text}");
    }
}
