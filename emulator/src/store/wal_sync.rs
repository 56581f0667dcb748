//! Durable acknowledgements without the committer waiting for the disk.
//!
//! With `synchronous = FULL`, SQLite syncs the WAL inside every `COMMIT`, so the site's single
//! committer sat idle for each `fsync` (about 3.5 ms on the benchmark machine) while the
//! requests of the next group waited behind it. Here the committing connection runs with
//! `synchronous = NORMAL`, which writes a commit's frames to the WAL without syncing them,
//! and this thread syncs the WAL file (`fdatasync`) after commits. A commit is handed out
//! as a [`Durable`] ticket: whoever acknowledges the commit's requests waits for the ticket,
//! so **nothing is acknowledged before its commit is on disk**, exactly as with `FULL`; only
//! the committer no longer waits. One sync covers every commit written before it began, so
//! commits that pile up during a sync share the next one.
//!
//! SQLite's own guarantees do not change: in WAL mode `NORMAL` keeps the database
//! consistent across a power loss (the WAL is synced before each checkpoint, and frames
//! after the last valid commit are ignored); what it gives up, durability of the last
//! commits, is what this thread restores before anyone is told.
//!
//! A failed sync is final: the kernel may have dropped the pages it could not write, so a
//! later sync that succeeds proves nothing about them. Every ticket not yet on disk and every
//! later one then reports failure, and the server answers HTTP 500 instead of accepting.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

/// How the thread makes the WAL durable: `fdatasync` of the file at the path (opened for
/// each sync, so a WAL file that SQLite replaced is never missed).
pub(super) type SyncFn = Box<dyn FnMut(&Path) -> io::Result<()> + Send>;

/// Called with `true` once a commit is on disk, `false` when it never will be known to be.
type Callback = Box<dyn FnOnce(bool) + Send>;

/// What the committing connection, the waiters and the sync thread share.
struct State {
    /// Commits written to the WAL so far.
    committed: u64,
    /// Commits known to be on disk.
    synced: u64,
    /// A sync failed: no commit after `synced` is ever reported durable.
    failed: bool,
    /// Callbacks for commits not yet on disk, in commit order.
    waiting: VecDeque<(u64, Callback)>,
    /// Syncs run (tests).
    syncs: u64,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // Plain counters and a queue: a panic elsewhere cannot leave them inconsistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'g>(&self, guard: MutexGuard<'g, State>) -> MutexGuard<'g, State> {
        self.wake.wait(guard).unwrap_or_else(PoisonError::into_inner)
    }
}

/// The WAL sync thread of a file database.
pub(super) struct WalSync {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for WalSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.shared.state();
        f.debug_struct("WalSync")
            .field("committed", &s.committed)
            .field("synced", &s.synced)
            .field("failed", &s.failed)
            .finish_non_exhaustive()
    }
}

/// A commit whose acknowledgement must wait until it is on disk (see the module docs).
#[must_use = "a commit is acknowledged only once it is durable"]
pub(crate) struct Durable(Option<(Arc<Shared>, u64)>);

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Durable").field(&self.0.as_ref().map(|(_, commit)| commit)).finish()
    }
}

impl Durable {
    /// A commit that is on disk already (a database that syncs in its commits).
    pub(crate) fn now() -> Self {
        Self(None)
    }

    /// Blocks until the commit is on disk; `false` when a sync failed first.
    pub(crate) fn wait(self) -> bool {
        let Some((shared, commit)) = self.0 else { return true };
        let mut s = shared.state();
        loop {
            if s.synced >= commit {
                return true;
            }
            // (When the thread stops, it first syncs every commit: none is left behind.)
            if s.failed {
                return false;
            }
            s = shared.wait(s);
        }
    }

    /// Calls `then(true)` once the commit is on disk (at once, on this thread, when it is
    /// already), or `then(false)` when a sync failed first. Otherwise `then` runs on the sync
    /// thread, so it must be quick (send an answer, not write one).
    pub(crate) fn then(self, then: impl FnOnce(bool) + Send + 'static) {
        let Some((shared, commit)) = self.0 else { return then(true) };
        let mut s = shared.state();
        if s.synced >= commit {
            drop(s);
            return then(true);
        }
        if s.failed {
            drop(s);
            return then(false);
        }
        s.waiting.push_back((commit, Box::new(then)));
    }
}

