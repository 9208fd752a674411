//! HTTPS for the hub: the rustls server configuration (ring provider) and the verified client
//! certificate's subject as Koji's `sslLogin` reads it.
//!
//! Koji runs behind Apache, where `mod_ssl` verifies the client certificate and hands the hub
//! `SSL_CLIENT_VERIFY`, `SSL_CLIENT_S_DN` and `SSL_CLIENT_S_DN_<component>`. Here the hub
//! terminates TLS itself: a client certificate is requested on every connection and verified
//! against `--client-ca`, but it is optional at the handshake (Apache only requires it on
//! `/kojihub/ssllogin`), so anonymous calls and password logins keep working over HTTPS.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why the TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {detail}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error("{what} {path} holds no certificate")]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error("client CA {path}: {detail}")]
    ClientCa { path: PathBuf, detail: String },
    #[error("TLS settings: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("--tls-cert and --tls-key go together, and --client-ca needs both (got {0} alone)")]
    Incomplete(&'static str),
}

/// What a request over TLS knows of its connection (a request extension; absent over plain HTTP).
#[derive(Debug, Clone)]
pub struct TlsPeer {
    /// The client certificate, verified against the client CA (`SSL_CLIENT_VERIFY=SUCCESS`);
    /// `None` when the client sent none (`NONE`).
    pub client: Option<Arc<ClientCert>>,
}

/// The server settings the hub's config asks for: `None` for plain HTTP.
pub fn from_config(c: &super::Config) -> Result<Option<Arc<ServerConfig>>, TlsError> {
    match (&c.tls_cert, &c.tls_key) {
        (Some(cert), Some(key)) => server_config(cert, key, c.client_ca.as_deref()).map(Some),
        (Some(_), None) => Err(TlsError::Incomplete("--tls-cert")),
        (None, Some(_)) => Err(TlsError::Incomplete("--tls-key")),
        (None, None) if c.client_ca.is_some() => Err(TlsError::Incomplete("--client-ca")),
        (None, None) => Ok(None),
    }
}

/// The subject of a client certificate that passed verification against the client CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// `SSL_CLIENT_S_DN` as mod_ssl 2.4 writes it: RFC 2253, last RDN first
    /// (`CN=alice,O=Example`). `ProxyDNs` entries are compared with this string.
    pub dn: String,
    /// The subject's attributes in certificate order, by OpenSSL's short names (`CN`, `O`,
    /// `emailAddress`, …); `SSL_CLIENT_S_DN_<name>` is the first one of a name.
    pub attrs: Vec<(String, String)>,
}

