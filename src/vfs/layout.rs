//! The names of the mount's top levels (a contract, docs/design.md section 4):
//! one `@<UTC time>` directory per snapshot, `latest`, `ids/`, `hosts/`,
//! `tags/`, with later snapshots of the same second suffixed `-2`, `-3`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::repo::Snapshot;
use crate::selector::{Filter, Selector};

/// Which snapshots a virtual directory shows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    All,
    Host(String),
    Tag(String),
}

impl Scope {
    fn filter(&self) -> Filter {
        match self {
            Scope::All => Filter::default(),
            Scope::Host(h) => Filter {
                host: Some(h.clone()),
                tags: vec![],
            },
            Scope::Tag(t) => Filter {
                host: None,
                tags: vec![t.clone()],
            },
        }
    }
}

#[derive(Default)]
pub struct Layout {
    /// Oldest first.
    pub snapshots: Vec<Arc<Snapshot>>,
    /// `@<time>[-n]`, parallel to `snapshots`.
    pub labels: Vec<String>,
    by_label: HashMap<String, usize>,
    /// Short id -> the oldest snapshot that has it, for `ids/`.
    by_short_id: HashMap<String, usize>,
    /// Each host's and tag's snapshots, oldest first (ascending indices).
    pub hosts: BTreeMap<String, Vec<usize>>,
    pub tags: BTreeMap<String, Vec<usize>>,
}

/// A name that can appear in a directory: not empty, no `/`, not `.`/`..`.
fn usable_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

impl Layout {
    pub fn new(snapshots: Vec<Snapshot>) -> Layout {
        Layout::after(snapshots, &Layout::default())
    }

    /// The layout of `snapshots` in a running mount: a snapshot keeps the
    /// name `previous` gave it, so a new snapshot of the same second never
    /// takes over a name the kernel already caches.
    pub fn after(mut snapshots: Vec<Snapshot>, previous: &Layout) -> Layout {
        crate::repo::sort_by_time(&mut snapshots);
        let kept: HashMap<crate::repo::Id, &String> = previous
            .snapshots
            .iter()
            .zip(&previous.labels)
            .map(|(s, l)| (s.id, l))
            .collect();
        let mut taken: std::collections::HashSet<String> = snapshots
            .iter()
            .filter_map(|s| kept.get(&s.id).map(|l| (*l).clone()))
            .collect();
        let mut layout = Layout::default();
        for (i, snapshot) in snapshots.into_iter().enumerate() {
            let label = match kept.get(&snapshot.id) {
                Some(label) => (*label).clone(),
                None => {
                    let base = format!("@{}", snapshot.time_label());
                    let label = std::iter::once(base.clone())
                        .chain((2..).map(|n| format!("{base}-{n}")))
                        .find(|l| !taken.contains(l))
                        .expect("some suffix is free");
                    taken.insert(label.clone());
                    label
                }
            };
            layout.by_label.insert(label.clone(), i);
            layout.by_short_id.entry(snapshot.id.short()).or_insert(i);
            layout.labels.push(label);
            if usable_name(&snapshot.host) {
                layout
                    .hosts
                    .entry(snapshot.host.clone())
                    .or_default()
                    .push(i);
            }
            for tag in snapshot.tags.iter().filter(|t| usable_name(t)) {
                layout.tags.entry(tag.clone()).or_default().push(i);
            }
            layout.snapshots.push(Arc::new(snapshot));
        }
        layout
    }

