#!/usr/bin/env python3
"""How many bytes one typical user takes in etcd (docs/cluster.md, "Speed and size").

Needs a running replica on the etcd backend and etcdctl; run it against a cluster of
its own (scripts/cluster.sh up), since it compacts and defragments etcd:

    pip install -r examples/python/requirements.txt
    TOKEN=$(target/release/convgroups token --user capacity --admin --auth-secret-file cluster/secret)
    scripts/etcd-capacity.py --addr 127.0.0.1:50051 --token "$TOKEN" \
        --endpoints 127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379 --users 100

A typical user: 200 registered conversations (a show name, a face URL, a last message),
20 groups, each conversation in one group and every fourth in a second one, and every
event that making this state produced (kept: far inside --retain-events-per-user).
It reports the keys and bytes under the deployment's prefix per user (what the records
cost), and etcd's database size per user after compaction and defragmentation (what the
cluster pays, with bbolt's pages and indexes).
"""
import argparse
import base64
import json
import subprocess
import sys
import time

sys.path.insert(0, "examples/python")
import common  # noqa: E402  (generates the stubs on first use)

groups_pb2 = common.groups_pb2
conversations_pb2 = common.conversations_pb2
types_pb2 = common.types_pb2


def etcdctl(endpoints, *args):
    out = subprocess.run(
        ["etcdctl", "--endpoints", endpoints, *args],
        env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout


def status(endpoints):
    rows = json.loads(etcdctl(endpoints, "endpoint", "status", "-w", "json"))
    return max(r["Status"]["header"]["revision"] for r in rows), max(r["Status"]["dbSize"] for r in rows)


def compact_and_defrag(endpoints):
    revision, _ = status(endpoints)
    etcdctl(endpoints, "compact", str(revision), "--physical")
    for endpoint in endpoints.split(","):
        etcdctl(endpoint, "defrag")
    time.sleep(0.5)
    return status(endpoints)[1]


def prefix_bytes(endpoints, prefix):
    keys = values = count = 0
    out = etcdctl(endpoints, "get", prefix, "--prefix", "-w", "json")
    for kv in json.loads(out).get("kvs", []):
        keys += len(base64.b64decode(kv["key"]))
        values += len(base64.b64decode(kv.get("value", "")))
        count += 1
    return count, keys, values


def make_user(groups, conversations, metadata):
    ids = [f"C2Cpeer{n:04d}" for n in range(200)]
    for start in range(0, 200, 100):
        updates = [
            types_pb2.ConversationUpdate(
                conversation_id=cid,
                show_name=f"Peer number {n}",
                face_url=f"https://cdn.example.com/avatars/{n:04d}.png",
                unread_count=n % 7,
                order_key=1_700_000_000_000 + n,
                last_message=types_pb2.LastMessage(
                    sender=f"peer{n}", text="See you at the supplier meeting tomorrow at ten"
                ),
            )
            for n, cid in enumerate(ids[start : start + 100], start)
        ]
        conversations.UpsertConversations(
            conversations_pb2.UpsertConversationsRequest(conversations=updates), metadata=metadata
        )
    for g in range(20):
        members = ids[g * 10 : g * 10 + 10]
        groups.CreateConversationGroup(
            groups_pb2.CreateConversationGroupRequest(group_name=f"Group {g:02d}", conversation_ids=members),
            metadata=metadata,
        )
    for g in range(20):
        extra = ids[((g + 1) % 20) * 10 : ((g + 1) % 20) * 10 + 10 : 4]
        groups.AddConversationsToGroup(
            groups_pb2.AddConversationsToGroupRequest(group_name=f"Group {g:02d}", conversation_ids=extra),
            metadata=metadata,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--addr", required=True)
    parser.add_argument("--token", required=True, help="an admin token of the deployment")
    parser.add_argument("--endpoints", required=True)
    parser.add_argument("--prefix", default="/convgroups/")
    parser.add_argument("--users", type=int, default=100)
    args = parser.parse_args()

    channel = common.connect(args.addr, args.token)
    groups = common.groups_grpc.ConversationGroupServiceStub(channel)
    conversations = common.conversations_grpc.ConversationServiceStub(channel)
    before_count, before_keys, before_values = prefix_bytes(args.endpoints, args.prefix)
    db_before = compact_and_defrag(args.endpoints)
    started = time.time()
    for u in range(args.users):
        make_user(groups, conversations, [("x-convgroups-user", f"capacity-{started:.0f}-{u}")])
    count, keys, values = prefix_bytes(args.endpoints, args.prefix)
    db_after = compact_and_defrag(args.endpoints)
    users = args.users
    per_user_records = (keys + values - before_keys - before_values) / users
    per_user_db = (db_after - db_before) / users
    print(f"users written: {users} in {time.time() - started:.1f} s")
    print(f"keys per user: {(count - before_count) / users:.0f}")
    print(f"record bytes per user (keys + values under {args.prefix}): {per_user_records:.0f}")
    print(f"etcd db bytes per user after compact + defrag: {per_user_db:.0f}")
    for label, per_user in (("records", per_user_records), ("etcd db", per_user_db)):
        if per_user > 0:
            print(f"users in 8 GiB by {label}: {8 * 2**30 / per_user:,.0f}")


if __name__ == "__main__":
    main()
