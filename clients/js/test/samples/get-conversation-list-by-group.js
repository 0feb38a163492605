// Tencent Cloud Chat web SDK documentation, "Conversation Group" > "Getting the conversation list of a group (getConversationList with groupName)":
// https://www.tencentcloud.com/document/product/1047/50289
// (the same page: https://trtc.io/document/66159). The code after the
// create line is the documentation's sample as written; only the import and
// the create options differ from a Tencent app.
import TencentCloudChat from 'convgroups-chat'; // Tencent: import TencentCloudChat from '@tencentcloud/chat';
import { options } from './options.js'; // Tencent: let options = { SDKAppID: 0 };
let chat = TencentCloudChat.create(options);

// Get the list of conversations in the specified conversation group
let promise = chat.getConversationList({ groupName: 'Suppliers' });
promise.then(function(imResponse) {
  const conversationList = imResponse.data.conversationList; // List of conversations in the group
});
