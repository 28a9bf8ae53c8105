//! The Debian package, for real: scripts/build-deb.sh makes it from the
//! binary these tests built (no release build), `dpkg -i` installs it on
//! this machine, and what an admin relies on is checked where the package
//! put it: `man rewind-mount`, `systemd-analyze verify` on every unit, bash
//! completion, an fstab line mounted through the installed helper; then
//! `dpkg -r` and `--purge` leave nothing behind.
//!
//! Installing system-wide, the test holds a lock that any other such test
//! takes too, refuses to touch a machine where a rewind package or any file
//! it would install is already present, and purges what it installed even
//! when it fails.

mod common;

use std::collections::BTreeSet;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// Taken by every test that installs something system-wide, across
/// processes (test binaries, nextest, another checkout's tests).
struct SystemWideLock {
    _held: std::fs::File,
}

impl SystemWideLock {
    fn take() -> SystemWideLock {
        let file = std::fs::File::create("/run/lock/rewind-tests-system-wide.lock").unwrap();
        // SAFETY: flock on a descriptor we own; it blocks until the lock is ours.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
        SystemWideLock { _held: file }
    }
}

/// Purges the package when dropped, so that a failed check leaves the
/// machine as it found it.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", "rewind"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output();
    }
}

/// dpkg's word on the package: "install ok installed", "deinstall ok
/// config-files", or None when it does not know it.
fn package_status() -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["--show", "--showformat=${Status}", "rewind"])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        .filter(|status| !status.contains("not-installed"))
}

fn dpkg(args: &[&str]) -> Run {
    run(Command::new("dpkg")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// The .deb of this build's binary, in `out`.
fn build_deb(out: &Path) -> PathBuf {
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
    let [deb] = &debs[..] else {
        panic!("one .deb in {}: {debs:?}", out.display());
    };
    deb.clone()
}

/// The paths the package holds (files and links, not directories), as
/// `dpkg-deb --contents` lists them, absolute; links with their target.
fn contents(deb: &Path) -> Vec<(PathBuf, Option<String>)> {
    let listing = run(Command::new("dpkg-deb").arg("--contents").arg(deb))
        .assert_ok()
        .text();
    listing
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
        .collect()
}

/// What the package must hold, from the checkout: the binary, the fstab
/// helper, every man page, the completions, every unit of contrib/.
fn expected_paths() -> BTreeSet<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut expected: BTreeSet<PathBuf> = [
        "/usr/bin/rewind",
        "/sbin/mount.fuse.rewind",
        "/usr/share/bash-completion/completions/rewind",
        "/usr/share/zsh/vendor-completions/_rewind",
        "/usr/share/fish/vendor_completions.d/rewind.fish",
    ]
    .map(PathBuf::from)
    .into();
    for entry in std::fs::read_dir(root.join("man")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let section = name.rsplit('.').next().unwrap();
        expected.insert(format!("/usr/share/man/man{section}/{name}.gz").into());
    }
    for entry in std::fs::read_dir(root.join("contrib")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".service") || name.ends_with(".timer") {
            expected.insert(format!("/usr/lib/systemd/system/{name}").into());
        }
    }
    expected
}

