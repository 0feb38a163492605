// The create options of the samples: the test sets them before it imports a
// sample ({ url, token, log }), where a Tencent app has { SDKAppID }.
export const options = globalThis.CONVGROUPS_SAMPLE_OPTIONS;
