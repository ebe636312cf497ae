"""``nbo mobile CUSTOMER --slots N``: the payloads the mobile app's recommendation slots receive.

Prints the API's response as JSON (what an app developer codes against), or a short table with
``--table``.
"""

from __future__ import annotations

import argparse
import json
import sys

from services.clients import ClientError, OfferApi, default_api_url, key_for


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("customer", help="customer id, e.g. C000000030")
    parser.add_argument("--slots", type=int, default=3, help="number of slots to fill (default 3)")
    parser.add_argument("--api", default=None, help="offer API base URL (default NBO_API_URL or the local API)")
    parser.add_argument("--key", default=None, help="mobile API key (default NBO_MOBILE_KEY, else the demo key)")
    parser.add_argument("--table", action="store_true", help="a short table instead of JSON (default: the JSON the app receives)")


def run(args: argparse.Namespace) -> int:
    try:
        with OfferApi(args.api or default_api_url(), key_for("mobile", args.key)) as api:
            response = api.mobile_slots(args.customer, args.slots)
    except ClientError as exc:
        print(f"nbo mobile: {exc}", file=sys.stderr)
        return 1
    if not args.table:
        print(json.dumps(response, ensure_ascii=False, indent=2))
        return 0
    flag = "  (degraded)" if response["degraded"] else ""
    print(f"{response['customer_id']}  model {response['model_version']}{flag}")
    for slot in response["slots"]:
        print(f"  slot {slot['slot']}: {slot['title']['en']} / {slot['title']['zh']}  [{slot['creative_id']}]")
        print(f"          {slot['reason']['en']}")
    return 0
