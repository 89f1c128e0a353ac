"""OMA LwM2M 1.1 on aiocoap, the server side: registrations, operations, FOTA/SOTA, OSCORE.

The device side (codecs, object definitions, the client, the objects it
serves) is :mod:`tinymlaas.edge.lwm2m`; both speak :mod:`tinymlaas.edge.lwm2m.vocab`.
"""
