const express = require("express");
const { Webhook } = require("standardwebhooks");
const wh = new Webhook(process.env.WEBHOOK_SECRET), seen = new Set();
express().post("/convgroups", express.raw({ type: "application/json" }), (req, res) => {
  const batch = wh.verify(req.body, req.headers);                  // throws if not signed by us
  if (!seen.has(req.headers["webhook-id"])) {
    seen.add(req.headers["webhook-id"]);
    for (const event of batch.events) console.log(event.userId, event.revision);
  }
  res.sendStatus(204);
}).listen(process.env.PORT || 8080);
