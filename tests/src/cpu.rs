//! CPU time from `/proc`, for the benchmarks: a process's, every process of one program's
//! (Postgres runs a process per connection), and the machine's.

use anyhow::Context;

/// Linux reports in USER_HZ, 100 on every platform it runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU time (user and system) the process `pid` has used so far; with `children`, also what
/// its exited children used (Postgres's postmaster collects its ended backends' time so).
pub fn process_seconds(pid: u32, children: bool) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at the state, field 3:
    // utime, stime, cutime and cstime are fields 14 to 17.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("unexpected /proc stat format")?
        .1
        .split_whitespace()
        .collect();
    let wanted = if children { 11..15 } else { 11..13 };
    let ticks: u64 = fields
        .get(wanted)
        .context("short /proc stat")?
        .iter()
        .map(|f| f.parse::<u64>().unwrap_or(0))
        .sum();
    Ok(ticks as f64 / TICKS_PER_SECOND)
}

/// CPU time used so far by every running process whose command is `comm`, with what their
/// exited children used.
pub fn program_seconds(comm: &str) -> anyhow::Result<f64> {
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc")? {
        let Some(pid) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        // A process may end between the listing and the reads: it is skipped.
        let Ok(name) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
            continue;
        };
        if name.trim_end() == comm
            && let Ok(seconds) = process_seconds(pid, true)
        {
            total += seconds;
        }
    }
    Ok(total)
}

/// The machine's busy and idle CPU time so far, summed over its cores (`/proc/stat`).
pub fn machine_seconds() -> anyhow::Result<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let cpu: Vec<u64> = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .context("unexpected /proc/stat format")?
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user already).
    let field = |i: usize| cpu.get(i).copied().unwrap_or(0);
    let idle = field(3) + field(4);
    let busy = field(0) + field(1) + field(2) + field(5) + field(6) + field(7);
    Ok((
        busy as f64 / TICKS_PER_SECOND,
        idle as f64 / TICKS_PER_SECOND,
    ))
}