    /// The snapshots a scope shows, oldest first. A listing takes them in
    /// batches, and a lookup checks one: neither copies the list, so that
    /// listing ten thousand snapshots is not quadratic (`docs/design.md`,
    /// section 6).
    pub fn members(&self, scope: &Scope) -> Members<'_> {
        match scope {
            Scope::All => Members::All(self.snapshots.len()),
            Scope::Host(h) => Members::Some(self.hosts.get(h).map_or(&[], Vec::as_slice)),
            Scope::Tag(t) => Members::Some(self.tags.get(t).map_or(&[], Vec::as_slice)),
        }
    }

    pub fn by_label(&self, label: &str, scope: &Scope) -> Option<usize> {
        self.by_label
            .get(label)
            .copied()
            .filter(|&i| self.members(scope).contains(i))
    }

    /// The oldest snapshot whose short id is `short`.
    pub fn by_short_id(&self, short: &str) -> Option<usize> {
        self.by_short_id.get(short).copied()
    }

    /// Resolves `latest` or an unlisted `@TIME` by the selector rule, to
    /// the label of the chosen snapshot.
    pub fn resolve(&self, name: &str, scope: &Scope) -> Option<String> {
        let selector = if name == "latest" {
            Selector::Latest
        } else {
            match Selector::parse(name) {
                Ok(s @ Selector::Before { .. }) => s,
                _ => return None,
            }
        };
        let chosen = selector
            .select(self.snapshots.iter().map(|s| &**s), &scope.filter())
            .ok()?;
        let index = self.snapshots.iter().position(|s| s.id == chosen.id)?;
        Some(self.labels[index].clone())
    }
}

/// The snapshots of a scope (see [`Layout::members`]).
#[derive(Clone, Copy)]
pub enum Members<'a> {
    /// Every snapshot: `0..n`.
    All(usize),
    /// These, ascending.
    Some(&'a [usize]),
}

impl<'a> Members<'a> {
    pub fn len(&self) -> usize {
        match self {
            Members::All(n) => *n,
            Members::Some(list) => list.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, snapshot: usize) -> bool {
        match self {
            Members::All(n) => snapshot < *n,
            Members::Some(list) => list.binary_search(&snapshot).is_ok(),
        }
    }

    /// The members in order, oldest first.
    pub fn iter(self) -> Box<dyn Iterator<Item = usize> + 'a> {
        match self {
            Members::All(n) => Box::new(0..n),
            Members::Some(list) => Box::new(list.iter().copied()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::{Id, Summary};
    use chrono::{TimeZone, Utc};

    pub fn snapshot(id: u8, time: &str, host: &str, tags: &[&str]) -> Snapshot {
        Snapshot {
            id: Id([id; 32]),
            version: 1,
            time: Utc.from_utc_datetime(
                &chrono::NaiveDateTime::parse_from_str(time, "%Y-%m-%dT%H:%M:%S").unwrap(),
            ),
            host: host.into(),
            username: "root".into(),
            paths: vec!["/etc".into()],
            tags: tags.iter().map(|t| t.to_string()).collect(),
            tree: Id([0; 32]),
            parent: None,
            program: "test".into(),
            summary: Summary::default(),
            original: None,
            resealed_from: None,
        }
    }

    #[test]
    fn labels_hosts_tags_and_time_resolution() {
        let layout = Layout::new(vec![
            snapshot(3, "2024-06-01T02:00:00", "db", &["nightly"]),
            snapshot(1, "2024-05-31T02:00:00", "web", &[]),
            snapshot(2, "2024-06-01T02:00:00", "db", &["nightly", "a/b"]),
        ]);
        assert_eq!(
            layout.labels,
            [
                "@2024-05-31T02:00:00Z",
                "@2024-06-01T02:00:00Z",
                "@2024-06-01T02:00:00Z-2"
            ]
        );
        assert_eq!(layout.hosts["db"], vec![1, 2]);
        assert_eq!(layout.tags.keys().collect::<Vec<_>>(), ["nightly"]);
        assert_eq!(
            layout.resolve("latest", &Scope::All).unwrap(),
            "@2024-06-01T02:00:00Z-2"
        );
        assert_eq!(
            layout.resolve("@2024-05-31", &Scope::All).unwrap(),
            "@2024-05-31T02:00:00Z"
        );
        assert_eq!(
            layout
                .resolve("@2024-06", &Scope::Host("web".into()))
                .unwrap(),
            "@2024-05-31T02:00:00Z"
        );
        assert!(layout.resolve("@2024-05-30", &Scope::All).is_none());
        assert!(layout.resolve("@nonsense", &Scope::All).is_none());
        assert_eq!(
            layout.by_label("@2024-05-31T02:00:00Z", &Scope::Host("db".into())),
            None
        );
    }
}
