//! The signing key id of an OpenPGP signature packet (RFC 4880 / RFC 9580), which is all
//! atomic-reactor keeps of rpm's `%{SIGPGP:pgpsig}` text ("..., Key ID 199e2f91fd431d51").
//!
//! Only the packet structure is read; nothing is verified. v3 packets carry the key id at a fixed
//! place; v4 and v6 carry it in subpackets: the first issuer key id (type 16) in the hashed, then
//! the unhashed area, as rpm's own parser takes it; failing that the issuer fingerprint (type 33),
//! whose key id is the last 8 bytes of a v4 and the first 8 bytes of a v5/v6 fingerprint.

use super::error::PgpError;

const SIG_TAG: u8 = 2;
const SUB_ISSUER: u8 = 16;
const SUB_ISSUER_FPR: u8 = 33;

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PgpError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or(PgpError::Truncated(self.pos))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, PgpError> {
        Ok(self.take(1)?[0])
    }
    fn be(&mut self, n: usize) -> Result<usize, PgpError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0usize, |acc, &x| (acc << 8) | usize::from(x)))
    }
}

/// The body of the first packet, which must be a signature.
fn signature_body(packet: &[u8]) -> Result<&[u8], PgpError> {
    let mut c = Cursor { b: packet, pos: 0 };
    let first = c.u8()?;
    if first & 0x80 == 0 {
        return Err(PgpError::NotPacket(first));
    }
    let (tag, len) = if first & 0x40 == 0 {
        let tag = (first >> 2) & 0x0f;
        let len = match first & 3 {
            0 => c.be(1)?,
            1 => c.be(2)?,
            2 => c.be(4)?,
            // Indeterminate: the packet runs to the end of the data.
            _ => packet.len() - c.pos,
        };
        (tag, len)
    } else {
        let tag = first & 0x3f;
        let o1 = usize::from(c.u8()?);
        let len = match o1 {
            0..=191 => o1,
            192..=223 => ((o1 - 192) << 8) + usize::from(c.u8()?) + 192,
            255 => c.be(4)?,
            // Partial body lengths never occur in a detached signature.
            _ => return Err(PgpError::NotPacket(first)),
        };
        (tag, len)
    };
    if tag != SIG_TAG {
        return Err(PgpError::NotSignature(tag));
    }
    c.take(len)
}

/// Scans one subpacket area; returns the first issuer key id and the first issuer-derived id.
/// What one subpacket area says about the issuer.
#[derive(Default)]
struct Issuer {
    key_id: Option<[u8; 8]>,
    from_fingerprint: Option<[u8; 8]>,
}

fn scan_area(area: &[u8], base: usize) -> Result<Issuer, PgpError> {
    let mut c = Cursor { b: area, pos: 0 };
    let mut found = Issuer::default();
    while c.pos < area.len() {
        let at = base + c.pos;
        let o1 = usize::from(c.u8()?);
        let len = match o1 {
            0..=191 => o1,
            192..=254 => ((o1 - 192) << 8) + usize::from(c.u8()?) + 192,
            _ => c.be(4)?,
        };
        if len == 0 {
            return Err(PgpError::Subpacket(at));
        }
        let sub = c.take(len).map_err(|_| PgpError::Subpacket(at))?;
        let (typ, data) = (sub[0] & 0x7f, &sub[1..]);
        // An issuer subpacket of an unknown shape is skipped, as rpm skips it, rather than
        // hiding a good one elsewhere in the packet.
        match typ {
            SUB_ISSUER if found.key_id.is_none() => found.key_id = data.try_into().ok(),
            SUB_ISSUER_FPR if found.from_fingerprint.is_none() => {
                found.from_fingerprint = match data {
                    [4, fpr @ ..] if fpr.len() == 20 => fpr[12..].try_into().ok(),
                    [5 | 6, fpr @ ..] if fpr.len() == 32 => fpr[..8].try_into().ok(),
                    _ => None,
                };
            }
            _ => {}
        }
    }
    Ok(found)
}

