//! The files `vigil scan` writes (`-o`, `--report`, `--stats`, `--state`): checked and opened before
//! any input is read, so a bad path fails in a second rather than after hours of work; never one
//! of the inputs (nor inside an input directory, where the scan would read it back); and written
//! whole or not at all: a temporary file beside the target, renamed over it once complete, so a
//! scan that fails or is killed leaves the last good state file in place.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A file to be written at the end of the scan, opened now.
#[derive(Debug)]
pub struct PendingFile {
    path: PathBuf,
    temp: PathBuf,
    file: Option<File>,
}

impl PendingFile {
    /// Opens the temporary file beside `path` (a dot-file, which directory scans skip).
    pub fn create(path: &Path) -> Result<Self, String> {
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .ok_or_else(|| format!("{}: not a file name", path.display()))?;
        let temp = path.with_file_name(format!(".{name}.vigil-{}.tmp", std::process::id()));
        let file = File::create(&temp).map_err(|error| format!("{}: {error}", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            temp,
            file: Some(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open temporary file, to write into.
    pub fn writer(&mut self) -> Result<&mut File, String> {
        self.file
            .as_mut()
            .ok_or_else(|| format!("{}: already written", self.path.display()))
    }

    /// Writes `bytes` and puts the file in place.
    pub fn commit_with(mut self, bytes: &[u8]) -> Result<(), String> {
        self.writer()?
            .write_all(bytes)
            .map_err(|error| format!("{}: {error}", self.path.display()))?;
        self.commit()
    }

    /// Flushes what was written and renames the temporary file over the target.
    pub fn commit(mut self) -> Result<(), String> {
        let failed = |error: std::io::Error| format!("{}: {error}", self.path.display());
        if let Some(file) = self.file.take() {
            file.sync_all().map_err(failed)?;
        }
        std::fs::rename(&self.temp, &self.path).map_err(failed)
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        // Not committed: the target keeps what it held.
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// The path with `..` and symbolic links resolved as far as it exists (a file not yet made is its
/// directory's resolved path joined with its name).
fn resolved(path: &Path) -> PathBuf {
    if let Ok(real) = path.canonicalize() {
        return real;
    }
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            resolved(parent).join(name)
        }
        _ => path.to_owned(),
    }
}

/// Refuses an output that is one of the inputs or lies inside an input directory (and two outputs
/// that are one file).
pub fn refuse_overlap(inputs: &[PathBuf], outputs: &[(&str, &Path)]) -> Result<(), String> {
    let inputs: Vec<PathBuf> = inputs
        .iter()
        .filter(|input| input.as_os_str() != "-")
        .map(|input| resolved(input))
        .collect();
    let mut seen: Vec<(&str, PathBuf)> = Vec::new();
    for (flag, output) in outputs {
        let target = resolved(output);
        for input in &inputs {
            if target == *input {
                return Err(format!(
                    "{flag} {} is one of the inputs: refusing to overwrite it",
                    output.display()
                ));
            }
            // Inside an input directory the scan would read it back, unless a dot-file or a
            // dot-directory on the way (which directory scans skip) hides it.
            let read_back = target.strip_prefix(input).is_ok_and(|below| {
                !below
                    .components()
                    .any(|part| part.as_os_str().to_string_lossy().starts_with('.'))
            });
            if input.is_dir() && read_back {
                return Err(format!(
                    "{flag} {} is inside the input directory {}: the scan would read it back",
                    output.display(),
                    input.display()
                ));
            }
        }
        if let Some((other, _)) = seen.iter().find(|(_, path)| *path == target) {
            return Err(format!(
                "{flag} and {other} are the same file, {}",
                output.display()
            ));
        }
        seen.push((flag, target));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vigil-outputs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_default();
        dir
    }

    #[test]
    fn an_uncommitted_file_leaves_the_target_as_it_was() {
        let dir = scratch("uncommitted");
        let target = dir.join("state.json");
        std::fs::write(&target, "old").unwrap_or_default();
        {
            let mut pending =
                PendingFile::create(&target).unwrap_or_else(|error| panic!("{error}"));
            let _ = pending.writer().map(|file| file.write_all(b"half"));
        }
        assert_eq!(std::fs::read_to_string(&target).unwrap_or_default(), "old");
        assert_eq!(std::fs::read_dir(&dir).map(Iterator::count).unwrap_or(0), 1);
        let pending = PendingFile::create(&target).unwrap_or_else(|error| panic!("{error}"));
        assert!(pending.commit_with(b"new").is_ok());
        assert_eq!(std::fs::read_to_string(&target).unwrap_or_default(), "new");
        assert_eq!(std::fs::read_dir(&dir).map(Iterator::count).unwrap_or(0), 1);
    }

    #[test]
    fn outputs_that_are_inputs_are_refused() {
        let dir = scratch("overlap");
        let input = dir.join("audit.json");
        std::fs::write(&input, "{}").unwrap_or_default();
        let through_dots = dir.join("sub/../audit.json");
        std::fs::create_dir_all(dir.join("sub")).unwrap_or_default();
        for output in [input.as_path(), through_dots.as_path()] {
            let refused = refuse_overlap(std::slice::from_ref(&input), &[("-o", output)]);
            assert!(refused.is_err_and(|error| error.contains("one of the inputs")));
        }
        let inside = dir.join("findings.jsonl");
        let refused = refuse_overlap(std::slice::from_ref(&dir), &[("-o", &inside)]);
        assert!(refused.is_err_and(|error| error.contains("inside the input directory")));
        // A dot-file in it is skipped by the scan: allowed.
        let hidden = dir.join(".stats.json");
        assert!(refuse_overlap(std::slice::from_ref(&dir), &[("--stats", &hidden)]).is_ok());
        let elsewhere = std::env::temp_dir().join("vigil-outputs-elsewhere.jsonl");
        assert!(refuse_overlap(std::slice::from_ref(&input), &[("-o", &elsewhere)]).is_ok());
        let twice = refuse_overlap(&[], &[("-o", &elsewhere), ("--stats", &elsewhere)]);
        assert!(twice.is_err_and(|error| error.contains("same file")));
    }
}
