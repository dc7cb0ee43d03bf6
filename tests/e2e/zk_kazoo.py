"""kazoo (the Python ZooKeeper client) against batond's ZooKeeper listener.

Run by tests/e2e/zk.rs as `python3 zk_kazoo.py HOST:PORT` when kazoo is installed
(`pip install kazoo`). Exits non-zero, with the failing assertion, on any mismatch.
"""

import sys
import threading
import time

from kazoo.client import KazooClient
from kazoo.exceptions import (
    AuthFailedError,
    BadVersionError,
    InvalidACLError,
    NoAuthError,
    NodeExistsError,
    NotEmptyError,
)
from kazoo.security import make_acl, make_digest_acl

hosts = sys.argv[1]


def client(**kwargs):
    zk = KazooClient(hosts=hosts, timeout=10, **kwargs)
    zk.start(timeout=10)
    return zk


zk = client()
other = client()

# The basic operations, with ZooKeeper's errors.
zk.ensure_path("/k/a/b")
zk.create("/k/x", b"one")
data, stat = zk.get("/k/x")
assert (data, stat.version) == (b"one", 0), (data, stat)
zk.set("/k/x", b"two", version=0)
try:
    zk.set("/k/x", b"three", version=0)
    raise AssertionError("a stale version was accepted")
except BadVersionError:
    pass
try:
    zk.create("/k/x", b"")
    raise AssertionError("a second create succeeded")
except NodeExistsError:
    pass
assert sorted(zk.get_children("/k")) == ["a", "x"]
path = zk.create("/k/seq-", b"", sequence=True, ephemeral=True)
assert path == "/k/seq-0000000002", path
created, stat = zk.create("/k/inc", b"d", include_data=True)
assert (created, stat.data_length) == ("/k/inc", 1)
assert zk.exists("/nope") is None
zk.sync("/k")

# A data watch fires before the write's reply returns.
changed = threading.Event()
seen = []


@zk.DataWatch("/k/x")
def watch(data, stat, event=None):
    seen.append(data)
    if event is not None:
        changed.set()


other.set("/k/x", b"watched")
assert changed.wait(5), seen
assert seen[-1] == b"watched", seen

# Transactions: a failed one reports every op as ZooKeeper does.
t = zk.transaction()
t.create("/k/t1", b"")
t.delete("/k/missing")
t.set_data("/k/x", b"no")
results = [type(r).__name__ for r in t.commit()]
assert results == ["RolledBackError", "NoNodeError", "RuntimeInconsistency"], results
assert zk.exists("/k/t1") is None
t = zk.transaction()
t.check("/k/x", 2)
t.create("/k/t2", b"")
assert t.commit() == [True, "/k/t2"]

try:
    zk.delete("/k")
    raise AssertionError("deleted a node with children")
except NotEmptyError:
    pass
zk.delete("/k", recursive=True)
assert zk.exists("/k") is None

# Recipes.
with zk.Lock("/locks/l", "me"):
    assert len(zk.get_children("/locks/l")) == 1
q = zk.LockingQueue("/queue")
q.put(b"item")
assert q.get(1) == b"item"
q.consume()
counter = zk.Counter("/counter")
counter += 5
counter -= 2
assert counter.value == 3
party = zk.Party("/party", "a")
party.join()
assert list(party) == ["a"]
party.leave()
assert zk.server_version()[:2] == (3, 8)

# Ephemerals go with their session.
other.create("/eph", ephemeral=True)
other.stop()
other.close()
deadline = time.time() + 5
while zk.exists("/eph") is not None and time.time() < deadline:
    time.sleep(0.05)
assert zk.exists("/eph") is None

# A dropped connection: the session is resumed.
sid = zk.client_id[0]
zk._connection._socket.shutdown(2)
deadline = time.time() + 10
while time.time() < deadline:
    try:
        if zk.connected and zk.exists("/counter") is not None:
            break
    except Exception:
        pass
    time.sleep(0.1)
assert zk.client_id[0] == sid

# Digest authentication and ACLs.
alice = client(auth_data=[("digest", "user:pass")])
alice.create("/sec", b"s", acl=[make_digest_acl("user", "pass", all=True)])
acl = alice.get_acls("/sec")[0][0]
assert (acl.id.scheme, acl.id.id) == ("digest", "user:smGaoVKd/cQkjm7b88GyorAUz20="), acl
stranger = client()
try:
    stranger.get("/sec")
    raise AssertionError("read without the digest")
except NoAuthError:
    pass
try:
    stranger.create("/y", acl=[make_acl("auth", "", all=True)])
    raise AssertionError("an auth ACL without ids")
except InvalidACLError:
    pass
stranger.add_auth("digest", "user:pass")
assert stranger.get("/sec")[0] == b"s"
try:
    stranger.add_auth("bogus", "x")
    raise AssertionError("an unknown scheme was accepted")
except AuthFailedError:
    pass

for c in (zk, alice, stranger):
    c.stop()
    c.close()
print("kazoo: all checks passed")
