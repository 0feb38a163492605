// Tencent Cloud Chat web SDK documentation, "Conversation Group" > "Adding conversations to a group":
// https://www.tencentcloud.com/document/product/1047/50289
// (the same page: https://trtc.io/document/66159). The code after the
// create line is the documentation's sample as written; only the import and
// the create options differ from a Tencent app.
import TencentCloudChat from 'convgroups-chat'; // Tencent: import TencentCloudChat from '@tencentcloud/chat';
import { options } from './options.js'; // Tencent: let options = { SDKAppID: 0 };
let chat = TencentCloudChat.create(options);

let promise = chat.addConversationsToGroup({
  conversationIDList: ['GROUPtest', 'C2Cexample'],
  groupName: 'Suppliers',
});
promise.then(function(imResponse) {
  // Added conversations to the group successfully
  const { successConversationIDList, failureConversationIDList } = imResponse.data;
  // successConversationIDList - List of IDs of the conversations that were added successfully
  // Get the conversation list
  const conversationList = chat.getConversationList(successConversationIDList);

  // failureConversationIDList - List of IDs of the conversations that failed to be added
  failureConversationIDList.forEach((item) => {
    const { conversationID, code, message } = item;
  });
}).catch(function(imError){
  console.warn('addConversationsToGroup error:', imError);
});
