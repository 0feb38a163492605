// Tencent Cloud Chat web SDK documentation, "Conversation Group" > "Renaming a conversation group":
// https://www.tencentcloud.com/document/product/1047/50289
// (the same page: https://trtc.io/document/66159). The code after the
// create line is the documentation's sample as written; only the import and
// the create options differ from a Tencent app.
import TencentCloudChat from 'convgroups-chat'; // Tencent: import TencentCloudChat from '@tencentcloud/chat';
import { options } from './options.js'; // Tencent: let options = { SDKAppID: 0 };
let chat = TencentCloudChat.create(options);

let promise = chat.renameConversationGroup({
  oldName: 'Suppliers',
  newName: 'Suppliers1',
});
promise.then(function() {
  // Renamed the conversation group successfully
}).catch(function(imError){
  console.warn('renameConversationGroup error:', imError);
});
