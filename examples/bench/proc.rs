//! Processes of the benchmark: the release binary, the sandbox it serves (a child process whose
//! CPU is read from `/proc/PID/stat`), and measured runs of the client (GNU `time`, which reads
//! the child's `wait4` rusage: user + system CPU and peak RSS of that process alone).

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// The release binary next to this example (built first when run under cargo), or the one
/// `AUDIENCE_SYNC_BIN` names (to measure a copy while the tree is rebuilt).
pub fn binary() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("AUDIENCE_SYNC_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("the example is not under target/<profile>/examples")?;
    if let Ok(cargo) = std::env::var("CARGO") {
        let release = dir.ends_with("release");
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet", "--bin", "audience-sync"]);
        if release {
            build.arg("--release");
        }
        let status = build.status().context("cannot run cargo build")?;
        if !status.success() {
            bail!("cargo build --bin audience-sync failed");
        }
    }
    let bin = dir.join("audience-sync");
    if !bin.exists() {
        bail!("{} is missing (cargo build --release)", bin.display());
    }
    Ok(bin)
}

/// A sandbox served by `audience-sync sandbox --generate …` in its own process.
pub struct SandboxProcess {
    child: Child,
    /// The `KEY=value` lines it printed.
    pub env: BTreeMap<String, String>,
    /// The config it wrote (one active binding per generated audience).
    pub config: PathBuf,
}

impl SandboxProcess {
    /// Start one with `members` generated members and wait for its variables.
    pub fn start(bin: &Path, members: usize, dir: &Path) -> anyhow::Result<Self> {
        let config = dir.join(format!("sandbox-{members}.yaml"));
        let mut child = Command::new(bin)
            .arg("sandbox")
            .arg("--generate")
            .arg(format!("members={members},tags=5,seed=1"))
            .arg("--print-config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start the sandbox")?;
        let stdout = child.stdout.take().context("no sandbox stdout")?;
        let mut env = BTreeMap::new();
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            if let Some((key, value)) = line.split_once('=') {
                let value = value.trim_matches('\'').to_owned();
                let done = key == "AUDIENCE_SYNC_SANDBOX_PID";
                env.insert(key.to_owned(), value);
                if done {
                    break;
                }
            }
        }
        if !env.contains_key("MAILCHIMP_BASE_URL") {
            let _ = child.kill();
            bail!("the sandbox printed no MAILCHIMP_BASE_URL");
        }
        Ok(Self { child, env, config })
    }

    /// The server's root URL (where `/_sandbox/…` lives).
    pub fn root(&self) -> String {
        self.env
            .get("MAILCHIMP_BASE_URL")
            .map(|url| {
                url.trim_end_matches('/')
                    .trim_end_matches("/3.0")
                    .to_owned()
            })
            .unwrap_or_default()
    }

    /// CPU seconds (user + system) the sandbox process has used so far.
    pub fn cpu(&self) -> anyhow::Result<f64> {
        proc_cpu(self.child.id())
    }

    /// CPU seconds its threads have run so far, to the nanosecond (the sum of
    /// `/proc/PID/task/*/schedstat`; threads that ended are not counted, so only for short
    /// spans such as the probe's, which `cpu` would measure in 10 ms ticks).
    pub fn cpu_fine(&self) -> anyhow::Result<f64> {
        let mut ns = 0u64;
        for task in std::fs::read_dir(format!("/proc/{}/task", self.child.id()))? {
            let path = task?.path().join("schedstat");
            // A thread may end between the listing and the read.
            if let Ok(text) = std::fs::read_to_string(path) {
                ns += text
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        Ok(ns as f64 / 1e9)
    }

    /// Its current peak RSS (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .context("no VmHWM")?;
        Ok(kb * 1024)
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User + system CPU seconds of a running process, from `/proc/PID/stat`.
fn proc_cpu(pid: u32) -> anyhow::Result<f64> {
    crate::proc_stat::cpu_seconds(&format!("/proc/{pid}/stat"))
}

/// What one measured run of the client cost.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub wall: Duration,
    /// User + system CPU seconds of the client process alone.
    pub cpu: f64,
    /// Its peak RSS, bytes.
    pub peak_rss: u64,
}

/// Run the client with these arguments under GNU `time` (rusage from `wait4`), stdout to
/// `stdout_to` (or /dev/null), and return what it cost.
pub fn measure(
    bin: &Path,
    args: &[&str],
    env: &BTreeMap<String, String>,
    stdout_to: Option<&Path>,
    dir: &Path,
) -> anyhow::Result<Usage> {
    let report = dir.join("rusage.txt");
    let stdout = match stdout_to {
        Some(path) => Stdio::from(std::fs::File::create(path)?),
        None => Stdio::null(),
    };
    let started = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%U %S %M")
        .arg("-o")
        .arg(&report)
        .arg(bin)
        .args(args)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .context("cannot run /usr/bin/time (GNU time is needed for the rusage)")?;
    let wall = started.elapsed();
    let code = out.status.code().unwrap_or(-1);
    if code != 0 && code != 2 {
        bail!(
            "`audience-sync {}` exited {code}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    let text = std::fs::read_to_string(&report)?;
    let nums: Vec<f64> = text
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [user, sys, max_kb] = nums[..] else {
        bail!("unexpected GNU time output: {text}");
    };
    Ok(Usage {
        wall,
        cpu: user + sys,
        // Kilobytes are whole numbers.
        peak_rss: (max_kb as u64) * 1024,
    })
}
