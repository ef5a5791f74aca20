//! Who may write a repository: token scopes, and ownership. A repository belongs to its first
//! pusher (the owner list lives in the custom metadata of its record, `keys::repository`,
//! written create-only so two first pushes cannot both win); every write needs an owner, an
//! admin credential or an admin-granted scope naming the repository (`auth::owners`). With
//! `OCI_USER_NAMESPACES=true` users write only under their own name (`alice/…`).

use std::collections::BTreeMap;

use super::errors::DENIED;
use super::names::{keys, Repository};
use super::Ctx;
use crate::auth::{owners, Action, CredentialKind, Principal};
use crate::config::{Config, Protocol};
use crate::error::{Error, Result};
use crate::http::Body;
use crate::platform::{Condition, ObjectMeta, ObjectStore, PutOutcome};

/// The custom-metadata member holding a repository's owners.
const OWNERS: &str = "owners";

/// The repository's record and its owners (`None` when nobody has pushed to it).
pub async fn record(store: &dyn ObjectStore, repo: &Repository) -> Result<Option<(ObjectMeta, Vec<String>)>> {
    let meta = store.head(keys::repository(repo).as_str()).await?;
    Ok(meta.map(|m| {
        let list = m.custom.get(OWNERS).map(|o| owners::decode(o)).unwrap_or_default();
        (m, list)
    }))
}

/// Namespaces and ownership (scopes aside): may the user behind `p` do `action` on `repo`,
/// owned by `list` (empty: nobody yet)? The error is the sentence for the client.
pub fn may_write(config: &Config, p: &Principal, repo: &Repository, action: Action, list: &[String]) -> std::result::Result<(), String> {
    let repo = repo.as_str();
    if owners::bypasses(p, Protocol::Oci, repo, action) {
        return Ok(());
    }
    if config.oci_user_namespaces && !owners::in_own_namespace(&p.user, repo) {
        return Err(format!("user {} may only write repositories under {}/", p.user, p.user));
    }
    owners::check(p, Protocol::Oci, repo, action, list)
}

/// A caller that stands for a user (not an anonymous token from the token endpoint, which the
/// scope check sends for credentials instead).
fn is_user(p: &Principal) -> bool {
    !(p.kind == CredentialKind::Jwt && p.user == "anonymous")
}

/// Checks a write (`Write` or `Delete`) on `repo` before anything is read or written: the
/// caller's namespace and ownership first (so a user who may never write here gets a plain
/// 403 DENIED rather than a challenge for a token that cannot be had), then its scopes.
pub async fn authorize_write(ctx: &Ctx<'_>, repo: &Repository, action: Action) -> Result<()> {
    if let Some(p) = ctx.principal.as_ref().filter(|p| is_user(p) && !p.readonly) {
        let list = record(&*ctx.app.platform.store, repo).await?.map(|(_, l)| l).unwrap_or_default();
        may_write(&ctx.app.config, p, repo, action, &list).map_err(|reason| DENIED.err(reason))?;
    }
    ctx.check(repo, action)
}

/// The record's put options: `owners` as its custom metadata, written only under `condition`.
fn record_options(repo: &Repository, list: &[String], condition: Condition) -> crate::platform::PutOptions {
    let key = keys::repository(repo);
    crate::platform::PutOptions { condition: Some(condition), ..key.put_options(BTreeMap::from([(OWNERS.to_string(), owners::encode(list))])) }
}

/// Makes sure the repository has its record, claiming it for the caller if nobody has: called
/// right before the first write that makes content visible in it (a blob link, a manifest).
/// A record from before owners were kept is claimed the same way. The loser of a race to
/// claim re-reads the owners and is refused unless it may write anyway.
pub async fn claim(ctx: &Ctx<'_>, repo: &Repository) -> Result<()> {
    let Some(p) = ctx.principal.as_ref() else {
        return Err(ctx.challenge(Some(repo), "pull,push"));
    };
    let store = &*ctx.app.platform.store;
    // A few rounds: a lost race ends with owners to check, unless the record keeps changing.
    for _ in 0..3 {
        let condition = match record(store, repo).await? {
            Some((_, list)) if !list.is_empty() => {
                return may_write(&ctx.app.config, p, repo, Action::Write, &list).map_err(|reason| DENIED.err(reason));
            }
            Some((meta, _)) => Condition::EtagMatches(meta.etag),
            None => Condition::DoesNotExist,
        };
        let opts = record_options(repo, std::slice::from_ref(&p.user), condition);
        match ctx.storage.put(keys::repository(repo).as_str(), Body::Empty, opts, ctx.hook_meta(repo, None)).await? {
            PutOutcome::Stored(_) => return Ok(()),
            PutOutcome::ConditionFailed => continue,
            PutOutcome::ChecksumMismatch => return Err(Error::internal("repository record refused")),
        }
    }
    Err(Error::internal(format!("could not claim repository {repo}: its record kept changing")))
}

/// The admin API's view of a repository's owners (`/-/admin/owners/oci/{name}`), after
/// replacing them with `new` (users of this registry) when given: the way to hand over a
/// repository, or to settle one pushed before owners were kept.
pub async fn admin_owners(app: &crate::router::App, repo: &str, new: Option<Vec<String>>) -> Result<Vec<String>> {
    let repo = Repository::parse(repo).ok_or_else(|| Error::invalid(format!("invalid repository name {repo:?}")))?;
    let store = &*app.platform.store;
    let Some((meta, list)) = record(store, &repo).await? else {
        return Err(Error::not_found(format!("no hosted repository {repo}")));
    };
    let Some(new) = new else {
        return Ok(list);
    };
    let auth = crate::auth::Auth::new(&app.platform, &app.config);
    for user in &new {
        if auth.user(user).await.map_err(|e| Error::internal(format!("{e:?}")))?.is_none() {
            return Err(Error::not_found(format!("no such user {user:?}")));
        }
    }
    if new.is_empty() {
        return Err(Error::invalid("a repository needs at least one owner"));
    }
    let opts = record_options(&repo, &new, Condition::EtagMatches(meta.etag));
    if opts.custom.get(OWNERS).map_or(0, String::len) > 1024 {
        return Err(Error::invalid("too many owners"));
    }
    let actor = crate::http::Actor { user_id: Some("admin".into()), ..Default::default() };
    let meta = crate::storage::HookMetadata { package: Some(repo.as_str().to_string()), ..Default::default() };
    match app.storage(Protocol::Oci, &actor).put(keys::repository(&repo).as_str(), Body::Empty, opts, meta).await? {
        PutOutcome::Stored(_) => Ok(new),
        _ => Err(Error::conflict("the repository changed meanwhile; try again")),
    }
}