/// The 8-byte key id of the key that made `packet`, a binary OpenPGP signature packet as stored
/// in rpm's SIGPGP, SIGGPG, DSAHEADER and RSAHEADER tags.
pub fn key_id(packet: &[u8]) -> Result<[u8; 8], PgpError> {
    let body = signature_body(packet)?;
    let mut c = Cursor { b: body, pos: 0 };
    let version = c.u8()?;
    match version {
        2 | 3 => {
            // version, hashed length (always 5), type, creation time[4], key id[8], ...
            if c.u8()? != 5 {
                return Err(PgpError::BadV3);
            }
            c.take(5)?;
            let id = c.take(8)?;
            id.try_into().map_err(|_| PgpError::BadV3)
        }
        4..=6 => {
            // version, type, public-key algorithm, hash algorithm, then the two areas whose
            // lengths are 2 bytes in v4 and 4 bytes in v5/v6.
            c.take(3)?;
            let width = if version == 4 { 2 } else { 4 };
            let mut found = Issuer::default();
            for _ in 0..2 {
                let len = c.be(width)?;
                let base = c.pos;
                let area = scan_area(c.take(len)?, base)?;
                found.key_id = found.key_id.or(area.key_id);
                found.from_fingerprint = found.from_fingerprint.or(area.from_fingerprint);
            }
            found
                .key_id
                .or(found.from_fingerprint)
                .ok_or(PgpError::NoIssuer)
        }
        other => Err(PgpError::Version(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn old_packet(body: &[u8]) -> Vec<u8> {
        let mut p = vec![0x89, (body.len() >> 8) as u8, body.len() as u8];
        p.extend_from_slice(body);
        p
    }

    fn v4(hashed: &[u8], unhashed: &[u8]) -> Vec<u8> {
        let mut b = vec![4, 0, 1, 8];
        b.extend_from_slice(&(hashed.len() as u16).to_be_bytes());
        b.extend_from_slice(hashed);
        b.extend_from_slice(&(unhashed.len() as u16).to_be_bytes());
        b.extend_from_slice(unhashed);
        b.extend_from_slice(&[0xab, 0xcd, 0, 8, 0xff]);
        old_packet(&b)
    }

    const ID: [u8; 8] = [0x19, 0x9e, 0x2f, 0x91, 0xfd, 0x43, 0x1d, 0x51];

    #[test]
    fn v3_fixed_position() {
        let mut b = vec![3, 5, 0, 1, 2, 3, 4];
        b.extend_from_slice(&ID);
        b.extend_from_slice(&[1, 8, 0xaa, 0xbb, 0, 8, 0xff]);
        assert_eq!(key_id(&old_packet(&b)), Ok(ID));
    }

    #[test]
    fn v4_issuer_in_unhashed_area_after_fingerprint() {
        // gpg's layout: fingerprint and time hashed, key id unhashed. The key id wins, and here
        // it deliberately differs from the fingerprint's tail to show which one was taken.
        let mut fpr = vec![22, 33, 4];
        fpr.extend_from_slice(&[0x11; 12]);
        fpr.extend_from_slice(&[0x22; 8]);
        let hashed = [fpr, vec![5, 2, 0, 0, 0, 1]].concat();
        let unhashed = [vec![9, 16], ID.to_vec()].concat();
        assert_eq!(key_id(&v4(&hashed, &unhashed)), Ok(ID));
    }

    #[test]
    fn odd_fingerprint_does_not_hide_the_issuer() {
        // A fingerprint of an unknown key version 9: 1 type + 1 version + 31 bytes.
        let hashed = [vec![33, 33, 9], vec![0; 31]].concat();
        let unhashed = [vec![9, 16], ID.to_vec()].concat();
        assert_eq!(key_id(&v4(&hashed, &unhashed)), Ok(ID));
    }

    #[test]
    fn v4_fingerprint_only_uses_last_8_bytes() {
        let mut fpr = vec![22, 0x80 | 33, 4];
        fpr.extend_from_slice(&[0x11; 12]);
        fpr.extend_from_slice(&ID);
        assert_eq!(key_id(&v4(&fpr, &[])), Ok(ID));
    }

    #[test]
    fn v6_fingerprint_uses_first_8_bytes_and_4_byte_lengths() {
        let mut fpr = vec![34, 33, 6];
        fpr.extend_from_slice(&ID);
        fpr.extend_from_slice(&[0x33; 24]);
        let mut b = vec![6, 0, 27, 10];
        b.extend_from_slice(&(fpr.len() as u32).to_be_bytes());
        b.extend_from_slice(&fpr);
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&[0xab, 0xcd, 16]);
        b.extend_from_slice(&[0; 16]);
        // New-format header, one-byte length.
        let mut p = vec![0xc2, b.len() as u8];
        p.extend_from_slice(&b);
        assert_eq!(key_id(&p), Ok(ID));
    }

    #[test]
    fn new_format_two_byte_length() {
        let mut b = vec![3, 5, 0, 1, 2, 3, 4];
        b.extend_from_slice(&ID);
        b.resize(300, 0);
        let len = b.len() - 192;
        let mut p = vec![0xc2, (len >> 8) as u8 + 192, len as u8];
        p.extend_from_slice(&b);
        assert_eq!(key_id(&p), Ok(ID));
    }

    #[test]
    fn malformed_packets_are_errors() {
        assert_eq!(key_id(&[]), Err(PgpError::Truncated(0)));
        assert_eq!(key_id(&[0x41]), Err(PgpError::NotPacket(0x41)));
        // A public-key packet (tag 6).
        assert_eq!(key_id(&[0x99, 0, 1, 4]), Err(PgpError::NotSignature(6)));
        // Length beyond the data.
        assert!(matches!(
            key_id(&[0x89, 0xff, 0xff, 4]),
            Err(PgpError::Truncated(_))
        ));
        assert_eq!(key_id(&old_packet(&[7, 0, 0])), Err(PgpError::Version(7)));
        assert_eq!(key_id(&old_packet(&[3, 4])), Err(PgpError::BadV3));
        // Area length past the body.
        assert!(key_id(&old_packet(&[4, 0, 1, 8, 0xff, 0xff])).is_err());
        // Zero-length subpacket, and a subpacket running past its area.
        assert!(matches!(
            key_id(&v4(&[0], &[])),
            Err(PgpError::Subpacket(_))
        ));
        assert!(matches!(
            key_id(&v4(&[9, 16, 1], &[])),
            Err(PgpError::Subpacket(_))
        ));
        // Issuer of the wrong length (skipped, so none is left); no issuer at all.
        assert_eq!(key_id(&v4(&[3, 16, 1, 2], &[])), Err(PgpError::NoIssuer));
        assert_eq!(
            key_id(&v4(&[5, 2, 0, 0, 0, 1], &[])),
            Err(PgpError::NoIssuer)
        );
        // A 4-byte subpacket length of 4 GiB.
        assert!(key_id(&v4(&[255, 0xff, 0xff, 0xff, 0xff], &[])).is_err());
    }

    /// Real RPM signature packets with the key ids rpm prints for them (the `Test_parseRSA`
    /// vectors of go-rpmdb and syft): a v3 RSA/SHA1 one and two v4 RSA/SHA256 ones.
    #[test]
    fn known_answers() {
        let cases = [
            (
                concat!(
                    "89021503050058d3e39b0946fca2c105b9de0102b12a1000a2b3d347b51142e83b2de5e03ba9096f6330b72c",
                    "140e46200d662b01c78534d14fab2ad4f07325119386830dd590219f27a22e420680283c500c40e6fba95404",
                    "884b0a0abca8f198030ddc03653b7db2883b8230687e9e73d43eb5a24dbabfa48bbb3d1151ed264744e5e8ca",
                    "169b0c4673a1440a9b99e53e693c9722f6423833cd7795e3044227fb922e21b7c007f03e923fae3f04d1ac2e",
                    "8581e68c6790115b6dccfc02c8cb41681ed84785df086d6e26008c257d088a524ba2e7a7a5f41ad26b106c67",
                    "b87fe48118b69662db612c23d2140059286f1ba7764627def6867ad0e11fe3a01fb1422dabe6f5cdf4cd876d",
                    "c4fadfd2364bc3ba3758db94aaf3b82368cba65cf762287f713eb7ddc773acf93b083c739577a7eaf1f99e7d",
                    "cbb8db1da050490e9fb67c838448db060a9e619d318c96f03e4363808d84ce29e8c102c290cc2bfab5746f3d",
                    "9ddc9eb8b428f3ad2678abb2d46e846ddca7fc41322d76a97be6d416b4750f23320ec725e082be4496483b4c",
                    "d3a3d2c515b3c8a6e27541139d809245140303877b84842ed2dd0454a78b2dfb7d6213784697077a8167942e",
                    "bda5995a28d8256957e33e301706c35944ae05c7a54a4dd89be654d26cefa5cf0f616bbeaf317138371b09c5",
                    "bbd5531f716020e553354ce5dbce3d9bb72f21e1857408dfd5a35250ff40f61ae1e25409ae9d21db76b88783",
                    "41f4762a22be2189",
                ),
                "0946fca2c105b9de",
            ),
            (
                concat!(
                    "89024a04000108003416210421cb256ae16fc54c6e652949702d426d350d275d050262804369161c72656c65",
                    "6e6740726f636b796c696e75782e6f7267000a0910702d426d350d275dc8910ffd14f0f80297481fea648e7b",
                    "a5a74bce10c5faccc2bbe588caece04be34d304a6a445538afc97a7033d43c983d27cc8f5ee515b2dd92f3e0",
                    "3354c413e55372a4d19386eb0f2354f9a26ee5fc2e56dfda49555e4a58b49279b70cd2036b04f28125f85942",
                    "f640f2984e29e079f26bf6f76831d83d95983aa084a3e7b6327be2e23d0d799c4b4d1cfb36147ddfb782bf9d",
                    "f7b331d97f4f46b38f968b6130d87b0ef6bb0d424390fe34e38092babed37440569a93f55f50a2bdb58be025",
                    "9f35badf7e728bd49824ed47f69fa53b6e26736bde4d8358d959b090e88054c3e179745dc7377e41b54b4e10",
                    "223f4859e88162c7c5ec64b78d36cf8a914c1c2deb8c4f19a70d406e70756a89195d6aee488a9b40b9dbb76b",
                    "2c38e528eb88d08ec35774a48ed9ce4e0dfac45cb7613ad5921f54c61d3aae5d7b3ab0e2e6ff867ac8f395b3",
                    "7af78b5c01022a4a4e62f7a99425fccb7439880cd6b393a3050b2e9512693bc36f6fe9de2921dda59710a150",
                    "8965065244cf9f0f8cfc5bd554777f1a84d2249339234d62f2441249f617ad7df4fb01367a91d3a880e86fdb",
                    "84bc6d03a127b44a28c6ceadef89e438db9640aa59b8a3f460b07272511f8187a5f3b163c8fd1caa61667401",
                    "bce2ccdb1c176c46be10ef8033903132cca5889fa3661b2fba590c41fa1c104c08426677bdbf745a52ccd28f",
                    "581960cf9d7e4ede3b9584aacb2f20ef93",
                ),
                "702d426d350d275d",
            ),
            (
                concat!(
                    "8901b304000108001d162104d4bf08ae67a0b4c7a1dbccd240bca2b408b40d20050265943dc4000a091040bc",
                    "a2b408b40d203b270bff71678ffeb190833a19a82112f59eee64cba186ab454d4526e0b3c8797e723f6916da",
                    "ff1b1f18cbf53c0da5d398a3a42065e79e5ca939f721652f38400dd4cac1107a902b1dae880649437ad02424",
                    "44f3f07115172cae0a207b7cf8340af2f4a94976325f1dc165d5c2a564be322c4e130adb6217e7138b689f08",
                    "898c407b223aa1ff8f8d592f31eba2256c02fae70ce4022d688a487972646b8bf1b518b5d6549c1e60fd8121",
                    "34422d9fdb41cf799f5eab80e48b4ab7cff84362dc867ed1af1416dd78e92bcc59217de7064b9a015d94a509",
                    "7788689b9b6fbdeea679cfe4a6947f73dc3a6c810f2cb999d279b01564422d1500fc1bd8bd1eefa2d6066012",
                    "7ffef24067354660f93c0faf81f4edd599dd7e4b77fe4bff6c7a0ea83530c817c38d1f2364175883c6ef7b6d",
                    "ec86ad282bdd5138b8597567db96810c4ed6454a4ab1d98f0425dcd8892a5d46ed9289cb3ae3e1f1e2663d3e",
                    "8188e873428f6cf7163563ed3860edc4fee81522389508847e692e2d13310eb4b40f7fdd7eb364a0b2dc",
                ),
                "40bca2b408b40d20",
            ),
        ];
        for (packet, want) in cases {
            assert_eq!(hexid(key_id(&hexbytes(packet)).unwrap()), want);
        }
    }

    fn hexbytes(s: &str) -> Vec<u8> {
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    fn hexid(b: [u8; 8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
