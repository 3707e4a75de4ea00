"""A strict local fake of the Google Cloud REST APIs, for hoist-gcp's tests.

One server answers everything hoist-gcp calls, following the documented REST APIs for exactly
those operations (and refusing what the real APIs refuse), in the JSON the official
google-cloud-rust crates speak (int64/uint64 as strings, int32 and double as numbers, enums as
names, or as numbers when the client asks for `$alt=json;enum-encoding=int`):

- Compute Engine v1 (/compute/v1/projects/{p}/...): zonal and regional managed instance groups
  (get, list, aggregated list, resize, listManagedInstances, deleteInstances, patch), instance
  templates (get, list, insert, delete; regional templates: get, insert), machine types (get, list), zones
  (get, list) and zonal, regional and global operations (get, wait);
- Cloud Monitoring v3 ListTimeSeries (GET /v3/projects/{p}/timeSeries);
- the Cloud Billing Catalog (GET /v1/services, GET /v1/services/{service}/skus; no project);
- BigQuery jobs.query (POST /bigquery/v2/projects/{p}/queries) over a seeded billing export table.

State is kept per project id, so parallel tests each seed their own project. Compute writes are
operations: they answer an Operation RUNNING and take effect `operation_seconds` later, settled
lazily on the next request that looks at the project (one operation per group at a time; another
write meanwhile is refused with 400 resourceNotReady); operations.wait blocks until then.
`requestId` makes writes idempotent, as in GCE. Lists page by the seed's `page_size` (default 2:
the server may always return fewer than maxResults) so that clients must follow nextPageToken.
Requests carry no credentials (anonymous) or any bearer token; the log records which, never the
token.

Beyond the letter of the spec, as the real APIs do: resource URLs in bodies are absolute and use
this server's own address (the crates send `Host: 127.0.0.1` without the port, so the address is
taken from the listening socket, not from Host); `fingerprint` is base64 (the crates decode it)
and a stale one is refused (412); a group reports `status.autoscaler` when an autoscaler is
attached and `listManagedInstancesResults` (PAGINATED unless seeded PAGELESS, which ignores
maxResults/pageToken as GCE does); PROACTIVE update policies are checked (maxSurge and
maxUnavailable not both 0; a regional group's fixed values 0 or >= its zone count); Spot templates
cannot restart automatically; a template in use cannot be deleted; Compute lists take `filter`
(`field = "v"`, `!=`, `eq`/`ne` regular expressions, joined by AND) and `orderBy` (`name`,
`creationTimestamp desc`); Cloud Monitoring and the Billing Catalog answer errors without the
legacy `errors` array and take enums by name or number; BigQuery refuses legacy SQL (the jobs.query
default) and @parameters it is not given, filters on `label_key[_N]`/`label_value[_N]` parameters
and groups by `@group_key`'s label or, when the SQL selects `service.description AS key`, by
service. Unknown seed fields are refused (400) so that typos in tests show.

Tests drive the fake through /_fake/* (no auth, never recorded):
    GET  /_fake/health
    PUT  /_fake/projects/{p}               seed (see Project); GET: the project's state
    PUT  /_fake/projects/{p}/time_series   replace the Cloud Monitoring series (instance ids are
                                           only known once seeded)
    GET  /_fake/requests?project={p}[&catalog=1]
    POST /_fake/faults                     {"project", "method", "path_contains", "status",
                                           "reason", "message", "retry_after", "times"};
                                           DELETE /_fake/faults?project={p} drops them
    POST /_fake/fail-next-operation        {"project", "code", "message"[, "http_status"]}
    PUT  /_fake/catalog                    {"skus": [Sku...] or null (built-in), "page_size"}

    python3 gcp_fake.py --listen 127.0.0.1:PORT

Test infrastructure only: binds where told (127.0.0.1), standard library only.
"""

import argparse
import base64
import datetime
import hashlib
import json
import random
import re
import sys
import threading
import time
import uuid
from decimal import ROUND_HALF_EVEN, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

UTC = datetime.timezone.utc
PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
RESOURCE_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
ZONE_NAME = re.compile(r"^[a-z]+-[a-z]+[0-9]+-[a-z]$")
REGION_NAME = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
BILLING_TABLE = re.compile(r"^[a-z][a-z0-9-]+\.[A-Za-z0-9_]+\.[A-Za-z0-9_]+$")
TEMPLATE_REL = re.compile(r"projects/([^/]+)/(?:global|regions/([^/]+))/instanceTemplates/([^/]+)")
UUID_TEXT = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
COMPUTE_SERVICE = "6F81-5844-456A"
MAX_RESULTS = 500
WAIT_LIMIT_SECONDS = 120  # operations.wait returns after at most two minutes, as in GCE

LOCK = threading.RLock()
PROJECTS = {}  # project id -> Project
REQUESTS = []
FAULTS = []
CATALOG = {"skus": None, "page_size": 3}  # skus None: the built-in list
BASE = None  # http://HOST:PORT of this server, set when it starts listening

STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                404: "NOT_FOUND", 409: "ABORTED", 412: "FAILED_PRECONDITION",
                429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 501: "UNIMPLEMENTED",
                503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
REASON_STATUS = {"alreadyExists": "ALREADY_EXISTS", "conditionNotMet": "FAILED_PRECONDITION"}
HTTP_MESSAGES = {400: "BAD REQUEST", 403: "FORBIDDEN", 404: "NOT FOUND", 409: "CONFLICT",
                 429: "TOO MANY REQUESTS", 500: "INTERNAL SERVER ERROR", 503: "SERVICE UNAVAILABLE"}


class ApiError(Exception):
    """An error answer in Google's shape. `reason` goes into the legacy `errors` array, which
    Compute Engine and BigQuery send and the newer APIs (Monitoring, Billing) do not."""

    def __init__(self, status, reason, message, headers=None, status_name=None):
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message
        self.headers = headers or {}
        self.status_name = (status_name or REASON_STATUS.get(reason)
                            or STATUS_NAMES.get(status, "UNKNOWN"))

    def payload(self, legacy=True):
        error = {"code": self.status, "message": self.message}
        if legacy:
            error["errors"] = [{"message": self.message, "domain": "global", "reason": self.reason}]
        error["status"] = self.status_name
        return {"error": error}


def invalid(message):
    return ApiError(400, "invalid", message)


def invalid_field(field, value, why):
    return invalid(f"Invalid value for field '{field}': '{value}'. {why}")


def not_found(rel):
    return ApiError(404, "notFound", f"The resource '{rel}' was not found")


def bad_seed(message):
    return ApiError(400, "invalid", f"seed: {message}")


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def gce_time(t):
    """A Unix time as Compute Engine writes it (RFC 3339, milliseconds, numeric offset)."""
    dt = datetime.datetime.fromtimestamp(t, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}+00:00"


def proto_time(dt):
    """A datetime as protobuf JSON writes a Timestamp (RFC 3339, Z, fraction only if needed)."""
    text = dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        text += f".{dt.microsecond:06d}".rstrip("0")
    return text + "Z"


