//! The Dockerfile reader as a build uses it: parse, evaluate the final stage's labels (ARG/ENV
//! expansion), pick the required labels, and rewrite the file (labels added, base replaced,
//! release env).
#![no_main]

use containerbuild::build::dockerfile::{self, Dockerfile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(d) = Dockerfile::parse(text) else {
        return;
    };
    let _ = d.parent_images();
    let _ = d.base_image();
    if let Ok(labels) = d.labels() {
        let _ = dockerfile::image_labels(&labels, None);
        let _ = dockerfile::image_labels(&labels, Some("7"));
    }
    let added = dockerfile::add_labels(text, &[("release".into(), "1 2\"\\$x".into())]);
    let _ = Dockerfile::parse(&added);
    let _ = dockerfile::replace_last_from(text, "registry.example/base:1");
    let _ = dockerfile::add_release_env(text, "RELEASE", "3");
});
