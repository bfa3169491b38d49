"""The API on two real workers and a real broker: snapshots, oracle, security, restarts.

One cluster per module (a broker start and two worker starts are most of the run time);
the tests run in file order and the last one restarts the workers.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from aiokafka import AIOKafkaConsumer, TopicPartition

from aggregates.contracts import OWNER_SCOPE
from schemas.exports import original_text
from streams.api.auth import fingerprint
from streams.topics import partition_of
from tests.support.kafka import (
    ROOT,
    Broker,
    Worker,
    produce_events,
    read_topic,
    wait_for_group,
    wait_until,
)
from tests.support.scenario import Scenario, build
from tests.support.snapshots import last_totals, latest_snapshots

pytestmark = pytest.mark.integration

ADMIN = "integration-admin-key"
APP_ID = "acreage-api-it"
PARTITIONS = 4  # what tests.support.kafka.Worker configures
REL = 1e-6
ENV = {
    "ACREAGE_ADMIN_KEY": ADMIN,
    "ACREAGE_RATE_LIMIT_PER_MIN": "100000",
    "ACREAGE_CHECK_RATE_LIMIT_PER_MIN": "100000",
}


@dataclass
class Cluster:
    broker: Broker
    workers: list[Worker]
    farm: Scenario
    rival: Scenario
    keys: dict[str, str]

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.workers[i].web_port}"

    def get(self, i: int, path: str, key: str, **params: Any) -> requests.Response:
        return requests.get(
            self.url(i) + path,
            params=params,
            timeout=60,
            headers={"Authorization": f"Bearer {key}"},
        )


def close(a: float, b: float) -> bool:
    return abs(a - b) <= REL * max(abs(b), 1.0)


def converged(broker: Broker, sc: Scenario) -> bool:
    got = last_totals(latest_snapshots(broker, sc.owner))
    return all(k in got and close(got[k], v) for k, v in sc.oracle().items())


def load(broker: Broker, events: list[dict[str, Any]]) -> None:
    """Boundaries first: input topics are not ordered with each other, and the oracle clips
    operations to boundaries that must already be known when the operation is metered."""
    boundaries = [e for e in events if e["type"].startswith("fieldBoundary")]
    produce_events(broker.bootstrap, boundaries)
    ids = {e["id"] for e in boundaries}

    def recorded() -> bool:
        got = {v["eventId"] for _, v in read_topic(broker.bootstrap, "usage.records")}
        return ids <= got

    assert wait_until(recorded, 120, interval=1.0)
    produce_events(broker.bootstrap, [e for e in events if e not in boundaries])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("api-it")
    broker = Broker(root / "kafka").start()
    workers: list[Worker] = []
    try:
        for i in range(2):
            workers.append(Worker(broker, APP_ID, root / f"w{i}", extra_env=ENV).start())
        wait_for_group(broker, APP_ID, members=2)
        farm = build("farm@example.com", boundaries=300)
        rival = build("rival@example.com", boundaries=200, seed=3)
        load(broker, farm.events + rival.events)
        for sc in (farm, rival):
            assert wait_until(lambda sc=sc: converged(broker, sc), 150, interval=2.0)
        yield Cluster(broker, workers, farm, rival, {})
    finally:
        for w in workers:
            if w.proc is not None:
                w.stop()
        broker.stop()


def create_key(c: Cluster, worker: int, owner: str) -> str:
    resp = requests.post(
        c.url(worker) + "/admin/api-keys",
        json={"apiOwner": owner},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=60,
    )
    assert resp.status_code == 201, resp.text
    key: str = resp.json()["apiKey"]
    return key


def test_integration_keys_from_either_worker_work_on_both(cluster: Cluster) -> None:
    cluster.keys["farm"] = create_key(cluster, 0, cluster.farm.owner)
    cluster.keys["rival"] = create_key(cluster, 1, cluster.rival.owner)
    for i in (0, 1):
        for name in ("farm", "rival"):
            assert cluster.get(i, "/usage/plan", cluster.keys[name]).status_code == 200


def test_integration_cli_creates_a_working_key(cluster: Cluster) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "streams.cli", "keys", "create", "--owner", cluster.farm.owner],
        env=cluster.workers[0].env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip()
    assert wait_until(lambda: cluster.get(1, "/usage/plan", key).status_code == 200, 30, 0.5)


def acreage(c: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with the workers' own settings (ACREAGE_BROKER among them)."""
    return subprocess.run([sys.executable, "-m", "streams.cli", *args],
                          env=c.workers[0].env(), cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_integration_keys_listed_and_revoked_from_the_cli_and_the_api(cluster: Cluster) -> None:
    """A revoked key gets 401 on every worker as soon as the revocation is confirmed."""
    owner = cluster.rival.owner
    made = acreage(cluster, "keys", "create", "--owner", owner)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert wait_until(lambda: cluster.get(0, "/usage/plan", key).status_code == 200, 30, 0.5)
    assert cluster.get(1, "/usage/plan", key).status_code == 200

    def listed() -> dict[str, Any] | None:
        out = acreage(cluster, "keys", "list", "--owner", owner, "--json")
        assert out.returncode == 0, out.stderr
        rows = {r["keyId"]: r for r in json.loads(out.stdout)}
        assert key not in out.stdout and all(len(k) == 16 for k in rows)
        mine = [r for k, r in rows.items() if fingerprint(key).startswith(k)]
        return mine[0] if mine and mine[0]["lastUsedAt"] else None

    row = wait_until(listed, 30, 1.0)
    assert row and row["revokedAt"] is None, row
    revoked = acreage(cluster, "keys", "revoke", "--owner", owner, "--key-id", row["keyId"])
    assert revoked.returncode == 0, revoked.stderr
    assert f"{row['keyId']} of {owner} revoked at " in revoked.stdout
    assert [cluster.get(i, "/usage/plan", key).status_code for i in (0, 1)] == [401, 401]
    listing = cluster.get(1, "/api-keys", ADMIN, apiOwner=owner)
    assert listing.status_code == 200
    assert {r["keyId"]: r["revokedAt"] is not None for r in listing.json()}[row["keyId"]]

    spare = create_key(cluster, 1, owner)
    spare_id = fingerprint(spare)[:16]
    resp = requests.delete(f"{cluster.url(1)}/api-keys/{spare_id}", timeout=60,
                           headers={"Authorization": f"Bearer {spare}"})
    assert resp.status_code == 200 and resp.json()["revokedAt"], resp.text
    assert [cluster.get(i, "/usage/plan", spare).status_code for i in (0, 1)] == [401, 401]
    assert cluster.get(0, "/usage/plan", cluster.keys["rival"]).status_code == 200
    cluster.keys["revoked"] = spare  # still 401 after the restart (the last test)


def test_integration_admin_lists_every_owners_contracts_from_either_worker(
    cluster: Cluster,
) -> None:
    """Each worker holds half the partitions; the same full list from either one means
    at least one of them gathered the other's share."""
    owners = {cluster.farm.owner, cluster.rival.owner}
    each = [cluster.get(0, "/billing/contracts", ADMIN, apiOwner=o, size=100).json()
            for o in sorted(owners)]
    expected = sorted([c for rows in each for c in rows],
                      key=lambda c: (c["apiOwner"], c["contractId"]))
    for i in (0, 1):
        got, total = [], None
        for page in range(1, len(expected) + 1):
            resp = cluster.get(i, "/billing/contracts", ADMIN, page=page, size=1)
            assert resp.status_code == 200, resp.text
            total = resp.headers["X-Total-Count"]
            got += resp.json()
        assert total == str(len(expected)) and got == expected, i


def test_integration_metering_partition_is_the_routing_partition(cluster: Cluster) -> None:
    """Where Faust's producer put each owner's messages is where routing looks for them."""

    async def partitions_of_keys() -> dict[bytes, set[int]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=cluster.broker.bootstrap)
        await consumer.start()
        try:
            topic = f"{APP_ID}-metering"
            tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            found: dict[bytes, set[int]] = {}
            for _ in range(20):
                batch = await consumer.getmany(timeout_ms=500)
                for tp, messages in batch.items():
                    for m in messages:
                        if m.key:
                            found.setdefault(m.key, set()).add(tp.partition)
            return found
        finally:
            await consumer.stop()

    found = asyncio.run(partitions_of_keys())
    for sc in (cluster.farm, cluster.rival):
        assert found[sc.owner.encode()] == {partition_of(sc.owner, PARTITIONS)}


def series(c: Cluster, worker: int, key: str, path: str, start: str, end: str) -> list[Any]:
    rows: list[Any] = []
    page = 1
    while True:
        resp = c.get(
            worker, path, key, startTime=start, endTime=end, unit="m2", size=100, page=page
        )
        assert resp.status_code == 200, resp.text
        rows += resp.json()
        if len(rows) >= int(resp.headers["X-Total-Count"]):
            return rows
        page += 1


def test_integration_api_equals_snapshots_and_oracle_on_both_workers(cluster: Cluster) -> None:
    for name, sc in (("farm", cluster.farm), ("rival", cluster.rival)):
        key = cluster.keys[name]
        snaps = latest_snapshots(cluster.broker, sc.owner)
        oracle = sc.oracle()
        contracts = [cluster.get(i, "/billing/contracts", key, unit="m2").json() for i in (0, 1)]
        assert contracts[0] == contracts[1] and contracts[0]
        for contract in contracts[0]:
            product, cid = contract["product"], contract["contractId"]
            assert close(contract["footprint"], oracle[(product, OWNER_SCOPE)]), product
            billable = sum(v for (p, s), v in oracle.items() if p == product and s != OWNER_SCOPE)
            assert close(contract["used"], billable), product  # SPEC §3: sum of user totals
            mine = [s for s in snaps.values() if s["contractId"] == cid]
            start, end = min(s["date"] for s in mine), max(s["date"] for s in mine)
            for scope in {s["scope"] for s in mine}:
                path = f"/billing/contracts/{cid}/consumption/" + (
                    "api-owner" if scope == OWNER_SCOPE else scope.replace(":", "/", 1)
                )
                rows = [series(cluster, i, key, path, start, end) for i in (0, 1)]
                assert rows[0] == rows[1]
                by_date = {r["date"]: r for r in rows[0]}
                for s in (s for s in mine if s["scope"] == scope):
                    row = by_date[s["date"]]
                    assert close(row["areaAdded"], s["areaAddedM2"]), (product, scope, s)
                    assert close(row["totalArea"], s["totalAreaM2"]), (product, scope, s)
                assert close(rows[0][-1]["totalArea"], oracle[(product, scope)])


def test_integration_usage_details_has_one_record_per_event(cluster: Cluster) -> None:
    key = cluster.keys["farm"]
    ids = {
        v["eventId"]
        for _, v in read_topic(cluster.broker.bootstrap, "usage.records")
        if v["apiOwner"] == cluster.farm.owner
    }
    for i in (0, 1):
        resp = cluster.get(i, "/usage/details", key, page_size=100)
        assert int(resp.headers["X-Total-Count"]) == len(ids)
    failed = cluster.get(
        0, "/usage/details", key, type="satelliteImageProcessingFinished", page_size=100
    ).json()
    assert sum(r["status"] == "FAILED" for r in failed["records"]) == cluster.farm.failed


def test_integration_exports_are_the_same_from_either_worker(cluster: Cluster) -> None:
    """One worker holds the owner; the other relays its CSV as it streams."""
    key = cluster.keys["farm"]
    ids = {
        v["eventId"]
        for _, v in read_topic(cluster.broker.bootstrap, "usage.records")
        if v["apiOwner"] == cluster.farm.owner
    }
    contract = cluster.get(0, "/billing/contracts", key, unit="m2",
                           product="UNIFIED_AREA").json()[0]
    for path in ("/usage/details.csv", f"/billing/contracts/{contract['contractId']}/report"):
        bodies = []
        for i in (0, 1):
            resp = requests.get(cluster.url(i) + path, params={"unit": "m2"}, timeout=60,
                                headers={"Authorization": f"Bearer {key}", "Accept": "text/csv"})
            assert resp.status_code == 200, resp.text
            assert resp.headers["Content-Type"].startswith("text/csv")
            assert resp.headers["Transfer-Encoding"] == "chunked"
            bodies.append(resp.content)
        assert bodies[0] == bodies[1], path
        rows = list(csv.DictReader(io.StringIO(bodies[0].decode(), newline="")))
        if path == "/usage/details.csv":
            assert sorted(original_text(r["event_id"]) for r in rows) == sorted(ids)
        else:
            assert close(float(rows[0]["uniqueArea_m2"]), contract["footprint"])
            users = sum(float(r["uniqueArea_m2"]) for r in rows[1:])
            assert close(users, contract["used"])
    for i in (0, 1):
        resp = requests.get(cluster.url(i) + "/usage/details.csv", timeout=60,
                            headers={"Authorization": "Bearer nope", "Accept": "text/csv"})
        assert resp.status_code == 401 and resp.headers["Content-Type"].startswith(
            "application/json")


def test_integration_no_key_reveals_another_owner(cluster: Cluster) -> None:
    rival_contract = cluster.get(0, "/billing/contracts", cluster.keys["rival"]).json()[0]
    farm_key = cluster.keys["farm"]
    forged = farm_key[:-4] + "AAAA"
    for i in (0, 1):
        for path in (
            f"/billing/contracts/{rival_contract['contractId']}",
            f"/billing/contracts/{rival_contract['contractId']}/consumption",
        ):
            resp = cluster.get(i, path, farm_key)
            assert resp.status_code == 404 and cluster.rival.owner not in resp.text
        assert (
            cluster.get(i, "/usage/summary", farm_key, apiOwner=cluster.rival.owner).status_code
            == 404
        )
        for bad in ("", "nope", forged, ADMIN + "x"):
            assert cluster.get(i, "/billing/contracts", bad).status_code == 401
        admin = cluster.get(i, f"/billing/contracts/{rival_contract['contractId']}", ADMIN)
        assert admin.status_code == 200 and admin.json()["apiOwner"] == cluster.rival.owner


def test_integration_quota_put_by_contract_id_alerts(cluster: Cluster) -> None:
    key = cluster.keys["rival"]
    contract = cluster.get(0, "/billing/contracts", key, product="UNIFIED_AREA", unit="m2").json()[
        0
    ]
    quota = contract["used"] / 2
    for i in (0, 1):  # one of them finds the contract on the other worker
        resp = requests.put(
            cluster.url(i) + f"/billing/contracts/{contract['contractId']}/quota?unit=m2",
            json={"quota": quota, "unit": "m2"},
            timeout=60,
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        assert resp.status_code == 202 and close(resp.json()["quota"], quota)

    def stored() -> bool:
        got = cluster.get(1, f"/billing/contracts/{contract['contractId']}", key, unit="m2")
        return got.json()["quota"] is not None

    assert wait_until(stored, 30, interval=0.5)

    def alerts() -> set[int]:
        return set(
            v["thresholdPercent"]
            for _, v in read_topic(cluster.broker.bootstrap, "usage.alerts")
            if v["contractId"] == contract["contractId"]
        )

    assert wait_until(lambda: alerts() == {50, 80, 100}, 30)
    plan = cluster.get(0, "/usage/plan", key).json()
    assert plan["will_exceed_limit"] is True and plan["percent_used"] >= 100


SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
SCHEMATHESIS_CONFIG = """
[parameters]
contractId = "{contract_id}"
leafUserId = "{leaf_user_id}"

# What JSON Schema cannot state about a shape (its area after repair, crossing the
# antimeridian, its vertex count once densified) is a 400 for a schema-valid geometry.
[[operations]]
include-path = "/usage/check"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "429"]

[[operations]]
include-name = "POST /usage/explain"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "429"]

# Revoking the run's own key (the stateful phase links GET /api-keys to it) would leave
# every later request a 401; revocation is tested in test_integration_keys_listed_and_revoked_*.
[[operations]]
include-name = "DELETE /api-keys/{{keyId}}"
enabled = false

# A registered webhook makes the workers POST to its URL, and generated URLs name hosts
# that are not on this machine: registering is tested with a local receiver instead
# (tests/integration/test_webhooks.py).
[[operations]]
include-name = "POST /webhooks"
enabled = false
"""


def schemathesis(c: Cluster, config: Path, key: str, *args: str) -> str:
    """`schemathesis run` with its default checks and phases; fails on any failure."""
    out = subprocess.run(
        [SCHEMATHESIS, "--config-file", str(config), "run", c.url(0) + "/openapi.json",
         "-H", f"Authorization: Bearer {key}", "--generation-database", "none", "--no-color",
         *args],
        capture_output=True, text=True, timeout=300, cwd=config.parent,
    )
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    return out.stdout


def test_integration_schemathesis_default_checks(cluster: Cluster, tmp_path: Path) -> None:
    """Every operation generated from /openapi.json against a worker holding real data,
    with all of Schemathesis's default checks (not only "no 5xx": status codes, content
    types, headers and bodies conform; schema-invalid input is rejected and valid input
    accepted; undeclared methods are 405 with Allow) over its coverage, fuzzing and
    stateful phases: as the owner, then the admin operations with the admin key."""
    key = cluster.keys["farm"]
    contract = cluster.get(0, "/billing/contracts", key, product="UNIFIED_AREA").json()[0]
    user = cluster.get(0, "/usage/top-users", key).json()["users"][0]["leaf_user_id"]
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG.format(contract_id=contract["contractId"],
                                                 leaf_user_id=user))
    owner = schemathesis(cluster, config, key, "--max-examples", "50")
    total = sum(len(ops) for path, ops in cluster.get(0, "/openapi.json", key).json()["paths"]
                .items())
    # all but registering a webhook and revoking a key
    assert f"{total - 2} selected / {total} total" in owner, owner
    schemathesis(cluster, config, ADMIN, "--max-examples", "20",
                 "--include-path", "/admin/api-keys",
                 "--include-path", "/billing/contracts/{contractId}/quota")


def test_integration_keys_and_records_survive_a_restart(cluster: Cluster) -> None:
    key = cluster.keys["farm"]
    before = cluster.get(0, "/billing/contracts", key, unit="m2").json()
    details = cluster.get(0, "/usage/details", key, page_size=100).json()
    for w in cluster.workers:
        w.stop()
    cluster.workers[0].start()
    deadline = time.monotonic() + 120

    last: list[Any] = []

    def serving() -> bool:
        resp = cluster.get(0, "/usage/details", key, page_size=100)
        last[:] = [resp.status_code, resp.text[:300]]
        return resp.status_code == 200 and resp.json() == details

    while not serving():
        assert time.monotonic() < deadline, f"restarted worker did not serve the same: {last}"
        time.sleep(1)
    after = cluster.get(0, "/billing/contracts", key, unit="m2").json()
    assert [c["contractId"] for c in after] == [c["contractId"] for c in before]
    for a, b in zip(after, before, strict=True):  # a rebuilt union may sum in another order
        assert close(a["used"], b["used"]) and a["currentTerm"] == b["currentTerm"]
    assert cluster.get(0, "/billing/contracts", key[:-2] + "zz").status_code == 401
    rival = cluster.get(0, "/usage/plan", cluster.keys["rival"])
    while rival.status_code == 503:  # the rival's own partition may still be recovering
        assert "Retry-After" in rival.headers
        assert time.monotonic() < deadline, f"rival's partition never recovered: {rival.text}"
        time.sleep(1)
        rival = cluster.get(0, "/usage/plan", cluster.keys["rival"])
    assert rival.status_code == 200, rival.text
    assert cluster.get(0, "/usage/plan", cluster.keys["revoked"]).status_code == 401
