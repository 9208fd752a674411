//! placeholder
use crate::hub::Method;

pub fn methods() -> Vec<Method> {
    vec![]
}
