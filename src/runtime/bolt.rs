//! A read-only lookup in a bbolt database file, the format Podman 4 keeps its state in
//! (`libpod/bolt_state.db`), where its pod and container names are. No Rust crate reads
//! Go bolt files (jammdb is inspired by bolt, not compatible with it), and a lookup needs
//! only a small part of the format, so it is here, bounds-checked at every step.
//!
//! # The format, as much as a lookup needs (go.etcd.io/bbolt: page.go, db.go, node.go)
//! - The file is an array of pages of `page_size` bytes. Each page starts with a 16-byte
//!   header: `id u64, flags u16, count u16, overflow u32`, little-endian here (bolt
//!   writes native order; every platform Podman runs on is little-endian). A page that
//!   spans `overflow` more pages is read whole.
//! - Pages 0 and 1 are meta pages (flag 0x04); after the header: `magic u32
//!   (0xED0CDAED), version u32 (2), page_size u32, flags u32, root bucket (root pgid
//!   u64, sequence u64), freelist u64, pgid u64 (high-water mark), txid u64, checksum
//!   u64` (FNV-1a 64 of the preceding 56 bytes). The valid one with the higher txid is
//!   current.
//! - A bucket is a B+tree. Branch pages (flag 0x01) hold `count` elements of `pos u32,
//!   ksize u32, pgid u64`; leaf pages (flag 0x02) hold elements of `flags u32, pos u32,
//!   ksize u32, vsize u32`. `pos` counts from the element's own start; the key follows at
//!   `pos`, the value after it. Keys are sorted.
//! - A leaf element with flag 0x01 is a sub-bucket; its value is a bucket header (`root
//!   u64, sequence u64`). Root 0 means an inline bucket: a whole page follows the header
//!   inside the value.
//!
//! Writers hold an exclusive `flock` on the file for as long as they have it open; a
//! reader takes a shared one. The caller takes it without blocking and retries later when
//! a writer holds it, so no page read here can be half-written or reused under it. Every
//! page's header must still carry its own id, which catches a torn file.

use std::fs::File;
use std::os::unix::fs::FileExt;

const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
const HEADER: usize = 16;
const ELEMENT: usize = 16;
const FLAG_BRANCH: u16 = 0x01;
const FLAG_LEAF: u16 = 0x02;
const FLAG_META: u16 = 0x04;
const LEAF_BUCKET: u32 = 0x01;
/// No page with its overflow is read beyond this: a lookup needs small values only.
const MAX_PAGE_BYTES: u64 = 4 << 20;
/// A B+tree of this depth would hold more keys than any file could; deeper is a cycle.
const MAX_DEPTH: usize = 32;

/// Why a lookup failed: the file is not a bolt file we can read, or is inconsistent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoltError {
    Io(String),
    Corrupt(&'static str),
}

impl std::fmt::Display for BoltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BoltError::Io(e) => write!(f, "read error: {e}"),
            BoltError::Corrupt(what) => write!(f, "not a readable bolt database: {what}"),
        }
    }
}

type Result<T> = std::result::Result<T, BoltError>;

/// An open bolt file at its current transaction.
pub struct BoltDb<'f> {
    file: &'f File,
    page_size: u64,
    root: u64,
    high_water: u64,
}

/// A bucket's tree: at a page of the file, or inline in its parent's value.
enum Tree {
    Page(u64),
    Inline(Vec<u8>),
}

