"""The README's generated aot sections match the compiler's declaration and render the
benchmark's rows."""

from __future__ import annotations

from tinymlaas.compilers.aot.docs import OPS, ops_table, replace_block, results_table
from tinymlaas.config import REPO_ROOT


def test_readme_lists_the_declared_ops() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert replace_block(readme, OPS, ops_table()) == readme, (
        "regenerate: python -m tinymlaas.compilers.aot.docs README.md")


def test_results_rows_render_the_benchmark() -> None:
    row = {"model": "digits_cnn", "cpu": "M4", "opt": "Os", "instructions": 6_130_000,
           "trace_instructions": 6_130_057, "tflm_ref": 74_630_000,
           "tflm_cmsis_nn": 4_020_000, "x_cmsis_nn": 1.525, "target_met": False,
           "model_flash": 73_040, "tflite_bytes": 84_288, "cmsis_nn_flash": 157_599,
           "x_flash": 0.463, "flash_target_met": True, "arena": 9_504,
           "cmsis_nn_ram": 24_664, "tflm_arena_x86": 25_296, "x_arena": 0.385,
           "arena_target_met": True, "bit_exact": True}
    unanchored = {**row, "model": "mobilenet_96", "trace_instructions": None, "tflm_ref": None,
                  "tflm_cmsis_nn": None, "x_cmsis_nn": None, "target_met": None,
                  "cmsis_nn_flash": None, "x_flash": None, "flash_target_met": None,
                  "cmsis_nn_ram": None, "x_arena": 0.376}
    table = results_table([row, unanchored]).splitlines()
    assert table[2] == ("| digits_cnn | M4 | -Os | 6.13 M | +57 (9 ppm) | 74.63 M | 4.02 M | **1.52** "
                        "| 73,040 | 157,599 | 0.46 | 9,504 | 24,664 | 0.39 | yes |")
    assert table[3] == ("| mobilenet_96 | M4 | -Os | 6.13 M | - | - | - | - | 73,040 | - | - "
                        "| 9,504 | 25,296 (x86 arena) | 0.38 | yes |")