/// `rewind res<TAB>` in bash, with bash-completion loading the installed
/// script as it does on demand: the words offered.
fn bash_completes(line_words: &[&str]) -> Vec<String> {
    let script = r#"
        source /usr/share/bash-completion/bash_completion
        # bash-completion 2.12 renamed its loader.
        if declare -F _comp_load >/dev/null; then _comp_load rewind; else __load_completion rewind; fi
        function=$(complete -p rewind | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
        COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
        COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
        "$function" rewind "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
        printf '%s\n' "${COMPREPLY[@]}"
    "#;
    let out = run(Command::new("bash")
        .args(["-c", script, "bash"])
        .args(line_words))
    .assert_ok();
    out.text().lines().map(str::to_string).collect()
}

/// Every unit the package installed passes `systemd-analyze verify`
/// without a word: its syntax, its ExecStart binaries and its
/// Documentation= man pages. A template is verified as an instance.
fn verify_units(units: &[PathBuf]) {
    assert!(!units.is_empty(), "the package installs systemd units");
    for unit in units {
        // verify runs man for each Documentation= page; man saves no
        // formatted copy in /var/cache/man at a width other than 80.
        let verified = run(Command::new("systemd-analyze")
            .arg("verify")
            .arg(unit)
            .env("MANWIDTH", "100"))
        .assert_ok();
        assert!(
            verified.stderr.trim().is_empty(),
            "systemd-analyze verify {}:\n{}",
            unit.display(),
            verified.stderr
        );
    }
}

#[test]
fn the_package_installs_works_and_leaves_nothing_when_purged() {
    // SAFETY: geteuid cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "dpkg -i needs root");
    let _lock = SystemWideLock::take();
    let (_tmp, dir) = tempdir();
    let deb = build_deb(&dir.join("deb"));
    let formatted_pages_before = formatted_pages();

    let contents = contents(&deb);
    let held: BTreeSet<PathBuf> = contents.iter().map(|(path, _)| path.clone()).collect();
    let missing: Vec<_> = expected_paths().difference(&held).cloned().collect();
    assert!(missing.is_empty(), "missing from the package: {missing:?}");
    assert!(
        contents.contains(&(
            "/sbin/mount.fuse.rewind".into(),
            Some("/usr/bin/rewind".into())
        )),
        "the fstab helper is a link to the binary: {contents:?}"
    );

    assert_eq!(
        package_status(),
        None,
        "a rewind package is installed here; this test installs its own and \
         purges it: remove it first (dpkg --purge rewind)"
    );
    let present: Vec<_> = held
        .iter()
        .filter(|p| p.symlink_metadata().is_ok())
        .collect();
    assert!(
        present.is_empty(),
        "files the package would overwrite and then remove exist already: {present:?}"
    );

    let installed = Installed;
    dpkg(&["--install", deb.to_str().unwrap()]).assert_ok();
    let run_installed = run(Command::new("/usr/bin/rewind").arg("--version")).assert_ok();
    assert!(run_installed.text().starts_with("rewind "));

    // man: found by name, gzipped as Debian wants, and rendered.
    let page = run(Command::new("man").args(["-w", "rewind-mount"]))
        .assert_ok()
        .text();
    assert_eq!(page.trim(), "/usr/share/man/man1/rewind-mount.1.gz");
    let format = run(Command::new("man").args(["-w", "5", "rewind-format"]))
        .assert_ok()
        .text();
    assert_eq!(format.trim(), "/usr/share/man/man5/rewind-format.5.gz");
    // The file itself (-l), past man's cache of formatted pages, which
    // would keep a page of an earlier install with the same time.
    let shown = run(Command::new("man")
        .args(["--pager=cat", "--local-file", page.trim()])
        .env("MANWIDTH", "80"))
    .assert_ok()
    .text();
    assert!(shown.contains("mount.fuse.rewind"), "{shown}");

    let units: Vec<PathBuf> = held
        .iter()
        .filter(|p| p.starts_with("/usr/lib/systemd/system"))
        .cloned()
        .collect();
    verify_units(&units);

    assert_eq!(
        bash_completes(&["rewind", "res"]),
        ["restore", "restore-test"]
    );

    // /etc/fstab through the installed helper, not a private one.
    FstabSetup::new(&dir.join("fstab")).mount_read_and_unmount();

    let listed = run(Command::new("dpkg").args(["--listfiles", "rewind"]))
        .assert_ok()
        .text();
    // Files and links; /sbin is a directory too, through a link on a
    // merged /usr.
    let ours: Vec<PathBuf> = listed
        .lines()
        .map(PathBuf::from)
        .filter(|p| p.metadata().is_ok_and(|m| !m.is_dir()))
        .collect();
    assert!(ours.len() >= held.len(), "dpkg lists what it installed");

    dpkg(&["--remove", "rewind"]).assert_ok();
    let left: Vec<_> = ours
        .iter()
        .filter(|p| p.symlink_metadata().is_ok())
        .collect();
    assert!(left.is_empty(), "dpkg -r left {left:?}");
    dpkg(&["--purge", "rewind"]).assert_ok();
    drop(installed);
    assert_eq!(package_status(), None, "purged");
    // The package's own directories, and what rewind wrote as root (the
    // mount daemon's log above), are gone too.
    for path in [
        "/usr/share/doc/rewind",
        "/usr/lib/rewind",
        "/var/log/rewind-mount.log",
        "/var/cache/rewind",
    ] {
        assert!(
            Path::new(path).symlink_metadata().is_err(),
            "{path} is left after a purge"
        );
    }
    assert_eq!(
        formatted_pages(),
        formatted_pages_before,
        "man's cache of formatted pages"
    );
}

/// The formatted copies of rewind's man pages that man keeps in
/// /var/cache/man, which no package owns.
fn formatted_pages() -> BTreeSet<PathBuf> {
    let Ok(sections) = std::fs::read_dir("/var/cache/man") else {
        return BTreeSet::new();
    };
    sections
        .filter_map(|section| std::fs::read_dir(section.ok()?.path()).ok())
        .flatten()
        .filter_map(|page| Some(page.ok()?.path()))
        .filter(|page| {
            page.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("rewind"))
        })
        .collect()
}
