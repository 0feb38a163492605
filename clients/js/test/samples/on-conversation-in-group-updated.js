// Tencent Cloud Chat web SDK documentation, "Conversation Group" > "Listening for the notification of a conversation change in a conversation group":
// https://trtc.io/document/50289 (also
// https://www.tencentcloud.com/document/product/1047/50289). The code after
// the create line is the page's sample, compared token for token with the
// page's text; only the import and the create options differ from a Tencent
// app.
import TencentCloudChat from 'convgroups-chat'; // Tencent: import TencentCloudChat from '@tencentcloud/chat';
import { options } from './options.js'; // Tencent: let options = { SDKAppID: 0 };
let chat = TencentCloudChat.create(options);

let onConversationInGroupUpdated = function(event) {
  const { groupName, conversationList }  = event.data;
  // groupName - Conversation group name
  // conversationList - List of conversations in the group
}
chat.on(TencentCloudChat.EVENT.CONVERSATION_IN_GROUP_UPDATED, onConversationInGroupUpdated);
