// Tencent Cloud Chat web SDK documentation, "Conversation Group" > "Adding a conversation to a group":
// https://trtc.io/document/50289 (also
// https://www.tencentcloud.com/document/product/1047/50289). The code after
// the create line is the page's sample, compared token for token with the
// page's text; only the import and the create options differ from a Tencent
// app.
//
// One character differs: the page writes `['GROUPtest', 'C2Cexample'],,` (two
// commas), which no JavaScript engine parses (SyntaxError: an object literal
// cannot hold an empty property); it runs here with one comma.
import TencentCloudChat from 'convgroups-chat'; // Tencent: import TencentCloudChat from '@tencentcloud/chat';
import { options } from './options.js'; // Tencent: let options = { SDKAppID: 0 };
let chat = TencentCloudChat.create(options);

let promise = chat.addConversationsToGroup({
  conversationIDList: ['GROUPtest', 'C2Cexample'],
  groupName: 'Suppliers_new',
});
promise.then(function(imResponse) {
  // Added the conversation to the group successfully
  const { successConversationIDList, failureConversationIDList } = imResponse.data;
  // successConversationIDList - List of IDs of the conversations that were created successfully
  // Get the conversation list
  const conversationList = chat.getConversationList(successConversationIDList);
  // failureConversationIDList - List of IDs of the conversations that failed to be created
  failureConversationIDList.forEach((item) => {
    const { conversationID, code, message } = item;
  });
}).catch(function(imError){
  console.warn('addConversationsToGroup error:', imError);
});
