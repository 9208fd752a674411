//! Failed-login throttling for `login` and `sslLogin`: a sliding window of failures per user
//! name and per client address. Koji has none (it relies on Apache and Kerberos); a hub that
//! takes passwords itself must not let a client guess them at the speed of its CPU.
//!
//! Once a user or an address has `login_max_failures` failures within `login_failure_window`
//! seconds, further attempts are refused with AuthError before the password is checked, saying
//! how long to wait. A successful login clears only the failures of that user from that address:
//! failures another address caused stay counted, so an attacker cannot reset its window by
//! having the real user log in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::xmlrpc::Fault;

use super::Config;

/// Failures recorded in all; beyond this the oldest are dropped (bounds memory under a flood of
/// made-up user names from many addresses).
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
struct Inner {
    by_user: HashMap<String, Vec<(Instant, Option<IpAddr>)>>,
    by_ip: HashMap<IpAddr, Vec<(Instant, String)>>,
    entries: usize,
    last_sweep: Option<Instant>,
}

/// The hub's failed-login memory (in memory only: a restart forgets it).
#[derive(Default)]
pub struct LoginLimiter {
    inner: Mutex<Inner>,
}

struct Limits {
    max: usize,
    window: Duration,
}

fn limits(c: &Config) -> Option<Limits> {
    if c.login_max_failures == 0
        || !(c.login_failure_window.is_finite())
        || c.login_failure_window <= 0.0
    {
        return None;
    }
    Some(Limits {
        max: c.login_max_failures as usize,
        window: Duration::from_secs_f64(c.login_failure_window),
    })
}

/// Seconds to wait when `failures` (oldest first) hold `max` or more within the window: until
/// enough of them leave it that one more attempt is allowed.
fn over_limit<T>(failures: &[(Instant, T)], l: &Limits, now: Instant) -> Option<u64> {
    let recent: Vec<Instant> = failures
        .iter()
        .map(|e| e.0)
        .filter(|t| now.duration_since(*t) < l.window)
        .collect();
    (recent.len() >= l.max).then(|| wait_secs(recent[recent.len() - l.max], l.window, now))
}

/// Whole seconds until `oldest` leaves the window (at least 1).
fn wait_secs(oldest: Instant, window: Duration, now: Instant) -> u64 {
    let until = (oldest + window).saturating_duration_since(now);
    (until.as_secs_f64().ceil() as u64).max(1)
}

impl LoginLimiter {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refuses the attempt when `user` or `ip` has too many recent failures.
    pub fn check(&self, c: &Config, user: Option<&str>, ip: Option<IpAddr>) -> Result<(), Fault> {
        let Some(l) = limits(c) else { return Ok(()) };
        let now = Instant::now();
        let mut g = self.lock();
        g.sweep(now, l.window);
        if let Some(u) = user
            && let Some(wait) = g.by_user.get(u).and_then(|v| over_limit(v, &l, now))
        {
            return Err(Fault::auth(format!(
                "too many failed logins for user {u}; wait {wait} s before trying again"
            )));
        }
        if let Some(ip) = ip
            && let Some(wait) = g.by_ip.get(&ip).and_then(|v| over_limit(v, &l, now))
        {
            return Err(Fault::auth(format!(
                "too many failed logins from {ip}; wait {wait} s before trying again"
            )));
        }
        Ok(())
    }

    /// Counts a failed attempt against `user` (when known) and `ip`.
    pub fn failed(&self, c: &Config, user: Option<&str>, ip: Option<IpAddr>) {
        let Some(l) = limits(c) else { return };
        let now = Instant::now();
        let mut g = self.lock();
        g.sweep(now, l.window);
        if let Some(u) = user {
            g.by_user.entry(u.to_string()).or_default().push((now, ip));
            g.entries += 1;
        }
        if let Some(ip) = ip {
            g.by_ip
                .entry(ip)
                .or_default()
                .push((now, user.unwrap_or("").to_string()));
            g.entries += 1;
        }
        if g.entries > MAX_ENTRIES {
            g.drop_oldest(now, l.window);
        }
    }

