//! Finding the last clean snapshot, end to end with the real binary:
//! ordinary days of edited text files are not flagged; then encrypting 30%
//! of the files in place flags the snapshot, `backup` exits 5, `snapshots`
//! marks it, `diff` against its parent names exactly the encrypted files,
//! and `status --prometheus` exports it. A host whose files are compressed
//! anyway and change every day is not flagged on its ordinary days, and
//! moving compressed files brings no changed data.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::*;
use rewind::Encryption;

const HOST: &str = "office";
/// Exit status of a backup whose snapshot is suspicious (man/rewind-backup.1).
const EXIT_SUSPICIOUS: i32 = 5;

/// The recorded time of day `day`'s backup.
fn day_time(day: u32) -> String {
    format!("2026-03-{:02}T02:00:00Z", day + 1)
}

/// `rewind backup --json --host HOST --time DAY SOURCE`: the exit status
/// and the snapshot as JSON.
fn back_up(repo: &Repo, source: &Path, day: u32) -> (Option<i32>, serde_json::Value) {
    let time = day_time(day);
    let run = repo.run([
        "backup".as_ref(),
        "--json".as_ref(),
        "--host".as_ref(),
        HOST.as_ref(),
        "--time".as_ref(),
        time.as_ref(),
        arg(source),
    ]);
    let snapshot = run.json();
    (run.code, snapshot)
}

#[track_caller]
fn back_up_quietly(repo: &Repo, source: &Path, day: u32) -> serde_json::Value {
    let (code, snapshot) = back_up(repo, source, day);
    assert_eq!(code, Some(0), "day {day}: {snapshot:#}");
    assert_eq!(snapshot["suspicious"], false, "day {day}: {snapshot:#}");
    snapshot
}

/// `count` text files of 1 to 16 KiB in a few directories.
fn office_files(root: &Path, rng: &mut Rng, count: usize) -> Vec<PathBuf> {
    (0..count)
        .map(|i| {
            let path = root
                .join(format!("dept{}", i % 4))
                .join(format!("doc{i:03}.txt"));
            mkdirs(path.parent().unwrap());
            let len = rng.range(1024, 16 * 1024) as usize;
            write(&path, &rng.text(len));
            path
        })
        .collect()
}

/// An ordinary day: a line appended to every 20th file (from `day` on) and
/// one new text file.
fn ordinary_day(root: &Path, files: &[PathBuf], rng: &mut Rng, day: u32) {
    for path in files.iter().skip(day as usize).step_by(20) {
        let mut content = std::fs::read(path).unwrap();
        content.extend_from_slice(format!("edited on day {day}\n").as_bytes());
        write(path, &content);
    }
    write(&root.join(format!("notes-day{day}.txt")), &rng.text(4096));
}

/// Encrypts each file in place as ransomware does (XOR with a random
/// stream: same size, incompressible).
fn encrypt(files: &[&PathBuf], rng: &mut Rng) {
    for path in files {
        let plain = std::fs::read(path).unwrap();
        let key = rng.bytes(plain.len());
        let cipher: Vec<u8> = plain.iter().zip(&key).map(|(p, k)| p ^ k).collect();
        write(path, &cipher);
    }
}

/// The paths `diff --json` marks as rewritten with incompressible content.
fn incompressible_in_diff(repo: &Repo, a: &str, b: &str) -> BTreeSet<String> {
    let run = repo.run(["diff", "--json", a, b]);
    assert_eq!(run.code, Some(1), "the snapshots differ: {}", run.stderr);
    run.json()["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["incompressible"] == true)
        .map(|c| c["path"].as_str().unwrap().to_string())
        .collect()
}

/// The value of the Prometheus sample `name` for `HOST`.
fn host_sample(metrics: &str, name: &str) -> f64 {
    let host = format!("host=\"{HOST}\"}}");
    metrics
        .lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(&host))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or_else(|| panic!("no sample {name} of {HOST} in:\n{metrics}"))
        .parse()
        .unwrap()
}