impl ClientCert {
    /// `SSL_CLIENT_S_DN_<name>` (Koji's `DNUsernameComponent`); the name is matched without
    /// regard to case, so `cn` works as well as `CN`.
    pub fn component(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The subject of a DER certificate; `None` when it cannot be parsed (rustls verified it, so
    /// this only happens with exotic encodings).
    pub fn from_der(der: &[u8]) -> Option<ClientCert> {
        let rdns = subject_rdns(der)?;
        let attrs: Vec<(String, String)> = rdns.iter().flatten().cloned().collect();
        let dn = rdns
            .iter()
            .rev()
            .map(|rdn| {
                rdn.iter()
                    .map(|(k, v)| format!("{k}={}", rfc2253_escape(v)))
                    .collect::<Vec<_>>()
                    .join("+")
            })
            .collect::<Vec<_>>()
            .join(",");
        Some(ClientCert { dn, attrs })
    }
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |detail: String| TlsError::Pem {
        what,
        path: path.to_path_buf(),
        detail,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The rustls server settings for `--tls-cert`/`--tls-key` and, with `client_ca`, optional
/// client certificates verified against it. Only HTTP/1.1 is offered (the hub speaks nothing
/// else).
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = read_certs("certificate", cert)?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Pem {
        what: "private key",
        path: key.to_path_buf(),
        detail: e.to_string(),
    })?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let mut config = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in read_certs("client CA", ca)? {
                roots.add(c).map_err(|e| TlsError::ClientCa {
                    path: ca.to_path_buf(),
                    detail: e.to_string(),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::ClientCa {
                    path: ca.to_path_buf(),
                    detail: e.to_string(),
                })?;
            builder
                .with_client_cert_verifier(verifier)
                .with_single_cert(chain, key_der)?
        }
        None => builder
            .with_no_client_auth()
            .with_single_cert(chain, key_der)?,
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The first certificate of a PEM file, DER-encoded: what an embedded builder pins when it talks
/// to its own hub over HTTPS (the hub's certificate need not name the loopback address).
pub fn leaf_certificate(cert: &Path) -> Result<Vec<u8>, TlsError> {
    let certs = read_certs("certificate", cert)?;
    Ok(certs[0].as_ref().to_vec())
}

// --- A minimal DER reader for the certificate's subject --------------------------------------

/// One DER element: tag, contents, and the rest of the input after it.
fn der_next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut l = 0usize;
        for &b in &rest[..n] {
            l = (l << 8) | b as usize;
        }
        rest = &rest[n..];
        l
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;

/// The subject Name's RDNs in certificate order, each a list of (short name, value).
fn subject_rdns(cert: &[u8]) -> Option<Vec<Vec<(String, String)>>> {
    let (tag, cert_body, _) = der_next(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = der_next(cert_body)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut rest = tbs;
    // [0] EXPLICIT version, optional.
    if rest.first() == Some(&0xa0) {
        rest = der_next(rest)?.2;
    }
    // serialNumber, signature, issuer, validity, then the subject.
    for _ in 0..4 {
        rest = der_next(rest)?.2;
    }
    let (tag, name, _) = der_next(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut rdns = Vec::new();
    let mut rest = name;
    while !rest.is_empty() {
        let (tag, set, next) = der_next(rest)?;
        if tag != SET {
            return None;
        }
        let mut rdn = Vec::new();
        let mut inner = set;
        while !inner.is_empty() {
            let (tag, atv, after) = der_next(inner)?;
            if tag != SEQUENCE {
                return None;
            }
            let (tag, oid, value) = der_next(atv)?;
            if tag != OID {
                return None;
            }
            let (vtag, vbody, _) = der_next(value)?;
            rdn.push((oid_name(oid), der_string(vtag, vbody)));
            inner = after;
        }
        rdns.push(rdn);
        rest = next;
    }
    Some(rdns)
}

/// OpenSSL's short name of an attribute type, else the dotted OID.
fn oid_name(oid: &[u8]) -> String {
    let known: &[(&[u8], &str)] = &[
        (&[0x55, 0x04, 0x03], "CN"),
        (&[0x55, 0x04, 0x04], "SN"),
        (&[0x55, 0x04, 0x05], "serialNumber"),
        (&[0x55, 0x04, 0x06], "C"),
        (&[0x55, 0x04, 0x07], "L"),
        (&[0x55, 0x04, 0x08], "ST"),
        (&[0x55, 0x04, 0x09], "street"),
        (&[0x55, 0x04, 0x0a], "O"),
        (&[0x55, 0x04, 0x0b], "OU"),
        (&[0x55, 0x04, 0x0c], "title"),
        (&[0x55, 0x04, 0x2a], "GN"),
        (
            &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19],
            "DC",
        ),
        (
            &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01],
            "UID",
        ),
        (
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01],
            "emailAddress",
        ),
    ];
    if let Some((_, n)) = known.iter().find(|(o, _)| *o == oid) {
        return (*n).to_string();
    }
    dotted_oid(oid)
}

fn dotted_oid(oid: &[u8]) -> String {
    let mut parts: Vec<u64> = Vec::new();
    let mut v: u64 = 0;
    for &b in oid {
        v = (v << 7) | (b & 0x7f) as u64;
        if b & 0x80 == 0 {
            if parts.is_empty() {
                let first = (v / 40).min(2);
                parts.push(first);
                parts.push(v - first * 40);
            } else {
                parts.push(v);
            }
            v = 0;
        }
    }
    parts
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// An attribute value as text: the string types decoded, anything else as `#` and hex
/// (RFC 2253's form for values it cannot show).
fn der_string(tag: u8, body: &[u8]) -> String {
    match tag {
        // UTF8String, PrintableString, IA5String, NumericString, VisibleString
        0x0c | 0x13 | 0x16 | 0x12 | 0x1a => String::from_utf8_lossy(body).into_owned(),
        // T61String: in practice Latin-1.
        0x14 => body.iter().map(|&b| b as char).collect(),
        // BMPString: UTF-16BE.
        0x1e => {
            let units: Vec<u16> = body
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        // UniversalString: UTF-32BE.
        0x1c => body
            .chunks(4)
            .filter(|c| c.len() == 4)
            .map(|c| {
                char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])).unwrap_or('\u{fffd}')
            })
            .collect(),
        _ => {
            let mut s = String::from("#");
            for b in body {
                s.push_str(&format!("{b:02x}"));
            }
            s
        }
    }
}

/// RFC 2253 escaping of an attribute value.
fn rfc2253_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let n = v.chars().count();
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i + 1 == n && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        if body.len() < 0x80 {
            v.push(body.len() as u8);
        } else {
            v.push(0x82);
            v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        }
        v.extend_from_slice(body);
        v
    }

