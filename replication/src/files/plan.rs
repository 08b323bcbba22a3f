//! The three-way comparison of two nodes' manifests (sans-IO): what to copy, delete or keep as a
//! conflict so that both directories end up the same and nothing either side created is lost.
//!
//! Each node's manifest row for a path holds its `current` version (or none: deleted) and the
//! `synced` version both nodes agreed on at their last sync. A side *changed* the path if its
//! current differs from its synced. Then, for each path whose current versions differ:
//! - only one side changed it: that side's version (or deletion) goes to the other;
//! - neither or both changed it: a file present on one side only is copied to the other (data is
//!   never deleted on a guess); present on both with different content, the newer modification
//!   time wins (a tie goes to the active) and the loser is kept beside it under a conflict name on
//!   both sides.
//!
//! The active runs the plan; it is the "local" side here.

use std::collections::{BTreeMap, BTreeSet};

use super::path::RelPath;

/// One file's content and metadata as a node has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub size: u64,
    pub mtime_ns: i64,
    /// Permission bits (`mode & MODE_BITS`: no set-ID or sticky bits).
    pub mode: u32,
    /// SHA-256 of the content, lowercase hex.
    pub hash: String,
}

impl Version {
    /// What "the same file" means for replication: content and permissions.
    pub fn key(&self) -> String {
        format!("{}:{:o}", self.hash, self.mode)
    }
}

/// A node's manifest row for one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The file as last scanned or written here; `None` once it was deleted here.
    pub current: Option<Version>,
    /// The key both nodes agreed on at the last sync; `None` if never synced (or synced absent).
    pub synced: Option<String>,
    /// Epoch of the term in which `current` was recorded here.
    pub term: u64,
}

impl Row {
    pub fn changed(&self) -> bool {
        self.current.as_ref().map(Version::key) != self.synced
    }
}

/// Which node keeps its version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Local,
    Peer,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Copy the local file to the peer.
    Push(RelPath),
    /// Copy the peer's file here.
    Pull(RelPath),
    /// Delete the peer's copy (it was deleted here).
    DeleteOnPeer(RelPath),
    /// Delete the local copy (it was deleted on the peer).
    DeleteLocal(RelPath),
    /// Both hold the same (or both lack it): record it as synced on both.
    Agree(RelPath),
    /// Both changed it differently: `winner`'s version stays at `path`, the other's is kept as
    /// `loser_copy` on both nodes.
    Conflict {
        path: RelPath,
        winner: Side,
        loser_copy: RelPath,
    },
}

impl Action {
    pub fn path(&self) -> &RelPath {
        match self {
            Action::Push(path)
            | Action::Pull(path)
            | Action::DeleteOnPeer(path)
            | Action::DeleteLocal(path)
            | Action::Agree(path)
            | Action::Conflict { path, .. } => path,
        }
    }
}

