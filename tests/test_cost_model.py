"""The cost model's arithmetic: each line from its inputs, break-even points where the options really
cost the same, battery life, billing steps; and the documented defaults it starts from."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from tinymlaas.cost.figures import CORE_ENERGY, DEFAULTS, core_energy
from tinymlaas.cost.model import (
    DAYS_PER_YEAR,
    SECONDS_PER_YEAR,
    Inputs,
    Option,
    Result,
    billed_seconds,
    evaluate,
    input_units,
    per_device_at,
)


def inputs(**given: float) -> Inputs:
    values = {name: d.value for name, d in DEFAULTS.items()}
    values.update(instructions_per_inference=571_000, energy_per_instruction_j=900e-12,
                  cloud_compute_seconds=0.0004, input_bytes=64, output_bytes=10, update_bytes=30_000,
                  escalation_rate=0.1)
    return Inputs(**values | given)


def by_name(result: Result) -> dict[str, Option]:
    return {o.name: o for o in result.options}


def test_every_input_has_a_unit_and_every_default_a_reference() -> None:
    units = input_units()
    assert set(DEFAULTS) <= set(units)
    assert all(unit and description for unit, description in units.values())
    assert all(len(d.ref) > 20 for d in DEFAULTS.values())
    measured = set(units) - set(DEFAULTS)
    assert measured == {"instructions_per_inference", "energy_per_instruction_j", "cloud_compute_seconds",
                        "input_bytes", "output_bytes", "update_bytes", "escalation_rate"}


def test_energy_per_instruction_is_the_datasheet_current_per_mhz_at_3_v() -> None:
    m4 = CORE_ENERGY["cortex-m4"]
    assert m4.joules_per_instruction == pytest.approx(51.6e-6 / 1e6 * 3.0)  # A/Hz x V = J per cycle
    assert core_energy("cortex-m3") == (pytest.approx(900e-12), CORE_ENERGY["cortex-m3"].reference())
    stand_in = core_energy("cortex-m7")
    assert stand_in is not None
    value, ref = stand_in
    assert value == m4.joules_per_instruction and ref.startswith("no cortex-m7 figure at hand")
    assert core_energy("x86") is None


def test_the_lines_add_up_and_follow_from_the_inputs() -> None:
    x = inputs()
    r = x.inferences_per_year
    options = by_name(evaluate(x))
    cloud, tiny, hybrid = options["cloud"], options["tinyml"], options["hybrid"]
    for o in (cloud, tiny, hybrid):
        assert sum(i.usd_per_device_year for i in o.items) == pytest.approx(o.per_device_per_year)
        assert o.per_million_inferences == pytest.approx(o.per_device_per_year / r * 1e6)
        assert o.fleet_per_year == pytest.approx(o.per_device_per_year * x.fleet_size)
    lines = {i.name: i.usd_per_device_year for i in cloud.items}
    assert lines["requests"] == pytest.approx(r * 0.20 / 1e6)
    assert lines["compute"] == pytest.approx(r * 0.001 * x.cloud_price_per_compute_second)  # 0.4 ms: 1 ms
    assert lines["egress"] == pytest.approx(r * (10 + 200) / 1e9 * 0.09)
    assert lines["device"] == pytest.approx(10 / 5)
    tiny_lines = {i.name: i.usd_per_device_year for i in tiny.items}
    assert tiny_lines["platform"] == pytest.approx(DEFAULTS["tinyml_fixed_per_year"].value / 10_000)
    assert tiny_lines["model updates"] == pytest.approx(4 * 30_000 / 1e9 * 0.09)
    assert tiny.energy_per_inference_j == pytest.approx(571_000 * 900e-12)
    assert cloud.energy_per_inference_j == pytest.approx((64 + 10 + 400) * 115.2e-9)


def test_the_hybrid_costs_tinyml_plus_its_escalated_share_of_the_cloud() -> None:
    for rate in (0.0, 0.1, 0.5, 1.0):
        options = by_name(evaluate(inputs(escalation_rate=rate)))
        cloud, tiny, hybrid = options["cloud"], options["tinyml"], options["hybrid"]
        cloud_per_inference = cloud.per_inference - cloud.energy_per_inference_j * 0.16 / 3.6e6
        assert hybrid.per_inference == pytest.approx(
            tiny.per_inference + rate * cloud_per_inference
            + rate * cloud.energy_per_inference_j * 0.16 / 3.6e6)
        assert hybrid.per_device_base_per_year == pytest.approx(tiny.per_device_base_per_year)
    at_tenth = by_name(evaluate(inputs(escalation_rate=0.1)))
    assert (at_tenth["tinyml"].per_device_per_year < at_tenth["hybrid"].per_device_per_year
            < at_tenth["cloud"].per_device_per_year)


def test_break_even_points_are_where_the_options_cost_the_same() -> None:
    x = inputs()
    result = evaluate(x)
    assert result.cheapest == "tinyml"
    be = result.break_even[0]
    assert (be.first, be.second) == ("cloud", "tinyml") and be.fleet_size and be.inferences_per_day
    options = by_name(result)
    cloud, tiny = options["cloud"], options["tinyml"]
    assert be.fleet_size is not None and be.inferences_per_day is not None
    assert per_device_at(cloud, be.fleet_size, x.inferences_per_day) == pytest.approx(
        per_device_at(tiny, be.fleet_size, x.inferences_per_day))
    assert per_device_at(cloud, x.fleet_size, be.inferences_per_day) == pytest.approx(
        per_device_at(tiny, x.fleet_size, be.inferences_per_day))
    assert f"cloud is cheaper below {be.fleet_size:,.0f} devices and TinyML above" in be.note
    # Evaluated again at the break-even fleet size, the two cost the same.
    again = by_name(evaluate(inputs(fleet_size=be.fleet_size)))
    assert again["cloud"].per_device_per_year == pytest.approx(again["tinyml"].per_device_per_year)


def test_no_crossing_is_said_as_such() -> None:
    # Without the service's fixed cost TinyML is cheaper at any fleet size; at no inferences at all
    # the cloud costs nothing per inference, so there is a rate below which it wins.
    x = inputs(tinyml_fixed_per_year=0)
    be = evaluate(x).break_even[0]
    assert be.fleet_size is None and "TinyML is cheaper at every fleet size" in be.note
    pricier_device = inputs(tinyml_fixed_per_year=0, tinyml_device_premium=50, cloud_price_per_1k_requests=0,
                            cloud_price_per_compute_second=0, egress_price_per_gb=0)
    assert "cloud is cheaper at every fleet size" in evaluate(pricier_device).break_even[0].note


def test_battery_life_is_capacity_over_the_average_draw() -> None:
    x = inputs()
    tiny = by_name(evaluate(x))["tinyml"]
    joules = 235 / 1000 * 3600 * 3.0
    per_year = (x.idle_power_w * SECONDS_PER_YEAR + x.inferences_per_year * 571_000 * 900e-12
                + 4 * 30_000 * 115.2e-9)
    assert tiny.battery_life_years == pytest.approx(joules / per_year)
    idle = by_name(evaluate(inputs(inferences_per_day=0, updates_per_year=0)))["tinyml"]
    assert idle.battery_life_years == pytest.approx(joules / (9e-6 * SECONDS_PER_YEAR))
    assert math.isinf(idle.per_million_inferences)


def test_compute_is_billed_in_whole_steps() -> None:
    assert billed_seconds(inputs(cloud_compute_seconds=0.0004)) == pytest.approx(0.001)
    assert billed_seconds(inputs(cloud_compute_seconds=0.0012)) == pytest.approx(0.002)
    assert billed_seconds(inputs(cloud_compute_seconds=0.002)) == pytest.approx(0.002)
    assert billed_seconds(inputs(cloud_compute_seconds=0.0012, cloud_billing_granularity_s=0)) == 0.0012


def test_inputs_refuse_impossible_figures() -> None:
    with pytest.raises(ValidationError, match="escalation_rate"):
        inputs(escalation_rate=1.5)
    with pytest.raises(ValidationError, match="fleet_size"):
        inputs(fleet_size=0)
    with pytest.raises(ValidationError, match="device_unit_cost"):
        inputs(device_unit_cost=-1)
    with pytest.raises(ValidationError, match="Extra inputs"):
        inputs(discount=0.5)
    assert inputs().inferences_per_year == 1440 * DAYS_PER_YEAR
