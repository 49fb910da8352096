//! The deployment examples and Kubernetes' way of updating a mounted ConfigMap.

use super::*;

/// The deployment examples stay in step with the code: the ConfigMap holds a valid config,
/// and the Deployment's and CronJob's arguments parse as a `watch` command line.
#[test]
fn the_kubernetes_examples_hold_a_valid_config_and_valid_arguments() {
    use audience_sync::cli::{Cli, Command};
    use clap::Parser as _;

    let dir = crate::common::root().join("examples/deploy/kubernetes");
    let read = |name: &str| {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        audience_sync::config::yaml::parse_value(&text).unwrap()
    };
    let configmap = read("configmap.yaml");
    let text = configmap["data"]["audience-sync.yaml"].as_str().unwrap();
    let loaded =
        audience_sync::config::load_str(Path::new("configmap/audience-sync.yaml"), text).unwrap();
    assert!(!loaded.bindings.is_empty());

    for (file, container) in [
        (
            "deployment.yaml",
            &read("deployment.yaml")["spec"]["template"]["spec"]["containers"][0],
        ),
        (
            "cronjob.yaml",
            &read("cronjob.yaml")["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
                [0],
        ),
    ] {
        let mut argv = vec!["audience-sync".to_owned()];
        argv.extend(
            container["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_owned()),
        );
        let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{file}: {e}"));
        let Command::Watch(args) = cli.command else {
            panic!("{file}: not a watch command");
        };
        let mount = container["volumeMounts"][0]["mountPath"].as_str().unwrap();
        assert!(
            args.config.starts_with(mount),
            "{file}: config under the mount"
        );
        assert!(
            container["volumeMounts"][0].get("subPath").is_none(),
            "{file}: no subPath"
        );
        if file == "deployment.yaml" {
            assert!(!args.once);
            assert_eq!(args.listen.port(), 9464);
            assert_eq!(
                args.token_env.as_deref(),
                Some("AUDIENCE_SYNC_STATUS_TOKEN")
            );
            assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
            assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
        } else {
            assert!(args.once);
        }
    }
    let secret = read("secret.yaml");
    for var in [
        "MAILCHIMP_API_KEY",
        "DATAVERSE_TENANT_ID",
        "DATAVERSE_CLIENT_ID",
        "DATAVERSE_CLIENT_SECRET",
        "AUDIENCE_SYNC_STATUS_TOKEN",
    ] {
        assert!(
            secret["stringData"][var].is_string(),
            "secret.yaml sets `{var}`"
        );
    }
    assert_eq!(read("deployment.yaml")["spec"]["replicas"], 2);
}

/// Kubernetes updates a mounted ConfigMap by writing a new timestamped directory and swapping
/// the `..data` symlink to it; the config path is a symlink through `..data`.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_configmap_update_triggers_a_reconcile() {
    use std::os::unix::fs::symlink;

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let write_version = |version: &str, text: &str| {
        std::fs::create_dir(root.join(version)).unwrap();
        std::fs::write(root.join(version).join("sync.yaml"), text).unwrap();
    };
    write_version("..2026_11_27_04_00_00.1", &config_text("v1", "contact"));
    symlink("..2026_11_27_04_00_00.1", root.join("..data")).unwrap();
    symlink("..data/sync.yaml", root.join("sync.yaml")).unwrap();

    let fake = Fake::new(&[]);
    let running = watch::start(options(&root.join("sync.yaml")), fake.clone())
        .await
        .unwrap();
    eventually("the start-up runs", WAIT, || {
        let n = fake.calls().len();
        async move { (n >= 2).then_some(()) }
    })
    .await;

    // The atomic writer's update: new directory, new symlink, rename over `..data` (its
    // cleanup of the old directory comes later here, so the swap alone must be noticed).
    let text = config_text("v2", "contact");
    write_version("..2026_11_27_04_01_00.2", &text);
    symlink("..2026_11_27_04_01_00.2", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();

    let expected = digest(&text);
    eventually(
        "a run with the updated ConfigMap",
        Duration::from_secs(2),
        || {
            let ran = fake.calls().iter().any(|c| c.digest == expected);
            async move { ran.then_some(()) }
        },
    )
    .await;
    running.shutdown();
    assert_eq!(running.wait().await, Outcome::Success);
}