#[test]
fn encrypting_a_third_of_the_files_flags_the_snapshot_and_ordinary_days_do_not() {
    let (_tmp, dir) = tempdir();
    let mut rng = Rng::new(seed("ransomware attack"));
    let source = dir.join("share");
    let files = office_files(&source, &mut rng, 200);
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);

    back_up_quietly(&repo, &source, 0);
    for day in 1..=4 {
        ordinary_day(&source, &files, &mut rng, day);
        let snapshot = back_up_quietly(&repo, &source, day);
        let changed = &snapshot["summary"]["changed_data"];
        assert_eq!(changed["files_incompressible"], 0, "day {day}: {changed}");
        assert!(
            changed["bytes"].as_u64().unwrap() > 0,
            "day {day}: {changed}"
        );
    }
    let clean = repo.snapshots().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Every file whose number ends in 0, 3 or 7: 30% of the files.
    let victims: Vec<&PathBuf> = files
        .iter()
        .enumerate()
        .filter(|(i, _)| [0, 3, 7].contains(&(i % 10)))
        .map(|(_, p)| p)
        .collect();
    encrypt(&victims, &mut rng);
    let (code, attacked) = back_up(&repo, &source, 5);
    assert_eq!(code, Some(EXIT_SUSPICIOUS), "{attacked:#}");
    assert_eq!(attacked["suspicious"], true);
    assert_eq!(attacked["suspicion"]["files_incompressible"], 60);
    assert_eq!(
        attacked["summary"]["changed_data"]["files_incompressible"],
        60
    );
    let attacked_id = attacked["id"].as_str().unwrap().to_string();
    assert_eq!(attacked["parent"].as_str(), Some(clean.as_str()));

    // `snapshots` marks the attack and nothing else.
    let listed = repo.snapshots();
    let marked: Vec<&str> = listed
        .iter()
        .filter(|s| s["suspicious"] == true)
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(marked, [attacked_id.as_str()]);
    let text = repo.run(["snapshots"]).assert_ok().text();
    let short = &attacked_id[..8];
    let marked_lines: Vec<&str> = text.lines().filter(|l| l.contains(" ! ")).collect();
    assert_eq!(marked_lines.len(), 1, "{text}");
    assert!(marked_lines[0].starts_with(short), "{text}");
    assert!(text.contains("1 suspicious"), "{text}");

    // `diff` of the attack against its parent names exactly the victims.
    let expected: BTreeSet<String> = victims
        .iter()
        .map(|p| p.to_str().unwrap().trim_start_matches('/').to_string())
        .collect();
    assert_eq!(
        incompressible_in_diff(&repo, &clean, &attacked_id),
        expected
    );
    let run = repo.run(["diff", &clean, &attacked_id]);
    let marked = run
        .text()
        .lines()
        .filter(|l| l.starts_with("M  ") && l.ends_with("(content, incompressible)"))
        .count();
    assert_eq!(marked, 60, "{}", run.text());
    assert!(
        run.stderr
            .contains("(60 rewritten with incompressible content)"),
        "{}",
        run.stderr
    );

    // `status --prometheus` exports it.
    let metrics = repo.run(["status", "--prometheus"]).assert_ok().text();
    let attack_time = chrono::DateTime::parse_from_rfc3339(&day_time(5))
        .unwrap()
        .timestamp() as f64;
    assert_eq!(host_sample(&metrics, "rewind_snapshot_suspicious"), 1.0);
    assert_eq!(
        host_sample(
            &metrics,
            "rewind_newest_suspicious_snapshot_timestamp_seconds"
        ),
        attack_time
    );

    // The next ordinary day is clean again, and the attack stays on record.
    ordinary_day(&source, &files, &mut rng, 6);
    back_up_quietly(&repo, &source, 6);
    let metrics = repo.run(["status", "--prometheus"]).assert_ok().text();
    assert_eq!(host_sample(&metrics, "rewind_snapshot_suspicious"), 0.0);
    assert_eq!(
        host_sample(
            &metrics,
            "rewind_newest_suspicious_snapshot_timestamp_seconds"
        ),
        attack_time
    );
}

