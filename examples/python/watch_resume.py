#!/usr/bin/env python3
"""WatchGroupEvents: see a change live, disconnect, resume with no gap.

    CONVGROUPS_ADDR=127.0.0.1:50051 CONVGROUPS_TOKEN=$(convgroups token --user example-python) \
        python watch_resume.py            # scripted demo with checks (exit 1 on mismatch)
        python watch_resume.py --follow   # print events forever, resuming after disconnects

The resume rule: remember the revision of the last EventBatch or Bookmark you
got, and reconnect with start_revision = that revision + 1. The server
replays every retained event from there, then a Bookmark, then live events,
with no gap and no duplicate.
"""
import sys
import time

import grpc

from common import Check, connect, describe_error, error_info, events_pb2, groups_grpc, groups_pb2, settings

GROUP = "Watched"
RENAMED = "Watched (renamed)"
TIMEOUT = 30  # seconds; a stream never hangs the demo for longer


class ResumingWatcher:
    """Tracks the last revision seen so a new stream continues where one ended."""

    def __init__(self, stub):
        self.stub = stub
        self.last_revision = None  # None: nothing seen yet, start "now"

    def open(self, timeout=None):
        start = 0 if self.last_revision is None else self.last_revision + 1
        request = events_pb2.WatchGroupEventsRequest(start_revision=start)
        return self.stub.WatchGroupEvents(request, timeout=timeout)

    def seen(self, message) -> None:
        kind = message.WhichOneof("kind")
        if kind == "events":
            self.last_revision = message.events.revision
        elif kind == "bookmark":
            self.last_revision = message.bookmark.revision
        elif kind == "snapshot":
            self.last_revision = message.snapshot.revision


def describe_event(event) -> str:
    kind = event.WhichOneof("kind")
    body = getattr(event, kind)
    fields = ", ".join(f"{f.name}={v if not hasattr(v, '__iter__') or isinstance(v, str) else list(v)!r}"
                       for f, v in body.ListFields())
    return f"rev {event.revision} {kind}({fields}) -> groups {list(event.group_names)}"


def next_batch(stream, watcher: ResumingWatcher):
    """The next EventBatch of the stream; bookmarks on the way only move the resume point."""
    for message in stream:
        watcher.seen(message)
        if message.WhichOneof("kind") == "events":
            return message.events
    raise RuntimeError("stream ended without an event batch")