impl WalSync {
    /// Starts the thread for the WAL at `wal` (`<database>-wal`); `None` when the thread
    /// cannot start, and the database then keeps syncing in its commits.
    pub(super) fn start(wal: PathBuf) -> Option<Self> {
        Self::start_with(wal, Box::new(sync_file))
    }

    /// As [`WalSync::start`] with the way to sync (tests hold or fail syncs).
    pub(super) fn start_with(wal: PathBuf, sync: SyncFn) -> Option<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                committed: 0,
                synced: 0,
                failed: false,
                waiting: VecDeque::new(),
                syncs: 0,
                stop: false,
            }),
            wake: Condvar::new(),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("cmmp-wal-sync".to_owned())
                .spawn(move || run(&wal, sync, &shared))
                .ok()?
        };
        Some(Self { shared, thread: Some(thread) })
    }

    /// A commit has written its frames: the ticket for it.
    pub(super) fn committed(&self) -> Durable {
        let mut s = self.shared.state();
        s.committed += 1;
        let commit = s.committed;
        drop(s);
        self.shared.wake.notify_all();
        Durable(Some((Arc::clone(&self.shared), commit)))
    }

    /// (commits, commits on disk, syncs run, failed) (tests).
    #[cfg(test)]
    pub(super) fn counts(&self) -> (u64, u64, u64, bool) {
        let s = self.shared.state();
        (s.committed, s.synced, s.syncs, s.failed)
    }
}

