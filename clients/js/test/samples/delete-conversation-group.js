// Tencent Cloud Chat web SDK documentation, "Conversation Group" > "Deleting a conversation group":
// https://trtc.io/document/50289 (also
// https://www.tencentcloud.com/document/product/1047/50289). The code after
// the create line is the page's sample, compared token for token with the
// page's text; only the import and the create options differ from a Tencent
// app.
//
// This sample calls `tim.deleteConversationGroup`, the name the older SDK's
// documentation gave the instance, where the others say `chat`; so its
// instance is created as `tim`.
import TencentCloudChat from 'convgroups-chat'; // Tencent: import TencentCloudChat from '@tencentcloud/chat';
import { options } from './options.js'; // Tencent: let options = { SDKAppID: 0 };
let tim = TencentCloudChat.create(options);

let promise = tim.deleteConversationGroup('Suppliers');
promise.then(function() {
  // Deleted successfully
}).catch(function(imError){
  console.warn('deleteConversationGroup error:', imError);
});
