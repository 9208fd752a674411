//! Child processes of a task, tracked so a cancel can kill whole process trees.
//!
//! Every process a handler starts goes into a new process group (`process_group(0)`, like
//! kojid's `setpgrp`), so `kill(-pgid, …)` reaches its descendants too, unless they moved to a
//! group of their own. Killing is SIGTERM to every group, up to two seconds for them to go, then
//! SIGKILL.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long process groups get between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// The process groups a task started.
#[derive(Debug, Clone, Default)]
pub struct ProcessTracker {
    groups: Arc<Mutex<Vec<i32>>>,
}

impl ProcessTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts `cmd` in a new process group and tracks the group. The caller builds the argv with
    /// `Command::new(program).arg(..)`: never a shell string.
    pub fn spawn(
        &self,
        cmd: &mut tokio::process::Command,
    ) -> std::io::Result<tokio::process::Child> {
        cmd.process_group(0).kill_on_drop(false);
        let child = cmd.spawn()?;
        if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
            self.groups
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(pid);
        }
        Ok(child)
    }

    /// Process groups started so far (some may be gone).
    pub fn groups(&self) -> Vec<i32> {
        self.groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Kills every tracked group that still has members: SIGTERM, then SIGKILL after `grace`.
    /// Returns when no group is left or after the SIGKILL.
    pub async fn kill_all(&self, grace: Duration) {
        let groups = self.groups();
        let mut alive: Vec<i32> = groups.into_iter().filter(|&g| group_alive(g)).collect();
        if alive.is_empty() {
            return;
        }
        for &g in &alive {
            signal_group(g, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            alive.retain(|&g| group_alive(g));
            if alive.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for &g in &alive {
            tracing::warn!(pgid = g, "process group ignored SIGTERM; sending SIGKILL");
            signal_group(g, libc::SIGKILL);
        }
    }
}

fn signal_group(pgid: i32, sig: i32) {
    if pgid <= 1 {
        return; // never signal "every process" (0, -1) or init's group
    }
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
    unsafe {
        libc::kill(-pgid, sig);
    }
}

/// True while the process group has a live member. Zombies (dead, not yet reaped) do not count:
/// they hold no resources and vanish once their parent or init reaps them.
pub fn group_alive(pgid: i32) -> bool {
    if pgid <= 1 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(-pgid, 0) };
    let exists = r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    exists && live_members(pgid).unwrap_or(true)
}

/// Whether /proc lists a member of the group that is not a zombie; `None` without /proc.
fn live_members(pgid: i32) -> Option<bool> {
    let rd = std::fs::read_dir("/proc").ok()?;
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ...": comm may contain spaces and parentheses.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next();
        let pgrp = f.nth(1).and_then(|p| p.parse::<i32>().ok());
        if pgrp == Some(pgid) && state != Some("Z") && state != Some("X") {
            return Some(true);
        }
    }
    Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn kills_the_whole_tree() {
        let t = ProcessTracker::new();
        // A shell whose child ignores nothing; both live in the new group.
        let mut cmd = tokio::process::Command::new("sh");
        cmd.args(["-c", "sleep 600 & sleep 600; wait"]);
        let mut child = t.spawn(&mut cmd).expect("spawn sh");
        let g = t.groups()[0];
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(group_alive(g));
        let start = Instant::now();
        let waiter = tokio::spawn(async move { child.wait().await });
        t.kill_all(KILL_GRACE).await;
        let _ = waiter.await;
        // Give the reaper a moment for the background sleep (reparented to init).
        let deadline = Instant::now() + Duration::from_secs(3);
        while group_alive(g) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!group_alive(g), "group {g} survived");
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