impl Drop for WalSync {
    fn drop(&mut self) {
        // The thread syncs what is committed before it stops, so no ticket is left waiting.
        self.shared.state().stop = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `fdatasync` of the file at `path`.
fn sync_file(path: &Path) -> io::Result<()> {
    std::fs::OpenOptions::new().write(true).open(path)?.sync_data()
}

/// The thread: whenever commits are not on disk, one sync for all of them, then their
/// callbacks; after a failure, every callback with `false`.
fn run(wal: &Path, mut sync: SyncFn, shared: &Shared) {
    loop {
        let target = {
            let mut s = shared.state();
            while s.committed <= s.synced && !s.stop && !s.failed {
                s = shared.wait(s);
            }
            if s.failed || s.committed <= s.synced {
                // Stopping with nothing left to sync, or failed (callbacks already run).
                let left: Vec<(u64, Callback)> = s.waiting.drain(..).collect();
                drop(s);
                shared.wake.notify_all();
                for (_, then) in left {
                    then(false);
                }
                return;
            }
            s.committed
        };
        let result = sync(wal);
        let mut s = shared.state();
        s.syncs += 1;
        let done: Vec<(u64, Callback)> = match result {
            Ok(()) => {
                s.synced = s.synced.max(target);
                let n = s.waiting.iter().take_while(|(commit, _)| *commit <= target).count();
                s.waiting.drain(..n).collect()
            }
            Err(e) => {
                tracing::error!(wal = %wal.display(), error = %e,
                    "syncing the WAL failed; no request is accepted from now on");
                s.failed = true;
                s.waiting.drain(..).collect()
            }
        };
        let ok = !s.failed;
        drop(s);
        shared.wake.notify_all();
        for (_, then) in done {
            then(ok);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    /// A sync that waits for the test to let it through, and reports each call.
    fn gated() -> (SyncFn, mpsc::Sender<io::Result<()>>, mpsc::Receiver<()>) {
        let (allow, gate) = mpsc::channel::<io::Result<()>>();
        let (called, calls) = mpsc::channel();
        let sync: SyncFn = Box::new(move |_| {
            let _ = called.send(());
            gate.recv().unwrap_or(Ok(()))
        });
        (sync, allow, calls)
    }

    const LONG: Duration = Duration::from_secs(10);

    #[test]
    fn a_commit_is_reported_only_after_the_sync_that_covers_it() {
        let (sync, allow, calls) = gated();
        let wal = WalSync::start_with(PathBuf::from("unused-wal"), sync).expect("thread");
        let acked = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&acked);
        wal.committed().then(move |ok| flag.store(ok, Ordering::SeqCst));
        calls.recv_timeout(LONG).expect("a sync begins");
        std::thread::sleep(Duration::from_millis(50));
        assert!(!acked.load(Ordering::SeqCst), "acknowledged before the sync returned");
        allow.send(Ok(())).expect("gate");
        let ticket = wal.committed();
        // The second commit came after the first sync began: it needs a sync of its own.
        calls.recv_timeout(LONG).expect("a second sync");
        allow.send(Ok(())).expect("gate");
        assert!(ticket.wait());
        assert!(acked.load(Ordering::SeqCst));
        let (committed, synced, syncs, failed) = wal.counts();
        assert_eq!((committed, synced, syncs, failed), (2, 2, 2, false));
    }

    #[test]
    fn commits_that_wait_for_a_sync_share_the_next_one_and_keep_their_order() {
        let (sync, allow, calls) = gated();
        let wal = WalSync::start_with(PathBuf::from("unused-wal"), sync).expect("thread");
        let first = wal.committed();
        calls.recv_timeout(LONG).expect("a sync begins");
        let order = Arc::new(Mutex::new(Vec::new()));
        for n in 2..=5 {
            let order = Arc::clone(&order);
            wal.committed().then(move |ok| order.lock().expect("order").push((n, ok)));
        }
        allow.send(Ok(())).expect("gate");
        assert!(first.wait());
        calls.recv_timeout(LONG).expect("one sync for the four waiting commits");
        allow.send(Ok(())).expect("gate");
        let last = wal.committed();
        calls.recv_timeout(LONG).expect("a sync for the last");
        allow.send(Ok(())).expect("gate");
        assert!(last.wait());
        assert_eq!(*order.lock().expect("order"), vec![(2, true), (3, true), (4, true), (5, true)]);
        assert_eq!(wal.counts(), (6, 6, 3, false));
    }

    #[test]
    fn after_a_failed_sync_no_commit_is_ever_reported_durable() {
        let (sync, allow, calls) = gated();
        let wal = WalSync::start_with(PathBuf::from("unused-wal"), sync).expect("thread");
        let (tx, rx) = mpsc::channel();
        let first = tx.clone();
        wal.committed().then(move |ok| first.send(ok).expect("send"));
        calls.recv_timeout(LONG).expect("a sync begins");
        allow.send(Err(io::Error::other("the disk went away"))).expect("gate");
        assert_eq!(rx.recv_timeout(LONG), Ok(false), "the waiting commit");
        let later = wal.committed();
        assert!(!later.wait(), "a commit after a failed sync reported durable");
        wal.committed().then(move |ok| tx.send(ok).expect("send"));
        assert_eq!(rx.recv_timeout(LONG), Ok(false), "a commit after the failure");
        assert!(calls.try_recv().is_err(), "a sync after the failure");
        assert!(wal.counts().3);
    }

    #[test]
    fn stopping_syncs_what_is_committed_first() {
        let synced = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&synced);
        let sync: SyncFn = Box::new(move |_| {
            std::thread::sleep(Duration::from_millis(20));
            count.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        let wal = WalSync::start_with(PathBuf::from("unused-wal"), sync).expect("thread");
        let (tx, rx) = mpsc::channel();
        for _ in 0..3 {
            let tx = tx.clone();
            wal.committed().then(move |ok| tx.send(ok).expect("send"));
        }
        drop(wal);
        let answers: Vec<bool> = rx.try_iter().collect();
        assert_eq!(answers, vec![true, true, true]);
        assert!(synced.load(Ordering::SeqCst) >= 1);
    }

    #[test]
    fn a_missing_wal_file_is_a_failed_sync() {
        let dir = std::env::temp_dir().join(format!("cmmp-walsync-{}", std::process::id()));
        let wal = WalSync::start(dir.join("no-such-db-wal")).expect("thread");
        assert!(!wal.committed().wait());
    }
}
