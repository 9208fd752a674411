//! `metadata.json` for `CGImport`, shaped as atomic-reactor writes it for container images
//! (reference: containerbuild-plugin.md §4): `build` with `extra.image` and `typeinfo.image`, one
//! buildroot per arch, a `docker-image` output per arch with its RPM components, and the logs.
//!
//! Our additions sit under keys Koji stores but does not interpret (`extra.containerbuild`), so
//! the file stays importable by a stock Koji hub.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// The content generator name (`koji grant-cg-access USER atomic-reactor`), as OSBS uses it, so
/// hubs configured for OSBS accept our imports unchanged.
pub const CONTENT_GENERATOR: &str = "atomic-reactor";

/// The whole document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub metadata_version: u32,
    pub build: BuildInfo,
    pub buildroots: Vec<Buildroot>,
    pub output: Vec<Json>,
}

/// `build`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildInfo {
    pub name: String,
    pub version: String,
    pub release: String,
    /// `<git url>#<commit>`.
    pub source: String,
    pub start_time: i64,
    pub end_time: i64,
    pub owner: String,
    /// The reserved build (`CGInitBuild`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_id: Option<i64>,
    pub extra: Json,
}

/// `build.extra.image.index`: the manifest list (or the single image) and its tags.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageIndex {
    pub tags: Vec<String>,
    pub floating_tags: Vec<String>,
    pub unique_tags: Vec<String>,
    /// `<registry>/<repo>@<digest>` first, then `<registry>/<repo>:<version>-<release>`.
    pub pull: Vec<String>,
    /// media type -> digest.
    pub digests: BTreeMap<String, String>,
}

/// One `buildroots` entry (one per arch, id = the builder host's name as atomic-reactor does).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Buildroot {
    pub id: String,
    pub arch: String,
    /// `(name, version)` of the tools that made the image (containerbuild, buildah).
    pub tools: Vec<(String, String)>,
    /// RPMs of the build host as rpm components (atomic-reactor lists the host's `rpm -qa`);
    /// empty for a host without an rpmdb, such as a Debian builder.
    pub components: Vec<Json>,
}

/// `extra.docker.layer_sizes` entry: a layer's diff_id and the size of its uncompressed tar, as
/// atomic-reactor reads them from the image's docker-archive (oldest layer first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSize {
    pub diff_id: String,
    pub size: u64,
}

/// `extra.docker` of an image output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DockerExtra {
    /// `sha256:<config digest>`.
    pub id: String,
    /// The base image's config digest, `sha256:...` (absent for `FROM scratch`).
    pub parent_id: Option<String>,
    /// `<reg>/<repo>:<unique>-<arch>` and `<reg>/<repo>@<manifest digest>`.
    pub repositories: Vec<String>,
    pub layer_sizes: Vec<LayerSize>,
    pub tags: Vec<String>,
    /// The image config blob, without `container_config`.
    pub config: Option<Json>,
    /// manifest media type -> digest.
    pub digests: BTreeMap<String, String>,
}

/// A `docker-image` output (the per-arch image archive).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageOutput {
    pub buildroot_id: String,
    pub filename: String,
    /// Directory of the file below the import directory (Koji's `relpath`).
    pub relpath: String,
    pub filesize: u64,
    /// md5, hex.
    pub checksum: String,
    pub arch: String,
    /// atomic-reactor's RPM components (`{type: rpm, name, version, release, epoch, arch,
    /// sigmd5, signature, module}`).
    pub components: Vec<Json>,
    pub docker: DockerExtra,
    /// Name of the per-layer RPM report task output, kept under `extra.containerbuild`.
    pub rpm_report: Option<String>,
}

/// A log output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogOutput {
    pub buildroot_id: String,
    pub filename: String,
    pub relpath: String,
    pub filesize: u64,
    pub checksum: String,
    /// `noarch` for the service's logs, the arch for a build log.
    pub arch: String,
}

impl Buildroot {
    pub fn to_json(&self) -> Json {
        serde_json::json!({
            "id": self.id,
            "host": {"os": Json::Null, "arch": self.arch},
            "content_generator": {"name": CONTENT_GENERATOR, "version": env!("CARGO_PKG_VERSION")},
            "container": {"type": "none", "arch": self.arch},
            "tools": self.tools.iter().map(|(n, v)| serde_json::json!({"name": n, "version": v})).collect::<Vec<_>>(),
            "components": self.components,
        })
    }
}

