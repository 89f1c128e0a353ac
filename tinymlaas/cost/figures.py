"""The cost model's documented defaults, each with its reference, and the energy per instruction of
each Cortex-M family from its datasheet.

A default is a public figure (a price list, a datasheet) or a stated assumption; the figures the
project measures (instructions per inference, tensor and package sizes, the cloud model's compute
time, the escalation rate) are not here: :mod:`tinymlaas.services.cost` takes them from the
model's profiles, builds and evaluations. Nothing is fetched: the references name the documents
the figures were read from, and their date.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The supply an MCU's datasheet current is multiplied by (a 3 V battery through an LDO: the core
#: draws the same current at any supply in the LDO's range).
SUPPLY_V = 3.0


@dataclass(frozen=True)
class Default:
    value: float
    ref: str


DEFAULTS: dict[str, Default] = {
    "fleet_size": Default(10_000, "a starting point: give your fleet's size"),
    "inferences_per_day": Default(1_440, "a starting point: one inference a minute; give your rate"),
    "cloud_price_per_1k_requests": Default(
        0.0002, "AWS Lambda price list, us-east-1, 2024: USD 0.20 per million requests"),
    "cloud_price_per_compute_second": Default(
        0.0000166667 * 0.5,
        "AWS Lambda price list, x86, us-east-1, 2024: USD 0.0000166667 per GB-second, for a 512 MB "
        "function (a Python runtime holding the float model)"),
    "cloud_billing_granularity_s": Default(0.001, "AWS Lambda bills duration in 1 ms steps (since 2020)"),
    "cloud_fixed_per_year": Default(0.0, "a serverless endpoint costs nothing while idle (AWS Lambda "
                                         "charges requests and duration only)"),
    "protocol_overhead_bytes": Default(
        400, "assumption: HTTP/1.1 request and response headers on a resumed TLS 1.3 session (two "
             "TLS records of 22 B framing; the headers the rest)"),
    "egress_price_per_gb": Default(
        0.09, "AWS data transfer out to the internet, us-east-1, first 10 TB a month, 2024: USD 0.09 per "
              "GB (data transfer in is free)"),
    "data_price_per_mb": Default(
        0.0, "assumption: devices on a site's Wi-Fi or Ethernet pay nothing per byte; give a cellular "
             "plan's price per MB"),
    "device_unit_cost": Default(10.0, "assumption: a sensor node's bill of materials; give yours"),
    "tinyml_device_premium": Default(
        0.0, "assumption: the device that runs the model is the one the cloud option needs anyway; "
             "give the extra price of more flash or RAM if the model needs it"),
    "device_lifetime_years": Default(5, "assumption: five years in the field"),
    "radio_energy_per_byte_j": Default(
        115.2e-9, "nRF52840 Product Specification, radio: TX at 0 dBm draws 4.8 mA with DC/DC at 3 V; "
                  "one byte at 1 Mbps BLE is 8 us on air: 4.8 mA x 3 V x 8 us"),
    "radio_energy_per_message_j": Default(
        0.0, "not counted unless given: what a connection costs besides its bytes depends on the radio "
             "and how it sleeps (a BLE connection event, a Wi-Fi association, an LTE-M attach)"),
    "idle_power_w": Default(
        9e-6, "nRF52840 Product Specification, sleep: System ON with an RTC running and RAM retained, "
              "about 3 uA at 3 V"),
    "energy_price_per_kwh": Default(
        0.16, "US EIA Electric Power Monthly, average retail price to residential customers, 2023: "
              "about 16 cents per kWh"),
    "battery_capacity_mah": Default(
        235, "Energizer CR2032 datasheet: 235 mAh (a coin cell; two AA alkaline cells hold about ten "
             "times more)"),
    "battery_voltage_v": Default(3.0, "Energizer CR2032 datasheet: 3.0 V nominal"),
    "updates_per_year": Default(4, "assumption: a model update each quarter"),
    "tinyml_fixed_per_year": Default(
        round(0.0208 * 8_760, 2),
        "AWS EC2 price list, t3.small on demand, Linux, us-east-1, 2024: USD 0.0208 an hour x 8,760 h, "
        "for the service that builds and ships model updates (benchmarks/bench_lwm2m.py: one service "
        "holds 10,000 LwM2M devices in 129 MiB)"),
}


@dataclass(frozen=True)
class CoreFigure:
    """A Cortex-M family's current per MHz from one chip's datasheet (code running from flash)."""

    chip: str
    ua_per_mhz: float
    ref: str

    @property
    def joules_per_instruction(self) -> float:
        """uA/MHz x V is pJ per cycle; one instruction per cycle, as the profile's latency assumes."""
        return self.ua_per_mhz * SUPPLY_V * 1e-12

    def reference(self) -> str:
        return (f"{self.ref}: {self.ua_per_mhz:g} uA/MHz x {SUPPLY_V:g} V = "
                f"{self.joules_per_instruction * 1e12:.0f} pJ per cycle, one instruction per cycle")


CORE_ENERGY: dict[str, CoreFigure] = {
    "cortex-m0": CoreFigure(
        "STM32F031", 237.5, "STM32F031x4/x6 datasheet (DocID025743), Table 23: run mode, code from flash, "
                            "48 MHz (HSE bypass, PLL on), peripherals off, 11.4 mA typical"),
    "cortex-m3": CoreFigure(
        "STM32L100", 300.0, "STM32L100C6/R8/RB datasheet (DocID024295), Table 15: run mode, code from "
                            "flash, 32 MHz (range 1, PLL on), 9.6 mA typical"),
    "cortex-m4": CoreFigure(
        "nRF52840", 51.6, "nRF52840 Product Specification, CPU running: CoreMark from flash at 64 MHz "
                          "with DC/DC at 3 V, 3.3 mA"),
}
#: Families without a figure of their own borrow one, and say so.
STAND_INS = {"cortex-m7": "cortex-m4", "cortex-m0plus": "cortex-m0", "cortex-m33": "cortex-m4"}


def core_energy(family: str) -> tuple[float, str] | None:
    """Energy per instruction for a board's family and its reference; None for a family without one
    (the x86 container: nobody prices an instruction there)."""
    if family in CORE_ENERGY:
        fig = CORE_ENERGY[family]
        return fig.joules_per_instruction, fig.reference()
    if family in STAND_INS:
        fig = CORE_ENERGY[STAND_INS[family]]
        return fig.joules_per_instruction, (
            f"no {family} figure at hand: the {STAND_INS[family]} one stands in (a larger core draws "
            f"more; give your chip's figure). {fig.reference()}")
    return None
