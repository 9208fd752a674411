//! Python call semantics for hub methods.
//!
//! Koji calls its Python functions with `*args, **kwargs`; a `TypeError` at that depth becomes
//! fault 1019 carrying Python's message, and the koji CLI matches on those messages to fall back
//! (e.g. "got an unexpected keyword argument"). So every method declares a Python signature,
//! binding follows Python's rules, and the errors use Python's wording. The same signature feeds
//! `_listapi` / `system.methodHelp`.

use super::fault::Fault;
use super::value::{Struct, Value};

/// One named parameter; `default` is the Python literal shown by `koji list-api`.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub default: Option<&'static str>,
}

/// A required parameter.
pub const fn req(name: &'static str) -> Param {
    Param {
        name,
        default: None,
    }
}

/// An optional parameter with its Python default literal.
pub const fn opt(name: &'static str, default: &'static str) -> Param {
    Param {
        name,
        default: Some(default),
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Signature {
    /// The full method name (`host.getID`); Python messages use the part after the last dot.
    pub name: &'static str,
    pub params: &'static [Param],
    pub varargs: Option<&'static str>,
    pub varkw: Option<&'static str>,
}

impl Signature {
    fn func(&self) -> &'static str {
        self.name.rsplit('.').next().unwrap_or(self.name)
    }

    /// Python's `inspect.signature` text, e.g. `(task_id, request=False, strict=False)`.
    pub fn argdesc(&self) -> String {
        let mut parts: Vec<String> = self
            .params
            .iter()
            .map(|p| match p.default {
                Some(d) => format!("{}={}", p.name, d),
                None => p.name.to_string(),
            })
            .collect();
        if let Some(v) = self.varargs {
            parts.push(format!("*{v}"));
        }
        if let Some(k) = self.varkw {
            parts.push(format!("**{k}"));
        }
        format!("({})", parts.join(", "))
    }

    /// Binds positional params (with Koji's trailing `__starstar` kwargs struct) to names.
    pub fn bind(&self, mut params: Vec<Value>) -> Result<Args, Fault> {
        let mut kwargs = match params.last() {
            Some(Value::Struct(s)) if s.get("__starstar").is_some_and(Value::truthy) => {
                let Some(Value::Struct(mut s)) = params.pop() else {
                    unreachable!()
                };
                s.remove("__starstar");
                s
            }
            _ => Struct::new(),
        };
        let f = self.func();
        let n = self.params.len();
        let mut values: Vec<Option<Value>> = vec![None; n];
        let mut varargs = Vec::new();
        let given = params.len();
        for (i, v) in params.into_iter().enumerate() {
            if i < n {
                values[i] = Some(v);
            } else if self.varargs.is_some() {
                varargs.push(v);
            } else {
                let required = self.params.iter().filter(|p| p.default.is_none()).count();
                let takes = if required == n {
                    format!("{n} positional argument{}", if n == 1 { "" } else { "s" })
                } else {
                    format!("from {required} to {n} positional arguments")
                };
                let were = if given == 1 { "was" } else { "were" };
                return Err(Fault::parameter(format!(
                    "{f}() takes {takes} but {given} {were} given"
                )));
            }
        }
        let mut extra = Struct::new();
        let keys: Vec<String> = kwargs.keys().map(str::to_string).collect();
        for k in keys {
            let v = kwargs.remove(&k).unwrap_or(Value::Nil);
            match self.params.iter().position(|p| p.name == k) {
                Some(i) if values[i].is_some() => {
                    return Err(Fault::parameter(format!(
                        "{f}() got multiple values for argument '{k}'"
                    )));
                }
                Some(i) => values[i] = Some(v),
                None if self.varkw.is_some() => extra.insert(k, v),
                None => {
                    return Err(Fault::parameter(format!(
                        "{f}() got an unexpected keyword argument '{k}'"
                    )));
                }
            }
        }
        let missing: Vec<&str> = self
            .params
            .iter()
            .zip(&values)
            .filter(|(p, v)| p.default.is_none() && v.is_none())
            .map(|(p, _)| p.name)
            .collect();
        if !missing.is_empty() {
            let quoted: Vec<String> = missing.iter().map(|m| format!("'{m}'")).collect();
            let list = match quoted.len() {
                1 => quoted[0].clone(),
                2 => format!("{} and {}", quoted[0], quoted[1]),
                k => format!("{}, and {}", quoted[..k - 1].join(", "), quoted[k - 1]),
            };
            let s = if missing.len() == 1 { "" } else { "s" };
            return Err(Fault::parameter(format!(
                "{f}() missing {} required positional argument{s}: {list}",
                missing.len()
            )));
        }
        Ok(Args {
            sig: *self,
            values,
            varargs,
            kwargs: extra,
        })
    }
}

/// Bound arguments with typed accessors. "Absent" and `None` are the same for optional
/// parameters, as they are for Koji's Python code.
#[derive(Debug, Clone)]
pub struct Args {
    sig: Signature,
    values: Vec<Option<Value>>,
    /// Extra positional arguments (`*args`).
    pub varargs: Vec<Value>,
    /// Extra keyword arguments (`**kwargs`).
    pub kwargs: Struct,
}

impl Args {
    fn index(&self, name: &str) -> usize {
        // A name not in the signature is a programming error caught by the registry test.
        self.sig
            .params
            .iter()
            .position(|p| p.name == name)
            .unwrap_or(usize::MAX)
    }

    /// The value given for `name`, `None` if absent or nil.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values
            .get(self.index(name))
            .and_then(Option::as_ref)
            .filter(|v| !v.is_nil())
    }

    /// Whether the caller passed `name` at all (even as nil).
    pub fn given(&self, name: &str) -> bool {
        self.values
            .get(self.index(name))
            .is_some_and(Option::is_some)
    }

    fn type_err(&self, name: &str, want: &str, got: &Value) -> Fault {
        Fault::parameter(format!(
            "{}(): invalid type for argument '{name}': expected {want}, got {}",
            self.sig.func(),
            got.type_name()
        ))
    }

    pub fn opt_int(&self, name: &str) -> Result<Option<i64>, Fault> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Int(i)) => Ok(Some(*i)),
            Some(Value::Bool(b)) => Ok(Some(i64::from(*b))),
            Some(Value::String(s)) if s.trim().parse::<i64>().is_ok() => Ok(s.trim().parse().ok()),
            Some(v) => Err(self.type_err(name, "int", v)),
        }
    }

    pub fn int(&self, name: &str) -> Result<i64, Fault> {
        self.opt_int(name)?.ok_or_else(|| {
            Fault::parameter(format!(
                "{}(): argument '{name}' must not be None",
                self.sig.func()
            ))
        })
    }

    pub fn opt_str(&self, name: &str) -> Result<Option<&str>, Fault> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.type_err(name, "str", v)),
        }
    }

    pub fn str(&self, name: &str) -> Result<&str, Fault> {
        self.opt_str(name)?.ok_or_else(|| {
            Fault::parameter(format!(
                "{}(): argument '{name}' must not be None",
                self.sig.func()
            ))
        })
    }

    /// Python truthiness with a default when the argument was not given at all.
    pub fn flag(&self, name: &str, default: bool) -> bool {
        match self.values.get(self.index(name)).and_then(Option::as_ref) {
            None => default,
            Some(v) => v.truthy(),
        }
    }

    /// A flag where `None` is a meaningful third state (e.g. `enabled=None` = do not filter).
    pub fn opt_flag(&self, name: &str) -> Option<bool> {
        self.get(name).map(Value::truthy)
    }

    pub fn opt_struct(&self, name: &str) -> Result<Option<&Struct>, Fault> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Struct(s)) => Ok(Some(s)),
            Some(v) => Err(self.type_err(name, "dict", v)),
        }
    }
}

