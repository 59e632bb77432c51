"""Writes a signed Meta comments delivery with N items: body to a file, signature to stdout."""
import hashlib
import hmac
import json
import sys

n, path, secret = int(sys.argv[1]), sys.argv[2], sys.argv[3]
changes = [
    {
        "field": "comments",
        "value": {
            "from": {"id": f"17841405{i:09d}", "username": f"user{i}"},
            "media": {"id": "18000000000000001", "media_product_type": "REELS"},
            "id": f"179000{i:011d}",
            "text": "Price??? \U0001F60D \u0915\u0940\u092e\u0924 kitna?",
        },
    }
    for i in range(n)
]
body = json.dumps(
    {"object": "instagram", "entry": [{"id": "17841400000000000", "time": 1732200000, "changes": changes}]},
    separators=(",", ":"),
    ensure_ascii=True,  # Meta escapes non-ASCII as \uXXXX
).replace("/", "\\/").encode()
with open(path, "wb") as f:
    f.write(body)
print("sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest())
