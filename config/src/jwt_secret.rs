//! The JWT secret generated once in the data directory when `auth.jwt_secret` is unset.
//!
//! `mindshop admin token` and a running `serve` are separate processes that must sign with the
//! same key, and two processes may start at once. So the file is written complete under a
//! temporary name and hard-linked to `jwt_secret`: the link fails if the name exists, the
//! first link wins, and everyone then reads the winner's file, never a half-written one.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::{ConfigError, Secret};

/// File name inside `data.dir`.
const FILE_NAME: &str = "jwt_secret";
/// Random bytes per generated secret; hex-encoded to twice as many characters.
const RANDOM_BYTES: usize = 32;
/// Shortest secret accepted from an existing file, as for `auth.jwt_secret`.
const MIN_BYTES: usize = 32;

/// The secret in `<dir>/jwt_secret`, created (mode 0600, with `dir`) if missing.
pub(crate) fn load_or_create(dir: &Path) -> Result<Secret, ConfigError> {
    let path = dir.join(FILE_NAME);
    let failed = |source: io::Error| ConfigError::JwtSecretFile {
        path: path.clone(),
        source,
    };
    match read(&path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        other => return other.map_err(failed),
    }
    fs::create_dir_all(dir).map_err(|source| ConfigError::JwtSecretFile {
        path: dir.to_path_buf(),
        source,
    })?;
    create(dir, &path).map_err(failed)?;
    read(&path).map_err(failed)
}

fn read(path: &Path) -> io::Result<Secret> {
    let text = fs::read_to_string(path)?;
    let secret = text.trim_end();
    if secret.len() < MIN_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("holds {} bytes, fewer than {MIN_BYTES}", secret.len()),
        ));
    }
    Ok(Secret::new(secret.to_owned()))
}

/// Writes a fresh secret to a temporary file and links it to `path` unless `path` exists.
fn create(dir: &Path, path: &Path) -> io::Result<()> {
    let temp = temp_path(dir);
    let written = write_new(&temp).and_then(|()| match fs::hard_link(&temp, path) {
        // Another process linked first; its secret is the one everybody uses.
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        linked => linked,
    });
    // The temporary name is only a staging step; a leftover is harmless but untidy.
    let _ = fs::remove_file(&temp);
    written
}

fn temp_path(dir: &Path) -> PathBuf {
    let nonce: u64 = rand::random();
    dir.join(format!(
        ".{FILE_NAME}.{}.{nonce:016x}.tmp",
        std::process::id()
    ))
}

fn write_new(path: &Path) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    let bytes: [u8; RANDOM_BYTES] = rand::random();
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    file.write_all(hex.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_private_file_once_and_reuses_it() {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("nested").join("data");
        let first = load_or_create(&dir).expect("created");
        assert_eq!(first.expose().len(), 2 * RANDOM_BYTES);
        assert!(first.expose().bytes().all(|b| b.is_ascii_hexdigit()));
        let second = load_or_create(&dir).expect("reused");
        assert_eq!(first, second);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.join(FILE_NAME))
                .expect("file exists")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = fs::read_dir(&dir).expect("dir exists").collect();
        assert_eq!(leftovers.len(), 1, "only jwt_secret remains: {leftovers:?}");
    }

    #[test]
    fn processes_starting_together_agree() {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().to_path_buf();
        let racers: Vec<_> = (0..8)
            .map(|_| {
                let dir = dir.clone();
                std::thread::spawn(move || load_or_create(&dir).map(|s| s.expose().to_owned()))
            })
            .collect();
        let secrets: Vec<String> = racers
            .into_iter()
            .map(|racer| racer.join().expect("no panic").expect("resolved"))
            .collect();
        assert!(
            secrets.iter().all(|s| s == &secrets[0]),
            "{} differ",
            secrets.len()
        );
    }

    #[test]
    fn a_short_existing_file_is_an_error_naming_the_key_and_path() {
        let temp = tempfile::tempdir().expect("tempdir");
        fs::write(temp.path().join(FILE_NAME), "short\n").expect("write");
        let err = load_or_create(temp.path()).expect_err("too short");
        let message = err.to_string();
        assert!(
            message.starts_with("auth.jwt_secret: unset, and cannot use "),
            "{message}"
        );
        assert!(
            message.contains("jwt_secret: holds 5 bytes, fewer than 32"),
            "{message}"
        );
    }
}