impl ImageOutput {
    pub fn to_json(&self) -> Json {
        let mut docker = serde_json::json!({
            "id": self.docker.id,
            "repositories": self.docker.repositories,
            "layer_sizes": self.docker.layer_sizes,
            "tags": self.docker.tags,
            "digests": self.docker.digests,
        });
        if let Some(p) = &self.docker.parent_id {
            docker["parent_id"] = Json::String(p.clone());
        }
        if let Some(c) = &self.docker.config {
            let mut c = c.clone();
            if let Some(o) = c.as_object_mut() {
                o.remove("container_config");
            }
            docker["config"] = c;
        }
        let mut extra = serde_json::json!({
            "image": {"arch": self.arch},
            "docker": docker,
        });
        if let Some(r) = &self.rpm_report {
            extra["containerbuild"] = serde_json::json!({"rpm_report": r});
        }
        serde_json::json!({
            "buildroot_id": self.buildroot_id,
            "filename": self.filename,
            "relpath": self.relpath,
            "filesize": self.filesize,
            "checksum": self.checksum,
            "checksum_type": "md5",
            "arch": self.arch,
            "type": "docker-image",
            "components": self.components,
            "extra": extra,
        })
    }
}

impl LogOutput {
    pub fn to_json(&self) -> Json {
        serde_json::json!({
            "buildroot_id": self.buildroot_id,
            "filename": self.filename,
            "relpath": self.relpath,
            "filesize": self.filesize,
            "checksum": self.checksum,
            "checksum_type": "md5",
            "arch": self.arch,
            "type": "log",
        })
    }
}

/// What `build.extra` needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageExtra {
    pub isolated: bool,
    pub parent_build_id: Option<i64>,
    /// Pull spec -> `{id, nvr}` of the parent images' Koji builds, or null when unknown.
    pub parent_image_builds: BTreeMap<String, Json>,
    pub parent_images: Vec<String>,
    pub yum_repourls: Vec<String>,
    pub index: Option<ImageIndex>,
    pub media_types: Vec<String>,
    pub container_koji_task_id: i64,
    pub submitter: String,
    pub userdata: Option<Json>,
}

impl ImageExtra {
    /// `build.extra` as atomic-reactor writes it.
    pub fn to_json(&self) -> Json {
        let mut image = serde_json::json!({
            "isolated": self.isolated,
            "parent_image_builds": self.parent_image_builds,
            "parent_images": self.parent_images,
            "yum_repourls": self.yum_repourls,
            "media_types": self.media_types,
        });
        if let Some(id) = self.parent_build_id {
            image["parent_build_id"] = Json::from(id);
        }
        if let Some(i) = &self.index {
            image["index"] = serde_json::to_value(i).unwrap_or(Json::Null);
        }
        // `extra.image` is the image build type's legacy typeinfo: Koji refuses it together
        // with `typeinfo.image` ("Duplicate typeinfo"), and readers such as atomic-reactor's
        // inject_parent_image look at `extra.image.index.pull`.
        let mut extra = serde_json::json!({
            "image": image,
            "osbs_build": {"kind": "container_build", "engine": "buildah", "subtypes": []},
            "submitter": self.submitter,
            "container_koji_task_id": self.container_koji_task_id,
        });
        if let Some(u) = &self.userdata {
            extra["custom_user_metadata"] = u.clone();
        }
        extra
    }
}

impl Metadata {
    pub fn new(
        build: BuildInfo,
        buildroots: &[Buildroot],
        images: &[ImageOutput],
        logs: &[LogOutput],
    ) -> Metadata {
        let mut output: Vec<Json> = images.iter().map(ImageOutput::to_json).collect();
        output.extend(logs.iter().map(LogOutput::to_json));
        Metadata {
            metadata_version: 0,
            build,
            buildroots: Vec::new(),
            output,
        }
        .with_buildroots(buildroots)
    }

    fn with_buildroots(mut self, brs: &[Buildroot]) -> Metadata {
        self.buildroots = brs.to_vec();
        self
    }

    /// The JSON document (buildroots in Koji's shape).
    pub fn to_json(&self) -> Json {
        let mut build = serde_json::to_value(&self.build).unwrap_or(Json::Null);
        if let Some(o) = build.as_object_mut()
            && o.get("build_id").is_some_and(Json::is_null)
        {
            o.remove("build_id");
        }
        serde_json::json!({
            "metadata_version": self.metadata_version,
            "build": build,
            "buildroots": self.buildroots.iter().map(Buildroot::to_json).collect::<Vec<_>>(),
            "output": self.output,
        })
    }