#[test]
fn a_backup_that_warns_prints_the_numbers_and_exits_5() {
    let (_tmp, dir) = tempdir();
    let mut rng = Rng::new(seed("ransomware warning"));
    let source = dir.join("share");
    let files = office_files(&source, &mut rng, 100);
    let repo = Repo::init(&dir.join("repo"), Encryption::None);
    for day in 0..3 {
        ordinary_day(&source, &files, &mut rng, day);
        back_up_quietly(&repo, &source, day);
    }
    let victims: Vec<&PathBuf> = files.iter().step_by(2).collect();
    encrypt(&victims, &mut rng);
    let time = day_time(3);
    let run = repo.run([
        "backup".as_ref(),
        "--host".as_ref(),
        HOST.as_ref(),
        "--time".as_ref(),
        time.as_ref(),
        arg(&source),
    ]);
    let run = run.assert_code(EXIT_SUSPICIOUS);
    let id = run.text().trim().to_string();
    assert_eq!(id.len(), 64, "the id is printed: {}", run.text());
    assert!(
        run.stderr.contains("ransomware")
            && run
                .stderr
                .contains("50 of 103 files (48.5%) were rewritten with incompressible content"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("rewind diff "), "{}", run.stderr);
}

#[test]
fn a_host_whose_files_are_compressed_anyway_is_quiet_on_ordinary_days() {
    let (_tmp, dir) = tempdir();
    let mut rng = Rng::new(seed("ransomware compressed host"));
    let source = dir.join("archive");
    mkdirs(&source);
    let compressed = |rng: &mut Rng| zstd::bulk::compress(&rng.text(32 * 1024), 19).unwrap();
    for i in 0..60 {
        write(
            &source.join(format!("day-{i:02}.log.zst")),
            &compressed(&mut rng),
        );
    }
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    let mut shares = Vec::new();
    for day in 0..8 {
        // Each day rewrites a third of the archives.
        for i in (day % 3..60).step_by(3) {
            write(
                &source.join(format!("day-{i:02}.log.zst")),
                &compressed(&mut rng),
            );
        }
        let snapshot = back_up_quietly(&repo, &source, day);
        shares.push(snapshot["suspicion"]["share"].as_f64().unwrap());
    }
    // Not for want of incompressible files: a quiet host would be flagged.
    // (The first backup finds every file new, and new files alone are not
    // rewrites.)
    assert!(shares[1..].iter().all(|&s| s > 0.2), "{shares:?}");
}

#[test]
fn moving_compressed_files_is_not_a_rewrite() {
    let (_tmp, dir) = tempdir();
    let mut rng = Rng::new(seed("ransomware moved photos"));
    let source = dir.join("photos");
    let inbox = source.join("inbox");
    mkdirs(&inbox);
    for i in 0..100 {
        write(&inbox.join(format!("img{i:03}.jpg")), &rng.bytes(4096));
    }
    let repo = Repo::init(&dir.join("repo"), Encryption::Aes256Gcm);
    for day in 0..3 {
        write(&source.join(format!("list-{day}.txt")), &rng.text(2048));
        back_up_quietly(&repo, &source, day);
    }
    // Sorted into albums: every photo is at a new path, none is new data.
    std::fs::rename(&inbox, source.join("album-2026")).unwrap();
    let snapshot = back_up_quietly(&repo, &source, 3);
    let summary = &snapshot["summary"];
    assert_eq!(summary["files_new"], 100, "{summary}");
    assert_eq!(
        summary["changed_data"]["files_incompressible"], 0,
        "{summary}"
    );
    assert_eq!(summary["changed_data"]["bytes"], 0, "{summary}");
}
