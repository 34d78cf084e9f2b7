use super::*;
use std::os::unix::fs::PermissionsExt;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dpopkit-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

fn record() -> Record {
    Record {
        binding: "b".repeat(64),
        jkt: "jkt-a".into(),
        token_type: "DPoP".into(),
        access_token: Zeroizing::new("tok\"en\\\u{1}".into()),
        issued_at_ms: 1_000,
        refresh_at_ms: 2_000,
        usable_until_ms: 2_500,
        expires_at_ms: 3_000,
    }
}

#[test]
fn records_round_trip_and_bad_ones_are_ignored() {
    let dir = scratch("roundtrip");
    let store = Store::open(&dir, &[&b"k"[..]], &[&b"b"[..]]).unwrap();
    assert!(matches!(store.read(), Found::Missing));
    store.write(&record(), true).unwrap();
    let Found::Record(r) = store.read() else { panic!("not read back") };
    assert_eq!((r.access_token.as_str(), r.jkt.as_str(), r.expires_at_ms), ("tok\"en\\\u{1}", "jkt-a", 3_000));
    let mode = std::fs::metadata(store.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    for (bytes, says) in [
        (&b"{\"version\":1,\"binding\":\"x\""[..], "corrupt"),
        (b"", "corrupt"),
        (b"{\"version\":2}", "another version"),
        (b"{\"version\":1,\"binding\":\"b\",\"jkt\":\"j\",\"token_type\":\"DPoP\",\"access_token\":\"t\",\"issued_at_ms\":5,\"refresh_at_ms\":4,\"usable_until_ms\":6,\"expires_at_ms\":7}", "corrupt"),
    ] {
        std::fs::write(store.path(), bytes).unwrap();
        std::fs::set_permissions(store.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
        match store.read() {
            Found::Ignored(why) => assert!(why.contains(says), "{why}"),
            _ => panic!("{says}: not ignored"),
        }
    }
    std::fs::write(store.path(), vec![b' '; MAX_RECORD as usize + 1]).unwrap();
    assert!(matches!(store.read(), Found::Ignored(w) if w.contains("larger")));
    store.write(&record(), false).unwrap();
    std::fs::set_permissions(store.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(store.read(), Found::Ignored(w) if w.contains("0644")));
    std::fs::remove_file(store.path()).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", store.path()).unwrap();
    assert!(matches!(store.read(), Found::Ignored(w) if w.contains("symbolic link")));
    // Replaced by the next write: the link itself, not what it points to.
    store.write(&record(), true).unwrap();
    assert!(matches!(store.read(), Found::Record(_)));
    assert!(std::fs::symlink_metadata(store.path()).unwrap().file_type().is_file());
    store.remove().unwrap();
    assert!(matches!(store.read(), Found::Missing));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn directories_are_checked() {
    let dir = scratch("dirs");
    assert!(check_dir(dir.to_str().unwrap()).is_ok());
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = check_dir(dir.to_str().unwrap()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::AuthToken);
    assert!(e.message.contains("0777") && e.message.contains("chmod 700"), "{}", e.message);
    assert!(Store::open(&dir, &[&b"x"[..]], &[&b"b"[..]]).is_err(), "checked again at use");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(check_dir(dir.to_str().unwrap()).is_ok(), "readable by others is allowed: the files are 0600");
    let missing = dir.join("nope");
    let e = check_dir(missing.to_str().unwrap()).unwrap_err();
    assert!(e.message.contains("does not exist") && e.message.contains("mkdir -m 700"), "{}", e.message);
    let file = dir.join("file");
    std::fs::write(&file, b"").unwrap();
    assert!(check_dir(file.to_str().unwrap()).unwrap_err().message.contains("not a directory"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_binding_key_is_private_and_a_bad_one_is_refused() {
    let dir = scratch("key");
    let a = Store::open(&dir, &[&b"k"[..]], &[&b"b"[..]]).unwrap();
    let key = dir.join(KEY_FILE);
    let meta = std::fs::symlink_metadata(&key).unwrap();
    assert!(meta.file_type().is_file() && meta.len() == KEY_LEN as u64);
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let again = Store::open(&dir, &[&b"k"[..]], &[&b"b"[..]]).unwrap();
    assert_eq!((a.id.as_str(), a.binding()), (again.id.as_str(), again.binding()), "the key is kept");
    assert_ne!(a.id, a.binding, "names and bindings are separate hashes");
    let bytes = std::fs::read(&key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = Store::open(&dir, &[&b"k"[..]], &[&b"b"[..]]).err().unwrap();
    assert!(e.contains("0644") && e.contains("remove it"), "{e}");
    std::fs::remove_file(&key).unwrap();
    std::fs::write(dir.join("elsewhere"), &bytes).unwrap();
    std::fs::set_permissions(dir.join("elsewhere"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(dir.join("elsewhere"), &key).unwrap();
    let e = Store::open(&dir, &[&b"k"[..]], &[&b"b"[..]]).err().unwrap();
    assert!(e.contains("symbolic link"), "{e}");
    std::fs::remove_file(&key).unwrap();
    std::fs::write(&key, b"short").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(Store::open(&dir, &[&b"k"[..]], &[&b"b"[..]]).err().unwrap().contains("not 32"));
    std::fs::remove_file(&key).unwrap();
    let fresh = Store::open(&dir, &[&b"k"[..]], &[&b"b"[..]]).unwrap();
    assert_ne!(fresh.id, a.id, "a new key: new names, the old records are not found");
    assert!(
        !std::fs::read_dir(&dir).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".tmp")),
        "no temporary file left"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn threads_creating_the_key_at_once_agree_on_one() {
    for round in 0..20 {
        let dir = scratch(&format!("keyrace{round}"));
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let ids: Vec<String> = (0..8)
            .map(|_| {
                let (d, b) = (dir.clone(), barrier.clone());
                std::thread::spawn(move || {
                    b.wait();
                    Store::open(&d, &[&b"k"[..]], &[&b"b"[..]]).map(|s| s.id)
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap().unwrap())
            .collect();
        assert!(ids.iter().all(|id| *id == ids[0]), "round {round}: one key for all: {ids:?}");
        assert_eq!(std::fs::metadata(dir.join(KEY_FILE)).unwrap().len(), KEY_LEN as u64);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary file left");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn only_our_names_are_pruned() {
    let id = "0123456789abcdef".repeat(4);
    assert_eq!(kind_of(&id), Some((Kind::Record, id.as_str())));
    assert_eq!(kind_of(&format!("{id}.lock")), Some((Kind::Lock, id.as_str())));
    assert_eq!(kind_of(&format!("{id}.tmp")), Some((Kind::Temporary, id.as_str())));
    assert_eq!(kind_of(&format!("{id}.123.tmp")), Some((Kind::Temporary, id.as_str())));
    assert_eq!(kind_of(&format!("{KEY_FILE}.99.tmp")), Some((Kind::Temporary, KEY_FILE)));
    for not_ours in [
        KEY_FILE.to_string(),
        id.to_uppercase(),
        id[1..].to_string(),
        format!("{id}0"),
        format!("{id}.bak"),
        format!("{id}.x.tmp"),
        format!("{id}..tmp"),
        format!("{id}.lock.tmp"),
        format!("{KEY_FILE}.tmp"),
        "notes.txt".into(),
    ] {
        assert_eq!(kind_of(&not_ours), None, "{not_ours}");
    }
}

#[test]
fn a_lock_file_removed_while_waited_for_is_opened_again() {
    let dir = scratch("relock");
    let store = Store::open(&dir, &[&b"r"[..]], &[&b"b"[..]]).unwrap();
    let Locking::Held(first) = store.lock(Instant::now()) else { panic!("first lock") };
    // A waiter opens the lock file and polls it ...
    let (d, id) = (dir.clone(), store.id.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let s = Store { dir: d, id, binding: String::new() };
        let held = s.lock(Instant::now() + Duration::from_secs(5));
        let ok = matches!(held, Locking::Held(_));
        tx.send(ok).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        drop(held);
    });
    std::thread::sleep(Duration::from_millis(100));
    // ... while a pruner removes it (holding its lock) and lets go: the waiter's flock on
    // the removed file succeeds, but it is no lock; it must open the path again.
    std::fs::remove_file(store.lock_path()).unwrap();
    drop(first);
    assert!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), "the waiter got the lock");
    assert!(store.lock_path().exists(), "on a new lock file at the path");
    assert!(matches!(store.lock(Instant::now()), Locking::Busy(_)), "which excludes the others");
    waiter.join().unwrap();
    // Pruning takes the lock without waiting: a held key is left alone.
    let Locking::Held(held) = store.lock(Instant::now()) else { panic!("lock") };
    assert!(!store.remove_lock_if_unlocked(|_| true), "a held lock file is not removed");
    drop(held);
    assert!(store.remove_lock_if_unlocked(|_| true));
    assert!(!store.lock_path().exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_lock_is_exclusive_between_open_files_and_bounded() {
    let dir = scratch("lock");
    let store = Store::open(&dir, &[&b"l"[..]], &[&b"b"[..]]).unwrap();
    let Locking::Held(held) = store.lock(Instant::now()) else { panic!("first lock") };
    let give_up = Instant::now() + Duration::from_millis(50);
    assert!(matches!(store.lock(give_up), Locking::Busy(_)), "a second open file description waits");
    assert!(Instant::now() >= give_up);
    drop(held);
    assert!(matches!(store.lock(Instant::now()), Locking::Held(_)), "released on drop");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wall_clock_conversions() {
    let now = Instant::now();
    let t = now + Duration::from_secs(90);
    let ms = to_unix_ms(t, now, 1_000_000);
    assert_eq!(ms, 1_090_000);
    assert_eq!(from_unix_ms(ms, now, 1_000_000), Some(t));
    assert_eq!(from_unix_ms(999_999, now, 1_000_000), None);
    assert_eq!(from_unix_ms(1_000_000, now, 1_000_000), None);
}
