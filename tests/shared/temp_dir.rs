//! A temporary directory that is removed when dropped, also when a test panics. The
//! workspace's test binaries include this file with `#[path]` (`tempfile` would bring `rustix`
//! and `fastrand`, which are not in the tree).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `<temp>/cmmp-test-<pid>-<name>`, empty at creation, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    /// A fresh directory for this process and `name` (an older one of the same name is
    /// removed first).
    pub(crate) fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("cmmp-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        Self(dir)
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// `name` inside the directory.
    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
