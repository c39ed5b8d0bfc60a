"""A follower built on py-nightscout (PyPI), the library Home Assistant's Nightscout
integration uses, run unchanged against a cgm-bridge feed.

    python py_nightscout_follow.py <base URL> <follower token>

Prints one JSON object with what the library read; tests/tests/nightscout_clients.rs checks it.
"""
import asyncio
import json
import sys

from py_nightscout import Api


async def main(base, token):
    out = {}
    # The library's two forms of the secret: "token=<token>" sent as is, else its SHA-1.
    for name, secret in [("token_form", "token=" + token), ("sha1_form", token)]:
        api = Api(base, api_secret=secret)
        sgvs = await api.get_sgvs()
        out[name] = {
            "count": len(sgvs),
            "first": {
                "sgv": sgvs[0].sgv,
                "sgv_mmol": sgvs[0].sgv_mmol,
                "delta": sgvs[0].delta,
                "delta_mmol": sgvs[0].delta_mmol,
                "direction": sgvs[0].direction,
                "date": sgvs[0].date.isoformat(),
            },
        }
    api = Api(base, api_secret=token)
    status = await api.get_server_status()
    out["status"] = {"status": status.status, "name": status.name, "apiEnabled": status.apiEnabled,
                     "units": status.settings["units"]}
    out["treatments"] = len(await api.get_treatments())
    out["profiles"] = len((await api.get_profiles()).profile_definitions)
    out["devicestatus"] = len(await api.get_devices_status())
    print(json.dumps(out))


asyncio.run(main(sys.argv[1], sys.argv[2]))
