//! Database dumps end to end with a real PostgreSQL: a scratch cluster on a
//! loopback port, run as the unprivileged `postgres` user; three days of
//! dumps (plain SQL and custom format) piped into `rewind backup
//! --stdin-name`; the repository grows by far less than a dump a day; and
//! every day comes back from the mount with `psql` and `pg_restore`, with
//! the table checksums of that day.

mod common;
mod mount_util;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mount_util::{chmod, run, sh, tempdir, Mount, Repo};

/// The PostgreSQL programs: the newest version Debian installed.
fn pg_bin(program: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (scripts/install-deps.sh installs it)")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    let bin = versions
        .pop()
        .expect("a PostgreSQL server under /usr/lib/postgresql/*/bin");
    bin.join(program)
}

/// A scratch cluster, listening on 127.0.0.1 only, run as `postgres`;
/// stopped (immediately) when dropped, even after a failed assertion.
struct Cluster {
    data: PathBuf,
    port: u16,
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        let root = dir.join("pg");
        std::fs::create_dir(&root).unwrap();
        let status = Command::new("chown")
            .arg("postgres:postgres")
            .arg(&root)
            .status()
            .unwrap();
        assert!(status.success(), "chown postgres {}", root.display());
        let data = root.join("data");
        run(as_postgres(&pg_bin("initdb")).arg("-D").arg(&data).args([
            "--auth=trust",
            "--no-sync",
            "--encoding=UTF8",
            "--locale=C",
            "-U",
            "postgres",
        ]))
        .assert_ok();
        // A free port: the kernel picks one, we let it go and PostgreSQL takes it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Cluster { data, port };
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c autovacuum=off",
            root.display()
        );
        let started = run(as_postgres(&pg_bin("pg_ctl"))
            .arg("-D")
            .arg(&cluster.data)
            .args(["-o", &options, "-w", "-t", "60", "-l"])
            .arg(root.join("server.log"))
            .arg("start"));
        assert!(
            started.ok(),
            "pg_ctl start failed: {}\n{}",
            started.stderr,
            std::fs::read_to_string(root.join("server.log")).unwrap_or_default()
        );
        cluster
    }

    /// A client program (run as root, over TCP) aimed at this server.
    fn client(&self, program: &str) -> Command {
        let mut cmd = Command::new(pg_bin(program));
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
        ]);
        cmd
    }

    /// Runs SQL in a database; the output, unaligned and without headers.
    #[track_caller]
    fn sql(&self, db: &str, sql: &str) -> String {
        let out = run(self.client("psql").args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            db,
            "-c",
            sql,
        ]));
        let out = out.assert_ok();
        out.text().trim().to_string()
    }

    /// The row count and a checksum of every row of a table, in key order.
    fn checksum(&self, db: &str, table: &str) -> String {
        self.sql(
            db,
            &format!(
                "SELECT count(*) || ':' || md5(string_agg(t::text, ',' ORDER BY id)) FROM {table} t"
            ),
        )
    }

    fn checksums(&self, db: &str) -> BTreeMap<&'static str, String> {
        ["accounts", "events"]
            .into_iter()
            .map(|table| (table, self.checksum(db, table)))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_postgres(&pg_bin("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A command with the repository and password in its environment, as
/// `rewind` commands of `repo` get them.
fn with_repo(repo: &Repo, mut cmd: Command) -> Command {
    let rewind = repo.cmd();
    for (key, value) in rewind.get_envs() {
        if let Some(value) = value {
            cmd.env(key, value);
        }
    }
    cmd
}

fn as_postgres(program: &Path) -> Command {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", "postgres", "--"]).arg(program);
    cmd
}

/// `pg_dump ARGS | rewind backup --stdin-name NAME --time TIME --tag TAG`;
/// the snapshot as JSON.
#[track_caller]
fn dump_and_backup(
    cluster: &Cluster,
    repo: &Repo,
    dump_args: &[&str],
    name: &str,
    time: &str,
    tag: &str,
) -> serde_json::Value {
    let mut dump = cluster
        .client("pg_dump")
        .args(dump_args)
        .arg("app")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let backup = repo
        .cmd()
        .args(["backup", "--json", "--host", "db1", "--stdin-name", name])
        .args(["--time", time, "--tag", tag])
        .stdin(dump.stdout.take().unwrap())
        .output()
        .unwrap();
    let dumped = dump.wait_with_output().unwrap();
    assert!(
        dumped.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&dumped.stderr)
    );
    assert!(
        backup.status.success(),
        "rewind backup failed: {}",
        String::from_utf8_lossy(&backup.stderr)
    );
    serde_json::from_slice(&backup.stdout).unwrap()
}

/// Bytes of every file under a directory.
fn size_of(dir: &Path) -> u64 {
    mount_util::walk(dir)
        .iter()
        .filter_map(|p| std::fs::symlink_metadata(p).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Day 1 creates the tables; days 2 and 3 change some rows, as a day of an
/// application would: a range of accounts updated, events added and some
/// old ones deleted.
fn change_data(cluster: &Cluster, day: u32) {
    let sql = match day {
        1 => "CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance bigint NOT NULL, note text);
              INSERT INTO accounts SELECT i, 'owner-' || md5(i::text), i * 7 % 100000,
                     repeat(md5((i * 13)::text), 2) FROM generate_series(1, 200000) i;
              CREATE TABLE events (id bigserial PRIMARY KEY, account int NOT NULL, at timestamptz NOT NULL, payload text);
              INSERT INTO events (account, at, payload)
                     SELECT i % 200000 + 1, timestamptz '2024-05-01' + i * interval '1 second', md5(i::text)
                     FROM generate_series(1, 100000) i;"
            .to_string(),
        _ => {
            let from = day * 10_000;
            format!(
                "UPDATE accounts SET balance = balance + {day}, note = 'changed on day {day}' WHERE id BETWEEN {from} AND {};
                 INSERT INTO events (account, at, payload)
                        SELECT i % 200000 + 1, timestamptz '2024-06-0{day}' + i * interval '1 second', 'day {day} ' || md5(i::text)
                        FROM generate_series(1, 2000) i;
                 DELETE FROM events WHERE id % 97 = {day} AND id < 3000;",
                from + 300
            )
        }
    };
    cluster.sql("app", &sql);
}

#[test]
fn pg_dumps_back_up_daily_and_restore_from_the_mount() {
    mount_util::require_root();
    let (_tmp, dir) = tempdir();
    chmod(&dir, 0o755);
    let cluster = Cluster::start(&dir);
    cluster.sql("postgres", "CREATE DATABASE app");
    let repo = Repo::init(&dir.join("repo"));
    let restrict = run(Command::new(pg_bin("pg_dump")).arg("--help"))
        .text()
        .contains("--restrict-key");
    let mut plain = vec!["--no-owner"];
    if restrict {
        // pg_dump 15.14 and later write a random key into every plain dump.
        plain.push("--restrict-key=rewindtest");
    }

    let mut expected = BTreeMap::new();
    let mut growth = Vec::new();
    for day in 1..=3u32 {
        change_data(&cluster, day);
        expected.insert(day, cluster.checksums("app"));
        dump_and_backup(
            &cluster,
            &repo,
            &["-Fc"],
            "db/app.dump",
            &format!("2024-06-0{day}T01:30:00Z"),
            "custom",
        );
        let before = size_of(&repo.path);
        let snapshot = dump_and_backup(
            &cluster,
            &repo,
            &plain,
            "db/app.sql",
            &format!("2024-06-0{day}T02:00:00Z"),
            "sql",
        );
        let added = size_of(&repo.path) - before;
        let dump = snapshot["summary"]["bytes_total"].as_u64().unwrap();
        eprintln!(
            "day {day}: plain dump of {:.1} MiB, the repository grew by {:.2} MiB ({:.1}% of the dump)",
            dump as f64 / 1048576.0,
            added as f64 / 1048576.0,
            100.0 * added as f64 / dump as f64
        );
        growth.push((day, dump, added));
    }
    let (_, first_dump, _) = growth[0];
    assert!(
        first_dump > 20 << 20,
        "a dump of {first_dump} bytes is too small to tell"
    );
    for &(day, dump, added) in &growth[1..] {
        assert!(
            added * 5 < dump,
            "day {day}: a dump of {dump} bytes grew the repository by {added} bytes, more than a fifth"
        );
    }

    let mountpoint = dir.join("mnt");
    let mount = Mount::start(&repo, &mountpoint, &[]);
    for day in 1..=3u32 {
        let sql = mount.path(&format!("@2024-06-0{day}/db/app.sql"));
        let db = format!("plain_{day}");
        cluster.sql("postgres", &format!("CREATE DATABASE {db}"));
        run(cluster
            .client("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &db, "-f"])
            .arg(&sql))
        .assert_ok();
        assert_eq!(
            cluster.checksums(&db),
            expected[&day],
            "day {day}: the tables psql read from {} are that day's",
            sql.display()
        );
    }

    // The custom format: pg_restore seeks in the file, through the mount.
    for day in [2u32, 3] {
        let dump = mount.path(&format!("tags/custom/@2024-06-0{day}/db/app.dump"));
        let toc = run(cluster.client("pg_restore").arg("-l").arg(&dump))
            .assert_ok()
            .text();
        for entry in ["TABLE DATA public accounts", "TABLE DATA public events"] {
            assert!(toc.contains(entry), "pg_restore -l lists {entry}:\n{toc}");
        }
        let db = format!("custom_{day}");
        cluster.sql("postgres", &format!("CREATE DATABASE {db}"));
        run(cluster
            .client("pg_restore")
            .args(["--no-owner", "--exit-on-error", "-d", &db])
            .arg(&dump))
        .assert_ok();
        assert_eq!(
            cluster.checksums(&db),
            expected[&day],
            "day {day}: pg_restore of the whole dump"
        );

        let one = format!("one_table_{day}");
        cluster.sql("postgres", &format!("CREATE DATABASE {one}"));
        run(cluster
            .client("pg_restore")
            .args([
                "--no-owner",
                "--exit-on-error",
                "-t",
                "accounts",
                "-d",
                &one,
            ])
            .arg(&dump))
        .assert_ok();
        assert_eq!(
            cluster.checksum(&one, "accounts"),
            expected[&day]["accounts"],
            "day {day}: pg_restore -t accounts"
        );
        assert_eq!(
            cluster.sql(&one, "SELECT to_regclass('public.events') IS NULL"),
            "t",
            "only the one table was restored"
        );
    }
    drop(mount);

    // contrib/pg-nightly-backup.sh: every dump stored, a failing one not.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/pg-nightly-backup.sh");
    let path = format!(
        "{}:{}",
        pg_bin("psql").parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let nightly = run(with_repo(&repo, Command::new(script))
        .args(["app", "no_such_db"])
        .env("PATH", path)
        .env("REWIND", mount_util::bin())
        .env("FORMAT", "both")
        .env("PG_USER", "")
        .env("HOST", "db1")
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", cluster.port.to_string())
        .env("PGUSER", "postgres"));
    assert_eq!(
        nightly.code,
        Some(1),
        "one database failed: {}",
        nightly.stderr
    );
    assert!(
        nightly
            .stderr
            .contains("no snapshot of db/postgres/no_such_db.sql"),
        "{}",
        nightly.stderr
    );
    let snapshots = run(repo
        .cmd()
        .args(["snapshots", "--json", "--tag", "postgres"]))
    .assert_ok()
    .json();
    let mut stored: Vec<String> = snapshots
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["paths"][0].as_str().unwrap().to_string())
        .collect();
    stored.sort();
    assert_eq!(
        stored,
        [
            "/db/postgres/app.dump",
            "/db/postgres/app.sql",
            "/db/postgres/globals.sql"
        ]
    );
    let nightly_db = "from_nightly";
    cluster.sql("postgres", &format!("CREATE DATABASE {nightly_db}"));
    run(with_repo(&repo, sh(r#""$REWIND" cat --tag postgres-app latest:/db/postgres/app.sql | "$PSQL" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d from_nightly"#))
        .env("REWIND", mount_util::bin())
        .env("PSQL", pg_bin("psql"))
        .env("PORT", cluster.port.to_string()))
    .assert_ok();
    assert_eq!(
        cluster.checksums(nightly_db),
        expected[&3],
        "the nightly dump restores"
    );

    // The restore drill on the newest plain dump passes.
    let out = run(repo.cmd().args([
        "restore-test",
        "--tag",
        "sql",
        "--json",
        "latest:/db/app.sql",
    ]));
    let report = out.assert_ok().json();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["files_checked"], 1);
}
