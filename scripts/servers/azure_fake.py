"""A strict local fake of the Azure REST API, for hoist-azure's tests.

One server answers everything hoist-azure calls, following the documented REST API for exactly
those operations (and refusing what the real API refuses):

- Entra ID's client-credentials token endpoint (POST /{tenant}/oauth2/v2.0/token);
- Azure Resource Manager: virtual machine scale sets (get, list, PATCH sku/capacity/tags, delete
  instances, manual upgrade), their VMs (Uniform instances; Flexible members through the VM list),
  the compute operation status and result resources, resource SKUs, Cost Management query and
  forecast, and Azure Monitor metrics;
- the Retail Prices API (no auth).

State is kept per subscription id, so parallel tests each seed their own subscription. Writes are
long-running operations: they answer 202 with `Azure-AsyncOperation`, `Location` and `Retry-After`
and take effect `operation_seconds` later, settled lazily on the next request that looks at the
subscription. As in Azure, an explicit instance delete removes VMs even when they are protected
from scale-in (only a capacity decrease honours the protection); the operation records the
protected instances it deleted (`deleted_protected`).

Beyond the letter of the spec, as the real API does: a scale set may be seeded with `priority`
(Regular, Spot, Low; shown as properties.virtualMachineProfile.priority); sets that are not zonal
carry no `zones`; ARM refuses non-JSON request bodies with 415 UnsupportedMediaType; the VM list
takes $expand=instanceView only together with its $filter; Cost Management rejects periods over a
year and returns ResourceId / ResourceGroupName values lower-cased; Retail Prices filters also
accept location, meterId, meterName, productId, skuId and serviceId, and the built-in price list
holds one westus2 item so clients must filter by region. Uniform instance ids are never reused.
Unknown seed fields are refused (400) so that typos in tests show.

Tests drive the fake through /_fake/* (no auth, never recorded): health, seeding a subscription,
reading its state, the request log, injected faults, failing the next operation, the price list.
Seeded Flexible VMs get deterministic names (`{set}_{8 hex}`); a Flexible set's `protected` list
may name them or give their seeding index ("0", "1", ...).

    python3 azure_fake.py --listen 127.0.0.1:PORT

Test infrastructure only: binds where told (127.0.0.1), standard library only.
"""

import argparse
import datetime
import json
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

COMPUTE_API = "2024-07-01"
SKUS_API = "2021-07-01"
COST_API = "2023-11-01"
METRICS_API = "2023-10-01"
PRICES_API = "2023-01-01-preview"

CLIENT_SECRET = "fake-secret"
STATIC_TOKEN = "fake-static-token"
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
ISO_DURATION = re.compile(r"^P(?=\d|T\d)(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?$")
UTC = datetime.timezone.utc

LOCK = threading.RLock()
SUBSCRIPTIONS = {}  # lower-case subscription id -> Subscription
TOKENS = {STATIC_TOKEN}
REQUESTS = []
FAULTS = []


class ApiError(Exception):
    """An error answer. `body` replaces ARM's `{"error": {...}}` shape when given."""

    def __init__(self, status, code, message, target=None, headers=None, body=None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.target, self.headers, self.body = target, headers or {}, body

    def payload(self):
        if self.body is not None:
            return self.body
        error = {"code": self.code, "message": self.message}
        if self.target:
            error["target"] = self.target
        return {"error": error}


def bad_request(message, code="BadRequest"):
    return ApiError(400, code, message)


def invalid_parameter(message, target=None):
    return ApiError(400, "InvalidParameter", message, target=target)


def rfc3339(t):
    """A Unix time as ARM writes it: 7 fractional digits and +00:00."""
    dt = datetime.datetime.fromtimestamp(t, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}0+00:00"


def parse_time(text):
    """An RFC 3339 / ISO 8601 timestamp as an aware datetime, or None."""
    if not isinstance(text, str) or not text:
        return None
    try:
        dt = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def number_text(value):
    return str(int(value)) if float(value).is_integer() else str(value)


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------------------
# Seeded state


DEFAULT_SKUS = [
    {"name": "Standard_D2s_v5", "family": "standardDSv5Family", "vcpus": 2, "memory_gb": 8},
    {"name": "Standard_D4s_v5", "family": "standardDSv5Family", "vcpus": 4, "memory_gb": 16},
    {"name": "Standard_F2s_v2", "family": "standardFSv2Family", "vcpus": 2, "memory_gb": 4},
    {"name": "Standard_B2s", "family": "standardBSFamily", "vcpus": 2, "memory_gb": 4},
]

SEED_KEYS = {"location", "operation_seconds", "retry_after_seconds", "quota_cores", "skus",
             "resource_groups", "scale_sets", "costs", "forecast_per_day", "metrics"}
SKU_KEYS = {"name", "family", "tier", "size", "vcpus", "memory_gb", "zones", "restricted",
            "cpu_architecture", "gpus"}
SET_KEYS = {"resource_group", "name", "sku", "capacity", "orchestration", "upgrade_policy",
            "zones", "tags", "protected", "priority"}
COST_KEYS = {"date", "cost", "currency", "resource_id", "resource_group", "tags"}


def check_keys(obj, allowed, what):
    if not isinstance(obj, dict):
        raise bad_request(f"seed: {what} must be an object")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise bad_request(f"seed: unknown field(s) {unknown} in {what}; known: {sorted(allowed)}")


class Subscription:
    """One subscription's state, built from a seed."""

    def __init__(self, sub_id, seed):
        check_keys(seed, SEED_KEYS, "the seed")
        self.id = sub_id
        self.location = seed.get("location", "eastus")
        self.operation_seconds = float(seed.get("operation_seconds", 0.3))
        self.retry_after = int(seed.get("retry_after_seconds", 0))
        if not isinstance(self.location, str) or self.operation_seconds < 0 or self.retry_after < 0:
            raise bad_request("seed: location must be a string, operation_seconds and "
                              "retry_after_seconds must be >= 0")
        self.quota = dict(seed.get("quota_cores") or {})
        self.skus = {}
        for raw in seed.get("skus") or DEFAULT_SKUS:
            check_keys(raw, SKU_KEYS, "a sku")
            if not isinstance(raw.get("name"), str):
                raise bad_request("seed: every sku needs a name")
            name = raw["name"]
            self.skus[name.lower()] = {
                "name": name,
                "family": raw.get("family", "standardFamily"),
                "tier": raw.get("tier", "Standard"),
                "size": raw.get("size", name.split("_", 1)[-1]),
                "vcpus": raw.get("vcpus", 2),
                "memory_gb": raw.get("memory_gb", 8),
                "zones": [str(z) for z in raw.get("zones", ["1", "2", "3"])],
                "restricted": bool(raw.get("restricted", False)),
                "cpu_architecture": raw.get("cpu_architecture", "x64"),
                "gpus": raw.get("gpus", 0),
            }
        self.resource_groups = {}
        for rg in seed.get("resource_groups") or []:
            if not isinstance(rg, str) or not rg:
                raise bad_request("seed: resource_groups must be names")
            self.resource_groups[rg.lower()] = rg
        self.scale_sets = []
        created = time.time()
        for raw in seed.get("scale_sets") or []:
            self.scale_sets.append(self._seed_set(raw, created))
        self.costs = []
        for raw in seed.get("costs") or []:
            check_keys(raw, COST_KEYS, "a cost")
            try:
                day = datetime.date.fromisoformat(raw["date"])
                amount = float(raw["cost"])
            except (KeyError, TypeError, ValueError):
                raise bad_request("seed: every cost needs date (YYYY-MM-DD) and cost (number)")
            resource_id = raw.get("resource_id", "")
            group = raw.get("resource_group")
            if group is None:
                found = re.search(r"/resourceGroups/([^/]+)", resource_id, re.I)
                group = found.group(1) if found else ""
            self.costs.append({"date": day, "cost": amount, "currency": raw.get("currency", "USD"),
                               "resource_id": resource_id, "resource_group": group,
                               "tags": dict(raw.get("tags") or {})})
        self.forecast = seed.get("forecast_per_day")
        if self.forecast is not None and not isinstance(self.forecast.get("amount"), (int, float)):
            raise bad_request("seed: forecast_per_day needs amount (number) and currency")
        self.metrics = {}
        for set_name, series in (seed.get("metrics") or {}).items():
            per_metric = {}
            for metric, points in series.items():
                parsed = []
                for point in points:
                    when = parse_time(point[0]) if isinstance(point, list) and len(point) == 2 else None
                    if when is None or not isinstance(point[1], (int, float)):
                        raise bad_request(f"seed: metric points are [RFC3339, number] ({metric})")
                    parsed.append((when, point[0], point[1]))
                per_metric[metric] = sorted(parsed, key=lambda p: p[0])
            self.metrics[set_name.lower()] = per_metric
        self.operations = {}  # operation id -> operation dict
        self.fail_next = None

    def _seed_set(self, raw, created):
        check_keys(raw, SET_KEYS, "a scale set")
        rg, name = raw.get("resource_group"), raw.get("name")
        if not isinstance(rg, str) or not isinstance(name, str) or not rg or not name:
            raise bad_request("seed: every scale set needs resource_group and name")
        self.resource_groups.setdefault(rg.lower(), rg)
        rg = self.resource_groups[rg.lower()]
        if any(s["rg"].lower() == rg.lower() and s["name"].lower() == name.lower()
               for s in self.scale_sets):
            raise bad_request(f"seed: scale set {rg}/{name} is seeded twice")
        sku = self.skus.get(str(raw.get("sku", next(iter(self.skus.values()))["name"])).lower())
        if sku is None:
            raise bad_request(f"seed: scale set {name}: sku {raw.get('sku')!r} is not among the "
                              f"seeded skus {[s['name'] for s in self.skus.values()]}")
        capacity = raw.get("capacity", 0)
        orchestration = raw.get("orchestration", "Uniform")
        policy = raw.get("upgrade_policy", "Manual")
        priority = raw.get("priority", "Regular")
        if not is_int(capacity) or not 0 <= capacity <= 1000:
            raise bad_request(f"seed: scale set {name}: capacity must be an integer 0..1000")
        if orchestration not in ("Uniform", "Flexible"):
            raise bad_request(f"seed: scale set {name}: orchestration is Uniform or Flexible")
        if policy not in ("Manual", "Automatic", "Rolling"):
            raise bad_request(f"seed: scale set {name}: upgrade_policy is Manual, Automatic or Rolling")
        if priority not in ("Regular", "Spot", "Low"):
            raise bad_request(f"seed: scale set {name}: priority is Regular, Spot or Low")
        ss = {
            "rg": rg, "name": name, "sku": sku["name"], "capacity": capacity,
            "orchestration": orchestration, "upgrade_policy": policy, "priority": priority,
            "zones": [str(z) for z in raw.get("zones") or []], "tags": dict(raw.get("tags") or {}),
            "unique_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.id}/{rg}/{name}".lower())),
            "time_created": created, "vms": [], "counter": 0, "op": None,
        }
        for index in range(capacity):
            vm = new_vm(self, ss, sku["name"], created, "Succeeded")
            if ss["zones"]:
                vm["zone"] = ss["zones"][index % len(ss["zones"])]
            ss["vms"].append(vm)
        for ref in raw.get("protected") or []:
            ref = str(ref)
            matches = [vm for i, vm in enumerate(ss["vms"])
                       if vm["instance_id"] == ref or (orchestration == "Flexible" and str(i) == ref)]
            if not matches:
                raise bad_request(f"seed: scale set {name}: protected {ref!r} is not one of its VMs")
            matches[0]["protected"] = True
        return ss


