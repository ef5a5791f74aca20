//! Who may change a package or repository, for every protocol.
//!
//! The model is the ecosystems' own (npm maintainers, cargo and gem owners, PyPI roles, a
//! container repository's first pusher): the first publisher of a name becomes its owner, and
//! every later write needs one of
//! * ownership (the user is in the name's owner list),
//! * an admin credential (the `ADMIN_TOKEN` secret or an admin token), or
//! * a grant: a token an admin made through the admin API with a scope naming the package
//!   (`npm:package:@corp/*:write`), for CI robots and teams.
//!
//! Token scopes limit what a credential may do at all; ownership limits what its user may do.
//! Effective permission is both. Each protocol keeps the owner list where its ecosystem does
//! (npm: the packument's `maintainers`; OCI: the repository record) and asks [`check`].

use super::{Action, Principal};
use crate::config::Protocol;

/// Who asks for a change that a serialised job makes: the job checks ownership again under
/// the name's lock (npm's packument, PyPI's project record), with the user and whether they
/// may write whoever owns the name.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Writer {
    pub user: String,
    /// An admin credential or an admin-granted scope naming the package ([`bypasses`]).
    pub may_override: bool,
}

/// Whether `principal` may write `name` whoever owns it: an admin credential, or a grant
/// naming the package.
pub fn bypasses(principal: &Principal, protocol: Protocol, name: &str, action: Action) -> bool {
    principal.admin
        || principal
            .grants
            .iter()
            .any(|g| g.allows(protocol.as_str(), protocol.resource_type(), name, action))
}

/// May `principal` do `action` (a write) on `name`, whose owners are `owners`? An empty list
/// means nobody owns it yet: the caller is about to become its first owner. The error is the
/// sentence to show the client.
pub fn check(principal: &Principal, protocol: Protocol, name: &str, action: Action, owners: &[String]) -> Result<(), String> {
    if owns(&principal.user, owners) || bypasses(principal, protocol, name, action) {
        return Ok(());
    }
    Err(format!("user {} is not an owner of {name}", principal.user))
}

/// Whether `user` is one of `owners`, or nobody owns the name yet (empty list).
pub fn owns(user: &str, owners: &[String]) -> bool {
    owners.is_empty() || owners.iter().any(|o| o == user)
}

/// Per-user namespaces (an option for container repositories): `alice/…` belongs to alice.
/// Whether `user` may write `name` under that rule.
pub fn in_own_namespace(user: &str, name: &str) -> bool {
    name.split_once('/').is_some_and(|(first, _)| first == user)
}

/// Owner lists in object metadata: comma-separated user names (names cannot hold commas).
pub fn encode(owners: &[String]) -> String {
    owners.join(",")
}

pub fn decode(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{CredentialKind, Scope};

    fn principal(user: &str, grants: &[&str], admin: bool) -> Principal {
        Principal {
            user: user.into(),
            token_key: None,
            kind: CredentialKind::Token,
            scopes: Scope::parse("npm:*:*:*").into_iter().collect(),
            grants: grants.iter().filter_map(|g| Scope::parse(g)).collect(),
            readonly: false,
            admin,
        }
    }

    #[test]
    fn owners_admins_and_grants_may_write() {
        let owners = vec!["alice".to_string()];
        let check = |p: &Principal, name: &str| check(p, Protocol::Npm, name, Action::Write, &owners);
        assert!(check(&principal("alice", &[], false), "pkg").is_ok());
        assert_eq!(check(&principal("bob", &[], false), "pkg"), Err("user bob is not an owner of pkg".into()));
        assert!(check(&principal("bob", &[], true), "pkg").is_ok());
        assert!(check(&principal("bob", &["npm:package:pkg:write"], false), "pkg").is_ok());
        assert!(check(&principal("bob", &["npm:package:other:write"], false), "pkg").is_err());
        assert!(check(&principal("bob", &["npm:package:pkg:read"], false), "pkg").is_err());
        assert!(check(&principal("bob", &["oci:repository:pkg:push"], false), "pkg").is_err());
        // Nobody owns a new name yet.
        assert!(super::check(&principal("bob", &[], false), Protocol::Npm, "new", Action::Write, &[]).is_ok());
    }

    #[test]
    fn namespaces_and_encoding() {
        assert!(in_own_namespace("alice", "alice/app"));
        assert!(in_own_namespace("alice", "alice/a/b"));
        assert!(!in_own_namespace("alice", "alice"));
        assert!(!in_own_namespace("alice", "alicex/app"));
        assert!(!in_own_namespace("alice", "bob/alice"));
        assert_eq!(decode(&encode(&["a".into(), "b".into()])), vec!["a", "b"]);
        assert!(decode("").is_empty());
    }
}
