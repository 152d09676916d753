//! The login gate's memory of one Dexcom identity (`share::LoginIdentity`): one file per
//! identity, `gate-<key>.json`, shared by every configuration entry, spelling and command that
//! logs in as it. Reading and writing fail closed: a file that exists but cannot be read or
//! parsed is [`StoreFault::Unreadable`] (never "as if empty", which would forget the failures it
//! counts), and a save that cannot be made durable is [`StoreFault::Unwritable`]; either way
//! the client keeps the password.
//!
//! The times in it are Unix milliseconds of the host's wall clock, the one clock a later run
//! can read them back in; the gate clamps them on the way in (`LoginGate::restore`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::FORMAT_VERSION;
use super::atomic::{Owner, write_atomically};
use crate::share::LoginIdentity;
use crate::share::gate::{GateState, GateStore, StoreFault};

/// What a gate file holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct GateFileContents {
    version: u32,
    /// The identity, for people reading the directory.
    identity: String,
    /// The gate's memory.
    gate: GateState,
}

/// One identity's gate file.
#[derive(Debug)]
pub struct GateFile {
    path: PathBuf,
    identity: String,
    owner: Owner,
    /// Read beside the directory's holder: never written.
    read_only: bool,
    /// What an earlier version kept in the account's own file, used until this file exists.
    legacy: Result<Option<GateState>, String>,
}

impl GateFile {
    pub(super) fn new(
        dir: &std::path::Path,
        identity: &LoginIdentity,
        owner: Owner,
        read_only: bool,
        legacy: Result<Option<GateState>, String>,
    ) -> Self {
        GateFile {
            path: dir.join(format!("gate-{}.json", identity.file_key())),
            identity: identity.to_string(),
            owner,
            read_only,
            legacy,
        }
    }

    /// The file's path.
    #[cfg(test)]
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    fn unreadable(&self, detail: impl std::fmt::Display) -> StoreFault {
        StoreFault::Unreadable {
            path: self.path.display().to_string(),
            detail: detail.to_string(),
        }
    }
}

impl GateStore for GateFile {
    fn load(&self) -> Result<Option<GateState>, StoreFault> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return self
                    .legacy
                    .clone()
                    .map_err(|detail| self.unreadable(detail));
            }
            Err(error) => return Err(self.unreadable(error)),
        };
        let contents: GateFileContents =
            serde_json::from_slice(&bytes).map_err(|error| self.unreadable(error))?;
        if contents.version != FORMAT_VERSION {
            return Err(self.unreadable(format_args!(
                "format version {} (this exporter reads {FORMAT_VERSION})",
                contents.version
            )));
        }
        Ok(Some(contents.gate))
    }

    fn save(&self, gate: &GateState) -> Result<(), StoreFault> {
        let unwritable = |detail: String| StoreFault::Unwritable {
            path: self.path.display().to_string(),
            detail,
        };
        if self.read_only {
            return Err(unwritable(
                "another process holds the state directory; this is a read-only look".into(),
            ));
        }
        let contents = GateFileContents {
            version: FORMAT_VERSION,
            identity: self.identity.clone(),
            gate: gate.clone(),
        };
        let text = serde_json::to_vec_pretty(&contents).map_err(|e| unwritable(e.to_string()))?;
        write_atomically(&self.path, &text, self.owner).map_err(|e| unwritable(e.to_string()))
    }
}
