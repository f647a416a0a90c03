//! Basic auth: the `Authorization` header, the bcrypt hashes a config may hold, and
//! bcrypt verification with a cache of the credentials already verified.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::str::FromStr as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hyper::header::HeaderValue;
use tokio::sync::oneshot;

use super::webconfig::{err, WebConfigError};

/// Most verified credentials remembered; the cache is emptied when full.
const AUTH_CACHE_MAX: usize = 256;

/// The highest bcrypt cost accepted. Each step doubles the work: cost 10 is ~60-80 ms
/// per check on a current x86 core, 16 ~4-5 s, 17 ~10 s (a default scrape timeout), and
/// 31 days. Above 16 a new login could not finish within a scrape.
pub(super) const MAX_BCRYPT_COST: u32 = 16;

/// Costs above this are accepted with a warning: a new login then costs over a second.
pub(super) const WARN_BCRYPT_COST: u32 = 12;

/// Check one user's bcrypt hash: refused (naming the user) when it is not a hash, when
/// the library cannot check its cost (outside 4-31), or when the cost is above
/// [`MAX_BCRYPT_COST`]. Ok(Some(warning)) above [`WARN_BCRYPT_COST`].
pub(super) fn check_hash(user: &str, hash: &str) -> Result<Option<String>, WebConfigError> {
    let field = format!("basic_auth_users.{user}");
    let parts = bcrypt::HashParts::from_str(hash).map_err(|_| {
        err(format!(
            "{field}: not a bcrypt hash (make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)"
        ))
    })?;
    // The library reads the two cost characters with str::parse, which takes "+9".
    if !hash.as_bytes()[4..6].iter().all(u8::is_ascii_digit) {
        return Err(err(format!(
            "{field}: not a bcrypt hash (the cost is not two digits)"
        )));
    }
    let cost = parts.get_cost();
    if !(4..=31).contains(&cost) {
        return Err(err(format!(
            "{field}: bcrypt cost {cost} is outside 4 to 31, which the bcrypt library refuses: \
             every login would fail; use a cost from 4 to {MAX_BCRYPT_COST} (10 is usual)"
        )));
    }
    if cost > MAX_BCRYPT_COST {
        return Err(err(format!(
            "{field}: bcrypt cost {cost} takes about {} per login check on this machine, \
             longer than any scrape can wait; use a cost from 4 to {MAX_BCRYPT_COST} (10 is usual)",
            human(bcrypt_time(cost))
        )));
    }
    if cost > WARN_BCRYPT_COST {
        return Ok(Some(format!(
            "{field}: bcrypt cost {cost} takes about {} per new login on this machine \
             (verified passwords are cached); 10 to {WARN_BCRYPT_COST} is usual",
            human(bcrypt_time(cost))
        )));
    }
    Ok(None)
}

/// How long one bcrypt check of `cost` takes here: one check at cost 4, scaled (each
/// step doubles the work).
fn bcrypt_time(cost: u32) -> Duration {
    let t0 = Instant::now();
    let _ = bcrypt::hash("calibration", 4);
    t0.elapsed()
        .saturating_mul(1u32 << cost.saturating_sub(4).min(31))
}

/// A duration as a person reads it: "1.2 s", "40 min", "5 h", "3 days".
fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 90.0 {
        format!("{s:.1} s")
    } else if s < 2.0 * 3600.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 48.0 * 3600.0 {
        format!("{:.0} h", s / 3600.0)
    } else {
        format!("{:.0} days", s / 86400.0)
    }
}

/// Checks basic-auth credentials against the users' bcrypt hashes.
pub(super) struct BasicAuth {
    /// Hashes of (user, bcrypt hash, password) already verified, salted per process, so a
    /// scrape every few seconds does not pay bcrypt's cost each time.
    verified: Mutex<HashSet<[u8; 32]>>,
    salt: [u8; 16],
    /// Where uncached checks run: never more than a few at once, sources in turn.
    pool: FairPool,
}

