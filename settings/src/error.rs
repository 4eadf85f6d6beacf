//! What can be wrong with the settings, each case naming the file it is in.

use std::path::PathBuf;

/// A settings file, a file it names, or a flag that cannot be used; start-up stops with it.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A file that cannot be read (the settings, a rule file, a list).
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The settings file is not TOML of the expected shape; `line` is 1-based.
    #[error("{file}:{line}: {message}")]
    Syntax {
        file: String,
        line: usize,
        message: String,
    },
    /// A setting that reads but cannot work (an unknown cluster, a cap of zero, a suppression rule
    /// with no criterion).
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    /// A list or database file that reads but is not what its role needs.
    #[error("{}: {message}", path.display())]
    List { path: PathBuf, message: String },
    /// A rule file or rule switch the detection engine refuses.
    #[error(transparent)]
    Rules(#[from] vigil_detect::BuildError),
}

impl SettingsError {
    pub(crate) fn read(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Read {
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn invalid(file: &str, message: impl std::fmt::Display) -> Self {
        Self::Invalid {
            file: file.to_owned(),
            message: message.to_string(),
        }
    }
}

/// How settings read the files they name: the disk, or (for the bundled example) memory.
pub type ReadFile<'a> = &'a dyn Fn(&std::path::Path) -> std::io::Result<String>;
