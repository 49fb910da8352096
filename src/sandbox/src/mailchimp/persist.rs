//! Keeping the account's data between runs (`sandbox --state DIR`): `DIR/mailchimp.json` is
//! loaded at start when present (it then wins over the seed and the generator), and saved
//! shortly after every change and on [`super::State::flush`].
//!
//! # Guarantees
//! - A save writes a temporary file and renames it over the old one: a crash never leaves half
//!   a file.
//! - Changes made while a save is pending are in that save or the next one (the pending flag is
//!   cleared before the snapshot is taken).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::model::Data;
use crate::Error;

/// The state file and whether a save is pending.
#[derive(Debug)]
pub(super) struct Persist {
    path: PathBuf,
    pending: AtomicBool,
}

impl Persist {
    /// Use `dir` (created when missing).
    pub(super) fn new(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|err| Error::State {
            path: dir.to_owned(),
            message: err.to_string(),
        })?;
        Ok(Self {
            path: dir.join("mailchimp.json"),
            pending: AtomicBool::new(false),
        })
    }

    fn error(&self, message: impl ToString) -> Error {
        Error::State {
            path: self.path.clone(),
            message: message.to_string(),
        }
    }

    /// The saved data, if a state file exists.
    pub(super) fn load(&self) -> Result<Option<Data>, Error> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(self.error(err)),
        };
        let mut data: Data = serde_json::from_str(&text).map_err(|err| self.error(err))?;
        for audience in &mut data.audiences {
            audience.reindex();
        }
        Ok(Some(data))
    }

    /// Write `data` now.
    pub(super) fn save(&self, data: &Data) -> Result<(), Error> {
        let text = serde_json::to_vec(data).map_err(|err| self.error(err))?;
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, text).map_err(|err| self.error(err))?;
        std::fs::rename(&tmp, &self.path).map_err(|err| self.error(err))
    }

    /// Mark a save as pending; true when the caller must schedule it (none was pending).
    pub(super) fn mark(&self) -> bool {
        !self.pending.swap(true, Ordering::SeqCst)
    }

    /// The scheduled save is starting: later changes need a new one.
    pub(super) fn unmark(&self) {
        self.pending.store(false, Ordering::SeqCst);
    }
}