/// The actions that make both sides the same. `local_node` and `peer_node` name the conflict
/// copies (the loser's node).
pub fn plan(
    local: &BTreeMap<RelPath, Row>,
    peer: &BTreeMap<RelPath, Row>,
    local_node: &str,
    peer_node: &str,
) -> Vec<Action> {
    let paths: BTreeSet<&RelPath> = local.keys().chain(peer.keys()).collect();
    // Conflict copies must not collide with any existing path or with each other.
    let mut taken: BTreeSet<RelPath> = paths.iter().map(|path| (*path).clone()).collect();
    let mut actions = Vec::new();
    for path in paths {
        let (l, r) = (local.get(path), peer.get(path));
        let lc = l.and_then(|row| row.current.as_ref());
        let rc = r.and_then(|row| row.current.as_ref());
        if lc.map(Version::key) == rc.map(Version::key) {
            let settled = |row: Option<&Row>| {
                row.is_none_or(|row| {
                    !row.changed() && (row.current.is_some() || row.synced.is_none())
                })
            };
            if !(settled(l) && settled(r) && l.is_some() == r.is_some()) {
                actions.push(Action::Agree(path.clone()));
            }
            continue;
        }
        let l_changed = l.is_some_and(Row::changed);
        let r_changed = r.is_some_and(Row::changed);
        let action = match (l_changed, r_changed, lc, rc) {
            (true, false, Some(_), _) => Action::Push(path.clone()),
            (true, false, None, _) => Action::DeleteOnPeer(path.clone()),
            (false, true, _, Some(_)) => Action::Pull(path.clone()),
            (false, true, _, None) => Action::DeleteLocal(path.clone()),
            (_, _, Some(_), None) => Action::Push(path.clone()),
            (_, _, None, Some(_)) => Action::Pull(path.clone()),
            (_, _, Some(mine), Some(theirs)) => {
                let winner = if theirs.mtime_ns > mine.mtime_ns {
                    Side::Peer
                } else {
                    Side::Local
                };
                let (loser_node, loser) = match winner {
                    Side::Local => (peer_node, theirs),
                    Side::Peer => (local_node, mine),
                };
                let loser_copy = conflict_name(path, loser_node, loser.mtime_ns, &taken);
                taken.insert(loser_copy.clone());
                Action::Conflict {
                    path: path.clone(),
                    winner,
                    loser_copy,
                }
            }
            (_, _, None, None) => continue,
        };
        actions.push(action);
    }
    actions
}

/// `dir/name.conflict-<node>-<UTC stamp>.ext`, unique among `taken`.
pub fn conflict_name(
    path: &RelPath,
    node: &str,
    mtime_ns: i64,
    taken: &BTreeSet<RelPath>,
) -> RelPath {
    let name = path.file_name();
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem, format!(".{ext}")),
        _ => (name, String::new()),
    };
    let stamp = utc_stamp(mtime_ns.div_euclid(1_000_000_000));
    for attempt in 1u32.. {
        let suffix = if attempt == 1 {
            String::new()
        } else {
            format!("-{attempt}")
        };
        // Keep the component within the file-system limit by shortening the stem.
        let tail = format!(".conflict-{node}-{stamp}{suffix}{ext}");
        let room = 255usize.saturating_sub(tail.len());
        let mut cut = stem.len().min(room);
        while !stem.is_char_boundary(cut) {
            cut -= 1;
        }
        let candidate = format!("{}{tail}", &stem[..cut]);
        if let Ok(candidate) = path.with_file_name(&candidate)
            && !taken.contains(&candidate)
        {
            return candidate;
        }
    }
    unreachable!("some numbered conflict name is free")
}