    /// atomic-reactor's file: JSON indented by 2.
    pub fn to_pretty(&self) -> String {
        serde_json::to_string_pretty(&self.to_json()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_builders_get_access_to_this_content_generator() {
        assert_eq!(
            CONTENT_GENERATOR,
            crate::store::provision::CONTENT_GENERATOR
        );
    }

    #[test]
    fn document_has_koji_shape() {
        let extra = ImageExtra {
            isolated: false,
            container_koji_task_id: 7,
            submitter: "b1".into(),
            index: Some(ImageIndex {
                tags: vec!["1.0-1".into()],
                pull: vec!["r/foo@sha256:00".into(), "r/foo:1.0-1".into()],
                ..ImageIndex::default()
            }),
            ..ImageExtra::default()
        };
        let md = Metadata::new(
            BuildInfo {
                name: "foo-container".into(),
                version: "1.0".into(),
                release: "1".into(),
                source: "git://h/foo#abc".into(),
                start_time: 1,
                end_time: 2,
                owner: "alice".into(),
                build_id: Some(5),
                extra: extra.to_json(),
            },
            &[Buildroot {
                id: "b1".into(),
                arch: "x86_64".into(),
                tools: vec![("buildah".into(), "1.28".into())],
                components: vec![],
            }],
            &[ImageOutput {
                buildroot_id: "b1".into(),
                filename: "docker-image-ab.x86_64.tar.gz".into(),
                relpath: "1/1".into(),
                filesize: 3,
                checksum: "00".into(),
                arch: "x86_64".into(),
                components: vec![serde_json::json!({"type": "rpm", "name": "bash"})],
                docker: DockerExtra {
                    id: "sha256:ab".into(),
                    parent_id: None,
                    repositories: vec![],
                    layer_sizes: vec![],
                    tags: vec![],
                    config: Some(serde_json::json!({"container_config": {}, "os": "linux"})),
                    digests: BTreeMap::new(),
                },
                rpm_report: Some("x86_64-rpm-manifest.json".into()),
            }],
            &[],
        );
        let j = md.to_json();
        assert_eq!(j["metadata_version"], 0);
        assert_eq!(j["build"]["build_id"], 5);
        assert_eq!(j["build"]["extra"]["image"]["index"]["tags"][0], "1.0-1");
        assert!(j["build"]["extra"].get("typeinfo").is_none());
        assert_eq!(j["build"]["extra"]["container_koji_task_id"], 7);
        assert_eq!(
            j["buildroots"][0]["content_generator"]["name"],
            CONTENT_GENERATOR
        );
        assert_eq!(j["output"][0]["type"], "docker-image");
        assert_eq!(j["output"][0]["checksum_type"], "md5");
        assert!(j["output"][0]["extra"]["docker"].get("parent_id").is_none());
        assert!(
            j["output"][0]["extra"]["docker"]["config"]
                .get("container_config")
                .is_none()
        );
        assert_eq!(
            j["output"][0]["extra"]["containerbuild"]["rpm_report"],
            "x86_64-rpm-manifest.json"
        );
        assert!(md.to_pretty().starts_with("{\n  \""));
    }

    #[test]
    fn docker_extra_and_buildroot_components_when_known() {
        let rpm = serde_json::json!({"type": "rpm", "name": "bash", "version": "5.2",
            "release": "1", "epoch": null, "arch": "x86_64", "sigmd5": "00",
            "signature": null, "module": null});
        let br = Buildroot {
            id: "x86_64-3".into(),
            arch: "x86_64".into(),
            tools: vec![],
            components: vec![rpm.clone()],
        }
        .to_json();
        assert_eq!(br["components"], serde_json::json!([rpm]));
        let out = ImageOutput {
            buildroot_id: "x86_64-3".into(),
            filename: "docker-image-ab.x86_64.tar.gz".into(),
            relpath: "3/3".into(),
            filesize: 3,
            checksum: "00".into(),
            arch: "x86_64".into(),
            components: vec![],
            docker: DockerExtra {
                id: "sha256:ab".into(),
                parent_id: Some("sha256:cd".into()),
                repositories: vec![],
                layer_sizes: vec![
                    LayerSize {
                        diff_id: "sha256:01".into(),
                        size: 4096,
                    },
                    LayerSize {
                        diff_id: "sha256:02".into(),
                        size: 1024,
                    },
                ],
                tags: vec![],
                config: Some(serde_json::json!({
                    "container_config": {"Cmd": ["sh"]},
                    "rootfs": {"type": "layers", "diff_ids": ["sha256:01", "sha256:02"]},
                })),
                digests: BTreeMap::new(),
            },
            rpm_report: None,
        }
        .to_json();
        let docker = &out["extra"]["docker"];
        assert_eq!(docker["parent_id"], "sha256:cd");
        assert_eq!(
            docker["layer_sizes"],
            serde_json::json!([
                {"diff_id": "sha256:01", "size": 4096},
                {"diff_id": "sha256:02", "size": 1024},
            ])
        );
        assert_eq!(
            docker["config"],
            serde_json::json!({"rootfs": {"type": "layers", "diff_ids": ["sha256:01", "sha256:02"]}})
        );
        assert!(out["extra"].get("containerbuild").is_none());
    }
}