def demo(addr: str, token: str) -> None:
    check = Check("python watch/resume")
    channel = connect(addr, token)
    groups = groups_grpc.ConversationGroupServiceStub(channel)
    listed = groups.GetConversationGroupList(groups_pb2.GetConversationGroupListRequest(), timeout=10)
    for leftover in (GROUP, RENAMED):
        if leftover in listed.group_names:
            groups.DeleteConversationGroup(groups_pb2.DeleteConversationGroupRequest(group_name=leftover), timeout=10)

    # 1. Watch from now: the first message is a bookmark at the current revision.
    watcher = ResumingWatcher(groups)
    stream = watcher.open(timeout=TIMEOUT)
    first = next(stream)
    watcher.seen(first)
    print(f"1. watching; first message: bookmark at revision {first.bookmark.revision}")
    check.equal("first message", first.WhichOneof("kind"), "bookmark")

    # 2. A change shows up on the stream.
    created = groups.CreateConversationGroup(
        groups_pb2.CreateConversationGroupRequest(group_name=GROUP, conversation_ids=["C2Cwatch"]), timeout=10
    )
    batch = next_batch(stream, watcher)
    print(f"2. live:    {describe_event(batch.events[0])}")
    check.equal("live: revision", batch.revision, created.revision)
    check.equal("live: kind", batch.events[0].WhichOneof("kind"), "group_created")
    check.equal("live: name", batch.events[0].group_created.group_name, GROUP)

    # 3. Disconnect, and change something while nobody is watching.
    stream.cancel()
    try:
        next(stream)
    except grpc.RpcError as err:
        check.equal("cancelled", err.code(), grpc.StatusCode.CANCELLED)
    channel.close()
    print(f"3. disconnected after revision {watcher.last_revision}")
    channel = connect(addr, token)
    groups = groups_grpc.ConversationGroupServiceStub(channel)
    watcher.stub = groups
    renamed = groups.RenameConversationGroup(
        groups_pb2.RenameConversationGroupRequest(old_name=GROUP, new_name=RENAMED), timeout=10
    )
    print(f"   while disconnected: renamed to {RENAMED!r} at revision {renamed.revision}")

    # 4. Resume from last seen + 1: exactly the missed event, then a bookmark.
    start = watcher.last_revision + 1
    stream = watcher.open(timeout=TIMEOUT)
    replayed = []
    for message in stream:
        watcher.seen(message)
        kind = message.WhichOneof("kind")
        if kind == "bookmark":
            bookmark = message.bookmark.revision
            break
        replayed.append(message.events)
    print(f"4. resumed with start_revision={start}: replayed {len(replayed)} batch(es), then bookmark at {bookmark}")
    for b in replayed:
        print(f"   missed:  {describe_event(b.events[0])}")
    check.equal("replay: batches", [b.revision for b in replayed], [renamed.revision])
    check.equal("replay: kind", replayed[0].events[0].WhichOneof("kind"), "group_renamed")
    check.equal("replay: old name", replayed[0].events[0].group_renamed.old_name, GROUP)
    check.equal("replay: new name", replayed[0].events[0].group_renamed.new_name, RENAMED)
    check.true("replay: bookmark covers it", bookmark >= renamed.revision)

    # 5. And the resumed stream carries on live.
    deleted = groups.DeleteConversationGroup(groups_pb2.DeleteConversationGroupRequest(group_name=RENAMED), timeout=10)
    batch = next_batch(stream, watcher)
    print(f"5. live:    {describe_event(batch.events[0])}")
    check.equal("live after resume: revision", batch.revision, deleted.revision)
    check.equal("live after resume: kind", batch.events[0].WhichOneof("kind"), "group_deleted")
    stream.cancel()

    # 6. Watch errors carry an ErrorInfo too: a start revision in the future.
    future = watcher.last_revision + 1000
    try:
        next(groups.WatchGroupEvents(events_pb2.WatchGroupEventsRequest(start_revision=future), timeout=TIMEOUT))
        check.true("future start_revision fails", False)
    except grpc.RpcError as err:
        info = error_info(err)
        print(f"6. watch from {future} -> {describe_error(err)}")
        check.equal("future: code", err.code(), grpc.StatusCode.OUT_OF_RANGE)
        check.equal("future: reason", info and info.reason, "REVISION_IN_FUTURE")
        check.true("future: metadata current_revision", info is not None and "current_revision" in info.metadata)
    channel.close()
    check.done()


def follow(addr: str, token: str) -> None:
    """Prints events until interrupted, resuming after every disconnect."""
    watcher = ResumingWatcher(groups_grpc.ConversationGroupServiceStub(connect(addr, token)))
    backoff = 1.0
    while True:
        try:
            for message in watcher.open():
                watcher.seen(message)
                backoff = 1.0
                if message.WhichOneof("kind") == "events":
                    for event in message.events.events:
                        print(describe_event(event), flush=True)
        except grpc.RpcError as err:
            info = error_info(err)
            reason = info.reason if info else ""
            if reason == "SHUTTING_DOWN":
                # The server says where to continue (the same rule as ours).
                watcher.last_revision = int(info.metadata["resume_revision"]) - 1
            elif reason in ("REVISION_COMPACTED", "REVISION_IN_FUTURE"):
                # Too far behind (or a different server): list again, then
                # watch from now.
                watcher.last_revision = None
            elif err.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
            print(f"stream ended ({describe_error(err)}); resuming from {watcher.last_revision}", file=sys.stderr)
        time.sleep(backoff)
        backoff = min(backoff * 2, 30.0)


if __name__ == "__main__":
    address, bearer = settings()
    try:
        if "--follow" in sys.argv[1:]:
            follow(address, bearer)
        else:
            demo(address, bearer)
    except grpc.RpcError as err:
        print(f"FAIL unexpected error: {describe_error(err)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        pass
