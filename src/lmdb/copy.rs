//! [`LmdbStore::copy_to`]: a consistent copy of a live store, with LMDB's own copy, into a
//! new private directory.

use std::fs;
use std::path::Path;

use heed::MdbError;

use crate::error::{Error, LmdbError, Result, is_disk_full};
use crate::lmdb::LmdbStore;
use crate::lmdb::env::Shared;
use crate::lmdb::open::create_dir_with_mode;

impl LmdbStore {
    /// Copies the environment into a new directory `dest`, consistently and, if `compact`,
    /// with free pages left out. Safe while workers write.
    ///
    /// `dest` must not exist: it is created, readable by its owner only (0700, with its
    /// missing parents), holding `data.mdb` (0600). An existing directory, even an empty
    /// one, or a symbolic link is refused with [`Error::DestinationExists`] and nothing is
    /// written (a copy never goes through a link, nor keeps another directory's mode). When
    /// the copy fails, what it created is removed.
    pub fn copy_to(&self, dest: &Path, compact: bool) -> Result<()> {
        let shared = &*self.shared;
        shared.env()?; // refused in a forked child before anything is created
        create_new_dir(dest)?;
        let path = dest.join("data.mdb");
        let copied = self.copy_into(shared, &path, compact);
        if copied.is_err() {
            let _ = fs::remove_file(&path);
            let _ = fs::remove_dir(dest);
        }
        copied
    }

    /// [`Self::copy_to`]'s copy into the new file `path`.
    fn copy_into(&self, shared: &Shared, path: &Path, compact: bool) -> Result<()> {
        let path = path.to_path_buf();
        // A new file only (never through a symlink), readable by the owner only.
        let mut new_file = fs::OpenOptions::new();
        new_file.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            new_file.custom_flags(libc::O_NOFOLLOW).mode(0o600);
        }
        let mut file = match new_file.open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::DestinationExists { path });
            }
            Err(source) => {
                return Err(Error::Path {
                    path,
                    problem: "cannot create the copy".into(),
                    source,
                });
            }
        };
        let option = if compact {
            heed::CompactionOption::Enabled
        } else {
            heed::CompactionOption::Disabled
        };
        let env = shared.env()?;
        let _g = shared.resize.read().unwrap_or_else(|e| e.into_inner());
        env.copy_to_file(&mut file, option).map_err(|e| match e {
            // Reading the store never finds a file system full: the copy's did.
            heed::Error::Io(io) if is_disk_full(&path, &io) => copy_disk_full(&path, io),
            heed::Error::Mdb(MdbError::Other(code))
                if is_disk_full(&path, &std::io::Error::from_raw_os_error(code)) =>
            {
                copy_disk_full(&path, std::io::Error::from_raw_os_error(code))
            }
            other => shared.resolve(Error::Lmdb(LmdbError(other))),
        })
    }
}

/// A copy that found the destination's file system full: the error names the copy, not the
/// store it was copied from.
fn copy_disk_full(copy: &Path, source: std::io::Error) -> Error {
    Error::Path {
        path: copy.to_path_buf(),
        problem: "cannot write the copy: the file system holding it is full (the copy was \
                  removed; the store itself is untouched); free space there, or copy to \
                  another file system"
            .into(),
        source,
    }
}

/// Creates the directory `dest`, which must not exist (its missing parents are created too),
/// readable by its owner only: [`Error::DestinationExists`] when anything is there already,
/// a symbolic link included (never followed).
fn create_new_dir(dest: &Path) -> Result<()> {
    let path_err = |problem: &str, source| Error::Path {
        path: dest.to_path_buf(),
        problem: problem.into(),
        source,
    };
    if fs::symlink_metadata(dest).is_ok() {
        return Err(Error::DestinationExists {
            path: dest.to_path_buf(),
        });
    }
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.exists()
    {
        create_dir_with_mode(parent)
            .map_err(|e| path_err("cannot create the destination's parent directory", e))?;
    }
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    match builder.create(dest) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::DestinationExists {
            path: dest.to_path_buf(),
        }),
        Err(e) => Err(path_err("cannot create the destination directory", e)),
    }
}
