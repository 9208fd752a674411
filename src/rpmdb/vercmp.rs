//! rpm's version ordering: `rpmvercmp` (rpm lib/rpmvercmp.c, with `~` and `^`) and the EVR
//! comparison built on it (`rpmVersionCompare`: epoch, then version, then release).
//!
//! Only ASCII letters and digits form segments; every other byte separates them (so `1.0` and
//! `1_0` are equal). `~` sorts before anything, even the end of the string (`1.0~rc1 < 1.0`);
//! `^` sorts after the end of the string but before any other segment (`1.0 < 1.0^git1 < 1.0.1`).

use std::cmp::Ordering;

use super::types::Package;

/// rpm's `rpmvercmp(a, b)` as an [`Ordering`].
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0usize, 0usize);
    let sep = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    while i < a.len() || j < b.len() {
        while i < a.len() && sep(a[i]) {
            i += 1;
        }
        while j < b.len() && sep(b[j]) {
            j += 1;
        }
        let (ca, cb) = (a.get(i).copied(), b.get(j).copied());
        // Tilde: before everything else, the end of the string included.
        if ca == Some(b'~') || cb == Some(b'~') {
            if ca != Some(b'~') {
                return Ordering::Greater;
            }
            if cb != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        // Caret: like tilde, except that the end of the string sorts before it.
        if ca == Some(b'^') || cb == Some(b'^') {
            if ca.is_none() {
                return Ordering::Less;
            }
            if cb.is_none() {
                return Ordering::Greater;
            }
            if ca != Some(b'^') {
                return Ordering::Greater;
            }
            if cb != Some(b'^') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        let (Some(ca), Some(_)) = (ca, cb) else {
            break;
        };
        let numeric = ca.is_ascii_digit();
        let class = |c: u8| {
            if numeric {
                c.is_ascii_digit()
            } else {
                c.is_ascii_alphabetic()
            }
        };
        let (si, sj) = (i, j);
        while i < a.len() && class(a[i]) {
            i += 1;
        }
        while j < b.len() && class(b[j]) {
            j += 1;
        }
        // `a`'s segment is never empty (it starts with ca); `b`'s is when the types differ:
        // numeric segments are newer than alphabetic ones.
        if sj == j {
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let (mut sa, mut sb) = (&a[si..i], &b[sj..j]);
        if numeric {
            while sa.first() == Some(&b'0') {
                sa = &sa[1..];
            }
            while sb.first() == Some(&b'0') {
                sb = &sb[1..];
            }
            match sa.len().cmp(&sb.len()) {
                Ordering::Equal => {}
                other => return other,
            }
        }
        match sa.cmp(sb) {
            Ordering::Equal => {}
            other => return other,
        }
    }
    match (i >= a.len(), j >= b.len()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}

/// rpm's EVR order: epoch (absent = 0), then version, then release, each with [`rpmvercmp`].
pub fn evr_cmp(a: (Option<u32>, &str, &str), b: (Option<u32>, &str, &str)) -> Ordering {
    a.0.unwrap_or(0)
        .cmp(&b.0.unwrap_or(0))
        .then_with(|| rpmvercmp(a.1, b.1))
        .then_with(|| rpmvercmp(a.2, b.2))
}

/// [`evr_cmp`] of two installed packages.
pub fn package_evr_cmp(a: &Package, b: &Package) -> Ordering {
    evr_cmp(
        (a.epoch, &a.version, &a.release),
        (b.epoch, &b.version, &b.release),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values from Debian's rpm 4.20 (`rpm --eval '%{lua: print(rpm.vercmp(a, b))}'`),
    /// most of them rpm's own tests/rpmvercmp.at cases.
    const CASES: &[(&str, &str, i32)] = &[
        ("1.0", "1.0", 0),
        ("1.0", "2.0", -1),
        ("2.0.1", "2.0", 1),
        ("2.0.1a", "2.0.1", 1),
        ("5.5p1", "5.5p2", -1),
        ("5.5p10", "5.5p1", 1),
        ("10xyz", "10.1xyz", -1),
        ("xyz10", "xyz10.1", -1),
        ("xyz.4", "8", -1),
        ("xyz.4", "2", -1),
        ("5.5p2", "5.6p1", -1),
        ("5.6p1", "6.5p1", -1),
        ("6.0.rc1", "6.0", 1),
        ("10b2", "10a1", 1),
        ("10a2", "10b2", -1),
        ("1.0aa", "1.0a", 1),
        ("10.0001", "10.1", 0),
        ("10.0001", "10.0039", -1),
        ("4.999.9", "5.0", -1),
        ("20101121", "20101122", -1),
        ("2_0", "2_0", 0),
        ("2.0", "2_0", 0),
        ("a+", "a+", 0),
        ("a+", "a_", 0),
        ("+a", "+a", 0),
        ("+a", "_a", 0),
        ("+_", "_+", 0),
        ("1.0~rc1", "1.0", -1),
        ("1.0~rc1", "1.0~rc2", -1),
        ("1.0~rc1~git123", "1.0~rc1", -1),
        ("1.0^", "1.0", 1),
        ("1.0^git1", "1.0", 1),
        ("1.0^git1", "1.01", -1),
        ("1.0^git1", "1.0.1", -1),
        ("1.0^20160101", "1.0^20160102", -1),
        ("1.0^git1~pre", "1.0^git1", -1),
        ("1.0~rc1^git1", "1.0~rc1", 1),
        ("1.0^git1", "1.0^git1~pre", 1),
        ("1.0~rc1^git1", "1.0", -1),
        ("1.0^git1", "1.0~rc1", 1),
        ("~1", "1", -1),
        ("1a", "1b", -1),
        ("01", "1", 0),
        ("1", "999^", -1),
        ("1a", "1.a", 0),
        ("4321", "4.3.2.1", 1),
        ("2.1", "2.0~", 1),
        ("1.0^", "1.0^", 0),
        ("1.0~", "1.0^", -1),
        ("a", "1", -1),
    ];

    fn sign(o: Ordering) -> i32 {
        match o {
            Ordering::Less => -1,
            Ordering::Equal => 0,
            Ordering::Greater => 1,
        }
    }

    #[test]
    fn matches_rpm() {
        for &(a, b, want) in CASES {
            assert_eq!(sign(rpmvercmp(a, b)), want, "rpmvercmp({a:?}, {b:?})");
            assert_eq!(sign(rpmvercmp(b, a)), -want, "rpmvercmp({b:?}, {a:?})");
        }
    }

    #[test]
    fn evr() {
        use Ordering::*;
        assert_eq!(evr_cmp((None, "1.0", "1"), (Some(0), "1.0", "1")), Equal);
        assert_eq!(evr_cmp((Some(1), "0.1", "1"), (None, "9.9", "9")), Greater);
        assert_eq!(evr_cmp((None, "1.0", "1"), (None, "1.0", "2")), Less);
        assert_eq!(evr_cmp((None, "1.1", "1"), (None, "1.0", "9")), Greater);
        assert_eq!(evr_cmp((None, "1.0", "1~rc"), (None, "1.0", "1")), Less);
    }
}
