//! The fstab line of the manual (rewind-mount(1), FSTAB), mounted through
//! mount(8) as `mount /mnt/backups` mounts it: for the type `fuse.rewind`
//! mount(8) runs /sbin/mount.fuse.rewind. tests/fstab.rs puts this build's
//! binary there in a mount namespace of its own; tests/package.rs uses the
//! link the package installs.

use std::path::{Path, PathBuf};
use std::process::Command;

use rewind::Encryption;

use super::binary::{Repo, PASSWORD};
use super::command::{run, wait_for};
use super::files::{chmod, mkdirs, write};
use super::mounts::{is_mounted, mounts_at, Unmount};

/// What the fstab test lines are about.
pub const FSTAB_FILE_TEXT: &[u8] = b"backed up, mounted by mount(8)\n";

/// A repository with one snapshot, its password file, an empty mountpoint,
/// and an fstab of one line naming them.
pub struct FstabSetup {
    pub repo: Repo,
    /// The backed-up directory (its absolute path is kept in the snapshot).
    pub source: PathBuf,
    pub password_file: PathBuf,
    pub mountpoint: PathBuf,
    pub fstab: PathBuf,
}

impl FstabSetup {
    /// Everything under `dir`; the fstab line has the manual's options.
    pub fn new(dir: &Path) -> FstabSetup {
        let source = dir.join("src");
        write(&source.join("file.txt"), FSTAB_FILE_TEXT);
        let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
        repo.backup([&source]);
        let password_file = dir.join("password");
        write(&password_file, PASSWORD.as_bytes());
        chmod(&password_file, 0o600);
        let mountpoint = dir.join("mnt/backups");
        mkdirs(&mountpoint);
        let setup = FstabSetup {
            repo,
            source,
            password_file: password_file.clone(),
            mountpoint,
            fstab: dir.join("fstab"),
        };
        setup.write_fstab(&format!(
            "ro,allow_other,password_file={},nofail",
            password_file.display()
        ));
        setup
    }

    /// Replaces the fstab with one line of these options.
    pub fn write_fstab(&self, options: &str) {
        let line = format!(
            "# rewind's repository, read-only\n{} {} fuse.rewind {options} 0 0\n",
            self.repo.path.display(),
            self.mountpoint.display()
        );
        write(&self.fstab, line.as_bytes());
    }

    /// `mount -T FSTAB MOUNTPOINT`: mount(8) finds the line by its
    /// mountpoint, as `mount /mnt/backups` does with /etc/fstab.
    pub fn mount(&self) -> super::command::Run {
        run(Command::new("mount")
            .arg("-T")
            .arg(&self.fstab)
            .arg(&self.mountpoint))
    }

    /// Mounts through mount(8), reads the backed-up file, checks that the
    /// mount tables show what fstab says (so `mount -a` knows it is
    /// mounted) and that `umount` ends it.
    #[track_caller]
    pub fn mount_read_and_unmount(&self) {
        let _cleanup = Unmount(self.mountpoint.clone());
        let mounted = self.mount().assert_ok();
        assert!(is_mounted(&self.mountpoint), "{}", mounted.stderr);
        let file = self
            .mountpoint
            .join("latest")
            .join(self.source.strip_prefix("/").unwrap())
            .join("file.txt");
        assert_eq!(std::fs::read(&file).unwrap(), FSTAB_FILE_TEXT);

        let shown = run(Command::new("findmnt")
            .args(["--noheadings", "--output", "SOURCE,FSTYPE,OPTIONS"])
            .arg("--mountpoint")
            .arg(&self.mountpoint))
        .assert_ok()
        .text();
        let fields: Vec<&str> = shown.split_whitespace().collect();
        assert_eq!(
            fields[..2],
            [self.repo.path.to_str().unwrap(), "fuse.rewind"],
            "findmnt: {shown}"
        );
        for option in [
            "ro",
            "nosuid",
            "nodev",
            "allow_other",
            "default_permissions",
        ] {
            assert!(
                fields[2].split(',').any(|o| o == option),
                "mounted with {option}: {shown}"
            );
        }
        // mount -a finds the line mounted and leaves it alone.
        run(Command::new("mount").arg("-a").arg("-T").arg(&self.fstab)).assert_ok();
        assert_eq!(mounts_at(&self.mountpoint), 1, "mount -a mounted it again");

        run(Command::new("umount").arg(&self.mountpoint)).assert_ok();
        assert!(
            wait_for(std::time::Duration::from_secs(5), || !is_mounted(
                &self.mountpoint
            ))
            .is_some(),
            "umount unmounts"
        );
        self.check_audit_record();
    }

    /// The audit trail records the mount as the `rewind mount` it is, its
    /// password file hidden as always, not mount(8)'s list of options.
    #[track_caller]
    fn check_audit_record(&self) {
        let log = self.repo.run(["log", "--json"]).assert_ok().json();
        let mount = log
            .as_array()
            .unwrap()
            .iter()
            .find(|record| record["command"] == "mount")
            .unwrap_or_else(|| panic!("a mount record in {log:#}"));
        let arguments: Vec<&str> = mount["arguments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(
            arguments,
            [
                "mount",
                self.mountpoint.to_str().unwrap(),
                "--repo",
                self.repo.path.to_str().unwrap(),
                "--allow-other",
                "--password-file=<hidden>",
            ]
        );
    }
}
