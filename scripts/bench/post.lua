-- wrk script: POST one pre-signed Meta delivery (BODY_FILE, SIGNATURE from the environment).
-- wrk itself reports "Non-2xx or 3xx responses" if any answer was not a success.
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Hub-Signature-256"] = os.getenv("SIGNATURE")
