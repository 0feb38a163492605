#!/usr/bin/env python3
"""A smart group: a group whose members are the conversations its rule selects.

    CONVGROUPS_ADDR=127.0.0.1:50051 CONVGROUPS_TOKEN=$(convgroups token --user example-python) \
        python smart_groups.py

Register two conversations, one carrying mark 42; create the smart group
"Mark 42" (rule: mark_type 42) with no explicit members and see it hold the
marked one; mark the other and see it join; show that a member by rule
cannot be removed explicitly (IN_GROUP_BY_RULE) and that the rule's
exclude_ids takes it out instead; then clean up. Exits 1 on the first
unexpected answer.
"""
from common import (
    Check,
    connect,
    conversations_grpc,
    conversations_pb2,
    groups_grpc,
    groups_pb2,
    settings,
    types_pb2,
)

GROUP = "Mark 42"
MARK = 42
FIRST, SECOND = "C2Csmart-1", "C2Csmart-2"


def members(groups, name: str) -> list[str]:
    page = groups.GetConversationList(
        groups_pb2.GetConversationListRequest(filter=types_pb2.ConversationFilter(group_name=name)), timeout=10
    )
    return sorted(c.conversation_id for c in page.conversations)


def main() -> None:
    addr, token = settings()
    check = Check("python smart groups")
    channel = connect(addr, token)
    groups = groups_grpc.ConversationGroupServiceStub(channel)
    conversations = conversations_grpc.ConversationServiceStub(channel)

    # 0. Start clean, so the example can be run again and again.
    listed = groups.GetConversationGroupList(groups_pb2.GetConversationGroupListRequest(), timeout=10)
    if GROUP in listed.group_names:
        groups.DeleteConversationGroup(groups_pb2.DeleteConversationGroupRequest(group_name=GROUP), timeout=10)
    conversations.UpsertConversations(
        conversations_pb2.UpsertConversationsRequest(
            conversations=[
                types_pb2.ConversationUpdate(conversation_id=FIRST, mark_list=types_pb2.MarkList(values=[MARK])),
                types_pb2.ConversationUpdate(conversation_id=SECOND, mark_list=types_pb2.MarkList(values=[])),
            ]
        ),
        timeout=10,
    )
    print(f"1. registered {FIRST} (mark {MARK}) and {SECOND} (no mark)")

    # 2. The smart group: a rule instead of a list of conversations.
    rule = types_pb2.GroupRule(mark_type=MARK)
    created = groups.CreateConversationGroup(
        groups_pb2.CreateConversationGroupRequest(group_name=GROUP, rule=rule), timeout=10
    )
    print(f"2. created {GROUP!r} ({created.group.group_id}) with rule mark_type={MARK}: "
          f"{created.group.conversation_count} member(s) at revision {created.revision}")
    check.equal("create: members by rule", members(groups, GROUP), [FIRST])
    check.equal("create: the rule is shown", created.group.rule.mark_type, MARK)

    # 3. Marking the second conversation makes it a member in the same
    #    revision (a watcher gets ConversationsAddedToGroup, reason RULE).
    marked = conversations.UpsertConversations(
        conversations_pb2.UpsertConversationsRequest(
            conversations=[types_pb2.ConversationUpdate(conversation_id=SECOND, add_marks=[MARK])]
        ),
        timeout=10,
    )
    print(f"3. marked {SECOND} at revision {marked.revision}: members {members(groups, GROUP)}")
    check.equal("mark: joined by rule", members(groups, GROUP), [FIRST, SECOND])

    # 4. A member by rule is not removed by DeleteConversationsFromGroup...
    removed = groups.DeleteConversationsFromGroup(
        groups_pb2.DeleteConversationsFromGroupRequest(group_name=GROUP, conversation_ids=[SECOND]), timeout=10
    )
    code = types_pb2.ConversationResultCode.Name(removed.failed[0].code) if removed.failed else None
    print(f"4. explicit removal of {SECOND}: {code}")
    check.equal("remove: refused item", code, "CONVERSATION_RESULT_CODE_IN_GROUP_BY_RULE")

    # 5. ...but by the rule: exclude it.
    rule.exclude_ids.append(SECOND)
    changed = groups.SetConversationGroupRule(
        groups_pb2.SetConversationGroupRuleRequest(group_id=created.group.group_id, rule=rule), timeout=10
    )
    print(f"5. rule now excludes {SECOND}: {changed.group.conversation_count} member(s) at revision {changed.revision}")
    check.equal("exclude: left", members(groups, GROUP), [FIRST])

    # 6. Clean up: the group, then the two conversations.
    groups.DeleteConversationGroup(groups_pb2.DeleteConversationGroupRequest(group_id=created.group.group_id), timeout=10)
    conversations.DeleteConversations(
        conversations_pb2.DeleteConversationsRequest(conversation_ids=[FIRST, SECOND]), timeout=10
    )
    print("6. deleted the group and the two conversations")
    check.done()


if __name__ == "__main__":
    main()
