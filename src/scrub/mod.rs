//! Scrubbing: read every file of the repository, find damage before a
//! restore needs the data, and repair it from parity where there is parity.
//!
//! A pass takes packs in name order and remembers its position (see
//! `state`), so a stopped scrub resumes where it stopped. Metadata files
//! (config, keys, index files, snapshot manifests) are checked at the start
//! of every run: they are small and everything depends on them.

pub mod background;
mod repair;
pub mod state;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;

use crate::backend::FileType;
use crate::error::{ErrorKind, Result};
use crate::parallel::parallel_map;
use crate::progress::{Progress, Totals};
use crate::repo::{parity_name, Id, IdSet, Repository};
pub use repair::repair_before_open;
pub use state::{Finding, ScrubState, Status};

#[derive(Debug, Clone)]
pub struct ScrubOptions {
    /// MiB/s of reading; None for as fast as possible.
    pub rate: Option<f64>,
    /// Start a new pass instead of continuing the last one.
    pub restart: bool,
    /// Rebuild what is damaged (from parity, or indexes and manifests from packs).
    pub repair: bool,
    /// Also decrypt and re-hash every blob, not only every file.
    pub deep: bool,
    /// Packs read and verified at once.
    pub threads: usize,
    pub state_file: PathBuf,
}

/// What one run did.
#[derive(Debug, Default, Serialize)]
pub struct ScrubReport {
    pub packs_checked: u64,
    pub bytes_checked: u64,
    pub pass_complete: bool,
    pub coverage: f64,
    /// Findings of this run and, when it continues a pass that an earlier
    /// run began, of the packs that run checked.
    pub findings: Vec<Finding>,
    pub seconds: f64,
}

impl ScrubReport {
    pub fn damage_found(&self) -> bool {
        !self.findings.is_empty()
    }

    pub fn unrepaired(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.status != Status::Repaired)
            .count()
    }
}

/// One scrub run, driven a pack at a time (the mount daemon interleaves it
/// with reads), or all at once by `run`.
pub struct Scrubber<'a> {
    repo: &'a Repository,
    options: ScrubOptions,
    state: ScrubState,
    queue: std::vec::IntoIter<String>,
    started: Instant,
    report: ScrubReport,
}