def new_vm(sub, ss, sku_name, created, state):
    """A VM of `ss` with the next instance id (Uniform ids never come back, as in Azure)."""
    seq = ss["counter"]
    ss["counter"] += 1
    if ss["orchestration"] == "Uniform":
        instance_id = str(seq)
        name = f"{ss['name']}_{seq}"
    else:
        digest = uuid.uuid5(uuid.NAMESPACE_URL, f"{sub.id}/{ss['rg']}/{ss['name']}/{seq}".lower())
        instance_id = name = f"{ss['name']}_{digest.hex[:8]}"
    return {"instance_id": instance_id, "name": name, "seq": seq, "zone": None, "sku": sku_name,
            "state": state, "latest": True, "protected": False, "time_created": created,
            "vm_id": str(uuid.uuid5(uuid.NAMESPACE_OID, f"{sub.id}/{ss['rg']}/{name}".lower()))}


def vmss_id(sub, ss):
    return (f"/subscriptions/{sub.id}/resourceGroups/{ss['rg']}/providers/Microsoft.Compute/"
            f"virtualMachineScaleSets/{ss['name']}")


def family_usage(sub, family, skip=None):
    """Cores of `family` used by every scale set (but `skip`)."""
    total = 0
    for ss in sub.scale_sets:
        sku = sub.skus.get(ss["sku"].lower())
        if ss is not skip and sku and sku["family"] == family:
            total += ss["capacity"] * sku["vcpus"]
    return total


# ---------------------------------------------------------------------------------------------
# Long-running operations


def start_operation(sub, ss, kind, error=None, **plan):
    """Starts an operation on `ss`; `fail-next-operation` (if set) makes it fail."""
    now = time.time()
    if sub.fail_next is not None:
        error, sub.fail_next = sub.fail_next, None
    op = {"id": str(uuid.uuid4()), "kind": kind, "set": ss, "start": now,
          "deadline": now + sub.operation_seconds, "status": "InProgress", "error": error,
          "created": [], "victims": [], "targets": [], "old": None, "sku_changed": False,
          "deleted_protected": []}
    op.update(plan)
    sub.operations[op["id"]] = op
    ss["op"] = op["id"]
    return op


def settle(sub):
    """Ends every operation whose time has come (lazily, in start order)."""
    now = time.time()
    for op in sorted(sub.operations.values(), key=lambda o: o["start"]):
        if op["status"] == "InProgress" and now >= op["deadline"]:
            finish(op)


def without(vms, gone):
    gone = {id(vm) for vm in gone}
    return [vm for vm in vms if id(vm) not in gone]


def finish(op):
    ss = op["set"]
    failed = op["error"] is not None
    if op["kind"] == "update":
        if failed:
            ss["capacity"], ss["sku"], ss["tags"] = op["old"]
            ss["vms"] = without(ss["vms"], op["created"])
            for vm in op["victims"]:
                vm["state"] = "Succeeded"
        else:
            for vm in op["created"]:
                vm["state"] = "Succeeded"
            ss["vms"] = without(ss["vms"], op["victims"])
            if op["sku_changed"]:
                for vm in ss["vms"]:
                    if ss["upgrade_policy"] in ("Automatic", "Rolling"):
                        vm["sku"] = ss["sku"]
                    vm["latest"] = vm["sku"] == ss["sku"]
    elif op["kind"] == "delete":
        if failed:
            for vm in op["victims"]:
                vm["state"] = "Succeeded"
        else:
            ss["vms"] = without(ss["vms"], op["victims"])
            ss["capacity"] -= len(op["victims"])
    elif op["kind"] == "upgrade" and not failed:
        for vm in op["targets"]:
            vm["sku"], vm["latest"] = ss["sku"], True
    op["status"] = "Failed" if failed else "Succeeded"
    ss["op"] = None


def async_headers(ctx, op):
    prefix = (f"{ctx.base}/subscriptions/{ctx.sub.id}/providers/Microsoft.Compute/locations/"
              f"{ctx.sub.location}")
    return {
        "Azure-AsyncOperation": f"{prefix}/operations/{op['id']}?api-version={COMPUTE_API}",
        "Location": f"{prefix}/operationResults/{op['id']}?api-version={COMPUTE_API}",
        "Retry-After": str(ctx.sub.retry_after),
    }


# ---------------------------------------------------------------------------------------------
# Views (the documented response shapes)


def vmss_view(sub, ss):
    tier = sub.skus[ss["sku"].lower()]["tier"]
    body = {"id": vmss_id(sub, ss), "name": ss["name"],
            "type": "Microsoft.Compute/virtualMachineScaleSets", "location": sub.location,
            "tags": dict(ss["tags"])}
    if ss["zones"]:
        body["zones"] = list(ss["zones"])
    body["sku"] = {"name": ss["sku"], "tier": tier, "capacity": ss["capacity"]}
    body["properties"] = {
        "provisioningState": "Updating" if ss["op"] else "Succeeded",
        "orchestrationMode": ss["orchestration"],
        "upgradePolicy": {"mode": ss["upgrade_policy"]},
        "virtualMachineProfile": {"priority": ss["priority"]},
        "uniqueId": ss["unique_id"],
        "timeCreated": rfc3339(ss["time_created"]),
        "singlePlacementGroup": False,
        "platformFaultDomainCount": 1,
    }
    return body


