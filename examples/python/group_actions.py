#!/usr/bin/env python3
"""Group-wide actions, step by step, with a check after each step.

    CONVGROUPS_ADDR=127.0.0.1:50051 CONVGROUPS_TOKEN=$(convgroups token --user example-python-actions) \
        python group_actions.py

Mark a whole group read (MarkConversationGroupRead), mute it and have
conversations added later follow (SetConversationGroupMute with
apply_to_new_members), move conversations from one group to another and add
one to two groups at once (MoveConversations), each in one revision. Exits 1
on the first unexpected answer.
"""
import grpc

from common import (
    Check,
    connect,
    conversations_grpc,
    conversations_pb2,
    describe_error,
    error_info,
    groups_grpc,
    groups_pb2,
    settings,
    types_pb2,
)

INBOX, CLIENTS = "Inbox", "Clients"


def main() -> None:
    addr, token = settings()
    check = Check("python group actions")
    channel = connect(addr, token)
    groups = groups_grpc.ConversationGroupServiceStub(channel)
    conversations = conversations_grpc.ConversationServiceStub(channel)

    def group(name):
        listed = groups.GetConversationGroupList(groups_pb2.GetConversationGroupListRequest(), timeout=10)
        return next((g for g in listed.groups if g.name == name), None)

    def conversation(conversation_id):
        page = groups.GetConversationList(
            groups_pb2.GetConversationListRequest(filter=types_pb2.ConversationFilter(conversation_ids=[conversation_id])),
            timeout=10,
        )
        return page.conversations[0]

    # 0. Start clean, so the example can be run again and again.
    for leftover in (INBOX, CLIENTS):
        if group(leftover) is not None:
            groups.DeleteConversationGroup(groups_pb2.DeleteConversationGroupRequest(group_name=leftover), timeout=10)
            print(f"0. deleted {leftover!r} left over from an earlier run")

    # 1. Two conversations with unread messages, in a group "Inbox"; "Clients" holds another.
    conversations.UpsertConversations(
        conversations_pb2.UpsertConversationsRequest(
            conversations=[
                types_pb2.ConversationUpdate(conversation_id="C2Cbob", unread_count=3, recv_opt=types_pb2.RECV_OPT_RECEIVE),
                types_pb2.ConversationUpdate(conversation_id="C2Ccarol", unread_count=2, recv_opt=types_pb2.RECV_OPT_RECEIVE),
                types_pb2.ConversationUpdate(conversation_id="C2Cerin", recv_opt=types_pb2.RECV_OPT_RECEIVE),
            ]
        ),
        timeout=10,
    )
    groups.CreateConversationGroup(
        groups_pb2.CreateConversationGroupRequest(group_name=INBOX, conversation_ids=["C2Cbob", "C2Ccarol", "GROUPtest"]),
        timeout=10,
    )
    clients = groups.CreateConversationGroup(
        groups_pb2.CreateConversationGroupRequest(group_name=CLIENTS, conversation_ids=["C2Cdave"]), timeout=10
    ).group
    print(f"1. {INBOX!r} has {group(INBOX).unread_count} unread; {CLIENTS!r} is {clients.group_id}")
    check.equal("setup: unread", group(INBOX).unread_count, 5)

    # 2. Mark the whole group read: one revision, the members that had unread messages.
    read = groups.MarkConversationGroupRead(groups_pb2.MarkConversationGroupReadRequest(group_name=INBOX), timeout=10)
    print(f"2. marked {list(read.changed_conversation_ids)} read at revision {read.revision}")
    check.equal("mark read: changed", list(read.changed_conversation_ids), ["C2Cbob", "C2Ccarol"])
    check.equal("mark read: group unread", group(INBOX).unread_count, 0)
    again = groups.MarkConversationGroupRead(groups_pb2.MarkConversationGroupReadRequest(group_name=INBOX), timeout=10)
    check.equal("mark read again: nothing changed", list(again.changed_conversation_ids), [])
    check.equal("mark read again: revision kept", again.revision, read.revision)

    # 3. Mute the group, and conversations added to it later too.
    muted = groups.SetConversationGroupMute(
        groups_pb2.SetConversationGroupMuteRequest(
            group_name=INBOX, recv_opt=types_pb2.RECV_OPT_RECEIVE_NOT_NOTIFY, apply_to_new_members=True
        ),
        timeout=10,
    )
    print(f"3. muted {list(muted.changed_conversation_ids)}; new members get "
          f"{types_pb2.RecvOpt.Name(muted.group.new_member_recv_opt)}")
    check.equal("mute: changed", list(muted.changed_conversation_ids), ["C2Cbob", "C2Ccarol", "GROUPtest"])
    check.true("mute: remembered", muted.group.HasField("new_member_recv_opt"))
    check.equal("mute: option", muted.group.new_member_recv_opt, types_pb2.RECV_OPT_RECEIVE_NOT_NOTIFY)

    # 4. Move C2Ccarol from Inbox to Clients (named by its id). C2Czed is not
    #    in Inbox: that item fails on its own, the rest is applied.
    moved = groups.MoveConversations(
        groups_pb2.MoveConversationsRequest(
            conversation_ids=["C2Ccarol", "C2Czed"],
            from_group_name=INBOX,
            to=[groups_pb2.GroupSelector(group_id=clients.group_id)],
        ),
        timeout=10,
    )
    failed = [(f.conversation_id, types_pb2.ConversationResultCode.Name(f.code)) for f in moved.failed]
    print(f"4. moved {list(moved.moved_conversation_ids)} to {moved.targets[0].group_name!r}; failed {failed}")
    check.equal("move: moved", list(moved.moved_conversation_ids), ["C2Ccarol"])
    check.equal("move: failed", failed, [("C2Czed", "CONVERSATION_RESULT_CODE_NOT_IN_GROUP")])
    check.equal("move: added to Clients", list(moved.targets[0].added_conversation_ids), ["C2Ccarol"])
    check.equal("move: carol's groups", list(conversation("C2Ccarol").conversation_group_list), [CLIENTS])

    # 5. Add C2Cerin to both groups at once; Inbox gives it its receive option.
    added = groups.MoveConversations(
        groups_pb2.MoveConversationsRequest(
            conversation_ids=["C2Cerin"],
            to=[groups_pb2.GroupSelector(group_name=INBOX), groups_pb2.GroupSelector(group_name=CLIENTS)],
        ),
        timeout=10,
    )
    print(f"5. added C2Cerin to {[t.group_name for t in added.targets]} at revision {added.revision}")
    check.equal("add: targets", [list(t.added_conversation_ids) for t in added.targets], [["C2Cerin"], ["C2Cerin"]])
    check.equal("add: erin muted", conversation("C2Cerin").recv_opt, types_pb2.RECV_OPT_RECEIVE_NOT_NOTIFY)

    # 6. A move into the group it comes from is refused whole, naming the field.
    try:
        groups.MoveConversations(
            groups_pb2.MoveConversationsRequest(
                conversation_ids=["C2Cbob"], from_group_name=INBOX, to=[groups_pb2.GroupSelector(group_name=INBOX)]
            ),
            timeout=10,
        )
        check.true("move into from: refused", False)
    except grpc.RpcError as err:
        info = error_info(err)
        print(f"6. {describe_error(err)}")
        check.equal("move into from: code", err.code(), grpc.StatusCode.INVALID_ARGUMENT)
        check.equal("move into from: field", info and info.metadata["field"], "to")

    # 7. Unmute, forgetting the option for new members.
    unmuted = groups.SetConversationGroupMute(
        groups_pb2.SetConversationGroupMuteRequest(group_name=INBOX, recv_opt=types_pb2.RECV_OPT_RECEIVE), timeout=10
    )
    print(f"7. unmuted {list(unmuted.changed_conversation_ids)}")
    check.true("unmute: forgotten", not unmuted.group.HasField("new_member_recv_opt"))
    check.equal("unmute: bob receives", conversation("C2Cbob").recv_opt, types_pb2.RECV_OPT_RECEIVE)

    for name in (INBOX, CLIENTS):
        groups.DeleteConversationGroup(groups_pb2.DeleteConversationGroupRequest(group_name=name), timeout=10)
    check.done()


if __name__ == "__main__":
    main()