impl<'a> Scrubber<'a> {
    /// Loads the state, checks the metadata files and lines up the packs.
    pub fn start(repo: &'a Repository, options: ScrubOptions) -> Result<Scrubber<'a>> {
        let mut state = ScrubState::load(&options.state_file, &repo.config().id.to_hex());
        let mut packs = repo.stored_files().list(FileType::Pack)?;
        packs.sort();
        {
            let index = repo.index();
            let stored: std::collections::HashSet<&String> = packs.iter().collect();
            // Packs the index needs but the backend lacks: checked (and found missing) too.
            let missing: Vec<String> = index
                .packs()
                .iter()
                .map(|p| p.id.to_hex())
                .filter(|n| !stored.contains(n))
                .collect();
            packs.extend(missing);
        }
        packs.sort();
        packs.dedup();
        if options.restart
            || state.pass_started.is_none()
            || state.position.is_none() && state.packs_checked > 0
        {
            state.pass_started = Some(Utc::now());
            state.position = None;
            state.packs_checked = 0;
            state.bytes_checked = 0;
            if options.restart {
                state.findings.clear();
            }
        }
        state.packs_total = packs.len() as u64;
        let queue: Vec<String> = match &state.position {
            Some(last) => packs.into_iter().filter(|p| p > last).collect(),
            None => packs,
        };
        let mut report = ScrubReport::default();
        if let (Some(_), Some(started)) = (&state.position, state.pass_started) {
            // This run continues a pass: what the pass's earlier runs found
            // in the packs they checked is part of its report (and exit code).
            report.findings = state
                .findings
                .iter()
                .filter(|f| f.found >= started && is_about_a_pack(f))
                .cloned()
                .collect();
        }
        // Every run checks the metadata files afresh: what earlier runs found
        // in them is replaced by what this run finds.
        state.findings.retain(is_about_a_pack);
        let mut scrubber = Scrubber {
            repo,
            options,
            state,
            queue: queue.into_iter(),
            started: Instant::now(),
            report,
        };
        let metadata = repair::check_metadata(repo, scrubber.options.repair)?;
        for finding in metadata {
            scrubber.record(finding);
        }
        scrubber.state.last_run = Some(Utc::now());
        scrubber.state.save(&scrubber.options.state_file)?;
        Ok(scrubber)
    }

    pub fn state(&self) -> &ScrubState {
        &self.state
    }

    /// Checks the next packs (`threads` of them, read and verified in
    /// parallel); None once the pass is complete. Returns what was found.
    pub fn step(&mut self) -> Result<Option<Vec<Finding>>> {
        let batch: Vec<String> = self
            .queue
            .by_ref()
            .take(self.options.threads.max(1))
            .collect();
        if batch.is_empty() {
            if !self.report.pass_complete {
                self.report.pass_complete = true;
                self.state.last_full_pass = Some(Utc::now());
                self.state.position = None;
                self.state.save(&self.options.state_file)?;
            }
            return Ok(None);
        }
        let deep = self.options.deep;
        let stored = self.repo.stored_files();
        let check = |name: &String| match stored.read(FileType::Pack, name) {
            Ok(bytes) => {
                let problem = verify_pack_bytes(self.repo, name, &bytes, deep).err();
                (bytes, problem)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                (Vec::new(), Some("the pack is missing".to_string()))
            }
            Err(e) => (Vec::new(), Some(format!("the pack cannot be read: {e}"))),
        };
        let checked = if batch.len() == 1 {
            vec![check(&batch[0])]
        } else {
            parallel_map(&batch, check)
        };
        let mut findings = Vec::new();
        for (name, (bytes, problem)) in batch.iter().zip(checked) {
            // Checked again: what earlier passes found in this pack and its
            // parity is replaced by what this check finds.
            let parity_file = FileType::Parity.path(&parity_name(FileType::Pack, name));
            self.state
                .findings
                .retain(|f| f.file != FileType::Pack.path(name) && f.file != parity_file);
            self.state.packs_checked += 1;
            self.state.bytes_checked += bytes.len() as u64;
            self.report.packs_checked += 1;
            self.report.bytes_checked += bytes.len() as u64;
            match problem {
                None => self.heal_parity(name, &bytes)?,
                Some(problem) => {
                    let finding = self.handle_damaged_pack(name, problem, &bytes)?;
                    self.record(finding.clone());
                    findings.push(finding);
                }
            }
        }
        self.state.position = batch.last().cloned();
        self.state.last_run = Some(Utc::now());
        self.state.save(&self.options.state_file)?;
        self.throttle();
        Ok(Some(findings))
    }

    /// Runs the rest of the pass and reports; `progress` counts the packs
    /// this run checks and their bytes.
    pub fn run(mut self, progress: &Progress) -> Result<ScrubReport> {
        let packs = self.queue.len() as u64;
        progress.begin("scrub", "packs", Totals::known(Some(packs), None));
        while self.step()?.is_some() {
            progress.reach(self.report.packs_checked, self.report.bytes_checked);
        }
        Ok(self.finish())
    }

    pub fn finish(mut self) -> ScrubReport {
        self.report.coverage = self.state.coverage();
        self.report.seconds = self.started.elapsed().as_secs_f64();
        self.report
    }

    fn record(&mut self, finding: Finding) {
        self.state.findings.retain(|f| f.file != finding.file);
        self.report.findings.retain(|f| f.file != finding.file);
        self.state.findings.push(finding.clone());
        self.report.findings.push(finding);
    }

    fn throttle(&self) {
        let Some(rate) = self.options.rate.filter(|r| *r > 0.0) else {
            return;
        };
        let due = self.report.bytes_checked as f64 / (rate * 1024.0 * 1024.0);
        let elapsed = self.started.elapsed().as_secs_f64();
        if due > elapsed {
            std::thread::sleep(Duration::from_secs_f64(due - elapsed));
        }
    }

    fn handle_damaged_pack(&self, name: &str, problem: String, data: &[u8]) -> Result<Finding> {
        let id = Id::from_hex(name)?;
        let repaired = repair::from_parity(
            self.repo,
            FileType::Pack,
            name,
            self.options.repair,
            |data| verify_pack_bytes(self.repo, name, data, true),
        );
        let mut finding =
            repair::finding(FileType::Pack, name, problem, repaired, self.options.repair);
        if finding.status != Status::Repaired {
            finding.damaged_blobs = self.repo.failing_blobs(&id, data);
            let damaged: IdSet = match &finding.damaged_blobs {
                None => IdSet::from_iter([id]),
                Some(blobs) => blobs.iter().copied().collect(),
            };
            finding.affected = crate::check::affected_paths(self.repo, &damaged)?;
        }
        Ok(finding)
    }

    /// A sound pack whose parity is missing or damaged gets new parity.
    fn heal_parity(&mut self, name: &str, data: &[u8]) -> Result<()> {
        if let Some(finding) = repair::check_parity(
            &self.repo.stored_files(),
            FileType::Pack,
            name,
            data,
            self.options.repair,
        )? {
            self.record(finding);
        }
        Ok(())
    }
}

/// Whether a finding is about a pack or a pack's parity (checked one at a
/// time through a pass), not about a metadata file (checked at every start).
fn is_about_a_pack(finding: &Finding) -> bool {
    let packs = format!("{}/", FileType::Pack.dir());
    let pack_parity = FileType::Parity.path(&parity_name(FileType::Pack, ""));
    finding.file.starts_with(&packs) || finding.file.starts_with(&pack_parity)
}

fn verify_pack_bytes(
    repo: &Repository,
    name: &str,
    bytes: &[u8],
    deep: bool,
) -> std::result::Result<(), String> {
    let id = Id::from_hex(name).map_err(|e| e.to_string())?;
    repo.verify_pack(&id, bytes, deep)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Runs a whole scrub (continuing the last pass unless `restart`).
pub fn scrub(repo: &Repository, options: ScrubOptions, progress: &Progress) -> Result<ScrubReport> {
    Scrubber::start(repo, options)?.run(progress)
}
