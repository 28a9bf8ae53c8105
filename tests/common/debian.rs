//! The Debian package of this build, installed on this machine for a test:
//! scripts/build-deb.sh makes it from the binary the tests built (no
//! release build), and an [`InstalledPackage`] purges it when dropped, so a
//! failed test leaves the machine as it found it. Installing system-wide,
//! it holds a lock that every such test takes, across processes, and
//! refuses a machine where a rewind package, or any file the package would
//! install, is already present.

use std::collections::BTreeSet;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::binary::bin;
use super::command::{run, Run};

/// A .deb of this build.
pub struct DebPackage {
    pub path: PathBuf,
    /// The files and links it holds (not directories), absolute, each link
    /// with its target, as `dpkg-deb --contents` lists them.
    pub contents: Vec<(PathBuf, Option<String>)>,
}

impl DebPackage {
    /// Builds the package of this build's binary in `out`.
    pub fn build(out: &Path) -> DebPackage {
        // bin() is TARGET/PROFILE_DIR/rewind; Cargo's dev profile writes to debug/.
        let profile_dir = Path::new(bin()).parent().unwrap();
        let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
            "debug" => "dev",
            other => other,
        };
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/build-deb.sh");
        // --no-dbgsym: no second package of debug symbols; --fast: light
        // compression. Both only save time here.
        run(Command::new(script)
            .args(["--profile", profile, "--no-build", "--no-dbgsym", "--fast"])
            .arg("--output")
            .arg(out)
            .env("CARGO_TARGET_DIR", profile_dir.parent().unwrap()))
        .assert_ok();
        let debs: Vec<PathBuf> = std::fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "deb"))
            .collect();
        let [path] = &debs[..] else {
            panic!("one .deb in {}: {debs:?}", out.display());
        };
        let listing = run(Command::new("dpkg-deb").arg("--contents").arg(path))
            .assert_ok()
            .text();
        let contents = listing
            .lines()
            .filter(|line| !line.starts_with('d'))
            .map(|line| {
                // "-rw-r--r-- 0/0  68849 2026-11-29 00:00 ./usr/bin/rewind[ -> TARGET]"
                let entry = &line[line.find(" ./").unwrap() + 2..];
                match entry.split_once(" -> ") {
                    Some((path, target)) => (PathBuf::from(path), Some(target.to_string())),
                    None => (PathBuf::from(entry), None),
                }
            })
            .collect();
        DebPackage {
            path: path.clone(),
            contents,
        }
    }

    /// The paths of its files and links.
    pub fn paths(&self) -> BTreeSet<PathBuf> {
        self.contents.iter().map(|(path, _)| path.clone()).collect()
    }

    /// `dpkg -i`, once the machine is known to hold nothing the package
    /// would replace.
    #[track_caller]
    pub fn install(&self) -> InstalledPackage {
        self.install_with(SystemWideLock::take(), |path| {
            dpkg(&["--install", path.to_str().unwrap()]).assert_ok();
        })
    }

    /// Installs the package with `install`, given its path (a test that
    /// runs an admin's own `dpkg -i` line), under `lock`, which a test
    /// takes early when it records the machine's state before the install.
    /// The package is purged when the result is dropped, also when
    /// `install` panics.
    #[track_caller]
    pub fn install_with(
        &self,
        lock: SystemWideLock,
        install: impl FnOnce(&Path),
    ) -> InstalledPackage {
        assert_eq!(
            package_status(),
            None,
            "a rewind package is installed here; this test installs its own and \
             purges it: remove it first (dpkg --purge rewind)"
        );
        let present: Vec<PathBuf> = self
            .paths()
            .into_iter()
            .filter(|p| p.symlink_metadata().is_ok())
            .collect();
        assert!(
            present.is_empty(),
            "files the package would overwrite and then remove exist already: {present:?}"
        );
        let installed = InstalledPackage { _lock: lock };
        install(&self.path);
        assert_eq!(
            package_status().as_deref(),
            Some("install ok installed"),
            "the package is installed"
        );
        installed
    }
}

/// The package installed by [`DebPackage::install`]; purged when dropped.
pub struct InstalledPackage {
    _lock: SystemWideLock,
}

impl InstalledPackage {
    /// The files and links dpkg installed (not directories; /sbin is one
    /// too, through a link on a merged /usr).
    pub fn files(&self) -> Vec<PathBuf> {
        let listed = run(Command::new("dpkg").args(["--listfiles", "rewind"]))
            .assert_ok()
            .text();
        listed
            .lines()
            .map(PathBuf::from)
            .filter(|p| p.metadata().is_ok_and(|m| !m.is_dir()))
            .collect()
    }
}

impl Drop for InstalledPackage {
    fn drop(&mut self) {
        // Before the lock goes, with the fields.
        if package_status().is_some() {
            let _ = dpkg(&["--purge", "rewind"]);
        }
    }
}

/// Taken by every test that installs something system-wide: test binaries
/// run one after another, but nextest or another checkout's tests do not.
pub struct SystemWideLock {
    _held: std::fs::File,
}

impl SystemWideLock {
    pub fn take() -> SystemWideLock {
        std::fs::create_dir_all("/run/lock").unwrap();
        let file = std::fs::File::create("/run/lock/rewind-tests-system-wide.lock").unwrap();
        // SAFETY: flock on a descriptor we own; it blocks until the lock is ours.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
        SystemWideLock { _held: file }
    }
}

/// dpkg's word on the package: "install ok installed", "deinstall ok
/// config-files", or None when it does not know it.
pub fn package_status() -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["--show", "--showformat=${Status}", "rewind"])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        .filter(|status| !status.contains("not-installed"))
}

/// dpkg with no questions asked.
pub fn dpkg(args: &[&str]) -> Run {
    run(Command::new("dpkg")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}
