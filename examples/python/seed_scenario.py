#!/usr/bin/env python3
"""The convgroups seed scenario, step by step, with a check after each step.

    CONVGROUPS_ADDR=127.0.0.1:50051 CONVGROUPS_TOKEN=$(convgroups token --user example-python) \
        python seed_scenario.py

Create "Suppliers" with GROUPtest and C2Cexample, list groups, add a
conversation, remove one, rename the group, list the conversations of the
group, delete it; along the way, read the google.rpc.ErrorInfo of failed
calls. Exits 1 on the first unexpected answer.
"""
import base64
import json
import sys

import grpc

from common import Check, connect, describe_error, error_info, groups_grpc, groups_pb2, settings, types_pb2

GROUP = "Suppliers"
RENAMED = "Key suppliers"


def token_user(token: str) -> str:
    """The `sub` claim of the token (for display only: the server checks it)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]


def main() -> None:
    addr, token = settings()
    check = Check("python seed scenario")
    groups = groups_grpc.ConversationGroupServiceStub(connect(addr, token))
    print(f"server {addr}, acting as user {token_user(token)!r}")

    # 0. Start clean, so the example can be run again and again.
    listed = groups.GetConversationGroupList(groups_pb2.GetConversationGroupListRequest(), timeout=10)
    for leftover in (GROUP, RENAMED):
        if leftover in listed.group_names:
            groups.DeleteConversationGroup(groups_pb2.DeleteConversationGroupRequest(group_name=leftover), timeout=10)
            print(f"0. deleted {leftover!r} left over from an earlier run")

    # 1. Create a group with two conversations.
    created = groups.CreateConversationGroup(
        groups_pb2.CreateConversationGroupRequest(group_name=GROUP, conversation_ids=["GROUPtest", "C2Cexample"]),
        timeout=10,
    )
    print(f"1. created {created.group.name!r} with {list(created.success_conversation_ids)} at revision {created.revision}")
    check.equal("create: group name", created.group.name, GROUP)
    check.equal("create: added", list(created.success_conversation_ids), ["GROUPtest", "C2Cexample"])
    check.equal("create: failed items", len(created.failed), 0)
    check.equal("create: conversation_count", created.group.conversation_count, 2)
    check.true("create: revision > 0", created.revision > 0)

    # 2. List the groups.
    listed = groups.GetConversationGroupList(groups_pb2.GetConversationGroupListRequest(), timeout=10)
    print(f"2. groups: {list(listed.group_names)} (revision {listed.revision})")
    check.true("list: has the group", GROUP in listed.group_names, str(list(listed.group_names)))
    check.equal("list: revision", listed.revision, created.revision)
    counts = {g.name: g.conversation_count for g in listed.groups}
    check.equal("list: count", counts[GROUP], 2)

    # 3. Add conversations. The native form c2c_bob is normalised to C2Cbob;
    #    a bad id fails on its own while the rest is applied.
    added = groups.AddConversationsToGroup(
        groups_pb2.AddConversationsToGroupRequest(group_name=GROUP, conversation_ids=["c2c_bob", "nonsense"]),
        timeout=10,
    )
    bad = added.failed[0] if added.failed else None
    print(f"3. added {list(added.success_conversation_ids)}; failed: "
          + ", ".join(f"{f.conversation_id} ({types_pb2.ConversationResultCode.Name(f.code)}: {f.message})" for f in added.failed))
    check.equal("add: added", list(added.success_conversation_ids), ["C2Cbob"])
    check.equal("add: failed id", bad and bad.conversation_id, "nonsense")
    check.equal("add: failed code", bad and bad.code, types_pb2.CONVERSATION_RESULT_CODE_INVALID_CONVERSATION_ID)
    check.true("add: revision advanced", added.revision > created.revision)

    # 4. Remove one.
    removed = groups.DeleteConversationsFromGroup(
        groups_pb2.DeleteConversationsFromGroupRequest(group_name=GROUP, conversation_ids=["C2Cexample"]),
        timeout=10,
    )
    print(f"4. removed {list(removed.success_conversation_ids)} (revision {removed.revision})")
    check.equal("remove: removed", list(removed.success_conversation_ids), ["C2Cexample"])
    check.equal("remove: failed items", len(removed.failed), 0)

    # 5. Rename, naming the group by its id (a group's id never changes, so
    #    an app that keeps groups by id survives renames made elsewhere),
    #    guarded by the revision we last saw (optimistic concurrency): had
    #    anything else changed this user's groups since, it would fail with
    #    ABORTED / REVISION_MISMATCH and change nothing.
    group_id = created.group.group_id
    renamed = groups.RenameConversationGroup(
        groups_pb2.RenameConversationGroupRequest(group_id=group_id, new_name=RENAMED, expected_revision=removed.revision),
        timeout=10,
    )
    print(f"5. renamed group {group_id} from {GROUP!r} to {renamed.group.name!r} (revision {renamed.revision})")
    check.equal("rename: new name", renamed.group.name, RENAMED)
    check.equal("rename: id kept", renamed.group.group_id, group_id)
    check.equal("rename: members kept", renamed.group.conversation_count, 2)

    # 6. The conversations of the group (GetConversationList with filter.group_name).
    page = groups.GetConversationList(
        groups_pb2.GetConversationListRequest(filter=types_pb2.ConversationFilter(group_name=RENAMED)),
        timeout=10,
    )
    print(f"6. conversations in {RENAMED!r}:")
    for c in page.conversations:
        print(f"     {c.conversation_id:<12} {types_pb2.ConversationType.Name(c.type):<24} groups={list(c.conversation_group_list)}")
    check.equal("list by group: ids", [c.conversation_id for c in page.conversations], ["C2Cbob", "GROUPtest"])
    check.true("list by group: membership", all(RENAMED in c.conversation_group_list for c in page.conversations))
    check.true("list by group: finished", page.is_finished and page.next_page_token == "")

    # 7. Errors carry a google.rpc.ErrorInfo: reason, domain and metadata.
    try:
        groups.CreateConversationGroup(
            groups_pb2.CreateConversationGroupRequest(group_name=RENAMED, conversation_ids=["C2Cexample"]), timeout=10
        )
        check.true("create twice fails", False)
    except grpc.RpcError as err:
        info = error_info(err)
        print(f"7. create {RENAMED!r} again -> {describe_error(err)}")
        check.equal("duplicate: code", err.code(), grpc.StatusCode.ALREADY_EXISTS)
        check.equal("duplicate: reason", info and info.reason, "GROUP_ALREADY_EXISTS")
        check.equal("duplicate: domain", info and info.domain, "convgroups")
        check.equal("duplicate: metadata group_name", info and info.metadata.get("group_name"), RENAMED)
    try:
        groups.DeleteConversationGroup(
            groups_pb2.DeleteConversationGroupRequest(group_name=RENAMED, expected_revision=removed.revision), timeout=10
        )
        check.true("stale expected_revision fails", False)
    except grpc.RpcError as err:
        info = error_info(err)
        print(f"   delete with a stale expected_revision -> {describe_error(err)}")
        check.equal("stale: code", err.code(), grpc.StatusCode.ABORTED)
        check.equal("stale: reason", info and info.reason, "REVISION_MISMATCH")

    # 8. Delete the group; a second delete is NOT_FOUND with Tencent's code.
    deleted = groups.DeleteConversationGroup(groups_pb2.DeleteConversationGroupRequest(group_name=RENAMED), timeout=10)
    listed = groups.GetConversationGroupList(groups_pb2.GetConversationGroupListRequest(), timeout=10)
    print(f"8. deleted {RENAMED!r} (revision {deleted.revision}); groups now: {list(listed.group_names)}")
    check.true("delete: gone", RENAMED not in listed.group_names)
    try:
        groups.DeleteConversationGroup(groups_pb2.DeleteConversationGroupRequest(group_name=RENAMED), timeout=10)
        check.true("delete twice fails", False)
    except grpc.RpcError as err:
        info = error_info(err)
        print(f"   delete again -> {describe_error(err)}")
        check.equal("not found: code", err.code(), grpc.StatusCode.NOT_FOUND)
        check.equal("not found: reason", info and info.reason, "GROUP_NOT_FOUND")
        check.equal("not found: tencent_code", info and info.metadata.get("tencent_code"), "51009")

    check.done()


if __name__ == "__main__":
    try:
        main()
    except grpc.RpcError as err:
        print(f"FAIL unexpected error: {describe_error(err)}", file=sys.stderr)
        sys.exit(1)
