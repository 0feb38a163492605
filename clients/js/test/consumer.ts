// Type-checked by `npm run build` (tsconfig.consumer.json) against dist/:
// an app's view of the package's types. It is never run.
import TencentCloudChat, { ChatError, type ChatEvent, type Conversation } from "convgroups-chat";

export async function app(getToken: () => Promise<string>): Promise<void> {
  const chat = TencentCloudChat.create({ url: "http://127.0.0.1:50051", getToken });
  chat.on(TencentCloudChat.EVENT.CONVERSATION_GROUP_LIST_UPDATED, (event: ChatEvent<string[]>) => {
    const names: string[] = event.data;
    void names;
  });
  chat.on(TencentCloudChat.EVENT.CONVERSATION_IN_GROUP_UPDATED, (event: ChatEvent<{ groupName: string; conversationList: Conversation[] }>) => {
    void event.data.conversationList.map((c) => c.conversationID);
  });
  const created = await chat.createConversationGroup({ groupName: "Suppliers", conversationIDList: ["C2Cbob"] });
  const code: 0 = created.code;
  const ok: string[] = created.data.successConversationIDList;
  for (const f of created.data.failureConversationIDList) {
    const c: number | string = f.code;
    void c;
  }
  const groups: string[] = (await chat.getConversationGroupList()).data;
  const list: Conversation[] = (await chat.getConversationList({ groupName: "Suppliers" })).data.conversationList;
  const total: number = chat.getTotalUnreadMessageCount();
  const inGroup: number = (await chat.getUnreadMessageCountByFilter({ groupName: "Work" })).data;
  const ready: boolean = chat.isReady();
  await chat.renameConversationGroup({ oldName: "Suppliers", newName: "Vendors", expectedRevision: created.data.revision });
  try {
    await chat.deleteConversationGroup("Nope");
  } catch (err) {
    if (err instanceof ChatError && err.code === 51009) void err.metadata["group_name"];
  }
  void [code, ok, groups, list, total, inGroup, ready, chat.getRevision(), TencentCloudChat.TYPES.CONV_C2C];
  await chat.destroy();
}
