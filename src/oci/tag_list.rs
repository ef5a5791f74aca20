//! Tag lists from upstream registries (distribution spec "Listing Tags"), checked and
//! renamed for the client.

use super::names::valid_tag;

/// The largest upstream tag list passed on (it is held twice: as read and as rewritten).
pub const MAX_UPSTREAM: u64 = 8 * 1024 * 1024;

/// An upstream's tag list (`{"name": …, "tags": [...]}`, distribution spec "Listing Tags") as
/// this registry answers it: named as the client named the repository, with the tags that are
/// valid tags. Anything else upstream (an array, tags that are not strings) is an error, not a
/// panic; the tags are copied as they are read, never held as a tree.
pub fn rewrite(bytes: &[u8], name: &str) -> Result<Vec<u8>, String> {
    use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::borrow::Cow;
    use std::fmt;

    /// Appends each valid tag to the output as a JSON string.
    struct Tags<'o>(&'o mut Vec<u8>);
    impl<'de> DeserializeSeed<'de> for Tags<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Tags<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of tags")
        }
        fn visit_unit<E: de::Error>(self) -> Result<(), E> {
            Ok(()) // `"tags": null`: none
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(tag) = seq.next_element::<Cow<'de, str>>()? {
                if !valid_tag(&tag) {
                    continue;
                }
                if self.0.last() != Some(&b'[') {
                    self.0.push(b',');
                }
                // A valid tag needs no escaping.
                self.0.push(b'"');
                self.0.extend_from_slice(tag.as_bytes());
                self.0.push(b'"');
            }
            Ok(())
        }
    }

    struct List<'o>(&'o mut Vec<u8>);
    impl<'de> Visitor<'de> for List<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a tag list object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = false;
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                if key == "tags" && !seen {
                    seen = true;
                    map.next_value_seed(Tags(&mut *self.0))?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(())
        }
    }

    let mut out = serde_json::to_vec(&serde_json::json!({ "name": name })).map_err(|e| e.to_string())?;
    out.pop(); // the closing brace
    out.extend_from_slice(b",\"tags\":[");
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.deserialize_map(List(&mut out)).map_err(|e| super::manifest::excerpt(&e.to_string(), 200))?;
    de.end().map_err(|e| e.to_string())?;
    out.extend_from_slice(b"]}");
    Ok(out)
}
