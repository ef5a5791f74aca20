//! Manifest documents read as far as the registry needs them: the OCI image manifest and image
//! index (OCI image spec v1.1, `manifest.md`, `image-index.md`, `descriptor.md`) and Docker's
//! Image Manifest V2 Schema 2 and manifest list.
//!
//! Nothing is parsed into a tree: fields the registry does not use are skipped with serde's
//! `IgnoredAny` (serde_json skips them without allocating), the strings kept are bounded, and
//! the descriptor lists stop at [`MAX_REFERENCES`] entries. So the memory a manifest costs
//! stays near its body size whatever its shape (a 4 MiB `[0,0,…]` parsed into a
//! `serde_json::Value` took ~190 MiB).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::names::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The manifest media types this registry stores and serves. OCI artifacts are image
/// manifests with an `artifactType` (image spec v1.1 `manifest.md`, "Guidelines for Artifact
/// Usage"); Docker schema 1 is not accepted.
pub const MANIFEST_TYPES: [&str; 4] = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// Docker Image Manifest V2 Schema 1, which pull-through caches may hold from old upstream
/// images: served, never accepted in a push.
pub const DOCKER_SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

fn essence(s: &str) -> &str {
    s.split(';').next().unwrap_or_default().trim()
}

/// The known manifest type `s` names (parameters and case ignored), as its canonical string.
pub fn known_type(s: &str) -> Option<&'static str> {
    MANIFEST_TYPES.into_iter().find(|t| t.eq_ignore_ascii_case(essence(s)))
}

/// Like [`known_type`], schema 1 included: what a stored manifest may be served as.
pub fn servable_type(s: &str) -> Option<&'static str> {
    known_type(s).or_else(|| DOCKER_SCHEMA1.into_iter().find(|t| t.eq_ignore_ascii_case(essence(s))))
}

/// Media types are at most 127 + 1 + 127 characters (RFC 6838 §4.2).
pub const MAX_MEDIA_TYPE: usize = 255;
/// Descriptors one manifest may list (layers plus child manifests). Each is checked with a
/// store read, and a Worker request may make ~1000 of those.
pub const MAX_REFERENCES: usize = 1000;
/// Annotations longer than this (as compact JSON) are not kept for the referrers listing:
/// they would not fit R2's 2 KiB of custom metadata beside the rest.
pub const MAX_ANNOTATIONS_KEPT: usize = 1024;

/// `type "/" subtype` with RFC 6838 §4.2 restricted names, no parameters.
pub fn valid_media_type(s: &str) -> bool {
    fn restricted(name: &str) -> bool {
        let b = name.as_bytes();
        !b.is_empty()
            && b.len() <= 127
            && b.first().is_some_and(u8::is_ascii_alphanumeric)
            && b.iter().all(|c| c.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(c))
    }
    match s.split_once('/') {
        Some((t, sub)) => restricted(t) && restricted(sub),
        None => false,
    }
}

/// At most `max` characters of a client's string, for error messages.
pub fn excerpt(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", s.get(..i).unwrap_or_default()),
        None => s.to_string(),
    }
}

/// A content descriptor (image spec `descriptor.md`), as far as the registry needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub digest: Digest,
    pub media_type: Option<String>,
    /// It lists `urls` (image spec `descriptor.md`: where the content may be downloaded).
    pub urls: bool,
}

impl Descriptor {
    /// A layer a registry need not hold: a non-distributable layer (image spec `layer.md`,
    /// the `…nondistributable…` media types; Docker's `…foreign…` layers), or one that names
    /// `urls` to fetch it from. Distribution accepts such manifests whose blobs were never
    /// pushed; every other descriptor is still checked.
    pub fn external(&self) -> bool {
        self.urls
            || self.media_type.as_deref().is_some_and(|m| {
                let m = m.to_ascii_lowercase();
                m.contains("nondistributable") || m.starts_with("application/vnd.docker.image.rootfs.foreign.")
            })
    }
}

