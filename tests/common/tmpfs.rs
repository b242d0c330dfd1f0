//! A small tmpfs mounted for a test (root only: see [`super::can_mount`]), to fill the file
//! system under a store.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of `size` mounted on a fresh temporary directory, unmounted on drop.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs failed");
        Tmpfs { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system with a file of zeros `name` (written, so its blocks exist),
    /// until a write still fails after a pause: space freed while it fills is taken too.
    /// Both suites' tests that remove lock.mdb just before the fill once found room for a new
    /// lock.mdb afterwards without the pause (CI, under load); why the room appeared is not
    /// known.
    pub fn fill(&self, name: &str) -> PathBuf {
        use std::io::Write;
        let path = self.path().join(name);
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 4096];
        loop {
            while f.write_all(&block).is_ok() {}
            let _ = f.sync_all();
            std::thread::sleep(std::time::Duration::from_millis(100));
            if f.write_all(&block).is_err() {
                break;
            }
        }
        path
    }
}

impl Tmpfs {
    /// Removes the fill at `path`, then runs `attempt` (which needs the room it held) until
    /// it no longer finds the disk full (`Err`, with what it found), for up to 10 s. The
    /// room a removed file held can reach writers late, as room freed while filling does
    /// ([`Tmpfs::fill`]): CI once saw a store's creation fail for lack of room right after
    /// the fill was removed. Any other failure belongs in `attempt` (a panic).
    pub fn unfill<T>(&self, path: &Path, mut attempt: impl FnMut() -> Result<T, String>) -> T {
        std::fs::remove_file(path).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match attempt() {
                Ok(done) => return done,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(full) => panic!("still no room 10 s after the fill was removed: {full}"),
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