impl BasicAuth {
    /// bcrypt checks run at once on half the CPUs (at least one), so the other half
    /// answers scrapes whatever a flood of wrong passwords costs.
    pub(super) fn new() -> Result<Self, WebConfigError> {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let workers = (cpus / 2).max(1);
        let mut salt = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
            .map_err(|_| err("cannot get random bytes for the credential cache"))?;
        Ok(BasicAuth {
            verified: Mutex::new(HashSet::new()),
            salt,
            pool: FairPool::new(workers),
        })
    }

    fn cache_key(&self, user: &str, hash: &str, pass: &[u8]) -> [u8; 32] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(&self.salt);
        for part in [user.as_bytes(), hash.as_bytes(), pass] {
            ctx.update(&(part.len() as u64).to_le_bytes());
            ctx.update(part);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    fn is_cached(&self, key: &[u8; 32]) -> bool {
        match self.verified.lock() {
            Ok(g) => g.contains(key),
            Err(p) => p.into_inner().contains(key),
        }
    }

    /// Whether the request's `Authorization` header satisfies basic auth for `users`
    /// (username to bcrypt hash; always true when there are none). A password verified
    /// before is answered from the cache at once; any other check waits for the bcrypt
    /// pool, its turn shared fairly with other source addresses (`source`).
    pub(super) async fn authorize(
        &self,
        users: &BTreeMap<String, String>,
        header: Option<&HeaderValue>,
        source: IpAddr,
    ) -> bool {
        if users.is_empty() {
            return true;
        }
        let Some((user, pass)) = parse_basic(header) else {
            return false;
        };
        let hash = users.get(&user).cloned();
        let key = self.cache_key(&user, hash.as_deref().unwrap_or(""), &pass);
        if hash.is_some() && self.is_cached(&key) {
            return true;
        }
        let Some(_turn) = self.pool.turn(source).await else {
            return false;
        };
        // Verified by another request while this one waited.
        if hash.is_some() && self.is_cached(&key) {
            return true;
        }
        // An unknown user still costs one bcrypt (against a real hash, with a result
        // thrown away), so response time does not tell which users exist.
        let target = hash.clone().or_else(|| users.values().next().cloned());
        let known = hash.is_some();
        let checked =
            tokio::task::spawn_blocking(move || target.map(|h| bcrypt::verify(&pass, &h))).await;
        let ok = match checked {
            Ok(Some(Ok(matched))) => matched && known,
            Ok(None) => false,
            // Hashes are checked at load, so this is a bug or a broken library: say so
            // rather than answer 401 without a word.
            Ok(Some(Err(e))) => {
                tracing::error!(user = %user, error = %e, "bcrypt cannot check this user's hash");
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "the bcrypt check failed");
                false
            }
        };
        if ok {
            let mut set = match self.verified.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if set.len() >= AUTH_CACHE_MAX {
                set.clear();
            }
            set.insert(key);
        }
        ok
    }
}

/// A bounded pool of turns for bcrypt checks, shared fairly between source addresses:
/// at most `workers` checks run at once, and waiting checks are served one source in
/// turn (round robin), so a source's first login waits for the checks in progress and
/// at most one more per other waiting source, however many a flood from one address
/// has queued.
#[derive(Clone)]
struct FairPool(Arc<PoolInner>);

struct PoolInner {
    workers: usize,
    state: Mutex<PoolState>,
}

#[derive(Default)]
struct PoolState {
    running: usize,
    /// Per source, its waiting checks in order; never an empty queue.
    waiting: HashMap<IpAddr, VecDeque<oneshot::Sender<Turn>>>,
    /// The sources with waiting checks, in the order they are served.
    order: VecDeque<IpAddr>,
}

/// The right to run one check; dropping it hands the turn on.
struct Turn {
    pool: Arc<PoolInner>,
    armed: bool,
}

impl Drop for Turn {
    fn drop(&mut self) {
        if self.armed {
            self.pool.hand_on();
        }
    }
}

impl FairPool {
    fn new(workers: usize) -> Self {
        FairPool(Arc::new(PoolInner {
            workers: workers.max(1),
            state: Mutex::new(PoolState::default()),
        }))
    }