/// What the registry reads of a manifest or index.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// `None` when missing or not an integer.
    pub schema_version: Option<i64>,
    pub media_type: Option<String>,
    pub config: Option<Descriptor>,
    pub layers: Vec<Descriptor>,
    pub manifests: Vec<Descriptor>,
    /// The document has a `manifests` member (an index, when it says nothing else).
    pub has_manifests: bool,
    pub subject: Option<Descriptor>,
    pub artifact_type: Option<String>,
    /// The `annotations` as compact JSON, when at most [`MAX_ANNOTATIONS_KEPT`] bytes.
    pub annotations: Option<String>,
}

impl Manifest {
    /// Parses a manifest body; the error is a sentence for the client (bounded in length).
    pub fn parse(bytes: &[u8]) -> Result<Manifest, String> {
        serde_json::from_slice::<Manifest>(bytes).map_err(|e| excerpt(&e.to_string(), 300))
    }

    /// The media type its shape implies when it names none: an index if it lists manifests.
    pub fn implied_type(&self) -> &'static str {
        if self.has_manifests {
            OCI_INDEX
        } else {
            OCI_MANIFEST
        }
    }
}

// ---- deserialisation, field by field, nothing kept that is not needed ----

/// A media type string, at most [`MAX_MEDIA_TYPE`] bytes.
struct MediaType(String);

impl<'de> Deserialize<'de> for MediaType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = MediaType;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a media type string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<MediaType, E> {
                if s.len() > MAX_MEDIA_TYPE {
                    return Err(E::custom(format!("media type {} is longer than {MAX_MEDIA_TYPE} characters", excerpt(s, 40))));
                }
                Ok(MediaType(s.to_string()))
            }
        }
        d.deserialize_str(V)
    }
}

/// An integer, or `None` for anything else (skipped without being kept).
struct LooseInt(Option<i64>);

