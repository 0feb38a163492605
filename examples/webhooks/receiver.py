import os
from flask import Flask, request
from standardwebhooks.webhooks import Webhook

app, wh, seen = Flask(__name__), Webhook(os.environ["WEBHOOK_SECRET"]), set()

@app.post("/convgroups")
def hook():
    batch = wh.verify(request.get_data(), dict(request.headers))  # raises if not signed by us
    if request.headers["webhook-id"] not in seen:                  # at least once: deduplicate
        seen.add(request.headers["webhook-id"])
        for event in batch["events"]:
            print(event["userId"], event["revision"], flush=True)
    return "", 204

app.run(port=int(os.environ.get("PORT", "8080")))
