//! WAL checkpoints on a thread of their own.
//!
//! SQLite copies the WAL back into the database file (a checkpoint) from the connection that
//! commits, once the WAL holds 1,000 pages: the site's single committer then spent about an
//! eighth of its time writing and syncing the database file, while every request of the next
//! group waited. Here the committing connection never checkpoints (`wal_autocheckpoint = 0`);
//! after each commit it wakes this thread, which runs `PRAGMA wal_checkpoint(PASSIVE)` on a
//! connection of its own, at most every [`PASS_INTERVAL`] unless asked to hurry.
//!
//! Durability does not change: a commit is on disk when the WAL is synced, which the
//! committing connection still does (`synchronous = FULL`); a checkpoint only moves pages
//! that are already durable, and syncs the WAL before and the database file after.
//!
//! A passive checkpoint never waits for the writer, so under steady load the WAL would keep
//! growing: SQLite starts writing it from the beginning again only when a write transaction
//! begins while every frame is already copied back. So when a pass finds the WAL longer
//! than [`Checkpointer::restart_frames`], the next group waits (see [`Checkpointer::settle`])
//! for a pass that began after the last commit; its first write then restarts the WAL.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// The shortest time between two passes while commits keep coming. A pass copies each page
/// once however often it was written since the last one, and syncs both files: at 50 ms the
/// passes cost about half as much CPU again as at 200–250 ms in the DDR phase of the load
/// benchmark (38 against 25–34 µs per DDR, scale 0.5).
pub(super) const PASS_INTERVAL: Duration = Duration::from_millis(200);

/// How long a group waits at most for the pass that lets the WAL restart.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the committing connection and the checkpoint thread share.
#[derive(Debug)]
struct State {
    /// Commits made so far.
    committed: u64,
    /// Commits whose frames the last finished pass covered.
    covered: u64,
    /// The commit count a waiter needs covered: a pass for it skips the interval. A count,
    /// not a flag, so that a wait which a pass already under way satisfied leaves nothing
    /// behind to hurry a later, unasked-for pass.
    wanted: u64,
    /// The shortest time between passes ([`PASS_INTERVAL`]; tests change it).
    interval: Duration,
    /// Frames in the WAL after the last pass (`log` of `wal_checkpoint`).
    wal_frames: i64,
    /// Passes run, and passes that failed (kept for tests and the next pass).
    passes: u64,
    failures: u64,
    stop: bool,
}

/// The checkpoint thread of a file database.
#[derive(Debug)]
pub(super) struct Checkpointer {
    shared: Arc<(Mutex<State>, Condvar)>,
    thread: Option<JoinHandle<()>>,
    /// WAL length (frames) from which the next group waits for a full pass.
    pub(super) restart_frames: i64,
}

/// The WAL length from which a group waits for the WAL to restart: 16,384 frames (64 MiB of
/// 4 KiB pages), sixteen times SQLite's own checkpoint threshold.
pub(super) const RESTART_FRAMES: i64 = 16_384;

impl Checkpointer {
    /// Starts the thread with its own connection to `path` (already in WAL mode); `None`
    /// when the connection cannot be opened or the thread cannot start, and the committing
    /// connection then keeps checkpointing itself.
    pub(super) fn start(path: &Path) -> Option<Self> {
        let open = || -> rusqlite::Result<Connection> {
            let conn = Connection::open(path)?;
            conn.busy_timeout(Duration::from_secs(5))?;
            // The checkpointing connection's setting decides the syncs of a checkpoint.
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.pragma_update(None, "wal_autocheckpoint", 0)?;
            Ok(conn)
        };
        let conn = open().ok()?;
        let state = State {
            committed: 0,
            covered: 0,
            wanted: 0,
            interval: PASS_INTERVAL,
            wal_frames: 0,
            passes: 0,
            failures: 0,
            stop: false,
        };
        let shared = Arc::new((Mutex::new(state), Condvar::new()));
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("cmmp-checkpoint".to_owned())
                .spawn(move || run(&conn, &shared))
                .ok()?
        };
        Some(Self { shared, thread: Some(thread), restart_frames: RESTART_FRAMES })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared.0)
    }

    /// A group committed: its frames are for the next pass.
    pub(super) fn committed(&self) {
        self.state().committed += 1;
        self.shared.1.notify_all();
    }

    /// Called before a group begins: when the WAL has grown past [`Self::restart_frames`],
    /// waits (at most [`SETTLE_TIMEOUT`]) until a pass covers every commit, so that the group's
    /// first write starts the WAL from the beginning.
    pub(super) fn settle(&self) {
        let mut state = self.state();
        if state.wal_frames < self.restart_frames || state.covered >= state.committed {
            return;
        }
        let target = state.committed;
        state.wanted = state.wanted.max(target);
        self.shared.1.notify_all();
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        while state.covered < target && !state.stop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state =
                self.shared.1.wait_timeout(state, left).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// Sets the shortest time between passes (tests).
    #[cfg(test)]
    pub(super) fn set_interval(&self, interval: Duration) {
        self.state().interval = interval;
        self.shared.1.notify_all();
    }

    /// Passes run so far, without waiting (tests).
    #[cfg(test)]
    pub(super) fn passes(&self) -> u64 {
        self.state().passes
    }

    /// Waits until a pass covers every commit so far (tests).
    #[cfg(test)]
    pub(super) fn wait_covered(&self) -> (i64, u64, u64) {
        let mut state = self.state();
        let target = state.committed;
        state.wanted = state.wanted.max(target);
        self.shared.1.notify_all();
        while state.covered < target {
            state = self.shared.1.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        (state.wal_frames, state.passes, state.failures)
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.state().stop = true;
        self.shared.1.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // The state is plain counters; a panic elsewhere cannot leave it inconsistent.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The thread: a pass whenever commits are not covered, at most every [`PASS_INTERVAL`]
/// unless a group is waiting.
fn run(conn: &Connection, shared: &(Mutex<State>, Condvar)) {
    let (state, wake) = shared;
    let mut last_pass: Option<Instant> = None;
    // The commit count the last pass was for: a waiter hurries a pass only for commits beyond
    // it, so a pass that failed is tried again at the interval, not in a busy loop.
    let mut attempted = 0;
    loop {
        let target = {
            let mut s = lock(state);
            loop {
                if s.stop {
                    return;
                }
                if s.committed > s.covered {
                    let interval = s.interval;
                    let due = last_pass
                        .map_or(Duration::ZERO, |at| interval.saturating_sub(at.elapsed()));
                    if s.wanted > attempted || due.is_zero() {
                        break;
                    }
                    s = wake.wait_timeout(s, due).unwrap_or_else(PoisonError::into_inner).0;
                } else {
                    s = wake.wait(s).unwrap_or_else(PoisonError::into_inner);
                }
            }
            s.committed
        };
        attempted = target;
        last_pass = Some(Instant::now());
        // (busy, frames in the WAL, frames copied back); a pass that fails is tried again
        // after the interval, or sooner for a waiter that needs a later commit covered.
        let pass = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        });
        let mut s = lock(state);
        s.passes += 1;
        match pass {
            Ok((0, log, copied)) if log == copied => {
                s.covered = s.covered.max(target);
                s.wal_frames = log;
            }
            Ok((_, log, _)) => {
                s.failures += 1;
                s.wal_frames = log;
            }
            Err(_) => s.failures += 1,
        }
        drop(s);
        wake.notify_all();
    }
}
