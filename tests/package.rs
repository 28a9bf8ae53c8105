//! The Debian package, for real: scripts/build-deb.sh makes it from the
//! binary these tests built (no release build), `dpkg -i` installs it on
//! this machine, and what an admin relies on is checked where the package
//! put it: `man rewind-mount`, `systemd-analyze verify` on every unit, bash
//! completion, an fstab line mounted through the installed helper; then
//! `dpkg -r` and `--purge` leave nothing behind.
//!
//! tests/common/debian.rs builds and installs the package: it holds a lock
//! that any other such test takes too, refuses a machine where a rewind
//! package or any file it would install is already present, and purges
//! what it installed even when the test fails.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

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
    let (_tmp, dir) = tempdir();
    let deb = DebPackage::build(&dir.join("deb"));
    let held = deb.paths();
    let missing: Vec<_> = expected_paths().difference(&held).cloned().collect();
    assert!(missing.is_empty(), "missing from the package: {missing:?}");
    assert!(
        deb.contents.contains(&(
            "/sbin/mount.fuse.rewind".into(),
            Some("/usr/bin/rewind".into())
        )),
        "the fstab helper is a link to the binary: {:?}",
        deb.contents
    );

    let formatted_pages_before = formatted_pages();
    let installed = deb.install();
    let version = run(Command::new("/usr/bin/rewind").arg("--version")).assert_ok();
    assert!(version.text().starts_with("rewind "));

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

    let files = installed.files();
    assert!(files.len() >= held.len(), "dpkg lists what it installed");
    dpkg(&["--remove", "rewind"]).assert_ok();
    let left: Vec<_> = files
        .iter()
        .filter(|p| p.symlink_metadata().is_ok())
        .collect();
    assert!(left.is_empty(), "dpkg -r left {left:?}");
    dpkg(&["--purge", "rewind"]).assert_ok();
    assert_eq!(package_status(), None, "purged");
    drop(installed);
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
