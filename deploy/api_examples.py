"""Print the README's "every endpoint" section from a running `make run`, exactly as the
API answers, so the examples can be regenerated instead of edited by hand.

    .venv/bin/python deploy/api_examples.py http://127.0.0.1:6066 dev-admin-key > out.md
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

OWNER = "demo@example.com"
KEPT_HEADERS = ("X-Total-Count", "Retry-After")
CHECK_BODY = {
    "product": "OPERATIONS_FILE",
    "leaf_user_id": "farmer-a",
    "geometry": {
        "type": "Polygon",
        "coordinates": [
            [
                [139.5515, 35.6741],
                [139.5525, 35.6741],
                [139.5525, 35.6748],
                [139.5515, 35.6748],
                [139.5515, 35.6741],
            ]
        ],
    },
}


def call(base: str, method: str, path: str, key: str | None, body: Any = None) -> tuple[str, str]:
    """The curl line a reader can paste, and what the API printed (status and headers too)."""
    data = json.dumps(body, separators=(",", ":")).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    curl = ["curl -s"] + ([f"-X {method}"] if method != "GET" else [])
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
        curl.append(f'-H "Authorization: Bearer {_shown(key)}"')
    if data is not None:
        request.add_header("Content-Type", "application/json")
        curl += ['-H "Content-Type: application/json"', f"-d '{data.decode()}'"]
    curl.append(f'"{base}{path}"')
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, reason, headers, raw = (
                response.status,
                response.reason,
                response.headers,
                response.read(),
            )
    except urllib.error.HTTPError as err:
        status, reason, headers, raw = err.code, err.reason, err.headers, err.read()
    text = json.dumps(json.loads(raw), indent=1, ensure_ascii=False) if raw else ""
    lines = [f"# HTTP/1.1 {status} {reason}"]
    lines += [f"# {h}: {headers[h]}" for h in KEPT_HEADERS if h in headers]
    return "$ " + " ".join(curl), "\n".join([text, *lines])


def _shown(key: str) -> str:
    return "$ADMIN_KEY" if not key.startswith("acr_") else "$OWNER_KEY"


def main(base: str, admin: str) -> int:
    today = datetime.now(UTC).date().isoformat()
    line, created = call(base, "POST", "/admin/api-keys", admin, {"apiOwner": OWNER})
    owner_key = json.loads(created.split("\n# HTTP")[0])["apiKey"]
    key_id = json.loads(created.split("\n# HTTP")[0])["keyId"]
    shown = created.replace(owner_key, "acr_…(shown once)")
    contracts = json.loads(
        call(base, "GET", f"/billing/contracts?apiOwner={OWNER}&size=100", admin)[1].split(
            "\n# HTTP"
        )[0]
    )
    unified = next(c for c in contracts if c["product"] == "UNIFIED_AREA")
    cid, start = unified["contractId"], min(c["startDate"] for c in contracts)
    calls = [
        (
            "GET /billing/contracts",
            "GET",
            "/billing/contracts?unit=hectares&size=3",
            owner_key,
            None,
        ),
        (
            "GET /billing/contracts/{id}",
            "GET",
            f"/billing/contracts/{cid}?unit=hectares",
            owner_key,
            None,
        ),
        (
            "GET /billing/contracts/{id}/consumption",
            "GET",
            f"/billing/contracts/{cid}/consumption?timestamp={today}&unit=hectares",
            owner_key,
            None,
        ),
        (
            "GET /billing/contracts/{id}/consumption/api-owner",
            "GET",
            f"/billing/contracts/{cid}/consumption/api-owner?startTime={start}&endTime={today}&unit=hectares",
            owner_key,
            None,
        ),
        (
            "GET /billing/contracts/{id}/consumption/leaf-user/{leafUserId}",
            "GET",
            f"/billing/contracts/{cid}/consumption/leaf-user/farmer-a?startTime={start}&endTime={today}"
            "&unit=hectares",
            owner_key,
            None,
        ),
        (
            "PUT /billing/contracts/{id}/quota (admin)",
            "PUT",
            f"/billing/contracts/{cid}/quota",
            admin,
            {"quota": 2000, "unit": "acres"},
        ),
        (
            "GET /usage/summary",
            "GET",
            f"/usage/summary?start_date={start}&end_date={today}&unit=hectares",
            owner_key,
            None,
        ),
        (
            "GET /usage/summary: a week to a date-time end_date, with projections",
            "GET",
            f"/usage/summary?period=week&end_date={today}T23:59:59Z&include_projections=true"
            "&unit=hectares",
            owner_key,
            None,
        ),
        (
            "GET /usage/breakdown",
            "GET",
            "/usage/breakdown?period=month&recent=1&unit=hectares",
            owner_key,
            None,
        ),
        (
            "GET /usage/details",
            "GET",
            "/usage/details?page_size=2&type=operationProcessingFinished",
            owner_key,
            None,
        ),
        (
            "GET /usage/by-period",
            "GET",
            f"/usage/by-period?period_type=day&start_date={start}&end_date={today}&unit=hectares",
            owner_key,
            None,
        ),
        (
            "GET /usage/by-period: ISO weeks",
            "GET",
            "/usage/by-period?period_type=week&product=UNIFIED_AREA&unit=hectares",
            owner_key,
            None,
        ),
        (
            "GET /usage/top-users",
            "GET",
            "/usage/top-users?product=FIELDS_BOUNDARY&unit=hectares",
            owner_key,
            None,
        ),
        ("POST /usage/check", "POST", "/usage/check?unit=m2", owner_key, CHECK_BODY),
        ("GET /usage/plan", "GET", "/usage/plan?product=UNIFIED_AREA&unit=acres", owner_key, None),
        ("401 without a key", "GET", "/billing/contracts", None, None),
        ("400 naming the parameter", "GET", "/usage/details?page_size=500", owner_key, None),
        (
            "400 for a date-time that is not one",
            "GET",
            "/usage/breakdown?end_date=2026-03-31T25:00:00",
            owner_key,
            None,
        ),
        (
            "GET /billing/contracts (admin, every owner)",
            "GET",
            "/billing/contracts?unit=hectares&size=2",
            admin,
            None,
        ),
        ("GET /api-keys", "GET", "/api-keys", owner_key, None),
        # Last: the key used for every call above is revoked here.
        ("DELETE /api-keys/{keyId}", "DELETE", f"/api-keys/{key_id}", owner_key, None),
        ("401 once revoked", "GET", "/usage/plan", owner_key, None),
    ]
    out = [f"##### POST /admin/api-keys\n```\n{line}\n{shown}\n```"]
    for title, method, path, key, body in calls:
        shown_line, answer = call(base, method, path, key, body)
        out.append(f"##### {title}\n```\n{shown_line}\n{answer}\n```")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
