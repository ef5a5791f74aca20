//! `/-/v1/search`: candidates come from the search markers' metadata; ranking is exact name,
//! then name prefix, then any other match, alphabetical within a tier.

use std::collections::BTreeMap;

use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub name: String,
    pub version: String,
    pub description: String,
    pub keywords: Vec<String>,
    pub date: String,
    pub publisher: String,
}

impl Summary {
    pub fn from_metadata(m: &BTreeMap<String, String>) -> Option<Summary> {
        let get = |k: &str| m.get(k).cloned().unwrap_or_default();
        Some(Summary {
            name: m.get("name")?.clone(),
            version: get("version"),
            description: get("description"),
            keywords: get("keywords").split(',').filter(|k| !k.is_empty()).map(str::to_string).collect(),
            date: get("date"),
            publisher: get("publisher"),
        })
    }

    /// 0 = exact name, 1 = name prefix, 2 = other match; `None` when it does not match.
    fn tier(&self, text: &str) -> Option<u8> {
        let name = self.name.to_lowercase();
        if name == text {
            Some(0)
        } else if name.starts_with(text) || name.strip_prefix('@').and_then(|n| n.split_once('/')).is_some_and(|(_, n)| n.starts_with(text)) {
            Some(1)
        } else if name.contains(text)
            || self.description.to_lowercase().contains(text)
            || self.keywords.iter().any(|k| k.to_lowercase().contains(text))
        {
            Some(2)
        } else {
            None
        }
    }
}

/// Ranks and pages the candidates into npm's search response.
pub fn search(candidates: Vec<Summary>, text: &str, size: usize, from: usize, now_iso: &str) -> Value {
    let text = text.trim().to_lowercase();
    let mut hits: Vec<(u8, Summary)> = candidates
        .into_iter()
        .filter_map(|s| s.tier(&text).map(|t| (t, s)))
        .collect();
    hits.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name)));
    let total = hits.len();
    let objects: Vec<Value> = hits
        .into_iter()
        .skip(from)
        .take(size)
        .map(|(tier, s)| {
            let score = 1.0 - f64::from(tier) * 0.25;
            let publisher = if s.publisher.is_empty() { json!({}) } else { json!({"username": s.publisher}) };
            json!({
                "package": {
                    "name": s.name,
                    "version": s.version,
                    "description": s.description,
                    "keywords": s.keywords,
                    "date": s.date,
                    "links": {},
                    "publisher": publisher,
                    "maintainers": [],
                },
                "score": {"final": score, "detail": {"quality": score, "popularity": score, "maintenance": score}},
                "searchScore": score,
            })
        })
        .collect();
    json!({"objects": objects, "total": total, "time": now_iso})
}

/// Whether a search response lists nothing (on this page).
pub fn is_empty(result: &Value) -> bool {
    result.get("objects").and_then(Value::as_array).is_none_or(Vec::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(name: &str, description: &str, keywords: &str) -> Summary {
        let mut m = BTreeMap::new();
        m.insert("name".to_string(), name.to_string());
        m.insert("description".to_string(), description.to_string());
        m.insert("keywords".to_string(), keywords.to_string());
        Summary::from_metadata(&m).unwrap()
    }

    #[test]
    fn ranks_exact_then_prefix_then_other() {
        let all = vec![
            s("zz-react-thing", "", ""),
            s("react-dom", "", ""),
            s("react", "", ""),
            s("preact", "uses React", ""),
            s("vue", "", "reactive"),
            s("unrelated", "", ""),
        ];
        let r = search(all, "React", 20, 0, "t");
        let names: Vec<&str> = r["objects"].as_array().unwrap().iter().map(|o| o["package"]["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["react", "react-dom", "preact", "vue", "zz-react-thing"]);
        assert_eq!(r["total"], 5);
    }

    #[test]
    fn scoped_names_match_by_prefix_of_their_basename_and_pages() {
        let all = vec![s("@acme/widget", "", ""), s("widget", "", ""), s("widgets", "", "")];
        let r = search(all, "widget", 1, 1, "t");
        assert_eq!(r["total"], 3);
        let names: Vec<&str> = r["objects"].as_array().unwrap().iter().map(|o| o["package"]["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["@acme/widget"]);
    }
}
