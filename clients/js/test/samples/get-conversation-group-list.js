// Tencent Cloud Chat web SDK documentation, "Conversation Group" > "Getting the list of conversation groups":
// https://www.tencentcloud.com/document/product/1047/50289
// (the same page: https://trtc.io/document/66159). The code after the
// create line is the documentation's sample as written; only the import and
// the create options differ from a Tencent app.
import TencentCloudChat from 'convgroups-chat'; // Tencent: import TencentCloudChat from '@tencentcloud/chat';
import { options } from './options.js'; // Tencent: let options = { SDKAppID: 0 };
let chat = TencentCloudChat.create(options);

let promise = chat.getConversationGroupList();
promise.then(function(imResponse) {
  // Got the list of conversation groups successfully
  const groupNameList = imResponse.data;
}).catch(function(imError){
  console.warn('getConversationGroupList error:', imError);
});