impl<'de> Deserialize<'de> for LooseInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LooseInt;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<LooseInt, E> {
                Ok(LooseInt(Some(n)))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<LooseInt, E> {
                Ok(LooseInt(i64::try_from(n).ok()))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<LooseInt, E> {
                Ok(LooseInt(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<LooseInt, E> {
                Ok(LooseInt(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<LooseInt, E> {
                Ok(LooseInt(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<LooseInt, E> {
                Ok(LooseInt(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LooseInt, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(LooseInt(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LooseInt, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(LooseInt(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A non-empty array (of anything, skipped).
struct NonEmpty(bool);

impl<'de> Deserialize<'de> for NonEmpty {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NonEmpty;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NonEmpty, A::Error> {
                let mut any = false;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    any = true;
                }
                Ok(NonEmpty(any))
            }
            fn visit_unit<E: de::Error>(self) -> Result<NonEmpty, E> {
                Ok(NonEmpty(false))
            }
        }
        d.deserialize_any(V)
    }
}

/// A member name compared without keeping it.
enum Field {
    SchemaVersion,
    MediaType,
    Config,
    Layers,
    Manifests,
    Subject,
    ArtifactType,
    Annotations,
    Digest,
    Urls,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Field, E> {
                Ok(match s {
                    "schemaVersion" => Field::SchemaVersion,
                    "mediaType" => Field::MediaType,
                    "config" => Field::Config,
                    "layers" => Field::Layers,
                    "manifests" => Field::Manifests,
                    "subject" => Field::Subject,
                    "artifactType" => Field::ArtifactType,
                    "annotations" => Field::Annotations,
                    "digest" => Field::Digest,
                    "urls" => Field::Urls,
                    _ => Field::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

fn duplicate<E: de::Error>(name: &str) -> E {
    E::custom(format!("duplicate member {name}"))
}

impl<'de> Deserialize<'de> for Descriptor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Descriptor;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a descriptor object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Descriptor, A::Error> {
                let (mut digest, mut media_type, mut urls) = (None, None, None);
                while let Some(field) = map.next_key::<Field>()? {
                    match field {
                        Field::Digest => {
                            if digest.is_some() {
                                return Err(duplicate("digest"));
                            }
                            let s: Cow<'de, str> = map.next_value()?;
                            let d = Digest::parse(&s).ok_or_else(|| de::Error::custom(format!("unsupported digest {}", excerpt(&s, 80))))?;
                            digest = Some(d);
                        }
                        Field::MediaType => {
                            if media_type.is_some() {
                                return Err(duplicate("mediaType"));
                            }
                            media_type = Some(map.next_value::<MediaType>()?.0);
                        }
                        Field::Urls => urls = Some(map.next_value::<NonEmpty>()?.0),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                let digest = digest.ok_or_else(|| de::Error::custom("a descriptor has no digest"))?;
                Ok(Descriptor { digest, media_type, urls: urls.unwrap_or(false) })
            }
        }
        d.deserialize_map(V)
    }
}

/// A descriptor list, refused past [`MAX_REFERENCES`] entries as it is read.
struct Descriptors(Vec<Descriptor>);

impl<'de> Deserialize<'de> for Descriptors {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Descriptors;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of descriptors")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Descriptors, A::Error> {
                let mut out = Vec::new();
                while let Some(d) = seq.next_element::<Descriptor>()? {
                    if out.len() >= MAX_REFERENCES {
                        return Err(de::Error::custom(format!("more than {MAX_REFERENCES} descriptors in one list")));
                    }
                    out.push(d);
                }
                Ok(Descriptors(out))
            }
        }
        d.deserialize_seq(V)
    }
}

/// `annotations`: a map of strings to strings (image spec `annotations.md`), kept as compact
/// JSON only while it is short.
struct Annotations(Option<String>);

impl<'de> Deserialize<'de> for Annotations {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Annotations;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of strings to strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Annotations, A::Error> {
                let mut kept = Some(String::from("{"));
                while let Some((k, v)) = map.next_entry::<Cow<'de, str>, Cow<'de, str>>()? {
                    let Some(out) = kept.as_mut() else { continue };
                    // Escaping only lengthens: skip the work once it cannot fit.
                    if out.len() + k.len() + v.len() + 6 > MAX_ANNOTATIONS_KEPT {
                        kept = None;
                        continue;
                    }
                    if out.len() > 1 {
                        out.push(',');
                    }
                    let (k, v) = (serde_json::to_string(&*k), serde_json::to_string(&*v));
                    match (k, v) {
                        (Ok(k), Ok(v)) => {
                            out.push_str(&k);
                            out.push(':');
                            out.push_str(&v);
                        }
                        _ => kept = None,
                    }
                }
                Ok(Annotations(kept.map(|mut s| {
                    s.push('}');
                    s
                })
                .filter(|s| s.len() <= MAX_ANNOTATIONS_KEPT)))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for Manifest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Manifest;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a manifest object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Manifest, A::Error> {
                let mut m = Manifest::default();
                let mut seen = [false; 8];
                let mut once = |i: usize, name: &str| -> Result<(), A::Error> {
                    match seen.get_mut(i) {
                        Some(s) if !*s => {
                            *s = true;
                            Ok(())
                        }
                        _ => Err(duplicate(name)),
                    }
                };
                while let Some(field) = map.next_key::<Field>()? {
                    match field {
                        Field::SchemaVersion => {
                            once(0, "schemaVersion")?;
                            m.schema_version = map.next_value::<LooseInt>()?.0;
                        }
                        Field::MediaType => {
                            once(1, "mediaType")?;
                            m.media_type = map.next_value::<Option<MediaType>>()?.map(|t| t.0);
                        }
                        Field::Config => {
                            once(2, "config")?;
                            m.config = map.next_value::<Option<Descriptor>>()?;
                        }
                        Field::Layers => {
                            once(3, "layers")?;
                            m.layers = map.next_value::<Option<Descriptors>>()?.map(|l| l.0).unwrap_or_default();
                        }
                        Field::Manifests => {
                            once(4, "manifests")?;
                            m.has_manifests = true;
                            m.manifests = map.next_value::<Option<Descriptors>>()?.map(|l| l.0).unwrap_or_default();
                        }
                        Field::Subject => {
                            once(5, "subject")?;
                            m.subject = map.next_value::<Option<Descriptor>>()?;
                        }
                        Field::ArtifactType => {
                            once(6, "artifactType")?;
                            m.artifact_type = map.next_value::<Option<MediaType>>()?.map(|t| t.0);
                        }
                        Field::Annotations => {
                            once(7, "annotations")?;
                            m.annotations = map.next_value::<Option<Annotations>>()?.and_then(|a| a.0);
                        }
                        Field::Digest | Field::Urls | Field::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                if m.layers.len() + m.manifests.len() > MAX_REFERENCES {
                    return Err(de::Error::custom(format!("more than {MAX_REFERENCES} descriptors")));
                }
                Ok(m)
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn reads_what_the_registry_needs_and_skips_the_rest() {
        let doc = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/vnd.example+json",
            "config":{{"mediaType":"application/vnd.oci.empty.v1+json","size":2,"digest":"{}","extra":[[[1]]]}},
            "layers":[{{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar","digest":"{}","urls":["https://x"]}}],
            "subject":{{"digest":"{}"}},"annotations":{{"a":"1","b":"\u00e9"}},"unknown":{{"deep":[1,2,{{}}]}}}}"#,
            d('a'),
            d('b'),
            d('c')
        );
        let m = Manifest::parse(doc.as_bytes()).unwrap();
        assert_eq!(m.schema_version, Some(2));
        assert_eq!(m.media_type.as_deref(), Some(OCI_MANIFEST));
        assert_eq!(m.config.as_ref().map(|c| c.digest.to_string()), Some(d('a')));
        assert!(m.layers.first().is_some_and(Descriptor::external));
        assert_eq!(m.subject.map(|s| s.digest.to_string()), Some(d('c')));
        assert_eq!(m.annotations.as_deref(), Some("{\"a\":\"1\",\"b\":\"é\"}"));
        assert!(!m.has_manifests);
    }

    #[test]
    fn refuses_what_it_cannot_bound() {
        for bad in [
            "[]".to_string(),
            "{\"layers\":[{}]}".to_string(),
            format!("{{\"mediaType\":\"a/{}\"}}", "x".repeat(300)),
            "{\"schemaVersion\":2,\"schemaVersion\":2}".to_string(),
            format!("{{\"x\":{}", "[".repeat(1000)),
            "{\"annotations\":{\"a\":1}}".to_string(),
            format!("{{\"layers\":[{}]}}", vec![format!("{{\"digest\":\"{}\"}}", d('a')); MAX_REFERENCES + 1].join(",")),
        ] {
            assert!(Manifest::parse(bad.as_bytes()).is_err(), "{}", excerpt(&bad, 60));
        }
        // Deep nesting in a member that is skipped costs a byte per level, and is fine.
        let deep = format!("{{\"schemaVersion\":2,\"x\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(Manifest::parse(deep.as_bytes()).map(|m| m.schema_version), Ok(Some(2)));
        let long = format!("{{\"annotations\":{{\"a\":\"{}\"}}}}", "x".repeat(MAX_ANNOTATIONS_KEPT));
        assert_eq!(Manifest::parse(long.as_bytes()).map(|m| m.annotations), Ok(None));
    }

    #[test]
    fn media_types() {
        assert!(valid_media_type("application/vnd.oci.image.manifest.v1+json"));
        assert!(!valid_media_type("application/json; charset=utf-8"));
        assert!(!valid_media_type("text"));
        assert!(!valid_media_type(&format!("a/{}", "b".repeat(128))));
        assert_eq!(known_type("application/vnd.oci.image.index.v1+json; x=y"), Some(OCI_INDEX));
        assert_eq!(known_type("text/html"), None);
    }
}
