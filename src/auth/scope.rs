//! Scope strings `{protocol}:{type}:{name}:{action}` and how a granted scope covers a request.
//!
//! The name is everything between the type and the action, so names may hold `/` and `:`.
//! `*` matches any segment; inside a name it is a glob (`@company/*`). Actions: `read` ≡ `pull`,
//! `write` ≡ `push`; `write` implies `read` and `delete`; `*` implies everything.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Write,
    Delete,
}

impl Action {
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::Delete => "delete",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub protocol: String,
    pub resource_type: String,
    pub name: String,
    pub action: String,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Scope> {
        let (protocol, rest) = s.split_once(':')?;
        let (resource_type, rest) = rest.split_once(':')?;
        let (name, action) = rest.rsplit_once(':')?;
        if [protocol, resource_type, action].iter().any(|p| p.is_empty()) || name.split(':').any(str::is_empty) {
            return None;
        }
        if !matches!(action, "*" | "read" | "pull" | "write" | "push" | "delete") {
            return None;
        }
        Some(Scope {
            protocol: protocol.to_string(),
            resource_type: resource_type.to_string(),
            name: name.to_string(),
            action: action.to_string(),
        })
    }

    /// Does this granted scope allow `action` on `{protocol}:{resource_type}:{name}`?
    pub fn allows(&self, protocol: &str, resource_type: &str, name: &str, action: Action) -> bool {
        (self.protocol == "*" || self.protocol == protocol)
            && (self.resource_type == "*" || self.resource_type == resource_type)
            && glob_match(&self.name, name)
            && action_implies(&self.action, action)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}:{}", self.protocol, self.resource_type, self.name, self.action)
    }
}

fn action_implies(granted: &str, wanted: Action) -> bool {
    match granted {
        "*" => true,
        "write" | "push" => true,
        "read" | "pull" => wanted == Action::Read,
        "delete" => wanted == Action::Delete,
        _ => false,
    }
}

/// `*` matches any run of characters (including `/`); everything else literally.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while let Some(tc) = t.get(ti) {
        match p.get(pi) {
            Some('*') => {
                star = Some(pi);
                mark = ti;
                pi += 1;
            }
            Some(pc) if pc == tc => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some(s) => {
                    pi = s + 1;
                    mark += 1;
                    ti = mark;
                }
                None => return false,
            },
        }
    }
    p.iter().skip(pi).all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(scope: &str, proto: &str, ty: &str, name: &str, a: Action) -> bool {
        Scope::parse(scope).unwrap().allows(proto, ty, name, a)
    }

    #[test]
    fn parses_names_with_colons_and_slashes() {
        let s = Scope::parse("maven:artifact:com.example:lib:read").unwrap();
        assert_eq!(s.name, "com.example:lib");
        assert_eq!(Scope::parse("oci:repository:library/nginx:pull").unwrap().name, "library/nginx");
        assert!(Scope::parse("npm:package:x").is_none());
        assert!(Scope::parse("npm:package:x:fly").is_none());
        assert!(Scope::parse("npm::x:read").is_none());
    }

    #[test]
    fn wildcards_and_globs() {
        assert!(allows("npm:*:*:*", "npm", "package", "left-pad", Action::Write));
        assert!(!allows("npm:*:*:*", "pypi", "package", "requests", Action::Read));
        assert!(allows("*:*:*:*", "pypi", "package", "requests", Action::Delete));
        assert!(allows("npm:package:@company/*:write", "npm", "package", "@company/ui", Action::Write));
        assert!(!allows("npm:package:@company/*:write", "npm", "package", "@other/ui", Action::Write));
        assert!(!allows("npm:package:express:read", "npm", "package", "express-x", Action::Read));
        assert!(allows("npm:package:a*c:read", "npm", "package", "abbbc", Action::Read));
    }

    #[test]
    fn action_implications() {
        assert!(allows("npm:package:x:write", "npm", "package", "x", Action::Read));
        assert!(allows("npm:package:x:write", "npm", "package", "x", Action::Delete));
        assert!(allows("oci:repository:x:push", "oci", "repository", "x", Action::Read));
        assert!(allows("oci:repository:x:pull", "oci", "repository", "x", Action::Read));
        assert!(!allows("oci:repository:x:pull", "oci", "repository", "x", Action::Write));
        assert!(!allows("npm:package:x:read", "npm", "package", "x", Action::Write));
        assert!(!allows("npm:package:x:delete", "npm", "package", "x", Action::Write));
        assert!(allows("npm:package:x:delete", "npm", "package", "x", Action::Delete));
    }
}