def parse_time(text):
    """An RFC 3339 timestamp as an aware datetime, or None."""
    if not isinstance(text, str) or not re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}", text):
        return None
    try:
        dt = datetime.datetime.fromisoformat(text.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def stable_id(*parts):
    """A deterministic uint64-looking resource id (as a string, like GCE's)."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return str(int.from_bytes(digest[:8], "big") >> 2 | 1 << 60)


def fingerprint(*parts):
    """8 bytes in base64 that decode in both the standard and the URL-safe alphabet."""
    counter = 0
    while True:
        digest = hashlib.sha256("/".join(parts + (str(counter),)).encode()).digest()[:8]
        text = base64.b64encode(digest).decode()
        if not set(text) & set("+/-_"):
            return text
        counter += 1


def url(rel):
    return f"{BASE}/compute/v1/{rel}"


URL_PREFIX = re.compile(r"^https?://[^/]+/compute/(?:v1|beta|alpha)/")


def relative(ref, project):
    """A resource reference (absolute URL, projects/..., or zones|regions|global/...) in its
    `projects/{p}/...` form, or None when it is not a Compute Engine reference."""
    if not isinstance(ref, str) or not ref:
        return None
    ref = URL_PREFIX.sub("", ref)
    if ref.startswith(("zones/", "regions/", "global/")):
        ref = f"projects/{project}/{ref}"
    return ref if ref.startswith("projects/") else None


# ---------------------------------------------------------------------------------------------
# Seeded state

DEFAULT_ZONES = {"us-central1-a": {"region": "us-central1"}, "us-central1-b": {"region": "us-central1"},
                 "us-central1-c": {"region": "us-central1"}}
DEFAULT_MACHINE_TYPES = [
    {"name": "n2-standard-2", "guestCpus": 2, "memoryMb": 8192},
    {"name": "n2-standard-4", "guestCpus": 4, "memoryMb": 16384},
    {"name": "e2-medium", "guestCpus": 2, "memoryMb": 4096, "isSharedCpu": True},
]
SEED_KEYS = {"operation_seconds", "page_size", "zones", "machine_types", "quota", "templates",
             "groups", "billing_export", "time_series"}
MACHINE_TYPE_KEYS = {"name", "guestCpus", "memoryMb", "isSharedCpu", "zones", "accelerators",
                     "maximumPersistentDisks", "description", "architecture"}
TEMPLATE_KEYS = {"name", "region", "description"}  # everything else is an instance property
GROUP_KEYS = {"name", "zone", "region", "zones", "template", "target_size", "bounds", "autoscaler",
              "update_policy", "list_managed_instances_results"}
BILLING_ROW_KEYS = {"day", "service", "cost", "credits", "currency", "labels"}
SERIES_KEYS = {"instance_id", "points", "zone", "metric_labels"}
ACTIONS = ["abandoning", "creating", "creatingWithoutRetries", "deleting", "none", "recreating",
           "refreshing", "restarting", "resuming", "starting", "stopping", "suspending", "verifying"]
UPDATE_TYPES = ("OPPORTUNISTIC", "PROACTIVE")
MINIMAL_ACTIONS = ("NONE", "REFRESH", "RESTART", "REPLACE")
REPLACEMENT_METHODS = ("SUBSTITUTE", "RECREATE")
PROVISIONING_MODELS = ("STANDARD", "SPOT", "FLEX_START", "RESERVATION_BOUND")


def check_keys(obj, allowed, what):
    if not isinstance(obj, dict):
        raise bad_seed(f"{what} must be an object")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise bad_seed(f"unknown field(s) {unknown} in {what}; known: {sorted(allowed)}")


def default_properties(machine_type):
    """What an instance template made in the console holds besides the machine type."""
    return {
        "machineType": machine_type,
        "disks": [{"type": "PERSISTENT", "mode": "READ_WRITE", "boot": True, "autoDelete": True,
                   "deviceName": "persistent-disk-0",
                   "initializeParams": {
                       "sourceImage": "projects/debian-cloud/global/images/family/debian-12",
                       "diskSizeGb": "10", "diskType": "pd-balanced"}}],
        "networkInterfaces": [{"network": "global/networks/default", "name": "nic0",
                               "accessConfigs": [{"type": "ONE_TO_ONE_NAT", "name": "External NAT",
                                                  "networkTier": "PREMIUM"}]}],
        "scheduling": {"onHostMaintenance": "MIGRATE", "automaticRestart": True,
                       "preemptible": False, "provisioningModel": "STANDARD"},
    }


class Project:
    """One project's state, built from a seed (every key optional):

    operation_seconds (0.2), page_size (2), zones ({zone: {"region"}}; us-central1-a/b/c),
    machine_types ([{name, guestCpus, memoryMb, isSharedCpu, zones, accelerators, architecture,
    description, maximumPersistentDisks}]; n2-standard-2/4 and e2-medium), quota ({region:
    {"CPUS": n}}), templates ([{name, region (regional template), description, machineType,
    labels, scheduling, any other instance property}]), groups ([{name, zone | region + zones,
    template, target_size, bounds {min, max}, autoscaler, update_policy,
    list_managed_instances_results}]), billing_export ({table, rows: [{day, service, cost,
    credits, currency, labels}]}) and time_series ({metric type: [{instance_id, points:
    [[RFC3339, value], ...], zone, metric_labels}]}).
    """

    def __init__(self, pid, seed):
        check_keys(seed, SEED_KEYS, "the seed")
        self.id = pid
        self.rng = random.Random(pid)
        self.created = time.time()
        self.operation_seconds = seed.get("operation_seconds", 0.2)
        self.page_size = seed.get("page_size", 2)
        if not isinstance(self.operation_seconds, (int, float)) or self.operation_seconds < 0:
            raise bad_seed("operation_seconds must be a number >= 0")
        if not is_int(self.page_size) or self.page_size < 1:
            raise bad_seed("page_size must be an integer >= 1")
        self.next_instance_id = 1001
        self.operations = {}  # name -> operation
        self.request_ids = {}  # requestId -> operation name
        self.fail_next = None

        zones = seed.get("zones") or DEFAULT_ZONES
        if not isinstance(zones, dict):
            raise bad_seed("zones maps zone names to {\"region\": ...}")
        self.zones = {}
        for zone, info in zones.items():
            check_keys(info, {"region"}, f"zone {zone}")
            region = info.get("region")
            if not ZONE_NAME.match(zone) or not isinstance(region, str) \
                    or not REGION_NAME.match(region) or not zone.startswith(region + "-"):
                raise bad_seed(f"zone {zone!r} (region {region!r}): zones look like us-central1-a "
                               "and lie in their region")
            self.zones[zone] = region
        self.regions = sorted(set(self.zones.values()))

        self.machine_types = {}
        for raw in seed.get("machine_types") or DEFAULT_MACHINE_TYPES:
            check_keys(raw, MACHINE_TYPE_KEYS, "a machine type")
            name = raw.get("name")
            if not isinstance(name, str) or not RESOURCE_NAME.match(name):
                raise bad_seed(f"machine type name {name!r} is not a resource name")
            cpus, memory = raw.get("guestCpus"), raw.get("memoryMb")
            if not is_int(cpus) or cpus < 1 or not is_int(memory) or memory < 1:
                raise bad_seed(f"machine type {name}: guestCpus and memoryMb are integers >= 1")
            mt_zones = raw.get("zones", list(self.zones))
            if not isinstance(mt_zones, list) or any(z not in self.zones for z in mt_zones):
                raise bad_seed(f"machine type {name}: zones {mt_zones!r} must be seeded zones")
            self.machine_types[name] = {
                "name": name, "guestCpus": cpus, "memoryMb": memory,
                "isSharedCpu": bool(raw.get("isSharedCpu", False)), "zones": list(mt_zones),
                "accelerators": list(raw.get("accelerators") or []),
                "maximumPersistentDisks": raw.get("maximumPersistentDisks", 128),
                "description": raw.get("description") or
                f"{cpus} vCPU{'s' if cpus > 1 else ''}, {memory / 1024:g} GB RAM",
                "architecture": raw.get("architecture"),
            }

        self.quota = {}
        for region, limits in (seed.get("quota") or {}).items():
            if region not in self.regions:
                raise bad_seed(f"quota for region {region!r}, which no seeded zone lies in")
            check_keys(limits, {"CPUS"}, f"quota of {region}")
            if not isinstance(limits.get("CPUS"), (int, float)):
                raise bad_seed(f"quota of {region}: CPUS must be a number")
            self.quota[region] = {"CPUS": limits["CPUS"]}

        self.templates = {}  # relative URL -> template
        for raw in seed.get("templates") or []:
            self._seed_template(raw)

        self.groups = []
        for raw in seed.get("groups") or []:
            self.groups.append(self._seed_group(raw))

        self.billing = None
        if seed.get("billing_export") is not None:
            self.billing = self._seed_billing(seed["billing_export"])

        self.time_series = self.parse_time_series(seed.get("time_series") or {})

    # -- seeding helpers

    def parse_time_series(self, raw_series):
        """`{metric type: [{"instance_id", "points": [[RFC3339, number], ...]}, ...]}`, checked."""
        if not isinstance(raw_series, dict):
            raise bad_seed("time_series maps metric types to lists of series")
        out = {}
        for metric, series in raw_series.items():
            if not isinstance(series, list):
                raise bad_seed(f"time_series[{metric!r}] must be a list of series")
            parsed = []
            for raw in series:
                check_keys(raw, SERIES_KEYS, f"a {metric} series")
                points = []
                for point in raw.get("points") or []:
                    pair = isinstance(point, list) and len(point) == 2
                    when = parse_time(point[0]) if pair else None
                    if when is None or not is_number(point[1]):
                        raise bad_seed(f"{metric} points are [RFC3339, number], got {point!r}")
                    points.append((when, float(point[1])))
                if not isinstance(raw.get("instance_id"), str) or not raw["instance_id"].isdigit():
                    raise bad_seed(f"{metric}: instance_id must be a numeric string")
                if raw.get("zone") is not None and raw["zone"] not in self.zones:
                    raise bad_seed(f"{metric}: zone {raw['zone']!r} is not seeded")
                parsed.append({"instance_id": raw["instance_id"], "zone": raw.get("zone"),
                               "metric_labels": dict(raw.get("metric_labels") or {}),
                               "points": sorted(points)})
            out[metric] = parsed
        return out

    def _seed_template(self, raw):
        if not isinstance(raw, dict):
            raise bad_seed("every template is an object")
        name, region = raw.get("name"), raw.get("region")
        if not isinstance(name, str) or not RESOURCE_NAME.match(name):
            raise bad_seed(f"template name {name!r} is not a resource name")
        if region is not None and region not in self.regions:
            raise bad_seed(f"template {name}: region {region!r} is not seeded")
        properties = default_properties(raw.get("machineType"))
        extra = {k: v for k, v in raw.items() if k not in TEMPLATE_KEYS}
        if isinstance(extra.get("properties"), dict):
            properties.update(extra.pop("properties"))
        properties.update(extra)
        if properties.get("machineType") not in self.machine_types:
            raise bad_seed(f"template {name}: machineType {properties.get('machineType')!r} is not "
                           f"among the seeded machine types {sorted(self.machine_types)}")
        rel = template_rel(self.id, name, region)
        if rel in self.templates:
            raise bad_seed(f"template {name} is seeded twice")
        self.templates[rel] = {"name": name, "region": region, "rel": rel,
                               "id": stable_id(self.id, rel), "created": self.created,
                               "description": raw.get("description"), "properties": properties}

    def _seed_group(self, raw):
        check_keys(raw, GROUP_KEYS, "a group")
        name = raw.get("name")
        if not isinstance(name, str) or not RESOURCE_NAME.match(name):
            raise bad_seed(f"group name {name!r} is not a resource name")
        zone, region = raw.get("zone"), raw.get("region")
        if (zone is None) == (region is None):
            raise bad_seed(f"group {name}: give either zone (zonal) or region (regional)")
        if zone is not None:
            if zone not in self.zones:
                raise bad_seed(f"group {name}: zone {zone!r} is not seeded")
            region, zones = self.zones[zone], [zone]
        else:
            if region not in self.regions:
                raise bad_seed(f"group {name}: region {region!r} is not seeded")
            zones = raw.get("zones") or [z for z, r in self.zones.items() if r == region]
            if not isinstance(zones, list) or any(self.zones.get(z) != region for z in zones):
                raise bad_seed(f"group {name}: zones {zones!r} must be seeded zones of {region}")
        loc = f"projects/{self.id}/zones/{zone}" if zone else f"projects/{self.id}/regions/{region}"
        if any(g["rel"] == f"{loc}/instanceGroupManagers/{name}" for g in self.groups):
            raise bad_seed(f"group {name} is seeded twice in the same location")
        template = self.find_template_ref(raw.get("template"), region)
        if template is None:
            raise bad_seed(f"group {name}: template {raw.get('template')!r} is not a seeded template")
        size = raw.get("target_size", 0)
        bounds = raw.get("bounds") or {}
        check_keys(bounds, {"min", "max"}, f"bounds of group {name}")
        low, high = bounds.get("min", 0), bounds.get("max", 1000 if zone else 2000)
        if not all(is_int(v) and v >= 0 for v in (size, low, high)) or not low <= high:
            raise bad_seed(f"group {name}: target_size and bounds are integers >= 0, min <= max")
        results = raw.get("list_managed_instances_results", "PAGINATED")
        if results not in ("PAGINATED", "PAGELESS"):
            raise bad_seed(f"group {name}: list_managed_instances_results is PAGINATED or PAGELESS")
        group = {
            "name": name, "zone": zone, "region": region, "zones": list(zones), "loc": loc,
            "rel": f"{loc}/instanceGroupManagers/{name}", "id": stable_id(self.id, loc, name),
            "created": self.created, "target_size": size, "bounds": (low, high),
            "autoscaler": bool(raw.get("autoscaler", False)), "results": results,
            "versions": [{"instanceTemplate": template["rel"]}], "instances": [], "op": None,
            "revision": 0, "counter": 0,
        }
        group["update_policy"] = default_update_policy(group)
        if raw.get("update_policy") is not None:
            group["update_policy"] = merged_update_policy(group, raw["update_policy"],
                                                          "seed.update_policy")
        group["fingerprint"] = fingerprint(self.id, group["rel"], "0")
        for _ in range(size):
            group["instances"].append(new_instance(self, group, template["rel"], "RUNNING", "NONE"))
        return group

    def _seed_billing(self, raw):
        check_keys(raw, {"table", "rows"}, "billing_export")
        table = raw.get("table")
        if not isinstance(table, str) or not BILLING_TABLE.match(table):
            raise bad_seed("billing_export.table is PROJECT.DATASET.TABLE")
        rows = []
        for row in raw.get("rows") or []:
            check_keys(row, BILLING_ROW_KEYS, "a billing row")
            try:
                day = datetime.date.fromisoformat(row["day"])
                cost, credits = float(row["cost"]), float(row.get("credits", 0))
            except (KeyError, TypeError, ValueError):
                raise bad_seed("every billing row needs day (YYYY-MM-DD), cost and optional credits")
            rows.append({"day": day, "service": row.get("service", "Compute Engine"), "cost": cost,
                         "credits": credits, "currency": row.get("currency", "USD"),
                         "labels": dict(row.get("labels") or {})})
        return {"table": table, "rows": rows}

    # -- lookups

    def find_template_ref(self, ref, region):
        """A seeded group's `template`: a name (global first, then regional) or a reference."""
        if not isinstance(ref, str):
            return None
        if "/" not in ref:
            return (self.templates.get(template_rel(self.id, ref, None))
                    or self.templates.get(template_rel(self.id, ref, region)))
        return self.templates.get(relative(ref, self.id) or "")

    def cpu_usage(self, region, skip=None):
        """vCPUs the groups of `region` use at their (pending) target sizes."""
        total = 0
        for g in self.groups:
            if g["region"] == region and g is not skip:
                total += group_size_after(self, g) * group_cpus(self, g)
        return total


def template_rel(project, name, region):
    if region:
        return f"projects/{project}/regions/{region}/instanceTemplates/{name}"
    return f"projects/{project}/global/instanceTemplates/{name}"


def group_cpus(project, g):
    template = project.templates.get(g["versions"][0]["instanceTemplate"])
    mt = project.machine_types.get((template or {}).get("properties", {}).get("machineType"))
    return mt["guestCpus"] if mt else 0


def group_size_after(project, g):
    op = project.operations.get(g["op"]) if g["op"] else None
    if op is not None and op["kind"] == "resize":
        return op["size"]
    return g["target_size"]


def default_update_policy(g):
    surge = 1 if g["zone"] else len(g["zones"])
    policy = {"type": "OPPORTUNISTIC", "minimalAction": "REPLACE",
              "mostDisruptiveAllowedAction": "REPLACE",
              "maxSurge": {"fixed": surge, "calculated": surge},
              "maxUnavailable": {"fixed": surge, "calculated": surge},
              "replacementMethod": "SUBSTITUTE"}
    if g["region"] and not g["zone"]:
        policy["instanceRedistributionType"] = "PROACTIVE"
    return policy


def merged_update_policy(g, patch, field):
    """`patch` merged into the group's update policy (JSON merge, as PATCH does), validated."""
    if not isinstance(patch, dict):
        raise invalid_field(field, json.dumps(patch), "The update policy must be an object.")
    policy = json.loads(json.dumps(g.get("update_policy") or default_update_policy(g)))
    enums = {"type": UPDATE_TYPES, "minimalAction": MINIMAL_ACTIONS,
             "mostDisruptiveAllowedAction": MINIMAL_ACTIONS, "replacementMethod": REPLACEMENT_METHODS,
             "instanceRedistributionType": ("PROACTIVE", "NONE")}
    for key, value in patch.items():
        if key in enums:
            if value not in enums[key]:
                raise invalid_field(f"{field}.{key}", value,
                                    f"Allowed values are {', '.join(enums[key])}.")
            if key == "instanceRedistributionType" and g["zone"]:
                raise invalid_field(f"{field}.{key}", value, "instanceRedistributionType applies "
                                    "to regional managed instance groups only.")
            policy[key] = value
        elif key in ("maxSurge", "maxUnavailable"):
            if not isinstance(value, dict) or len(value) != 1 or \
                    not any(k in value for k in ("fixed", "percent")):
                raise invalid_field(f"{field}.{key}", json.dumps(value),
                                    "Exactly one of fixed and percent must be set.")
            (kind, number), = value.items()
            if not is_int(number) or number < 0 or (kind == "percent" and number > 100):
                raise invalid_field(f"{field}.{key}.{kind}", number, "Must be a non-negative integer"
                                    + (" no greater than 100." if kind == "percent" else "."))
            size = max(len(g["instances"]), 1)
            calculated = number if kind == "fixed" else -(-size * number // 100)
            policy[key] = {kind: number, "calculated": calculated}
        else:
            raise invalid_field(f"{field}.{key}", json.dumps(value), "This field of the update "
                                "policy is not supported (by this fake).")
    if policy["type"] == "PROACTIVE":
        surge, unavailable = policy["maxSurge"].get("fixed"), policy["maxUnavailable"].get("fixed")
        if surge == 0 and unavailable == 0:
            raise invalid_field(f"{field}.maxUnavailable.fixed", 0, "Fixed updatePolicy."
                                "maxSurge and updatePolicy.maxUnavailable must not both be 0.")
        zones = len(g["zones"])
        if not g["zone"]:
            for key, value in (("maxSurge", surge), ("maxUnavailable", unavailable)):
                if value not in (None, 0) and value < zones:
                    raise invalid_field(f"{field}.{key}.fixed", value, f"Fixed updatePolicy.{key} "
                                        "for regional managed instance group has to be either 0 or "
                                        f"at least equal to the number of zones ({zones}).")
    return policy


def new_instance(project, g, template_rel_, status, action, zone=None, name=None):
    """An instance of `g`: `{group}-{4 random}` named, with the project's next numeric id."""
    if zone is None:
        zone = balanced_zone(g)
    if name is None:  # a fresh name (RECREATE passes the old one)
        taken = {i["name"] for grp in project.groups for i in grp["instances"]} | \
            {i["name"] for i in g["instances"]}
        while name is None or name in taken:
            name = g["name"] + "-" + "".join(
                project.rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(4))
    instance_id = str(project.next_instance_id)
    project.next_instance_id += 1
    seq = g["counter"]
    g["counter"] += 1
    return {"name": name, "id": instance_id, "zone": zone, "template": template_rel_,
            "status": status, "action": action, "seq": seq, "staging_at": None}


def balanced_zone(g):
    """The zone with the fewest instances that stay (GCE spreads regional groups evenly)."""
    staying = [i["zone"] for i in g["instances"] if i["action"] != "DELETING"]
    return min(g["zones"], key=lambda z: (staying.count(z), g["zones"].index(z)))


# ---------------------------------------------------------------------------------------------
# Operations


def op_scope_rel(project, scope):
    kind, where = scope
    if kind == "global":
        return f"projects/{project.id}/global"
    return f"projects/{project.id}/{kind}/{where}"


def start_operation(project, kind, scope, op_type, target_rel, target_id, group=None, **plan):
    """Starts an operation; `fail-next-operation` (if set) makes it fail when it ends. A resize
    that adds instances fails as Compute Engine's do: the operation succeeds, and the new
    instances stay CREATING with the error as their last attempt's (see `finish`)."""
    now = time.time()
    error = None
    if project.fail_next is not None:
        error, project.fail_next = project.fail_next, None
    hexpart = uuid.UUID(int=project.rng.getrandbits(128)).hex
    name = f"operation-{int(now * 1000)}-{hexpart[:13]}-{hexpart[13:21]}-{hexpart[21:29]}"
    op = {"name": name, "id": stable_id(project.id, name), "kind": kind, "scope": scope,
          "type": op_type, "target_rel": target_rel, "target_id": target_id, "group": group,
          "status": "RUNNING", "insert": now, "start": now, "deadline": now + project.operation_seconds,
          "end": None, "error": error, "created": [], "victims": [], "targets": [], "size": None}
    op.update(plan)
    project.operations[name] = op
    if group is not None:
        group["op"] = name
    return op


def launch(project, op):
    """Ends the operation at once when operations take no time (GCE may answer DONE directly)."""
    for inst in op["created"]:
        inst["staging_at"] = op["start"] + (op["deadline"] - op["start"]) / 2
    if op["deadline"] <= op["start"]:
        finish(project, op)


def settle(project):
    """Ends every operation whose time has come (lazily, in start order)."""
    now = time.time()
    for op in sorted(project.operations.values(), key=lambda o: o["start"]):
        if op["status"] != "DONE" and now >= op["deadline"]:
            finish(project, op)


def without(instances, gone):
    gone = {id(i) for i in gone}
    return [i for i in instances if id(i) not in gone]


def finish(project, op):
    g = op["group"]
    failed = op["error"] is not None
    if op["kind"] == "resize" and failed and op["created"]:
        # As Compute Engine does: the resize operation itself succeeds (the target size is
        # set), and the instances it could not create stay CREATING, their last attempt
        # carrying the error (a stockout, a quota), retried by the group until they succeed.
        for inst in op["created"]:
            inst["status"] = ""
            inst["staging_at"] = None
            inst["last_error"] = op["error"]
        g["target_size"] = op["size"]
        op["error"] = None
        failed = False
        op["created"] = []
    if op["kind"] in ("resize", "deleteInstances"):
        if failed:
            g["instances"] = without(g["instances"], op["created"])
            for inst in op["victims"]:
                inst["action"], inst["status"] = "NONE", "RUNNING"
        else:
            for inst in op["created"]:
                inst["action"], inst["status"] = "NONE", "RUNNING"
            g["instances"] = without(g["instances"], op["victims"])
            if op["kind"] == "resize":
                g["target_size"] = op["size"]
            else:
                g["target_size"] = max(0, g["target_size"] - len(op["victims"]))
    elif op["kind"] == "patch":
        for inst in op["targets"]:
            inst["action"] = "NONE"
        if not failed:
            g["versions"] = op["versions"]
            g["update_policy"] = op["update_policy"]
            template = g["versions"][0]["instanceTemplate"]
            replaced = []
            for inst in op["targets"]:
                if op["action"] == "REPLACE":
                    keep_name = op["update_policy"].get("replacementMethod") == "RECREATE"
                    fresh = new_instance(project, g, template, "RUNNING", "NONE", zone=inst["zone"],
                                         name=inst["name"] if keep_name else None)
                    replaced.append((inst, fresh))
                else:
                    inst["template"] = template
            for old, fresh in replaced:
                g["instances"][g["instances"].index(old)] = fresh
    elif op["kind"] == "insertTemplate" and not failed:
        project.templates[op["template"]["rel"]] = op["template"]
    elif op["kind"] == "deleteTemplate" and not failed:
        project.templates.pop(op["target_rel"], None)
    if g is not None:
        g["op"] = None
        g["revision"] += 1
        g["fingerprint"] = fingerprint(project.id, g["rel"], str(g["revision"]))
    op["status"], op["end"] = "DONE", max(op["deadline"], op["start"])


def operation_view(project, op):
    body = {"kind": "compute#operation", "id": op["id"], "name": op["name"]}
    kind, where = op["scope"]
    if kind == "zones":
        body["zone"] = url(f"projects/{project.id}/zones/{where}")
    elif kind == "regions":
        body["region"] = url(f"projects/{project.id}/regions/{where}")
    body.update({
        "operationType": op["type"], "targetLink": url(op["target_rel"]), "targetId": op["target_id"],
        "status": op["status"], "user": "hoist@fake", "progress": 100 if op["status"] == "DONE" else 0,
        "insertTime": gce_time(op["insert"]), "startTime": gce_time(op["start"]),
        "selfLink": url(f"{op_scope_rel(project, op['scope'])}/operations/{op['name']}"),
    })
    if op["status"] == "DONE":
        body["endTime"] = gce_time(op["end"])
        if op["error"] is not None:
            error = op["error"]
            item = {"code": error["code"], "message": error["message"]}
            if error["code"] == "QUOTA_EXCEEDED" and error.get("region"):
                limit = project.quota.get(error["region"], {}).get("CPUS")
                info = {"metricName": "compute.googleapis.com/cpus",
                        "limitName": "CPUS-per-project-region",
                        "dimensions": {"region": error["region"]}}
                if limit is not None:
                    info["limit"] = limit
                item["errorDetails"] = [{"quotaInfo": info}]
            body["error"] = {"errors": [item]}
            body["httpErrorStatusCode"] = error["http"]
            body["httpErrorMessage"] = HTTP_MESSAGES.get(error["http"], "ERROR")
    return body


# ---------------------------------------------------------------------------------------------
# Views (the documented response shapes)


def zone_view(project, zone):
    rel = f"projects/{project.id}/zones/{zone}"
    return {"kind": "compute#zone", "id": stable_id(project.id, rel), "creationTimestamp":
            "1969-12-31T16:00:00.000-08:00", "name": zone, "description": zone, "status": "UP",
            "region": url(f"projects/{project.id}/regions/{project.zones[zone]}"),
            "selfLink": url(rel), "availableCpuPlatforms": ["Intel Cascade Lake", "AMD Milan"],
            "supportsPzs": False}


def machine_type_view(project, mt, zone):
    rel = f"projects/{project.id}/zones/{zone}/machineTypes/{mt['name']}"
    body = {"kind": "compute#machineType", "id": stable_id(project.id, "machineTypes", mt["name"]),
            "creationTimestamp": "1969-12-31T16:00:00.000-08:00", "name": mt["name"],
            "description": mt["description"], "guestCpus": mt["guestCpus"],
            "memoryMb": mt["memoryMb"], "imageSpaceGb": 0,
            "maximumPersistentDisks": mt["maximumPersistentDisks"],
            "maximumPersistentDisksSizeGb": "263168", "zone": zone, "selfLink": url(rel),
            "isSharedCpu": mt["isSharedCpu"]}
    if mt["accelerators"]:
        body["accelerators"] = mt["accelerators"]
    if mt["architecture"]:
        body["architecture"] = mt["architecture"]
    return body


def template_view(project, t):
    body = {"kind": "compute#instanceTemplate", "id": t["id"],
            "creationTimestamp": gce_time(t["created"]), "name": t["name"]}
    if t.get("description"):
        body["description"] = t["description"]
    body["properties"] = json.loads(json.dumps(t["properties"]))
    body["selfLink"] = url(t["rel"])
    if t["region"]:
        body["region"] = url(f"projects/{project.id}/regions/{t['region']}")
    return body


def instance_status(inst, now):
    if inst.get("last_error"):
        return None
    if inst["action"] == "CREATING" and inst["staging_at"] is not None and now >= inst["staging_at"]:
        return "STAGING"
    return inst["status"]


def managed_instance_view(project, g, inst, now):
    version = {"instanceTemplate": url(inst["template"])}
    for v in g["versions"]:
        if v["instanceTemplate"] == inst["template"] and v.get("name"):
            version["name"] = v["name"]
    view = {"instance": url(f"projects/{project.id}/zones/{inst['zone']}/instances/{inst['name']}"),
            "id": inst["id"], "name": inst["name"], "instanceStatus": instance_status(inst, now),
            "currentAction": inst["action"],
            "targetStatus": "DELETED" if inst["action"] == "DELETING" else "RUNNING",
            "version": version}
    if view["instanceStatus"] is None:
        # An instance Compute Engine has not managed to create has no status yet.
        del view["instanceStatus"]
    if inst.get("last_error"):
        view["lastAttempt"] = {"errors": {"errors": [
            {"code": inst["last_error"]["code"], "message": inst["last_error"]["message"]}]}}
    return view


def igm_view(project, g):
    counts = {a: 0 for a in ACTIONS}
    for inst in g["instances"]:
        key = {"CREATING": "creating", "DELETING": "deleting", "NONE": "none",
               "RECREATING": "recreating", "REFRESHING": "refreshing",
               "RESTARTING": "restarting"}[inst["action"]]
        counts[key] += 1
    template = g["versions"][0]["instanceTemplate"]
    reached = all(i["template"] == template for i in g["instances"])
    body = {"kind": "compute#instanceGroupManager", "id": g["id"],
            "creationTimestamp": gce_time(g["created"]), "name": g["name"]}
    if g["zone"]:
        body["zone"] = url(f"projects/{project.id}/zones/{g['zone']}")
    else:
        body["region"] = url(f"projects/{project.id}/regions/{g['region']}")
        body["distributionPolicy"] = {"zones": [{"zone": url(f"projects/{project.id}/zones/{z}")}
                                                for z in g["zones"]], "targetShape": "EVEN"}
    versions = []
    for v in g["versions"]:
        entry = {"instanceTemplate": url(v["instanceTemplate"])}
        if v.get("name"):
            entry["name"] = v["name"]
        versions.append(entry)
    status = {"isStable": counts["none"] == len(g["instances"]) and g["op"] is None,
              "versionTarget": {"isReached": reached},
              "stateful": {"hasStatefulConfig": False, "perInstanceConfigs": {"allEffective": True}}}
    if g["autoscaler"]:
        status["autoscaler"] = url(f"{g['loc']}/autoscalers/{g['name']}-autoscaler")
    body.update({
        "instanceTemplate": url(template), "versions": versions,
        "instanceGroup": url(f"{g['loc']}/instanceGroups/{g['name']}"),
        "baseInstanceName": g["name"], "fingerprint": g["fingerprint"], "currentActions": counts,
        "status": status, "targetSize": g["target_size"], "targetStoppedSize": 0,
        "targetSuspendedSize": 0, "listManagedInstancesResults": g["results"],
        "selfLink": url(g["rel"]), "updatePolicy": json.loads(json.dumps(g["update_policy"])),
        "satisfiesPzi": False, "satisfiesPzs": False,
    })
    return body


def state_view(project):
    """GET /_fake/projects/{p}: everything, for assertions."""
    now = time.time()

    def op_view(op):
        out = {"name": op["name"], "kind": op["kind"], "type": op["type"],
               "scope": "/".join(x for x in op["scope"] if x), "target": op["target_rel"],
               "status": op["status"], "start": op["start"], "deadline": op["deadline"],
               "error": op["error"]}
        if op["kind"] == "resize":
            out["size"] = op["size"]
        if op["kind"] in ("resize", "deleteInstances"):
            out["created"] = [i["name"] for i in op["created"]]
            out["deleted"] = [i["name"] for i in op["victims"]]
        if op["kind"] == "patch":
            out["replaced"] = [i["name"] for i in op["targets"]]
        return out

    return {
        "project": project.id, "operation_seconds": project.operation_seconds,
        "page_size": project.page_size, "zones": dict(project.zones),
        "machine_types": sorted(project.machine_types),
        "quota": project.quota,
        "cpu_usage": {r: project.cpu_usage(r) for r in project.regions},
        "fail_next_operation": project.fail_next,
        "templates": [{"name": t["name"], "region": t["region"], "self_link": url(t["rel"]),
                       "machine_type": t["properties"].get("machineType"),
                       "labels": t["properties"].get("labels", {})}
                      for t in project.templates.values()],
        "groups": [{
            "name": g["name"], "zone": g["zone"], "region": g["region"], "zones": g["zones"],
            "self_link": url(g["rel"]), "target_size": g["target_size"],
            "bounds": {"min": g["bounds"][0], "max": g["bounds"][1]}, "autoscaler": g["autoscaler"],
            "template": url(g["versions"][0]["instanceTemplate"]), "update_policy": g["update_policy"],
            "operation": g["op"],
            "instances": [{"name": i["name"], "id": i["id"], "zone": i["zone"],
                           "template": url(i["template"]), "status": instance_status(i, now),
                           "action": i["action"]} for i in g["instances"]],
        } for g in project.groups],
        "operations": [op_view(op) for op in
                       sorted(project.operations.values(), key=lambda o: o["start"])],
        "pending_operations": [op["name"] for op in project.operations.values()
                               if op["status"] != "DONE"],
    }


# ---------------------------------------------------------------------------------------------
# Compute Engine: list helpers (filter, orderBy, maxResults, pageToken)

FILTER_TERM = re.compile(r"""^\s*([A-Za-z][\w.]*)\s*(=|!=|\beq\b|\bne\b)\s*
                             (?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|([^\s()"']+))\s*$""", re.X)


def list_filter(text):
    """A predicate over resource views for a Compute Engine list `filter`."""
    if not text or not text.strip():
        return lambda view: True

    def fail():
        return invalid_field("filter", text, "Invalid list filter expression.")

    text = text.strip()
    if "(" in text:
        terms = re.findall(r"\(([^()]*)\)", text)
        rest = re.sub(r"\(([^()]*)\)", " ", text)
        if re.sub(r"\bAND\b", " ", rest).strip() or not terms:
            raise fail()
    else:
        terms = re.split(r"\s+AND\s+", text)
    checks = []
    for term in terms:
        found = FILTER_TERM.match(term)
        if not found or re.search(r"\bOR\b", term):
            raise fail()
        field, op = found.group(1), found.group(2)
        value = next(v for v in found.group(3, 4, 5) if v is not None)
        if op in ("eq", "ne"):
            try:
                pattern = re.compile(value)
            except re.error:
                raise fail()
            test = (lambda p: lambda s: p.fullmatch(s) is not None)(pattern)
        else:
            test = (lambda v: lambda s: s == v)(value)
        negate = op in ("!=", "ne")
        checks.append((field, test, negate))

    def lookup(view, field):
        value = view
        for part in field.split("."):
            if not isinstance(value, dict) or part not in value:
                return ""
            value = value[part]
        if isinstance(value, bool):
            return "true" if value else "false"
        return value if isinstance(value, str) else json.dumps(value)

    return lambda view: all(test(lookup(view, f)) != negate for f, test, negate in checks)


def encode_token(scope, offset):
    """An opaque page token: the offset, bound to the request it continues."""
    digest = hashlib.sha256(scope.encode()).hexdigest()[:12]
    return base64.urlsafe_b64encode(f"{digest}:{offset}".encode()).decode().rstrip("=")


def decode_token(token, scope):
    """The offset a page token names, or None when it is not one of ours for this scope."""
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        digest, offset = text.split(":")
    except (ValueError, UnicodeDecodeError):
        return None
    if digest != hashlib.sha256(scope.encode()).hexdigest()[:12] or not offset.isdigit():
        return None
    return int(offset)


def max_results(ctx):
    text = ctx.query.get("maxResults")
    if text is None or text == "":
        return MAX_RESULTS
    if not text.isdigit():
        raise invalid_field("maxResults", text, "Must be an integer.")
    value = int(text)
    if value > MAX_RESULTS:
        raise invalid_field("maxResults", text, f"Must be less than or equal to {MAX_RESULTS}.")
    return value or MAX_RESULTS


def compute_page(ctx, views, paginate=True):
    """Filters, orders and pages `views` (dicts with name and creationTimestamp) as GCE lists do.
    Pages hold at most the project's page_size (the server may always return fewer)."""
    keep = list_filter(ctx.query.get("filter"))
    views = [v for v in views if keep(v)]
    order = (ctx.query.get("orderBy") or "").strip()
    if order == "name":
        views.sort(key=lambda v: v.get("name", ""))
    elif order == "creationTimestamp desc":
        views.sort(key=lambda v: v.get("creationTimestamp", ""), reverse=True)
    elif order:
        raise invalid_field("orderBy", order, "Sorting is only supported by name or by "
                            "creationTimestamp desc.")
    size = max_results(ctx)
    if not paginate:
        return views, None
    scope = f"{ctx.path}?{ctx.query.get('filter', '')}&{order}"
    start = 0
    token = ctx.query.get("pageToken")
    if token:
        start = decode_token(token, scope)
        if start is None:
            raise invalid_field("pageToken", token, "Invalid page token.")
    size = min(size, ctx.project.page_size)
    page = views[start:start + size]
    following = encode_token(scope, start + size) if start + size < len(views) else None
    return page, following


def list_body(kind, rel, items, token):
    body = {"kind": kind, "id": rel, "items": items, "selfLink": url(rel)}
    if token:
        body["nextPageToken"] = token
    return body


# ---------------------------------------------------------------------------------------------
# Compute Engine: lookups shared by the routes


def find_zone(ctx):
    zone = ctx.p["zone"]
    if zone not in ctx.project.zones:
        raise not_found(f"projects/{ctx.project.id}/zones/{zone}")
    return zone


def find_region(ctx):
    region = ctx.p["region"]
    if region not in ctx.project.regions:
        raise not_found(f"projects/{ctx.project.id}/regions/{region}")
    return region


def find_group(ctx):
    project = ctx.project
    if ctx.p.get("zone") is not None:
        zone = find_zone(ctx)
        rel = f"projects/{project.id}/zones/{zone}/instanceGroupManagers/{ctx.p['name']}"
    else:
        region = find_region(ctx)
        rel = f"projects/{project.id}/regions/{region}/instanceGroupManagers/{ctx.p['name']}"
    for g in project.groups:
        if g["rel"] == rel:
            return g
    raise not_found(rel)


def group_scope(g):
    return ("zones", g["zone"]) if g["zone"] else ("regions", g["region"])


def group_op_type(g, method):
    service = "instanceGroupManagers" if g["zone"] else "regionInstanceGroupManagers"
    return f"compute.{service}.{method}"


def require_object(body, what="request"):
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ApiError(400, "parseError", f"Invalid JSON payload received. The {what} body must "
                       "be a JSON object.")
    return body


def no_operation_running(g):
    if g["op"] is not None:
        raise ApiError(400, "resourceNotReady", f"The resource '{g['rel']}' is not ready (operation "
                       f"{g['op']} is still running).")


def replay(ctx):
    """The operation an earlier request with the same requestId started, or None."""
    request_id = ctx.query.get("requestId")
    if request_id is None:
        return None
    if not UUID_TEXT.match(request_id) or uuid.UUID(request_id).int == 0:
        raise invalid_field("requestId", request_id, "The request ID must be a valid UUID with "
                            "the exception that zero UUID is not supported "
                            "(00000000-0000-0000-0000-000000000000).")
    name = ctx.project.request_ids.get(request_id.lower())
    return ctx.project.operations.get(name) if name else None


def remember(ctx, op):
    request_id = ctx.query.get("requestId")
    if request_id is not None:
        ctx.project.request_ids[request_id.lower()] = op["name"]
    launch(ctx.project, op)
    return 200, operation_view(ctx.project, op)


def resolve_template(ctx, ref, field, region):
    """The template a reference names; 400 when malformed, 404 when missing."""
    rel = relative(ref, ctx.project.id)
    found = TEMPLATE_REL.fullmatch(rel or "")
    if not found:
        raise invalid_field(field, ref, "The URL is malformed.")
    if found.group(1) != ctx.project.id:
        raise not_found(rel)
    template = ctx.project.templates.get(rel)
    if template is None:
        raise not_found(rel)
    if template["region"] and template["region"] != region:
        raise invalid_field(field, ref, f"Regional instance template must be in the same region "
                            f"as the instance group manager ({region}).")
    return template


# ---------------------------------------------------------------------------------------------
# Routes: Compute Engine


def route_zone_get(ctx):
    return 200, zone_view(ctx.project, find_zone(ctx))


def route_zone_list(ctx):
    project = ctx.project
    views = [zone_view(project, z) for z in sorted(project.zones)]
    page, token = compute_page(ctx, views)
    return 200, list_body("compute#zoneList", f"projects/{project.id}/zones", page, token)


def route_machine_type_get(ctx):
    zone = find_zone(ctx)
    mt = ctx.project.machine_types.get(ctx.p["name"])
    if mt is None or zone not in mt["zones"]:
        raise not_found(f"projects/{ctx.project.id}/zones/{zone}/machineTypes/{ctx.p['name']}")
    return 200, machine_type_view(ctx.project, mt, zone)


def route_machine_type_list(ctx):
    zone = find_zone(ctx)
    views = [machine_type_view(ctx.project, mt, zone) for mt in ctx.project.machine_types.values()
             if zone in mt["zones"]]
    page, token = compute_page(ctx, views)
    return 200, list_body("compute#machineTypeList",
                          f"projects/{ctx.project.id}/zones/{zone}/machineTypes", page, token)


def route_igm_get(ctx):
    return 200, igm_view(ctx.project, find_group(ctx))


def route_igm_list(ctx):
    project = ctx.project
    if ctx.p.get("zone") is not None:
        zone = find_zone(ctx)
        groups = [g for g in project.groups if g["zone"] == zone]
        rel = f"projects/{project.id}/zones/{zone}/instanceGroupManagers"
    else:
        region = find_region(ctx)
        groups = [g for g in project.groups if g["zone"] is None and g["region"] == region]
        rel = f"projects/{project.id}/regions/{region}/instanceGroupManagers"
    page, token = compute_page(ctx, [igm_view(project, g) for g in groups])
    return 200, list_body("compute#instanceGroupManagerList", rel, page, token)


def route_igm_aggregated(ctx):
    project = ctx.project
    for flag in ("includeAllScopes", "returnPartialSuccess"):
        if ctx.query.get(flag) not in (None, "true", "false"):
            raise invalid_field(flag, ctx.query[flag], "Must be true or false.")
    scopes = sorted([f"regions/{r}" for r in project.regions] + [f"zones/{z}" for z in project.zones])
    views = []
    for g in project.groups:
        view = igm_view(project, g)
        view["_scope"] = f"zones/{g['zone']}" if g["zone"] else f"regions/{g['region']}"
        views.append(view)
    views.sort(key=lambda v: (scopes.index(v["_scope"]), v["name"]))
    page, token = compute_page(ctx, views)
    items = {}
    for scope in scopes:
        found = [{k: v for k, v in view.items() if k != "_scope"}
                 for view in page if view["_scope"] == scope]
        if found:
            items[scope] = {"instanceGroupManagers": found}
        else:
            items[scope] = {"warning": {
                "code": "NO_RESULTS_ON_PAGE",
                "message": f"There are no results for scope '{scope}' on this page.",
                "data": [{"key": "scope", "value": scope}]}}
    rel = f"projects/{project.id}/aggregated/instanceGroupManagers"
    body = {"kind": "compute#instanceGroupManagerAggregatedList", "id": rel, "items": items,
            "selfLink": url(rel)}
    if token:
        body["nextPageToken"] = token
    return 200, body


def route_igm_list_managed_instances(ctx):
    project = ctx.project
    g = find_group(ctx)
    now = time.time()
    views = [managed_instance_view(project, g, inst, now) for inst in g["instances"]]
    page, token = compute_page(ctx, views, paginate=g["results"] == "PAGINATED")
    body = {"managedInstances": page}
    if token:
        body["nextPageToken"] = token
    return 200, body


def route_igm_resize(ctx):
    project = ctx.project
    g = find_group(ctx)
    earlier = replay(ctx)
    if earlier is not None:
        return 200, operation_view(project, earlier)
    text = ctx.query.get("size")
    if text is None:
        raise ApiError(400, "required", "Required field 'size' not specified")
    if not re.fullmatch(r"-?\d+", text) or int(text) < 0:
        raise invalid_field("size", text, "Must be greater than or equal to 0.")
    size = int(text)
    if g["autoscaler"]:
        raise invalid("Resizing is not allowed for instance group managers with an autoscaler "
                      "attached.")
    low, high = g["bounds"]
    if not low <= size <= high:
        raise invalid_field("size", text, f"Must be between {low} and {high}.")
    limit = project.quota.get(g["region"], {}).get("CPUS")
    if limit is not None:
        usage = project.cpu_usage(g["region"])
        total = project.cpu_usage(g["region"], skip=g) + size * group_cpus(project, g)
        if total > limit and total > usage:
            raise ApiError(403, "quotaExceeded", f"Quota 'CPUS' exceeded. Limit: {float(limit)} "
                           f"in region {g['region']}.")
    no_operation_running(g)
    op = start_operation(project, "resize", group_scope(g), group_op_type(g, "resize"), g["rel"],
                         g["id"], group=g, size=size)
    if op["error"] is not None:
        op["error"].setdefault("region", g["region"])
    template = g["versions"][0]["instanceTemplate"]
    if size > len(g["instances"]):
        for _ in range(size - len(g["instances"])):
            inst = new_instance(project, g, template, "PROVISIONING", "CREATING")
            g["instances"].append(inst)
            op["created"].append(inst)
    elif size < len(g["instances"]):
        # GCE removes the newest instances first when a resize shrinks a group.
        newest = sorted(g["instances"], key=lambda i: i["seq"], reverse=True)
        victims = newest[:len(g["instances"]) - size]
        for inst in victims:
            inst["action"], inst["status"] = "DELETING", "STOPPING"
        op["victims"] = victims
    return remember(ctx, op)


def route_igm_delete_instances(ctx):
    project = ctx.project
    g = find_group(ctx)
    earlier = replay(ctx)
    if earlier is not None:
        return 200, operation_view(project, earlier)
    body = require_object(ctx.body)
    unknown = sorted(set(body) - {"instances", "skipInstancesOnValidationError"})
    if unknown:
        raise invalid(f"Invalid JSON payload received. Unknown name \"{unknown[0]}\": Cannot "
                      "find field.")
    refs = body.get("instances")
    skip = body.get("skipInstancesOnValidationError", False)
    if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
        raise ApiError(400, "required", "Required field 'instances' not specified")
    if not isinstance(skip, bool):
        raise invalid_field("request.skipInstancesOnValidationError", json.dumps(skip),
                            "Must be a boolean.")
    victims = []
    for index, ref in enumerate(refs):
        rel = relative(ref, project.id)
        found = re.fullmatch(r"projects/([^/]+)/zones/([^/]+)/instances/([^/]+)", rel or "")
        if not found:
            if skip:
                continue
            raise invalid_field(f"request.instances[{index}]", ref, "The URL is malformed.")
        inst = next((i for i in g["instances"] if found.group(1) == project.id
                     and i["zone"] == found.group(2) and i["name"] == found.group(3)), None)
        if inst is None:
            if skip:
                continue
            raise invalid(f"The resource '{url(rel)}' is not a member of the instance group manager")
        if inst not in victims:
            victims.append(inst)
    no_operation_running(g)
    op = start_operation(project, "deleteInstances", group_scope(g),
                         group_op_type(g, "deleteInstances"), g["rel"], g["id"], group=g)
    for inst in victims:
        inst["action"], inst["status"] = "DELETING", "STOPPING"
    op["victims"] = victims
    return remember(ctx, op)


PATCHABLE = {"versions", "instanceTemplate", "updatePolicy", "fingerprint"}
PATCH_IGNORED = {"kind", "id", "selfLink", "creationTimestamp", "zone", "region", "instanceGroup",
                 "baseInstanceName", "currentActions", "status", "name", "description",
                 "distributionPolicy", "satisfiesPzi", "satisfiesPzs", "targetStoppedSize",
                 "targetSuspendedSize", "listManagedInstancesResults"}


def route_igm_patch(ctx):
    project = ctx.project
    g = find_group(ctx)
    earlier = replay(ctx)
    if earlier is not None:
        return 200, operation_view(project, earlier)
    body = require_object(ctx.body)
    for key, value in body.items():
        if key in PATCH_IGNORED or key in PATCHABLE:
            continue
        if key == "targetSize" and value == g["target_size"]:
            continue
        raise invalid_field(f"resource.{key}", json.dumps(value)[:80], "This fake patches only "
                            "versions, instanceTemplate and updatePolicy (use resize for the size).")
    if "name" in body and body["name"] != g["name"]:
        raise invalid_field("resource.name", body["name"], "The name of a managed instance group "
                            "cannot be changed.")
    if "fingerprint" in body and body["fingerprint"] != g["fingerprint"]:
        raise ApiError(412, "conditionNotMet", "Supplied fingerprint does not match current "
                       "fingerprint.")
    versions = g["versions"]
    if "versions" in body:
        raw = body["versions"]
        if not isinstance(raw, list) or not raw:
            raise invalid_field("resource.versions", json.dumps(raw),
                                "At least one version is required.")
        if len(raw) > 1:
            raise invalid_field("resource.versions", json.dumps(raw)[:200], "This fake supports "
                                "one version (no canary).")
        version = raw[0]
        if not isinstance(version, dict) or not isinstance(version.get("instanceTemplate"), str):
            raise ApiError(400, "required", "Required field 'resource.versions[0].instanceTemplate' "
                           "not specified")
        template = resolve_template(ctx, version["instanceTemplate"],
                                    "resource.versions[0].instanceTemplate", g["region"])
        entry = {"instanceTemplate": template["rel"]}
        if version.get("name"):
            entry["name"] = str(version["name"])
        versions = [entry]
    elif "instanceTemplate" in body:
        template = resolve_template(ctx, body["instanceTemplate"], "resource.instanceTemplate",
                                    g["region"])
        versions = [{"instanceTemplate": template["rel"]}]
    policy = g["update_policy"]
    if "updatePolicy" in body:
        policy = merged_update_policy(g, body["updatePolicy"], "resource.updatePolicy")
    no_operation_running(g)
    template = versions[0]["instanceTemplate"]
    targets, action = [], policy.get("minimalAction", "REPLACE")
    if policy["type"] == "PROACTIVE" and action != "NONE":
        targets = [i for i in g["instances"] if i["template"] != template]
    op = start_operation(project, "patch", group_scope(g), group_op_type(g, "patch"), g["rel"],
                         g["id"], group=g, versions=versions, update_policy=policy, action=action)
    shown = {"REPLACE": "RECREATING", "RESTART": "RESTARTING", "REFRESH": "REFRESHING"}.get(action)
    for inst in targets:
        inst["action"] = shown
    op["targets"] = targets
    return remember(ctx, op)


def route_template_get(ctx):
    project = ctx.project
    if ctx.p.get("region") is not None:
        region = find_region(ctx)
        rel = template_rel(project.id, ctx.p["name"], region)
    else:
        rel = template_rel(project.id, ctx.p["name"], None)
    template = project.templates.get(rel)
    if template is None:
        raise not_found(rel)
    return 200, template_view(project, template)


def route_template_list(ctx):
    project = ctx.project
    views = [template_view(project, t) for t in project.templates.values() if not t["region"]]
    page, token = compute_page(ctx, views)
    return 200, list_body("compute#instanceTemplateList",
                          f"projects/{project.id}/global/instanceTemplates", page, token)


TEMPLATE_OUTPUT_ONLY = {"kind", "id", "selfLink", "creationTimestamp", "region"}


def validate_properties(project, props):
    if not isinstance(props, dict):
        raise ApiError(400, "required", "Required field 'resource.properties' not specified")
    machine_type = props.get("machineType")
    if not machine_type:
        raise ApiError(400, "required", "Required field 'resource.properties.machineType' not specified")
    if machine_type not in project.machine_types:
        zone = next(iter(project.zones))
        raise invalid_field("resource.properties.machineType", machine_type, f"Machine type with "
                            f"name '{machine_type}' does not exist in zone '{zone}'.")
    labels = props.get("labels", {})
    if not isinstance(labels, dict) or len(labels) > 64:
        raise invalid_field("resource.properties.labels", json.dumps(labels)[:80],
                            "Labels are a map of at most 64 entries.")
    for key, value in labels.items():
        if not LABEL_KEY.match(key) or not isinstance(value, str) or not LABEL_VALUE.match(value):
            raise invalid_field("resource.properties.labels", "", f"Label '{key}': '{value}' "
                                "violates format constraints (keys: [a-z][a-z0-9_-]{0,62}, "
                                "values: [a-z0-9_-]{0,63}).")
    scheduling = props.get("scheduling", {})
    if not isinstance(scheduling, dict):
        raise invalid_field("resource.properties.scheduling", json.dumps(scheduling),
                            "Must be an object.")
    model = scheduling.get("provisioningModel")
    if model is not None and model not in PROVISIONING_MODELS:
        raise invalid_field("resource.properties.scheduling.provisioningModel", model,
                            f"Allowed values are {', '.join(PROVISIONING_MODELS)}.")
    if model == "SPOT" or scheduling.get("preemptible") is True:
        if scheduling.get("automaticRestart") is True:
            raise invalid_field("resource.properties.scheduling.automaticRestart", "true",
                                "Spot and preemptible instances cannot be automatically restarted.")
        if scheduling.get("onHostMaintenance", "TERMINATE") != "TERMINATE":
            raise invalid_field("resource.properties.scheduling.onHostMaintenance",
                                scheduling["onHostMaintenance"], "Spot and preemptible instances "
                                "must terminate on host maintenance.")


def route_template_insert(ctx):
    project = ctx.project
    earlier = replay(ctx)
    if earlier is not None:
        return 200, operation_view(project, earlier)
    body = require_object(ctx.body)
    unknown = sorted(set(body) - TEMPLATE_OUTPUT_ONLY - {"name", "description", "properties",
                                                          "sourceInstance", "sourceInstanceParams"})
    if unknown:
        raise invalid(f"Invalid JSON payload received. Unknown name \"{unknown[0]}\" at 'resource': "
                      "Cannot find field.")
    if body.get("sourceInstance"):
        raise invalid_field("resource.sourceInstance", body["sourceInstance"], "This fake creates "
                            "templates from properties only.")
    name = body.get("name")
    if not name:
        raise ApiError(400, "required", "Required field 'resource.name' not specified")
    if not isinstance(name, str) or not RESOURCE_NAME.match(name):
        raise invalid_field("resource.name", name, "Must be a match of regex "
                            "'(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'")
    region = ctx.p.get("region")
    rel = template_rel(project.id, name, region)
    pending = any(op["kind"] == "insertTemplate" and op["status"] != "DONE" and op["target_rel"] == rel
                  for op in project.operations.values())
    if rel in project.templates or pending:
        raise ApiError(409, "alreadyExists", f"The resource '{rel}' already exists")
    validate_properties(project, body.get("properties"))
    now = time.time()
    template = {"name": name, "region": region, "rel": rel, "id": stable_id(project.id, rel, str(now)),
                "created": now, "description": body.get("description"),
                "properties": json.loads(json.dumps(body["properties"]))}
    scope = ("regions", region) if region else ("global", None)
    kind = "compute.regionInstanceTemplates.insert" if region else "compute.instanceTemplates.insert"
    op = start_operation(project, "insertTemplate", scope, kind, rel, template["id"], template=template)
    return remember(ctx, op)


def route_template_delete(ctx):
    project = ctx.project
    earlier = replay(ctx)
    if earlier is not None:
        return 200, operation_view(project, earlier)
    rel = template_rel(project.id, ctx.p["name"], None)
    template = project.templates.get(rel)
    if template is None:
        raise not_found(rel)
    for g in project.groups:
        pending = project.operations.get(g["op"]) if g["op"] else None
        used = {v["instanceTemplate"] for v in g["versions"]} | {i["template"] for i in g["instances"]}
        if pending is not None and pending["kind"] == "patch":
            used |= {v["instanceTemplate"] for v in pending["versions"]}
        if rel in used:
            raise ApiError(400, "resourceInUseByAnotherResource", f"The instance_template resource "
                           f"'{rel}' is already being used by '{g['rel']}'")
    op = start_operation(project, "deleteTemplate", ("global", None), "compute.instanceTemplates.delete",
                         rel, template["id"])
    return remember(ctx, op)


def find_operation(ctx):
    project = ctx.project
    if ctx.p.get("zone") is not None:
        scope = ("zones", find_zone(ctx))
    elif ctx.p.get("region") is not None:
        scope = ("regions", find_region(ctx))
    else:
        scope = ("global", None)
    op = project.operations.get(ctx.p["op"])
    if op is None or op["scope"] != scope:
        raise not_found(f"{op_scope_rel(project, scope)}/operations/{ctx.p['op']}")
    return op


def route_operation_get(ctx):
    return 200, operation_view(ctx.project, find_operation(ctx))


def route_operation_wait(ctx):
    # The handler already waited (outside the lock) until the deadline or the time limit.
    return 200, operation_view(ctx.project, find_operation(ctx))


# ---------------------------------------------------------------------------------------------
# Routes: Cloud Monitoring

ALIGNERS = {"ALIGN_NONE": 0, "ALIGN_MIN": 10, "ALIGN_MAX": 11, "ALIGN_MEAN": 12, "ALIGN_SUM": 14}
REDUCERS = {"REDUCE_NONE": 0, "REDUCE_MEAN": 1, "REDUCE_MIN": 2, "REDUCE_MAX": 3, "REDUCE_SUM": 4}
COMBINE = {"MEAN": lambda vs: sum(vs) / len(vs), "MAX": max, "MIN": min, "SUM": sum}


def google_invalid(message):
    return ApiError(400, "badRequest", message)


def enum_param(ctx, name, table, default):
    """An enum query parameter, given by name or (enum-encoding=int) by number."""
    text = ctx.query.get(name)
    if text is None or text == "":
        return default
    if text.lstrip("-").isdigit():
        for key, number in table.items():
            if number == int(text):
                return key
    elif text in table:
        return text
    raise google_invalid(f"Invalid value at '{name}' ({text}): this fake supports "
                         f"{', '.join(table)}.")


METRIC_TYPE = re.compile(r'^\s*metric\.type\s*=\s*"([^"]*)"\s*$')
RESOURCE_TYPE = re.compile(r'^\s*resource\.type\s*=\s*"([^"]*)"\s*$')
INSTANCE_ONE = re.compile(r'^\s*resource\.labels?\.instance_id\s*=\s*"([^"]*)"\s*$')
INSTANCE_MANY = re.compile(r'^\s*resource\.labels?\.instance_id\s*=\s*'
                           r'one_of\(\s*("[^"]*"(?:\s*,\s*"[^"]*")*)\s*\)\s*$')
NO_COMBINATION = ("The supplied filter does not specify a valid combination of metric and monitored "
                  "resource descriptors. The query will not return any time series.")


def monitoring_filter(text):
    """(metric type, resource type or None, instance ids or None) of a ListTimeSeries filter."""
    if not text or not text.strip():
        raise google_invalid(NO_COMBINATION)
    metric, resource, ids = None, None, None
    for clause in re.split(r"\s+AND\s+", text.strip()):
        for pattern in (METRIC_TYPE, RESOURCE_TYPE, INSTANCE_ONE, INSTANCE_MANY):
            found = pattern.match(clause)
            if found:
                break
        else:
            raise google_invalid(f"Could not parse filter \"{text}\" (this fake understands "
                                 "metric.type, resource.type and resource.labels.instance_id).")
        if pattern is METRIC_TYPE:
            if metric is not None:
                raise google_invalid(NO_COMBINATION)
            metric = found.group(1)
        elif pattern is RESOURCE_TYPE:
            resource = found.group(1)
        else:
            if pattern is INSTANCE_ONE:
                values = [found.group(1)]
            else:
                values = re.findall(r'"([^"]*)"', found.group(1))
            ids = set(values) if ids is None else ids & set(values)
    if metric is None:
        raise google_invalid(NO_COMBINATION)
    if "." not in metric or "/" not in metric:
        raise google_invalid(f"Could not parse filter \"{text}\": '{metric}' is not a valid "
                             "metric type.")
    compute_metric = metric.startswith("compute.googleapis.com/")
    if resource is not None and resource != "gce_instance" and compute_metric:
        raise google_invalid(NO_COMBINATION)
    return metric, resource, ids


def parse_duration(text):
    found = re.fullmatch(r"(\d+)(?:\.(\d{1,9}))?s", text or "")
    if not found:
        return None
    return int(found.group(1)) + (float("0." + found.group(2)) if found.group(2) else 0.0)


def instance_zone(project, instance_id):
    for g in project.groups:
        for inst in g["instances"]:
            if inst["id"] == instance_id:
                return inst["zone"], inst["name"]
    return next(iter(project.zones)), None


def monitoring_request(ctx):
    """The validated interval and aggregation of a ListTimeSeries request."""
    end = parse_time(ctx.query.get("interval.endTime"))
    if end is None:
        raise google_invalid("Field interval.endTime had an invalid value of \"%s\": an RFC 3339 "
                             "end time is required." % ctx.query.get("interval.endTime", ""))
    start = end
    if ctx.query.get("interval.startTime"):
        start = parse_time(ctx.query["interval.startTime"])
        if start is None:
            raise google_invalid("Field interval.startTime had an invalid value of \"%s\"."
                                 % ctx.query["interval.startTime"])
    if start > end:
        raise google_invalid("The start time must be before the end time in the time interval.")
    aligner = enum_param(ctx, "aggregation.perSeriesAligner", ALIGNERS, "ALIGN_NONE")
    reducer = enum_param(ctx, "aggregation.crossSeriesReducer", REDUCERS, "REDUCE_NONE")
    period = None
    if ctx.query.get("aggregation.alignmentPeriod"):
        period = parse_duration(ctx.query["aggregation.alignmentPeriod"])
        if period is None or period < 60 or period > 104 * 7 * 86400:
            raise google_invalid("Field aggregation.alignmentPeriod had an invalid value of \"%s\": "
                                 "the alignment period must be between 60s and 104 weeks."
                                 % ctx.query["aggregation.alignmentPeriod"])
    if aligner != "ALIGN_NONE" and period is None:
        raise google_invalid("The alignment period must be specified when a per-series aligner "
                             "other than ALIGN_NONE is used.")
    if reducer != "REDUCE_NONE" and aligner == "ALIGN_NONE":
        raise google_invalid("A cross-series reducer requires a per-series aligner other than "
                             "ALIGN_NONE and an alignment period.")
    group_by = ctx.mquery.get("aggregation.groupByFields", [])
    for field in group_by:
        if not re.fullmatch(r"(resource|metric)\.labels?\.\w+", field):
            raise google_invalid(f"Invalid groupByFields entry '{field}'.")
    return start, end, aligner, period, reducer, group_by


def align(points, end, period, aligner):
    """Points combined per alignment window; windows end at `end`, `end - period`, ..."""
    windows = {}
    for t, v in points:
        k = int((end - t).total_seconds() // period)
        windows.setdefault(end - datetime.timedelta(seconds=k * period), []).append(v)
    return sorted((t, COMBINE[aligner[len("ALIGN_"):]](vs)) for t, vs in windows.items())


def label_of(series, field):
    """`resource.labels.zone` / `metric.labels.x` of a series (as this module keeps it)."""
    kind, name = field.split(".")[0], field.split(".")[-1]
    return series[kind].get(name, "")


def reduce_series(project, series, group_by, reducer):
    """Series combined across, per group of `group_by` values, by timestamp."""
    groups = {}
    for s in series:
        groups.setdefault(tuple((f, label_of(s, f)) for f in group_by), []).append(s)
    reduced = []
    for key, members in groups.items():
        by_time = {}
        for s in members:
            for t, v in s["points"]:
                by_time.setdefault(t, []).append(v)
        labels = {"resource": {"project_id": project.id}, "metric": {}}
        for field, value in key:
            labels[field.split(".")[0]][field.split(".")[-1]] = value
        combine = COMBINE[reducer[len("REDUCE_"):]]
        reduced.append({"metric": labels["metric"], "resource": labels["resource"],
                        "points": sorted((t, combine(vs)) for t, vs in by_time.items())})
    return reduced


def route_time_series(ctx):
    project = ctx.project
    metric, resource, ids = monitoring_filter(ctx.query.get("filter"))
    start, end, aligner, period, reducer, group_by = monitoring_request(ctx)
    view = enum_param(ctx, "view", {"FULL": 0, "HEADERS": 1}, "FULL")
    page_size = ctx.query.get("pageSize") or "0"
    if not page_size.isdigit():
        raise google_invalid(f"Invalid value at 'page_size' ({page_size}).")

    series = []
    for raw in project.time_series.get(metric, []):
        if ids is not None and raw["instance_id"] not in ids:
            continue
        zone, name = instance_zone(project, raw["instance_id"])
        points = [(t, v) for t, v in raw["points"] if start <= t <= end]
        if aligner != "ALIGN_NONE":
            points = align(points, end, period, aligner)
        labels = dict(raw["metric_labels"])
        if name and metric.startswith("compute.googleapis.com/instance/"):
            labels.setdefault("instance_name", name)
        series.append({"metric": labels, "points": points,
                       "resource": {"project_id": project.id, "instance_id": raw["instance_id"],
                                    "zone": raw["zone"] or zone}})
    if reducer != "REDUCE_NONE":
        series = reduce_series(project, series, group_by, reducer)

    out = []
    for s in series:
        if not s["points"]:
            continue  # as Cloud Monitoring: no series without points in the interval
        entry = {"metric": {"type": metric},
                 "resource": {"type": resource or "gce_instance", "labels": s["resource"]},
                 "metricKind": 1 if ctx.enum_int else "GAUGE",
                 "valueType": 3 if ctx.enum_int else "DOUBLE"}
        if s["metric"]:
            entry["metric"]["labels"] = s["metric"]
        if view == "FULL":  # newest first, as Cloud Monitoring returns them
            entry["points"] = [{"interval": {"startTime": proto_time(t), "endTime": proto_time(t)},
                                "value": {"doubleValue": v}} for t, v in reversed(s["points"])]
        out.append(entry)
    scope = f"{ctx.path}?{ctx.query.get('filter')}"
    offset = 0
    if ctx.query.get("pageToken"):
        offset = decode_token(ctx.query["pageToken"], scope)
        if offset is None:
            raise google_invalid("The pagination token is invalid.")
    size = int(page_size) or len(out) or 1
    body = {}
    if out[offset:offset + size]:
        body["timeSeries"] = out[offset:offset + size]
    if offset + size < len(out):
        body["nextPageToken"] = encode_token(scope, offset + size)
    return 200, body


# ---------------------------------------------------------------------------------------------
# Routes: Cloud Billing Catalog

CURRENCY_RATES = {"USD": Decimal("1"), "EUR": Decimal("0.92")}


BUILTIN_SKUS = [  # skuId, description, resourceGroup, usageType, usageUnit, USD price[, region, family]
    ("0A6D-A5F1-0C92", "N2 Instance Core running in Americas", "N2Standard", "OnDemand", "h", "0.031611"),
    ("1A2B-7F3C-11D0", "N2 Instance Ram running in Americas", "N2Standard", "OnDemand", "GiBy.h", "0.004237"),
    ("2B7C-E3A1-7D21", "Spot Preemptible N2 Instance Core running in Americas", "N2Standard",
     "Preemptible", "h", "0.007650"),
    ("3C8D-F4B2-8E32", "Spot Preemptible N2 Instance Ram running in Americas", "N2Standard",
     "Preemptible", "GiBy.h", "0.001025"),
    ("4D9E-05C3-9F43", "Commitment v1: N2 Cpu in Americas for 1 Year", "CPU", "Commit1Yr", "h", "0.019915"),
    ("5EAF-16D4-A054", "E2 Instance Core running in Americas", "CPU", "OnDemand", "h", "0.021811"),
    ("6FB0-27E5-B165", "E2 Instance Ram running in Americas", "RAM", "OnDemand", "GiBy.h", "0.002923"),
    ("70C1-38F6-C276", "Spot Preemptible E2 Instance Core running in Americas", "CPU", "Preemptible",
     "h", "0.006543"),
    ("81D2-4907-D387", "Spot Preemptible E2 Instance Ram running in Americas", "RAM", "Preemptible",
     "GiBy.h", "0.000877"),
    ("92E3-5A18-E498", "N2 Instance Core running in EMEA", "N2Standard", "OnDemand", "h", "0.034802",
     "europe-west1"),
    ("A3F4-6B29-F5A9", "Storage PD Capacity", "PDStandard", "OnDemand", "GiBy.mo", "0.04",
     "us-central1", "Storage"),
]


def builtin_skus():
    """A handful of Compute Engine SKUs: on-demand and Spot N2/E2 cores and RAM in us-central1,
    plus a commitment, an EMEA SKU and a storage SKU that clients must ignore."""
    out = []
    for sku_id, description, group, usage, unit, price, *rest in BUILTIN_SKUS:
        region = rest[0] if rest else "us-central1"
        family = rest[1] if len(rest) > 1 else "Compute"
        out.append({"name": f"services/{COMPUTE_SERVICE}/skus/{sku_id}", "skuId": sku_id,
                    "description": description,
                    "category": {"serviceDisplayName": "Compute Engine", "resourceFamily": family,
                                 "resourceGroup": group, "usageType": usage},
                    "serviceRegions": [region], "unit": unit, "price": price,
                    "serviceProviderName": "Google"})
    return out


UNITS = {"h": ("hour", "s", "second", 3600),
         "GiBy.h": ("gibibyte hour", "By.s", "byte second", 3865470566400),
         "GiBy.mo": ("gibibyte month", "By.s", "byte second", 2853152143441920)}


def money(amount, currency):
    amount = amount.quantize(Decimal("0.000000001"), rounding=ROUND_HALF_EVEN)
    units = int(amount)
    return {"currencyCode": currency, "units": str(units), "nanos": int((amount - units) * 1000000000)}


def sku_view(raw, currency, enum_int):
    """A built-in SKU (unit + USD price) in the v1 Sku shape, or a seeded Sku JSON converted."""
    rate = CURRENCY_RATES[currency]
    if "price" not in raw:  # a Sku seeded through PUT /_fake/catalog: convert its USD prices
        sku = json.loads(json.dumps(raw))
        for info in sku.get("pricingInfo", []):
            if currency != "USD":
                info["currencyConversionRate"] = float(rate)
            for tier in info.get("pricingExpression", {}).get("tieredRates", []):
                price = tier.get("unitPrice")
                if isinstance(price, dict):
                    usd = (Decimal(str(price.get("units", "0")))
                           + Decimal(price.get("nanos", 0)) / 1000000000)
                    tier["unitPrice"] = money(usd * rate, currency)
        return sku
    description, base, base_description, factor = UNITS[raw["unit"]]
    regions = raw["serviceRegions"]
    return {
        "name": raw["name"], "skuId": raw["skuId"], "description": raw["description"],
        "category": dict(raw["category"]), "serviceRegions": list(regions),
        "pricingInfo": [{
            "effectiveTime": "2026-11-01T08:00:00Z", "summary": "",
            "pricingExpression": {
                "usageUnit": raw["unit"], "displayQuantity": 1, "usageUnitDescription": description,
                "baseUnit": base, "baseUnitDescription": base_description,
                "baseUnitConversionFactor": factor,
                "tieredRates": [{"startUsageAmount": 0,
                                 "unitPrice": money(Decimal(raw["price"]) * rate, currency)}]},
            "aggregationInfo": {"aggregationLevel": 1 if enum_int else "ACCOUNT",
                                "aggregationInterval": 1 if enum_int else "DAILY",
                                "aggregationCount": 1},
            "currencyConversionRate": float(rate)}],
        "serviceProviderName": raw["serviceProviderName"],
        "geoTaxonomy": {"type": 2 if enum_int else "REGIONAL", "regions": list(regions)},
    }


def route_services(ctx):
    return 200, {"services": [{"name": f"services/{COMPUTE_SERVICE}", "serviceId": COMPUTE_SERVICE,
                               "displayName": "Compute Engine",
                               "businessEntityName": "businessEntities/GCP"}]}


def route_skus(ctx):
    service = ctx.p["service"]
    if service != COMPUTE_SERVICE:
        raise ApiError(404, "notFound", f"Service services/{service} was not found.")
    currency = ctx.query.get("currencyCode") or "USD"
    if currency not in CURRENCY_RATES:
        raise google_invalid(f"Currency code {currency} is not supported (this fake: "
                             f"{', '.join(CURRENCY_RATES)}).")
    for field in ("startTime", "endTime"):
        if ctx.query.get(field) and parse_time(ctx.query[field]) is None:
            raise google_invalid(f"Invalid value at '{field}' ({ctx.query[field]}).")
    page_size = ctx.query.get("pageSize") or "0"
    if not page_size.isdigit() or int(page_size) > 5000:
        raise google_invalid(f"Invalid value at 'page_size' ({page_size}): 0..5000.")
    skus = CATALOG["skus"] if CATALOG["skus"] is not None else builtin_skus()
    skus = [s for s in skus if s.get("name", "").startswith(f"services/{service}/skus/")]
    scope = f"{service}/{currency}"
    offset = 0
    if ctx.query.get("pageToken"):
        offset = decode_token(ctx.query["pageToken"], scope)
        if offset is None:
            raise google_invalid("Invalid page token.")
    size = min(int(page_size) or CATALOG["page_size"], CATALOG["page_size"])
    body = {"skus": [sku_view(s, currency, ctx.enum_int) for s in skus[offset:offset + size]]}
    if offset + size < len(skus):
        body["nextPageToken"] = encode_token(scope, offset + size)
    return 200, body


# ---------------------------------------------------------------------------------------------
# Routes: BigQuery (jobs.query over the billing export)

QUERY_FIELDS = {"kind", "query", "useLegacySql", "parameterMode", "queryParameters", "timeoutMs",
                "maxResults", "location", "dryRun", "useQueryCache", "defaultDataset", "labels",
                "requestId", "jobCreationMode", "formatOptions", "createSession",
                "connectionProperties", "maximumBytesBilled", "preserveNulls", "jobTimeoutMs"}
SCALAR_TYPES = {"STRING", "INT64", "FLOAT64", "BOOL", "TIMESTAMP", "DATE", "DATETIME", "NUMERIC",
                "BIGNUMERIC", "BYTES", "TIME", "INTEGER", "FLOAT", "BOOLEAN"}


def bq_invalid(message, reason="invalidQuery"):
    return ApiError(400, reason, message)


def bq_timestamp(text):
    """A BigQuery TIMESTAMP or DATE parameter value as an aware datetime, or None."""
    if not isinstance(text, str):
        return None
    value = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        value += " 00:00:00"
    value = re.sub(r"\s*UTC$", "+00:00", value)
    value = re.sub(r"([+-]\d{2})$", r"\1:00", value)
    return parse_time(value.replace(" ", "T", 1))


def sql_references(sql):
    """The @names the SQL uses (outside string literals and quoted identifiers)."""
    stripped = re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`", "''", sql)
    return set(re.findall(r"@(\w+)", stripped))


def route_bigquery_query(ctx):
    project = ctx.project
    body = ctx.body
    if not isinstance(body, dict):
        raise bq_invalid("Invalid JSON payload received: the request body must be a JSON object.",
                         reason="parseError")
    unknown = sorted(set(body) - QUERY_FIELDS)
    if unknown:
        raise bq_invalid(f"Invalid JSON payload received. Unknown name \"{unknown[0]}\": Cannot "
                         "find field.", reason="invalid")
    sql = body.get("query")
    if not isinstance(sql, str) or not sql.strip():
        raise bq_invalid("Required parameter is missing: query", reason="required")
    if body.get("useLegacySql") is not False:
        first = re.search(r"`([^`]*)`", sql)
        raise bq_invalid(f"Invalid table name: `{first.group(1) if first else ''}` [Try using "
                         "standard SQL (https://cloud.google.com/bigquery/docs/reference/"
                         "standard-sql/enabling-standard-sql)]. (useLegacySql must be false: "
                         "jobs.query defaults to legacy SQL.)")
    params = {}
    raw_params = body.get("queryParameters") or []
    if raw_params and body.get("parameterMode") != "NAMED":
        raise bq_invalid("Query parameters need parameterMode NAMED (the query uses @name "
                         "parameters).", reason="invalid")
    for raw in raw_params:
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise bq_invalid("Every query parameter needs a name.", reason="invalid")
        ptype = (raw.get("parameterType") or {}).get("type")
        if ptype not in SCALAR_TYPES:
            raise bq_invalid(f"Invalid query parameter type for '{raw['name']}': {ptype}.",
                             reason="invalid")
        value = (raw.get("parameterValue") or {}).get("value")
        params[raw["name"].lower()] = (ptype, value)
    for name in sorted(sql_references(sql)):
        if name.lower() not in params:
            raise bq_invalid(f"Query parameter '{name}' not found")
    bounds = {}
    for name in ("start", "end"):
        if name not in params:
            raise bq_invalid(f"Query parameter '{name}' not found (the billing query needs "
                             "@start and @end).")
        ptype, value = params[name]
        when = bq_timestamp(value) if ptype in ("TIMESTAMP", "DATE") else None
        if when is None:
            raise bq_invalid(f"Query parameter '{name}' has an invalid {ptype} value: {value!r}.")
        bounds[name] = when
    export = project.billing
    if export is None or f"`{export['table']}`" not in sql:
        found = re.search(r"`([^`]*)`", sql)
        table = found.group(1) if found else (export["table"] if export else "unknown")
        table = table.replace(".", ":", 1) if table.count(".") >= 2 else table
        raise ApiError(404, "notFound", f"Not found: Table {table} was not found in location US")
    compute_only = re.search(r"service\.description\s*=\s*'Compute Engine'", sql) is not None
    by_service = re.search(r"service\.description\s+AS\s+key\b", sql, re.I) is not None
    group_key = params.get("group_key", (None, None))[1]
    keyed = by_service or group_key is not None
    # Label filters: `label_key` / `label_value`, or numbered pairs `label_key_0` / `label_value_0`...
    wanted = []
    for name, (_, value) in params.items():
        found = re.fullmatch(r"label_key(_\d+)?", name)
        if found:
            wanted.append((value, params.get("label_value" + (found.group(1) or ""), (None, None))[1]))
    sums = {}
    for row in export["rows"]:
        day_start = datetime.datetime.combine(row["day"], datetime.time(), UTC)
        if not bounds["start"] <= day_start < bounds["end"]:
            continue
        if compute_only and row["service"] != "Compute Engine":
            continue
        if any(k not in row["labels"] or (v is not None and row["labels"][k] != v) for k, v in wanted):
            continue
        key = (row["day"].isoformat(), row["currency"])
        if by_service:
            key += (row["service"],)
        elif group_key is not None:
            key += (row["labels"].get(group_key),)
        sums[key] = sums.get(key, 0.0) + row["cost"] + row["credits"]
    fields = [{"name": "day", "type": "DATE", "mode": "NULLABLE"},
              {"name": "cost", "type": "FLOAT", "mode": "NULLABLE"},
              {"name": "currency", "type": "STRING", "mode": "NULLABLE"}]
    if keyed:
        fields.append({"name": "key", "type": "STRING", "mode": "NULLABLE"})
    rows = []
    for key in sorted(sums, key=lambda k: tuple("" if x is None else x for x in k)):
        cells = [{"v": key[0]}, {"v": repr(sums[key])}, {"v": key[1]}]
        if keyed:
            cells.append({"v": key[2]})
        rows.append({"f": cells})
    job = "job_" + uuid.UUID(int=project.rng.getrandbits(128)).hex[:26]
    answer = {"kind": "bigquery#queryResponse", "schema": {"fields": fields},
              "jobReference": {"projectId": project.id, "jobId": job, "location": "US"},
              "totalRows": str(len(rows)), "totalBytesProcessed": "0", "jobComplete": True,
              "cacheHit": False, "queryId": job}
    if rows:
        answer["rows"] = rows
    return 200, answer


# ---------------------------------------------------------------------------------------------
# Router

P = r"/compute/v1/projects/(?P<project>[^/]+)"
ZONE = P + r"/zones/(?P<zone>[^/]+)"
REGION = P + r"/regions/(?P<region>[^/]+)"
ZIGM = ZONE + r"/instanceGroupManagers/(?P<name>[^/]+)"
RIGM = REGION + r"/instanceGroupManagers/(?P<name>[^/]+)"

# (method, path regex, handler); the API (compute, monitoring, billing, bigquery) comes from the path.
ROUTES = [(m, re.compile(p), h) for m, p, h in [
    ("GET", ZONE, route_zone_get),
    ("GET", P + r"/zones", route_zone_list),
    ("GET", ZONE + r"/machineTypes/(?P<name>[^/]+)", route_machine_type_get),
    ("GET", ZONE + r"/machineTypes", route_machine_type_list),
    ("GET", ZIGM, route_igm_get),
    ("GET", RIGM, route_igm_get),
    ("GET", ZONE + r"/instanceGroupManagers", route_igm_list),
    ("GET", REGION + r"/instanceGroupManagers", route_igm_list),
    ("GET", P + r"/aggregated/instanceGroupManagers", route_igm_aggregated),
    ("POST", ZIGM + r"/resize", route_igm_resize),
    ("POST", RIGM + r"/resize", route_igm_resize),
    ("POST", ZIGM + r"/listManagedInstances", route_igm_list_managed_instances),
    ("POST", RIGM + r"/listManagedInstances", route_igm_list_managed_instances),
    ("POST", ZIGM + r"/deleteInstances", route_igm_delete_instances),
    ("POST", RIGM + r"/deleteInstances", route_igm_delete_instances),
    ("PATCH", ZIGM, route_igm_patch),
    ("PATCH", RIGM, route_igm_patch),
    ("GET", P + r"/global/instanceTemplates/(?P<name>[^/]+)", route_template_get),
    ("GET", REGION + r"/instanceTemplates/(?P<name>[^/]+)", route_template_get),
    ("GET", P + r"/global/instanceTemplates", route_template_list),
    ("POST", P + r"/global/instanceTemplates", route_template_insert),
    ("POST", REGION + r"/instanceTemplates", route_template_insert),
    ("DELETE", P + r"/global/instanceTemplates/(?P<name>[^/]+)", route_template_delete),
    ("GET", ZONE + r"/operations/(?P<op>[^/]+)", route_operation_get),
    ("GET", REGION + r"/operations/(?P<op>[^/]+)", route_operation_get),
    ("GET", P + r"/global/operations/(?P<op>[^/]+)", route_operation_get),
    ("POST", ZONE + r"/operations/(?P<op>[^/]+)/wait", route_operation_wait),
    ("POST", REGION + r"/operations/(?P<op>[^/]+)/wait", route_operation_wait),
    ("POST", P + r"/global/operations/(?P<op>[^/]+)/wait", route_operation_wait),
    ("GET", r"/v3/projects/(?P<project>[^/]+)/timeSeries", route_time_series),
    ("GET", r"/v1/services", route_services),
    ("GET", r"/v1/services/(?P<service>[^/]+)/skus", route_skus),
    ("POST", r"/bigquery/v2/projects/(?P<project>[^/]+)/queries", route_bigquery_query),
]]

WAIT_PATH = re.compile(P + r"/(?:zones/[^/]+|regions/[^/]+|global)/operations/(?P<op>[^/]+)/wait")


def api_of(path):
    if path.startswith("/compute/"):
        return "compute"
    if path.startswith("/bigquery/"):
        return "bigquery"
    if path.startswith("/v3/"):
        return "monitoring"
    if path.startswith("/v1/services"):
        return "billing"
    return "unknown"


class Ctx:
    """One request, as the routes see it."""

    def __init__(self, method, path, query, mquery, body, headers):
        self.method, self.path, self.query, self.mquery = method, path, query, mquery
        self.body, self.headers = body, headers
        self.api = api_of(path)
        self.enum_int = "enum-encoding=int" in (query.get("$alt") or "")
        self.p = {}
        self.project = None


def take_fault(ctx):
    """The first injected fault matching this request, consumed; or None."""
    for fault in FAULTS:
        if fault.get("project") and f"projects/{fault['project']}/" not in ctx.path + "/":
            continue
        if fault.get("method") and fault["method"].upper() != ctx.method:
            continue
        if fault.get("path_contains") and fault["path_contains"] not in ctx.path:
            continue
        fault["times"] -= 1
        if fault["times"] <= 0:
            FAULTS.remove(fault)
        headers = {}
        if fault.get("retry_after") is not None:
            headers["Retry-After"] = str(fault["retry_after"])
        return ApiError(fault["status"], fault["reason"], fault["message"], headers=headers,
                        status_name=fault.get("status_name"))
    return None


def lookup_project(ctx, pid):
    if not PROJECT_ID.match(pid):
        raise invalid_field("project", pid, "Must be a match of regex "
                            "'(?:(?:[-a-z0-9]{1,63}\\.)*(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?):)?"
                            "(?:[0-9]{1,19}|(?:[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?))'")
    project = PROJECTS.get(pid)
    if project is None:
        if ctx.api == "bigquery":
            raise ApiError(404, "notFound", f"Not found: Project {pid}")
        raise not_found(f"projects/{pid}")
    return project


def dispatch(ctx, record, body_error):
    """Serves a recorded (non-control) request. Called with LOCK held."""
    header = ctx.headers.get("Authorization")
    if header is None:
        record["auth"] = "anonymous"
    elif header.partition(" ")[0].lower() == "bearer" and header.partition(" ")[2].strip():
        record["auth"] = "bearer"
    else:
        record["auth"] = "invalid"
        raise ApiError(401, "authError", "Request had invalid authentication credentials. Expected "
                       "OAuth 2 access token, login cookie or other valid authentication credential.",
                       headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'})
    alt = ctx.query.get("$alt")
    if alt is not None and alt not in ("json", "json;enum-encoding=int"):
        raise ApiError(400, "invalidParameter", f"Invalid value for $alt: '{alt}' (this fake "
                       "answers JSON only).")
    found = re.match(r"^/(?:compute/v1|v3|bigquery/v2)/projects/([^/]+)", ctx.path)
    if found:
        ctx.project = lookup_project(ctx, found.group(1))
        settle(ctx.project)
    route = next(((r, m) for r in ROUTES if r[0] == ctx.method
                  for m in [r[1].fullmatch(ctx.path)] if m), None)
    if route is None:
        raise ApiError(404, "notFound", f"The requested URL {ctx.method} {ctx.path} was not found "
                       "on this server (this fake does not serve it).")
    (_, _, handler), match = route
    ctx.p = match.groupdict()
    fault = take_fault(ctx)
    if fault is not None:
        raise fault
    if body_error is not None:
        raise body_error
    return handler(ctx)


def wait_seconds(path):
    """For operations.wait: how long to sleep (outside the lock) before answering."""
    found = WAIT_PATH.fullmatch(path)
    if not found:
        return 0
    with LOCK:
        project = PROJECTS.get(found.group("project"))
        op = project.operations.get(found.group("op")) if project else None
        if op is None or op["status"] == "DONE":
            return 0
        return max(0.0, min(op["deadline"] - time.time(), WAIT_LIMIT_SECONDS))


# ---------------------------------------------------------------------------------------------
# Control API (/_fake/*)


def control(method, path, query, body):
    if method == "GET" and path == "/_fake/health":
        return 200, {"ok": True}
    found = re.fullmatch(r"/_fake/projects/([^/]+)", path)
    if found:
        pid = found.group(1)
        if not PROJECT_ID.match(pid):
            raise invalid(f"'{pid}' is not a valid project id (^[a-z][a-z0-9-]{{4,28}}[a-z0-9]$)")
        if method == "PUT":
            seed = require_object(body, "seed")
            PROJECTS[pid] = Project(pid, seed)
            return 200, state_view(PROJECTS[pid])
        if method == "GET":
            project = PROJECTS.get(pid)
            if project is None:
                raise ApiError(404, "notFound", f"The project '{pid}' was never seeded.")
            settle(project)
            return 200, state_view(project)
    found = re.fullmatch(r"/_fake/projects/([^/]+)/time_series", path)
    if found and method == "PUT":
        project = PROJECTS.get(found.group(1))
        if project is None:
            raise ApiError(404, "notFound", f"The project '{found.group(1)}' was never seeded.")
        project.time_series = project.parse_time_series(body if body is not None else {})
        return 200, {"ok": True, "metrics": sorted(project.time_series)}
    if method == "GET" and path == "/_fake/requests":
        pid = query.get("project", "")
        catalog = query.get("catalog") == "1"
        return 200, [r for r in REQUESTS
                     if not pid or f"projects/{pid}/" in r["path"] + "/"
                     or (catalog and r["path"].startswith("/v1/services"))]
    if path == "/_fake/faults" and method == "POST":
        body = require_object(body, "fault")
        status = body.get("status", 500)
        times = body.get("times", 1)
        if not is_int(status) or not 400 <= status <= 599 or not is_int(times) or times < 1:
            raise invalid("a fault needs status 400..599 and times >= 1")
        if body.get("retry_after") is not None and not is_int(body["retry_after"]):
            raise invalid("a fault's retry_after is whole seconds")
        FAULTS.append({"project": body.get("project"), "method": body.get("method"),
                       "path_contains": body.get("path_contains"), "status": status,
                       "reason": body.get("reason", "backendError"),
                       "message": body.get("message", "Injected fault."),
                       "status_name": body.get("status_name"),
                       "retry_after": body.get("retry_after"), "times": times})
        return 200, {"ok": True, "faults": len(FAULTS)}
    if path == "/_fake/faults" and method == "DELETE":
        pid = query.get("project")
        FAULTS[:] = [f for f in FAULTS if pid and f.get("project") != pid]
        return 200, {"ok": True, "faults": len(FAULTS)}
    if method == "POST" and path == "/_fake/fail-next-operation":
        body = require_object(body, "fail-next-operation")
        project = PROJECTS.get(str(body.get("project", "")))
        if project is None:
            raise ApiError(404, "notFound", "fail-next-operation: unknown project")
        code = body.get("code", "ZONE_RESOURCE_POOL_EXHAUSTED")
        http = body.get("http_status", 403 if code == "QUOTA_EXCEEDED" else 503)
        if not isinstance(code, str) or not is_int(http) or not 400 <= http <= 599:
            raise invalid("fail-next-operation: code is a string, http_status 400..599")
        project.fail_next = {"code": code, "http": http, "message": body.get(
            "message", f"The zone does not have enough resources available to fulfill the request. "
                       f"({code}, injected)")}
        return 200, {"ok": True}
    if method == "PUT" and path == "/_fake/catalog":
        body = require_object(body, "catalog")
        skus, size = body.get("skus"), body.get("page_size", 3)
        if skus is not None and (not isinstance(skus, list)
                                 or not all(isinstance(s, dict) for s in skus)):
            raise invalid("catalog: skus is a list of Sku objects (or null for the built-in list)")
        if not is_int(size) or size < 1:
            raise invalid("catalog: page_size >= 1")
        CATALOG["skus"], CATALOG["page_size"] = skus, size
        return 200, {"ok": True, "skus": len(skus if skus is not None else builtin_skus())}
    raise ApiError(404, "notFound", f"No control route {method} {path}.")


# ---------------------------------------------------------------------------------------------
# HTTP


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gcp-fake"

    def log_message(self, fmt, *args):
        pass  # one line per request is written by send

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
        mquery = parse_qs(split.query, keep_blank_values=True)
        query = {k: v[0] for k, v in mquery.items()}
        raw = self.read_body()
        body, body_error = None, None
        if raw:
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            try:
                body = json.loads(raw)
            except ValueError:
                body_error = ApiError(400, "parseError", "Invalid JSON payload received. "
                                      "Unexpected token.")
            if body_error is None and content_type and "json" not in content_type:
                body_error = ApiError(400, "parseError", f"Invalid JSON payload received: "
                                      f"Content-Type '{content_type}' is not application/json.")

        if path == "/_fake" or path.startswith("/_fake/"):
            with LOCK:
                try:
                    if body_error is not None:
                        raise body_error
                    status, payload = control(method, path, query, body)
                    headers = {}
                except ApiError as err:
                    status, payload, headers = err.status, err.payload(), err.headers
                encoded = json.dumps(payload).encode()
            self.send(method, path, status, encoded, headers)
            return

        pause = wait_seconds(path) if method == "POST" else 0
        if pause:
            time.sleep(pause)
        ctx = Ctx(method, path, query, mquery, body if body_error is None else None, self.headers)
        record = {"at": time.time(), "method": method, "path": path, "query": query,
                  "body": ctx.body, "status": None, "auth": None}
        with LOCK:
            try:
                status, payload = dispatch(ctx, record, body_error)
                headers = {}
            except ApiError as err:
                legacy = ctx.api in ("compute", "bigquery", "unknown")
                status, payload, headers = err.status, err.payload(legacy), err.headers
            record["status"] = status
            REQUESTS.append(record)
            # Serialise under the lock: views may hold references into the state.
            encoded = json.dumps(payload).encode()
        self.send(method, path, status, encoded, headers)

    def send(self, method, path, status, data, headers):
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        sys.stderr.write(f"gcp-fake: {method} {path} {status}\n")
        sys.stderr.flush()


def main():
    global BASE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT to listen on")
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), Handler)
    server.daemon_threads = True
    bound_host, bound_port = server.server_address[:2]
    BASE = f"http://{bound_host}:{bound_port}"
    sys.stderr.write(f"gcp-fake: listening on {BASE}\n")
    sys.stderr.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
