"""Independent check of the Share simulator with pydexcom, a real third-party Share client.

Usage: pydexcom_check.py MODE BASE_URL USERNAME PASSWORD
MODE is one of: read, bad-password, expired-session, account-id ACCOUNT_ID.
Prints one JSON object on stdout; the Rust test `tests/pydexcom.rs` asserts on it.
"""

import json
import sys

import pydexcom
from pydexcom import Dexcom, errors
from pydexcom import dexcom as dexcom_module
from pydexcom.const import Region


def point_at(base_url: str) -> None:
    # pydexcom looks its base URL up in this dict at construction; patch every region.
    for region in Region:
        dexcom_module.DEXCOM_BASE_URLS[region] = base_url


def reading_json(reading) -> dict:
    return {
        "ms": round(reading.datetime.timestamp() * 1000),
        "value": reading.value,
        "trend": reading.trend,
        "trend_direction": reading.trend_direction,
        "mmol_l": reading.mmol_l,
    }


def main() -> None:
    mode, base_url, username, password = sys.argv[1:5]
    point_at(base_url)
    out = {"pydexcom_version": getattr(pydexcom, "__version__", None)}
    try:
        if mode == "read":
            dexcom = Dexcom(username=username, password=password, region="us")
            # 70 minutes: the newest sensor time may still await its upload, leaving 11 in the last 60.
            out["readings"] = [reading_json(r) for r in dexcom.get_glucose_readings(minutes=70, max_count=12)]
            latest = dexcom.get_latest_glucose_reading()
            out["latest"] = reading_json(latest) if latest else None
        elif mode == "account-id":
            dexcom = Dexcom(account_id=sys.argv[5], password=password, region="us")
            latest = dexcom.get_current_glucose_reading()
            out["latest"] = reading_json(latest) if latest else None
        elif mode == "bad-password":
            Dexcom(username=username, password=password, region="us")
        elif mode == "expired-session":
            dexcom = Dexcom(username=username, password=password, region="us")
            dexcom.get_current_glucose_reading()
        else:
            raise SystemExit(f"unknown mode {mode}")
        out["error"] = None
    except errors.DexcomError as error:
        out["error"] = type(error).__name__
        out["message"] = str(error)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
