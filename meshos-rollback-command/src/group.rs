//! A running command whose whole process group dies with its run.
//!
//! `npm run` starts `sh -c`, which starts node: killing only the direct child leaves
//! those running (still migrating a database, still holding the output pipes open).
//! So each command leads its own process group, and the group is killed at the
//! deadline or when the run's future is dropped: the engine cancels by dropping.

use std::io;

use tokio::process::{Child, Command};

/// How long to wait for a killed command to be reaped before leaving it to tokio's
/// orphan reaper; SIGKILL is not instant for a process in uninterruptible sleep.
const REAP_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// A spawned command; dropping it kills its process group unless the run finished.
#[derive(Debug)]
pub(crate) struct Running {
    // `Drop::drop` runs before `child` is dropped (and later reaped), so the group is
    // killed while its leader is unreaped and the id cannot have been reused.
    child: Child,
    #[cfg_attr(not(unix), allow(dead_code))]
    pgid: Option<u32>,
    armed: bool,
}

impl Running {
    /// Spawns `cmd` as the leader of a new process group.
    pub(crate) fn spawn(cmd: &mut Command) -> io::Result<Self> {
        #[cfg(unix)]
        cmd.process_group(0);
        // The direct child, at least, on platforms without process groups.
        cmd.kill_on_drop(true);
        let child = cmd.spawn()?;
        Ok(Running {
            pgid: child.id(),
            child,
            armed: true,
        })
    }

    pub(crate) fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// The command exited and its output ended: whatever it left running in the
    /// background is its own business.
    pub(crate) fn finished(&mut self) {
        self.armed = false;
    }

    /// Kills the group, then reaps the leader (bounded).
    pub(crate) async fn kill(&mut self) {
        self.kill_group();
        let _ = tokio::time::timeout(REAP_WITHIN, self.child.wait()).await;
    }

    fn kill_group(&mut self) {
        if !std::mem::take(&mut self.armed) {
            return;
        }
        #[cfg(unix)]
        if let Some(pgid) = self.pgid {
            sigkill_group(pgid);
        }
        let _ = self.child.start_kill();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill_group();
    }
}

/// SIGKILL to every process in group `pgid`. The id is still the group's even when
/// the leader was reaped early (a child exited but a grandchild holds the pipes):
/// Linux does not reuse an id while a process group with that id has members.
#[cfg(unix)]
fn sigkill_group(pgid: u32) {
    use rustix::process::{Pid, Signal, kill_process_group};
    // Never 0 or 1: kill(-1) signals every process we may signal.
    let Some(pid) = i32::try_from(pgid)
        .ok()
        .filter(|&p| p > 1)
        .and_then(Pid::from_raw)
    else {
        return;
    };
    match kill_process_group(pid, Signal::KILL) {
        Ok(()) => {}
        // Every member already exited.
        Err(rustix::io::Errno::SRCH) => {}
        Err(e) => tracing::warn!(pgid, error = %e, "cannot kill a command's process group"),
    }
}
