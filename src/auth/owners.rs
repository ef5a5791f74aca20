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

/// Why a caller may not go on: without a credential (the protocol answers with its own 401
/// challenge), or refused (403, the sentence to show the client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Anonymous,
    Denied(String),
}

impl Refusal {
    /// The error for the client: `unauthorized` (the protocol's 401) or a 403.
    pub fn into_error(self, unauthorized: impl FnOnce() -> crate::error::Error) -> crate::error::Error {
        match self {
            Refusal::Anonymous => unauthorized(),
            Refusal::Denied(why) => crate::error::Error::denied(why),
        }
    }
}

/// Read access to `name`: anyone when the protocol is readable anonymously, else a
/// credential whose scopes allow reading it.
pub fn read_access(principal: Option<&Principal>, anonymous_read: bool, protocol: Protocol, name: &str) -> Result<(), Refusal> {
    match principal {
        _ if anonymous_read => Ok(()),
        None => Err(Refusal::Anonymous),
        Some(p) if p.can(protocol, name, Action::Read) => Ok(()),
        Some(p) => Err(Refusal::Denied(format!("user {} may not read {name}", p.user))),
    }
}

/// Whom a write of `name` is for: an authenticated caller whose scopes allow `action`, with
/// whether it may write whoever owns the name. Ownership itself is the job's to check.
pub fn writer(principal: Option<&Principal>, protocol: Protocol, name: &str, action: Action) -> Result<Writer, Refusal> {
    match principal {
        None => Err(Refusal::Anonymous),
        Some(p) if p.can(protocol, name, action) => Ok(Writer { user: p.user.clone(), may_override: bypasses(p, protocol, name, action) }),
        Some(p) if p.readonly => Err(Refusal::Denied("this token is read-only".into())),
        Some(p) => Err(Refusal::Denied(format!("user {} may not {} {name}", p.user, action.as_str()))),
    }
}

/// An owner list the admin API sets (`PUT /-/admin/owners/{protocol}/{name}`): 1 to 100
/// users of this registry, each once, in the order given.
pub async fn admin_owner_list(auth: &super::Auth<'_>, new: Vec<String>) -> crate::error::Result<Vec<String>> {
    use crate::error::Error;
    if new.is_empty() || new.len() > 100 {
        return Err(Error::invalid("a name needs between 1 and 100 owners"));
    }
    let mut owners: Vec<String> = Vec::new();
    for user in new {
        let known = auth.user(&user).await.map_err(|e| e.into_error(|| Error::internal("user lookup failed")))?.is_some();
        if !known {
            return Err(Error::not_found(format!("no such user {user:?}")));
        }
        if !owners.contains(&user) {
            owners.push(user);
        }
    }
    Ok(owners)
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
    fn read_access_and_writers() {
        let alice = principal("alice", &[], false);
        assert_eq!(read_access(None, true, Protocol::Npm, "pkg"), Ok(()));
        assert_eq!(read_access(None, false, Protocol::Npm, "pkg"), Err(Refusal::Anonymous));
        assert_eq!(read_access(Some(&alice), false, Protocol::Npm, "pkg"), Ok(()));
        assert!(matches!(read_access(Some(&alice), false, Protocol::Cargo, "pkg"), Err(Refusal::Denied(_))));
        assert!(writer(Some(&alice), Protocol::Npm, "pkg", Action::Write).is_ok_and(|w| w.user == "alice" && !w.may_override));
        assert!(writer(Some(&principal("bob", &[], true)), Protocol::Npm, "pkg", Action::Write).is_ok_and(|w| w.may_override));
        assert_eq!(writer(None, Protocol::Npm, "pkg", Action::Write).unwrap_err(), Refusal::Anonymous);
        let readonly = Principal { readonly: true, ..alice.clone() };
        assert_eq!(writer(Some(&readonly), Protocol::Npm, "pkg", Action::Write).unwrap_err(), Refusal::Denied("this token is read-only".into()));
        assert_eq!(
            writer(Some(&alice), Protocol::Cargo, "pkg", Action::Write).unwrap_err(),
            Refusal::Denied("user alice may not write pkg".into())
        );
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
