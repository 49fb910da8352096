//! `audience-sync demo`: a first run a newcomer understands. It starts the sandbox in this
//! process, seeded from `examples/demo/seed.yaml`, writes `examples/demo/audience-sync.yaml` to a
//! temporary directory, and walks through validate → plan → apply → plan (no changes) → changes
//! in Mailchimp (an unsubscribe, a new member, a new tag, a renamed tag) → plan → apply → status,
//! explaining each step. Every step runs this same binary as a user would, with the variables
//! the sandbox prints, so what is shown is exactly what those commands print.

use std::io::{BufRead as _, Write as _};
use std::path::Path;
use std::process::Command;

use anyhow::Context as _;

use crate::cli::DemoArgs;
use crate::exit::ExitStatus;
use crate::output::Context;
use api_sandbox::Sandbox;
use api_sandbox::mailchimp::MemberStatus;

const SEED: &str = include_str!("../../examples/demo/seed.yaml");
const CONFIG: &str = include_str!("../../examples/demo/audience-sync.yaml");
const AUDIENCE: &str = "a1b2c3d4e5";

pub(super) async fn run(args: DemoArgs, ctx: &Context) -> anyhow::Result<ExitStatus> {
    let seed = api_sandbox::Seed::from_text(SEED)
        .map_err(anyhow::Error::msg)
        .context("the demo seed is invalid")?;
    let sandbox = Sandbox::start(api_sandbox::Options {
        seed: super::sandbox::realistic(seed),
        ..super::sandbox::options()
    })
    .await?;
    let dir = std::env::temp_dir().join(format!("audience-sync-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let config = dir.join("audience-sync.yaml");
    std::fs::write(&config, CONFIG)
        .with_context(|| format!("cannot write `{}`", config.display()))?;
    let pause = ctx.interactive && !args.no_pause;
    let demo = Demo {
        sandbox: &sandbox,
        config: &config,
        pause,
    };
    let outcome = demo.walk().await;
    let _ = std::fs::remove_dir_all(&dir);
    sandbox.shutdown().await;
    outcome
}

struct Demo<'a> {
    sandbox: &'a Sandbox,
    config: &'a Path,
    pause: bool,
}

impl Demo<'_> {
    async fn walk(&self) -> anyhow::Result<ExitStatus> {
        say(&format!(
            "audience-sync demo\n\nA local Mailchimp and a local Dynamics 365 (Dataverse) are running at {} — the\n\
             same APIs, in this process, nothing leaves your machine. Mailchimp has an audience\n\
             \"Newsletter\" (7 subscribers, one who unsubscribed, one bounced, 3 tags). The CRM has a\n\
             static contact list \"Newsletter subscribers\", a contact for grace@example.com, and a\n\
             contact a sales rep put on the list by hand.\n\n\
             The config binding the two is {}:",
            self.sandbox.base_url(),
            self.config.display()
        ));
        println!("{}", indent(CONFIG));

        self.step(
            "1. validate: check the config (syntax, schema, meaning) before touching anything.",
        )
        .await;
        self.cli(&["validate", "--check-env"]).await?;

        self.step(
            "2. plan: read both sides and show what apply would change. Nothing is written.\n   \
             Grace is matched by her e-mail (case does not matter) and gets linked; the hand-added\n   \
             contact is not managed by audience-sync and is kept.",
        )
        .await;
        self.cli(&["plan"]).await?;

        self.step(
            "3. apply: make the CRM match (in a pipeline: --auto-approve; at a terminal it asks).",
        )
        .await;
        self.cli(&["apply", "--auto-approve"]).await?;

        self.step("4. plan again: the CRM is in step, so there is nothing to do (exit code 0 with --detailed-exitcode).").await;
        let code = self.cli(&["plan", "--detailed-exitcode"]).await?;
        println!("   (exit code {code})");

        self.step(
            "5. Meanwhile, in Mailchimp: tim@example.com unsubscribes, margaret@example.com signs up\n   \
             with the new tag \"Apollo\", alan@example.com gets a new tag \"Speakers\", and the tag\n   \
             \"Webinar 2026\" is renamed \"Webinar 2026 attendees\".",
        )
        .await;
        self.change_mailchimp()?;
        println!("   done.");

        self.step(
            "6. plan: the changes, each with its reason. Tim is flagged do-not-e-mail and leaves the list\n   \
             (`max_removals` guards against mass removals: a plan removing more is refused).",
        )
        .await;
        self.cli(&["plan"]).await?;

        self.step("7. apply: and the CRM follows.").await;
        self.cli(&["apply", "--auto-approve"]).await?;

        self.step("8. status: what the CRM records about each sync (also `--format json`).")
            .await;
        self.cli(&["status"]).await?;

        say(
            "\nThat is the whole loop. Next: `audience-sync init` writes a config from your own Mailchimp\n\
             audiences, `audience-sync crm bootstrap` prepares your Dataverse environment, and\n\
             `audience-sync plan -out plan.json` + `audience-sync apply plan.json` is the pipeline.",
        );
        Ok(ExitStatus::Success)
    }

    async fn step(&self, text: &str) {
        if self.pause {
            print!("\n[press Enter for the next step] ");
            let _ = std::io::stdout().flush();
            let _ = tokio::task::spawn_blocking(|| {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)
            })
            .await;
        }
        println!("\n{}\n{text}\n", "─".repeat(78));
    }

    /// Run this binary with `args` and the config, as a user would; returns its exit code.
    async fn cli(&self, args: &[&str]) -> anyhow::Result<i32> {
        let exe = std::env::current_exe().context("cannot find this program's path")?;
        let (first, rest) = args.split_first().context("a command")?;
        println!(
            "$ audience-sync {first} {} {}",
            self.config.display(),
            rest.join(" ")
        );
        let mut command = Command::new(exe);
        command.arg(first).arg(self.config).args(rest);
        for (key, value) in self.sandbox.env() {
            command.env(key, value);
        }
        let status = tokio::task::spawn_blocking(move || command.status())
            .await
            .context("the step did not run")?
            .context("cannot run audience-sync")?;
        let code = status.code().unwrap_or(1);
        if code == 1 {
            anyhow::bail!(
                "the step `audience-sync {first}` failed (exit code 1); the demo stops here"
            );
        }
        Ok(code)
    }

    fn change_mailchimp(&self) -> anyhow::Result<()> {
        let mc = &self.sandbox.mailchimp;
        let failed = |what: &str| format!("the demo could not {what} in the sandbox");
        mc.set_status(AUDIENCE, "tim@example.com", MemberStatus::Unsubscribed)
            .map_err(|e| anyhow::anyhow!("{e:?}"))
            .with_context(|| failed("unsubscribe tim@example.com"))?;
        let margaret = serde_json::from_value(serde_json::json!({
            "email": "margaret@example.com",
            "merge_fields": {"FNAME": "Margaret", "LNAME": "Hamilton"},
            "tags": ["Apollo"]
        }))?;
        mc.add_member(AUDIENCE, &margaret)
            .map_err(|e| anyhow::anyhow!("{e:?}"))
            .with_context(|| failed("add margaret@example.com"))?;
        mc.set_tag(AUDIENCE, "alan@example.com", "Speakers", true)
            .map_err(|e| anyhow::anyhow!("{e:?}"))
            .with_context(|| failed("tag alan@example.com"))?;
        mc.rename_tag(AUDIENCE, "Webinar 2026", "Webinar 2026 attendees")
            .map_err(|e| anyhow::anyhow!("{e:?}"))
            .with_context(|| failed("rename a tag"))?;
        Ok(())
    }
}

fn say(text: &str) {
    println!("{text}");
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
