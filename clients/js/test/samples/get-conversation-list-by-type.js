// Tencent Cloud Chat web SDK documentation, "Get Conversations" > "Getting the Conversation List (all group conversations)":
// https://trtc.io/document/48322 (also
// https://www.tencentcloud.com/document/product/1047/48322). The code after
// the create line is the documentation's sample as written; only the import
// and the create options differ from a Tencent app.
import TencentCloudChat from 'convgroups-chat'; // Tencent: import TencentCloudChat from '@tencentcloud/chat';
import { options } from './options.js'; // Tencent: let options = { SDKAppID: 0 };
let chat = TencentCloudChat.create(options);

// Get all group conversations
let promise = chat.getConversationList({ type: TencentCloudChat.TYPES.CONV_GROUP });
promise.then(function(imResponse) {
  const conversationList = imResponse.data.conversationList; // Conversation list
});
