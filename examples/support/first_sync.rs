//! Shared by the apply benchmarks: the `--members N` argument, and one binding from a generated
//! audience to a new contact list, wired to an in-process sandbox (config, both clients, the
//! apply options), ready to observe, plan and apply.

use anyhow::{Context as _, bail};
use api_sandbox::Sandbox;
use audience_sync::apply::{Options, lease};
use audience_sync::clients::Clients;
use audience_sync::config::{Binding, Loaded};
use audience_sync::{config, mailchimp};

/// `--members N` (with `_` separators allowed), else `default`.
pub fn members_arg(default: usize) -> anyhow::Result<usize> {
    let mut args = std::env::args().skip(1);
    let mut members = default;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--members" => {
                members = args
                    .next()
                    .context("--members needs a number")?
                    .replace('_', "")
                    .parse()
                    .context("--members needs a number")?;
            }
            other => bail!("unknown argument `{other}` (use --members N)"),
        }
    }
    Ok(members)
}

/// One binding of the sandbox's first audience, with its clients.
pub struct FirstSync {
    /// The loaded config.
    pub loaded: Loaded,
    /// Its one binding.
    pub binding: Binding,
    /// Clients of the sandbox.
    pub clients: Clients,
    _dir: tempfile::TempDir,
}

impl FirstSync {
    /// Bind the sandbox's first audience to a new contact list named after it.
    pub fn new(sandbox: &Sandbox) -> anyhow::Result<Self> {
        Self::with(sandbox, mailchimp::DEFAULT_CONNECTIONS, false)
    }

    /// [`FirstSync::new`] with `mailchimp.max_connections` = `connections` and, with `prune`,
    /// `prune_members` (so archived members are read too); the clients are the product's,
    /// built from the config ([`Clients::connect`]).
    pub fn with(sandbox: &Sandbox, connections: usize, prune: bool) -> anyhow::Result<Self> {
        let env: std::collections::HashMap<String, String> = sandbox.env().into_iter().collect();
        let get = |k: &str| env.get(k).cloned().unwrap_or_default();
        let (audience, name) = sandbox
            .mailchimp
            .audiences()
            .into_iter()
            .next()
            .context("no audience")?;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("audience-sync.yaml");
        std::fs::write(
            &path,
            format!(
                "version: 1
mailchimp: {{ api_key: '{}', base_url: '{}', max_connections: {connections} }}
dataverse: {{ url: '{}', tenant_id: '{}', client_id: '{}', client_secret: '{}', token_url: '{}' }}
bindings:
  - name: bench
    audience: {{ id: '{audience}' }}
    marketing_list: {{ name: '{name}', member_type: contact, create: true }}
    prune_members: {prune}
    max_removals: 100%
",
                get("MAILCHIMP_API_KEY"),
                get("MAILCHIMP_BASE_URL"),
                get("DATAVERSE_URL"),
                get("DATAVERSE_TENANT_ID"),
                get("DATAVERSE_CLIENT_ID"),
                get("DATAVERSE_CLIENT_SECRET"),
                get("DATAVERSE_TOKEN_URL"),
            ),
        )?;
        let loaded = config::load(&path).map_err(|e| anyhow::anyhow!("config: {e}"))?;
        let binding = loaded.bindings.first().context("one binding")?.clone();
        let clients = Clients::connect(&loaded)?;
        Ok(Self {
            loaded,
            binding,
            clients,
            _dir: dir,
        })
    }

    /// Observe both sides and plan, printing the time taken and the plan's size.
    pub async fn plan(&self) -> anyhow::Result<audience_sync::plan::BindingPlan> {
        let t = std::time::Instant::now();
        let snapshot =
            audience_sync::observe::observe(&self.binding, &self.loaded.names, &self.clients)
                .await?;
        let plan = audience_sync::plan::compute(&self.binding, &self.loaded.names, &snapshot);
        println!(
            "observe + plan: {:.1} s, {} changes",
            t.elapsed().as_secs_f64(),
            plan.changes.len()
        );
        Ok(plan)
    }

    /// Apply `plan` as a benchmark run (no lease wait, no stale members); returns the report
    /// and the wall time in seconds.
    pub async fn apply(
        &self,
        plan: &audience_sync::plan::BindingPlan,
    ) -> (audience_sync::apply::BindingReport, f64) {
        let t = std::time::Instant::now();
        let report = audience_sync::apply::apply_binding(
            &self.clients,
            &self.loaded.names,
            plan,
            &Self::options(),
            &|_, _| {},
        )
        .await;
        (report, t.elapsed().as_secs_f64())
    }

    fn options() -> Options {
        Options {
            claim: lease::Claim {
                owner: "bench".to_owned(),
                operation: "apply".to_owned(),
                wait: std::time::Duration::ZERO,
                term: lease::DEFAULT_TERM,
            },
            plan_id: "bench".to_owned(),
            stale_members: std::collections::HashSet::new(),
        }
    }
}
