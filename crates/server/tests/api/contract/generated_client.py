"""Uses a client that openapi-python-client generated from Barrack's served OpenAPI document (package
`barrack_client` on PYTHONPATH): deploy an instance, wait until it is ACTIVE, find it in the list, delete it.

Run by crates/server/tests/api/contract.rs with BARRACK_URL and BARRACK_API_KEY set. Every answer is parsed
into the generated models, so a document that does not describe the answers fails here.
"""

import os
import sys
import time

from barrack_client import AuthenticatedClient
from barrack_client.api.deploy_instance import deploy_instance
from barrack_client.api.instances import delete_instance, get_instance, list_instances
from barrack_client.models import (
    DeploymentRequest,
    DirectionEnum,
    EthertypeEnum,
    GpuCountEnum,
    GpuModelEnum,
    OsVolume,
    ProtocolEnum,
    RegionEnum,
    VMSecurityRuleRequest,
    VMStatus,
)


def expect(response, status):
    if response.status_code != status:
        sys.exit(f"expected {status}, got {response.status_code}: {response.content!r}")
    if response.parsed is None:
        sys.exit(f"the generated client could not read the answer: {response.content!r}")
    return response.parsed


def main():
    client = AuthenticatedClient(
        base_url=os.environ["BARRACK_URL"],
        token=os.environ["BARRACK_API_KEY"],
        auth_header_name="X-API-Key",
        prefix="",
    )
    # As generated clients send it: every optional field, the unused ones as null.
    request = DeploymentRequest(
        gpu_model=GpuModelEnum("H100-SXM5-80GB"),
        gpu_count=GpuCountEnum(4),
        region=RegionEnum("FINLAND-1"),
        instance_name="py-client",
        image_name="Ubuntu 24.04 + CUDA 12.8 Open + Docker",
        volume_id=None,
        boot_from_volume=False,
        ssh_key="laptop",
        public_ip=True,
        security_rules=[
            VMSecurityRuleRequest(
                direction=DirectionEnum("ingress"),
                protocol=ProtocolEnum("tcp"),
                ethertype=EthertypeEnum("IPv4"),
                port_range_min=22,
                port_range_max=22,
                remote_ip_prefix="0.0.0.0/0",
            )
        ],
        cloud_init=None,
        os_volume=OsVolume(size=100),
        existing_volumes=None,
        volumes=[],
        script_id=None,
    )
    deployed = expect(deploy_instance.sync_detailed(client=client, body=request), 201).data
    instance_id = deployed.instance_id
    print(f"deployed {instance_id} {deployed.status.value}", flush=True)

    deadline = time.monotonic() + 60
    while True:
        instance = expect(get_instance.sync_detailed(instance_id, client=client), 200).data
        if instance.status == VMStatus.ACTIVE:
            break
        if time.monotonic() > deadline:
            sys.exit(f"{instance_id} is still {instance.status.value}")
        time.sleep(0.2)
    print(f"active {instance_id} {instance.ip_address}", flush=True)

    listed = expect(list_instances.sync_detailed(client=client, page=1, limit=100), 200).data
    if instance_id not in [i.instance_id for i in listed.instances]:
        sys.exit(f"{instance_id} is not listed")
    print(f"listed {instance_id} among {listed.pagination.total}", flush=True)

    deleting = expect(delete_instance.sync_detailed(instance_id, client=client), 200).data
    print(f"deleted {instance_id} {deleting.status}", flush=True)


if __name__ == "__main__":
    main()