/// A `&'static [Param]` from `req(..)` / `opt(..)` calls (const-evaluated, so it can live in a
/// method table).
#[macro_export]
macro_rules! params {
    ($($p:expr),* $(,)?) => {{
        const P: &[$crate::xmlrpc::sig::Param] = &[$($p),*];
        P
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIG: Signature = Signature {
        name: "getTaskInfo",
        params: &[
            req("task_id"),
            opt("request", "False"),
            opt("strict", "False"),
        ],
        varargs: None,
        varkw: None,
    };

    fn kw(pairs: &[(&str, Value)]) -> Value {
        let mut s = Struct::new();
        for (k, v) in pairs {
            s.insert(*k, v.clone());
        }
        s.insert("__starstar", true);
        Value::Struct(s)
    }

    #[test]
    fn python_messages() {
        let e = SIG
            .bind(vec![Value::Int(1), kw(&[("x", Value::Nil)])])
            .unwrap_err();
        assert_eq!(
            e.message,
            "getTaskInfo() got an unexpected keyword argument 'x'"
        );
        assert_eq!(e.code, 1019);
        let e = SIG.bind(vec![]).unwrap_err();
        assert_eq!(
            e.message,
            "getTaskInfo() missing 1 required positional argument: 'task_id'"
        );
        let e = SIG.bind(vec![Value::Int(1); 4]).unwrap_err();
        assert_eq!(
            e.message,
            "getTaskInfo() takes from 1 to 3 positional arguments but 4 were given"
        );
        let e = SIG
            .bind(vec![Value::Int(1), kw(&[("task_id", Value::Int(2))])])
            .unwrap_err();
        assert_eq!(
            e.message,
            "getTaskInfo() got multiple values for argument 'task_id'"
        );
        assert_eq!(SIG.argdesc(), "(task_id, request=False, strict=False)");
    }

    #[test]
    fn binds_kwargs() {
        let a = SIG
            .bind(vec![Value::Int(5), kw(&[("request", Value::Bool(true))])])
            .unwrap();
        assert_eq!(a.int("task_id").unwrap(), 5);
        assert!(a.flag("request", false));
        assert!(!a.flag("strict", false));
    }
}