POWER = {"Creating": "starting", "Succeeded": "running", "Deleting": "stopping", "Failed": "stopped"}


def instance_view(vm):
    state = vm["state"]
    return {"statuses": [
        {"code": f"ProvisioningState/{state.lower()}", "level": "Info",
         "displayStatus": f"Provisioning {state.lower()}"},
        {"code": f"PowerState/{POWER[state]}", "level": "Info",
         "displayStatus": f"VM {POWER[state]}"},
    ]}


def uniform_vm_view(sub, ss, vm, expand):
    tier = sub.skus[vm["sku"].lower()]["tier"] if vm["sku"].lower() in sub.skus else "Standard"
    body = {"id": f"{vmss_id(sub, ss)}/virtualMachines/{vm['instance_id']}",
            "instanceId": vm["instance_id"], "name": vm["name"],
            "type": "Microsoft.Compute/virtualMachineScaleSets/virtualMachines",
            "location": sub.location}
    if vm["zone"]:
        body["zones"] = [vm["zone"]]
    body["sku"] = {"name": vm["sku"], "tier": tier}
    body["properties"] = {
        "latestModelApplied": vm["latest"], "vmId": vm["vm_id"],
        "provisioningState": vm["state"], "timeCreated": rfc3339(vm["time_created"]),
        "protectionPolicy": {"protectFromScaleIn": vm["protected"], "protectFromScaleSetActions": False},
        "hardwareProfile": {"vmSize": vm["sku"]},
    }
    if expand:
        body["properties"]["instanceView"] = instance_view(vm)
    return body


def flexible_vm_view(sub, ss, vm, expand):
    body = {"id": f"/subscriptions/{sub.id}/resourceGroups/{ss['rg']}/providers/Microsoft.Compute/"
                  f"virtualMachines/{vm['name']}",
            "name": vm["name"], "type": "Microsoft.Compute/virtualMachines", "location": sub.location}
    if vm["zone"]:
        body["zones"] = [vm["zone"]]
    body["properties"] = {
        "vmId": vm["vm_id"], "provisioningState": vm["state"],
        "timeCreated": rfc3339(vm["time_created"]), "hardwareProfile": {"vmSize": vm["sku"]},
        "virtualMachineScaleSet": {"id": vmss_id(sub, ss)},
    }
    if expand:
        body["properties"]["instanceView"] = instance_view(vm)
    return body


def state_view(sub):
    """GET /_fake/subscriptions/{sub}: everything, for assertions."""
    def op_view(op):
        out = {"id": op["id"], "kind": op["kind"], "scale_set": op["set"]["name"],
               "resource_group": op["set"]["rg"], "status": op["status"],
               "start": op["start"], "deadline": op["deadline"], "error": op["error"]}
        if op["kind"] == "delete":
            out["instance_ids"] = [vm["instance_id"] for vm in op["victims"]]
            out["deleted_protected"] = op["deleted_protected"]
        if op["kind"] == "upgrade":
            out["instance_ids"] = [vm["instance_id"] for vm in op["targets"]]
        if op["kind"] == "update":
            out["created"] = [vm["instance_id"] for vm in op["created"]]
            out["removed"] = [vm["instance_id"] for vm in op["victims"]]
        return out

    families = {sku["family"] for sku in sub.skus.values()}
    return {
        "subscription": sub.id, "location": sub.location,
        "operation_seconds": sub.operation_seconds, "retry_after_seconds": sub.retry_after,
        "quota_cores": sub.quota,
        "usage_cores": {f: family_usage(sub, f) for f in sorted(families)},
        "resource_groups": list(sub.resource_groups.values()),
        "fail_next_operation": sub.fail_next,
        "scale_sets": [{
            "id": vmss_id(sub, ss), "resource_group": ss["rg"], "name": ss["name"],
            "sku": ss["sku"], "capacity": ss["capacity"], "orchestration": ss["orchestration"],
            "upgrade_policy": ss["upgrade_policy"], "priority": ss["priority"],
            "zones": ss["zones"], "tags": ss["tags"],
            "provisioning_state": "Updating" if ss["op"] else "Succeeded", "operation": ss["op"],
            "vms": [{"instance_id": vm["instance_id"], "name": vm["name"], "zone": vm["zone"],
                     "sku": vm["sku"], "provisioning_state": vm["state"],
                     "latest_model_applied": vm["latest"], "protected": vm["protected"]}
                    for vm in ss["vms"]],
        } for ss in sub.scale_sets],
        "operations": [op_view(op) for op in sorted(sub.operations.values(), key=lambda o: o["start"])],
        "pending_operations": [op["id"] for op in sub.operations.values() if op["status"] == "InProgress"],
    }


# ---------------------------------------------------------------------------------------------
# Lookups shared by the routes


