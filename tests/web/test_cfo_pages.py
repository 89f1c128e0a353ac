"""The CFO's page without a browser: every input with its source, a comparison with its chart, and
refusals in the API's words."""

from __future__ import annotations

from _web import Web

from tinymlaas.config import Settings
from tinymlaas.cost.model import input_units
from tinymlaas.zoo import get_recipe


def test_the_cost_page_lists_every_input_and_compares_with_the_services_chart(web: Web) -> None:
    auth = {"Authorization": f"Bearer {web.admin_token}"}
    model = get_recipe("hello_world").load(Settings().zoo_dir)  # trained once, cached in var/zoo
    r = web.client.post("/models", files={"file": ("hello_world.tflite", model)},
                        data={"name": "hello_world"}, headers=auth)
    assert r.status_code == 201, r.text
    client = web.login("viewer")
    page = client.get("/ui/cfo/cost").text
    for name in input_units():
        assert f'name="in.{name}"' in page
    assert "AWS Lambda price list" in page and "No hybrid evaluation yet" in page
    csrf = web.csrf()
    r = client.post("/ui/cfo/cost/compare", data={"model": "hello_world"}, headers=csrf)
    assert r.status_code == 422 and "no measured instruction count" in r.json()["detail"]
    r = client.post("/ui/cfo/cost/compare", data={"model": "hello_world", "board": "mps2-an385",
                                                  "in.instructions_per_inference": "2000",
                                                  "in.fleet_size": "5000", "in.escalation_rate": "0.1"},
                    headers=csrf)
    assert r.status_code == 200, r.text
    assert "is cheapest for 5,000 devices" in r.text and 'src="data:image/svg+xml;base64,' in r.text
    assert "Break-even" in r.text and ">user<" in r.text and ">measured<" in r.text
    r = client.post("/ui/cfo/cost/compare", data={"model": "hello_world", "board": "mps2-an385",
                                                  "in.fleet_size": "many"}, headers=csrf)
    assert r.status_code == 422 and "inputs.fleet_size: 'many' is not a number" in r.json()["detail"]

