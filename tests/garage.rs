//! Issue 13's end-to-end test on a real distributed object store: a Garage
//! cluster of three nodes on loopback ports, every object replicated on all
//! three (tests/common/garage.rs starts it; scripts/install-garage.sh
//! installs Garage outside the checkout).
//!
//! - The cluster itself serves S3: SigV4-signed PUT and GET (curl), and
//!   with one node stopped an object stays readable and a new one can be
//!   written; the node started again serves both.
//! - The real `rewind` binary with its repository in the cluster
//!   (`--repo s3:http://127.0.0.1:PORT/BUCKET/host1`, credentials in the
//!   AWS variables): init, a backup of a few MB, the mount against the
//!   source with `diff -r`, a byte-exact restore, and one node stopped
//!   once a second backup has taken its lock; that backup either succeeds
//!   or fails cleanly with no snapshot, and `check --read-data` passes
//!   either way, with the node down and after it is back.

mod common;
mod mount_util;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{build_bulk_tree, mkdirs, seed, under, GarageCluster, Rng};
use mount_util::{
    assert_same, diff_r, inside, require_root, run, stat_listing, tempdir, wait_for, Mount, Repo,
    Run,
};

/// The node the tests stop: never node 0, whose S3 port the clients use.
const NODE_TO_STOP: usize = 1;

#[test]
fn cluster_serves_s3_with_a_node_stopped() {
    let mut cluster = GarageCluster::start(3);
    let mut rng = Rng::new(seed("cluster_serves_s3_with_a_node_stopped"));
    // Larger than Garage's 1 MiB blocks: an object of several blocks.
    let before = rng.bytes(3 << 20);
    cluster.put_object(0, "probe/before", &before);
    assert!(
        cluster.get_object(0, "probe/before") == Some(before.clone()),
        "the object reads back as written"
    );
    assert_eq!(cluster.get_object(0, "probe/missing"), None);
    assert_eq!(cluster.list_keys(0, "probe/"), ["probe/before"]);

    cluster.stop_node(NODE_TO_STOP);
    assert!(
        cluster.get_object(0, "probe/before") == Some(before.clone()),
        "with one node of three down the object is still readable"
    );
    let during = rng.bytes(1 << 20);
    cluster.put_object(0, "probe/during", &during);

    cluster.start_node(NODE_TO_STOP);
    for (key, data) in [("probe/before", &before), ("probe/during", &during)] {
        assert!(
            cluster.get_object(NODE_TO_STOP, key).as_ref() == Some(data),
            "the restarted node serves {key}"
        );
    }
}

#[test]
fn rewind_repository_on_garage() {
    require_root();
    let mut cluster = GarageCluster::start(3);
    let (_tmp, dir) = tempdir();
    let mut rng = Rng::new(seed("rewind_repository_on_garage"));
    let repo = S3Repo::init(&cluster, "host1", &dir);

    let src = dir.join("src");
    build_bulk_tree(&src, &mut rng, 300, 3, 1 << 20);
    repo.backup(&cluster, &src).assert_ok();
    assert!(
        cluster
            .list_keys(0, "")
            .iter()
            .all(|k| k.starts_with("host1/")),
        "nothing is written outside the repository's prefix"
    );

    assert_mount_matches(&repo, &cluster, &dir.join("mnt"), &src);
    assert_restores(&repo, &cluster, &dir.join("restore1"), &src);
    copy_local_to_garage_and_back(&repo, &cluster, &dir, &src);

    // A second backup with more data, one node stopped as soon as the
    // backup has taken its lock: every pack it writes goes to two nodes.
    build_bulk_tree(&src.join("more"), &mut rng, 100, 6, 4 << 20);
    let snapshots_before = repo.snapshot_count(&cluster);
    let mut backup = repo.spawn_backup(&cluster, &src);
    wait_for(Duration::from_secs(60), || {
        !cluster.list_keys(0, "host1/locks/").is_empty()
            || backup.try_wait().ok().flatten().is_some()
    });
    cluster.stop_node(NODE_TO_STOP);
    let second = backup.wait_with_output().unwrap();
    let second = Run {
        what: "rewind backup, a node stopped while it ran".to_string(),
        code: second.status.code(),
        stdout: second.stdout,
        stderr: String::from_utf8_lossy(&second.stderr).into_owned(),
    };
    let second_succeeded = second.ok();
    eprintln!(
        "the backup during which node {NODE_TO_STOP} stopped {}",
        if second_succeeded {
            "succeeded".to_string()
        } else {
            format!("failed: {}", second.stderr.trim())
        }
    );
    if second_succeeded {
        assert_eq!(repo.snapshot_count(&cluster), snapshots_before + 1);
    } else {
        second.assert_one_line_error(&[]);
        assert_eq!(
            repo.snapshot_count(&cluster),
            snapshots_before,
            "a failed backup writes no snapshot"
        );
    }
    repo.run(&cluster, &["check", "--read-data"]).assert_ok();

    cluster.start_node(NODE_TO_STOP);
    repo.run(&cluster, &["check", "--read-data"]).assert_ok();
    if !second_succeeded {
        repo.backup(&cluster, &src).assert_ok();
        repo.run(&cluster, &["check", "--read-data"]).assert_ok();
    }
    assert_restores(&repo, &cluster, &dir.join("restore2"), &src);
}

