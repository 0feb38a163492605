// Tencent Cloud Chat web SDK documentation, "Conversation Group" > "Renaming a conversation group":
// https://trtc.io/document/50289 (also
// https://www.tencentcloud.com/document/product/1047/50289). The code after
// the create line is the page's sample, compared token for token with the
// page's text; only the import and the create options differ from a Tencent
// app.
import TencentCloudChat from 'convgroups-chat'; // Tencent: import TencentCloudChat from '@tencentcloud/chat';
import { options } from './options.js'; // Tencent: let options = { SDKAppID: 0 };
let chat = TencentCloudChat.create(options);

let promise = chat.renameConversationGroup({
  oldName: 'Suppliers_old',
  newName: 'Suppliers_new'
});
promise.then(function(imResponse) {
  // Renamed successfully
}).catch(function(imError){
  console.warn('renameConversationGroup error:', imError);
});
