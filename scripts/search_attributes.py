"""Register the search attributes operators filter on, on a real cluster.

    python -m scripts.search_attributes          # TEMPORAL_ADDRESS / _NAMESPACE / _API_KEY / TLS
    python -m scripts.search_attributes --print  # the `temporal` CLI commands instead

`make run` and the tests register them on their dev servers themselves. Attributes already
registered are left as they are. (On Temporal Cloud, create them with `tcld namespace
search-attributes add`, or in its web console: the same names and types.)
"""

import argparse
import asyncio
import os
import sys

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)

from runtime.temporal_client import connect
from workflows.ids import KINDS, SEARCH_ATTRIBUTES


async def register() -> list[str]:
    """The attributes this call added (those missing), by name."""
    client = await connect(lazy=False)
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    missing = {
        key.name: IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{key.indexed_value_type.name}")
        for key in SEARCH_ATTRIBUTES
        if key.name not in existing.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )
    return sorted(missing)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print", action="store_true", help="print the CLI commands only")
    if parser.parse_args().print:
        for key in SEARCH_ATTRIBUTES:
            kind = KINDS[key.indexed_value_type.name]
            print(f"temporal operator search-attribute create --name {key.name} --type {kind}")
        return
    try:
        added = asyncio.run(register())
    except Exception as err:  # Temporal unreachable, no permission: say so, exit 1
        print(f"could not register the search attributes: {err!r}", file=sys.stderr)
        sys.stderr.flush()
        os._exit(1)
    print(f"added: {', '.join(added)}" if added else "all search attributes already registered")
    sys.stdout.flush()
    # the Temporal client's native threads can abort the interpreter's finalization
    # ("PyGILState_Release ... finalizing"): the work is done, so leave without it
    os._exit(0)


if __name__ == "__main__":
    main()