    fn atv(oid: &[u8], tag: u8, value: &str) -> Vec<u8> {
        let mut inner = tlv(OID, oid);
        inner.extend(tlv(tag, value.as_bytes()));
        tlv(SET, &tlv(SEQUENCE, &inner))
    }

    /// A certificate skeleton: only the fields the subject reader walks over.
    fn cert_with_subject(rdns: &[Vec<u8>]) -> Vec<u8> {
        let mut tbs = tlv(0xa0, &tlv(0x02, &[2]));
        tbs.extend(tlv(0x02, &[1, 2, 3]));
        tbs.extend(tlv(SEQUENCE, &tlv(OID, &[0x2a, 0x86, 0x48])));
        tbs.extend(tlv(SEQUENCE, &atv(&[0x55, 4, 3], 0x0c, "Test CA")));
        tbs.extend(tlv(SEQUENCE, &[]));
        tbs.extend(tlv(SEQUENCE, &rdns.concat()));
        tlv(SEQUENCE, &tlv(SEQUENCE, &tbs))
    }

    #[test]
    fn subject_in_rfc2253_order_and_components() {
        let der = cert_with_subject(&[
            atv(&[0x55, 4, 6], 0x13, "US"),
            atv(&[0x55, 4, 10], 0x0c, "Example, Inc."),
            atv(&[0x55, 4, 3], 0x0c, "alice"),
            atv(
                &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01],
                0x16,
                "alice@example.com",
            ),
        ]);
        let c = ClientCert::from_der(&der).expect("parse");
        assert_eq!(
            c.dn,
            "emailAddress=alice@example.com,CN=alice,O=Example\\, Inc.,C=US"
        );
        assert_eq!(c.component("CN"), Some("alice"));
        assert_eq!(c.component("cn"), Some("alice"));
        assert_eq!(c.component("emailAddress"), Some("alice@example.com"));
        assert_eq!(c.component("OU"), None);
    }

    #[test]
    fn unknown_attribute_types_and_truncated_input() {
        let der = cert_with_subject(&[atv(&[0x2b, 0x06, 0x01, 0x04, 0x01], 0x0c, "x")]);
        let c = ClientCert::from_der(&der).expect("parse");
        assert_eq!(c.dn, "1.3.6.1.4.1=x");
        assert!(ClientCert::from_der(&der[..der.len() - 3]).is_none());
        assert!(ClientCert::from_der(&[]).is_none());
    }
}