impl<'f> BoltDb<'f> {
    /// Read the meta pages of `file` and pick the current one.
    pub fn open(file: &'f File) -> Result<BoltDb<'f>> {
        let mut first = [0u8; HEADER + 64];
        read_exact_at(file, &mut first, 0)?;
        let m0 = Meta::parse(&first);
        // The page size is in meta 0; if meta 0 is damaged, bolt falls back to the OS
        // page size, and so does this.
        let page_size = m0.as_ref().map(|m| m.page_size).unwrap_or(4096);
        let mut second = [0u8; HEADER + 64];
        let m1 = read_exact_at(file, &mut second, page_size)
            .ok()
            .and_then(|()| Meta::parse(&second));
        let meta = match (m0, m1) {
            (Some(a), Some(b)) => {
                if b.txid > a.txid {
                    b
                } else {
                    a
                }
            }
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => return Err(BoltError::Corrupt("no valid meta page")),
        };
        Ok(BoltDb {
            file,
            page_size: meta.page_size,
            root: meta.root,
            high_water: meta.high_water,
        })
    }

    /// The value of `key` in the bucket reached through the bucket names `path`, or
    /// `None` when a bucket or the key is not there (or `key` names a bucket).
    pub fn get(&self, path: &[&[u8]], key: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut tree = Tree::Page(self.root);
        for name in path {
            match self.find(&tree, name)? {
                Some((flags, value)) if flags & LEAF_BUCKET != 0 => {
                    tree = bucket_tree(&value)?;
                }
                _ => return Ok(None),
            }
        }
        Ok(match self.find(&tree, key)? {
            Some((flags, value)) if flags & LEAF_BUCKET == 0 => Some(value),
            _ => None,
        })
    }

    /// The leaf element for `key` in `tree`: its flags and value.
    fn find(&self, tree: &Tree, key: &[u8]) -> Result<Option<(u32, Vec<u8>)>> {
        let mut owned;
        let mut page: &[u8] = match tree {
            Tree::Inline(bytes) => bytes,
            Tree::Page(id) => {
                owned = self.page(*id)?;
                &owned
            }
        };
        for _ in 0..MAX_DEPTH {
            let (flags, count) = header(page)?;
            if flags & FLAG_BRANCH != 0 {
                let mut child = None;
                for i in 0..count {
                    let (k, pgid) = branch_element(page, i)?;
                    // The last element whose key is <= key; the first if key sorts first.
                    if i == 0 || k <= key {
                        child = Some(pgid);
                    }
                    if k > key {
                        break;
                    }
                }
                let Some(pgid) = child else {
                    return Ok(None);
                };
                owned = self.page(pgid)?;
                page = &owned;
            } else if flags & FLAG_LEAF != 0 {
                for i in 0..count {
                    let (eflags, k, v) = leaf_element(page, i)?;
                    if k == key {
                        return Ok(Some((eflags, v.to_vec())));
                    }
                }
                return Ok(None);
            } else {
                return Err(BoltError::Corrupt(
                    "a bucket points at a page that is neither branch nor leaf",
                ));
            }
        }
        Err(BoltError::Corrupt("tree deeper than any real one"))
    }

    /// Page `id`, with its overflow pages.
    fn page(&self, id: u64) -> Result<Vec<u8>> {
        // Pages 0 and 1 are meta pages; ids at or past the high-water mark are not in use.
        if id < 2 || id >= self.high_water {
            return Err(BoltError::Corrupt("page id out of range"));
        }
        let off = id
            .checked_mul(self.page_size)
            .ok_or(BoltError::Corrupt("page offset overflows"))?;
        let mut buf = vec![0u8; self.page_size as usize];
        read_exact_at(self.file, &mut buf, off)?;
        let got = u64::from_le_bytes(take8(&buf, 0)?);
        if got != id {
            return Err(BoltError::Corrupt("page header names another page"));
        }
        let overflow = u32::from_le_bytes(take4(&buf, 12)?) as u64;
        if overflow > 0 {
            let total = (overflow + 1)
                .checked_mul(self.page_size)
                .filter(|t| *t <= MAX_PAGE_BYTES)
                .ok_or(BoltError::Corrupt("page larger than a lookup reads"))?;
            if id + overflow >= self.high_water {
                return Err(BoltError::Corrupt("overflow past the high-water mark"));
            }
            buf.resize(total as usize, 0);
            let first = self.page_size as usize;
            read_exact_at(self.file, &mut buf[first..], off + self.page_size)?;
        }
        Ok(buf)
    }
}

struct Meta {
    page_size: u64,
    root: u64,
    high_water: u64,
    txid: u64,
}

impl Meta {
    /// A meta page's header and meta, or `None` unless every check passes.
    fn parse(page: &[u8]) -> Option<Meta> {
        let flags = u16::from_le_bytes(page.get(8..10)?.try_into().ok()?);
        let m = page.get(HEADER..HEADER + 64)?;
        let u32_at = |o: usize| u32::from_le_bytes(m[o..o + 4].try_into().unwrap_or([0; 4]));
        let u64_at = |o: usize| u64::from_le_bytes(m[o..o + 8].try_into().unwrap_or([0; 8]));
        let page_size = u32_at(8) as u64;
        let ok = flags & FLAG_META != 0
            && u32_at(0) == MAGIC
            && u32_at(4) == VERSION
            && fnv1a64(&m[..56]) == u64_at(56)
            && (512..=(1 << 20)).contains(&page_size)
            && page_size.is_power_of_two();
        ok.then(|| Meta {
            page_size,
            root: u64_at(16),
            high_water: u64_at(40),
            txid: u64_at(48),
        })
    }
}

/// The tree a bucket header (a sub-bucket's value) points at.
fn bucket_tree(value: &[u8]) -> Result<Tree> {
    let root = u64::from_le_bytes(take8(value, 0)?);
    if value.len() < HEADER {
        return Err(BoltError::Corrupt("bucket header too short"));
    }
    if root == 0 {
        Ok(Tree::Inline(value[HEADER..].to_vec()))
    } else {
        Ok(Tree::Page(root))
    }
}

fn header(page: &[u8]) -> Result<(u16, usize)> {
    let flags = u16::from_le_bytes(take2(page, 8)?);
    let count = u16::from_le_bytes(take2(page, 10)?) as usize;
    Ok((flags, count))
}

fn branch_element(page: &[u8], i: usize) -> Result<(&[u8], u64)> {
    let at = HEADER + i * ELEMENT;
    let pos = u32::from_le_bytes(take4(page, at)?) as usize;
    let ksize = u32::from_le_bytes(take4(page, at + 4)?) as usize;
    let pgid = u64::from_le_bytes(take8(page, at + 8)?);
    Ok((slice(page, at + pos, ksize)?, pgid))
}

fn leaf_element(page: &[u8], i: usize) -> Result<(u32, &[u8], &[u8])> {
    let at = HEADER + i * ELEMENT;
    let flags = u32::from_le_bytes(take4(page, at)?);
    let pos = u32::from_le_bytes(take4(page, at + 4)?) as usize;
    let ksize = u32::from_le_bytes(take4(page, at + 8)?) as usize;
    let vsize = u32::from_le_bytes(take4(page, at + 12)?) as usize;
    let key = slice(page, at + pos, ksize)?;
    let value = slice(page, at + pos + ksize, vsize)?;
    Ok((flags, key, value))
}

fn slice(b: &[u8], at: usize, len: usize) -> Result<&[u8]> {
    at.checked_add(len)
        .and_then(|end| b.get(at..end))
        .ok_or(BoltError::Corrupt("element outside its page"))
}

fn take2(b: &[u8], at: usize) -> Result<[u8; 2]> {
    Ok(slice(b, at, 2)?.try_into().unwrap_or([0; 2]))
}

fn take4(b: &[u8], at: usize) -> Result<[u8; 4]> {
    Ok(slice(b, at, 4)?.try_into().unwrap_or([0; 4]))
}

fn take8(b: &[u8], at: usize) -> Result<[u8; 8]> {
    Ok(slice(b, at, 8)?.try_into().unwrap_or([0; 8]))
}

fn read_exact_at(f: &File, buf: &mut [u8], off: u64) -> Result<()> {
    f.read_exact_at(buf, off).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            BoltError::Corrupt("file ends inside a page")
        } else {
            BoltError::Io(e.to_string())
        }
    })
}

