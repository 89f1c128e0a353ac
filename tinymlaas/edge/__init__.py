"""Everything that runs on a device or on a bridge in front of one.

The x86 firmware (``firmware.pyz``) is this package plus a model; a bridge
(the gateway that fronts an MCU) runs from it too. So it imports nothing from
the rest of ``tinymlaas`` — the import contract is checked by
``tests/test_edge_contract.py`` — and needs only numpy, the TFLM wheel and,
for LwM2M, aiocoap. The service may import from here (the UART and LwM2M
codecs, the TFLM wrapper it uses as its oracle, the error family).
"""
