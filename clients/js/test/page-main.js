// The test page's script (bundled into test/page/ by
// scripts/bundle-test-page.js): runs the Tencent samples in the browser
// against the server named in the query (?url=...&token=...) and leaves the
// outcome in window.samplesResult for test/run.js.
import { runSamples } from './samples-suite.js';

const params = new URLSearchParams(location.search);
runSamples({ url: params.get('url'), token: params.get('token') }).then(
  (result) => {
    window.samplesResult = { ok: true, ...result };
  },
  (err) => {
    window.samplesResult = { ok: false, error: String(err?.stack ?? err) };
  },
);
