#!/usr/bin/env python3
"""How a group looks: UpdateConversationGroup, step by step, with checks.

    CONVGROUPS_ADDR=127.0.0.1:50051 CONVGROUPS_TOKEN=$(convgroups token --user example-python-looks) \
        python group_looks.py

Create "Projects", give it an icon, a colour and client data (only the
fields named in `update_mask` are written), fold it, see the look in the
group list, send an update that changes nothing (the revision stays), clear
the icon, and read the ErrorInfo of a mask path that names no field. Exits 1
on the first unexpected answer.
"""
import sys

import grpc
from google.protobuf import field_mask_pb2

from common import Check, connect, describe_error, error_info, groups_grpc, groups_pb2, settings, types_pb2

GROUP = "Projects"


def update(groups, look, *paths, **request):
    """UpdateConversationGroup of `paths` (the update mask) from `look`."""
    return groups.UpdateConversationGroup(
        groups_pb2.UpdateConversationGroupRequest(
            group_name=GROUP, look=look, update_mask=field_mask_pb2.FieldMask(paths=list(paths)), **request
        ),
        timeout=10,
    )


def look_of(group) -> str:
    color = types_pb2.GroupColor.Name(group.color)
    return f"icon={group.icon!r} color={color} collapsed={group.collapsed} custom_data={bytes(group.custom_data)!r}"


def main() -> None:
    addr, token = settings()
    check = Check("python group looks")
    groups = groups_grpc.ConversationGroupServiceStub(connect(addr, token))

    # 0. Start clean, so the example can be run again and again.
    listed = groups.GetConversationGroupList(groups_pb2.GetConversationGroupListRequest(), timeout=10)
    if GROUP in listed.group_names:
        groups.DeleteConversationGroup(groups_pb2.DeleteConversationGroupRequest(group_name=GROUP), timeout=10)
        print(f"0. deleted {GROUP!r} left over from an earlier run")

    # 1. A new group has no look.
    created = groups.CreateConversationGroup(
        groups_pb2.CreateConversationGroupRequest(group_name=GROUP, conversation_ids=["C2Cexample"]), timeout=10
    )
    print(f"1. created {GROUP!r} ({created.group.group_id}): {look_of(created.group)}")
    check.equal("create: no icon", created.group.icon, "")
    check.equal("create: no colour", created.group.color, types_pb2.GROUP_COLOR_UNSPECIFIED)

    # 2. Icon, colour and client data; `collapsed` is not in the mask, so
    #    its value in `look` is ignored.
    look = types_pb2.GroupLook(icon="🚀", color=types_pb2.GROUP_COLOR_GREEN, collapsed=True, custom_data=b"\x01\x02")
    styled = update(groups, look, "icon", "color", "custom_data")
    print(f"2. updated at revision {styled.revision}: {look_of(styled.group)}")
    check.equal("update: icon", styled.group.icon, "🚀")
    check.equal("update: colour", styled.group.color, types_pb2.GROUP_COLOR_GREEN)
    check.equal("update: custom_data", bytes(styled.group.custom_data), b"\x01\x02")
    check.equal("update: collapsed untouched", styled.group.collapsed, False)
    check.true("update: revision advanced", styled.revision > created.revision)

    # 3. Fold it: the other devices of the user see it folded too.
    folded = update(groups, types_pb2.GroupLook(collapsed=True), "collapsed")
    listed = groups.GetConversationGroupList(groups_pb2.GetConversationGroupListRequest(), timeout=10)
    shown = next(g for g in listed.groups if g.name == GROUP)
    print(f"3. folded at revision {folded.revision}; listed: {look_of(shown)}")
    check.equal("list: collapsed", shown.collapsed, True)
    check.equal("list: icon kept", shown.icon, "🚀")
    check.equal("list: revision", listed.revision, folded.revision)

    # 4. The same values again change nothing: same revision, no event.
    same = update(groups, look, "icon", "color", "collapsed", "custom_data")
    print(f"4. the same look again -> revision {same.revision}")
    check.equal("no-op: revision kept", same.revision, folded.revision)

    # 5. A masked field left at its default is cleared.
    cleared = update(groups, types_pb2.GroupLook(), "icon")
    print(f"5. icon cleared: {look_of(cleared.group)}")
    check.equal("clear: icon", cleared.group.icon, "")
    check.equal("clear: colour kept", cleared.group.color, types_pb2.GROUP_COLOR_GREEN)

    # 6. A path that names no field is INVALID_ARGUMENT naming the path, and
    #    changes nothing.
    try:
        update(groups, look, "icon", "title")
        check.true("unknown path fails", False)
    except grpc.RpcError as err:
        info = error_info(err)
        print(f"6. unknown mask path -> {describe_error(err)}")
        check.equal("bad mask: code", err.code(), grpc.StatusCode.INVALID_ARGUMENT)
        check.equal("bad mask: reason", info and info.reason, "INVALID_UPDATE_MASK")
        check.equal("bad mask: path", info and info.metadata.get("path"), "title")
    listed = groups.GetConversationGroupList(groups_pb2.GetConversationGroupListRequest(), timeout=10)
    check.equal("bad mask: nothing changed", listed.revision, cleared.revision)

    groups.DeleteConversationGroup(groups_pb2.DeleteConversationGroupRequest(group_name=GROUP), timeout=10)
    check.done()


if __name__ == "__main__":
    try:
        main()
    except grpc.RpcError as err:
        print(f"FAIL unexpected error: {describe_error(err)}", file=sys.stderr)
        sys.exit(1)
