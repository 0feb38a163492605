// Tencent Cloud Chat web SDK documentation, "Conversation Group" > "Listening for the notification of a conversation group change":
// https://trtc.io/document/50289 (also
// https://www.tencentcloud.com/document/product/1047/50289). The code after
// the create line is the page's sample, compared token for token with the
// page's text; only the import and the create options differ from a Tencent
// app.
import TencentCloudChat from 'convgroups-chat'; // Tencent: import TencentCloudChat from '@tencentcloud/chat';
import { options } from './options.js'; // Tencent: let options = { SDKAppID: 0 };
let chat = TencentCloudChat.create(options);

let onConversationGroupListUpdated = function(event) {
  console.log(event.data); // List of all conversation groups
}
chat.on(TencentCloudChat.EVENT.CONVERSATION_GROUP_LIST_UPDATED, onConversationGroupListUpdated);
