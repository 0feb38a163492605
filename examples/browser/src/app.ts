// The page: lists the user's groups and keeps the list live with
// WatchGroupEvents; a small form creates groups and shows the ErrorInfo of a
// failed call.
//
// Open it as  /?server=http://127.0.0.1:50051&token=<convgroups token ...>
// (or fill in the form). List first, then watch from the listed revision + 1:
// nothing is missed between the two. After a disconnect the watch resumes
// from the last revision it saw + 1.
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { GroupEvent } from "./gen/convgroups/v1/events_pb.js";
import { callError, describeError, groupsClient, isAbort, type GroupsClient } from "./client.js";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

const statusLine = $<HTMLSpanElement>("status");
const groupRows = $<HTMLTableSectionElement>("group-rows");
const eventList = $<HTMLOListElement>("events");
const errorBox = $<HTMLDivElement>("error");

function setStatus(text: string, state: "connecting" | "live" | "error") {
  statusLine.textContent = text;
  statusLine.dataset.state = state;
}

async function refreshGroups(client: GroupsClient): Promise<bigint> {
  const list = await client.getConversationGroupList({});
  groupRows.replaceChildren(
    ...list.groups.map((g) => {
      const row = document.createElement("tr");
      row.dataset.group = g.name;
      for (const [cls, text] of [
        ["name", g.name],
        ["count", String(g.conversationCount)],
        ["unread", String(g.unreadCount)],
      ]) {
        const cell = document.createElement("td");
        cell.className = cls;
        cell.textContent = text;
        row.append(cell);
      }
      return row;
    }),
  );
  $("empty").hidden = list.groups.length > 0;
  return list.revision;
}

function describeEvent(e: GroupEvent): string {
  const k = e.kind;
  switch (k.case) {
    case "groupCreated":
      return `created “${k.value.groupName}” with ${k.value.conversationIds.join(", ") || "nothing"}`;
    case "groupDeleted":
      return `deleted “${k.value.groupName}”`;
    case "groupRenamed":
      return `renamed “${k.value.oldName}” to “${k.value.newName}”`;
    case "groupsReordered":
      return `reordered: ${k.value.groupNames.join(", ")}`;
    case "conversationsAddedToGroup":
      return `added ${k.value.conversationIds.join(", ")} to “${k.value.groupName}”`;
    case "conversationsDeletedFromGroup":
      return `removed ${k.value.conversationIds.join(", ")} from “${k.value.groupName}”`;
    case "conversationsChanged":
      return `conversations changed: ${k.value.conversationIds.join(", ")}`;
    case "conversationsDeleted":
      return `conversations deleted: ${k.value.conversationIds.join(", ")}`;
    default:
      return "unknown event";
  }
}

function logEvent(e: GroupEvent) {
  const item = document.createElement("li");
  item.dataset.kind = e.kind.case ?? "";
  const time = e.time ? timestampDate(e.time).toLocaleTimeString() : "";
  item.textContent = `rev ${e.revision} · ${time} · ${describeEvent(e)}`;
  eventList.prepend(item);
}

function showError(err: unknown) {
  const { code, message, info } = callError(err);
  errorBox.hidden = false;
  $("error-code").textContent = code;
  $("error-message").textContent = message;
  $("error-reason").textContent = info?.reason ?? "(no ErrorInfo)";
  $("error-domain").textContent = info?.domain ?? "";
  $("error-metadata").textContent = info
    ? Object.entries(info.metadata)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([key, value]) => `${key}=${value}`)
        .join(", ")
    : "";
}

// Watches forever: resumes after every disconnect from the last revision
// seen + 1; lists again if the server no longer has that revision.
async function watch(client: GroupsClient, listedRevision: bigint, signal: AbortSignal) {
  let last = listedRevision;
  for (let attempt = 0; !signal.aborted; attempt++) {
    try {
      for await (const message of client.watchGroupEvents({ startRevision: last + 1n }, { signal })) {
        attempt = 0;
        const kind = message.kind;
        if (kind.case === "bookmark") {
          last = kind.value.revision;
          setStatus(`live · revision ${last}`, "live");
        } else if (kind.case === "events") {
          kind.value.events.forEach(logEvent);
          last = kind.value.revision;
          await refreshGroups(client);
          setStatus(`live · revision ${last}`, "live");
        }
      }
    } catch (err) {
      if (signal.aborted || isAbort(err)) return;
      const { info } = callError(err);
      if (info?.reason === "REVISION_COMPACTED" || info?.reason === "REVISION_IN_FUTURE") {
        last = await refreshGroups(client).catch(() => last);
      }
      setStatus(`disconnected (${describeError(err)}); resuming from revision ${last + 1n}`, "error");
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(1000 * 2 ** attempt, 30_000)));
  }
}

let running: AbortController | undefined;

async function connect(server: string, token: string) {
  running?.abort();
  const controller = new AbortController();
  running = controller;
  const client = groupsClient(server, token);
  setStatus("connecting…", "connecting");
  $("groups-section").hidden = false;
  $<HTMLFormElement>("create-form").onsubmit = async (ev) => {
    ev.preventDefault();
    const name = $<HTMLInputElement>("new-name").value.trim();
    const ids = $<HTMLInputElement>("new-ids")
      .value.split(",")
      .map((s) => s.trim())
      .filter(Boolean);
    errorBox.hidden = true;
    try {
      await client.createConversationGroup({ groupName: name, conversationIds: ids });
    } catch (err) {
      showError(err);
    }
  };
  try {
    const revision = await refreshGroups(client);
    setStatus(`live · revision ${revision}`, "live");
    await watch(client, revision, controller.signal);
  } catch (err) {
    setStatus(`error: ${describeError(err)}`, "error");
    showError(err);
  }
}

const params = new URLSearchParams(location.search);
const serverInput = $<HTMLInputElement>("server");
const tokenInput = $<HTMLInputElement>("token");
serverInput.value = params.get("server") ?? `${location.protocol}//${location.hostname}:50051`;
tokenInput.value = params.get("token") ?? "";
$<HTMLFormElement>("connect-form").onsubmit = (ev) => {
  ev.preventDefault();
  void connect(serverInput.value.trim(), tokenInput.value.trim());
};
if (tokenInput.value) void connect(serverInput.value.trim(), tokenInput.value);
else setStatus("enter the server and a token", "connecting");
