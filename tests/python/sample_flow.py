"""The sample flow as a user runs it, in a venv where dpopkit was pip-installed (run by
test_packaging.py, not collected by pytest).

usage: python sample_flow.py TOKEN_ENDPOINT API KEY_FILE PASSWORD
Prints one JSON line: status, client_id, live handles, where dpopkit and its library came
from."""

import json
import sys

import dpopkit

token_endpoint, api, key_file, password = sys.argv[1:5]
with dpopkit.PrivateKey.from_file(key_file, password) as key, dpopkit.Http() as http:
    http.set_dpop_key(key)
    http.auth_token = json.dumps(
        {"client_secret": "secret", "client_id": "m2m.dpop", "token_endpoint": token_endpoint, "scope": "api"}
    )
    body = http.quick_get_str(api)
    claims = {c["type"]: c["value"] for c in json.loads(body)}
    status = http.last_status
print(
    json.dumps(
        {
            "status": status,
            "client_id": claims.get("client_id"),
            "live_handles": dpopkit.live_handles(),
            "version": dpopkit.version(),
            "package": dpopkit.__file__,
            "library": dpopkit.library_path(),
        }
    )
)
