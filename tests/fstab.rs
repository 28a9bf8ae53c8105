//! /etc/fstab: a line of type `fuse.rewind` mounts with `mount MOUNTPOINT`
//! through the helper mount(8) runs, /sbin/mount.fuse.rewind, and systemd's
//! fstab generator makes of it a unit that runs mount(8) the same way.
//!
//! The helper is this build's binary under that name, as the package
//! installs it (tests/package.rs checks the package's own link), but only
//! for one thread: it moves to a mount namespace of its own, where an
//! overlay on /sbin's directory adds the link, so mount(8), the helper and
//! the mount daemon it starts see it and nothing else on the machine does.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

#[track_caller]
fn require_root() {
    // SAFETY: geteuid cannot fail.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the fstab tests mount for real: run them as root"
    );
}

/// Runs `body` on a thread whose mount namespace has
/// /sbin/mount.fuse.rewind linked to this build's binary (see the module
/// documentation); the layers of the overlay live on a tmpfs under `dir`.
fn with_private_helper<T: Send>(dir: &Path, body: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        let thread = scope.spawn(|| {
            // SAFETY: unshare has no memory effects; it moves this thread alone.
            let rc = unsafe { libc::unshare(libc::CLONE_NEWNS) };
            assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
            run(Command::new("mount").args(["--make-rprivate", "/"])).assert_ok();
            let layers = dir.join("helper-layers");
            mkdirs(&layers);
            run(Command::new("mount")
                .args(["-t", "tmpfs", "tmpfs"])
                .arg(&layers))
            .assert_ok();
            let (upper, work) = (layers.join("upper"), layers.join("work"));
            mkdirs(&upper);
            mkdirs(&work);
            symlink(bin(), &upper.join("mount.fuse.rewind"));
            // /sbin is a link to usr/sbin on a merged /usr: the overlay
            // goes on the directory itself.
            let sbin = std::fs::canonicalize("/sbin").unwrap();
            let layout = format!(
                "lowerdir={},upperdir={},workdir={}",
                sbin.display(),
                upper.display(),
                work.display()
            );
            run(Command::new("mount")
                .args(["-t", "overlay", "overlay", "-o", &layout])
                .arg(&sbin))
            .assert_ok();
            body()
        });
        thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

#[test]
fn the_manuals_fstab_line_mounts_through_mount_8() {
    require_root();
    let (_tmp, dir) = tempdir();
    let setup = FstabSetup::new(&dir);
    with_private_helper(&dir, || setup.mount_read_and_unmount());
}

#[test]
fn a_wrong_fstab_line_fails_naming_what_is_wrong() {
    require_root();
    let (_tmp, dir) = tempdir();
    let setup = FstabSetup::new(&dir);
    with_private_helper(&dir, || {
        let _cleanup = Unmount(setup.mountpoint.clone());
        let password = format!("password_file={}", setup.password_file.display());
        let cases = [
            (
                format!("ro,{password},cache_szie=1G"),
                "unknown option cache_szie=1G",
            ),
            (
                "ro,password_file=/nonexistent/pw".to_string(),
                "/nonexistent/pw",
            ),
        ];
        for (options, message) in cases {
            setup.write_fstab(&options);
            let failed = setup.mount().assert_failed();
            assert!(
                failed
                    .stderr
                    .lines()
                    .any(|l| l.starts_with("mount.fuse.rewind: ") && l.contains(message)),
                "{options}: stderr should name {message:?}:\n{}",
                failed.stderr
            );
            assert!(!is_mounted(&setup.mountpoint), "{options}: nothing mounted");
        }
        // A failed mount exits as mount(8)'s helpers do: 32, and 1 for a
        // line it cannot make sense of.
        setup.write_fstab("ro,password_file=/nonexistent/pw");
        setup.mount().assert_code(32);
        setup.write_fstab("bogus");
        setup.mount().assert_code(1);
    });
}

#[test]
fn systemds_fstab_generator_makes_a_mount_unit_of_the_line() {
    // What systemd does at boot with /etc/fstab, on a copy: the generator
    // writes the unit, which runs mount(8) with the line's source, type
    // and options, as `mount MOUNTPOINT` does above.
    let (_tmp, dir) = tempdir();
    let generator = ["/usr/lib", "/lib"]
        .map(|lib| Path::new(lib).join("systemd/system-generators/systemd-fstab-generator"))
        .into_iter()
        .find(|path| path.exists())
        .expect("systemd's fstab generator (scripts/install-deps.sh installs systemd)");
    let line = "/srv/backup/repo /mnt/backups fuse.rewind \
                ro,allow_other,password_file=/root/.rewind-pw,nofail 0 0\n";
    write(&dir.join("fstab"), line.as_bytes());
    let units = ["normal", "early", "late"].map(|d| dir.join(d));
    for d in &units {
        mkdirs(d);
    }
    run(Command::new(&generator)
        .args(&units)
        .env("SYSTEMD_FSTAB", dir.join("fstab")))
    .assert_ok();
    let unit = std::fs::read_to_string(units[0].join("mnt-backups.mount")).unwrap();
    for setting in [
        "What=/srv/backup/repo",
        "Where=/mnt/backups",
        "Type=fuse.rewind",
        "Options=ro,allow_other,password_file=/root/.rewind-pw,nofail",
    ] {
        assert!(unit.lines().any(|l| l == setting), "{setting} in:\n{unit}");
    }
    // nofail: the boot wants the mount but does not wait for it or fail
    // without it.
    assert!(units[0]
        .join("local-fs.target.wants/mnt-backups.mount")
        .exists());
    run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(units[0].join("mnt-backups.mount")))
    .assert_ok();
}
