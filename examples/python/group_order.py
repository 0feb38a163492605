#!/usr/bin/env python3
"""Order inside a group, step by step, with a check after each step.

    CONVGROUPS_ADDR=127.0.0.1:50051 CONVGROUPS_TOKEN=$(convgroups token --user example-python-order) \
        python group_order.py

Create "Favourites" sorted by hand (GROUP_SORT_MODE_MANUAL), move
conversations inside it, pin one in the group, page through the group's
listing in its order, switch it to alphabetical, and read the errors of a
move that is not allowed. Exits 1 on the first unexpected answer.
"""
import sys

import grpc

from common import Check, connect, describe_error, error_info, groups_grpc, groups_pb2, settings, types_pb2

GROUP = "Favourites"
MANUAL = types_pb2.GROUP_SORT_MODE_MANUAL
ALPHABETICAL = types_pb2.GROUP_SORT_MODE_ALPHABETICAL


def group_listing(groups, page_size: int) -> list[str]:
    """The group's conversation ids in its order, page by page."""
    ids, token = [], ""
    while True:
        page = groups.GetConversationList(
            groups_pb2.GetConversationListRequest(
                filter=types_pb2.ConversationFilter(group_name=GROUP), page_size=page_size, page_token=token
            ),
            timeout=10,
        )
        ids += [c.conversation_id for c in page.conversations]
        if page.is_finished:
            return ids
        token = page.next_page_token


def main() -> None:
    addr, token = settings()
    check = Check("python group order")
    groups = groups_grpc.ConversationGroupServiceStub(connect(addr, token))

    # 0. Start clean, so the example can be run again and again.
    listed = groups.GetConversationGroupList(groups_pb2.GetConversationGroupListRequest(), timeout=10)
    if GROUP in listed.group_names:
        groups.DeleteConversationGroup(groups_pb2.DeleteConversationGroupRequest(group_name=GROUP), timeout=10)
        print(f"0. deleted {GROUP!r} left over from an earlier run")

    # 1. A group sorted by hand: conversations join at the end.
    created = groups.CreateConversationGroup(
        groups_pb2.CreateConversationGroupRequest(
            group_name=GROUP, conversation_ids=["C2Cann", "C2Cbob", "C2Ccid", "GROUPteam"], sort_mode=MANUAL
        ),
        timeout=10,
    )
    print(f"1. created {GROUP!r} ({types_pb2.GroupSortMode.Name(created.group.sort_mode)}), "
          f"id {created.group.group_id}, revision {created.revision}")
    check.equal("create: sort mode", created.group.sort_mode, MANUAL)
    check.equal("create: order", group_listing(groups, 100), ["C2Cann", "C2Cbob", "C2Ccid", "GROUPteam"])

    # 2. Move two conversations to the start, in the order given, in one revision.
    moved = groups.MoveConversationsInGroup(
        groups_pb2.MoveConversationsInGroupRequest(
            group_name=GROUP, conversation_ids=["GROUPteam", "C2Ccid"], to_start=True
        ),
        timeout=10,
    )
    print(f"2. moved {list(moved.success_conversation_ids)} to the start (revision {moved.revision})")
    check.equal("move: order", group_listing(groups, 2), ["GROUPteam", "C2Ccid", "C2Cann", "C2Cbob"])

    # 3. ... and one after another member; an id not in the group fails on its own.
    moved = groups.MoveConversationsInGroup(
        groups_pb2.MoveConversationsInGroupRequest(
            group_name=GROUP, conversation_ids=["C2Cbob", "C2Cnobody"], after_conversation_id="GROUPteam"
        ),
        timeout=10,
    )
    failed = [(f.conversation_id, types_pb2.ConversationResultCode.Name(f.code)) for f in moved.failed]
    print(f"3. moved {list(moved.success_conversation_ids)} after GROUPteam; failed: {failed}")
    check.equal("move after: failed", failed, [("C2Cnobody", "CONVERSATION_RESULT_CODE_NOT_IN_GROUP")])
    check.equal("move after: order", group_listing(groups, 3), ["GROUPteam", "C2Cbob", "C2Ccid", "C2Cann"])

    # 4. Pin one in this group only: listed first in every sort mode.
    pinned = groups.PinConversationsInGroup(
        groups_pb2.PinConversationsInGroupRequest(group_name=GROUP, conversation_ids=["C2Cann"]), timeout=10
    )
    print(f"4. pinned in the group: {list(pinned.pinned_conversation_ids)} (revision {pinned.revision})")
    check.equal("pin: pins", list(pinned.pinned_conversation_ids), ["C2Cann"])
    check.equal("pin: order", group_listing(groups, 1), ["C2Cann", "GROUPteam", "C2Cbob", "C2Ccid"])

    # 5. Alphabetical (show_name byte-wise, then id): registered names first.
    sorted_ = groups.SetConversationGroupSortMode(
        groups_pb2.SetConversationGroupSortModeRequest(group_name=GROUP, sort_mode=ALPHABETICAL), timeout=10
    )
    print(f"5. sort mode now {types_pb2.GroupSortMode.Name(sorted_.group.sort_mode)} (revision {sorted_.revision})")
    check.equal("alphabetical: order (pins first, then ids: no show names here)",
                group_listing(groups, 2), ["C2Cann", "C2Cbob", "C2Ccid", "GROUPteam"])

    # 6. A manual move in a group that is not MANUAL is refused, naming the field.
    try:
        groups.MoveConversationsInGroup(
            groups_pb2.MoveConversationsInGroupRequest(group_name=GROUP, conversation_ids=["C2Cbob"], to_end=True),
            timeout=10,
        )
        check.true("move in an alphabetical group fails", False)
    except grpc.RpcError as err:
        info = error_info(err)
        print(f"6. move in an alphabetical group -> {describe_error(err)}")
        check.equal("not manual: code", err.code(), grpc.StatusCode.FAILED_PRECONDITION)
        check.equal("not manual: reason", info and info.reason, "SORT_MODE_NOT_MANUAL")
        check.equal("not manual: field", info and info.metadata.get("field"), "sort_mode")

    # 7. Unpin; then clean up.
    unpinned = groups.UnpinConversationsInGroup(
        groups_pb2.UnpinConversationsInGroupRequest(group_name=GROUP, conversation_ids=["C2Cann"]), timeout=10
    )
    check.equal("unpin: pins", list(unpinned.pinned_conversation_ids), [])
    groups.DeleteConversationGroup(groups_pb2.DeleteConversationGroupRequest(group_name=GROUP), timeout=10)
    print("7. unpinned and deleted the group")
    check.done()


if __name__ == "__main__":
    try:
        main()
    except grpc.RpcError as err:
        print(f"FAIL unexpected error: {describe_error(err)}", file=sys.stderr)
        sys.exit(1)