    /// A successful login of `user` from `ip`: forgets that pair's failures, and no others.
    pub fn succeeded(&self, user: &str, ip: Option<IpAddr>) {
        let mut g = self.lock();
        let mut removed = 0;
        if let Some(v) = g.by_user.get_mut(user) {
            let before = v.len();
            v.retain(|e| e.1 != ip);
            removed += before - v.len();
            if v.is_empty() {
                g.by_user.remove(user);
            }
        }
        if let Some(ip) = ip
            && let Some(v) = g.by_ip.get_mut(&ip)
        {
            let before = v.len();
            v.retain(|e| e.1 != user);
            removed += before - v.len();
            if v.is_empty() {
                g.by_ip.remove(&ip);
            }
        }
        g.entries = g.entries.saturating_sub(removed);
    }
}

impl Inner {
    /// Drops expired failures, at most once per window.
    fn sweep(&mut self, now: Instant, window: Duration) {
        if self
            .last_sweep
            .is_some_and(|t| now.duration_since(t) < window)
        {
            return;
        }
        self.last_sweep = Some(now);
        self.by_user.retain(|_, v| {
            v.retain(|e| now.duration_since(e.0) < window);
            !v.is_empty()
        });
        self.by_ip.retain(|_, v| {
            v.retain(|e| now.duration_since(e.0) < window);
            !v.is_empty()
        });
        self.entries = self.by_user.values().map(Vec::len).sum::<usize>()
            + self.by_ip.values().map(Vec::len).sum::<usize>();
    }

    /// Over the memory bound: forget everything older than half the window.
    fn drop_oldest(&mut self, now: Instant, window: Duration) {
        self.last_sweep = None;
        self.sweep(now, window / 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max: u32, window: f64) -> Config {
        Config {
            login_max_failures: max,
            login_failure_window: window,
            ..Config::default()
        }
    }

    #[test]
    fn refuses_after_max_failures_per_user_and_per_address() {
        let c = cfg(3, 60.0);
        let l = LoginLimiter::default();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(l.check(&c, Some("alice"), Some(a)).is_ok());
            l.failed(&c, Some("alice"), Some(a));
        }
        let f = l.check(&c, Some("alice"), Some(b)).unwrap_err();
        assert_eq!(f.code, 1002);
        assert!(f.message.contains("for user alice; wait"), "{}", f.message);
        assert!(
            f.message.contains("60 s") || f.message.contains("59 s"),
            "{}",
            f.message
        );
        let f = l.check(&c, Some("bob"), Some(a)).unwrap_err();
        assert!(f.message.contains("from 127.0.0.1; wait"), "{}", f.message);
        assert!(l.check(&c, Some("bob"), Some(b)).is_ok());
    }

    #[test]
    fn success_clears_only_its_own_address() {
        let c = cfg(2, 60.0);
        let l = LoginLimiter::default();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        l.failed(&c, Some("alice"), Some(a));
        l.failed(&c, Some("alice"), Some(b));
        l.succeeded("alice", Some(a));
        assert!(l.check(&c, Some("alice"), Some(a)).is_ok());
        l.failed(&c, Some("alice"), Some(b));
        assert!(l.check(&c, Some("alice"), Some(a)).is_err());
    }

    #[test]
    fn zero_disables_and_the_window_expires() {
        let l = LoginLimiter::default();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let off = cfg(0, 60.0);
        for _ in 0..10 {
            l.failed(&off, Some("x"), Some(a));
        }
        assert!(l.check(&off, Some("x"), Some(a)).is_ok());
        let c = cfg(1, 0.05);
        l.failed(&c, Some("x"), Some(a));
        assert!(l.check(&c, Some("x"), Some(a)).is_err());
        std::thread::sleep(Duration::from_millis(80));
        assert!(l.check(&c, Some("x"), Some(a)).is_ok());
    }
}
