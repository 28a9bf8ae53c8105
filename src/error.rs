//! One error type for the library: a kind a caller can match on, a message
//! that names the file, snapshot or object involved, and a hint that tells
//! the admin what to do about it.

use std::fmt;

/// What went wrong, coarsely, so that callers (and exit codes) can react.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The repository does not exist or lacks a file it must have.
    NotFound,
    /// No key file accepts the password.
    WrongPassword,
    /// The repository was written by a format version this build cannot read.
    UnsupportedVersion,
    /// Stored bytes fail their hash, tag or structure check.
    Corrupt,
    /// The operating system refused an operation (permissions, disk full, ...).
    Io,
    /// The user asked for something that cannot be done (bad selector, bad path, ...).
    Usage,
    /// An entry of a snapshot would escape the restore target or is malformed.
    Unsafe,
    /// Another process holds a repository lock that conflicts with the one
    /// asked for (see `docs/design.md`, section 7, "Locks").
    Locked,
    /// The store keeps the file under retention (S3 Object Lock) and
    /// refuses to delete it before its date.
    Retained,
    /// The operation was stopped by a signal (SIGINT, SIGTERM) before it finished.
    Interrupted,
    /// A bug in rewind: a worker thread panicked or a part stopped
    /// unexpectedly. Nothing half-done is left as a snapshot.
    Internal,
}

#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    hint: Option<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    /// The same operation may succeed if tried again (a store that is
    /// overloaded, restarting or briefly unreachable); see
    /// `src/backend/retry.rs`.
    transient: bool,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hint: None,
            source: None,
            transient: false,
        }
    }

    pub fn corrupt(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Corrupt, message)
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Usage, message)
    }

    pub fn interrupted(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Interrupted, message)
    }

    /// A failure that is rewind's fault, not the input's or the system's.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, message)
            .with_hint("this is a bug in rewind; please report it with the log")
    }

    /// An I/O failure, classified by its OS error so that "not found" and
    /// "disk full" get the hint the admin needs.
    pub fn io(context: impl Into<String>, err: std::io::Error) -> Self {
        let kind = match err.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            _ => ErrorKind::Io,
        };
        let hint = match err.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => Some(
                "free space on that disk and run the command again; nothing already stored was harmed",
            ),
            Some(libc::EACCES) | Some(libc::EPERM) => {
                Some("check the permissions, or run as a user that may access it")
            }
            Some(libc::EROFS) => Some("the filesystem is mounted read-only"),
            _ => None,
        };
        let mut e = Error::new(kind, context).with_source(err);
        if let Some(h) = hint {
            e = e.with_hint(h);
        }
        e
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Prefix the message with where it happened, keeping kind, hint and source.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// Marks a failure that trying again may cure.
    pub fn transient(mut self) -> Self {
        self.transient = true;
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether trying the same operation again may succeed.
    pub fn is_transient(&self) -> bool {
        self.transient
    }

    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// The OS error number behind this error, if it came from the system.
    pub fn os_error(&self) -> Option<i32> {
        self.source
            .as_ref()
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .and_then(|e| e.raw_os_error())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

/// Attach a context to the error of a `Result` without spelling out a closure twice.
pub trait ResultExt<T> {
    fn context(self, context: impl fmt::Display) -> Result<T>;
}

impl<T> ResultExt<T> for Result<T> {
    fn context(self, context: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.context(context))
    }
}
