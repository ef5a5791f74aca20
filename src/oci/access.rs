//! Who may write a repository: token scopes, and ownership. A repository belongs to its first
//! pusher (the owner list lives in the custom metadata of its record, `keys::repository`,
//! written create-only so two first pushes cannot both win); every write needs an owner, an
//! admin credential or an admin-granted scope naming the repository (`auth::owners`). With
//! `OCI_USER_NAMESPACES=true` users write only under their own name (`alice/…`).

use std::collections::BTreeMap;

use super::names::keys;
use super::{error, internal, storage_error, Ctx};
use crate::auth::{owners, Action, CredentialKind, Principal};
use crate::config::{Config, Protocol};
use crate::http::{Body, Response};
use crate::platform::{Condition, ObjectMeta, ObjectStore, PutOptions, PutOutcome};

/// The custom-metadata member holding a repository's owners.
const OWNERS: &str = "owners";

/// The repository's record and its owners (`None` when nobody has pushed to it).
pub async fn record(store: &dyn ObjectStore, repo: &str) -> Result<Option<(ObjectMeta, Vec<String>)>, String> {
    let meta = store.head(&keys::repository(repo)).await.map_err(|e| e.to_string())?;
    Ok(meta.map(|m| {
        let list = m.custom.get(OWNERS).map(|o| owners::decode(o)).unwrap_or_default();
        (m, list)
    }))
}

/// Namespaces and ownership (scopes aside): may the user behind `p` do `action` on `repo`,
/// owned by `list` (empty: nobody yet)? The error is the sentence for the client.
pub fn may_write(config: &Config, p: &Principal, repo: &str, action: Action, list: &[String]) -> Result<(), String> {
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
pub async fn authorize_write(ctx: &Ctx<'_>, repo: &str, action: Action) -> Result<(), Response> {
    if let Some(p) = ctx.principal.as_ref().filter(|p| is_user(p) && !p.readonly) {
        let list = record(&*ctx.app.platform.store, repo).await.map_err(internal)?.map(|(_, l)| l).unwrap_or_default();
        if let Err(reason) = may_write(&ctx.app.config, p, repo, action, &list) {
            return Err(error(403, "DENIED", reason));
        }
    }
    ctx.check(repo, action)
}

/// Makes sure the repository has its record, claiming it for the caller if nobody has: called
/// right before the first write that makes content visible in it (a blob link, a manifest).
/// A record from before owners were kept is claimed the same way. The loser of a race to
/// claim re-reads the owners and is refused unless it may write anyway.
pub async fn claim(ctx: &Ctx<'_>, repo: &str) -> Result<(), Response> {
    let Some(p) = ctx.principal.as_ref() else {
        return Err(ctx.challenge(Some(repo), "pull,push"));
    };
    let store = &*ctx.app.platform.store;
    // A few rounds: a lost race ends with owners to check, unless the record keeps changing.
    for _ in 0..3 {
        let condition = match record(store, repo).await.map_err(internal)? {
            Some((_, list)) if !list.is_empty() => {
                return may_write(&ctx.app.config, p, repo, Action::Write, &list).map_err(|reason| error(403, "DENIED", reason));
            }
            Some((meta, _)) => Condition::EtagMatches(meta.etag),
            None => Condition::DoesNotExist,
        };
        let opts = PutOptions {
            custom: BTreeMap::from([(OWNERS.to_string(), owners::encode(std::slice::from_ref(&p.user)))]),
            condition: Some(condition),
            ..Default::default()
        };
        match ctx.storage.put(&keys::repository(repo), Body::Empty, opts, ctx.hook_meta(repo, None)).await {
            Ok(PutOutcome::Stored(_)) => return Ok(()),
            Ok(PutOutcome::ConditionFailed) => continue,
            Ok(PutOutcome::ChecksumMismatch) => return Err(internal("repository record refused")),
            Err(e) => return Err(storage_error(e)),
        }
    }
    Err(internal(format!("could not claim repository {repo}: its record kept changing")))
}

/// The admin API's view of a repository's owners (`/-/admin/owners/oci/{name}`), after
/// replacing them with `new` (users of this registry) when given: the way to hand over a
/// repository, or to settle one pushed before owners were kept.
pub async fn admin_owners(app: &crate::router::App, repo: &str, new: Option<Vec<String>>) -> Result<Vec<String>, (u16, String)> {
    if !super::names::valid_repository(repo) {
        return Err((400, format!("invalid repository name {repo:?}")));
    }
    let store = &*app.platform.store;
    let Some((meta, list)) = record(store, repo).await.map_err(|_| (500, "internal error".to_string()))? else {
        return Err((404, format!("no hosted repository {repo}")));
    };
    let Some(new) = new else {
        return Ok(list);
    };
    let auth = crate::auth::Auth::new(&app.platform, &app.config);
    for user in &new {
        match auth.user(user).await {
            Ok(Some(_)) => {}
            Ok(None) => return Err((404, format!("no such user {user:?}"))),
            Err(_) => return Err((500, "internal error".into())),
        }
    }
    if new.is_empty() {
        return Err((400, "a repository needs at least one owner".into()));
    }
    let encoded = owners::encode(&new);
    if encoded.len() > 1024 {
        return Err((400, "too many owners".into()));
    }
    let opts = PutOptions {
        custom: BTreeMap::from([(OWNERS.to_string(), encoded)]),
        condition: Some(Condition::EtagMatches(meta.etag)),
        ..Default::default()
    };
    let actor = crate::http::Actor { user_id: Some("admin".into()), ..Default::default() };
    let meta = crate::storage::HookMetadata { package: Some(repo.to_string()), ..Default::default() };
    match app.storage(Protocol::Oci, &actor).put(&keys::repository(repo), Body::Empty, opts, meta).await {
        Ok(PutOutcome::Stored(_)) => Ok(new),
        Ok(_) => Err((409, "the repository changed meanwhile; try again".into())),
        Err(crate::storage::StorageError::Denied(r)) => Err((403, r)),
        Err(_) => Err((500, "internal error".into())),
    }
}