/// `rewind copy` from Garage to a local repository, and from there to a
/// second repository in Garage, which restores the source byte for byte.
fn copy_local_to_garage_and_back(
    repo: &S3Repo,
    cluster: &GarageCluster,
    scratch: &Path,
    src: &Path,
) {
    let local = Repo {
        path: scratch.join("copy-local"),
    };
    run(local.cmd().arg("init")).assert_ok();
    let mut from_garage = local.cmd();
    from_garage
        .args(["copy", "--json", "--from-repo"])
        .arg(&repo.repo.path)
        .env("REWIND_FROM_PASSWORD", mount_util::PASSWORD);
    cluster.credentials_env(&mut from_garage);
    let report = run(&mut from_garage).assert_ok().json();
    assert_eq!(report["copied"].as_array().unwrap().len(), 1, "{report:#}");

    let back = S3Repo::init(cluster, "copied", scratch);
    let mut into_garage = back.command(cluster);
    into_garage
        .args(["copy", "--json", "--from-repo"])
        .arg(&local.path)
        .env("REWIND_FROM_PASSWORD", mount_util::PASSWORD);
    let report = run(&mut into_garage).assert_ok().json();
    assert_eq!(report["copied"].as_array().unwrap().len(), 1, "{report:#}");
    assert_restores(&back, cluster, &scratch.join("restore-copied"), src);
}

/// The mount of the repository shows the source as it was backed up.
fn assert_mount_matches(repo: &S3Repo, cluster: &GarageCluster, mountpoint: &Path, src: &Path) {
    let mount = Mount::start_with(repo.command(cluster), mountpoint, &[]);
    let problems = diff_r(src, &inside(&mount.path("latest"), src));
    assert!(problems.is_empty(), "diff -r source mount: {problems:#?}");
}

/// `rewind restore latest` gives back the source byte for byte, with its
/// metadata.
fn assert_restores(repo: &S3Repo, cluster: &GarageCluster, target: &Path, src: &Path) {
    mkdirs(target);
    repo.run(
        cluster,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    )
    .assert_ok();
    let restored = under(target, src);
    let problems = diff_r(src, &restored);
    assert!(problems.is_empty(), "diff -r source restore: {problems:#?}");
    assert_same(
        &stat_listing(src),
        &stat_listing(&restored),
        "stat of the source and of the restore",
    );
}

/// A repository in the cluster's bucket under a prefix, driven through the
/// real binary with the cluster's credentials.
struct S3Repo {
    repo: Repo,
    /// Where the binary runs: a binary that took the URL for a relative
    /// path would write there, not into the checkout.
    cwd: PathBuf,
}

impl S3Repo {
    /// `rewind init`, which must write the repository into the bucket.
    #[track_caller]
    fn init(cluster: &GarageCluster, prefix: &str, cwd: &Path) -> S3Repo {
        let repo = S3Repo {
            repo: Repo {
                path: cluster.repo_url(prefix).into(),
            },
            cwd: cwd.to_path_buf(),
        };
        repo.run(cluster, &["init"]).assert_ok();
        let config = format!("{prefix}/config");
        let stored = cluster.list_keys(0, &format!("{prefix}/"));
        assert!(
            stored.contains(&config),
            "`rewind init` on {} stored no {config} in the bucket; it has {stored:?}",
            repo.repo.path.display()
        );
        repo
    }

    /// `rewind --repo URL` with the password and the AWS variables.
    fn command(&self, cluster: &GarageCluster) -> Command {
        let mut cmd = self.repo.cmd();
        cmd.env_remove("REWIND_REPO")
            .arg("--repo")
            .arg(&self.repo.path)
            .current_dir(&self.cwd);
        cluster.credentials_env(&mut cmd);
        cmd
    }

    fn run(&self, cluster: &GarageCluster, args: &[&str]) -> Run {
        run(self.command(cluster).args(args))
    }

    fn backup(&self, cluster: &GarageCluster, src: &Path) -> Run {
        run(self.command(cluster).args(["backup", "--json"]).arg(src))
    }

    fn spawn_backup(&self, cluster: &GarageCluster, src: &Path) -> Child {
        self.command(cluster)
            .args(["backup", "--json"])
            .arg(src)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the rewind binary runs")
    }

    #[track_caller]
    fn snapshot_count(&self, cluster: &GarageCluster) -> usize {
        let listed = self.run(cluster, &["snapshots", "--json"]).assert_ok();
        listed.json().as_array().expect("a JSON list").len()
    }
}
