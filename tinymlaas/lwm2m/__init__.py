"""OMA LwM2M 1.1 on aiocoap: the server (service side) and the client (device side).

Device-side modules (``objects``, ``codec``, ``links``, ``client``, ``agent``)
need only the standard library, aiocoap and cbor2: they are packed into device
firmware. The server side (``server``, ``security``, ``deploy``) is the service's.
"""
