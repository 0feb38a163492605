//! Backup and restore of a stopped server's database: every table, key and
//! value (so revisions, the event log and compaction floors come back
//! exactly), plus the generated auth secret so issued tokens stay valid
//! (the caller reads and writes the secret's file: this module only carries
//! its bytes).
//! A backup holds one tree per table (the per-table form of
//! [`super::migrate`]), whatever the layout on disk, so backups of earlier
//! versions restore too.
//!
//! The etcd backend writes and reads the same format (see
//! `super::etcd::export` and `import`): its keys are mapped to the sled
//! layout, so a backup of either backend restores into either, and restoring
//! a sled backup into etcd moves a deployment from one to the other.
//!
//! File format (all integers big-endian):
//! `CONVGROUPS-BACKUP-1\n`, then records `[kind u8][len u32][bytes]...`:
//! kind 1 starts a tree (bytes: its name), kind 2 is one entry (a key
//! record followed by its value record), kind 3 is the auth secret, kind 4
//! ends the file (bytes: the FNV-1a 64 of everything before it). A file
//! that is truncated or altered fails to restore and restores nothing.

use std::fs;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use crate::config::Setting;
use crate::domain::{fnv1a, FNV1A_START};
use crate::error::Error;

const MAGIC: &[u8] = b"CONVGROUPS-BACKUP-1\n";
const TREE: u8 = 1;
const ENTRY: u8 = 2;
const SECRET: u8 = 3;
const END: u8 = 4;

/// One key and its value.
pub(super) type Entry = (Vec<u8>, Vec<u8>);

/// What a backup holds: every tree (name, entries in key order) in the sled
/// layout, and the auth secret when there was one.
#[derive(Debug, Default)]
pub(super) struct Contents {
    pub trees: Vec<(Vec<u8>, Vec<Entry>)>,
    pub secret: Option<Vec<u8>>,
}

/// What a backup or restore moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackupSummary {
    pub trees: usize,
    pub entries: usize,
}

fn setting(setting: Setting, message: String) -> Error {
    Error::InvalidSetting { setting, message }
}

struct Hashing<W> {
    inner: W,
    hash: u64,
}

impl<W: Write> Hashing<W> {
    fn record(&mut self, kind: u8, bytes: &[u8]) -> std::io::Result<()> {
        let len = u32::try_from(bytes.len()).map_err(|_| std::io::Error::other("record over 4 GiB"))?;
        for chunk in [&[kind][..], &len.to_be_bytes(), bytes] {
            self.hash = fnv1a(self.hash, chunk);
            self.inner.write_all(chunk)?;
        }
        Ok(())
    }
}

fn open_db(dir: &Path) -> Result<sled::Db, Error> {
    super::embedded::open_db(dir).map_err(|e| {
        setting(
            Setting::DataDir,
            format!("cannot open the database in {} (is a server still running on it?): {e}", dir.display()),
        )
    })
}

/// Writes a backup of the database in `data_dir` (which no server may be
/// using), with the server's generated auth `secret` if it has one, to
/// `out` (created with mode 0600: it holds the secret).
pub fn backup(data_dir: &Path, secret: Option<Vec<u8>>, out: &Path) -> Result<BackupSummary, Error> {
    if !data_dir.join("db").exists() {
        return Err(setting(Setting::DataDir, format!("{} holds no convgroups database", data_dir.display())));
    }
    let db = open_db(data_dir)?;
    let trees = super::migrate::export(&db)?;
    let contents = Contents { secret, trees };
    write(out, &contents)
}

/// Writes `contents` to `out` (mode 0600), synced before it returns.
pub(super) fn write(out: &Path, contents: &Contents) -> Result<BackupSummary, Error> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file =
        options.open(out).map_err(|e| setting(Setting::BackupOut, format!("cannot create {}: {e}", out.display())))?;
    let io = |e: std::io::Error| setting(Setting::BackupOut, format!("writing {}: {e}", out.display()));
    let mut w = Hashing { inner: BufWriter::new(file), hash: FNV1A_START };
    w.hash = fnv1a(w.hash, MAGIC);
    w.inner.write_all(MAGIC).map_err(io)?;
    let mut summary = BackupSummary::default();
    for (name, entries) in &contents.trees {
        w.record(TREE, name).map_err(io)?;
        summary.trees += 1;
        for (key, value) in entries {
            w.record(ENTRY, key).map_err(io)?;
            w.record(ENTRY, value).map_err(io)?;
            summary.entries += 1;
        }
    }
    if let Some(secret) = &contents.secret {
        w.record(SECRET, secret).map_err(io)?;
    }
    let hash = w.hash.to_be_bytes();
    w.record(END, &hash).map_err(io)?;
    let file = w.inner.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(summary)
}