def find_rg(sub, rg):
    found = sub.resource_groups.get(rg.lower())
    if found is None:
        raise ApiError(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
    return found


def find_set(sub, rg, name):
    find_rg(sub, rg)
    for ss in sub.scale_sets:
        if ss["rg"].lower() == rg.lower() and ss["name"].lower() == name.lower():
            return ss
    raise ApiError(404, "ResourceNotFound",
                   f"The Resource 'Microsoft.Compute/virtualMachineScaleSets/{name}' under "
                   f"resource group '{rg}' was not found.")


def require_object(body):
    if not isinstance(body, dict):
        raise ApiError(400, "InvalidRequestContent",
                       "The request content was invalid and could not be deserialized: "
                       "expected a JSON object.")
    return body


def no_operation_running(sub, ss, what):
    if ss["op"]:
        raise ApiError(409, "OperationNotAllowed",
                       f"Operation '{what}' is not allowed on Virtual Machine Scale Set "
                       f"'{ss['name']}' since another operation is in progress "
                       f"(operation {ss['op']}). Retry after it completes.")


def expand_instance_view(ctx):
    expand = ctx.query.get("$expand")
    if expand is None:
        return False
    if expand.lower() != "instanceview":
        raise invalid_parameter(f"The value '{expand}' of parameter '$expand' is not allowed. "
                                "Allowed values are 'instanceView'.", target="$expand")
    return True


def instance_ids(ctx, ss):
    """The validated `instanceIds` of a delete or manualupgrade body, as VMs."""
    ids = require_object(ctx.body).get("instanceIds")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise invalid_parameter("The parameter instanceIds is required and must be a non-empty "
                                "list of instance ids.", target="instanceIds")
    by_id = {vm["instance_id"].lower(): vm for vm in ss["vms"]}
    vms = []
    for instance_id in ids:
        vm = by_id.get(instance_id.lower())
        if vm is None:
            raise invalid_parameter(f"The provided instanceId {instance_id} is not an active "
                                    "Virtual Machine Scale Set VM instanceId.", target="instanceIds")
        if vm not in vms:
            vms.append(vm)
    return vms


# ---------------------------------------------------------------------------------------------
# Routes: Entra ID


def route_token(ctx):
    form = ctx.body if isinstance(ctx.body, dict) and ctx.form else {}

    def aad(status, error, description, codes):
        return ApiError(status, error, description, body={
            "error": error, "error_description": description, "error_codes": codes,
            "timestamp": datetime.datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
            "trace_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4())})

    for field in ("grant_type", "client_id"):
        if not form.get(field):
            raise aad(400, "invalid_request", f"AADSTS900144: The request body must contain the "
                      f"following parameter: '{field}'.", [900144])
    if form["grant_type"] != "client_credentials":
        raise aad(400, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported "
                  "grant type (this fake knows client_credentials only).", [70003])
    if form.get("client_secret") != CLIENT_SECRET:
        raise aad(401, "invalid_client",
                  "AADSTS7000215: Invalid client secret provided.", [7000215])
    scope = form.get("scope", "")
    if not scope.endswith("/.default"):
        raise aad(400, "invalid_scope", f"AADSTS1002012: The provided value for scope '{scope}' "
                  "is not valid. Client credential flows must have a scope value with /.default "
                  "suffixed to the resource identifier (application ID URI).", [1002012])
    token = uuid.uuid4().hex + uuid.uuid4().hex
    TOKENS.add(token)
    return 200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                 "access_token": token}, {}


# ---------------------------------------------------------------------------------------------
# Routes: Microsoft.Compute


def route_vmss_get(ctx):
    return 200, vmss_view(ctx.sub, find_set(ctx.sub, ctx.p["rg"], ctx.p["name"])), {}


def route_vmss_list(ctx):
    sub = ctx.sub
    if ctx.p.get("rg"):
        rg = find_rg(sub, ctx.p["rg"])
        sets = [ss for ss in sub.scale_sets if ss["rg"] == rg]
    else:
        sets = list(sub.scale_sets)
    token = ctx.query.get("$skiptoken", "0")
    if not token.isdigit() or int(token) > len(sets):
        raise invalid_parameter(f"The value '{token}' of parameter '$skiptoken' is invalid.",
                                target="$skiptoken")
    start = int(token)
    body = {"value": [vmss_view(sub, ss) for ss in sets[start:start + 2]]}
    if len(sets) > 2 and start + 2 < len(sets):
        body["nextLink"] = f"{ctx.base}{ctx.path}?api-version={COMPUTE_API}&$skiptoken={start + 2}"
    return 200, body, {}


def route_vmss_patch(ctx):
    sub = ctx.sub
    ss = find_set(sub, ctx.p["rg"], ctx.p["name"])
    body = require_object(ctx.body)
    sku_in = body.get("sku", {})
    tags = body.get("tags")
    if not isinstance(sku_in, dict):
        raise invalid_parameter("The parameter sku must be an object.", target="sku")
    if tags is not None and (not isinstance(tags, dict)
                             or not all(isinstance(v, str) for v in tags.values())):
        raise invalid_parameter("The parameter tags must map names to strings.", target="tags")
    capacity = sku_in.get("capacity", ss["capacity"])
    if not is_int(capacity) or not 0 <= capacity <= 1000:
        raise invalid_parameter(f"The value {json.dumps(capacity)} of parameter 'sku.capacity' is "
                                "not valid: it must be an integer between 0 and 1000.",
                                target="sku.capacity")
    sku = sub.skus[ss["sku"].lower()]
    if "name" in sku_in:
        name = sku_in["name"]
        sku = sub.skus.get(name.lower()) if isinstance(name, str) else None
        if sku is None:
            allowed = ", ".join(s["name"] for s in sub.skus.values())
            raise invalid_parameter(f"The value '{name}' of parameter 'sku.name' is not allowed. "
                                    f"Allowed values are '{allowed}'.", target="sku.name")
    sku_changed = sku["name"] != ss["sku"]
    if sku["restricted"] and (sku_changed or capacity > ss["capacity"]):
        raise ApiError(409, "SkuNotAvailable",
                       f"The requested VM size '{sku['name']}' is currently not available in "
                       f"location '{sub.location}'. Please try another size or deploy to a "
                       "different location or different zone.")
    family = sku["family"]
    if family in sub.quota:
        usage = family_usage(sub, family)
        total = family_usage(sub, family, skip=ss) + capacity * sku["vcpus"]
        limit = sub.quota[family]
        if total > limit and total > usage:
            raise ApiError(409, "QuotaExceeded",
                           "Operation could not be completed as it results in exceeding approved "
                           f"{family} Cores quota. Location: {sub.location}, Current Limit: "
                           f"{limit}, Current Usage: {number_text(usage)}, Additional Required: "
                           f"{number_text(total - usage)}.")
    no_operation_running(sub, ss, "Update")

    # The target shows at once (provisioningState Updating); a failed operation reverts it.
    old = (ss["capacity"], ss["sku"], dict(ss["tags"]))
    error, victims = None, []
    if capacity < len(ss["vms"]):
        # Azure's default scale-in policy here: highest instance ids first, never protected ones.
        removable = sorted((vm for vm in ss["vms"] if not vm["protected"]),
                           key=lambda vm: vm["seq"], reverse=True)
        needed = len(ss["vms"]) - capacity
        if len(removable) < needed:
            error = {"code": "OperationNotAllowed",
                     "message": f"Scale-in of {needed} instance(s) is not possible: only "
                                f"{len(removable)} of the {len(ss['vms'])} instances of Virtual "
                                f"Machine Scale Set '{ss['name']}' are not protected from scale-in."}
        else:
            victims = removable[:needed]
    op = start_operation(sub, ss, "update", error=error, old=old, sku_changed=sku_changed)
    ss["sku"], ss["capacity"] = sku["name"], capacity
    if tags is not None:
        ss["tags"] = dict(tags)
    for _ in range(capacity - len(ss["vms"])):
        vm = new_vm(sub, ss, sku["name"], op["start"], "Creating")
        vm["zone"] = balanced_zone(ss)
        ss["vms"].append(vm)
        op["created"].append(vm)
    for vm in victims:
        vm["state"] = "Deleting"
    op["victims"] = victims
    return 202, vmss_view(sub, ss), async_headers(ctx, op)


def balanced_zone(ss):
    """The zone with the fewest live VMs (Azure balances zones), first in order on ties."""
    if not ss["zones"]:
        return None
    live = [vm["zone"] for vm in ss["vms"] if vm["state"] != "Deleting"]
    return min(ss["zones"], key=lambda z: (live.count(z), ss["zones"].index(z)))


def route_vmss_delete_instances(ctx):
    sub = ctx.sub
    ss = find_set(sub, ctx.p["rg"], ctx.p["name"])
    vms = instance_ids(ctx, ss)
    no_operation_running(sub, ss, "DeleteInstances")
    op = start_operation(sub, ss, "delete")
    op["deleted_protected"] = [vm["instance_id"] for vm in vms if vm["protected"]]
    op["victims"] = vms
    for vm in vms:
        vm["state"] = "Deleting"
    return 202, None, async_headers(ctx, op)


def route_vmss_manual_upgrade(ctx):
    sub = ctx.sub
    ss = find_set(sub, ctx.p["rg"], ctx.p["name"])
    vms = instance_ids(ctx, ss)
    no_operation_running(sub, ss, "ManualUpgrade")
    op = start_operation(sub, ss, "upgrade")
    op["targets"] = vms
    return 202, None, async_headers(ctx, op)


def route_vmss_vms(ctx):
    sub = ctx.sub
    ss = find_set(sub, ctx.p["rg"], ctx.p["name"])
    expand = expand_instance_view(ctx)
    if "$filter" in ctx.query:
        raise invalid_parameter("This fake supports no $filter on scale set VMs.", target="$filter")
    if ss["orchestration"] == "Flexible":
        raise ApiError(400, "OperationNotAllowed",
                       "Operation 'List VMs' is not supported for Virtual Machine Scale Sets with "
                       "Flexible orchestration mode; list the virtual machines of the resource "
                       "group with $filter=virtualMachineScaleSet/id eq '...'.")
    return 200, {"value": [uniform_vm_view(sub, ss, vm, expand) for vm in ss["vms"]]}, {}


VM_FILTER = re.compile(r"^\s*('virtualMachineScaleSet/id'|virtualMachineScaleSet/id)\s+eq\s+"
                       r"'((?:[^']|'')*)'\s*$", re.I)


def route_vms(ctx):
    sub = ctx.sub
    rg = find_rg(sub, ctx.p["rg"])
    expand = expand_instance_view(ctx)
    sets = [ss for ss in sub.scale_sets if ss["rg"] == rg and ss["orchestration"] == "Flexible"]
    if expand and "$filter" not in ctx.query:
        raise invalid_parameter("The $expand=instanceView option can only be specified together "
                                "with a valid $filter.", target="$expand")
    if "$filter" in ctx.query:
        found = VM_FILTER.match(ctx.query["$filter"])
        if not found:
            raise invalid_parameter(f"The $filter '{ctx.query['$filter']}' is not supported: only "
                                    "virtualMachineScaleSet/id eq '{scale set id}' is.",
                                    target="$filter")
        wanted = found.group(2).replace("''", "'").lower()
        sets = [ss for ss in sets if vmss_id(sub, ss).lower() == wanted]
    return 200, {"value": [flexible_vm_view(sub, ss, vm, expand)
                           for ss in sets for vm in ss["vms"]]}, {}


def find_operation(ctx):
    op = ctx.sub.operations.get(ctx.p["op"].lower())
    if op is None or ctx.p["loc"].lower() != ctx.sub.location.lower():
        raise ApiError(404, "NotFound", f"The operation '{ctx.p['op']}' could not be found.")
    return op


def route_operation_status(ctx):
    op = find_operation(ctx)
    body = {"name": op["id"], "status": op["status"], "startTime": rfc3339(op["start"])}
    headers = {}
    if op["status"] == "InProgress":
        headers["Retry-After"] = str(ctx.sub.retry_after)
    else:
        body["endTime"] = rfc3339(op["deadline"])
    if op["status"] == "Failed":
        body["error"] = dict(op["error"])
    return 200, body, headers


def route_operation_result(ctx):
    op = find_operation(ctx)
    if op["status"] == "InProgress":
        return 202, None, {"Location": f"{ctx.base}{ctx.path}?api-version={COMPUTE_API}",
                           "Retry-After": str(ctx.sub.retry_after)}
    if op["status"] == "Failed":
        raise ApiError(409, op["error"]["code"], op["error"]["message"])
    return 200, {}, {}


SKU_FILTER = re.compile(r"^\s*location\s+eq\s+'([^']*)'\s*$", re.I)


def route_skus(ctx):
    sub = ctx.sub
    location = sub.location
    if "$filter" in ctx.query:
        found = SKU_FILTER.match(ctx.query["$filter"])
        if not found:
            raise invalid_parameter(f"The $filter '{ctx.query['$filter']}' is not supported: only "
                                    "location eq '{location}' is.", target="$filter")
        if found.group(1).replace(" ", "").lower() != sub.location.replace(" ", "").lower():
            return 200, {"value": []}, {}
    loc = location
    out = []
    for sku in sub.skus.values():
        restrictions = []
        if sku["restricted"]:
            restrictions.append({"type": "Location", "values": [loc],
                                 "reasonCode": "NotAvailableForSubscription",
                                 "restrictionInfo": {"locations": [loc]}})
        out.append({
            "resourceType": "virtualMachines", "name": sku["name"], "tier": sku["tier"],
            "size": sku["size"], "family": sku["family"], "locations": [loc],
            "locationInfo": [{"location": loc, "zones": list(sku["zones"])}],
            "capabilities": [
                {"name": "vCPUs", "value": number_text(sku["vcpus"])},
                {"name": "MemoryGB", "value": number_text(sku["memory_gb"])},
                {"name": "CpuArchitectureType", "value": sku["cpu_architecture"]},
                {"name": "GPUs", "value": number_text(sku["gpus"])},
                {"name": "LowPriorityCapable", "value": "True"},
            ],
            "restrictions": restrictions,
        })
    out.insert(1 if out else 0, {
        "resourceType": "disks", "name": "Premium_LRS", "tier": "Premium", "size": "P1",
        "family": "", "locations": [loc], "locationInfo": [{"location": loc, "zones": ["1", "2", "3"]}],
        "capabilities": [{"name": "MaxSizeGiB", "value": "4"}, {"name": "vCPUs", "value": "0"}],
        "restrictions": []})
    return 200, {"value": out}, {}


# ---------------------------------------------------------------------------------------------
# Routes: Microsoft.CostManagement

COST_DIMENSIONS = {"resourceid": "ResourceId", "resourcegroupname": "ResourceGroupName",
                   "resourcegroup": "ResourceGroup", "resourcelocation": "ResourceLocation",
                   "resourcetype": "ResourceType", "servicename": "ServiceName",
                   "metercategory": "MeterCategory"}


def cost_request(ctx, forecast):
    """Validates a query or forecast body; returns (days, granularity, aggregations, body)."""
    body = require_object(ctx.body)
    if body.get("type") not in ("ActualCost", "Usage"):
        raise bad_request(f"Invalid query definition: 'type' must be ActualCost or Usage, got "
                          f"{json.dumps(body.get('type'))}.")
    timeframe = body.get("timeframe")
    if timeframe != "Custom":
        raise bad_request(f"Invalid query definition: 'timeframe' must be Custom (with "
                          f"'timePeriod'), got {json.dumps(timeframe)}.")
    period = body.get("timePeriod")
    if not isinstance(period, dict):
        raise bad_request("Invalid query definition: timeframe Custom needs 'timePeriod' with "
                          "'from' and 'to'.")
    start, end = parse_time(period.get("from")), parse_time(period.get("to"))
    if start is None or end is None:
        raise bad_request("Invalid query definition: 'timePeriod.from' and 'timePeriod.to' must "
                          "be RFC 3339 timestamps.")
    if start > end:
        raise bad_request("Invalid query definition: 'timePeriod.from' is after 'timePeriod.to'.")
    if (end - start).days > 366:
        raise bad_request("Invalid query definition: the time period for pulling the data cannot "
                          "exceed 1 year(s) ('timePeriod').")
    dataset = body.get("dataset")
    if not isinstance(dataset, dict):
        raise bad_request("Invalid query definition: 'dataset' is required.")
    granularity = dataset.get("granularity", "None")
    allowed = ("Daily",) if forecast else ("Daily", "Monthly", "None")
    if granularity not in allowed:
        raise bad_request(f"Invalid dataset granularity '{granularity}' ('dataset.granularity' "
                          f"must be {' or '.join(allowed)}).")
    aggregation = dataset.get("aggregation")
    if not isinstance(aggregation, dict) or not aggregation:
        raise bad_request("Invalid query definition: 'dataset.aggregation' is required.")
    names = []
    for alias, agg in aggregation.items():
        if (not isinstance(agg, dict) or agg.get("function") != "Sum"
                or agg.get("name") not in ("Cost", "PreTaxCost")):
            raise bad_request(f"Invalid query definition: 'dataset.aggregation.{alias}' must be "
                              "{\"name\": \"Cost\" or \"PreTaxCost\", \"function\": \"Sum\"}.")
        names.append(agg["name"])
    days = [start.date() + datetime.timedelta(days=i) for i in range((end.date() - start.date()).days + 1)]
    return days, granularity, names, dataset


def cost_grouping(dataset):
    grouping = dataset.get("grouping", [])
    if not isinstance(grouping, list) or len(grouping) > 2:
        raise bad_request("Invalid query definition: 'dataset.grouping' is a list of at most 2.")
    out = []
    for group in grouping:
        if not isinstance(group, dict) or group.get("type") not in ("Dimension", "TagKey") \
                or not isinstance(group.get("name"), str) or not group["name"]:
            raise bad_request("Invalid query definition: each 'dataset.grouping' entry needs "
                              "type Dimension or TagKey and a name.")
        if group["type"] == "Dimension" and group["name"].lower() not in COST_DIMENSIONS:
            raise bad_request(f"Invalid query definition: 'dataset.grouping' dimension "
                              f"'{group['name']}' is not supported.")
        out.append(group)
    return out


def dimension_value(sub, cost, name):
    name = COST_DIMENSIONS[name.lower()]
    if name == "ResourceId":
        return cost["resource_id"].lower()
    if name in ("ResourceGroupName", "ResourceGroup"):
        return cost["resource_group"].lower()
    if name == "ResourceLocation":
        return sub.location
    if name == "ResourceType":
        found = re.search(r"/providers/([^/]+/[^/]+)/[^/]+$", cost["resource_id"])
        return found.group(1).lower() if found else ""
    return "Virtual Machines"


def cost_filter(sub, flt):
    """A predicate over seeded costs for a Cost Management filter expression."""
    if flt is None:
        return lambda cost: True
    if not isinstance(flt, dict) or len(flt) != 1:
        raise bad_request("Invalid query definition: 'dataset.filter' needs exactly one of "
                          "dimensions, tags, and, or.")
    (kind, value), = flt.items()
    if kind in ("and", "or"):
        if not isinstance(value, list) or len(value) < 2:
            raise bad_request(f"Invalid query definition: 'dataset.filter.{kind}' needs 2 or more "
                              "expressions.")
        parts = [cost_filter(sub, v) for v in value]
        combine = all if kind == "and" else any
        return lambda cost: combine(p(cost) for p in parts)
    if kind not in ("dimensions", "tags"):
        raise bad_request(f"Invalid query definition: 'dataset.filter.{kind}' is not supported.")
    if (not isinstance(value, dict) or value.get("operator") != "In"
            or not isinstance(value.get("name"), str) or not isinstance(value.get("values"), list)):
        raise bad_request(f"Invalid query definition: 'dataset.filter.{kind}' needs name, "
                          "operator In and values.")
    name = value["name"]
    if kind == "dimensions":
        if name.lower() not in ("resourceid", "resourcegroupname", "resourcegroup"):
            raise bad_request(f"Invalid query definition: filter dimension '{name}' is not "
                              "supported (ResourceId, ResourceGroupName).")
        wanted = {str(v).lower() for v in value["values"]}
        return lambda cost: dimension_value(sub, cost, name) in wanted
    wanted = {str(v) for v in value["values"]}
    return lambda cost: name in cost["tags"] and cost["tags"][name] in wanted


def route_cost_query(ctx):
    sub = ctx.sub
    scope = f"/subscriptions/{sub.id}"
    rg = None
    if ctx.p.get("rg"):
        rg = find_rg(sub, ctx.p["rg"])
        scope += f"/resourceGroups/{rg}"
    days, granularity, aggs, dataset = cost_request(ctx, forecast=False)
    grouping = cost_grouping(dataset)
    keep = cost_filter(sub, dataset.get("filter"))
    first, last = days[0], days[-1]
    sums = {}
    for cost in sub.costs:
        if not first <= cost["date"] <= last or not keep(cost):
            continue
        if rg is not None and cost["resource_group"].lower() != rg.lower():
            continue
        key = []
        if granularity == "Daily":
            key.append(int(cost["date"].strftime("%Y%m%d")))
        elif granularity == "Monthly":
            key.append(cost["date"].strftime("%Y-%m-01T00:00:00"))
        for group in grouping:
            if group["type"] == "TagKey":
                key.append(cost["tags"].get(group["name"], ""))
            else:
                key.append(dimension_value(sub, cost, group["name"]))
        key.append(cost["currency"])
        sums[tuple(key)] = sums.get(tuple(key), 0.0) + cost["cost"]
    columns = [{"name": name, "type": "Number"} for name in aggs]
    if granularity == "Daily":
        columns.append({"name": "UsageDate", "type": "Number"})
    elif granularity == "Monthly":
        columns.append({"name": "BillingMonth", "type": "Datetime"})
    columns += [{"name": g["name"], "type": "String"} for g in grouping]
    columns.append({"name": "Currency", "type": "String"})
    rows = [[total] * len(aggs) + list(key) for key, total in sorted(sums.items())]
    query_id = str(uuid.uuid4())
    return 200, {"id": f"{scope}/providers/Microsoft.CostManagement/query/{query_id}",
                 "name": query_id, "type": "Microsoft.CostManagement/query",
                 "location": None, "sku": None, "eTag": None,
                 "properties": {"nextLink": None, "columns": columns, "rows": rows}}, {}


def route_cost_forecast(ctx):
    sub = ctx.sub
    scope = f"/subscriptions/{sub.id}"
    if ctx.p.get("rg"):
        scope += f"/resourceGroups/{find_rg(sub, ctx.p['rg'])}"
    days, _, aggs, dataset = cost_request(ctx, forecast=True)
    for flag in ("includeActualCost", "includeFreshPartialCost"):
        if flag in ctx.body and not isinstance(ctx.body[flag], bool):
            raise bad_request(f"Invalid forecast definition: '{flag}' must be a boolean.")
    cost_filter(sub, dataset.get("filter"))  # validated; forecasts ignore it
    columns = [{"name": name, "type": "Number"} for name in aggs] + [
        {"name": "UsageDate", "type": "Number"}, {"name": "CostStatus", "type": "String"},
        {"name": "Currency", "type": "String"}]
    rows = []
    if sub.forecast:
        amount, currency = sub.forecast["amount"], sub.forecast.get("currency", "USD")
        rows = [[amount] * len(aggs) + [int(d.strftime("%Y%m%d")), "Forecast", currency]
                for d in days]
    forecast_id = str(uuid.uuid4())
    return 200, {"id": f"{scope}/providers/Microsoft.CostManagement/query/{forecast_id}",
                 "name": forecast_id, "type": "Microsoft.CostManagement/query",
                 "location": None, "sku": None, "eTag": None,
                 "properties": {"nextLink": None, "columns": columns, "rows": rows}}, {}


# ---------------------------------------------------------------------------------------------
# Routes: Azure Monitor

AGGREGATIONS = {a.lower(): a for a in ("Average", "Maximum", "Minimum", "Total", "Count")}
UNITS = {"percentage cpu": "Percent", "available memory bytes": "Bytes", "network in total": "Bytes",
         "network out total": "Bytes"}


def route_metrics(ctx):
    sub = ctx.sub
    ss = find_set(sub, ctx.p["rg"], ctx.p["name"])
    seeded = sub.metrics.get(ss["name"].lower(), {})
    timespan = ctx.query.get("timespan")
    if timespan is None:
        end = datetime.datetime.now(UTC).replace(microsecond=0)
        start = end - datetime.timedelta(hours=1)
        timespan = f"{start.strftime('%Y-%m-%dT%H:%M:%SZ')}/{end.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    else:
        parts = timespan.split("/")
        start, end = (parse_time(parts[0]), parse_time(parts[1])) if len(parts) == 2 else (None, None)
        if start is None or end is None or start > end:
            raise bad_request(f"Invalid timespan '{timespan}': expected START/END, two ISO 8601 "
                              "timestamps, START not after END.")
    interval = ctx.query.get("interval", "PT1M")
    if interval.upper() != "FULL" and not ISO_DURATION.match(interval):
        raise bad_request(f"Invalid interval '{interval}': expected an ISO 8601 duration "
                          "(PT1M, PT5M, PT1H, ...).")
    aggregations = []
    for name in ctx.query.get("aggregation", "Average").split(","):
        canonical = AGGREGATIONS.get(name.strip().lower())
        if canonical is None:
            raise bad_request(f"Invalid aggregation '{name}': allowed are Average, Maximum, "
                              "Minimum, Total, Count.")
        aggregations.append(canonical.lower())
    values = []
    for wanted in ctx.query.get("metricnames", "Percentage CPU").split(","):
        wanted = wanted.strip()
        metric = next((m for m in seeded if m.lower() == wanted.lower()), None)
        if metric is None:
            raise bad_request(
                "Failed to find metric configuration for provider: Microsoft.Compute, resource "
                f"Type: virtualMachineScaleSets, metric: {wanted}, Valid metrics: "
                f"{', '.join(seeded)}")
        data = []
        for when, text, value in seeded[metric]:
            if start <= when < end:
                point = {"timeStamp": text}
                point.update({agg: value for agg in aggregations})
                data.append(point)
        values.append({
            "id": f"{vmss_id(sub, ss)}/providers/Microsoft.Insights/metrics/{metric}",
            "type": "Microsoft.Insights/metrics",
            "name": {"value": metric, "localizedValue": metric},
            "displayDescription": f"{metric} of the scale set (fake).",
            "unit": UNITS.get(metric.lower(), "Count"),
            "timeseries": [{"metadatavalues": [], "data": data}],
            "errorCode": "Success",
        })
    return 200, {"cost": 0, "timespan": timespan, "interval": interval, "value": values,
                 "namespace": "Microsoft.Compute/virtualMachineScaleSets",
                 "resourceregion": sub.location}, {}


# ---------------------------------------------------------------------------------------------
# Routes: Retail Prices

CURRENCY_RATES = {"USD": 1.0, "EUR": 0.92, "GBP": 0.79}
PRICE_FIELDS = {f.lower(): f for f in ("serviceName", "armRegionName", "armSkuName", "priceType",
                                       "type", "skuName", "productName", "serviceFamily",
                                       "location", "meterId", "meterName", "productId", "skuId",
                                       "serviceId")}
PRICES = {"items": None, "page_size": 100}  # items None: the built-in list


def builtin_prices():
    """A handful of eastus VM prices, Linux and Windows, with the items clients must ignore."""
    series = {"D": ("DSv5", "DZH318Z0BQPS"), "F": ("FSv2", "DZH318Z0BQ4L"), "B": ("BS", "DZH318Z0BQ4F")}
    sizes = [("Standard_D2s_v5", "D2s v5", 0.096, 0.0192, 2), ("Standard_D4s_v5", "D4s v5", 0.192, 0.0384, 4),
             ("Standard_F2s_v2", "F2s v2", 0.0846, 0.0169, 2), ("Standard_B2s", "B2s", 0.0416, None, 2)]
    items = []

    def item(arm, sku_name, meter, price, os_suffix, kind="Consumption", region="eastus",
             location="US East", **extra):
        family, product = series[arm.split("_")[1][0]]
        product_id = product if not os_suffix else product[:-1] + "W"
        key = f"{arm}/{meter}/{os_suffix}/{kind}/{region}"
        entry = {
            "currencyCode": "USD", "tierMinimumUnits": 0.0, "retailPrice": price, "unitPrice": price,
            "armRegionName": region, "location": location, "effectiveStartDate": "2023-06-01T00:00:00Z",
            "meterId": str(uuid.uuid5(uuid.NAMESPACE_URL, "meter/" + key)), "meterName": meter,
            "productId": product_id,
            "skuId": f"{product_id}/{uuid.uuid5(uuid.NAMESPACE_URL, key).hex[:4].upper()}",
            "availabilityId": None,
            "productName": f"Virtual Machines {family} Series{os_suffix}", "skuName": sku_name,
            "serviceName": "Virtual Machines", "serviceId": "DZH313Z7MMC8", "serviceFamily": "Compute",
            "unitOfMeasure": "1 Hour", "type": kind, "isPrimaryMeterRegion": True, "armSkuName": arm,
        }
        entry.update(extra)
        items.append(entry)

    for arm, short, on_demand, spot, vcpus in sizes:
        windows = round(0.046 * vcpus, 4)
        item(arm, short, short, on_demand, "")
        item(arm, short, short, round(on_demand + windows, 4), " Windows")
        if spot is not None:
            item(arm, f"{short} Spot", f"{short} Spot", spot, "")
            item(arm, f"{short} Spot", f"{short} Spot", round(spot + windows / 5, 4), " Windows")
            item(arm, f"{short} Low Priority", f"{short} Low Priority", round(spot * 1.5, 4), "")
    item("Standard_D2s_v5", "D2s v5", "D2s v5", 0.0575, "", kind="DevTestConsumption")
    item("Standard_D2s_v5", "D2s v5", "D2s v5", 496.0, "", kind="Reservation",
         reservationTerm="1 Year", unitOfMeasure="1 Hour")
    item("Standard_D2s_v5", "D2s v5", "D2s v5", 0.115, "", region="westus2", location="US West 2")
    return items


def prices_error(message):
    """The Retail Prices API's own error shape."""
    return ApiError(400, "BadRequest", message,
                    body={"Error": {"Code": "BadRequest", "Message": message}})


def split_and(text):
    """Splits a $filter on ` and ` outside quotes."""
    parts, current, quoted, i = [], "", False, 0
    while i < len(text):
        ch = text[i]
        if ch == "'":
            quoted = not quoted
        if not quoted and re.match(r"\s+and\s+", text[i:], re.I) and current.strip():
            found = re.match(r"\s+and\s+", text[i:], re.I)
            parts.append(current)
            current, i = "", i + found.end()
            continue
        current += ch
        i += 1
    parts.append(current)
    return parts


PRICE_EQ = re.compile(r"^\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*$", re.I)
PRICE_CONTAINS = re.compile(r"^\s*contains\(\s*(\w+)\s*,\s*'((?:[^']|'')*)'\s*\)\s*$", re.I)


def price_filter(text):
    """Predicates for a Retail Prices $filter; values compare case-sensitively (2023-01-01-preview)."""
    checks = []
    for clause in split_and(text):
        clause = clause.strip()
        while clause.startswith("(") and clause.endswith(")") and not PRICE_CONTAINS.match(clause):
            clause = clause[1:-1].strip()
        found = PRICE_EQ.match(clause) or PRICE_CONTAINS.match(clause)
        if not found:
            raise prices_error(f"Invalid OData filter: cannot parse '{clause}' in $filter '{text}'.")
        field = PRICE_FIELDS.get(found.group(1).lower())
        if field is None:
            raise prices_error(f"Invalid OData filter: unknown field '{found.group(1)}'.")
        field = "type" if field == "priceType" else field
        value = found.group(2).replace("''", "'")
        if found.re is PRICE_EQ:
            checks.append(lambda item, f=field, v=value: str(item.get(f, "")) == v)
        else:
            checks.append(lambda item, f=field, v=value: v in str(item.get(f, "")))
    return checks


def route_prices(ctx):
    items = PRICES["items"] if PRICES["items"] is not None else builtin_prices()
    currency = ctx.query.get("currencyCode")
    if currency is None:
        currency = "USD"
    else:
        if not (len(currency) >= 2 and currency.startswith("'") and currency.endswith("'")):
            raise prices_error(f"Invalid currencyCode {currency}: quote it, as in currencyCode='EUR'.")
        currency = currency[1:-1]
        if currency not in CURRENCY_RATES:
            raise prices_error(f"Invalid currency code '{currency}'. Supported here: "
                               f"{', '.join(CURRENCY_RATES)}.")
    if "$filter" in ctx.query:
        checks = price_filter(ctx.query["$filter"])
        items = [i for i in items if all(check(i) for check in checks)]
    if ctx.query.get("meterRegion") == "'primary'":
        items = [i for i in items if i.get("isPrimaryMeterRegion")]
    skip = ctx.query.get("$skip", "0")
    if not skip.isdigit():
        raise prices_error(f"Invalid $skip '{skip}'.")
    skip, size = int(skip), PRICES["page_size"]
    page = []
    for item in items[skip:skip + size]:
        item = dict(item)
        rate = CURRENCY_RATES[currency]
        for field in ("retailPrice", "unitPrice"):
            if isinstance(item.get(field), (int, float)):
                item[field] = round(item[field] * rate, 8)
        item["currencyCode"] = currency
        page.append(item)
    next_link = None
    if skip + size < len(items):
        query = dict(ctx.query)
        query["$skip"] = str(skip + size)
        next_link = f"{ctx.base}{ctx.path}?{urlencode(query, quote_via=quote)}"
    return 200, {"BillingCurrency": currency, "CustomerEntityId": "Default",
                 "CustomerEntityType": "Retail", "Items": page, "NextPageLink": next_link,
                 "Count": len(page)}, {}


# ---------------------------------------------------------------------------------------------
# Router

SUB = r"/subscriptions/(?P<sub>[^/]+)"
RG = SUB + r"/resourceGroups/(?P<rg>[^/]+)"
COMPUTE = r"/providers/Microsoft\.Compute"
VMSS = RG + COMPUTE + r"/virtualMachineScaleSets/(?P<name>[^/]+)"
OPS = SUB + COMPUTE + r"/locations/(?P<loc>[^/]+)"
COST = SUB + r"(?:/resourceGroups/(?P<rg>[^/]+))?/providers/Microsoft\.CostManagement"

# (method, path regex, api-version required or None, handler)
ROUTES = [(m, re.compile(p, re.I), v, h) for m, p, v, h in [
    ("POST", r"/(?P<tenant>[^/]+)/oauth2/v2\.0/token", None, route_token),
    ("GET", r"/api/retail/prices", PRICES_API, route_prices),
    ("GET", VMSS, COMPUTE_API, route_vmss_get),
    ("PATCH", VMSS, COMPUTE_API, route_vmss_patch),
    ("POST", VMSS + r"/delete", COMPUTE_API, route_vmss_delete_instances),
    ("POST", VMSS + r"/manualupgrade", COMPUTE_API, route_vmss_manual_upgrade),
    ("GET", VMSS + r"/virtualMachines", COMPUTE_API, route_vmss_vms),
    ("GET", VMSS + r"/providers/Microsoft\.Insights/metrics", METRICS_API, route_metrics),
    ("GET", RG + COMPUTE + r"/virtualMachineScaleSets", COMPUTE_API, route_vmss_list),
    ("GET", SUB + COMPUTE + r"/virtualMachineScaleSets", COMPUTE_API, route_vmss_list),
    ("GET", RG + COMPUTE + r"/virtualMachines", COMPUTE_API, route_vms),
    ("GET", OPS + r"/operations/(?P<op>[^/]+)", COMPUTE_API, route_operation_status),
    ("GET", OPS + r"/operationResults/(?P<op>[^/]+)", COMPUTE_API, route_operation_result),
    ("GET", SUB + COMPUTE + r"/skus", SKUS_API, route_skus),
    ("POST", COST + r"/query", COST_API, route_cost_query),
    ("POST", COST + r"/forecast", COST_API, route_cost_forecast),
]]


class Ctx:
    """One request, as the routes see it."""

    def __init__(self, method, path, query, body, form, base, headers):
        self.method, self.path, self.query, self.body, self.form = method, path, query, body, form
        self.base, self.headers = base, headers
        self.p = {}
        self.sub = None


def take_fault(ctx):
    """The first injected fault matching this request, consumed; or None."""
    for fault in FAULTS:
        if fault.get("subscription") and fault["subscription"].lower() not in ctx.path.lower():
            continue
        if fault.get("method") and fault["method"].upper() != ctx.method:
            continue
        if fault.get("path_contains") and fault["path_contains"].lower() not in ctx.path.lower():
            continue
        fault["times"] -= 1
        if fault["times"] <= 0:
            FAULTS.remove(fault)
        headers = {}
        if fault.get("retry_after") is not None:
            headers["Retry-After"] = str(fault["retry_after"])
        return ApiError(fault["status"], fault["code"], fault["message"], headers=headers)
    return None


def dispatch(ctx, record, body_error):
    """Serves a recorded (non-control) request. Called with LOCK held."""
    route = next(((r, m) for r in ROUTES if r[0] == ctx.method
                  for m in [r[1].fullmatch(ctx.path)] if m), None)
    arm = re.match(r"^/subscriptions(/|$)", ctx.path, re.I) is not None
    if arm:
        header = ctx.headers.get("Authorization")
        if not header:
            record["auth"] = "missing"
            raise ApiError(401, "AuthenticationFailed",
                           "Authentication failed. The 'Authorization' header is missing.")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or token.strip() not in TOKENS:
            record["auth"] = "invalid"
            raise ApiError(401, "InvalidAuthenticationToken", "The access token is invalid.")
        record["auth"] = "ok"
        sub_id = ctx.path.split("/")[2] if ctx.path.count("/") >= 2 else ""
        if not GUID.match(sub_id):
            raise ApiError(400, "InvalidSubscriptionId", f"The provided subscription identifier "
                           f"'{sub_id}' is malformed or invalid.")
        ctx.sub = SUBSCRIPTIONS.get(sub_id.lower())
        if ctx.sub is None:
            raise ApiError(404, "SubscriptionNotFound", f"The subscription '{sub_id}' could not be found.")
        settle(ctx.sub)
    if route is None:
        if arm:
            raise ApiError(404, "InvalidResourceType", f"The resource type for '{ctx.method} "
                           f"{ctx.path}' could not be found (this fake does not serve it).")
        raise ApiError(404, "NotFound", f"No route for {ctx.method} {ctx.path}.")
    (_, _, api_version, handler), found = route
    ctx.p = found.groupdict()
    if api_version is not None:
        given = ctx.query.get("api-version")
        if given is None:
            raise ApiError(400, "MissingApiVersionParameter", "The api-version query parameter "
                           "(?api-version=) is required for all requests.")
        if given != api_version:
            raise ApiError(400, "InvalidApiVersionParameter", f"The api-version '{given}' is "
                           f"invalid. The supported versions are '{api_version}'.")
    fault = take_fault(ctx)
    if fault is not None:
        raise fault
    if ctx.form and ctx.body is not None and handler is not route_token:
        raise ApiError(415, "UnsupportedMediaType", "The content media type "
                       "'application/x-www-form-urlencoded' is not supported. Only "
                       "'application/json' is supported.")
    if body_error is not None:
        raise body_error
    return handler(ctx)


# ---------------------------------------------------------------------------------------------
# Control API (/_fake/*)


def control(method, path, query, body):
    if method == "GET" and path == "/_fake/health":
        return 200, {"ok": True}
    found = re.fullmatch(r"/_fake/subscriptions/([^/]+)", path)
    if found:
        sub_id = found.group(1)
        if not GUID.match(sub_id):
            raise bad_request(f"'{sub_id}' is not a GUID")
        if method == "PUT":
            seed = require_object(body if body is not None else {})
            SUBSCRIPTIONS[sub_id.lower()] = Subscription(sub_id, seed)
            return 200, state_view(SUBSCRIPTIONS[sub_id.lower()])
        if method == "GET":
            sub = SUBSCRIPTIONS.get(sub_id.lower())
            if sub is None:
                raise ApiError(404, "SubscriptionNotFound", f"The subscription '{sub_id}' was never seeded.")
            settle(sub)
            return 200, state_view(sub)
    if method == "GET" and path == "/_fake/requests":
        sub = query.get("subscription", "").lower()
        prices = query.get("prices") == "1"
        return 200, [r for r in REQUESTS
                     if not sub or sub in r["path"].lower()
                     or (prices and r["path"].lower().startswith("/api/retail/prices"))]
    if method == "POST" and path == "/_fake/faults":
        body = require_object(body)
        status = body.get("status", 500)
        times = body.get("times", 1)
        if not is_int(status) or not 400 <= status <= 599 or not is_int(times) or times < 1:
            raise bad_request("a fault needs status 400..599 and times >= 1")
        FAULTS.append({"subscription": body.get("subscription"), "method": body.get("method"),
                       "path_contains": body.get("path_contains"), "status": status,
                       "code": body.get("code", "InternalServerError"),
                       "message": body.get("message", "Injected fault."),
                       "retry_after": body.get("retry_after"), "times": times})
        return 200, {"ok": True, "faults": len(FAULTS)}
    if method == "POST" and path == "/_fake/fail-next-operation":
        body = require_object(body)
        sub = SUBSCRIPTIONS.get(str(body.get("subscription", "")).lower())
        if sub is None:
            raise ApiError(404, "SubscriptionNotFound", "fail-next-operation: unknown subscription")
        sub.fail_next = {"code": body.get("code", "AllocationFailed"),
                         "message": body.get("message", "Allocation failed. (injected)")}
        return 200, {"ok": True}
    if method == "PUT" and path == "/_fake/prices":
        body = require_object(body)
        items, size = body.get("items"), body.get("page_size", 100)
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items) \
                or not is_int(size) or size < 1:
            raise bad_request("prices need items (a list of objects) and page_size >= 1")
        PRICES["items"], PRICES["page_size"] = items, size
        return 200, {"ok": True, "items": len(items)}
    raise ApiError(404, "NotFound", f"No control route {method} {path}.")


# ---------------------------------------------------------------------------------------------
# HTTP


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "azure-fake"

    def log_message(self, fmt, *args):
        pass  # one line per request is written by handle_request

    def do_GET(self):
        self.handle_request("GET")

    def do_POST(self):
        self.handle_request("POST")

    def do_PUT(self):
        self.handle_request("PUT")

    def do_PATCH(self):
        self.handle_request("PATCH")

    def do_DELETE(self):
        self.handle_request("DELETE")

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0] or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def handle_request(self, method):
        split = urlsplit(self.path)
        path = unquote(split.path)
        if len(path) > 1:
            path = path.rstrip("/")
        query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        raw = self.read_body()
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        form = content_type == "application/x-www-form-urlencoded"
        body, body_error = None, None
        if raw:
            if form:
                body = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace"),
                                                     keep_blank_values=True).items()}
            else:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body_error = ApiError(400, "InvalidRequestContent", "The request content was "
                                          "invalid and could not be deserialized: not valid JSON.")
                if body_error is None and content_type and "json" not in content_type:
                    body_error = ApiError(415, "UnsupportedMediaType", f"The content media type "
                                          f"'{content_type}' is not supported. Only "
                                          "'application/json' is supported.")

        if path == "/_fake" or path.startswith("/_fake/"):
            with LOCK:
                try:
                    if body_error is not None:
                        raise body_error
                    status, payload = control(method, path, query, body)
                    headers = {}
                except ApiError as err:
                    status, payload, headers = err.status, err.payload(), err.headers
            self.send(method, path, status, payload, headers, error=status >= 400)
            return

        base = f"http://{self.headers.get('Host') or '%s:%d' % self.server.server_address[:2]}"
        ctx = Ctx(method, path, query, body if body_error is None else None, form, base, self.headers)
        record = {"at": time.time(), "method": method, "path": path, "query": query,
                  "auth": "none-needed", "body": ctx.body, "status": None}
        with LOCK:
            try:
                status, payload, headers = dispatch(ctx, record, body_error)
                error = False
            except ApiError as err:
                status, payload, headers, error = err.status, err.payload(), err.headers, True
            record["status"] = status
            REQUESTS.append(record)
            # Serialise under the lock: views may hold references into the state.
            encoded = json.dumps(payload).encode() if payload is not None else b""
        headers = dict(headers)
        headers["x-ms-request-id"] = str(uuid.uuid4())
        if error and isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            headers["x-ms-error-code"] = payload["error"].get("code", "")
        self.send(method, path, status, encoded, headers, error=error)

    def send(self, method, path, status, payload, headers, error):
        if isinstance(payload, bytes):
            data = payload
        else:
            data = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8" if error else "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        sys.stderr.write(f"azure-fake: {method} {path} {status}\n")
        sys.stderr.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT to listen on")
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), Handler)
    server.daemon_threads = True
    sys.stderr.write(f"azure-fake: listening on http://{host}:{port}\n")
    sys.stderr.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
