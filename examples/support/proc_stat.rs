//! Shared by the benchmarks: the CPU time (user + system) a Linux process or thread has used,
//! read from its `/proc/…/stat`.

use std::sync::OnceLock;

use anyhow::Context as _;

/// User + system CPU seconds in the stat file at `path`: `/proc/self/stat`, `/proc/PID/stat` or
/// `/proc/thread-self/stat`.
pub fn cpu_seconds(path: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    // The fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').context("a /proc stat line")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are the 14th and 15th fields of the whole line: 12th and 13th here.
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .context("a short /proc stat line")?
            .parse::<f64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) / clock_ticks())
}

/// Clock ticks a second (`getconf CLK_TCK`, asked once; 100 where it cannot be asked).
fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}