/// FNV-1a, 64 bits: bolt's meta checksum.
fn fnv1a64(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Writes bolt files for tests: the same layout, built from nested maps, so tests can
/// make both valid and damaged databases without Podman.
#[cfg(test)]
pub(crate) mod testdb {
    use super::*;
    use std::collections::BTreeMap;

    /// A bucket: keys to values or sub-buckets.
    #[derive(Default, Clone)]
    pub(crate) struct Bucket(pub BTreeMap<Vec<u8>, Entry>);

    #[derive(Clone)]
    pub(crate) enum Entry {
        Value(Vec<u8>),
        Bucket(Bucket),
    }

    impl Bucket {
        pub(crate) fn value(mut self, k: &str, v: &str) -> Self {
            self.0.insert(k.into(), Entry::Value(v.into()));
            self
        }
        pub(crate) fn bucket(mut self, k: &str, b: Bucket) -> Self {
            self.0.insert(k.into(), Entry::Bucket(b));
            self
        }
    }

    /// Serialise `root` into a bolt file with `page_size` pages. Sub-buckets with at most
    /// `inline_max` entries are written inline, bigger ones as their own pages; a bucket
    /// with more than `leaf_max` entries gets a branch page over several leaves, so every
    /// page kind a lookup walks is exercised.
    pub(crate) fn build(
        root: &Bucket,
        page_size: usize,
        inline_max: usize,
        leaf_max: usize,
    ) -> Vec<u8> {
        let mut pages: Vec<Vec<u8>> = vec![Vec::new(), Vec::new(), Vec::new(), Vec::new()];
        // Page 2: freelist, page 3: the root bucket's tree (reserved, filled below).
        let root_id = write_tree(root, &mut pages, page_size, inline_max, leaf_max);
        pages[2] = page_with(2, 0x10, 0, &[], page_size);
        let high_water = pages.len() as u64;
        for (i, txid) in [(0usize, 4u64), (1, 5)] {
            let mut m = Vec::new();
            m.extend_from_slice(&MAGIC.to_le_bytes());
            m.extend_from_slice(&VERSION.to_le_bytes());
            m.extend_from_slice(&(page_size as u32).to_le_bytes());
            m.extend_from_slice(&0u32.to_le_bytes());
            m.extend_from_slice(&root_id.to_le_bytes());
            m.extend_from_slice(&0u64.to_le_bytes());
            m.extend_from_slice(&2u64.to_le_bytes());
            m.extend_from_slice(&high_water.to_le_bytes());
            m.extend_from_slice(&txid.to_le_bytes());
            let sum = fnv1a64(&m);
            m.extend_from_slice(&sum.to_le_bytes());
            pages[i] = page_with(i as u64, FLAG_META, 0, &m, page_size);
        }
        if pages[3].is_empty() {
            pages[3] = page_with(3, 0x10, 0, &[], page_size);
        }
        pages.concat()
    }

    fn page_with(id: u64, flags: u16, count: u16, body: &[u8], page_size: usize) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&id.to_le_bytes());
        p.extend_from_slice(&flags.to_le_bytes());
        p.extend_from_slice(&count.to_le_bytes());
        let total = HEADER + body.len();
        let npages = total.div_ceil(page_size).max(1);
        p.extend_from_slice(&((npages - 1) as u32).to_le_bytes());
        p.extend_from_slice(body);
        p.resize(npages * page_size, 0);
        p
    }

    /// A leaf's body for these (flags, key, value) elements.
    fn leaf_body(elems: &[(u32, Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        let mut heads = Vec::new();
        let mut data = Vec::new();
        let n = elems.len();
        for (i, (flags, k, v)) in elems.iter().enumerate() {
            let pos = (n - i) * ELEMENT + data.len();
            heads.extend_from_slice(&flags.to_le_bytes());
            heads.extend_from_slice(&(pos as u32).to_le_bytes());
            heads.extend_from_slice(&(k.len() as u32).to_le_bytes());
            heads.extend_from_slice(&(v.len() as u32).to_le_bytes());
            data.extend_from_slice(k);
            data.extend_from_slice(v);
        }
        heads.extend_from_slice(&data);
        heads
    }

    fn elements(
        b: &Bucket,
        pages: &mut Vec<Vec<u8>>,
        page_size: usize,
        inline_max: usize,
        leaf_max: usize,
    ) -> Vec<(u32, Vec<u8>, Vec<u8>)> {
        b.0.iter()
            .map(|(k, e)| match e {
                Entry::Value(v) => (0, k.clone(), v.clone()),
                Entry::Bucket(sub) if sub.0.len() <= inline_max => {
                    let elems = elements(sub, pages, page_size, inline_max, leaf_max);
                    let mut v = vec![0u8; HEADER];
                    let mut inline = Vec::new();
                    inline.extend_from_slice(&0u64.to_le_bytes());
                    inline.extend_from_slice(&FLAG_LEAF.to_le_bytes());
                    inline.extend_from_slice(&(elems.len() as u16).to_le_bytes());
                    inline.extend_from_slice(&0u32.to_le_bytes());
                    inline.extend_from_slice(&leaf_body(&elems));
                    v.extend_from_slice(&inline);
                    (LEAF_BUCKET, k.clone(), v)
                }
                Entry::Bucket(sub) => {
                    let id = write_tree(sub, pages, page_size, inline_max, leaf_max);
                    let mut v = id.to_le_bytes().to_vec();
                    v.extend_from_slice(&0u64.to_le_bytes());
                    (LEAF_BUCKET, k.clone(), v)
                }
            })
            .collect()
    }

    fn write_tree(
        b: &Bucket,
        pages: &mut Vec<Vec<u8>>,
        page_size: usize,
        inline_max: usize,
        leaf_max: usize,
    ) -> u64 {
        let elems = elements(b, pages, page_size, inline_max, leaf_max);
        let push = |flags: u16, count: usize, body: &[u8], pages: &mut Vec<Vec<u8>>| {
            let id = pages.len() as u64;
            let p = page_with(id, flags, count as u16, body, page_size);
            let n = p.len() / page_size;
            pages.push(p);
            for _ in 1..n {
                pages.push(Vec::new());
            }
            id
        };
        if elems.len() <= leaf_max {
            return push(FLAG_LEAF, elems.len(), &leaf_body(&elems), pages);
        }
        let mut branch = Vec::new();
        for chunk in elems.chunks(leaf_max) {
            let id = push(FLAG_LEAF, chunk.len(), &leaf_body(chunk), pages);
            branch.push((chunk[0].1.clone(), id));
        }
        let n = branch.len();
        let mut heads = Vec::new();
        let mut data = Vec::new();
        for (i, (k, id)) in branch.iter().enumerate() {
            let pos = (n - i) * ELEMENT + data.len();
            heads.extend_from_slice(&(pos as u32).to_le_bytes());
            heads.extend_from_slice(&(k.len() as u32).to_le_bytes());
            heads.extend_from_slice(&id.to_le_bytes());
            data.extend_from_slice(k);
        }
        heads.extend_from_slice(&data);
        push(FLAG_BRANCH, n, &heads, pages)
    }
}

#[cfg(test)]
mod tests {
    use super::testdb::{build, Bucket};
    use super::*;
    use std::io::Write;

    fn file_of(bytes: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    fn podman_like(n: usize) -> Bucket {
        let mut all = Bucket::default();
        let mut ctr = Bucket::default();
        for i in 0..n {
            let id = format!("{i:064x}");
            all = all.value(&id, &format!("ctr{i}"));
            ctr = ctr.bucket(
                &id,
                Bucket::default()
                    .value("config", &format!("{{\"env\":[\"SECRET={i}\"]}}"))
                    .value("pod-id", &format!("{:064x}", 1000 + i % 3)),
            );
        }
        Bucket::default()
            .bucket("all-ctrs", all)
            .bucket("ctr", ctr)
            .bucket(
                "allPods",
                Bucket::default()
                    .value(&format!("{:064x}", 1000), "pod-a")
                    .value(&format!("{:064x}", 1001), "pod-b"),
            )
    }

    #[test]
    fn finds_values_through_inline_page_and_branch_buckets() {
        for (page_size, inline_max, leaf_max, n) in [
            (4096, 4, 100, 3),
            (4096, 1, 4, 40),
            (512, 0, 2, 25),
            (65536, 8, 3, 10),
        ] {
            let f = file_of(&build(&podman_like(n), page_size, inline_max, leaf_max));
            let db = BoltDb::open(&f).unwrap();
            for i in 0..n {
                let id = format!("{i:064x}");
                assert_eq!(
                    db.get(&[b"all-ctrs"], id.as_bytes()).unwrap(),
                    Some(format!("ctr{i}").into_bytes()),
                    "page {page_size} inline {inline_max} leaf {leaf_max} i {i}"
                );
                let pod = db
                    .get(&[b"ctr", id.as_bytes()], b"pod-id")
                    .unwrap()
                    .unwrap();
                let name = db.get(&[b"allPods"], &pod).unwrap();
                if i % 3 == 2 {
                    assert_eq!(name, None);
                } else {
                    assert_eq!(
                        name.unwrap(),
                        format!("pod-{}", ["a", "b"][i % 3]).as_bytes()
                    );
                }
            }
            assert_eq!(db.get(&[b"all-ctrs"], b"nope").unwrap(), None);
            assert_eq!(db.get(&[b"nope"], b"x").unwrap(), None);
            // A key that names a bucket is not a value, and a value is not a bucket.
            assert_eq!(db.get(&[], b"ctr").unwrap(), None);
            assert_eq!(db.get(&[b"allPods", b"x"], b"y").unwrap(), None);
            // Keys sorting before and after every key.
            assert_eq!(db.get(&[b"all-ctrs"], b"").unwrap(), None);
            assert_eq!(db.get(&[b"all-ctrs"], b"\xff").unwrap(), None);
        }
    }

    #[test]
    fn picks_the_newer_valid_meta() {
        let mut bytes = build(&podman_like(2), 4096, 4, 100);
        // Break meta 1's checksum: meta 0 (older) is used, and still finds everything.
        bytes[4096 + HEADER + 60] ^= 0xff;
        let f = file_of(&bytes);
        let db = BoltDb::open(&f).unwrap();
        assert!(db
            .get(&[b"all-ctrs"], format!("{:064x}", 1).as_bytes())
            .unwrap()
            .is_some());
        bytes[HEADER + 60] ^= 0xff;
        let f = file_of(&bytes);
        assert!(matches!(BoltDb::open(&f), Err(BoltError::Corrupt(_))));
    }

    #[test]
    fn damaged_files_are_errors_never_panics() {
        let good = build(&podman_like(30), 512, 1, 3);
        assert!(BoltDb::open(&file_of(b"")).is_err());
        assert!(BoltDb::open(&file_of(&good[..60])).is_err());
        // Meta 0 whole, nothing else: it opens, and a lookup finds no page.
        let short = file_of(&good[..100]);
        let db = BoltDb::open(&short).unwrap();
        assert!(db.get(&[b"all-ctrs"], b"x").is_err());
        // Flip each byte past the meta pages in turn, and truncate at page boundaries:
        // every lookup returns, Ok or Err.
        let id = format!("{:064x}", 7);
        for i in (1024..good.len()).step_by(7) {
            let mut bad = good.clone();
            bad[i] ^= 0xa5;
            let f = file_of(&bad);
            if let Ok(db) = BoltDb::open(&f) {
                let _ = db.get(&[b"ctr", id.as_bytes()], b"pod-id");
                let _ = db.get(&[b"all-ctrs"], id.as_bytes());
            }
        }
        for cut in (1024..good.len()).step_by(512) {
            let f = file_of(&good[..cut]);
            if let Ok(db) = BoltDb::open(&f) {
                let _ = db.get(&[b"all-ctrs"], id.as_bytes());
            }
        }
    }

    #[test]
    fn a_page_that_points_at_itself_ends() {
        // A branch page whose only child is itself: the depth bound stops the walk.
        let mut bytes = build(&Bucket::default().value("k", "v"), 4096, 4, 100);
        let root = 4 * 4096;
        bytes[root + 8..root + 10].copy_from_slice(&FLAG_BRANCH.to_le_bytes());
        bytes[root + 10..root + 12].copy_from_slice(&1u16.to_le_bytes());
        bytes[root + HEADER..root + HEADER + 4].copy_from_slice(&16u32.to_le_bytes());
        bytes[root + HEADER + 4..root + HEADER + 8].copy_from_slice(&1u32.to_le_bytes());
        bytes[root + HEADER + 8..root + HEADER + 16].copy_from_slice(&4u64.to_le_bytes());
        let f = file_of(&bytes);
        let db = BoltDb::open(&f).unwrap();
        assert_eq!(
            db.get(&[], b"k"),
            Err(BoltError::Corrupt("tree deeper than any real one"))
        );
    }
}