/// `YYYYMMDDTHHMMSSZ` for seconds since the Unix epoch.
fn utc_stamp(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(hash: &str, mtime_s: i64) -> Version {
        Version {
            size: 1,
            mtime_ns: mtime_s * 1_000_000_000,
            mode: 0o644,
            hash: hash.into(),
        }
    }

    fn row(current: Option<Version>, synced: Option<&str>) -> Row {
        Row {
            current,
            synced: synced.map(|hash| format!("{hash}:644")),
            term: 1,
        }
    }

    fn path(text: &str) -> RelPath {
        RelPath::parse(text).unwrap()
    }

    fn one(local: Option<Row>, peer: Option<Row>) -> Vec<Action> {
        let mut l = BTreeMap::new();
        let mut r = BTreeMap::new();
        if let Some(row) = local {
            l.insert(path("f.wav"), row);
        }
        if let Some(row) = peer {
            r.insert(path("f.wav"), row);
        }
        plan(&l, &r, "a", "b")
    }

    #[test]
    fn a_change_on_one_side_goes_to_the_other() {
        let new = || Some(row(Some(version("new", 2)), Some("old")));
        let old = || Some(row(Some(version("old", 1)), Some("old")));
        assert_eq!(one(new(), old()), [Action::Push(path("f.wav"))]);
        assert_eq!(one(old(), new()), [Action::Pull(path("f.wav"))]);
        assert_eq!(
            one(Some(row(None, Some("old"))), old()),
            [Action::DeleteOnPeer(path("f.wav"))]
        );
        assert_eq!(
            one(old(), Some(row(None, Some("old")))),
            [Action::DeleteLocal(path("f.wav"))]
        );
    }

    #[test]
    fn a_file_on_one_side_only_is_copied_never_deleted_on_a_guess() {
        let fresh = || Some(row(Some(version("x", 1)), None));
        assert_eq!(one(fresh(), None), [Action::Push(path("f.wav"))]);
        assert_eq!(one(None, fresh()), [Action::Pull(path("f.wav"))]);
        // Synced before, and the peer lost its manifest and files (a rebuilt server): copied.
        let synced = || Some(row(Some(version("x", 1)), Some("x")));
        assert_eq!(one(synced(), None), [Action::Push(path("f.wav"))]);
        // A modification on one side beats a deletion on the other.
        assert_eq!(
            one(
                Some(row(None, Some("old"))),
                Some(row(Some(version("new", 2)), Some("old")))
            ),
            [Action::Pull(path("f.wav"))]
        );
    }

    #[test]
    fn changes_on_both_sides_keep_the_newer_and_a_conflict_copy_of_the_other() {
        let actions = one(
            Some(row(Some(version("mine", 10)), Some("old"))),
            Some(row(Some(version("theirs", 20)), Some("old"))),
        );
        assert_eq!(
            actions,
            [Action::Conflict {
                path: path("f.wav"),
                winner: Side::Peer,
                loser_copy: path("f.conflict-a-19700101T000010Z.wav"),
            }]
        );
        let actions = one(
            Some(row(Some(version("mine", 30)), None)),
            Some(row(Some(version("theirs", 20)), None)),
        );
        assert!(matches!(
            &actions[..],
            [Action::Conflict { winner: Side::Local, loser_copy, .. }]
                if loser_copy.as_str() == "f.conflict-b-19700101T000020Z.wav"
        ));
    }

    #[test]
    fn agreement_is_recorded_once_and_then_nothing_is_done() {
        let same = || Some(row(Some(version("x", 1)), None));
        assert_eq!(one(same(), same()), [Action::Agree(path("f.wav"))]);
        let settled = || Some(row(Some(version("x", 1)), Some("x")));
        assert!(one(settled(), settled()).is_empty());
        // Deleted on both sides: the tombstones are settled away.
        assert_eq!(
            one(Some(row(None, Some("x"))), Some(row(None, Some("x")))),
            [Action::Agree(path("f.wav"))]
        );
        assert_eq!(
            one(Some(row(None, Some("x"))), None),
            [Action::Agree(path("f.wav"))]
        );
    }

    #[test]
    fn conflict_names_avoid_existing_paths_and_keep_the_extension() {
        let taken: BTreeSet<RelPath> = [path("d/m.conflict-b-20261124T101500Z.wav")].into();
        let seconds = 1_795_515_300; // 2026-11-24T10:15:00Z
        let name = conflict_name(&path("d/m.wav"), "b", seconds * 1_000_000_000, &taken);
        assert_eq!(name.as_str(), "d/m.conflict-b-20261124T101500Z-2.wav");
        let bare = conflict_name(&path("README"), "a", 0, &BTreeSet::new());
        assert_eq!(bare.as_str(), "README.conflict-a-19700101T000000Z");
        let long = conflict_name(&path(&"x".repeat(250)), "a", 0, &BTreeSet::new());
        assert!(long.as_str().len() <= 255, "{}", long.as_str().len());
    }

    #[test]
    fn utc_stamps_match_the_calendar() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
        assert_eq!(utc_stamp(1_795_515_300), "20261124T101500Z");
    }
}