/// Reads one record. `left` is what remains of the file, so a damaged
/// length can never make restore allocate more than the file holds.
fn read_record(r: &mut impl Read, hash: &mut u64, left: &mut u64) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    r.read_exact(&mut head)?;
    let len = u64::from(u32::from_be_bytes(head[1..].try_into().expect("4 bytes")));
    if len + 5 > *left {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "record longer than the file"));
    }
    *left -= len + 5;
    let mut bytes = vec![0u8; len as usize];
    r.read_exact(&mut bytes)?;
    if head[0] != END {
        *hash = fnv1a(fnv1a(*hash, &head), &bytes);
    }
    Ok((head[0], bytes))
}

/// Reads and checks a whole backup file; nothing is returned from a file
/// that is truncated or altered.
pub(super) fn read(input: &Path) -> Result<Contents, Error> {
    let bad = |message: String| setting(Setting::RestoreIn, format!("{}: {message}", input.display()));
    let file = fs::File::open(input).map_err(|e| bad(format!("cannot open: {e}")))?;
    let mut left = file.metadata().map_err(|e| bad(format!("cannot read: {e}")))?.len();
    let mut r = BufReader::new(file);
    let mut magic = vec![0u8; MAGIC.len()];
    r.read_exact(&mut magic).map_err(|_| bad("not a convgroups backup".into()))?;
    if magic != MAGIC {
        return Err(bad("not a convgroups backup".into()));
    }
    left = left.saturating_sub(MAGIC.len() as u64);
    // Parse everything first: a damaged file must not leave half a database.
    let mut hash = fnv1a(FNV1A_START, MAGIC);
    let mut trees: Vec<(Vec<u8>, Vec<Entry>)> = Vec::new();
    let mut secret = None;
    loop {
        let (kind, bytes) =
            read_record(&mut r, &mut hash, &mut left).map_err(|_| bad("truncated or damaged".into()))?;
        match kind {
            TREE => trees.push((bytes, Vec::new())),
            ENTRY => {
                let (_, value) =
                    read_record(&mut r, &mut hash, &mut left).map_err(|_| bad("truncated or damaged".into()))?;
                let tree = trees.last_mut().ok_or_else(|| bad("entry before any tree".into()))?;
                tree.1.push((bytes, value));
            }
            SECRET => secret = Some(bytes),
            END => {
                if bytes != hash.to_be_bytes() {
                    return Err(bad("checksum mismatch: the file is damaged".into()));
                }
                break;
            }
            other => return Err(bad(format!("unknown record kind {other}"))),
        }
    }
    Ok(Contents { trees, secret })
}

/// What a restore put back, and the auth secret the backup holds (which
/// the caller writes where the server will look for it).
#[derive(Debug)]
pub struct Restored {
    pub summary: BackupSummary,
    pub secret: Option<Vec<u8>>,
}

/// Restores a backup into `data_dir`, which must not hold a database yet.
/// The whole file is checked before anything is written.
pub fn restore(input: &Path, data_dir: &Path) -> Result<Restored, Error> {
    if data_dir.join("db").exists() {
        return Err(setting(
            Setting::DataDir,
            format!("{} already holds a database; restore into an empty directory", data_dir.display()),
        ));
    }
    let Contents { trees, secret } = read(input)?;
    fs::create_dir_all(data_dir)
        .map_err(|e| setting(Setting::DataDir, format!("cannot create {}: {e}", data_dir.display())))?;
    let db = open_db(data_dir)?;
    let kv = db.open_tree(super::keys::SLED_TREE)?;
    let mut import = super::migrate::Import::new(&kv);
    let mut summary = BackupSummary::default();
    for (name, mut entries) in trees {
        summary.trees += 1;
        summary.entries += entries.len();
        if name == super::migrate::SLED_DEFAULT_TREE && entries.is_empty() {
            // sled's own tree, in backups of the per-table layout.
            continue;
        }
        let table = super::migrate::table_of(&name).map_err(|_| {
            setting(
                Setting::RestoreIn,
                format!("{}: unknown tree {:?}", input.display(), String::from_utf8_lossy(&name)),
            )
        })?;
        if table == super::state::Table::Events {
            // A user's links are made in revision order.
            entries.sort();
        }
        for (key, value) in entries {
            import.entry(table, &key, &value)?;
        }
    }
    import.finish()?;
    kv.insert(
        super::keys::sled_key(super::state::Table::Meta, super::keys::META_FORMAT),
        &super::keys::FORMAT.to_be_bytes(),
    )?;
    db.flush()?;
    Ok(Restored { summary, secret })
}
