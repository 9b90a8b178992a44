//! The load/tick lifecycle shared by [`crate::CaManager`] and [`crate::JwtKeyManager`]: the
//! key directory, the loaded active and prepared keys, applying [`slots::plan`] and the 0600
//! key files. What a key *is* (a CA certificate, a JWT key) stays with each manager, which
//! passes it in as closures.

use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sigil_spiffe::TrustDomain;
use time::OffsetDateTime;

use crate::error::CaError;
use crate::files;
use crate::keys::PrivateKey;
use crate::manager::CaEvent;
use crate::rotation::{Action, CaStatus};
use crate::slots::{self, RotatingKey};

/// A persisted journal of [`RotatingKey`] entries.
pub(crate) trait KeyJournal {
    type Entry: RotatingKey;

    fn trust_domain(&self) -> &str;
    fn entries(&self) -> &[Self::Entry];
    fn entries_mut(&mut self) -> &mut Vec<Self::Entry>;
    /// Full structural validation (the journal's own message format).
    fn validate(&self) -> Result<(), CaError>;
    /// Called for each entry that leaves the journal.
    fn retire(&mut self, _id: &str) {}

    /// Records a freshly prepared entry; on error the journal is left as it was.
    fn add_prepared(&mut self, entry: Self::Entry) -> Result<(), CaError> {
        if entry.status() != CaStatus::Prepared {
            return Err(CaError::JournalMalformed(format!(
                "new {} {} is not prepared",
                <Self::Entry as RotatingKey>::NOUN,
                entry.id()
            )));
        }
        self.entries_mut().push(entry);
        self.validate().inspect_err(|_| {
            self.entries_mut().pop();
        })
    }
}

/// A journal and the loaded keys of its active and prepared entries.
#[derive(Debug)]
pub(crate) struct Rotor<J, K> {
    key_dir: PathBuf,
    pub(crate) journal: J,
    pub(crate) active: Option<Arc<K>>,
    pub(crate) prepared: Option<Arc<K>>,
    /// Steps applied by a tick that then failed; reported by the next successful tick. (The
    /// JWT key manager renames [`CaEvent`]s to its own event type.)
    pending: Vec<CaEvent>,
}

impl<J: KeyJournal, K> Rotor<J, K> {
    /// Creates `key_dir` (0700) when missing, validates the journal (`None`: `new()`, and the
    /// returned flag is true) and its trust domain, and loads the active and prepared keys.
    pub(crate) fn open(
        key_dir: &Path,
        trust_domain: &TrustDomain,
        journal: Option<J>,
        new: impl FnOnce() -> J,
        load: impl Fn(&J::Entry) -> Result<K, CaError>,
    ) -> Result<(Self, bool), CaError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(key_dir)
            .map_err(|source| CaError::FileWrite {
                path: key_dir.to_owned(),
                source,
            })?;
        let fresh = journal.is_none();
        let journal = journal.unwrap_or_else(new);
        journal.validate()?;
        if journal.trust_domain() != trust_domain.as_str() {
            return Err(CaError::JournalTrustDomainMismatch {
                journal: journal.trust_domain().to_owned(),
                configured: trust_domain.to_string(),
            });
        }
        let load_slot = |status| {
            slots::with_status(journal.entries(), status)
                .map(|e| load(e).map(Arc::new))
                .transpose()
        };
        let active = load_slot(CaStatus::Active)?;
        let prepared = load_slot(CaStatus::Prepared)?;
        let rotor = Rotor {
            key_dir: key_dir.to_owned(),
            journal,
            active,
            prepared,
            pending: Vec::new(),
        };
        Ok((rotor, fresh))
    }

    /// Applies every rotation step due at `now`, creating new entries with `prepare` (which
    /// writes the key file; the journal is not touched). Returns the events to report: those
    /// of this tick and of earlier ones that failed.
    ///
    /// On error, steps already applied stay applied and are reported by the next successful
    /// tick; the journal is always consistent.
    pub(crate) fn tick(
        &mut self,
        now: OffsetDateTime,
        mut prepare: impl FnMut(&J) -> Result<(J::Entry, K), CaError>,
    ) -> Result<Vec<CaEvent>, CaError> {
        // Each step strictly reduces the work left; the bound only guards against a bug.
        for _ in 0..8 {
            match slots::plan(self.journal.entries(), now) {
                Action::None => break,
                Action::Prune(ids) => {
                    for entry in slots::prune(self.journal.entries_mut(), &ids) {
                        if entry.status() == CaStatus::Prepared {
                            self.prepared = None;
                        }
                        let key_file_error = files::remove_key_file(&self.key_path(&entry))
                            .err()
                            .map(|e| e.to_string());
                        self.journal.retire(entry.id());
                        self.pending.push(CaEvent::Pruned {
                            id: entry.id().to_owned(),
                            key_file_error,
                        });
                    }
                }
                Action::Activate(id) => {
                    let previous = slots::activate(self.journal.entries_mut(), &id, now)
                        .map_err(CaError::JournalMalformed)?;
                    self.active = self.prepared.take();
                    self.pending.push(CaEvent::Activated { id, previous });
                }
                Action::Prepare => {
                    let (entry, key) = prepare(&self.journal)?;
                    let step = CaEvent::Prepared {
                        id: entry.id().to_owned(),
                        not_after: entry.not_after(),
                    };
                    self.journal.add_prepared(entry)?;
                    self.prepared = Some(Arc::new(key));
                    self.pending.push(step);
                }
            }
        }
        Ok(std::mem::take(&mut self.pending))
    }

    fn key_path(&self, entry: &J::Entry) -> PathBuf {
        self.key_dir.join(entry.key_file())
    }
}

/// The error for a journal entry whose key cannot be used: names the entry, its status and
/// what to do.
pub(crate) fn key_error<E: RotatingKey>(entry: &E, source: CaError) -> CaError {
    CaError::JournalKey {
        id: entry.id().to_owned(),
        status: entry.status().as_str(),
        hint: entry.lost_key_hint(),
        source: Box::new(source),
    }
}

/// Reads `entry`'s key file from `key_dir` and checks that it has the entry's key type and,
/// with `matches`, that it is the key the journal records (an error from `matches` is
/// returned as is).
pub(crate) fn read_entry_key<E: RotatingKey>(
    key_dir: &Path,
    entry: &E,
    matches: impl FnOnce(&PrivateKey) -> Result<bool, CaError>,
) -> Result<PrivateKey, CaError> {
    let path = key_dir.join(entry.key_file());
    let key = files::read_key_file(&path).map_err(|e| key_error(entry, e))?;
    if !matches(&key)? || key.key_type() != entry.key_type() {
        return Err(key_error(entry, CaError::KeyMismatch { path }));
    }
    Ok(key)
}

/// Writes a new key file `key_file` (0600) in `key_dir`.
pub(crate) fn write_key(key_dir: &Path, key_file: &Path, key: &PrivateKey) -> Result<(), CaError> {
    files::write_key_file(&key_dir.join(key_file), key)
}
