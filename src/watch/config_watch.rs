//! Notice changes of the config file, whichever way it is saved.
//!
//! The file's *directory* is watched (not the file): an editor that saves by writing a temporary
//! file and renaming it over the original replaces the inode, and a watch on the old inode would
//! go silent. Watching the directory sees the rename, a truncate-and-write, a delete and
//! re-create alike. Kubernetes mounts a ConfigMap as a symlink into a `..data` directory that it
//! swaps atomically; events on `..`-prefixed entries count too. When the config path is a
//! symlink, the directory of its target (as resolved at start) is watched as well, and events
//! on the target's current name count.
//!
//! Events are debounced (a save is often several events) and coalesced into a channel of
//! capacity one: the receiver learns "something changed, re-read the file", never what. The
//! loop re-reads the file and compares digests, so a spurious event costs one read.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};
use tokio::sync::mpsc;

/// Watch failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The platform watcher could not be set up.
    #[error("cannot watch `{path}` for changes")]
    Watch {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: notify::Error,
    },
}

/// A running watch; dropping it stops watching.
pub struct ConfigWatch {
    _debouncer: Debouncer<RecommendedWatcher>,
}

impl std::fmt::Debug for ConfigWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigWatch").finish_non_exhaustive()
    }
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Whether an event on `changed` may have changed the config whose file names are `names`.
fn relevant(changed: &Path, names: &BTreeSet<OsString>) -> bool {
    changed
        .file_name()
        .is_some_and(|name| names.contains(name) || name.to_string_lossy().starts_with(".."))
}

/// Start watching the config file at `path`, debouncing bursts for `debounce`. The receiver
/// gets one message per debounced burst of changes (coalesced while unread).
///
/// # Errors
/// The watcher cannot be created, or the file's directory cannot be watched.
pub fn watch(path: &Path, debounce: Duration) -> Result<(ConfigWatch, mpsc::Receiver<()>), Error> {
    let mut dirs = BTreeSet::from([parent_dir(path)]);
    if let Ok(target) = std::fs::canonicalize(path) {
        dirs.insert(parent_dir(&target));
    }
    let (tx, changes) = mpsc::channel(1);
    let watched = path.to_owned();
    let handler = move |result: DebounceEventResult| match result {
        Ok(events) => {
            // Resolved anew for each burst: a symlink repointed to another file in a watched
            // directory is followed.
            let names = file_names(&watched);
            if events.iter().any(|event| relevant(&event.path, &names)) {
                // Full means a change is already pending: coalesce.
                let _ = tx.try_send(());
            }
        }
        Err(err) => tracing::warn!(error = %err, "config file watcher error"),
    };
    let mut debouncer = new_debouncer(debounce, handler).map_err(|source| Error::Watch {
        path: parent_dir(path),
        source,
    })?;
    for dir in dirs {
        debouncer
            .watcher()
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|source| Error::Watch {
                path: dir.clone(),
                source,
            })?;
    }
    Ok((
        ConfigWatch {
            _debouncer: debouncer,
        },
        changes,
    ))
}

/// The names under which a change of the config at `path` may show: its own, and that of the
/// file it resolves to when it is a symlink.
fn file_names(path: &Path) -> BTreeSet<OsString> {
    let mut names = BTreeSet::new();
    if let Some(name) = path.file_name() {
        names.insert(name.to_owned());
    }
    if let Some(name) = std::fs::canonicalize(path)
        .ok()
        .and_then(|target| target.file_name().map(ToOwned::to_owned))
    {
        names.insert(name);
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_on_the_file_and_on_kubernetes_swaps_are_relevant() {
        let names = BTreeSet::from([OsString::from("sync.yaml")]);
        assert!(relevant(Path::new("/etc/a/sync.yaml"), &names));
        assert!(relevant(Path::new("/etc/a/..data"), &names));
        assert!(relevant(
            Path::new("/etc/a/..2026_11_27_04_00_00.123"),
            &names
        ));
        assert!(!relevant(Path::new("/etc/a/other.yaml"), &names));
        assert!(!relevant(Path::new("/etc/a/.sync.yaml.swp"), &names));
    }

    #[test]
    fn a_bare_file_name_lives_in_the_current_directory() {
        assert_eq!(parent_dir(Path::new("sync.yaml")), PathBuf::from("."));
        assert_eq!(
            parent_dir(Path::new("/etc/sync.yaml")),
            PathBuf::from("/etc")
        );
    }
}
