//! Layer compression, recognised by magic bytes rather than media types (docker-archive members
//! and some registries do not say): gzip (any number of members, as pigz and our own archive
//! writer produce), zstd (any number of frames, skippable frames included, as `zstd:chunked`
//! writes), or a plain tar. Decoders are streaming and pure Rust; memory stays bounded by the
//! zstd window (at most [`ZSTD_MAX_WINDOW`]), whatever the layer size.

use std::io::{self, BufRead, BufReader, Read};

use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

/// Largest zstd window accepted (ruzstd's default limit): a frame asking for more is an error
/// instead of an allocation an image chooses.
pub const ZSTD_MAX_WINDOW: u64 = 128 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// The compression of a stream from its first bytes. bzip2 and xz (never used for OCI layers by
/// the tools we meet) are errors, as is anything else that is not a tar: a tar header has no
/// magic at byte 0, so "not compressed" is the fallback and the tar reader judges the rest.
pub fn detect(head: &[u8]) -> io::Result<Compression> {
    if head.starts_with(&[0x1f, 0x8b]) {
        return Ok(Compression::Gzip);
    }
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) || is_skippable_magic(head) {
        return Ok(Compression::Zstd);
    }
    if head.starts_with(b"BZh") || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bzip2/xz compressed layers are not supported",
        ));
    }
    Ok(Compression::None)
}

fn is_skippable_magic(head: &[u8]) -> bool {
    head.len() >= 4 && head[1..4] == [0x2a, 0x4d, 0x18] && head[0] & 0xf0 == 0x50
}

/// Wraps `r` in the decoder its first bytes call for.
pub fn decompress<'a>(r: Box<dyn Read + 'a>) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut buf = BufReader::with_capacity(64 * 1024, r);
    // A tar header has no magic at byte 0, so a short first fill can only make a compressed
    // stream look like a tar, which the tar reader then refuses.
    let kind = detect(buf.fill_buf()?)?;
    let out: Box<dyn Read + 'a> = match kind {
        Compression::None => Box::new(buf),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buf)),
        Compression::Zstd => Box::new(ZstdReader::new(buf)),
    };
    Ok((kind, out))
}

enum ZState {
    /// Between frames: the next bytes are a frame header, a skippable frame or the end.
    Start,
    InFrame,
    Done,
}

/// A zstd stream of any number of frames (the `zstd` tool and `zstd:chunked` write several),
/// decoded block by block.
pub struct ZstdReader<R: BufRead> {
    src: R,
    dec: FrameDecoder,
    state: ZState,
}

impl<R: BufRead> ZstdReader<R> {
    pub fn new(src: R) -> Self {
        let mut dec = FrameDecoder::new();
        dec.set_max_window_size(ZSTD_MAX_WINDOW);
        ZstdReader {
            src,
            dec,
            state: ZState::Start,
        }
    }
}

fn zerr(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}"))
}

impl<R: BufRead> Read for ZstdReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state {
                ZState::Done => return Ok(0),
                ZState::Start => {
                    let head = self.src.fill_buf()?;
                    if head.is_empty() {
                        self.state = ZState::Done;
                        continue;
                    }
                    if head.len() < 8 && is_skippable_magic(head) {
                        // A skippable frame header split across buffer refills: read it whole.
                        let mut h = [0u8; 8];
                        self.src.read_exact(&mut h)?;
                        let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
                        skip(&mut self.src, u64::from(len))?;
                        continue;
                    }
                    if is_skippable_magic(head) {
                        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
                        self.src.consume(8);
                        skip(&mut self.src, u64::from(len))?;
                        continue;
                    }
                    self.dec.reset(&mut self.src).map_err(zerr)?;
                    self.state = ZState::InFrame;
                }
                ZState::InFrame => {
                    while self.dec.can_collect() == 0 && !self.dec.is_finished() {
                        self.dec
                            .decode_blocks(&mut self.src, BlockDecodingStrategy::UptoBlocks(1))
                            .map_err(zerr)?;
                    }
                    let n = self.dec.read(out)?;
                    if n > 0 {
                        return Ok(n);
                    }
                    if self.dec.is_finished() && self.dec.can_collect() == 0 {
                        self.state = ZState::Start;
                    }
                }
            }
        }
    }
}

fn skip<R: Read>(r: &mut R, n: u64) -> io::Result<()> {
    let copied = io::copy(&mut r.take(n), &mut io::sink())?;
    if copied < n {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "zstd: truncated skippable frame",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn data() -> Vec<u8> {
        (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    fn roundtrip(compressed: Vec<u8>) -> (Compression, Vec<u8>) {
        let (kind, mut r) = decompress(Box::new(io::Cursor::new(compressed))).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        (kind, out)
    }

    #[test]
    fn gzip_members() {
        let d = data();
        let mut gz = Vec::new();
        for part in d.chunks(100_000) {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(part).unwrap();
            gz.extend(e.finish().unwrap());
        }
        assert_eq!(roundtrip(gz), (Compression::Gzip, d));
    }

    #[test]
    fn zstd_frames_and_skippable_frames() {
        let d = data();
        let mut z = Vec::new();
        // A skippable frame first (zstd:chunked puts its manifest in one at the end).
        z.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]);
        for part in d.chunks(70_000) {
            z.extend(ruzstd::encoding::compress_to_vec(
                part,
                ruzstd::encoding::CompressionLevel::Fastest,
            ));
            z.extend_from_slice(&[0x5e, 0x2a, 0x4d, 0x18, 0, 0, 0, 0]);
        }
        assert_eq!(roundtrip(z), (Compression::Zstd, d));
    }

    #[test]
    fn plain_and_refused() {
        assert_eq!(
            roundtrip(b"plain tar bytes".to_vec()),
            (Compression::None, b"plain tar bytes".to_vec())
        );
        assert!(detect(b"BZh91AY").is_err());
        let bad = [0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff];
        let (_, mut r) = decompress(Box::new(io::Cursor::new(bad.to_vec()))).unwrap();
        assert!(r.read_to_end(&mut Vec::new()).is_err());
    }
}
