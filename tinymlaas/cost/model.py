"""The cost model: cloud inference, TinyML, and the hybrid of both (the device answers what it is
sure of and escalates the rest to the cloud model), per device per year, per million inferences
and for a fleet; where two options break even (fleet size, inference rate); how long a battery
lasts. Pure arithmetic on explicit inputs, no I/O: :mod:`tinymlaas.services.cost` fills the
inputs and says where each one came from.

Every cost is linear, which keeps the break-even points exact. Per option and per year::

    fleet cost    = F + N * (a + b * r)
    per device    = a + b * r + F / N

with ``F`` the fleet's fixed cost (a platform that does not grow with the fleet), ``a`` what one
device costs whatever it infers (its price over its lifetime, model updates, idle energy), ``b``
the cost of one inference and ``r`` the inferences per device per year.

* **cloud**: the device sends each input and gets the answer: requests, billed compute, egress,
  the device's data plan and the radio energy per inference.
* **TinyML**: the device runs the int8 model: the instructions it takes times the core's energy
  per instruction; model updates (FOTA/SOTA bytes) are egress, data and radio energy; the
  service that ships them is a fixed cost. The answer stays on the device (or rides on what it
  reports anyway).
* **hybrid**: TinyML for every inference, plus the cloud's per-inference costs for the share it
  escalates; both fixed costs.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SECONDS_PER_YEAR = 365.25 * 86_400
DAYS_PER_YEAR = 365.25
J_PER_KWH = 3.6e6

OptionName = Literal["cloud", "tinyml", "hybrid"]
OPTIONS: tuple[OptionName, ...] = ("cloud", "tinyml", "hybrid")
LABELS: dict[OptionName, str] = {"cloud": "cloud", "tinyml": "TinyML", "hybrid": "hybrid"}


def _f(unit: str, description: str, *, ge: float = 0.0, le: float | None = None) -> float:
    """A model input: its unit travels in the schema (and so into every figure's record)."""
    field: float = Field(ge=ge, le=le, description=description, json_schema_extra={"unit": unit})
    return field


class Inputs(BaseModel):
    """Every figure the model uses, in the unit its schema names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fleet_size: float = _f("devices", "devices in the fleet", ge=1)
    inferences_per_day: float = _f("inferences/day", "inferences one device runs per day")
    # -- cloud
    cloud_price_per_1k_requests: float = _f("USD/1,000 requests", "what the cloud charges per request")
    cloud_price_per_compute_second: float = _f("USD/s", "what the cloud charges per billed second")
    cloud_compute_seconds: float = _f("s", "compute one cloud inference takes")
    cloud_billing_granularity_s: float = _f("s", "compute is billed in whole steps of this length")
    cloud_fixed_per_year: float = _f("USD/year", "the cloud endpoint's cost whatever it serves")
    input_bytes: float = _f("B", "the input a device sends per cloud inference")
    output_bytes: float = _f("B", "the answer it gets back")
    protocol_overhead_bytes: float = _f("B", "framing per request and answer together (headers, TLS)")
    egress_price_per_gb: float = _f("USD/GB", "what the cloud charges for bytes it sends out")
    data_price_per_mb: float = _f("USD/MB", "what the device's connection charges per byte")
    # -- the device
    device_unit_cost: float = _f("USD", "one device")
    tinyml_device_premium: float = _f("USD", "what a device able to run the model costs more")
    device_lifetime_years: float = _f("years", "years a device serves (its price spread over them)", ge=0.01)
    instructions_per_inference: float = _f("instructions", "instructions one inference takes on the core")
    energy_per_instruction_j: float = _f("J", "energy the core spends per instruction")
    radio_energy_per_byte_j: float = _f("J/B", "radio energy per byte sent or received")
    radio_energy_per_message_j: float = _f("J", "radio energy per exchange besides its bytes")
    idle_power_w: float = _f("W", "what the device draws between inferences")
    energy_price_per_kwh: float = _f("USD/kWh", "the price of electricity")
    battery_capacity_mah: float = _f("mAh", "the battery's capacity", ge=0.001)
    battery_voltage_v: float = _f("V", "the battery's voltage", ge=0.001)
    # -- TinyML
    update_bytes: float = _f("B", "one model update as the device downloads it (FOTA or SOTA)")
    updates_per_year: float = _f("updates/year", "model updates per device per year")
    tinyml_fixed_per_year: float = _f("USD/year", "the service that builds and ships model updates")
    # -- hybrid
    escalation_rate: float = _f("fraction", "share of inferences the device escalates to the cloud", le=1)

    @property
    def inferences_per_year(self) -> float:
        return self.inferences_per_day * DAYS_PER_YEAR


def input_units() -> dict[str, tuple[str, str]]:
    """Every input's unit and description, by name."""
    out = {}
    for name, field in Inputs.model_fields.items():
        extra = field.json_schema_extra
        unit = extra.get("unit") if isinstance(extra, dict) else None
        out[name] = (str(unit), field.description or "")
    return out


class Item(BaseModel):
    """One line of an option's cost per device per year, with the inputs it follows from."""

    name: str
    usd_per_device_year: float
    formula: str


class Option(BaseModel):
    name: OptionName
    fleet_fixed_per_year: float = Field(description="F: the fleet's fixed cost per year (USD)")
    per_device_base_per_year: float = Field(description="a: one device per year whatever it infers (USD)")
    per_inference: float = Field(description="b: one inference (USD)")
    per_device_per_year: float = Field(description="a + b r + F / N (USD)")
    per_million_inferences: float = Field(description="per device per year over its inferences, x 10^6 (USD)")
    fleet_per_year: float = Field(description="F + N (a + b r) (USD)")
    items: list[Item]
    energy_per_inference_j: float = Field(description="the device's energy per inference (J)")
    average_power_w: float = Field(description="the device's average draw (W)")
    battery_life_years: float = Field(description="battery capacity over the average draw (years)")


class BreakEven(BaseModel):
    """Where two options cost the same: the fleet size at this rate, the rate at this fleet size."""

    first: OptionName
    second: OptionName
    fleet_size: float | None = Field(description="devices; None: no crossing above one device")
    inferences_per_day: float | None = Field(description="per device; None: no crossing above zero")
    note: str


class Result(BaseModel):
    options: list[Option]
    cheapest: OptionName
    break_even: list[BreakEven]


# -- the arithmetic -------------------------------------------------------------------------------


def billed_seconds(x: Inputs) -> float:
    """Compute per request as billed: whole steps of the billing granularity (at least one)."""
    if x.cloud_billing_granularity_s <= 0:
        return x.cloud_compute_seconds
    steps = max(1, math.ceil(x.cloud_compute_seconds / x.cloud_billing_granularity_s - 1e-9))
    return steps * x.cloud_billing_granularity_s


def request_bytes(x: Inputs) -> float:
    return x.input_bytes + x.output_bytes + x.protocol_overhead_bytes


def radio_energy_per_request(x: Inputs) -> float:
    return request_bytes(x) * x.radio_energy_per_byte_j + x.radio_energy_per_message_j


def _cloud_lines(x: Inputs, share: float, label: str) -> tuple[list[tuple[str, float, str]], float]:
    """The cloud's per-inference costs for ``share`` of the inferences: (name, USD/inference,
    formula) lines, and the device's radio energy per inference they bring."""
    egress = x.output_bytes + x.protocol_overhead_bytes / 2  # the answer and half the framing
    lines = [
        (f"{label}requests", share * x.cloud_price_per_1k_requests / 1000,
         "cloud_price_per_1k_requests / 1000"),
        (f"{label}compute", share * billed_seconds(x) * x.cloud_price_per_compute_second,
         "cloud_compute_seconds (billed in steps of cloud_billing_granularity_s) "
         "x cloud_price_per_compute_second"),
        (f"{label}egress", share * egress / 1e9 * x.egress_price_per_gb,
         "(output_bytes + protocol_overhead_bytes / 2) / 10^9 x egress_price_per_gb"),
        (f"{label}data plan", share * request_bytes(x) / 1e6 * x.data_price_per_mb,
         "(input_bytes + output_bytes + protocol_overhead_bytes) / 10^6 x data_price_per_mb"),
    ]
    return lines, share * radio_energy_per_request(x)


def _option(x: Inputs, name: OptionName) -> Option:
    r = x.inferences_per_year
    per_inf: list[tuple[str, float, str]] = []
    base: list[tuple[str, float, str]] = []
    energy_inf = 0.0  # J per inference on the device
    energy_year = x.idle_power_w * SECONDS_PER_YEAR  # J per device per year besides inferences
    fixed = 0.0
    fixed_formula = []
    device = x.device_unit_cost + (0.0 if name == "cloud" else x.tinyml_device_premium)
    base.append(("device", device / x.device_lifetime_years,
                 "device_unit_cost / device_lifetime_years" if name == "cloud" else
                 "(device_unit_cost + tinyml_device_premium) / device_lifetime_years"))
    if name in ("tinyml", "hybrid"):
        energy_inf += x.instructions_per_inference * x.energy_per_instruction_j
        update_year = x.updates_per_year * x.update_bytes
        base.append(("model updates",
                     update_year * (x.egress_price_per_gb / 1e9 + x.data_price_per_mb / 1e6),
                     "updates_per_year x update_bytes x "
                     "(egress_price_per_gb / 10^9 + data_price_per_mb / 10^6)"))
        energy_year += (update_year * x.radio_energy_per_byte_j
                        + x.updates_per_year * x.radio_energy_per_message_j)
        fixed += x.tinyml_fixed_per_year
        fixed_formula.append("tinyml_fixed_per_year")
    if name in ("cloud", "hybrid"):
        share = 1.0 if name == "cloud" else x.escalation_rate
        lines, radio = _cloud_lines(x, share, "" if name == "cloud" else "escalated ")
        if name == "hybrid":
            lines = [(n, v, f"escalation_rate x {f}") for n, v, f in lines]
        per_inf += lines
        energy_inf += radio
        fixed += x.cloud_fixed_per_year
        fixed_formula.append("cloud_fixed_per_year")
    energy_price = x.energy_price_per_kwh / J_PER_KWH
    per_inf.append(("inference energy", energy_inf * energy_price,
                    {"cloud": "radio energy per request", "tinyml": "instructions x energy per instruction",
                     "hybrid": "instructions x energy per instruction + escalation_rate x radio energy"}[name]
                    + " (J) x energy_price_per_kwh / 3.6 10^6"))
    base.append(("idle and update energy", energy_year * energy_price,
                 "(idle_power_w x seconds per year + update radio energy) x energy_price_per_kwh / 3.6 10^6"))
    a = sum(v for _, v, _ in base)
    b = sum(v for _, v, _ in per_inf)
    per_device = a + b * r + fixed / x.fleet_size
    items = [Item(name=n, usd_per_device_year=v, formula=f) for n, v, f in base]
    items += [Item(name=n, usd_per_device_year=v * r, formula=f"inferences per year x {f}")
              for n, v, f in per_inf]
    items.append(Item(name="platform", usd_per_device_year=fixed / x.fleet_size,
                      formula=f"({' + '.join(fixed_formula)}) / fleet_size"))
    power = (energy_inf * r + energy_year) / SECONDS_PER_YEAR
    battery_j = x.battery_capacity_mah / 1000 * 3600 * x.battery_voltage_v
    return Option(
        name=name, fleet_fixed_per_year=fixed, per_device_base_per_year=a, per_inference=b,
        per_device_per_year=per_device,
        per_million_inferences=per_device / r * 1e6 if r > 0 else math.inf,
        fleet_per_year=fixed + x.fleet_size * (a + b * r), items=items,
        energy_per_inference_j=energy_inf, average_power_w=power,
        battery_life_years=battery_j / power / SECONDS_PER_YEAR if power > 0 else math.inf,
    )


def per_device_at(option: Option, fleet_size: float, inferences_per_day: float) -> float:
    """An option's cost per device per year at another fleet size or rate (it is linear)."""
    r = inferences_per_day * DAYS_PER_YEAR
    return (option.per_device_base_per_year + option.per_inference * r
            + option.fleet_fixed_per_year / fleet_size)


def break_even(first: Option, second: Option, x: Inputs) -> BreakEven:
    """Where ``first`` and ``second`` cost the same, and which is cheaper on either side."""
    r, n = x.inferences_per_year, x.fleet_size
    one, two = LABELS[first.name], LABELS[second.name]
    # F1 + N v1 = F2 + N v2, with v the per-device cost without the fleet's fixed cost
    v1 = first.per_device_base_per_year + first.per_inference * r
    v2 = second.per_device_base_per_year + second.per_inference * r
    dv, df = v2 - v1, first.fleet_fixed_per_year - second.fleet_fixed_per_year
    fleet = df / dv if dv != 0 else None
    if fleet is not None and fleet >= 1:
        cheap_above = one if dv > 0 else two
        cheap_below = two if dv > 0 else one
        fleet_note = (f"at {x.inferences_per_day:,g} inferences a day, {cheap_below} is cheaper below "
                      f"{fleet:,.0f} devices and {cheap_above} above")
    else:
        fleet = None
        at_one = (per_device_at(first, 1, x.inferences_per_day)
                  - per_device_at(second, 1, x.inferences_per_day))
        cheaper = one if (dv > 0 or (dv == 0 and at_one < 0)) else two
        fleet_note = (f"at {x.inferences_per_day:,g} inferences a day, {cheaper} is cheaper at every "
                      "fleet size")
    # a1 + F1 / N + b1 r = a2 + F2 / N + b2 r
    a1 = first.per_device_base_per_year + first.fleet_fixed_per_year / n
    a2 = second.per_device_base_per_year + second.fleet_fixed_per_year / n
    db = first.per_inference - second.per_inference
    rate = (a2 - a1) / db if db != 0 else None
    if rate is not None and rate > 0:
        per_day = rate / DAYS_PER_YEAR
        busy = one if db < 0 else two
        idle = two if db < 0 else one
        rate_note = (f"with {n:,.0f} devices, {idle} is cheaper below {per_day:,.4g} inferences a day "
                     f"per device and {busy} above")
    else:
        per_day = None
        cheaper = one if a1 + first.per_inference * r < a2 + second.per_inference * r else two
        rate_note = f"with {n:,.0f} devices, {cheaper} is cheaper at every inference rate"
    return BreakEven(first=first.name, second=second.name, fleet_size=fleet, inferences_per_day=per_day,
                     note=f"{fleet_note}; {rate_note}")


def evaluate(x: Inputs, *, hybrid: bool = True) -> Result:
    """Every option's cost, the cheapest, and the break-even points between the options."""
    options = [_option(x, name) for name in OPTIONS if hybrid or name != "hybrid"]
    by = {o.name: o for o in options}
    pairs: list[tuple[OptionName, OptionName]] = [("cloud", "tinyml")]
    if hybrid:
        pairs += [("cloud", "hybrid"), ("tinyml", "hybrid")]
    return Result(
        options=options,
        cheapest=min(options, key=lambda o: o.per_device_per_year).name,
        break_even=[break_even(by[a], by[b], x) for a, b in pairs],
    )
