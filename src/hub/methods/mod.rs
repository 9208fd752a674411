//! The API methods, one module per area. Each module exports `methods()`; names, parameter names
//! and defaults are exactly Koji's, because clients pass keyword arguments by name.

pub mod records;
pub mod system;
pub mod tasks;
pub mod users;

use super::Method;

/// Every method the hub serves, in `system.listMethods` order.
pub fn all() -> Vec<Method> {
    let mut v = Vec::new();
    v.extend(system::methods());
    v.extend(users::methods());
    v.extend(tasks::methods());
    v.extend(records::methods());
    v
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_documented() {
        let mut seen = HashSet::new();
        for m in super::all() {
            assert!(seen.insert(m.sig.name), "duplicate method {}", m.sig.name);
            assert!(!m.doc.is_empty(), "method {} has no doc", m.sig.name);
        }
    }
}