    /// Wait for a turn for a check from `source`. Dropping the future while waiting
    /// gives the place up (the turn, if already handed over, is passed on).
    async fn turn(&self, source: IpAddr) -> Option<Turn> {
        let rx = {
            let mut st = self.0.lock();
            if st.running < self.0.workers && st.order.is_empty() {
                st.running += 1;
                return Some(Turn {
                    pool: self.0.clone(),
                    armed: true,
                });
            }
            let (tx, rx) = oneshot::channel();
            let st = &mut *st;
            let q = st.waiting.entry(source).or_default();
            if q.is_empty() {
                st.order.push_back(source);
            }
            q.push_back(tx);
            rx
        };
        rx.await.ok()
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.0.lock().waiting.values().map(VecDeque::len).sum()
    }
}

impl PoolInner {
    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// A check ended: give its turn to the next source in order, skipping waiters that
    /// gave up; or free the worker.
    fn hand_on(self: &Arc<Self>) {
        let mut st = self.lock();
        while let Some(source) = st.order.pop_front() {
            let Some(q) = st.waiting.get_mut(&source) else {
                continue;
            };
            let next = q.pop_front();
            if q.is_empty() {
                st.waiting.remove(&source);
            } else {
                st.order.push_back(source);
            }
            let Some(tx) = next else { continue };
            let turn = Turn {
                pool: self.clone(),
                armed: true,
            };
            match tx.send(turn) {
                Ok(()) => return,
                // The waiter is gone: disarm the turn (the lock is held) and go on.
                Err(mut t) => t.armed = false,
            }
        }
        st.running = st.running.saturating_sub(1);
    }
}

/// `Authorization: Basic base64(user:password)` → (user, password).
fn parse_basic(header: Option<&HeaderValue>) -> Option<(String, Vec<u8>)> {
    let v = header?.to_str().ok()?.trim();
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let colon = raw.iter().position(|b| *b == b':')?;
    let user = String::from_utf8(raw[..colon].to_vec()).ok()?;
    Some((user, raw[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bcrypt_turns_go_round_the_sources_and_skip_waiters_that_gave_up() {
        let pool = FairPool::new(1);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = pool.turn(a).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        let enqueue = |src: IpAddr, name: String, tasks: &mut Vec<tokio::task::JoinHandle<()>>| {
            let (pool, order) = (pool.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _t = pool.turn(src).await.unwrap();
                order.lock().unwrap().push(name);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }));
        };
        // Ten checks from a flooding address queue first, one of them gives up...
        for i in 0..10 {
            enqueue(a, format!("a{i}"), &mut tasks);
            while pool.waiting() < i + 1 {
                tokio::task::yield_now().await;
            }
        }
        let quitter = {
            let p = pool.clone();
            tokio::spawn(async move { p.turn(a).await.map(|_| ()) })
        };
        while pool.waiting() < 11 {
            tokio::task::yield_now().await;
        }
        quitter.abort();
        // ...then one from another address.
        enqueue(b, "b".into(), &mut tasks);
        while pool.waiting() < 12 {
            tokio::task::yield_now().await;
        }
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(order.len(), 11, "{order:?}");
        let pos = order.iter().position(|n| n == "b").unwrap();
        assert_eq!(pos, 1, "b waits for one of a's checks, not ten: {order:?}");
        // Every turn came back: the pool is free again.
        assert!(pool.turn(b).await.is_some());
        assert_eq!(pool.waiting(), 0);
    }

    #[test]
    fn basic_header_parsing() {
        let hv = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(
            parse_basic(Some(&hv("Basic YWxpY2U6cDpx"))),
            Some(("alice".into(), b"p:q".to_vec()))
        );
        assert_eq!(
            parse_basic(Some(&hv("basic YWxpY2U6"))),
            Some(("alice".into(), Vec::new()))
        );
        for bad in [
            "Bearer YWxpY2U6cA==",
            "Basic !!!",
            "Basic YWxpY2U=",
            "Basic",
            "",
        ] {
            assert_eq!(parse_basic(Some(&hv(bad))), None, "{bad}");
        }
        assert_eq!(parse_basic(None), None);
    }
}
