//! The image layer walker: tar (plain, gzip or zstd) entries, whiteouts, links and the rpmdb
//! files found in them, read back from the merged tree.
//!
//! Input: one flag byte (bit 0: per-layer analysis with digests and drift, else final package
//! list only), then up to four layers separated by [`SEP`].
#![no_main]

use containerbuild::rpmdb::layers::{AnalyzeOptions, LayerInput, analyze};
use libfuzzer_sys::fuzz_target;

const SEP: &[u8] = b"\0--next-layer--\0";
const MAX_LAYERS: usize = 4;

fn split(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while out.len() + 1 < MAX_LAYERS {
        match data.windows(SEP.len()).position(|w| w == SEP) {
            Some(i) => {
                out.push(&data[..i]);
                data = &data[i + SEP.len()..];
            }
            None => break,
        }
    }
    out.push(data);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let opts = if flags & 1 == 1 {
        AnalyzeOptions::per_layer()
    } else {
        AnalyzeOptions::default()
    };
    let layers = split(rest).into_iter().map(|l| LayerInput {
        diff_id: None,
        created_by: None,
        reader: Box::new(l),
    });
    let _ = analyze(layers, opts);
});
